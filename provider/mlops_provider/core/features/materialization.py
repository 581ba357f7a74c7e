"""Materialize a window of feature views into the online store, chunk by chunk, counting what
Feast reads and writes."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from mlops_provider.core import io
from mlops_provider.core.errors import InputError
from mlops_provider.core.features.common import (
    ENTITY_TIMESTAMP_COLUMN,
    FeatureRequestError,
    quiet_offline_store,
)
from mlops_provider.core.logs import captured_output
from mlops_provider.core.results import make_result
from mlops_provider.core.times import iso, to_utc, utcnow

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

log = logging.getLogger(__name__)

__all__ = ["materialization_window", "materialize"]

#: What to do about a run whose data interval is a point (quoted in the error).
_POINT_INTERVAL_FIX = (
    'pass start= and end= (e.g. start="{{ macros.ds_add(ds, -1) }}", end="{{ ds }}"), or '
    "schedule the DAG with a timetable whose runs cover an interval, e.g. "
    'schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC") (from airflow.sdk)'
)


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


def _window(
    start: datetime | date | str, end: datetime | date | str, now: datetime | None
) -> tuple[datetime, datetime, datetime]:
    """``(start, end, now)`` in UTC, refusing an end in the future and an empty window."""
    start_dt, end_dt = to_utc(start, what="start"), to_utc(end, what="end")
    now_dt = to_utc(now, what="now") if now is not None else utcnow()
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
    return start_dt, end_dt, now_dt


def materialization_window(
    start: Any,
    end: Any,
    interval_start: datetime | None,
    interval_end: datetime | None,
) -> tuple[datetime, datetime]:
    """The window a materialization task loads: ``start`` / ``end`` as given (a datetime, a
    date or an ISO text; ``None`` or ``""``: not given), else the run's data interval.

    Airflow 3 gives a manual run, and a run of a cron schedule (its default
    ``CronTriggerTimetable``), a *point* interval (``data_interval_start ==
    data_interval_end``), so the default window of such a run is empty: refused here, before
    anything is materialized, with the fix. An end in the future is refused by
    :func:`materialize`.

    :returns: ``(start, end)`` in UTC.
    :raises FeatureRequestError: no window (no data interval and no ``start`` / ``end``), an
        empty default window (names the run's interval and the fix), an empty window with one
        bound given, or a time that cannot be read.
    """
    given_start, given_end = start not in (None, ""), end not in (None, "")
    start = start if given_start else interval_start
    end = end if given_end else interval_end
    if start is None or end is None:
        raise FeatureRequestError(
            "Feast materialization needs a window: the run has no data interval, so pass "
            "start= and end="
        )
    try:
        start_dt, end_dt = to_utc(start, what="start"), to_utc(end, what="end")
    except InputError as err:
        raise FeatureRequestError(str(err)) from err
    if start_dt < end_dt or (given_start and given_end):
        return start_dt, end_dt  # an empty window of given bounds: materialize() refuses it
    interval = f"[{iso(interval_start)}, {iso(interval_end)}]"
    if not given_start and not given_end:
        raise FeatureRequestError(
            f"empty window: start and end default to the run's data interval {interval}, "
            "which is a point (data_interval_start == data_interval_end: a manual run, or a "
            f"cron schedule of Airflow 3, gives one); {_POINT_INTERVAL_FIX}"
        )
    raise FeatureRequestError(
        f"empty window: start {start_dt.isoformat()}"
        f"{'' if given_start else ' (the data interval start)'} is not before end "
        f"{end_dt.isoformat()}{'' if given_end else ' (the data interval end)'}; the run's "
        f"data interval is {interval}: pass both start= and end="
    )


def _unbounded_ttl(selected: Sequence[FeatureView]) -> list[str]:
    unbounded = sorted(v.name for v in selected if not v.ttl or v.ttl.total_seconds() == 0)
    if unbounded:
        log.warning(
            "Feature view(s) %s have ttl=0: their values never expire, so point-in-time "
            "joins look back without limit and online reads serve arbitrarily old values",
            unbounded,
        )
    return unbounded


def _restore_newer(
    store: FeatureStore,
    names: list[str],
    end: datetime,
    newest: datetime | None,
    now: datetime,
    step: timedelta,
    counters: Mapping[str, _SourceCounter],
) -> dict[str, Any] | None:
    """Replay ``[end, newest]`` when the window ended before what was already materialized
    and the online store overwrites blindly; what was replayed, or ``None``."""
    if newest is None or newest <= end or _keeps_newest(store):
        return None
    replay_end = min(newest, now)
    log.warning(
        "Window ends %s, before the already materialized end %s: replaying [%s, %s] so "
        "newer values win again in the %s online store",
        end.isoformat(),
        newest.isoformat(),
        end.isoformat(),
        replay_end.isoformat(),
        store.config.online_store.type,
    )
    replay_windows = _chunks(end, replay_end, step)
    _run_chunks(store, names, replay_windows, counters, label="replay")
    return {"start": end.isoformat(), "end": replay_end.isoformat(), "chunks": len(replay_windows)}


def _reasons(unbounded: list[str], replayed: Mapping[str, Any] | None) -> list[str]:
    reasons = []
    if unbounded:
        reasons.append(f"feature view(s) {unbounded} have ttl=0: their values never expire")
    if replayed:
        reasons.append(
            f"the window ended before what was already materialized: [{replayed['start']}, "
            f"{replayed['end']}] was replayed so newer values win again online"
        )
    return reasons


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
    :returns: a result (docs/results.md) with status ``materialized``, ``rows`` = source rows
        read (``source_rows``), ``reasons`` naming ttl=0 views and a replay; then
        ``project``, ``views``, ``window`` (``start``, ``end``), ``chunks``, ``chunk_seconds``,
        ``rows_written``, ``source_rows``, ``rows_by_view``, ``unbounded_ttl_views``,
        ``replayed``, ``online_store``.
    :raises FeatureRequestError: end in the future, empty window, unknown/offline views,
        no published data.
    """
    start_dt, end_dt, now_dt = _window(start, end, now)
    step = _as_timedelta(chunk)
    selected = _select_views(store, views)
    names = [v.name for v in selected]
    unbounded = _unbounded_ttl(selected)
    ends = [to_utc(v.most_recent_end_time) for v in selected if v.most_recent_end_time]
    counters = {v.name: _SourceCounter(v, conn_id) for v in selected}

    windows = _chunks(start_dt, end_dt, step)
    totals = _run_chunks(store, names, windows, counters, label="materialize")
    newest = max(ends, default=None) if restore_newer else None
    replayed = _restore_newer(store, names, end_dt, newest, now_dt, step, counters)
    return make_result(
        status="materialized",
        passed=True,
        reasons=_reasons(unbounded, replayed),
        rows=totals["source_rows"],
        project=store.project,
        views=names,
        window={"start": start_dt.isoformat(), "end": end_dt.isoformat()},
        chunks=len(windows),
        chunk_seconds=step.total_seconds(),
        rows_written=totals["rows_written"],
        source_rows=totals["source_rows"],
        rows_by_view=totals["by_view"],
        unbounded_ttl_views=unbounded,
        replayed=replayed,
        online_store=str(store.config.online_store.type),
    )


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
        # its banner and progress bars; dask's chatter
        with captured_output(log, "feast materialize"), quiet_offline_store():
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
