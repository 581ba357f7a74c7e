"""The ASGI app (FastAPI): ``/predict``, ``/healthz``, ``/readyz``, ``/admin/reload``, ``/metrics``.

Request bodies are read as bytes and parsed with ``json`` (no per-row pydantic models); the
model runs in the model thread (:mod:`mlops_provider.serving.batching`: concurrent requests
predicted together) so the event loop keeps accepting requests.
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mlops_provider.serving.payload import ServingError, parse_predict_body
from mlops_provider.serving.service import ServingState, new_request_id, now_utc
from mlops_provider.serving.settings import ServingSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

log = logging.getLogger(__name__)

__all__ = ["create_app"]

_JSON = "application/json"


def _json_response(body: Any, status: int = 200, background: Any = None) -> Response:
    from starlette.responses import Response

    return Response(json.dumps(body), status_code=status, media_type=_JSON, background=background)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is larger than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServingError(
            413, "too_large", f"request body of {int(declared):,} bytes exceeds {limit:,}"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServingError(413, "too_large", f"request body exceeds {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _instrumented(
    state: ServingState, route: str, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` with request counting, timing and :class:`ServingError` -> ``{"detail"}``."""
    metrics = state.metrics
    duration = metrics.duration.labels(route)

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ServingError as err:
            metrics.errors.labels(route, err.kind).inc()
            response = _json_response({"detail": err.detail}, err.status)
        except Exception as err:  # never a bare 500 without a message
            log.exception("%s failed", route)
            metrics.errors.labels(route, "internal").inc()
            response = _json_response({"detail": f"{type(err).__name__}: {err}"}, 500)
        metrics.requests.labels(route, str(response.status_code)).inc()
        duration.observe(time.perf_counter() - started)
        return response

    return endpoint


def _predict_handler(state: ServingState) -> Callable[[Request], Awaitable[Response]]:
    from starlette.background import BackgroundTask

    settings = state.settings
    clock = settings.clock or now_utc

    async def predict(request: Request) -> Response:
        body = await _read_body(request, settings.max_body_bytes)
        req = parse_predict_body(
            body, max_body_bytes=settings.max_body_bytes, max_rows=settings.max_rows
        )
        scored_at = clock()
        deployment, variant, slot = state.route(req.request_id)
        prediction = await state.model_thread.predict(slot, req)
        request_id = req.request_id or new_request_id()
        state.record(prediction, variant, request_id, scored_at)
        background = None
        if deployment.shadow is not None:
            background = BackgroundTask(
                state.shadow, deployment.shadow.slot, req, request_id, scored_at
            )
        answer = {
            "model": slot.identity(),
            "variant": variant,
            "predictions": prediction.items(),
            "request_id": request_id,
        }
        return _json_response(answer, background=background)

    return predict


def _admin_handler(state: ServingState) -> Callable[[Request], Awaitable[Response]]:
    from starlette.concurrency import run_in_threadpool

    token = state.settings.admin_token

    async def reload(request: Request) -> Response:
        if not token:
            raise ServingError(
                403,
                "forbidden",
                "reload is disabled: no admin token configured (MLOPS_SERVING_ADMIN_TOKEN)",
            )
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise ServingError(
                401, "unauthorized", "missing or wrong bearer token in the Authorization header"
            )
        raw = await _read_body(request, state.settings.max_body_bytes)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as err:
            raise ServingError(400, "bad_request", f"reload body is not valid JSON: {err}") from err
        if not isinstance(body, dict):
            raise ServingError(400, "bad_request", "reload body must be a JSON object")
        return _json_response(await run_in_threadpool(state.reload, body))

    return reload


def _simple_handlers(state: ServingState) -> dict[str, Callable[[Request], Awaitable[Response]]]:
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    async def healthz(request: Request) -> Response:
        return _json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready, body = await run_in_threadpool(state.readiness)
        return _json_response(body, 200 if ready else 503)

    async def metrics(request: Request) -> Response:
        data, content_type = state.metrics.render()
        return Response(data, media_type=content_type)

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


def create_app(
    settings: ServingSettings, *, announce: str | None = None, freeze_gc: bool = False
) -> FastAPI:
    """The service's ASGI app. Nothing is loaded until it starts (lifespan): then Feast is
    opened, the model resolved and loaded, and the alias poll started; at shutdown the
    prediction log is flushed and the models closed.

    :param settings: what to serve.
    :param announce: a URL to print ``serving <model> version <v> on <url>`` with at start.
    :param freeze_gc: after the start, move every object alive (the libraries, the model) out
        of the garbage collector's reach (``gc.freeze``), so that its full collections scan only
        what requests allocate. For a process of its own (the CLI), not for tests.
    """
    from fastapi import FastAPI

    state = ServingState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(state.start)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        if announce is not None:
            deployment = state.manager.deployment
            version = (
                deployment.primary.version.version if deployment is not None else "(not loaded)"
            )
            print(f"serving {settings.model_name} version {version} on {announce}", flush=True)
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    app = FastAPI(
        title="mlops serving", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.serving = state
    # plain Starlette routes: the handlers take the request and parse it themselves
    app.add_route("/predict", _instrumented(state, "/predict", _predict_handler(state)), ["POST"])
    reload = _instrumented(state, "/admin/reload", _admin_handler(state))
    app.add_route("/admin/reload", reload, ["POST"])
    for path, handler in _simple_handlers(state).items():
        app.add_route(path, _instrumented(state, path, handler), ["GET"])
    return app
