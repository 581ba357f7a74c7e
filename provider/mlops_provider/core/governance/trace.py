"""Where a prediction or a model came from, in one call: :func:`trace`.

The chain, each link read from the store that holds it (and saying which):

prediction row (the predictions partition: its values and ``model_name``, ``model_version``,
``model_run_id``, ``scored_at``) -> model version (the registry) and the alias it held at the
time (the alias history tags, :mod:`mlops_provider.core.registry.history`) -> training run
(params, metrics, tags) -> its lineage document ``lineage/training.json``
(:mod:`.record`) -> code (DAG, run, task, DAG version, bundle version, DAG file digest, provider
version) -> training / evaluation / validation datasets (URIs, recorded content digests, and
whether the content there now still has that digest) -> entity datasets -> label window ->
Feast feature service, references and feature-view definitions as applied -> source feature
partitions and the validation their publish recorded -> the trigger (retrain request and its
reasons).

A link that cannot be read is reported as ``missing`` with the reason (a run trained before
lineage documents were recorded has none), never filled in. :class:`Trace` is a dataclass with
:meth:`Trace.to_dict` (JSON-able), :meth:`Trace.to_text` (the readable view) and
:func:`render_trace_html` (a section for HTML reports); :func:`champion_traces_html` renders
the trace of every version that held an alias.

Imports nothing heavy at module level.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow import MlflowClient

    from mlops_provider.core.governance.record import DatasetRef, TrainingLineage

__all__ = [
    "LINK_NAMES",
    "Link",
    "Trace",
    "TraceError",
    "champion_traces_html",
    "parse_row_key",
    "render_trace_html",
    "trace",
    "trace_champion_at",
    "trace_model_version",
    "trace_prediction",
]

log = logging.getLogger(__name__)

#: The links of a full chain, in order (a model trace starts at ``model_version``).
LINK_NAMES = (
    "prediction",
    "model_version",
    "alias",
    "training_run",
    "lineage_document",
    "code",
    "training_data",
    "evaluation_data",
    "validation_data",
    "entity_data",
    "label_window",
    "features",
    "source_partitions",
    "trigger",
)
#: Link statuses: read; not recorded or not readable (``notes`` say why); a dataset whose
#: content now differs from the recorded digest; a dataset that can no longer be read.
STATUSES = ("found", "missing", "changed", "gone")
_MODEL_COLUMNS = ("model_name", "model_version", "model_run_id", "scored_at")
_NOISY_TAGS = ("mlflow.log-model.history",)
#: Run tags naming the Airflow task instance and the provider (``RunIdentity.lineage_tags``).
_CODE_TAGS = tuple(
    f"mlops.{name}"
    for name in (
        "dag_id",
        "task_id",
        "map_index",
        "dag_run_id",
        "airflow_run_id",
        "try_number",
        "data_interval_start",
        "data_interval_end",
        "logical_date",
        "provider_version",
    )
)


class TraceError(InputError):
    """What was asked cannot be traced: no such row, partition, model or version."""


@dataclass
class Link:
    """One link of the chain.

    :param name: one of :data:`LINK_NAMES`.
    :param status: ``found``, ``missing``, ``changed`` or ``gone`` (:data:`STATUSES`).
    :param source: where it was read from (a URI, ``runs:/...``, a registry entry, tags).
    :param data: what was read (JSON-able).
    :param notes: why a link is missing, what a check found.
    """

    name: str
    status: str
    source: str | None
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Trace:
    """The chain from a prediction row or a model version back to its data and trigger.

    :param query: what was traced (``kind`` ``prediction``, ``model_version`` or
        ``champion_at``, and its arguments).
    :param links: the links, in :data:`LINK_NAMES` order.
    """

    query: dict[str, Any]
    links: list[Link] = field(default_factory=list)

    def link(self, name: str) -> Link | None:
        """The link named ``name``, or None when the chain has none."""
        return next((link for link in self.links if link.name == name), None)

    @property
    def missing(self) -> list[str]:
        return [link.name for link in self.links if link.status == "missing"]

    @property
    def changed(self) -> list[str]:
        return [link.name for link in self.links if link.status in ("changed", "gone")]

    def to_dict(self) -> dict[str, Any]:
        """``query``, ``links`` (each ``name``, ``status``, ``source``, ``data``, ``notes``),
        ``missing`` and ``changed`` (link names)."""
        return _jsonable(
            {
                "query": self.query,
                "links": [asdict(link) for link in self.links],
                "missing": self.missing,
                "changed": self.changed,
            }
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def to_text(self) -> str:
        """The readable view: one block per link (status, what, where it was read from)."""
        lines = [_title(self.query)]
        for link in self.links:
            lines.append(f"[{link.status:^7}] {link.name.replace('_', ' ')}")
            lines += [f"    {line}" for line in _summary(link)]
            lines += [f"    note: {note}" for note in link.notes]
            if link.source:
                lines.append(f"    from: {link.source}")
        if self.missing:
            lines.append(f"missing: {', '.join(self.missing)}")
        if self.changed:
            lines.append(f"changed since training: {', '.join(self.changed)}")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


# --------------------------------------------------------------------------- prediction row


def parse_row_key(text: str | Sequence[str]) -> dict[str, str]:
    """``customer_id=123``, ``dt=2026-01-10/customer_id=123`` or ``a=1,b=2`` (or a list of
    such) as ``{column: value}``; ``dt`` selects the partition day.

    :raises TraceError: a part without ``=``.
    """
    parts = [text] if isinstance(text, str) else list(text)
    out: dict[str, str] = {}
    for part in parts:
        for item in str(part).replace(",", "/").split("/"):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise TraceError(
                    f"row key {item!r} is not <column>=<value> (e.g. customer_id=123, "
                    "dt=2026-01-10/customer_id=123)"
                )
            out[key.strip()] = value.strip()
    return out


def _partition(predictions_uri: str, day: str | None) -> str:
    from mlops_provider.core import io

    if io.partition_key(predictions_uri):
        return predictions_uri.rstrip("/")
    if not day:
        raise TraceError(
            f"{predictions_uri} is not a partition: give the day (--day 2026-01-10 or a dt= "
            "part of the row key)"
        )
    return io.partition_uri(predictions_uri.rstrip("/"), day[:10])


def _matching(table: pa.Table, key: Mapping[str, str], partition: str) -> list[int]:
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in key if c not in table.column_names]
    if missing:
        raise TraceError(
            f"predictions {partition} have no column(s) {missing}; columns: {table.column_names}"
        )
    mask = None
    for column, value in key.items():
        values = table.column(column)
        if pa.types.is_timestamp(values.type):
            from mlops_provider.core.times import to_utc

            wanted = pa.scalar(to_utc(value, what=column), values.type)
            hit = pc.equal(values, wanted)
        else:
            hit = pc.equal(pc.cast(values, pa.string()), value)
        mask = hit if mask is None else pc.and_(mask, hit)
    assert mask is not None
    return [i for i, v in enumerate(mask.to_pylist()) if v]


def _prediction_link(
    predictions_uri: str, key: Mapping[str, str], day: str | None, conn_id: str | None
) -> Link:
    from mlops_provider.core import io
    from mlops_provider.core.features.publish import partition_marker

    key = dict(key)
    day = day or key.pop("dt", None)
    key.pop("dt", None)
    if not key:
        raise TraceError("the row key names no column (e.g. --row customer_id=123)")
    partition = _partition(predictions_uri, day)
    try:
        table = io.read_table(partition, conn_id=conn_id)
    except io.DatasetError as err:
        raise TraceError(f"cannot read predictions {partition}: {err}") from err
    rows = _matching(table, key, partition)
    shown = ", ".join(f"{k}={v}" for k, v in key.items())
    if not rows:
        raise TraceError(f"no row with {shown} in {partition} ({table.num_rows} rows)")
    if len(rows) > 1:
        raise TraceError(
            f"{len(rows)} rows with {shown} in {partition}: add a column to the key "
            f"(columns: {table.column_names})"
        )
    values = _jsonable(table.slice(rows[0], 1).to_pylist()[0])
    marker = partition_marker(partition, conn_id=conn_id) or {}
    notes = [
        f"column {c} is missing: the partition was not written by the provider's scoring"
        for c in _MODEL_COLUMNS
        if c not in values
    ]
    return Link(
        "prediction",
        "missing" if notes else "found",
        f"{partition} (row {rows[0]} of {table.num_rows})",
        {
            "partition": partition,
            "key": key,
            "values": values,
            **{c: values.get(c) for c in _MODEL_COLUMNS},
            "partition_rows": marker.get("rows"),
        },
        notes,
    )


# --------------------------------------------------------------------------- registry


def _tracking(client: MlflowClient) -> str:
    return str(getattr(client, "_tracking_client", None) and client._tracking_client.tracking_uri)


def _registry(client: MlflowClient) -> str:
    registry = getattr(client, "_registry_uri", None)
    return str(registry or _tracking(client))


def _version_link(client: MlflowClient, name: str, version: str) -> tuple[Link, Any]:
    from mlflow.exceptions import MlflowException

    source = f"MLflow registry {_registry(client)}: models:/{name}/{version}"
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as err:
        raise TraceError(
            f"model version {name}/{version} not found in the registry: {err}"
        ) from err
    tags = dict(mv.tags or {})
    data = {
        "name": name,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "source": mv.source,
        "status": mv.status,
        "created_at": _ms_iso(mv.creation_timestamp),
        "current_aliases": list(getattr(mv, "aliases", []) or []),
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlops.alias_history.")},
    }
    return Link("model_version", "found", source, data), mv


def _ms_iso(ms: Any) -> str | None:
    from mlops_provider.core.times import from_ms

    return None if ms is None else from_ms(int(ms)).isoformat(timespec="milliseconds")


def _alias_link(client: MlflowClient, name: str, version: str, when: Any) -> Link:
    """The aliases ``version`` held at ``when`` (now when None) by the recorded history."""
    from mlops_provider.core.registry.history import HISTORY_TAG_PREFIX, events_of
    from mlops_provider.core.registry.registration import search_versions
    from mlops_provider.core.runs import quote
    from mlops_provider.core.times import iso, to_ms

    versions = search_versions(client, f"name = {quote(name)}")
    aliases = sorted(
        {
            key[len(HISTORY_TAG_PREFIX) :].rsplit(".", 1)[0]
            for v in versions
            for key in (v.tags or {})
            if key.startswith(HISTORY_TAG_PREFIX)
        }
    )
    at = to_ms(when) if when is not None else None
    holders: dict[str, str | None] = {}
    events: list[dict[str, Any]] = []
    for alias in aliases:
        history = sorted(
            (e for v in versions for e in events_of(v, alias)), key=lambda e: (e.at_ms, e.version)
        )
        holder = None
        for event in history:
            if at is None or event.at_ms <= at:
                holder = event.version
        holders[alias] = holder
        events += [asdict(e) for e in history if version in (e.version, e.replaced)]
    held = [a for a, v in holders.items() if v == str(version)]
    data = {
        "at": iso(when) if when is not None else None,
        "held": held,
        "holders_at": holders,
        "events": events,
    }
    notes = [] if aliases else [f"no alias change of {name} is recorded"]
    source = f"alias history tags {HISTORY_TAG_PREFIX}<alias>.* on the versions of {name}"
    return Link("alias", "found" if aliases else "missing", source, data, notes)


# --------------------------------------------------------------------------- training run


def _run_link(client: MlflowClient, run_id: str | None) -> tuple[Link, Any]:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return Link("training_run", "missing", None, {}, ["the version names no run"]), None
    source = f"MLflow run {run_id} ({_tracking(client)})"
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        return Link("training_run", "missing", source, {"run_id": run_id}, [str(err)]), None
    experiment = client.get_experiment(run.info.experiment_id)
    inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
    data = {
        "run_id": run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "experiment_name": getattr(experiment, "name", None),
        "status": run.info.status,
        "start_time": _ms_iso(run.info.start_time),
        "end_time": _ms_iso(run.info.end_time),
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in run.data.tags.items() if k not in _NOISY_TAGS},
        "provider_version": run.data.tags.get("mlops.provider_version"),
        "dataset_inputs": [
            {
                "name": d.dataset.name,
                "digest": d.dataset.digest,
                "source": d.dataset.source,
                "context": next((t.value for t in d.tags if t.key == "mlflow.data.context"), None),
            }
            for d in inputs
        ],
    }
    return Link("training_run", "found", source, data), run


def _dataset_link(
    name: str, ref: DatasetRef | None, source: str, verify: bool, conn_id: str | None
) -> Link:
    from mlops_provider.core.governance.collect import current_digest

    if ref is None:
        return Link(name, "missing", source, {}, [f"the lineage document records no {name}"])
    data: dict[str, Any] = {"uri": ref.uri, "digest": ref.digest, "rows": ref.rows}
    notes: list[str] = []
    status = "found"
    if verify:
        digest, rows = current_digest(ref.uri, conn_id=conn_id)
        data.update(current_digest=digest, current_rows=rows)
        if digest is None:
            status = "gone"
            notes.append(f"{ref.uri} cannot be read now")
        elif ref.digest is None:
            notes.append("no digest was recorded: the content cannot be checked")
        elif digest != ref.digest:
            status = "changed"
            notes.append(f"the content now has digest {digest}, not the recorded {ref.digest}")
        data["unchanged"] = digest is not None and digest == ref.digest
    return Link(name, status, source, data, notes)


def _entity_link(lineage: TrainingLineage, source: str, verify: bool, conn_id: str | None) -> Link:
    if not lineage.entity_data:
        return Link("entity_data", "missing", source, {}, ["no entity datasets are recorded"])
    roles = {}
    status, notes = "found", []
    for role, ref in lineage.entity_data.items():
        link = _dataset_link(f"entity_data.{role}", ref, source, verify, conn_id)
        roles[role] = link.data
        notes += [f"{role}: {n}" for n in link.notes]
        if link.status != "found":
            status = link.status
    return Link("entity_data", status, source, roles, notes)


def _partitions_link(
    lineage: TrainingLineage, source: str, verify: bool, conn_id: str | None
) -> Link:
    from mlops_provider.core.governance.collect import current_digest

    if not lineage.source_partitions:
        return Link(
            "source_partitions", "missing", source, {}, ["no source partitions are recorded"]
        )
    partitions, notes, status = [], [], "found"
    for recorded in lineage.source_partitions:
        item = dict(recorded)
        if verify and item.get("uri"):
            digest, _ = current_digest(str(item["uri"]), conn_id=conn_id)
            item["current_digest"] = digest
            item["unchanged"] = digest is not None and digest == item.get("digest")
            if not item["unchanged"]:
                status = "gone" if digest is None else "changed"
                notes.append(
                    f"{item['uri']}: content digest {digest}, recorded {item.get('digest')}"
                )
        if not item.get("validation"):
            notes.append(f"{item.get('uri')}: its publish recorded no validation")
        partitions.append(item)
    return Link("source_partitions", status, source, {"partitions": partitions}, notes)


def _recorded(name: str, value: Any, source: str) -> Link:
    if not value:
        return Link(name, "missing", source, {}, [f"the lineage document records no {name}"])
    return Link(name, "found", source, dict(value))


def _lineage_links(client: MlflowClient, run: Any, verify: bool, conn_id: str | None) -> list[Link]:
    """The links read from the run's lineage document (all missing without one)."""
    from mlops_provider.core.governance.record import LINEAGE_ARTIFACT, read_training_lineage

    run_id = run.info.run_id
    source = f"runs:/{run_id}/{LINEAGE_ARTIFACT}"
    lineage = read_training_lineage(client, run_id)
    if lineage is None:
        why = (
            f"run {run_id} has no {LINEAGE_ARTIFACT} (trained before lineage documents were "
            "recorded, or outside the provider)"
        )
        out = [Link("lineage_document", "missing", source, {}, [why])]
        out += _fallback_links(run, why)
        return out
    links = [
        Link("lineage_document", "found", source, {"schema": lineage.schema}),
        _recorded("code", lineage.code, source),
        _dataset_link("training_data", lineage.training_data, source, verify, conn_id),
        _dataset_link("evaluation_data", lineage.evaluation_data, source, verify, conn_id),
    ]
    if lineage.validation_data is not None:
        links.append(
            _dataset_link("validation_data", lineage.validation_data, source, verify, conn_id)
        )
    features = {
        "feature_service": lineage.feature_service,
        "feature_refs": lineage.feature_refs,
        "feature_views": lineage.feature_views,
    }
    links += [
        _entity_link(lineage, source, verify, conn_id),
        _recorded("label_window", lineage.label_window, source),
        _recorded("features", features if lineage.feature_refs else None, source),
        _partitions_link(lineage, source, verify, conn_id),
        _recorded("trigger", lineage.trigger, source),
    ]
    return links


def _fallback_links(run: Any, why: str) -> list[Link]:
    """Without a lineage document: what the run's tags say (code, training data URI, feature
    references), the rest missing."""
    from mlops_provider.core.models import FEATURE_REFS_TAG

    tags = dict(run.data.tags)
    code = {k: v for k, v in tags.items() if k in _CODE_TAGS}
    links = [
        Link("code", "found" if code else "missing", "run tags", code, [] if code else [why]),
    ]
    uri = tags.get("mlops.training_data")
    links.append(
        Link(
            "training_data",
            "found" if uri else "missing",
            "run tag mlops.training_data",
            {"uri": uri, "digest": None} if uri else {},
            ["no content digest was recorded: the content cannot be checked"] if uri else [why],
        )
    )
    refs = json.loads(tags[FEATURE_REFS_TAG]) if tags.get(FEATURE_REFS_TAG) else []
    if refs:
        links.append(
            Link("features", "found", f"run tag {FEATURE_REFS_TAG}", {"feature_refs": refs})
        )
    names = ["evaluation_data", "entity_data", "label_window", "source_partitions", "trigger"]
    if not refs:
        names.append("features")
    links += [Link(name, "missing", None, {}, [why]) for name in names]
    return links


# --------------------------------------------------------------------------- the chain


def _ordered(links: list[Link]) -> list[Link]:
    rank = {name: i for i, name in enumerate(LINK_NAMES)}
    return sorted(links, key=lambda link: rank.get(link.name, len(rank)))


def _model_chain(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    when: Any,
    verify: bool,
    conn_id: str | None,
    expected_run_id: str | None = None,
) -> list[Link]:
    """model version -> alias at ``when`` -> training run -> its lineage links."""
    version_link, mv = _version_link(client, name, version)
    if expected_run_id is not None:
        same = mv.run_id == expected_run_id
        version_link.data["run_id_matches_prediction"] = same
        if not same:
            version_link.notes.append(
                f"the prediction names run {expected_run_id}, the version's run is {mv.run_id}"
            )
    links = [version_link, _alias_link(client, name, str(version), when)]
    run_link, run = _run_link(client, mv.run_id)
    links.append(run_link)
    if run is None:
        why = "the training run cannot be read"
        links += [
            Link(n, "missing", None, {}, [why]) for n in LINK_NAMES[4:] if n != "validation_data"
        ]
    else:
        links += _lineage_links(client, run, verify, conn_id)
    return _ordered(links)


def trace_prediction(
    client: MlflowClient,
    predictions_uri: str,
    row: Mapping[str, str] | str | Sequence[str],
    *,
    day: str | date | None = None,
    verify: bool = True,
    conn_id: str | None = None,
) -> Trace:
    """The chain of one prediction row.

    :param predictions_uri: the predictions dataset (``.../predictions/churn``) or one of its
        partitions (``.../predictions/churn/dt=2026-01-10``).
    :param row: the row's key: ``{"customer_id": "123"}`` or text (:func:`parse_row_key`); a
        ``dt`` entry selects the partition.
    :param day: the partition day, when neither the URI nor the key names it.
    :param verify: read the recorded datasets again and compare their digests.
    :raises TraceError: no such partition or row, or several rows match the key.
    """
    if isinstance(row, Mapping):
        key = {str(k): str(v) for k, v in row.items()}
    else:
        key = parse_row_key(row)
    day_text = day.isoformat() if isinstance(day, date) else day
    prediction = _prediction_link(predictions_uri, key, day_text, conn_id)
    query = {"kind": "prediction", "predictions_uri": predictions_uri, "row": key, "day": day_text}
    data = prediction.data
    if not data.get("model_name") or not data.get("model_version"):
        return Trace(query, [prediction])
    links = _model_chain(
        client,
        str(data["model_name"]),
        str(data["model_version"]),
        when=data.get("scored_at"),
        verify=verify,
        conn_id=conn_id,
        expected_run_id=data.get("model_run_id"),
    )
    return Trace(query, [prediction, *links])


def _split_model(model: str) -> tuple[str, str]:
    name, sep, version = str(model).rpartition("/")
    if not sep or not name or not version.strip().isdigit():
        raise TraceError(f"model {model!r} is not <name>/<version> (e.g. churn/3)")
    return name.removeprefix("models:/"), version.strip()


def trace_model_version(
    client: MlflowClient,
    model: str,
    *,
    at: Any = None,
    verify: bool = True,
    conn_id: str | None = None,
) -> Trace:
    """The chain of a model version (``churn/3``); the aliases it held at ``at`` (default
    now).

    :raises TraceError: a malformed name or an unknown version.
    """
    name, version = _split_model(model)
    links = _model_chain(client, name, version, when=at, verify=verify, conn_id=conn_id)
    return Trace({"kind": "model_version", "model": f"{name}/{version}", "at": at}, links)


def trace_champion_at(
    client: MlflowClient,
    name: str,
    when: Any,
    *,
    alias: str = "champion",
    verify: bool = True,
    conn_id: str | None = None,
) -> Trace:
    """The chain of the version that held ``alias`` of ``name`` at ``when`` (by the recorded
    alias history).

    :raises TraceError: no version held the alias then.
    """
    from mlops_provider.core.registry.history import alias_holder_at
    from mlops_provider.core.times import iso, to_utc

    moment = to_utc(when, what="--champion-at")
    version = alias_holder_at(client, name, alias, moment)
    if version is None:
        raise TraceError(f"no version of {name} held @{alias} at {iso(moment)} (recorded history)")
    links = _model_chain(client, name, version, when=moment, verify=verify, conn_id=conn_id)
    query = {"kind": "champion_at", "model": name, "alias": alias, "at": iso(moment)}
    return Trace({**query, "version": version}, links)


def trace(
    client: MlflowClient,
    *,
    predictions_uri: str | None = None,
    row: Mapping[str, str] | str | Sequence[str] | None = None,
    day: str | date | None = None,
    model: str | None = None,
    champion_at: Any = None,
    model_name: str | None = None,
    alias: str = "champion",
    verify: bool = True,
    conn_id: str | None = None,
) -> Trace:
    """Trace a prediction row (``predictions_uri`` + ``row``), a model version (``model`` =
    ``name/version``), or the alias holder at a time (``champion_at`` + ``model_name``).

    :raises TraceError: none or several of the three questions, or what they name is not found.
    """
    asked = [predictions_uri is not None, model is not None, champion_at is not None]
    if sum(asked) != 1:
        raise TraceError(
            "trace one thing: a prediction row (predictions URI + row key), a model version "
            "(name/version), or the champion at a time (time + model name)"
        )
    if predictions_uri is not None:
        if not row:
            raise TraceError("a prediction trace needs the row key (e.g. customer_id=123)")
        return trace_prediction(
            client, predictions_uri, row, day=day, verify=verify, conn_id=conn_id
        )
    if model is not None:
        return trace_model_version(client, model, verify=verify, conn_id=conn_id)
    if not model_name:
        raise TraceError("--champion-at needs the model name (--model-name churn)")
    return trace_champion_at(
        client, model_name, champion_at, alias=alias, verify=verify, conn_id=conn_id
    )


# --------------------------------------------------------------------------- rendering


def _title(query: Mapping[str, Any]) -> str:
    kind = query.get("kind")
    if kind == "prediction":
        key = ", ".join(f"{k}={v}" for k, v in (query.get("row") or {}).items())
        day = f" on {query['day']}" if query.get("day") else ""
        return f"Trace of the prediction {key}{day} in {query.get('predictions_uri')}"
    if kind == "champion_at":
        return (
            f"Trace of {query.get('model')}@{query.get('alias')} at {query.get('at')}: "
            f"version {query.get('version')}"
        )
    return f"Trace of the model version {query.get('model')}"


def _short(value: Any, limit: int = 12) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _dataset_line(data: Mapping[str, Any]) -> str:
    line = f"{data.get('uri')}  digest {data.get('digest')}  rows {data.get('rows')}"
    if "current_digest" in data:
        state = "unchanged" if data.get("unchanged") else f"now {data.get('current_digest')}"
        line += f"  ({state})"
    return line


def _numbers(values: Mapping[str, Any], limit: int = 8) -> str:
    shown = [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(values.items())
    ][:limit]
    more = len(values) - len(shown)
    return ", ".join(shown) + (f", … ({more} more)" if more > 0 else "")


def _prediction_summary(data: Mapping[str, Any]) -> list[str]:
    values = dict(data.get("values") or {})
    outputs = {k: v for k, v in values.items() if k not in _MODEL_COLUMNS}
    return [
        f"row {_numbers(outputs, 6)}",
        f"model {data.get('model_name')} v{data.get('model_version')} "
        f"(run {data.get('model_run_id')}), scored at {data.get('scored_at')}",
    ]


def _run_summary(data: Mapping[str, Any]) -> list[str]:
    metrics = {k: v for k, v in (data.get("metrics") or {}).items() if not k.startswith("train_")}
    params = data.get("params") or {}
    return [
        f"{data.get('experiment_name')} / {data.get('run_name')} ({data.get('status')}), "
        f"started {data.get('start_time')}",
        f"metrics: {_numbers(metrics)}",
        f"params: estimator={params.get('estimator')}, random_state={params.get('random_state')}"
        f", training_rows={params.get('training_rows')}",
        f"provider version {data.get('provider_version')}",
    ]


def _code_summary(data: Mapping[str, Any]) -> list[str]:
    lines = [f"{data.get('dag_id')} / {data.get('run_id')} / {data.get('task_id')}"]
    if data.get("dag_version_id"):
        lines.append(
            f"DAG version {data['dag_version_id']} (Airflow {data.get('airflow_version')})"
        )
    if data.get("bundle_name"):
        lines.append(f"DAG bundle {data['bundle_name']} version {data.get('bundle_version')}")
    if data.get("dag_file"):
        lines.append(f"{data.get('dag_file')} (sha256 {_short(data.get('dag_file_digest'))})")
    lines.append(f"provider version {data.get('provider_version')}")
    return lines


def _features_summary(data: Mapping[str, Any]) -> list[str]:
    refs = data.get("feature_refs") or []
    lines = [f"service {data.get('feature_service')}, {len(refs)} feature(s)"]
    for view in data.get("feature_views") or []:
        lines.append(
            f"view {view.get('name')}: ttl {view.get('ttl_seconds')} s, entities "
            f"{view.get('entities')}, source {view.get('source')}, updated "
            f"{view.get('last_updated')}, definition {view.get('definition_digest')}"
        )
    return lines


def _partition_lines(data: Mapping[str, Any]) -> list[str]:
    lines = []
    for item in data.get("partitions") or []:
        validation = item.get("validation") or {}
        state = ""
        if "unchanged" in item:
            state = " unchanged" if item["unchanged"] else f" now {item.get('current_digest')}"
        lines.append(
            f"{item.get('day')} ({item.get('role')}): digest {item.get('digest')}{state}; "
            f"validation {validation.get('status', 'not recorded')} "
            f"{validation.get('report_uri') or ''}".rstrip()
        )
    return lines


def _summary(link: Link) -> list[str]:
    """The readable lines of a link (the JSON has everything)."""
    data = link.data
    if not data:
        return []
    name = link.name
    if name == "prediction":
        return _prediction_summary(data)
    if name == "model_version":
        line = (
            f"{data.get('name')}/{data.get('version')}: run {data.get('run_id')}, created "
            f"{data.get('created_at')}, aliases now {data.get('current_aliases')}"
        )
        if "run_id_matches_prediction" in data:
            line += f"; run id matches the prediction: {data['run_id_matches_prediction']}"
        return [line]
    if name == "alias":
        held = ", ".join(data.get("held") or []) or "no alias"
        return [
            f"held {held} at {data.get('at') or 'now'} ({len(data.get('events') or [])} events)"
        ]
    if name == "training_run":
        return _run_summary(data)
    if name == "code":
        return _code_summary(data)
    if name in ("training_data", "evaluation_data", "validation_data"):
        return [_dataset_line(data)]
    if name == "entity_data":
        return [f"{role}: {_dataset_line(ref)}" for role, ref in data.items()]
    if name == "label_window":
        return [
            f"as of {data.get('as_of')}: {data.get('start')} .. {data.get('end')} (train "
            f"{data.get('train_days')}, evaluation {data.get('eval_days')})",
            f"labels {data.get('labels_uri')}, features {data.get('features_uri')}",
        ]
    if name == "features":
        return _features_summary(data)
    if name == "source_partitions":
        return _partition_lines(data)
    if name == "trigger":
        reasons = "; ".join(data.get("reasons") or []) or "none recorded"
        return [f"{data.get('kind')} (run type {data.get('run_type')}): {reasons}"]
    return [f"{k}: {_short(v, 80)}" for k, v in data.items() if not isinstance(v, (dict, list))]


_STATUS_COLOURS = {
    "found": "#1b7f3b",
    "missing": "#8a6d00",
    "changed": "#b3261e",
    "gone": "#b3261e",
}


def render_trace_html(trace: Trace, *, heading: str | None = None) -> str:
    """A self-contained HTML ``<section>`` of the trace: one table row per link (status, what,
    where it was read from), the full JSON in a collapsed block."""
    esc = html.escape
    rows = []
    for link in trace.links:
        lines = _summary(link) + [f"note: {n}" for n in link.notes]
        colour = _STATUS_COLOURS.get(link.status, "#444")
        rows.append(
            "<tr>"
            f'<td style="color:{colour};font-weight:bold">{esc(link.status)}</td>'
            f"<td>{esc(link.name.replace('_', ' '))}</td>"
            f"<td>{'<br>'.join(esc(line) for line in lines)}</td>"
            f"<td><code>{esc(link.source or '')}</code></td>"
            "</tr>"
        )
    title = esc(heading or _title(trace.query))
    summary = []
    if trace.missing:
        summary.append(f"missing: {', '.join(trace.missing)}")
    if trace.changed:
        summary.append(f"changed since training: {', '.join(trace.changed)}")
    return (
        '<section class="lineage-trace">'
        f"<h3>{title}</h3>"
        + (f"<p>{esc('; '.join(summary))}</p>" if summary else "")
        + '<table border="1" cellspacing="0" cellpadding="4" style="border-collapse:collapse">'
        "<tr><th>status</th><th>link</th><th>what</th><th>read from</th></tr>"
        + "".join(rows)
        + "</table>"
        + f"<details><summary>JSON</summary><pre>{esc(trace.to_json())}</pre></details>"
        + "</section>"
    )


def champion_traces_html(
    model_name: str,
    client: MlflowClient,
    *,
    alias: str = "champion",
    verify: bool = True,
    conn_id: str | None = None,
) -> str:
    """An HTML section with the trace of every version that held ``alias`` of ``model_name``,
    in the order they received it (by the recorded alias history), each traced as of the
    moment it received the alias."""
    from mlops_provider.core.registry.history import alias_history

    events = [e for e in alias_history(client, model_name, alias) if e.version]
    parts = [f'<section class="lineage-traces"><h2>Lineage of each {html.escape(alias)}</h2>']
    if not events:
        parts.append(f"<p>No version of {html.escape(model_name)} has held @{alias}.</p>")
    for event in events:
        heading = (
            f"{model_name} v{event.version}: @{alias} from {event.at} ({event.event}, "
            f"replacing {event.replaced or 'none'})"
        )
        try:
            found = trace_model_version(
                client,
                f"{model_name}/{event.version}",
                at=event.at_ms,
                verify=verify,
                conn_id=conn_id,
            )
        except TraceError as err:
            parts.append(f"<h3>{html.escape(heading)}</h3><p>{html.escape(str(err))}</p>")
            continue
        parts.append(render_trace_html(found, heading=heading))
    parts.append("</section>")
    return "".join(parts)
