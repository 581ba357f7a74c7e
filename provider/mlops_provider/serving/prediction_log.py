"""The prediction log: sampled online predictions in the shape of batch predictions.

Requests add :class:`LoggedCall` records to an in-memory buffer (cheap: no Arrow, no IO on the
request path). A background thread flushes when ``flush_rows`` rows are buffered or
``flush_seconds`` passed, and :meth:`PredictionLog.close` flushes the rest. Each flush writes one
new part file per day, atomically (``core.io.write_table``):
``<uri>/dt=YYYY-MM-DD/part-<HHMMSS>-<uuid8>.parquet``. A failed flush is logged and counted,
the rows stay buffered for the next flush (up to ``max_buffered_rows``) and serving goes on.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["LoggedCall", "PredictionLog", "part_uri"]


@dataclass(frozen=True)
class LoggedCall:
    """The rows of one prediction call: entity and feature columns (as fed to the model), the
    output columns (``prediction``, ``probability``/``probability_<c>``), the model identity,
    the request time, the variant and the request id."""

    entity: Mapping[str, Sequence[Any]]
    features: Mapping[str, Sequence[Any]]
    outputs: Mapping[str, Sequence[Any]]
    model_name: str | None
    model_version: str | None
    model_run_id: str | None
    scored_at: datetime
    variant: str
    request_id: str

    @property
    def rows(self) -> int:
        first = next(iter(self.outputs.values()), ())
        return len(first)


def part_uri(base: str, when: datetime) -> str:
    """``<base>/dt=YYYY-MM-DD/part-<HHMMSS>-<uuid8>.parquet`` for a flush at ``when`` (UTC)."""
    from mlops_provider.core import io

    name = f"part-{when.strftime('%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    return io.join_uri(io.partition_uri(base, when), name)


def _table(calls: Sequence[LoggedCall]) -> Any:
    """One Arrow table of the calls' rows (schemas of different models are unified)."""
    import pyarrow as pa

    stamp = pa.timestamp("us", tz="UTC")
    tables = []
    for call in calls:
        n = call.rows
        columns: dict[str, Any] = {}
        columns.update({k: list(v) for k, v in call.entity.items()})
        columns.update({k: list(v) for k, v in call.features.items() if k not in columns})
        columns.update({k: list(v) for k, v in call.outputs.items()})
        arrays = {k: pa.array(v) for k, v in columns.items()}
        arrays["model_name"] = pa.array([call.model_name] * n, pa.string())
        arrays["model_version"] = pa.array([call.model_version] * n, pa.string())
        arrays["model_run_id"] = pa.array([call.model_run_id] * n, pa.string())
        arrays["scored_at"] = pa.array([call.scored_at] * n, stamp)
        arrays["event_timestamp"] = pa.array([call.scored_at] * n, stamp)
        arrays["variant"] = pa.array([call.variant] * n, pa.string())
        arrays["request_id"] = pa.array([call.request_id] * n, pa.string())
        tables.append(pa.table(arrays))
    return pa.concat_tables(tables, promote_options="permissive")


class PredictionLog:
    """Buffers prediction rows and writes them as parquet parts.

    :param uri: the log's base URI (``dt=`` partitions below it).
    :param flush_rows: buffered rows that trigger a flush.
    :param flush_seconds: the longest time rows wait in the buffer.
    :param conn_id: connection for ``s3://``.
    :param on_error: called with the exception of a failed flush (metrics).
    :param max_buffered_rows: rows kept for a retry after failed flushes (older are dropped).
    """

    def __init__(
        self,
        uri: str,
        *,
        flush_rows: int = 10_000,
        flush_seconds: float = 60.0,
        conn_id: str | None = None,
        on_error: Callable[[Exception], None] | None = None,
        max_buffered_rows: int | None = None,
    ) -> None:
        self.uri = uri
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.conn_id = conn_id
        self.on_error = on_error
        self.max_buffered_rows = max_buffered_rows or flush_rows * 10
        self.files: list[str] = []
        self.failures = 0
        self._buffer: list[LoggedCall] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlops-prediction-log", daemon=True)
        self._thread.start()

    def add(self, call: LoggedCall) -> None:
        """Buffer one call's rows (wakes the flusher when ``flush_rows`` are buffered)."""
        with self._lock:
            self._buffer.append(call)
            self._rows += call.rows
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    @property
    def buffered_rows(self) -> int:
        return self._rows

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds or None)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()

    def _take(self) -> list[LoggedCall]:
        with self._lock:
            calls, self._buffer, self._rows = self._buffer, [], 0
        return calls

    def _restore(self, calls: list[LoggedCall]) -> None:
        with self._lock:
            merged = calls + self._buffer
            rows = sum(c.rows for c in merged)
            while merged and rows > self.max_buffered_rows:
                rows -= merged.pop(0).rows
            self._buffer, self._rows = merged, rows

    def flush(self) -> list[str]:
        """Write the buffered rows (one part per day); the parts written. Never raises: a
        failure is logged, counted and the rows are kept for the next flush."""
        from mlops_provider.core import io, times

        with self._flush_lock:
            calls = self._take()
            if not calls:
                return []
            by_day: dict[Any, list[LoggedCall]] = {}
            for call in calls:
                by_day.setdefault(call.scored_at.date(), []).append(call)
            written: list[str] = []
            for day, day_calls in sorted(by_day.items()):
                uri = part_uri(self.uri, datetime.combine(day, times.utcnow().timetz()))
                try:
                    io.write_table(_table(day_calls), uri, conn_id=self.conn_id)
                except Exception as err:  # keep serving: report, keep the rows, retry later
                    self.failures += 1
                    log.error(
                        "prediction log flush to %s failed (%d rows kept for a retry): %s",
                        uri,
                        sum(c.rows for c in day_calls),
                        err,
                    )
                    self._restore(day_calls)
                    if self.on_error is not None:
                        self.on_error(err)
                    continue
                written.append(uri)
            self.files.extend(written)
            return written

    def close(self) -> list[str]:
        """Stop the flusher and write what is buffered."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        return self.flush()
