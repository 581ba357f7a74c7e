"""Feature store work behind the Feast operators: publish, apply, materialize, training sets.

Everything here is Airflow-free and takes a Feast ``FeatureStore`` (see
:func:`mlops_provider.core.feast_config.make_feature_store`):

- :func:`publish_partition` copies a validated raw partition into the feature source
  (``<features_root>/dt=YYYY-MM-DD/``), atomically; :func:`published_days` lists what is there.
- :func:`apply_repo` applies a feature repo's Python definitions the way ``feast apply`` does
  (Feast's own ``parse_repo`` and ``apply_total_with_repo_instance``).
- :func:`materialize` loads a window into the online store in chunks, refusing future ends.
- :func:`build_training_set` / :func:`create_training_dataset` run point-in-time joins with
  ``get_historical_features`` and return exactly one row per entity row.
- :func:`freshness` reads how far a feature view has been materialized.

Errors in what the caller asked for raise :class:`FeatureRequestError`; a missing or broken
repo raises :class:`~mlops_provider.core.feast_config.FeastRepoError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from mlops_provider.core import config, io
from mlops_provider.core.errors import InputError
from mlops_provider.core.feast_config import FeastRepoError

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore, FeatureView

log = logging.getLogger(__name__)

__all__ = [
    "ENTITY_TIMESTAMP_COLUMN",
    "FEATURES_ROOT_ENV",
    "LAKE_URI_ENV",
    "S3_ENDPOINT_ENV",
    "FeastRepoError",
    "FeatureRequestError",
    "apply_repo",
    "build_training_set",
    "check_feature_refs",
    "create_training_dataset",
    "feature_source_uri",
    "features_root",
    "freshness",
    "materialize",
    "publish_partition",
    "published_days",
    "resolve_feature_refs",
    "s3_endpoint_override",
    "to_utc",
]

#: Base URI of the published feature sources (default ``<data_root>/features``).
FEATURES_ROOT_ENV = "MLOPS_FEATURES_ROOT"
#: Base URI of the data lake shared with the reference DAGs (features live in ``features/``).
LAKE_URI_ENV = "MLOPS_LAKE_URI"
#: S3-compatible endpoint (e.g. MinIO) for ``s3://`` feature sources.
S3_ENDPOINT_ENV = "MLOPS_FEATURES_S3_ENDPOINT"
#: Name of the entity data timestamp column Feast joins on.
ENTITY_TIMESTAMP_COLUMN = "event_timestamp"

_PARTITION_KEY = "dt"
_ROW_ID = "__entity_row"
_DUMMY_ENTITY = "__dummy"
_REPO_LOCK = threading.Lock()


class FeatureRequestError(InputError):
    """A request names something the feature store does not have, or is otherwise invalid."""


# ------------------------------------------------------------------------------------------
# Locations
# ------------------------------------------------------------------------------------------
def features_root() -> str:
    """Base URI of the published feature sources: ``$MLOPS_FEATURES_ROOT``, else
    ``$MLOPS_LAKE_URI/features`` (the data lake the reference DAGs write to), else
    ``<data_root>/features`` (embedded default)."""
    if os.environ.get(FEATURES_ROOT_ENV):
        return os.environ[FEATURES_ROOT_ENV]
    if os.environ.get(LAKE_URI_ENV):
        return io.join_uri(os.environ[LAKE_URI_ENV], "features")
    return str(config.data_root() / "features")


def feature_source_uri(name: str) -> str:
    """URI of one published feature source, e.g. ``<features_root>/customer_activity``."""
    return io.join_uri(features_root(), name)


def s3_endpoint_override() -> str | None:
    """Endpoint for ``s3://`` feature sources on S3-compatible storage, else ``None``.

    ``$MLOPS_FEATURES_S3_ENDPOINT``, then ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``;
    only used when the features root is on ``s3://``.
    """
    if not features_root().startswith("s3://"):
        return None
    for name in (S3_ENDPOINT_ENV, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def to_utc(value: datetime | date | str, *, what: str = "time") -> datetime:
    """A timezone-aware UTC datetime from a datetime, a date (midnight UTC) or an ISO string.

    Naive datetimes are taken as UTC. ``Z`` suffixes are accepted.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise FeatureRequestError(
                f"{what} {value!r} is not an ISO date or datetime (e.g. 2026-01-01T00:00:00Z)"
            ) from None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        aware = aware.astimezone(timezone.utc)
        # A plain datetime: pendulum's DateTime (Airflow's context) drops a stdlib tzinfo in
        # arithmetic, which would mix naive and aware times later.
        return datetime(*aware.timetuple()[:6], aware.microsecond, tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    # pendulum DateTime is a datetime; anything else is a caller error.
    raise FeatureRequestError(f"{what} must be a datetime, date or ISO string, got {value!r}")


# ------------------------------------------------------------------------------------------
# Publishing the feature source
# ------------------------------------------------------------------------------------------
def publish_partition(
    source_uri: str,
    features_root: str,
    day: date | datetime | str,
    *,
    columns: Sequence[str] | None = None,
    entity_columns: Sequence[str] = ("customer_id",),
    timestamp_column: str = ENTITY_TIMESTAMP_COLUMN,
    conn_id: str | None = None,
    batch_size: int = 65_536,
) -> dict[str, Any]:
    """Publish a validated partition as ``<features_root>/dt=<day>/`` of a feature source.

    Rows are streamed (bounded memory) into a staging directory that replaces the partition
    in one commit: a rerun of the same day replaces it, never duplicates rows. Before writing,
    the new data's schema is compared with the newest existing partition so that a type
    change (e.g. an int column that became float or string) cannot poison the source Feast
    reads as one dataset.

    :param source_uri: the validated raw partition (file or directory).
    :param features_root: the feature source directory, e.g. ``.../features/customer_activity``.
    :param day: the partition day (date, datetime or ``YYYY-MM-DD``).
    :param columns: feature columns to keep (entity and timestamp columns are always kept);
        default: every column of the source.
    :param conn_id: storage connection for remote URIs (e.g. ``aws_default``).
    :returns: ``{"uri", "day", "rows", "columns", "source", "replaced"}``.
    :raises DatasetError: the source is missing, empty of files, or lacks a required column.
    """
    day_value = to_utc(day, what="day").date()
    required = [*entity_columns, timestamp_column]
    wanted = None if columns is None else list(dict.fromkeys([*required, *columns]))
    dataset = io.open_dataset(source_uri, conn_id=conn_id)
    schema = dataset.schema
    missing = [c for c in (wanted or required) if c not in schema.names]
    if missing:
        raise io.DatasetFormatError(
            source_uri, f"missing column(s) {missing}; available: {list(schema.names)}"
        )
    selected = wanted or [n for n in schema.names if n != _PARTITION_KEY]
    ts_type = schema.field(timestamp_column).type
    if not pa.types.is_timestamp(ts_type):
        raise io.DatasetFormatError(
            source_uri, f"column {timestamp_column!r} must be a timestamp, got {ts_type}"
        )
    out_schema = pa.schema([schema.field(c) for c in selected])
    target = io.partition_uri(features_root, day_value)
    _check_compatible(features_root, out_schema, exclude=day_value, conn_id=conn_id)
    replaced = io.exists(target, conn_id=conn_id)
    progress = io.ProgressLogger(f"publish {source_uri} -> {target}", logger=log)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in io.iter_batches(
            source_uri, columns=selected, batch_size=batch_size, conn_id=conn_id
        ):
            progress.update(batch.num_rows)
            yield batch

    result = io.write_partition(
        batches(),
        target,
        schema=out_schema,
        conn_id=conn_id,
        metadata={"source": str(source_uri), "day": day_value.isoformat()},
    )
    progress.done()
    return {
        "uri": result["uri"],
        "day": day_value.isoformat(),
        "rows": int(result["rows"]),
        "columns": selected,
        "source": str(source_uri),
        "replaced": bool(replaced),
    }


def published_days(features_root: str, *, conn_id: str | None = None) -> list[date]:
    """Days with a committed ``dt=YYYY-MM-DD`` partition under ``features_root``, sorted."""
    loc = io.resolve(features_root, conn_id=conn_id)
    if not loc.fs.exists(loc.path):
        return []
    days = []
    for entry in loc.fs.ls(loc.path, detail=True):
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") != "directory" or not name.startswith(f"{_PARTITION_KEY}="):
            continue
        try:
            days.append(date.fromisoformat(name.split("=", 1)[1]))
        except ValueError:
            continue
    return sorted(days)


def _check_compatible(
    features_root: str, schema: pa.Schema, *, exclude: date, conn_id: str | None
) -> None:
    others = [d for d in published_days(features_root, conn_id=conn_id) if d != exclude]
    if not others:
        return
    reference_uri = io.partition_uri(features_root, others[-1])
    try:
        reference = io.open_dataset(reference_uri, conn_id=conn_id).schema
    except io.DatasetError:
        return  # an unreadable or empty old partition is not this partition's problem
    ref_fields = {f.name: f.type for f in reference if f.name != _PARTITION_KEY}
    new_fields = {f.name: f.type for f in schema}
    problems = []
    for name in sorted(set(ref_fields) | set(new_fields)):
        old, new = ref_fields.get(name), new_fields.get(name)
        if old is None:
            problems.append(f"{name}: new column ({new})")
        elif new is None:
            problems.append(f"{name}: column missing (was {old})")
        elif old != new and not (pa.types.is_timestamp(old) and pa.types.is_timestamp(new)):
            problems.append(f"{name}: {new} (was {old})")
    if problems:
        raise io.DatasetFormatError(
            reference_uri.rsplit("/", 1)[0],
            "the new partition's schema differs from the published partition "
            f"{reference_uri}: {'; '.join(problems)}. Feast reads all partitions as one "
            "dataset, so the partition was not published.",
        )


# ------------------------------------------------------------------------------------------
# Apply
# ------------------------------------------------------------------------------------------
def _store_for(store_or_repo: FeatureStore | str | os.PathLike[str]) -> FeatureStore:
    from feast import FeatureStore

    if isinstance(store_or_repo, FeatureStore):
        return store_or_repo
    from mlops_provider.core.feast_config import make_feature_store

    return make_feature_store(store_or_repo)


@contextlib.contextmanager
def _definitions_importable(repo_path: Path) -> Iterator[None]:
    """Import the repo's definition files fresh, as ``feast apply`` does from the repo dir.

    Feast names each definition module by its path relative to the working directory, so
    this changes into the repo (process-wide; serialized by a lock and always restored) and
    puts the repo on ``sys.path``. The modules are dropped from ``sys.modules`` before and
    after, so every apply re-executes the definitions and picks up the current environment
    (data root, endpoints), and nothing stale stays behind.
    """
    from feast.repo_operations import get_repo_files, py_path_to_module

    with _REPO_LOCK:
        old_cwd = os.getcwd()
        old_bytecode = sys.dont_write_bytecode
        os.chdir(repo_path)
        sys.path.insert(0, str(repo_path))
        sys.dont_write_bytecode = True  # the repo may be read-only; keep it clean anyway
        modules: list[str] = []
        try:
            modules = [py_path_to_module(path) for path in get_repo_files(repo_path)]
            for name in modules:
                sys.modules.pop(name, None)
            yield
        finally:
            for name in modules:
                sys.modules.pop(name, None)
            with contextlib.suppress(ValueError):
                sys.path.remove(str(repo_path))
            sys.dont_write_bytecode = old_bytecode
            os.chdir(old_cwd)


def apply_repo(store_or_repo: FeatureStore | str | os.PathLike[str]) -> dict[str, Any]:
    """Apply a feature repo's definitions to its registry and online store (``feast apply``).

    Definitions are parsed with Feast's ``parse_repo`` from every ``*.py`` file of the repo
    (honouring ``.feastignore``) and applied with ``apply_total_with_repo_instance``: objects
    missing from the repo are deleted, as with ``feast apply``. Idempotent: applying the same
    definitions twice reports ``changed: False``.

    :param store_or_repo: a ``FeatureStore`` (its ``repo_path`` holds the definitions) or a
        repo path.
    :returns: ``{"project", "repo_path", "entities", "data_sources", "feature_views",
        "on_demand_feature_views", "feature_services", "changed", "changes"}``.
    :raises FeastRepoError: no definitions, definitions that fail to import, a project name
        that does not match ``feature_store.yaml``.
    """
    from feast.project import Project
    from feast.repo_operations import apply_total_with_repo_instance, parse_repo

    store = _store_for(store_or_repo)
    repo_path = Path(store.repo_path).resolve()
    if not repo_path.is_dir():
        raise FeastRepoError(f"Feast feature repo {repo_path} does not exist")
    project = store.project
    started = time.perf_counter()
    with _definitions_importable(repo_path):
        try:
            repo = parse_repo(repo_path)
        except Exception as err:
            raise FeastRepoError(
                f"feature definitions in {repo_path} failed to import: {type(err).__name__}: {err}"
            ) from err
    if not repo.feature_views and not repo.on_demand_feature_views:
        raise FeastRepoError(
            f"Feast feature repo {repo_path} defines no feature views (no *.py definitions "
            "found); refusing to apply, as that would delete everything registered in project "
            f"{project!r}"
        )
    names = [p.name for p in repo.projects]
    if len(names) > 1:
        raise FeastRepoError(f"{repo_path} defines several projects {names}; Feast supports one")
    if names and names[0] != project:
        raise FeastRepoError(
            f"{repo_path} defines Project {names[0]!r} but feature_store.yaml says {project!r}"
        )
    if not names:
        repo.projects.append(Project(name=project, description=""))

    registry_diff, infra_diff, _ = store.plan(repo)
    changes = [
        f"{_transition(d.transition_type)} {_kind(d.feast_object_type)} {d.name}"
        for d in registry_diff.feast_object_diffs
        if _transition(d.transition_type) != "unchanged" and d.name != _DUMMY_ENTITY
    ]
    changes += [
        f"{_transition(d.transition_type)} {_kind(d.infra_object_type)} {d.name}"
        for d in infra_diff.infra_object_diffs
        if _transition(d.transition_type) != "unchanged"
    ]
    apply_total_with_repo_instance(
        store, project, store.registry, repo, skip_source_validation=False
    )
    result = {
        "project": project,
        "repo_path": str(repo_path),
        "entities": sorted(e.name for e in repo.entities if e.name != _DUMMY_ENTITY),
        "data_sources": sorted(s.name for s in repo.data_sources),
        "feature_views": sorted(v.name for v in repo.feature_views),
        "on_demand_feature_views": sorted(v.name for v in repo.on_demand_feature_views),
        "feature_services": sorted(s.name for s in repo.feature_services),
        "changed": bool(changes),
        "changes": changes,
    }
    log.info(
        "Applied Feast repo %s (project %s) in %.1f s: %s",
        repo_path,
        project,
        time.perf_counter() - started,
        "; ".join(changes) if changes else "no changes",
    )
    return result


def _transition(value: Any) -> str:
    name = getattr(value, "name", str(value))
    return str(name).lower()


def _kind(value: Any) -> str:
    return str(getattr(value, "value", value))


# ------------------------------------------------------------------------------------------
# Registry lookups
# ------------------------------------------------------------------------------------------
def _feature_views(store: FeatureStore) -> dict[str, Any]:
    views: dict[str, Any] = {v.name: v for v in store.list_feature_views()}
    with contextlib.suppress(Exception):  # registries without on-demand views support
        views.update({v.name: v for v in store.list_on_demand_feature_views()})
    return views


def _known_refs(views: Mapping[str, Any]) -> list[str]:
    return [f"{name}:{f.name}" for name, view in sorted(views.items()) for f in view.features]


def _shorten(items: Sequence[str], limit: int = 40) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def check_feature_refs(store: FeatureStore, refs: Sequence[str]) -> list[str]:
    """Validate feature references (``view:feature``) against the registry.

    :returns: the references, de-duplicated, in the given order.
    :raises FeatureRequestError: a malformed reference, an unknown feature view or feature
        (every bad reference is named, with the known ones).
    """
    if isinstance(refs, str):
        refs = [refs]
    refs = list(dict.fromkeys(str(r).strip() for r in refs))
    if not refs:
        raise FeatureRequestError("no feature references given")
    views = _feature_views(store)
    malformed = [r for r in refs if r.count(":") != 1 or not all(r.split(":"))]
    if malformed:
        raise FeatureRequestError(
            f"feature reference(s) {malformed} are not of the form '<feature_view>:<feature>'"
        )
    unknown = []
    for ref in refs:
        view_name, feature = ref.split(":")
        view = views.get(view_name)
        if view is None or feature not in {f.name for f in view.features}:
            unknown.append(ref)
    if unknown:
        known = _known_refs(views)
        hint = _shorten(known) if known else f"none (is project {store.project!r} applied?)"
        raise FeatureRequestError(
            f"feature reference(s) {unknown} do not exist in project {store.project!r}; "
            f"known: {hint}"
        )
    return refs


def _get_feature_service(store: FeatureStore, name: str) -> FeatureService:
    from feast.errors import FeatureServiceNotFoundException

    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        known = sorted(s.name for s in store.list_feature_services())
        raise FeatureRequestError(
            f"feature service {name!r} does not exist in project {store.project!r}; "
            f"known: {known or 'none'}"
        ) from None


def resolve_feature_refs(
    store: FeatureStore,
    features: Sequence[str] | None = None,
    feature_service: str | None = None,
) -> tuple[list[str], FeatureService | None]:
    """The feature references of a request: exactly one of ``features`` / ``feature_service``.

    :returns: ``(refs, service)``; ``service`` is ``None`` when ``features`` were given.
    """
    if bool(features) == bool(feature_service):
        raise FeatureRequestError(
            "give either features (e.g. ['customer_activity:tenure_months']) or a "
            f"feature_service, not {'both' if features else 'neither'}"
        )
    if features:
        return check_feature_refs(store, features), None
    assert feature_service is not None
    service = _get_feature_service(store, feature_service)
    views = _feature_views(store)
    refs = []
    for projection in service.feature_view_projections:
        fields = projection.features or getattr(views.get(projection.name), "features", [])
        refs += [f"{projection.name_to_use()}:{f.name}" for f in fields]
    return refs, service


def _get_view(store: FeatureStore, name: str, *, fresh: bool = True) -> FeatureView:
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(name, allow_registry_cache=not fresh)
    except FeatureViewNotFoundException:
        known = sorted(v.name for v in store.list_feature_views())
        raise FeatureRequestError(
            f"feature view {name!r} does not exist in project {store.project!r}; known: "
            f"{known or 'none (apply the feature repo first)'}"
        ) from None


def freshness(store: FeatureStore, view: str) -> datetime | None:
    """How far ``view`` has been materialized: the latest end of its materialization
    intervals (UTC), or ``None`` if never. Reads the registry, bypassing its cache."""
    end = _get_view(store, view, fresh=True).most_recent_end_time
    return None if end is None else to_utc(end)


# ------------------------------------------------------------------------------------------
# Materialization
# ------------------------------------------------------------------------------------------
def _chunks(start: datetime, end: datetime, chunk: timedelta) -> list[tuple[datetime, datetime]]:
    out = []
    cursor = start
    while cursor < end:
        nxt = min(cursor + chunk, end)
        out.append((cursor, nxt))
        cursor = nxt
    return out


def _as_timedelta(chunk: timedelta | float | int) -> timedelta:
    value = chunk if isinstance(chunk, timedelta) else timedelta(seconds=float(chunk))
    if value <= timedelta(0):
        raise FeatureRequestError(f"chunk must be a positive duration, got {chunk!r}")
    return value


class _SourceCounter:
    """Counts, per chunk, the source rows Feast reads and the entity keys it writes online.

    Mirrors the file offline store: rows with ``start <= timestamp <= end`` are read and the
    latest row per entity key is written, so one online write per distinct key per chunk.
    Only file sources are counted; anything else (or a read error) gives ``None``.
    """

    def __init__(self, view: FeatureView, conn_id: str | None) -> None:
        self.view = view
        self.dataset: Any = None
        self.keys = [c.name for c in view.entity_columns]
        source = view.batch_source
        self.timestamp = getattr(source, "timestamp_field", None) or ENTITY_TIMESTAMP_COLUMN
        path = getattr(source, "path", None)
        if not path or not self.keys:
            return
        try:
            self.dataset = io.open_dataset(path, conn_id=conn_id)
        except io.DatasetError as err:
            raise FeatureRequestError(
                f"feature view {view.name!r} reads {path}, which has no readable data: "
                f"{err.problem}. Publish feature partitions before materializing."
            ) from err
        except Exception as err:
            log.warning("Cannot count source rows of %s at %s: %s", view.name, path, err)

    def count(self, start: datetime, end: datetime) -> tuple[int, int] | None:
        if self.dataset is None:
            return None
        ts_type = self.dataset.schema.field(self.timestamp).type
        lo = pa.scalar(start, type=pa.timestamp("us", tz="UTC")).cast(ts_type)
        hi = pa.scalar(end, type=pa.timestamp("us", tz="UTC")).cast(ts_type)
        if getattr(ts_type, "tz", None) is None:  # naive source timestamps are UTC for Feast
            lo = pa.scalar(start.replace(tzinfo=None), type=ts_type)
            hi = pa.scalar(end.replace(tzinfo=None), type=ts_type)
        field = pc.field(self.timestamp)
        try:
            table = self.dataset.to_table(columns=self.keys, filter=(field >= lo) & (field <= hi))
        except Exception as err:
            log.warning("Cannot count source rows of %s: %s", self.view.name, err)
            self.dataset = None
            return None
        distinct = table.group_by(self.keys).aggregate([]).num_rows
        return table.num_rows, distinct


def _keeps_newest(store: FeatureStore) -> bool:
    """Whether the online store ignores writes older than what it holds (Redis does;
    SQLite overwrites unconditionally)."""
    online = store.config.online_store
    return getattr(online, "type", "") == "redis" and not getattr(online, "skip_dedup", False)


def materialize(
    store: FeatureStore,
    start: datetime | date | str,
    end: datetime | date | str,
    views: Sequence[str] | None = None,
    chunk: timedelta | float = timedelta(days=1),
    *,
    now: datetime | None = None,
    restore_newer: bool = True,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Materialize ``[start, end]`` of feature views into the online store, chunk by chunk.

    Chunks run in time order, so for every entity the newest row of the window wins. A window
    ending before what was already materialized (a backfill or a rerun of an old interval)
    would leave older values in an online store that overwrites unconditionally (SQLite);
    with ``restore_newer`` the newer span ``[end, previous end]`` is replayed afterwards, so
    reruns in any order converge to the same online state as running in order.

    Rows are counted from the source partitions (file sources only), mirroring what the file
    offline store reads: ``source_rows`` = rows with ``start <= timestamp <= end`` per chunk,
    ``rows_written`` = distinct entity keys per chunk (the online writes; a key active in two
    chunks is written twice). ``None`` when the source is not countable.

    :param views: feature view names; default: every online feature view.
    :param chunk: chunk length (timedelta or seconds); bounds memory per Feast call.
    :param now: the present, for the future check (tests); default: the clock.
    :param conn_id: storage connection used to count rows of remote sources.
    :raises FeatureRequestError: end in the future, empty window, unknown/offline views,
        no published data.
    """
    start_dt, end_dt = to_utc(start, what="start"), to_utc(end, what="end")
    now_dt = to_utc(now) if now is not None else datetime.now(timezone.utc)
    step = _as_timedelta(chunk)
    if end_dt > now_dt:
        raise FeatureRequestError(
            f"end {end_dt.isoformat()} is in the future (now {now_dt.isoformat()}): "
            "materializing it would mark the features fresh up to a time whose data does not "
            "exist yet"
        )
    if start_dt >= end_dt:
        raise FeatureRequestError(
            f"empty window: start {start_dt.isoformat()} is not before end {end_dt.isoformat()}"
        )
    selected = _select_views(store, views)
    names = [v.name for v in selected]
    unbounded = sorted(v.name for v in selected if not v.ttl or v.ttl.total_seconds() == 0)
    if unbounded:
        log.warning(
            "Feature view(s) %s have ttl=0: their values never expire, so point-in-time "
            "joins look back without limit and online reads serve arbitrarily old values",
            unbounded,
        )
    previous_end = {v.name: v.most_recent_end_time for v in selected}
    counters = {v.name: _SourceCounter(v, conn_id) for v in selected}

    windows = _chunks(start_dt, end_dt, step)
    totals = _run_chunks(store, names, windows, counters, label="materialize")
    replayed = None
    newest = max((to_utc(e) for e in previous_end.values() if e is not None), default=None)
    if restore_newer and newest is not None and newest > end_dt and not _keeps_newest(store):
        replay_end = min(newest, now_dt)
        log.warning(
            "Window ends %s, before the already materialized end %s: replaying [%s, %s] so "
            "newer values win again in the %s online store",
            end_dt.isoformat(),
            newest.isoformat(),
            end_dt.isoformat(),
            replay_end.isoformat(),
            store.config.online_store.type,
        )
        replay_windows = _chunks(end_dt, replay_end, step)
        _run_chunks(store, names, replay_windows, counters, label="replay")
        replayed = {
            "start": end_dt.isoformat(),
            "end": replay_end.isoformat(),
            "chunks": len(replay_windows),
        }
    return {
        "project": store.project,
        "views": names,
        "window": {"start": start_dt.isoformat(), "end": end_dt.isoformat()},
        "chunks": len(windows),
        "chunk_seconds": step.total_seconds(),
        "rows_written": totals["rows_written"],
        "source_rows": totals["source_rows"],
        "rows_by_view": totals["by_view"],
        "unbounded_ttl_views": unbounded,
        "replayed": replayed,
        "online_store": str(store.config.online_store.type),
    }


def _select_views(store: FeatureStore, views: Sequence[str] | None) -> list[FeatureView]:
    registered = {v.name: v for v in store.list_feature_views()}
    if isinstance(views, str):
        views = [views]
    if views:
        unknown = [n for n in views if n not in registered]
        if unknown:
            raise FeatureRequestError(
                f"feature view(s) {unknown} do not exist in project {store.project!r}; known: "
                f"{sorted(registered) or 'none (apply the feature repo first)'}"
            )
        selected = [registered[n] for n in dict.fromkeys(views)]
        offline = [v.name for v in selected if not v.online]
        if offline:
            raise FeatureRequestError(
                f"feature view(s) {offline} have online=False and cannot be materialized"
            )
        return selected
    selected = [v for v in registered.values() if v.online and getattr(v, "enabled", True)]
    if not selected:
        raise FeatureRequestError(
            f"project {store.project!r} has no online feature views to materialize "
            f"(registered: {sorted(registered) or 'none; apply the feature repo first'})"
        )
    return sorted(selected, key=lambda v: v.name)


def _run_chunks(
    store: FeatureStore,
    names: list[str],
    windows: list[tuple[datetime, datetime]],
    counters: Mapping[str, _SourceCounter],
    *,
    label: str,
) -> dict[str, Any]:
    by_view: dict[str, dict[str, int | None]] = {
        n: {"source_rows": 0, "rows_written": 0} for n in names
    }
    started = time.perf_counter()
    for index, (lo, hi) in enumerate(windows, start=1):
        chunk_started = time.perf_counter()
        counts = {n: counters[n].count(lo, hi) for n in names}
        store.materialize(start_date=lo, end_date=hi, feature_views=names)
        for name, counted in counts.items():
            entry = by_view[name]
            if counted is None or entry["source_rows"] is None:
                entry["source_rows"] = entry["rows_written"] = None
            else:
                entry["source_rows"] = int(entry["source_rows"] or 0) + counted[0]
                entry["rows_written"] = int(entry["rows_written"] or 0) + counted[1]
        elapsed = time.perf_counter() - started
        eta = elapsed / index * (len(windows) - index)
        log.info(
            "%s chunk %d/%d [%s, %s]: %s in %.1f s (elapsed %.1f s, ETA %.0f s)",
            label,
            index,
            len(windows),
            lo.isoformat(),
            hi.isoformat(),
            ", ".join(
                f"{n}: {c[0]} source rows, {c[1]} entities" if c else f"{n}: not counted"
                for n, c in counts.items()
            ),
            time.perf_counter() - chunk_started,
            elapsed,
            eta,
        )
    countable = all(v["source_rows"] is not None for v in by_view.values())
    return {
        "by_view": by_view,
        "source_rows": sum(int(v["source_rows"] or 0) for v in by_view.values())
        if countable
        else None,
        "rows_written": sum(int(v["rows_written"] or 0) for v in by_view.values())
        if countable
        else None,
    }


# ------------------------------------------------------------------------------------------
# Training sets
# ------------------------------------------------------------------------------------------
def _join_keys(store: FeatureStore, refs: Sequence[str]) -> list[str]:
    views = _feature_views(store)
    keys: list[str] = []
    for ref in refs:
        view = views.get(ref.split(":")[0])
        for column in getattr(view, "entity_columns", []) or []:
            if column.name not in keys:
                keys.append(column.name)
    return keys


def build_training_set(
    store: FeatureStore,
    entity_df: pd.DataFrame | pa.Table,
    features: Sequence[str] | None = None,
    feature_service: str | None = None,
    *,
    label_columns: Sequence[str] | None = None,
    timestamp_column: str = ENTITY_TIMESTAMP_COLUMN,
) -> pa.Table:
    """A point-in-time correct training set: every entity row with the feature values that
    were current at its timestamp (never later ones; older than the view's ttl count as
    missing).

    Feast is asked once per distinct (entity key, timestamp) and the features are joined back
    onto the entity rows, so the result has exactly one row per entity row, in the input
    order, with nulls where no feature value existed yet. (The file offline store on its own
    drops entity rows whose every candidate feature row is newer than the row, and collapses
    rows sharing a key and timestamp.)

    :param entity_df: entity keys, ``timestamp_column`` and any label/extra columns.
    :param features: feature references ``view:feature``; or
    :param feature_service: the name of a feature service.
    :param label_columns: columns that must be present in the entity data (e.g. ``churned``).
    :returns: entity columns (input order) followed by the features (reference order).
    :raises FeatureRequestError: empty entity data, missing key/timestamp/label columns,
        unknown references or service, entity columns that collide with feature names.
    """
    refs, service = resolve_feature_refs(store, features, feature_service)
    table = entity_df if isinstance(entity_df, pa.Table) else _table_from_pandas(entity_df)
    if table.num_rows == 0:
        raise FeatureRequestError("entity data has no rows")
    keys = _join_keys(store, refs)
    required = [*keys, timestamp_column, *(label_columns or [])]
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise FeatureRequestError(
            f"entity data is missing column(s) {missing} (needs entity key(s) {keys}, "
            f"timestamp {timestamp_column!r}"
            + (f", labels {list(label_columns)}" if label_columns else "")
            + f"); it has {table.column_names}"
        )
    feature_names = [r.split(":")[1] for r in refs]
    collide = [c for c in feature_names if c in table.column_names]
    if collide:
        raise FeatureRequestError(
            f"entity data column(s) {collide} have the names of requested features; drop or "
            "rename them"
        )
    ts = table.column(timestamp_column)
    if not pa.types.is_timestamp(ts.type):
        try:
            ts = pc.cast(ts, pa.timestamp("ns", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise FeatureRequestError(
                f"entity data column {timestamp_column!r} is {ts.type}, not a timestamp: {err}"
            ) from err
    ts = _utc_ns(ts)
    if ts.null_count:
        raise FeatureRequestError(
            f"entity data column {timestamp_column!r} has {ts.null_count} null timestamp(s)"
        )
    table = table.set_column(table.schema.get_field_index(timestamp_column), timestamp_column, ts)
    table = table.append_column(_ROW_ID, pa.array(range(table.num_rows), pa.int64()))

    request = table.select([*keys, timestamp_column]).group_by([*keys, timestamp_column])
    request = request.aggregate([])
    request_df = request.to_pandas()
    if timestamp_column != ENTITY_TIMESTAMP_COLUMN:
        request_df = request_df.rename(columns={timestamp_column: ENTITY_TIMESTAMP_COLUMN})
    job = store.get_historical_features(
        entity_df=request_df,
        features=service if service is not None else refs,
        full_feature_names=False,
    )
    result = job.to_arrow()
    if timestamp_column != ENTITY_TIMESTAMP_COLUMN:
        result = result.rename_columns(
            [timestamp_column if n == ENTITY_TIMESTAMP_COLUMN else n for n in result.column_names]
        )
    result = result.set_column(
        result.schema.get_field_index(timestamp_column),
        timestamp_column,
        _utc_ns(result.column(timestamp_column)),
    )
    for key in keys:
        result = result.set_column(
            result.schema.get_field_index(key),
            key,
            result.column(key).cast(table.schema.field(key).type),
        )
    result = result.select([*keys, timestamp_column, *feature_names])
    joined = table.join(result, [*keys, timestamp_column], join_type="left outer")
    joined = joined.sort_by(_ROW_ID).drop_columns([_ROW_ID])
    ordered = [c for c in table.column_names if c != _ROW_ID] + feature_names
    return joined.select(ordered)


def _table_from_pandas(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _utc_ns(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if column.type.tz is None:
        column = pc.assume_timezone(column, "UTC")
    return pc.cast(column, pa.timestamp("ns", tz="UTC"))


def create_training_dataset(
    store: FeatureStore,
    entity_data: str,
    output_uri: str,
    *,
    features: Sequence[str] | None = None,
    feature_service: str | None = None,
    label_columns: Sequence[str] | None = None,
    timestamp_column: str = ENTITY_TIMESTAMP_COLUMN,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Read entity data from a URI, build the training set and write it to ``output_uri``.

    The parquet file is written atomically (a rerun replaces it); its schema metadata records
    the feature references and the entity data URI.

    :returns: ``{"uri", "row_count", "entity_rows", "rows_without_features", "feature_refs",
        "feature_service", "columns", "digest", "entity_data", "project"}``.
    :raises FeatureRequestError: see :func:`build_training_set`.
    :raises DatasetError: the entity data is missing, unreadable or empty.
    """
    import json

    refs, _ = resolve_feature_refs(store, features, feature_service)
    try:
        entities = io.read_table(entity_data, conn_id=conn_id, require_rows=True)
    except io.DatasetEmpty as err:
        raise FeatureRequestError(f"entity data {entity_data} has no rows") from err
    table = build_training_set(
        store,
        entities,
        features,
        feature_service,
        label_columns=label_columns,
        timestamp_column=timestamp_column,
    )
    feature_names = [r.split(":")[1] for r in refs]
    all_null = None
    for name in feature_names:
        mask = pc.is_null(table.column(name))
        all_null = mask if all_null is None else pc.and_(all_null, mask)
    without = int(pc.sum(all_null).as_py() or 0) if all_null is not None else 0
    if without:
        log.warning(
            "%d of %d entity rows have no feature values at their timestamp (no feature row "
            "at or before it within the ttl)",
            without,
            table.num_rows,
        )
    digest = io.table_digest(table)
    written = io.write_table(
        table,
        output_uri,
        conn_id=conn_id,
        metadata={
            "feature_refs": json.dumps(refs),
            "feature_service": feature_service or "",
            "entity_data": str(entity_data),
            "digest": digest,
        },
    )
    return {
        "uri": written["uri"],
        "row_count": table.num_rows,
        "entity_rows": entities.num_rows,
        "rows_without_features": without,
        "feature_refs": refs,
        "feature_service": feature_service,
        "columns": table.column_names,
        "digest": digest,
        "entity_data": str(entity_data),
        "project": store.project,
    }
