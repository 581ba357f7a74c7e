"""The recorded inputs of a training run, read again: located by URI and digest, compared, and
the training set rebuilt through Feast.

- :func:`locate_dataset`: the content a recorded dataset reference (URI + digest) names, if it
  can still be read: the current content when its digest is the recorded one, else an older
  version kept by the data lake (``io.resolve_version(uri, digest)``).
- :func:`check_dataset`: one recorded dataset against what is there now (:class:`InputCheck`).
- :func:`view_definitions` / :func:`definition_changes`: feature-view definitions as the
  registry holds them now, and what differs from the recorded ones.
- :func:`rebuild_training_set`: the point-in-time training set built again from the recorded
  entity data and features, its digest compared with the recorded training set's.

Used by :func:`~mlops_provider.core.governance.reproduce.reproduce`.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.core.governance.record import DatasetRef

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore

    from mlops_provider.core.governance.record import TrainingLineage

__all__ = [
    "InputCheck",
    "Located",
    "RebuildCheck",
    "check_dataset",
    "definition_changes",
    "as_written",
    "locate_dataset",
    "rebuild_training_set",
    "view_definitions",
    "VIEW_FIELDS",
]

log = logging.getLogger(__name__)


@dataclass
class Located:
    """A recorded dataset as found now.

    :param table: the content with the recorded digest, or None when it cannot be read.
    :param uri: where that content was read.
    :param current: the content at the recorded URI now (None: missing or unreadable).
    :param current_digest: its digest.
    :param error: why the URI could not be read.
    """

    table: pa.Table | None
    uri: str | None
    current: pa.Table | None
    current_digest: str | None
    error: str | None = None


def _older_version(uri: str, digest: str, conn_id: str | None) -> tuple[pa.Table, str] | None:
    """An earlier version of ``uri`` with content ``digest`` kept by the data lake
    (``io.resolve_version``, docs/versioning.md); None when there is none."""
    from mlops_provider.core import io

    try:
        version_uri = io.resolve_version(uri, digest, conn_id=conn_id)
    except Exception as err:  # no such version (retention removed it, or never committed)
        log.info("no version %s of %s: %s", digest, uri, err)
        return None
    if not version_uri:
        return None
    table = io.read_table(str(version_uri), conn_id=conn_id)
    if io.table_digest(table) != digest:
        log.warning("version %s of %s has another digest; not used", version_uri, uri)
        return None
    return table, str(version_uri)


def locate_dataset(uri: str, digest: str | None, *, conn_id: str | None = None) -> Located:
    """The content a recorded reference names: the current content when its digest is
    ``digest`` (or no digest was recorded), else an older version with that digest if the data
    lake keeps one.

    This is the one place that finds a dataset by URI + digest.
    """
    from mlops_provider.core import io

    current, current_digest, error = None, None, None
    try:
        current = io.read_table(uri, conn_id=conn_id)
        current_digest = io.table_digest(current)
    except io.DatasetError as err:
        error = str(err)
    if current is not None and (digest is None or current_digest == digest):
        return Located(current, uri, current, current_digest)
    older = _older_version(uri, digest, conn_id) if digest else None
    if older is not None:
        return Located(older[0], older[1], current, current_digest, error)
    return Located(None, None, current, current_digest, error)


@dataclass
class InputCheck:
    """One recorded input against what is there now.

    :param role: what the input was for (``training set``, ``entity data (training)``,
        ``source partition 2026-01-04`` ...).
    :param status: ``same``, ``changed`` (another digest), ``missing`` (cannot be read) or
        ``unrecorded`` (no digest was recorded: nothing to compare).
    :param readable_version: where the recorded content can still be read (an older version),
        when it is not the current content.
    """

    role: str
    uri: str
    status: str
    recorded_digest: str | None = None
    current_digest: str | None = None
    recorded_rows: int | None = None
    current_rows: int | None = None
    readable_version: str | None = None
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.status in ("changed", "missing")

    def describe(self) -> str:
        if self.status == "same":
            return f"{self.role} {self.uri}: unchanged (digest {self.recorded_digest})"
        if self.status == "unrecorded":
            return f"{self.role} {self.uri}: no digest recorded, not compared"
        if self.status == "missing":
            return f"{self.role} {self.uri} cannot be read now ({self.note})"
        rows = (
            f", rows {self.recorded_rows} -> {self.current_rows}"
            if self.recorded_rows != self.current_rows
            else f", {self.current_rows} rows"
        )
        kept = (
            f"; the recorded version is at {self.readable_version}" if self.readable_version else ""
        )
        return (
            f"{self.role} {self.uri} changed: digest {self.recorded_digest} -> "
            f"{self.current_digest}{rows}{kept}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed, "description": self.describe()}


def check_dataset(
    role: str, ref: DatasetRef, *, conn_id: str | None = None
) -> tuple[InputCheck, Located]:
    """Compare a recorded dataset with its content now; also returns what was read."""
    located = locate_dataset(ref.uri, ref.digest, conn_id=conn_id)
    rows = None if located.current is None else located.current.num_rows
    check = InputCheck(
        role,
        ref.uri,
        "unrecorded",
        recorded_digest=ref.digest,
        current_digest=located.current_digest,
        recorded_rows=ref.rows,
        current_rows=rows,
    )
    if located.current is None:
        check.status, check.note = "missing", located.error or "not found"
    elif ref.digest is not None:
        check.status = "same" if located.current_digest == ref.digest else "changed"
    if check.changed and located.table is not None:
        check.readable_version = located.uri
    return check, located


def check_partitions(
    partitions: Sequence[Mapping[str, Any]], *, conn_id: str | None = None
) -> list[InputCheck]:
    """The recorded source partitions (``uri``, ``day``, ``role``, ``digest``, ``rows``)
    against now."""
    checks = []
    for part in partitions:
        uri = part.get("uri")
        if not uri:
            continue
        ref = DatasetRef(str(uri), part.get("digest"), part.get("rows"))
        day, used_for = part.get("day"), part.get("role")
        role = " ".join(
            p for p in ("source partition", day, f"({used_for})" if used_for else None) if p
        )
        checks.append(check_dataset(role, ref, conn_id=conn_id)[0])
    return checks


def as_written(table: pa.Table) -> tuple[pa.Table, str]:
    """``table`` written as parquet and read back, and its digest: what a training that reads
    the written set sees and records."""
    from mlops_provider.core import io

    with tempfile.TemporaryDirectory(prefix="mlops-rebuild-") as tmp:
        path = str(Path(tmp) / "set.parquet")
        io.write_table(table, path)
        read = io.read_table(path)
    return read, io.table_digest(read)


# --------------------------------------------------------------------------- feature views


#: The fields of a recorded feature view that say what it computes (registry timestamps and
#: other bookkeeping are not compared).
VIEW_FIELDS = ("definition", "source", "ttl_seconds", "entities", "features")


def _without_meta(value: Any) -> Any:
    """A definition without its ``meta`` entries (registry timestamps a re-apply changes)."""
    if isinstance(value, Mapping):
        return {k: _without_meta(v) for k, v in value.items() if k != "meta"}
    if isinstance(value, list):
        return [_without_meta(v) for v in value]
    return value


def view_definitions(
    store: FeatureStore, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The feature-view definitions the registry holds now: ``name``, ``definition`` (the
    view's spec as a dict, protobuf ``MessageToDict``), ``source`` (the batch source's path),
    ``ttl_seconds``, ``entities``, ``features`` (names), as the training pipeline records
    them."""
    from google.protobuf.json_format import MessageToDict

    from mlops_provider.core.features.registry import feature_views

    views = feature_views(store)
    out = []
    for name in names if names is not None else sorted(views):
        view = views.get(name)
        if view is None:
            continue
        source = getattr(view, "batch_source", None)
        ttl = getattr(view, "ttl", None)
        out.append(
            {
                "name": name,
                "definition": MessageToDict(view.to_proto().spec),
                "source": getattr(source, "path", None) or getattr(source, "name", None),
                "ttl_seconds": None if ttl is None else int(ttl.total_seconds()),
                "entities": [str(e) for e in getattr(view, "entities", []) or []],
                "features": [f.name for f in view.features],
            }
        )
    return out


def _diff(recorded: Any, current: Any, path: str, out: list[str]) -> None:
    """Paths where ``current`` differs from ``recorded`` (dicts compared key by key)."""
    if isinstance(recorded, Mapping) and isinstance(current, Mapping):
        for key in sorted(set(recorded) | set(current), key=str):
            _diff(recorded.get(key), current.get(key), f"{path}.{key}" if path else str(key), out)
    elif recorded != current:
        out.append(f"{path}: {_short(recorded)} -> {_short(current)}")


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def definition_changes(recorded: Sequence[Mapping[str, Any]], store: FeatureStore) -> list[str]:
    """What differs between the recorded feature-view definitions and the registry's current
    ones: one line per view, naming the fields that changed (only the fields the record holds
    are compared)."""
    current = {
        d["name"]: d for d in view_definitions(store, [str(r.get("name")) for r in recorded])
    }
    changes = []
    for entry in recorded:
        name = str(entry.get("name"))
        now = current.get(name)
        if now is None:
            changes.append(f"feature view {name} is no longer in the registry")
            continue
        diffs: list[str] = []
        for key in VIEW_FIELDS:
            if key in entry:
                _diff(_without_meta(entry[key]), _without_meta(now[key]), key, diffs)
        if diffs:
            changes.append(f"feature view {name} changed: " + "; ".join(diffs[:8]))
    return changes


# --------------------------------------------------------------------------- rebuild


@dataclass
class RebuildCheck:
    """The training set built again through Feast from the recorded entity data.

    :param status: ``reproduced`` (same digest as the recorded training set), ``differs``,
        ``skipped`` (nothing to rebuild from, or not asked) or ``failed``.
    :param causes: what explains a difference (changed entity data, feature views, feature
        service, source partitions), or what differs in the content when no input did.
    :param changed_features: the feature-side inputs that are not what was recorded (feature
        views whose definition differs, a feature service resolving to other features).
    """

    status: str
    recorded_digest: str | None = None
    digest: str | None = None
    rows: int | None = None
    entity_data: str | None = None
    features: list[str] = field(default_factory=list)
    feature_service: str | None = None
    causes: list[str] = field(default_factory=list)
    changed_features: list[str] = field(default_factory=list)
    note: str = ""
    table: Any = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        source = (
            f"feature service {self.feature_service}"
            if self.feature_service
            else (f"{len(self.features)} feature reference(s)")
        )
        if self.status == "reproduced":
            note = f" ({self.note})" if self.note else ""
            return (
                f"training set rebuilt from {self.entity_data} with {source}: {self.rows} rows, "
                f"digest {self.digest} = recorded{note}"
            )
        if self.status == "differs":
            why = "; ".join(self.causes) or "no recorded input changed"
            return (
                f"training set rebuilt from {self.entity_data} with {source}: digest "
                f"{self.digest} != recorded {self.recorded_digest} ({why})"
            )
        if self.status == "failed":
            why = f" ({'; '.join(self.causes)})" if self.causes else ""
            return f"training set could not be rebuilt: {self.note}{why}"
        return f"training set not rebuilt: {self.note}"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "table"}
        return {**out, "description": self.describe()}


def _content_differences(rebuilt: pa.Table, recorded: pa.Table | None) -> list[str]:
    """How the rebuilt set differs from the recorded one: rows, columns, differing values."""
    if recorded is None:
        return ["the recorded training set cannot be read to compare the content"]
    if rebuilt.num_rows != recorded.num_rows:
        return [f"rows: recorded {recorded.num_rows}, rebuilt {rebuilt.num_rows}"]
    if rebuilt.column_names != recorded.column_names:
        return [f"columns: recorded {recorded.column_names}, rebuilt {rebuilt.column_names}"]
    out = []
    for name in rebuilt.column_names:
        a, b = rebuilt.column(name), recorded.column(name)
        if a.type != b.type:
            out.append(f"column {name}: type {b.type} -> {a.type}")
            continue
        different = sum(1 for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True) if x != y)
        if different:
            out.append(f"column {name}: {different} of {rebuilt.num_rows} values differ")
    return out or ["same values, different layout (schema or types)"]


def _feature_causes(
    lineage: TrainingLineage, store: FeatureStore, refs: Sequence[str] | None
) -> list[str]:
    causes = definition_changes(lineage.feature_views, store) if lineage.feature_views else []
    if refs is not None and lineage.feature_refs and list(refs) != list(lineage.feature_refs):
        what = (
            f"feature service {lineage.feature_service}" if lineage.feature_service else "features"
        )
        causes.append(f"{what} now resolves to {list(refs)}, recorded {list(lineage.feature_refs)}")
    return causes


def rebuild_training_set(
    lineage: TrainingLineage,
    store: FeatureStore,
    entities: pa.Table,
    *,
    recorded_set: pa.Table | None,
    input_causes: Sequence[str] = (),
) -> RebuildCheck:
    """Build the training set again from ``entities`` (the recorded entity data) with the
    recorded feature service (or references), point in time, and compare its digest with the
    recorded training set's.

    :param recorded_set: the recorded training set (to say what differs in the content).
    :param input_causes: changed inputs already found (entity data, source partitions).
    """
    from mlops_provider.core.features.common import ENTITY_TIMESTAMP_COLUMN
    from mlops_provider.core.features.registry import resolve_feature_refs
    from mlops_provider.core.features.training_set import build_training_set

    target = lineage.config.get("target")
    service = lineage.feature_service or None
    features = None if service else list(lineage.feature_refs)
    timestamp = str(lineage.label_window.get("timestamp_column") or ENTITY_TIMESTAMP_COLUMN)
    check = RebuildCheck(
        "failed",
        recorded_digest=lineage.training_data.digest,
        entity_data=lineage.entity_data["training"].uri,
        features=list(lineage.feature_refs),
        feature_service=service,
    )
    try:
        refs, _ = resolve_feature_refs(store, features, service)
        table = build_training_set(
            store,
            entities,
            features,
            service,
            label_columns=[str(target)] if target else None,
            timestamp_column=timestamp,
        )
    except Exception as err:  # a changed registry or entity data may make it impossible
        check.note = f"{type(err).__name__}: {err}"
        with contextlib.suppress(Exception):  # the registry itself may be what broke
            check.changed_features = _feature_causes(lineage, store, None)
        check.causes = [*input_causes, *check.changed_features]
        return check
    check.table, check.digest = as_written(table)
    check.rows = table.num_rows
    check.changed_features = _feature_causes(lineage, store, refs)
    if check.digest == check.recorded_digest:
        check.status = "reproduced"
        if check.changed_features:  # e.g. a new description: the set is the same all the same
            check.note = "changed since the training, without effect on the training set: " + (
                "; ".join(check.changed_features)
            )
            check.changed_features = []
        return check
    check.status = "differs"
    check.causes = [*input_causes, *check.changed_features]
    if not check.causes:
        check.causes = _content_differences(table, recorded_set)
    return check
