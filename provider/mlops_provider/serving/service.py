"""The service's state and request logic, independent of the web framework: the models
(:class:`~mlops_provider.serving.deployment.ModelManager`), Feast, metrics, prediction log.
:mod:`mlops_provider.serving.app` maps HTTP onto it."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from mlops_provider.serving.deployment import (
    Deployment,
    ModelManager,
    ModelSlot,
    check_variant_body,
    variants_of,
)
from mlops_provider.serving.payload import (
    PredictRequest,
    ServingError,
    canary_hit,
    check_entities,
    columns_from_rows,
    feed_signature,
    frame_from_columns,
)
from mlops_provider.serving.settings import ServingSettings

log = logging.getLogger(__name__)

__all__ = ["Prediction", "ServingState"]


class Prediction:
    """The answer of one prediction call (what the response and the log are built from)."""

    __slots__ = ("echo", "features", "outputs", "rows", "slot")

    def __init__(
        self,
        slot: ModelSlot,
        echo: dict[str, list[Any]],
        features: dict[str, list[Any]],
        outputs: dict[str, list[Any]],
    ) -> None:
        self.slot = slot
        self.echo = echo
        self.features = features
        self.outputs = outputs
        self.rows = len(next(iter(outputs.values()), []))

    def items(self) -> list[dict[str, Any]]:
        """One ``{entity..., prediction, probability...}`` object per row."""
        columns = [*self.echo.items(), *self.outputs.items()]
        return [{name: values[i] for name, values in columns} for i in range(self.rows)]


class ServingState:
    """Everything one service instance holds.

    :param settings: the service settings.
    :raises ServingError: (``predict``/``reload``) see :mod:`mlops_provider.serving.payload`.
    """

    def __init__(self, settings: ServingSettings) -> None:
        from mlops_provider.serving.batching import ModelThread
        from mlops_provider.serving.metrics import ServingMetrics

        self.settings = settings
        self.metrics = ServingMetrics()
        self.feature_store: Any = None
        self.feature_check: Any = None
        self.prediction_log: Any = None
        self.load_error: str | None = None
        self.manager = ModelManager(
            settings,
            on_missing=lambda name: self.metrics.missing_features.labels(name).inc(),
            on_swap=self._swapped,
        )
        self.model_thread = ModelThread(
            self.predict_batch,
            max_rows=settings.max_rows,
            model_threads=settings.model_threads,
            batching=settings.micro_batching,
        )

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Open Feast and the prediction log, load the model (a failure leaves the service
        not ready; the alias poll retries) and start polling."""
        from mlops_provider.serving.features import FeatureStoreCheck, open_feature_store

        s = self.settings
        if s.feature_repo:
            self.feature_store = open_feature_store(s.feature_repo, s.feature_store_overrides)
            self.manager.feature_store = self.feature_store
            self.feature_check = FeatureStoreCheck(self._probe_features, s.readiness_cache_seconds)
        if s.prediction_log_uri:
            from mlops_provider.serving.prediction_log import PredictionLog

            self.prediction_log = PredictionLog(
                s.prediction_log_uri,
                flush_rows=s.log_flush_rows,
                flush_seconds=s.log_flush_seconds,
                conn_id=s.aws_conn_id,
                on_error=lambda err: self.metrics.errors.labels(
                    "prediction_log", "log_flush"
                ).inc(),
            )
        try:
            deployment = self.manager.start()
            v = deployment.primary.version
            log.info(
                "serving %s version %s (run %s, from %s)",
                v.name,
                v.version,
                v.run_id,
                v.requested_uri,
            )
        except Exception as err:  # not ready; the poll (or a reload) tries again
            self.load_error = f"{type(err).__name__}: {err}"
            log.error("could not load %s: %s", s.requested_uri, self.load_error)
        self.manager.start_polling(self._polled)

    def close(self) -> None:
        """Stop polling, flush the prediction log, close the models."""
        self.model_thread.close()
        self.manager.close()
        if self.prediction_log is not None:
            self.prediction_log.close()

    def _swapped(self, deployment: Deployment) -> None:
        self.load_error = None
        self.metrics.served(variants_of(deployment))

    def _polled(self, ok: bool, err: Exception | None) -> None:
        self.metrics.reloads.labels("ok" if ok else "failed").inc()

    def _probe_features(self) -> None:
        deployment = self.manager.deployment
        online = deployment.primary.online if deployment is not None else None
        if online is None:
            self.feature_store.list_feature_views()
        else:
            online.probe()

    # ------------------------------------------------------------------ readiness
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, /readyz body)``."""
        deployment = self.manager.deployment
        body: dict[str, Any] = {"ready": True}
        if deployment is None:
            body.update(model=None, canary=None, shadow=None)
        else:
            body.update(deployment.describe())
        reasons = []
        if deployment is None:
            reasons.append(f"model not loaded ({self.load_error or 'starting'})")
        if self.feature_check is None:
            body["feature_store"] = "not configured"
        else:
            ok, message = self.feature_check.state()
            body["feature_store"] = "ok" if ok else "unreachable"
            if not ok:
                reasons.append(message)
        if reasons:
            body.update(ready=False, reason="; ".join(reasons))
        return not reasons, body

    # ------------------------------------------------------------------ predict
    def route(self, request_id: str | None) -> tuple[Deployment, str, ModelSlot]:
        """The deployment read once for the request, the variant and the model answering.

        :raises ServingError: 503 when no model is loaded.
        """
        deployment = self.manager.deployment
        if deployment is None:
            raise ServingError(
                503, "not_ready", f"no model loaded ({self.load_error or 'starting'})"
            )
        canary = deployment.canary
        if canary is not None and canary_hit(canary.share, request_id, random.random()):
            return deployment, "canary", canary.slot
        return deployment, "primary", deployment.primary

    def predict(self, slot: ModelSlot, request: PredictRequest) -> Prediction:
        """Check the input, look features up (entities), predict (one vectorised call).

        :raises ServingError: 422/404/400 for the input, 500 ``model_error`` when the model
            fails.
        """
        features, echo = self._features(slot, request)
        return Prediction(slot, echo, features, self._run_model(slot, features))

    def predict_batch(
        self, slot: ModelSlot, requests: Sequence[PredictRequest]
    ) -> list[Prediction | ServingError]:
        """:meth:`predict` of several requests with one model call for all of them (the
        model thread's micro-batches): one result per request, a request's own error in its
        place, each answer exactly the one :meth:`predict` gives (see :meth:`_joined`)."""
        if len(requests) == 1:
            try:
                return [self.predict(slot, requests[0])]
            except ServingError as err:
                return [err]
        results: list[Prediction | ServingError | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[tuple[int, dict[str, list[Any]], Any]]] = {}
        for i, request in enumerate(requests):
            try:
                features, echo = self._features(slot, request)
            except ServingError as err:
                results[i] = err
                continue
            key = feed_signature(features, slot.model.inputs) or ("alone", i)
            groups.setdefault(key, []).append((i, features, echo))
        for group in groups.values():
            sizes = [len(requests[i].items) for i, _, _ in group]
            outputs = self._joined(slot, [f for _, f, _ in group], sizes)
            for (i, features, echo), own in zip(group, outputs):
                results[i] = (
                    own if isinstance(own, ServingError) else Prediction(slot, echo, features, own)
                )
        return [r for r in results if r is not None]

    def _joined(
        self, slot: ModelSlot, parts: list[dict[str, list[Any]]], sizes: list[int]
    ) -> list[dict[str, list[Any]] | ServingError]:
        """The model's outputs for each part, from one call on the joined columns.

        Rows are predicted independently by most models, but a linear model's matrix product
        may round the last bit differently for another number of rows (the BLAS kernel
        changes). The first ``slot.batch_checks`` joined calls of a model are compared with
        per-part calls: any difference turns batching off for that model, and the per-part
        outputs answer. When the joined call fails, every part is predicted alone (only the
        failing ones fail).
        """
        joined: dict[str, list[Any]] | None = None
        if len(parts) > 1 and slot.batch_checks >= 0:
            merged = {name: [v for f in parts for v in f[name]] for name in parts[0]}
            try:
                joined = self._run_model(slot, merged)
            except ServingError:
                joined = None
        split: list[dict[str, list[Any]]] = []
        start = 0
        for rows in sizes:
            if joined is not None:
                split.append({k: v[start : start + rows] for k, v in joined.items()})
            start += rows
        if joined is not None and slot.batch_checks == 0:
            return list(split)
        alone: list[dict[str, list[Any]] | ServingError] = []
        for features in parts:
            try:
                alone.append(self._run_model(slot, features))
            except ServingError as err:
                alone.append(err)
        if joined is not None:
            if alone == split:
                slot.batch_checks -= 1
            else:
                slot.batch_checks = -1
                log.warning(
                    "%s: predictions of joined requests differ from per-request ones (last "
                    "bits of a matrix product); micro-batching is off for this model",
                    slot.version.describe(),
                )
        return alone

    def _features(
        self, slot: ModelSlot, request: PredictRequest
    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        if request.mode == "rows":
            return columns_from_rows(request.items, slot.model.inputs, echo=slot.entity_columns)
        return self._lookup(slot, request.items)

    def _run_model(self, slot: ModelSlot, features: dict[str, list[Any]]) -> dict[str, list[Any]]:
        model = slot.model
        frame = frame_from_columns(features, model.inputs)
        try:
            arrays = slot.predictor(frame)
        except Exception as err:  # the model's own failure on this input
            raise ServingError(
                500,
                "model_error",
                f"{model.resolved.describe()} failed: {type(err).__name__}: {err}",
            ) from err
        names = [f.name for f in slot.predictor.fields()]
        return {name: array.to_pylist() for name, array in zip(names, arrays)}

    def _lookup(
        self, slot: ModelSlot, entities: list[dict[str, Any]]
    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        online = slot.online
        if online is None:
            raise ServingError(
                400,
                "bad_request",
                "'entities' requests need a feature store: start the service with a feature repo "
                "(--feature-repo / MLOPS_SERVING_FEATURE_REPO), or send 'rows'",
            )
        check_entities(entities, online.entity_columns)
        started = time.perf_counter()
        try:
            looked = online.lookup(entities)
        finally:
            self.metrics.feature_lookup.observe(time.perf_counter() - started)
        rows = [{name: values[i] for name, values in looked.items()} for i in range(len(entities))]
        features, _ = columns_from_rows(rows, slot.model.inputs, mode="entities")
        echo = {
            k: [e[k] for e in entities]
            for k in dict.fromkeys([*online.entity_columns, *slot.entity_columns])
            if all(k in e for e in entities)
        }
        return features, echo

    def record(
        self, prediction: Prediction, variant: str, request_id: str, scored_at: datetime
    ) -> None:
        """Count the prediction and log it (sampled)."""
        slot = prediction.slot
        version = slot.version
        probabilities = prediction.outputs.get("probability")
        labels = (
            prediction.outputs["prediction"]
            if slot.model.classes is not None
            else ["value"] * prediction.rows
        )
        self.metrics.predicted(version, variant, labels, probabilities)
        plog = self.prediction_log
        if plog is None or random.random() >= self.settings.log_sample_rate:
            return
        from mlops_provider.serving.prediction_log import LoggedCall

        plog.add(
            LoggedCall(
                prediction.echo,
                prediction.features,
                prediction.outputs,
                version.name,
                version.version,
                version.run_id,
                scored_at,
                variant,
                request_id,
            )
        )

    async def shadow(
        self, slot: ModelSlot, request: PredictRequest, request_id: str, scored_at: datetime
    ) -> None:
        """Predict with the shadow model (in the model thread) and log its rows (variant
        ``shadow``); never raises."""
        try:
            prediction = await self.model_thread.predict(slot, request)
            self.record(prediction, "shadow", request_id, scored_at)
        except ServingError as err:
            self.metrics.errors.labels("/predict", f"shadow_{err.kind}").inc()
            log.warning(
                "shadow %s failed on request %s: %s",
                slot.version.describe(),
                request_id,
                err.detail,
            )
        except Exception as err:  # the shadow never affects the answer
            self.metrics.errors.labels("/predict", "shadow_model_error").inc()
            log.warning(
                "shadow %s failed on request %s: %s", slot.version.describe(), request_id, err
            )

    # ------------------------------------------------------------------ reload
    def reload(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a ``/admin/reload`` body; the ``/readyz`` body afterwards.

        :raises ServingError: 400 bad body, 409 failed load (the old deployment stays).
        """
        unknown = sorted(set(body) - {"version", "canary", "shadow"})
        if unknown:
            raise ServingError(
                400,
                "bad_request",
                f"unknown reload field(s) {unknown}: expected version, canary, shadow",
            )
        version = body.get("version")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, (str, int))
        ):
            raise ServingError(400, "bad_request", f"'version' must be a string, got {version!r}")
        canary = (
            check_variant_body("canary", body["canary"], share=True) if "canary" in body else ...
        )
        shadow = (
            check_variant_body("shadow", body["shadow"], share=False) if "shadow" in body else ...
        )
        try:
            self.manager.reload(
                version=None if version is None else str(version), canary=canary, shadow=shadow
            )
        except ServingError:
            self.metrics.reloads.labels("failed").inc()
            raise
        self.metrics.reloads.labels("ok").inc()
        return self.readiness()[1]


def now_utc() -> datetime:
    """The request time."""
    return datetime.now(timezone.utc)


def new_request_id() -> str:
    """A request id for callers that sent none."""
    return uuid.uuid4().hex
