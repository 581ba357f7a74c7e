"""What the service serves: loaded models (:class:`ModelSlot`), the immutable
:class:`Deployment` (primary, canary, shadow) and the :class:`ModelManager` that loads, swaps
and polls.

A reload loads the new model completely first, then replaces the one ``Deployment`` reference
(a single attribute assignment): a request reads that reference once and finishes on the models
it started with; the old models are closed after a grace period. A failed load keeps the old
deployment.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.serving.payload import ServingError

if TYPE_CHECKING:
    from mlops_provider.core.mlflow_target import MlflowTarget
    from mlops_provider.core.models import ModelVersion
    from mlops_provider.core.scoring.model import LoadedModel
    from mlops_provider.serving.features import OnlineFeatures
    from mlops_provider.serving.settings import ServingSettings

log = logging.getLogger(__name__)

__all__ = ["Deployment", "ModelManager", "ModelSlot", "Variant"]

#: Seconds an old model stays open after a swap (requests that started on it finish first).
CLOSE_GRACE_SECONDS = 30.0


@dataclass(eq=False)
class ModelSlot:
    """One loaded model version and what serving it needs.

    :param model: the loaded model (core :class:`~mlops_provider.core.scoring.model.LoadedModel`).
    :param predictor: core's batch :class:`~mlops_provider.core.scoring.batch.Predictor`.
    :param entity_columns: the id columns the training run recorded (echoed in answers).
    :param feature_refs: the Feast references the training run recorded.
    :param online: the online lookup of this model (``None``: no feature repo configured).
    :param batch_checks: micro-batches still checked against per-request predictions (the
        model thread's own state: ``0`` proven, ``-1`` batching off for this model).
    """

    model: LoadedModel
    predictor: Any
    entity_columns: list[str]
    feature_refs: list[str]
    online: OnlineFeatures | None = None
    batch_checks: int = 20
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def version(self) -> ModelVersion:
        """The concrete model version."""
        return self.model.resolved

    def identity(self) -> dict[str, Any]:
        """``{name, version, run_id, alias}`` as answers carry it."""
        v = self.model.resolved
        return {"name": v.name, "version": v.version, "run_id": v.run_id, "alias": v.alias}

    def close(self) -> None:
        """Release the model's files (idempotent)."""
        self._stack.close()


@dataclass(frozen=True)
class Variant:
    """A model beside the primary: ``canary`` (answers a ``share`` of requests) or
    ``shadow`` (predicts every request, never answers)."""

    slot: ModelSlot
    share: float = 0.0


@dataclass(frozen=True)
class Deployment:
    """The models served at one moment (immutable; replaced as a whole on reload).

    :param primary: answers every request not routed to the canary.
    :param canary: answers ``canary.share`` of requests.
    :param shadow: predicts beside the primary; its rows are only logged.
    :param pinned: a concrete version was asked for (the alias poll leaves it alone).
    """

    primary: ModelSlot
    canary: Variant | None = None
    shadow: Variant | None = None
    pinned: bool = False

    def slots(self) -> list[tuple[str, ModelSlot]]:
        """``(variant, slot)`` for every model served."""
        out = [("primary", self.primary)]
        if self.canary is not None:
            out.append(("canary", self.canary.slot))
        if self.shadow is not None:
            out.append(("shadow", self.shadow.slot))
        return out

    def describe(self) -> dict[str, Any]:
        """The model part of ``/readyz``: ``model``, ``canary``, ``shadow``."""
        return {
            "model": self.primary.identity(),
            "canary": None
            if self.canary is None
            else {"version": self.canary.slot.version.version, "share": self.canary.share},
            "shadow": None
            if self.shadow is None
            else {"version": self.shadow.slot.version.version},
        }


class ModelManager:
    """Loads models, holds the current :class:`Deployment`, reloads and polls the alias.

    :param settings: the service settings.
    :param feature_store: a Feast ``FeatureStore`` (``None``: rows only).
    :param on_missing: called with a feature name for every missing online value.
    :param on_swap: called with the new deployment after each swap (metrics).
    """

    def __init__(
        self,
        settings: ServingSettings,
        *,
        feature_store: Any = None,
        on_missing: Callable[[str], None] | None = None,
        on_swap: Callable[[Deployment], None] | None = None,
    ) -> None:
        self.settings = settings
        self.feature_store = feature_store
        self.on_missing = on_missing
        self.on_swap = on_swap
        self.deployment: Deployment | None = None
        self._reload_lock = threading.Lock()
        self._target: MlflowTarget | None = None
        self._client: Any = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._timers: list[threading.Timer] = []

    # ------------------------------------------------------------------ MLflow
    @property
    def target(self) -> MlflowTarget:
        if self._target is None:
            self._target = self.settings.mlflow_target()
        return self._target

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlops_provider.core.mlflow_target import make_client

            self._client = make_client(self.target)
        return self._client

    def resolve(self, uri: str) -> ModelVersion:
        """The concrete version of ``uri``.

        :raises ModelUriError: a malformed URI; :raises ModelNotFoundError: unknown version.
        """
        from mlops_provider.core.models import resolve

        return resolve(self.client, uri)

    def load(self, resolved: ModelVersion) -> ModelSlot:
        """Download and load ``resolved``; the files stay open until the slot is closed."""
        from mlops_provider.core.models import training_record
        from mlops_provider.core.scoring.batch import Predictor
        from mlops_provider.core.scoring.model import open_model
        from mlops_provider.serving.features import OnlineFeatures, feature_refs_of_run

        stack = contextlib.ExitStack()
        try:
            model = stack.enter_context(open_model(resolved, self.target))
            record = training_record(self.client, resolved.run_id)
            tags = dict(self.client.get_run(resolved.run_id).data.tags) if resolved.run_id else {}
            refs = feature_refs_of_run(tags)
            online = None
            if self.feature_store is not None:
                online = OnlineFeatures.for_model(
                    self.feature_store,
                    refs,
                    [c.name for c in model.inputs],
                    record.entity_columns,
                    override=self.settings.feature_refs,
                    on_missing=self.on_missing,
                )
            entity = list(
                self.settings.entity_columns
                or record.entity_columns
                or (online.entity_columns if online else [])
            )
            return ModelSlot(model, Predictor(model), entity, refs, online, _stack=stack)
        except BaseException:
            stack.close()
            raise

    # ------------------------------------------------------------------ swapping
    def _swap(self, new: Deployment) -> None:
        old = self.deployment
        self.deployment = new  # the one reference requests read
        if self.on_swap is not None:
            self.on_swap(new)
        if old is None:
            return
        keep = {id(slot) for _, slot in new.slots()}
        retired = [slot for _, slot in old.slots() if id(slot) not in keep]
        if retired:
            timer = threading.Timer(CLOSE_GRACE_SECONDS, _close_all, args=(retired,))
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def _slot_for(self, resolved: ModelVersion, current: Deployment | None) -> ModelSlot:
        """A loaded slot of ``resolved``: reused when already served, else loaded."""
        for _, slot in current.slots() if current is not None else []:
            if slot.version.uri == resolved.uri and slot.version.alias == resolved.alias:
                return slot
        return self.load(resolved)

    def start(self) -> Deployment:
        """Resolve the requested model once, load it and serve it."""
        with self._reload_lock:
            resolved = self.resolve(self.settings.requested_uri)
            deployment = Deployment(self.load(resolved), pinned=self.settings.pinned)
            self._swap(deployment)
            return deployment

    def reload(
        self,
        *,
        version: str | None = None,
        canary: Any = ...,
        shadow: Any = ...,
    ) -> Deployment:
        """Load what is asked for, then swap; on failure the current deployment stays.

        :param version: pin the primary to this version (``None``: re-resolve the requested
            URI, unless only ``canary``/``shadow`` are changed).
        :param canary: ``{"version": "6", "share": 0.1}``, ``None`` to clear, ``...`` unchanged.
        :param shadow: ``{"version": "6"}``, ``None`` to clear, ``...`` unchanged.
        :raises ServingError: 409 a version that cannot be resolved or loaded (named).
        """
        with self._reload_lock:
            current = self.deployment
            try:
                new = self._build(current, version, canary, shadow)
            except ServingError:
                raise
            except Exception as err:  # resolution and loading errors: keep what is served
                raise ServingError(
                    409,
                    "reload_failed",
                    f"reload failed, still serving {_served(current)}: {type(err).__name__}: {err}",
                ) from err
            self._swap(new)
            return new

    def _build(
        self, current: Deployment | None, version: str | None, canary: Any, shadow: Any
    ) -> Deployment:
        name = self._model_name(current)
        only_variants = version is None and (canary is not ... or shadow is not ...)
        if current is not None and only_variants:
            primary, pinned = current.primary, current.pinned
        elif version is not None:
            primary, pinned = (
                self._slot_for(self.resolve(f"models:/{name}/{version}"), current),
                True,
            )
        else:
            uri = self.settings.requested_uri
            primary, pinned = self._slot_for(self.resolve(uri), current), self.settings.pinned
        new_canary = current.canary if current is not None and canary is ... else None
        if canary is not ... and canary is not None:
            slot = self._slot_for(self.resolve(f"models:/{name}/{canary['version']}"), current)
            new_canary = Variant(slot, float(canary.get("share", 0.1)))
        new_shadow = current.shadow if current is not None and shadow is ... else None
        if shadow is not ... and shadow is not None:
            new_shadow = Variant(
                self._slot_for(self.resolve(f"models:/{name}/{shadow['version']}"), current)
            )
        return Deployment(primary, new_canary, new_shadow, pinned)

    def _model_name(self, current: Deployment | None) -> str:
        if current is not None and current.primary.version.name:
            return current.primary.version.name
        return self.settings.model_name

    # ------------------------------------------------------------------ alias poll
    def poll_once(self) -> bool:
        """Re-resolve the alias and reload when it moved (never when pinned); whether it did.

        :raises Exception: resolution or loading errors (the deployment is kept).
        """
        current = self.deployment
        if current is None:
            self.start()
            return True
        if current.pinned or self.settings.pinned:
            return False
        resolved = self.resolve(self.settings.requested_uri)
        if resolved.uri == current.primary.version.uri:
            return False
        with self._reload_lock:
            latest = self.deployment
            if latest is not None and latest.pinned:
                return False
            new = Deployment(
                self._slot_for(resolved, latest),
                latest.canary if latest else None,
                latest.shadow if latest else None,
                False,
            )
            self._swap(new)
        log.info("alias %s moved: now serving %s", self.settings.alias, resolved.describe())
        return True

    def start_polling(
        self, on_result: Callable[[bool, Exception | None], None] | None = None
    ) -> None:
        """Poll every ``alias_poll_seconds`` in a daemon thread (nothing when 0)."""
        seconds = self.settings.alias_poll_seconds
        if seconds <= 0 or self._poller is not None:
            return

        def loop() -> None:
            while not self._stop.wait(seconds):
                try:
                    moved = self.poll_once()
                    if moved and on_result is not None:
                        on_result(True, None)
                except Exception as err:  # keep serving; try again next time
                    log.error(
                        "alias poll failed (still serving %s): %s", _served(self.deployment), err
                    )
                    if on_result is not None:
                        on_result(False, err)

        self._poller = threading.Thread(target=loop, name="mlops-serving-alias-poll", daemon=True)
        self._poller.start()

    def close(self) -> None:
        """Stop polling and close every model."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        for timer in self._timers:
            timer.cancel()
        current, self.deployment = self.deployment, None
        seen: set[int] = set()
        for _, slot in current.slots() if current is not None else []:
            if id(slot) not in seen:
                seen.add(id(slot))
                slot.close()


def _close_all(slots: Sequence[ModelSlot]) -> None:
    for slot in slots:
        slot.close()


def _served(deployment: Deployment | None) -> str:
    if deployment is None:
        return "nothing"
    v = deployment.primary.version
    return f"{v.name} version {v.version}"


def check_variant_body(name: str, value: Any, *, share: bool) -> Any:
    """Check the ``canary``/``shadow`` entry of a reload body (``None`` clears).

    :raises ServingError: 400 naming the field.
    """
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("version"), (str, int))
        or isinstance(value.get("version"), bool)
    ):
        raise ServingError(
            400, "bad_request", f"'{name}' must be null or an object with a 'version'"
        )
    out: dict[str, Any] = {"version": str(value["version"])}
    if share:
        raw = value.get("share", 0.1)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw <= 1:
            raise ServingError(
                400, "bad_request", f"'{name}.share' must be a number in (0, 1], got {raw!r}"
            )
        out["share"] = float(raw)
    return out


def variants_of(deployment: Deployment) -> Sequence[tuple[str, ModelVersion]]:
    """``(variant, ModelVersion)`` of every model served (for ``mlops_serving_model_info``)."""
    return [(variant, slot.version) for variant, slot in deployment.slots()]
