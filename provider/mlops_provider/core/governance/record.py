"""What a training run records about where its model came from: ``lineage/training.json``.

One JSON document per training run (an MLflow artifact, :data:`LINEAGE_ARTIFACT`), written
with the run by :func:`~mlops_provider.core.training.train_and_log`: the datasets with their
content digests, the entity/label windows, the Feast feature references and feature-view
definitions as applied when the training set was built, the validation results of the source
partitions, the code that ran (DAG, its version, the provider version), what triggered the
training (schedule, retrain request and its reasons) and the training configuration needed to
refit. :func:`~mlops_provider.core.governance.trace` reads it to answer "where did this come
from"; :func:`~mlops_provider.core.governance.reproduce` to rebuild and refit. Every field
except ``training_data`` and ``config`` may be empty: runs trained outside the reference DAGs
record what they know.

Imports nothing heavy at module level.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "LINEAGE_ARTIFACT",
    "LINEAGE_SCHEMA",
    "DatasetRef",
    "TrainingLineage",
    "log_training_lineage",
    "read_training_lineage",
]

log = logging.getLogger(__name__)

LINEAGE_ARTIFACT = "lineage/training.json"
LINEAGE_SCHEMA = 1


@dataclass
class DatasetRef:
    """A dataset as used: where it was and what it held.

    :param uri: the dataset's URI when it was read.
    :param digest: its content digest (``io.table_digest`` of the table: schema + values).
    :param rows: its row count.
    """

    uri: str
    digest: str | None = None
    rows: int | None = None

    @classmethod
    def of(cls, value: Any) -> DatasetRef | None:
        """A reference from a dict, a URI string, another reference or None."""
        if value is None or isinstance(value, DatasetRef):
            return value
        if isinstance(value, str):
            return cls(uri=value)
        if isinstance(value, Mapping):
            return cls(
                uri=str(value["uri"]),
                digest=value.get("digest"),
                rows=None if value.get("rows") is None else int(value["rows"]),
            )
        raise TypeError(f"a dataset reference is a URI or a mapping with 'uri', got {value!r}")


@dataclass
class TrainingLineage:
    """The lineage document of one training run (:data:`LINEAGE_ARTIFACT`).

    :param training_data: the training set as read by the training.
    :param config: the training configuration (``TrainingConfig`` fields; the estimator as its
        dotted path) and the fingerprint of data + configuration.
    :param evaluation_data: the held-out set the candidate was evaluated on.
    :param validation_data: the explicit validation set, if one replaced the random holdout.
    :param entity_data: the entity (+ label) datasets the training/evaluation sets were built
        from, by role (``training``, ``evaluation``).
    :param label_window: how the labelled window was chosen: ``as_of``, ``window_days``,
        ``start``, ``end``, ``labels_uri``, ``features_uri``, ...
    :param feature_service: the Feast feature service, if one was used.
    :param feature_refs: ``view:feature`` references, in model order.
    :param feature_views: the feature-view definitions as applied when the set was built
        (``name``, ``definition`` (the spec as a dict), ``source``, ``ttl_seconds``, ...).
    :param source_partitions: the feature partitions the window read, each with ``uri``,
        ``day``, ``digest`` and its ``validation`` result (status, report URI).
    :param code: ``dag_id``, ``run_id``, ``task_id``, ``dag_version``, ``bundle_version``,
        ``dag_file``, ``dag_file_digest``, ``provider_version``.
    :param trigger: what started the training: ``kind`` (``schedule``, ``retrain_request``,
        ``manual``), ``reasons``, ``request`` (the retrain request's state), ``as_of``.
    """

    training_data: DatasetRef
    config: dict[str, Any] = field(default_factory=dict)
    evaluation_data: DatasetRef | None = None
    validation_data: DatasetRef | None = None
    entity_data: dict[str, DatasetRef] = field(default_factory=dict)
    label_window: dict[str, Any] = field(default_factory=dict)
    feature_service: str | None = None
    feature_refs: list[str] = field(default_factory=list)
    feature_views: list[dict[str, Any]] = field(default_factory=list)
    source_partitions: list[dict[str, Any]] = field(default_factory=list)
    code: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    schema: int = LINEAGE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingLineage:
        """The document from its dict form; unknown keys (a newer schema) are ignored."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["training_data"] = DatasetRef.of(values["training_data"])
        for key in ("evaluation_data", "validation_data"):
            values[key] = DatasetRef.of(values.get(key))
        entities = values.get("entity_data") or {}
        values["entity_data"] = {str(k): DatasetRef.of(v) for k, v in entities.items()}
        return cls(**values)

    def merged(self, extra: Mapping[str, Any] | None) -> TrainingLineage:
        """A copy with the fields of ``extra`` (what the caller knows: windows, features, code,
        trigger) filled in; dict fields are merged key by key, the others replaced."""
        if not extra:
            return self
        data = self.to_dict()
        names = {f.name for f in fields(self)}
        unknown = sorted(set(extra) - names)
        if unknown:
            raise ValueError(f"unknown lineage field(s) {unknown}; known: {sorted(names)}")
        for key, value in extra.items():
            if value is None:
                continue
            if isinstance(data.get(key), dict) and isinstance(value, Mapping):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return TrainingLineage.from_dict(data)


def log_training_lineage(client: MlflowClient, run_id: str, lineage: TrainingLineage) -> None:
    """Write the document as the run's :data:`LINEAGE_ARTIFACT`."""
    from mlops_provider.core.runs import log_results

    log_results(client, run_id, texts={LINEAGE_ARTIFACT: lineage.to_json()})


def read_training_lineage(client: MlflowClient, run_id: str) -> TrainingLineage | None:
    """The run's lineage document, or None for a run that has none (trained before it was
    recorded, or outside the provider)."""
    import tempfile
    from pathlib import Path

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, LINEAGE_ARTIFACT, tmp)
            data = json.loads(Path(path).read_text())
    except Exception as err:  # no such artifact: an older or foreign run
        log.info("run %s has no %s: %s", run_id, LINEAGE_ARTIFACT, err)
        return None
    return TrainingLineage.from_dict(data)
