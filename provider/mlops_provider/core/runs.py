"""The MLflow run ledger: find a task's run by its identity, create it once, finish it.

Every run the provider creates (training, evaluation bookkeeping, monitoring) carries the
identity of the Airflow work that made it as ``mlops.*`` tags (:class:`RunIdentity`), so a retry
or a rerun finds the run of an earlier try instead of creating a second one. Imports nothing
heavy at module level.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mlops_provider.core.times import iso, now_ms

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = [
    "CLOSED_REASON_TAG",
    "DEFAULT_STALE_AFTER",
    "OWNER_TAG",
    "TAG_PREFIX",
    "RunIdentity",
    "StaleRuns",
    "add_run_listener",
    "fail_run",
    "finish_run",
    "find_runs",
    "get_or_create_run",
    "log_results",
    "mark_failed",
    "metric_name",
    "quote",
    "remove_run_listener",
    "run_started",
    "settle_running",
    "stale_reason",
]

log = logging.getLogger(__name__)

TAG_PREFIX = "mlops."
#: The process that writes a run (``<host>p<pid>``, :func:`mlops_provider.core.processes.this_owner`).
OWNER_TAG = f"{TAG_PREFIX}owner"
#: Why a run was marked FAILED by someone else than the work that created it.
CLOSED_REASON_TAG = f"{TAG_PREFIX}closed_reason"
#: Seconds after which a RUNNING run whose writer cannot be checked (another host, no owner tag)
#: counts as abandoned: longer than any training the provider expects (6 hours).
DEFAULT_STALE_AFTER = 6 * 3600.0
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")
_BATCH = 900  # MLflow accepts at most 1000 metrics and 100 tags per log_batch call

RunListener = Callable[[str, str], None]
_RUN_LISTENERS: list[RunListener] = []


def add_run_listener(listener: RunListener) -> None:
    """Call ``listener(run_id, experiment_id)`` whenever work of this process starts logging to
    an MLflow run (created or reused), before the work is done: the Airflow layer uses it to
    show the run's link while a long task still runs. Adding the same listener twice is a
    no-op."""
    if listener not in _RUN_LISTENERS:
        _RUN_LISTENERS.append(listener)


def remove_run_listener(listener: RunListener) -> None:
    """Undo :func:`add_run_listener` (no-op for an unknown listener)."""
    if listener in _RUN_LISTENERS:
        _RUN_LISTENERS.remove(listener)


def run_started(run_id: str, experiment_id: str) -> None:
    """Tell the listeners that work now logs to ``run_id``; a failing listener is logged,
    never raised (a link must not break the work)."""
    for listener in list(_RUN_LISTENERS):
        try:
            listener(str(run_id), str(experiment_id))
        except Exception:
            log.warning("run listener %r failed for run %s", listener, run_id, exc_info=True)


@dataclass(frozen=True)
class RunIdentity:
    """What identifies a task's work: (dag_id, task_id, data interval, map_index).

    ``run_id`` (the Airflow DAG run) and ``try_number`` are recorded, and the run id is part of
    the key only when there is no data interval (a manual run without one).
    """

    dag_id: str
    task_id: str
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    map_index: int = -1
    run_id: str | None = None
    try_number: int | None = None

    @property
    def key(self) -> str:
        """``dag_id/run_id/task_id/map_index``: the same across the retries of one DAG run."""
        return f"{self.dag_id}/{self.run_id}/{self.task_id}/{self.map_index}"

    @property
    def work_key(self) -> str:
        """``dag_id/task_id/map_index/<interval start>_<interval end>``: the same for every try
        and every DAG run of one data interval (a rerun as a new DAG run included). Without a
        data interval it falls back to :attr:`key` (the DAG run is the only identity left)."""
        if self.data_interval_start is None:
            return self.key
        end = iso(self.data_interval_end) if self.data_interval_end is not None else ""
        return (
            f"{self.dag_id}/{self.task_id}/{self.map_index}/{iso(self.data_interval_start)}_{end}"
        )

    @property
    def day(self) -> str:
        """``YYYY-MM-DD`` of the interval start (empty without one)."""
        return self.data_interval_start.date().isoformat() if self.data_interval_start else ""

    def key_tags(self) -> dict[str, str]:
        """The tags a run of this work is found by."""
        tags = {
            f"{TAG_PREFIX}dag_id": self.dag_id,
            f"{TAG_PREFIX}task_id": self.task_id,
            f"{TAG_PREFIX}map_index": str(self.map_index),
        }
        if self.data_interval_start is not None:
            tags[f"{TAG_PREFIX}data_interval_start"] = str(iso(self.data_interval_start))
        if self.data_interval_end is not None:
            tags[f"{TAG_PREFIX}data_interval_end"] = str(iso(self.data_interval_end))
        if self.data_interval_start is None and self.run_id:
            tags[f"{TAG_PREFIX}airflow_run_id"] = self.run_id
        return tags

    def lineage_tags(self) -> dict[str, str]:
        """Tags naming the Airflow task instance (recorded, not searched by)."""
        tags = {
            **self.key_tags(),
            f"{TAG_PREFIX}dag_run_id": self.run_id,
            f"{TAG_PREFIX}try_number": None if self.try_number is None else str(self.try_number),
        }
        return {k: v for k, v in tags.items() if v is not None}


def quote(value: str) -> str:
    """A string literal for an MLflow search filter."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_runs(
    client: MlflowClient,
    experiment_id: str,
    tags: Mapping[str, str],
    *,
    order: Literal["newest", "oldest"] = "newest",
    active_only: bool = True,
    max_results: int = 200,
) -> list[Run]:
    """Runs of ``experiment_id`` carrying every tag in ``tags``."""
    from mlflow.entities import ViewType

    query = " and ".join(f"tags.`{k}` = {quote(v)}" for k, v in tags.items())
    direction = "DESC" if order == "newest" else "ASC"
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=query,
            run_view_type=ViewType.ACTIVE_ONLY if active_only else ViewType.ALL,
            order_by=[f"attributes.start_time {direction}"],
            max_results=max_results,
        )
    )


def get_or_create_run(
    client: MlflowClient,
    experiment_id: str,
    identity: RunIdentity,
    *,
    kind: str,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """The run of ``identity`` and ``kind`` (found by its tags), created if missing.

    Returns ``(run_id, created)``; when several match, the oldest is reused.
    """
    key = {**identity.key_tags(), f"{TAG_PREFIX}monitoring_kind": kind}
    found = find_runs(client, experiment_id, key, order="oldest", max_results=2)
    if found:
        if len(found) > 1:
            log.warning("several %s runs match %s; reusing the oldest", kind, key)
        run_id = found[0].info.run_id
        log.info("Reusing %s run %s", kind, run_id)
        run_started(run_id, experiment_id)
        return run_id, False
    all_tags = {**identity.lineage_tags(), **key, **(tags or {})}
    name = run_name or f"{kind}-{identity.dag_id}.{identity.task_id}-{identity.day}".rstrip("-")
    run = client.create_run(experiment_id, tags=all_tags, run_name=name)
    log.info("Created %s run %s (%s)", kind, run.info.run_id, name)
    run_started(run.info.run_id, experiment_id)
    return run.info.run_id, True


def metric_name(name: str) -> str:
    """An MLflow-safe metric name (unsupported characters become ``_``)."""
    return _METRIC_NAME.sub("_", name)[:250]


def log_results(
    client: MlflowClient,
    run_id: str,
    *,
    metrics: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    texts: Mapping[str, str] | None = None,
) -> None:
    """Log metrics (``None``/NaN skipped), params, tags and text artifacts in batches.

    A rerun logs the same keys again: MLflow shows the latest metric values; text artifacts are
    replaced.
    """
    from mlflow.entities import Metric, Param, RunTag

    now = now_ms()
    entries = []
    for name, value in (metrics or {}).items():
        if value is None:
            continue
        number = float(value)
        if math.isfinite(number):
            entries.append(Metric(metric_name(name), number, now, 0))
    param_entries = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
    tag_entries = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
    for start in range(0, len(entries), _BATCH):
        client.log_batch(run_id, metrics=entries[start : start + _BATCH])
    for start in range(0, max(len(param_entries), len(tag_entries)), 90):
        client.log_batch(
            run_id, params=param_entries[start : start + 90], tags=tag_entries[start : start + 90]
        )
    for artifact_file, text in (texts or {}).items():
        client.log_text(run_id, text, artifact_file)


def finish_run(client: MlflowClient, run_id: str, status: str = "FINISHED") -> None:
    """Mark a run terminated with ``status``."""
    client.set_terminated(run_id, status)


def fail_run(client: MlflowClient, run_id: str, *, why: str) -> bool:
    """Mark ``run_id`` FAILED when it is still RUNNING: the cleanup of work that failed after
    creating or reusing the run. Best effort: the store may be what failed, so an error is
    logged, never raised (the original error matters more); a run that is already terminated
    keeps its status (a rerun that failed leaves the earlier result as it was).

    :returns: whether the run was marked FAILED.
    """
    try:
        return bool(mark_failed(client, [client.get_run(run_id)], why=why))
    except Exception as err:
        log.warning("could not mark run %s FAILED (%s): %s", run_id, why, err)
        return False


def mark_failed(client: MlflowClient, runs: Sequence[Run], *, why: str) -> list[str]:
    """Mark every RUNNING run of ``runs`` FAILED (work of a crashed try), tagging it
    :data:`CLOSED_REASON_TAG` = ``why``; returns their ids."""
    failed = []
    for run in runs:
        if run.info.status == "RUNNING":
            log.warning("run %s is still RUNNING (%s): marking it FAILED", run.info.run_id, why)
            client.set_tag(run.info.run_id, CLOSED_REASON_TAG, why[:5000])
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    return failed


def stale_reason(run: Run, *, stale_after: float = DEFAULT_STALE_AFTER) -> str | None:
    """Why the RUNNING ``run`` is left over by an attempt that is gone, or None when its writer
    may still be working on it (or it is not RUNNING).

    The writer is the run's :data:`OWNER_TAG`:

    - this very process: an earlier attempt in this process has returned (stale);
    - dead on this host (:func:`~mlops_provider.core.processes.owner_alive` is False): stale;
    - alive on this host: not stale, whatever its age (a long training, or a pid reused by
      another process: the safe side);
    - unknown (another host, or no owner tag: a run of an older provider) and started more
      than ``stale_after`` seconds ago: stale; younger: not stale (it may be a concurrent
      attempt on another worker).
    """
    from mlops_provider.core.processes import owner_alive, this_owner

    if run.info.status != "RUNNING":
        return None
    owner = run.data.tags.get(OWNER_TAG, "")
    if owner and owner == this_owner():
        return f"left RUNNING by an earlier attempt in this process ({owner})"
    alive = owner_alive(owner) if owner else None
    if alive is False:
        return f"left RUNNING by an earlier attempt (owner {owner}, dead)"
    if alive is True:
        return None
    age = (now_ms() - int(run.info.start_time or 0)) / 1000.0
    if age > stale_after:
        who = f"owner {owner}, not on this host" if owner else "no owner recorded"
        return (
            f"left RUNNING by an earlier attempt ({who}, started {age / 3600:.1f} h ago, "
            f"more than {stale_after / 3600:g} h)"
        )
    return None


@dataclass
class StaleRuns:
    """What :func:`settle_running` did: the runs it closed and the RUNNING runs it left."""

    closed: list[str] = field(default_factory=list)
    active: list[Run] = field(default_factory=list)


def settle_running(
    client: MlflowClient, runs: Sequence[Run], *, stale_after: float = DEFAULT_STALE_AFTER
) -> StaleRuns:
    """Close (mark FAILED, with :data:`CLOSED_REASON_TAG`) the RUNNING runs of ``runs`` that
    :func:`stale_reason` finds abandoned; the others (a writer that may still work) are
    returned in ``active``, untouched."""
    settled = StaleRuns()
    for run in runs:
        if run.info.status != "RUNNING":
            continue
        why = stale_reason(run, stale_after=stale_after)
        if why is None:
            log.info(
                "run %s is RUNNING and its writer (%s) may still work on it: left as it is",
                run.info.run_id,
                run.data.tags.get(OWNER_TAG) or "unknown",
            )
            settled.active.append(run)
        else:
            settled.closed.extend(mark_failed(client, [run], why=why))
    return settled
