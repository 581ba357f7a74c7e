"""The model thread: every prediction of the service runs here, concurrent requests of one
model as one vectorised call (micro-batching).

A request that finds the model thread idle is predicted at once (no timer, no added latency).
Requests that arrive while it is busy queue up; when it is free it takes everything queued (up
to ``max_rows`` rows) and predicts each model's share with one call, then splits the outputs back
per request. The per-call cost of a scikit-learn pipeline (input checks of the
ColumnTransformer and its transformers: about 2.5 ms for the demo's, whatever the row count)
is then paid once per batch instead of once per request.

The thread's native pools (OpenMP, BLAS) are limited to ``model_threads`` (default 1): a model
that parallelises one small call over every core (HistGradientBoosting's OpenMP predict) waits
at its barrier for a core that the event loop or another process holds, and single-row
latency jumps from milliseconds to hundreds of milliseconds on a busy machine.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_provider.serving.deployment import ModelSlot
    from mlops_provider.serving.payload import PredictRequest

__all__ = ["ModelThread"]

#: ``(slot, requests) -> one result per request``: a prediction or the request's own error.
BatchCall = Callable[["ModelSlot", Sequence["PredictRequest"]], list[Any]]


class ModelThread:
    """Runs predictions in one dedicated thread, batching concurrent requests.

    :param call: predicts a batch of requests of one model; returns one result per request,
        an exception instance for a request that failed.
    :param max_rows: most rows in one batch (a larger request is predicted alone).
    :param model_threads: native threads (OpenMP, BLAS) of one model call; ``0`` leaves the
        libraries' defaults.
    :param batching: ``False`` predicts every request on its own (same thread).
    """

    def __init__(
        self, call: BatchCall, *, max_rows: int, model_threads: int = 1, batching: bool = True
    ) -> None:
        self.call = call
        self.max_rows = max_rows
        self.model_threads = model_threads
        self.batching = batching
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mlops-model")
        self._queue: list[tuple[ModelSlot, PredictRequest, asyncio.Future[Any]]] = []
        self._drain_task: asyncio.Task[None] | None = None
        # models whose native libraries were limited in the model thread (a new model may load
        # a library the limits have not seen yet)
        self._limited: weakref.WeakValueDictionary[int, ModelSlot] = weakref.WeakValueDictionary()

    async def predict(self, slot: ModelSlot, request: PredictRequest) -> Any:
        """The prediction of ``request`` by ``slot`` (raises the request's own error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((slot, request, future))
        if self._drain_task is None:
            self._drain_task = loop.create_task(self._drain())
        return await future

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` in the model thread (after the batch in progress)."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Stop the thread once the work submitted is done."""
        self._executor.shutdown(wait=True)

    def _take(self) -> list[tuple[ModelSlot, PredictRequest, asyncio.Future[Any]]]:
        rows = 0
        taken = 0
        for _, request, _ in self._queue:
            rows += len(request.items)
            if taken and (rows > self.max_rows or not self.batching):
                break
            taken += 1
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                groups: dict[int, tuple[ModelSlot, list[Any]]] = {}
                for slot, request, future in self._take():
                    groups.setdefault(id(slot), (slot, []))[1].append((request, future))
                for slot, items in groups.values():
                    requests = [request for request, _ in items]
                    try:
                        results = await loop.run_in_executor(
                            self._executor, self._call, slot, requests
                        )
                    except Exception as err:  # the batch call itself failed: every request
                        results = [err] * len(items)
                    for (_, future), result in zip(items, results):
                        if future.done():  # the client went away
                            continue
                        if isinstance(result, BaseException):
                            future.set_exception(result)
                        else:
                            future.set_result(result)
        finally:
            self._drain_task = None

    def _call(self, slot: ModelSlot, requests: Sequence[PredictRequest]) -> list[Any]:
        if self.model_threads > 0 and self._limited.get(id(slot)) is not slot:
            from threadpoolctl import threadpool_limits

            threadpool_limits(self.model_threads)  # this thread's OpenMP, the process's BLAS
            self._limited[id(slot)] = slot
        return self.call(slot, requests)
