"""What retraining bought: earlier champions scored on the rows the current one was judged on.

The performance check (:mod:`.performance_check`) measures the model that scored the newest
matured predictions (the *current* model) on its labelled rows. This module answers "would the
model we replaced have done better on those very rows?": it takes the champions that came
before the current one from the registry's alias history
(:func:`mlops_provider.core.registry.history.alias_history`),

- ``previous_champion``: the version the current one replaced when it last became champion;
- ``first_champion``: the first version that ever held the alias (the "never retrained"
  counterfactual),

reads the features the predictions were scored from (``<input_data>/dt=YYYY-MM-DD``) for
exactly the labelled rows of the current model, scores them with each earlier champion
(:func:`mlops_provider.core.scoring.batch.predict_table`, the batch scorer's own prediction
path) and computes the same metrics on the same labels. The rows are identified by a digest of
their keys (entity columns + prediction day), reported beside every set of metrics, so a reader
can check that the current model and every counterfactual were scored on the same rows.

``gain[metric]`` is signed so that positive means the current model is better: ``current -
counterfactual`` for metrics where higher is better (ROC AUC, accuracy ...),
``counterfactual - current`` for the others (RMSE, log loss ...).

Loaded models are kept in a small per-process cache (registered versions are immutable), so a
daily monitoring run in a long-lived worker loads each earlier champion once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_provider.core import io, models
from mlops_provider.core.errors import CoreError
from mlops_provider.core.metrics import higher_is_better
from mlops_provider.core.monitoring.errors import MonitoringError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_provider.core.mlflow_target import MlflowTarget
    from mlops_provider.core.scoring.model import LoadedModel

#: Metrics of a frame of labelled predictions (the performance check's scorer).
Scorer = Callable[[pd.DataFrame], dict[str, float | None]]

log = logging.getLogger(__name__)

__all__ = [
    "PREVIOUS_CHAMPION",
    "FIRST_CHAMPION",
    "Counterfactual",
    "CounterfactualScores",
    "Scoring",
    "champion_counterfactuals",
    "comparison_rows",
    "gain",
    "rows_digest",
    "safe_counterfactuals",
    "score_counterfactuals",
]

PREVIOUS_CHAMPION = "previous_champion"
FIRST_CHAMPION = "first_champion"
_DAY = "_day"  # the performance check's DAY_COLUMN
_CACHE_SIZE = 4
_CACHE: OrderedDict[tuple[str, str, str], LoadedModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Counterfactual:
    """An earlier champion to compare with: its version and its ``role``
    (``previous_champion`` or ``first_champion``)."""

    version: str
    role: str


def champion_counterfactuals(
    client: MlflowClient, name: str, current: str, alias: str = models.DEFAULT_ALIAS
) -> tuple[list[Counterfactual], list[str]]:
    """The earlier champions of ``current`` from the alias history of ``name@alias``.

    :returns: ``(counterfactuals, notes)``: the previous champion (what ``current`` replaced
        the last time it became champion) and the first champion, each at most once and never
        ``current`` itself (a note says why one is missing).
    """
    from mlops_provider.core.registry.history import alias_history, previous_alias

    events = alias_history(client, name, alias)
    notes: list[str] = []
    previous: str | None = None
    own = [e for e in events if e.version == str(current)]
    if own:
        previous = own[-1].replaced
    elif not events:
        holder = models.alias_holder(client, name, previous_alias(alias))
        previous = holder.version if holder is not None else None
        notes.append(f"no recorded history of {name}@{alias}: using @{previous_alias(alias)}")
    else:
        notes.append(f"v{current} never held {name}@{alias} (according to its history)")
    first = events[0].version if events else None
    out: list[Counterfactual] = []
    if previous and previous != str(current):
        out.append(Counterfactual(str(previous), PREVIOUS_CHAMPION))
    else:
        notes.append(f"v{current} replaced no earlier champion")
    if first and first != str(current):
        out.append(Counterfactual(str(first), FIRST_CHAMPION))
    elif first:
        notes.append(f"v{current} is the first champion: never retrained")
    return out, notes


def rows_digest(rows: pd.DataFrame, keys: Sequence[str]) -> str:
    """SHA-256 of the sorted row keys (``keys`` + prediction day): equal digests, same rows."""
    if not len(rows):
        return hashlib.sha256(b"").hexdigest()
    columns = [rows[k].astype(str).tolist() for k in [*keys, _DAY]]
    lines = sorted("|".join(parts) for parts in zip(*columns))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _read_features(
    input_data: str, days: Sequence[date], columns: Sequence[str] | None, conn_id: str | None
) -> pd.DataFrame:
    frames = []
    for day in days:
        uri = io.partition_uri(input_data, day)
        if not io.exists(uri, conn_id=conn_id):
            raise MonitoringError(
                f"input_data has no partition {uri}: the features the predictions of "
                f"{day.isoformat()} were scored from are needed to score earlier champions"
            )
        schema = io.open_dataset(uri, conn_id=conn_id).schema
        cols = [c for c in columns if c in schema.names] if columns is not None else None
        frame = io.read_table(uri, columns=cols, conn_id=conn_id).to_pandas()
        frames.append(frame.assign(**{_DAY: day}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def comparison_rows(
    labelled: pd.DataFrame,
    input_data: str,
    *,
    keys: Sequence[str],
    feature_columns: Sequence[str] | None = None,
    conn_id: str | None = None,
) -> pd.DataFrame:
    """The labelled prediction rows with the features they were scored from.

    :param labelled: labelled predictions of one model (with ``_day`` and ``keys``).
    :param input_data: base URI of the scored feature partitions (``<input_data>/dt=...``).
    :param feature_columns: the feature columns to read (default: all).
    :returns: ``labelled`` joined with its features (prediction columns keep their names; a
        feature column named like one of them is read as ``<name>_feature``).
    :raises MonitoringError: a partition is missing or the keys repeat within a partition.
    """
    days = sorted(set(labelled[_DAY])) if len(labelled) else []
    wanted = None if feature_columns is None else [*keys, *feature_columns]
    features = _read_features(input_data, days, wanted, conn_id)
    if not len(features):
        return labelled.iloc[0:0]
    missing = [k for k in keys if k not in features.columns]
    if missing:
        raise MonitoringError(
            f"input_data {input_data} has no column {missing[0]!r} to find the scored rows "
            f"(columns: {list(features.columns)})"
        )
    dup = features.duplicated([*keys, _DAY])
    if dup.any():
        raise MonitoringError(
            f"input_data {input_data}: {int(dup.sum())} row(s) repeat the keys "
            f"({', '.join(keys)}) within a day; the scored rows cannot be told apart"
        )
    try:
        return labelled.merge(
            features, on=[*keys, _DAY], how="inner", suffixes=("", "_feature"), validate="m:1"
        )
    except (ValueError, TypeError) as err:
        raise MonitoringError(
            f"cannot join the labelled predictions with {input_data} on "
            f"({', '.join(keys)}, day): {err}"
        ) from err


def gain(
    current: Mapping[str, float | None], other: Mapping[str, float | None]
) -> dict[str, float | None]:
    """Per metric, how much better ``current`` is than ``other`` (positive = better)."""
    out: dict[str, float | None] = {}
    for name, value in current.items():
        base = other.get(name)
        if value is None or base is None:
            out[name] = None
            continue
        diff = value - base if higher_is_better(name) else base - value
        out[name] = round(float(diff), 6)
    return out


def _rounded(values: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(float(v), 6) for k, v in values.items()}


def _cache_key(target: MlflowTarget | None, uri: str) -> tuple[str, str, str]:
    if target is None:
        return ("", "", uri)
    return (target.tracking_uri, target.effective_registry_uri, uri)


def _loaded(resolved: models.ModelVersion, target: MlflowTarget | None) -> LoadedModel:
    """The model loaded once per process (native scikit-learn models only are kept)."""
    from mlops_provider.core.mlflow_target import MlflowTarget, activated
    from mlops_provider.core.scoring.model import open_model

    key = _cache_key(target, resolved.uri)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    if target is None:
        import mlflow

        target = MlflowTarget(mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    with activated(target), open_model(resolved, target) as loaded:
        if loaded.flavor != "sklearn":
            raise MonitoringError(
                f"{resolved.describe()} is a pyfunc model: earlier champions are scored only "
                "when they load as scikit-learn models"
            )
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return loaded


def _predict(loaded: LoadedModel, rows: pd.DataFrame) -> pd.DataFrame:
    import pyarrow as pa

    from mlops_provider.core.scoring.batch import predict_table

    names = [c.name for c in loaded.inputs if c.name in rows.columns]
    table = pa.Table.from_pandas(rows[names], preserve_index=False)
    return predict_table(loaded, table).to_pandas()


@dataclass
class CounterfactualScores:
    """The current model and its earlier champions on the same rows."""

    current: dict[str, Any]
    counterfactuals: list[dict[str, Any]]
    notes: list[str]

    def to_result(self) -> dict[str, Any]:
        """The performance result's keys: ``comparison`` (the current model on the compared
        rows), ``counterfactuals`` and ``gain`` (``{role: {metric: gain}}``)."""
        return {
            "comparison": self.current,
            "counterfactuals": self.counterfactuals,
            "gain": {c["role"]: c["gain"] for c in self.counterfactuals},
            "counterfactual_notes": self.notes,
        }


def _score_one(loaded: LoadedModel, rows: pd.DataFrame, label: str, score: Scorer) -> dict:
    predicted = _predict(loaded, rows)
    frame = pd.DataFrame({label: rows[label].to_numpy()})
    for column in ("prediction", "probability"):
        if column in predicted:
            frame[column] = predicted[column].to_numpy()
    return score(frame)


@dataclass(frozen=True)
class Scoring:
    """How rows are scored: ``label`` column, ``keys`` (entity columns),
    ``current`` (metrics from the logged predictions' columns) and ``predicted`` (metrics
    from the ``prediction`` / ``probability`` columns the batch scorer writes)."""

    label: str
    keys: list[str]
    current: Scorer
    predicted: Scorer


def score_counterfactuals(
    client: MlflowClient,
    labelled: pd.DataFrame,
    *,
    name: str,
    current: str,
    input_data: str,
    scoring: Scoring,
    alias: str = models.DEFAULT_ALIAS,
    target: MlflowTarget | None = None,
    conn_id: str | None = None,
) -> CounterfactualScores:
    """Score the labelled rows of ``current`` with its earlier champions.

    :param labelled: the labelled predictions of ``current`` (``_day``, entity columns, the
        label and the prediction columns).
    :param input_data: base URI of the features the predictions were scored from.
    :raises MonitoringError: features missing or not joinable, a model that cannot be loaded.
    """
    started = time.perf_counter()
    keys = scoring.keys
    found, notes = champion_counterfactuals(client, name, current, alias)
    loaded = {
        cf.version: _loaded(models.resolve(client, models.version_uri(name, cf.version)), target)
        for cf in found
    }
    inputs = sorted({c.name for m in loaded.values() for c in m.inputs})
    rows = comparison_rows(labelled, input_data, keys=keys, feature_columns=inputs, conn_id=conn_id)
    if len(rows) < len(labelled):
        notes.append(f"{len(labelled) - len(rows)} labelled row(s) have no features in input_data")
    digest = rows_digest(rows, keys)
    current_metrics = scoring.current(rows) if len(rows) else {}
    comparison = {
        "model_version": str(current),
        "metrics": _rounded(current_metrics),
        "rows": len(rows),
        "rows_digest": digest,
        "days": sorted({str(d)[:10] for d in rows[_DAY]}) if len(rows) else [],
    }
    out = []
    by_version: dict[str, dict[str, float | None]] = {}
    for cf in found:
        if cf.version not in by_version and len(rows):
            by_version[cf.version] = _score_one(
                loaded[cf.version], rows, scoring.label, scoring.predicted
            )
        metrics = by_version.get(cf.version, {})
        out.append(
            {
                "version": cf.version,
                "role": cf.role,
                "metrics": _rounded(metrics),
                "rows": len(rows),
                "rows_digest": digest,
                "gain": gain(current_metrics, metrics),
            }
        )
    log.info(
        "Scored %d labelled row(s) of v%s with %s in %.1fs (rows digest %s)",
        len(rows),
        current,
        ", ".join(f"v{c['version']} ({c['role']}): gain {c['gain']}" for c in out) or "none",
        time.perf_counter() - started,
        digest[:12],
    )
    return CounterfactualScores(comparison, out, notes)


def safe_counterfactuals(run: Callable[[], CounterfactualScores]) -> dict[str, Any]:
    """The result keys of ``run()``; a failure is reported, never raised (the performance
    check stands on its own): ``counterfactuals`` is then empty and the note says why."""
    from mlflow.exceptions import MlflowException

    try:
        return run().to_result()
    except (CoreError, MlflowException, OSError, ValueError) as err:
        log.warning("Earlier champions were not scored: %s", err)
        return {
            "comparison": None,
            "counterfactuals": [],
            "gain": {},
            "counterfactual_notes": [f"earlier champions not scored: {err}"],
        }
