"""Point a running serving app at a model version, verify it, roll back when it fails.

:func:`deploy` is the continuous-delivery step after a promotion:

1. read what the service serves now (``/readyz``): the version to return to;
2. ask it to load the new version (``/admin/reload``): as the primary (``replace``), as a canary
   taking a share of the traffic, or as a shadow whose answers are logged, never returned. The
   service loads the new model before it swaps, so a model that does not load is refused and
   nothing changes;
3. wait until ``/readyz`` reports the version where it was asked;
4. watch it for a window: readiness and the ``/predict`` error rate (5xx answers, from
   ``/metrics``);
5. on any failure, reload what was served before and raise :class:`DeploymentFailed` with the
   numbers; a healthy canary is then made the primary (``promote_canary``).

A rerun for a version the service already serves as the primary does nothing (``unchanged``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from mlops_provider.core.deployment.client import (
    ReloadRefused,
    ServingClient,
    ServingUnavailable,
    Traffic,
)
from mlops_provider.core.errors import CoreError, ParameterError
from mlops_provider.core.results import make_result

log = logging.getLogger(__name__)

__all__ = ["MODES", "DeploymentFailed", "Rollout", "deploy"]

Mode = Literal["replace", "canary", "shadow"]
MODES: tuple[str, ...] = ("replace", "canary", "shadow")


class DeploymentFailed(CoreError):
    """The new version failed readiness or its error-rate check; the service was rolled back to
    what it served before (the message says to what, and the numbers)."""


def _slot(state: Mapping[str, Any], mode: str) -> str | None:
    part = state.get("model") if mode == "replace" else state.get(mode)
    if not isinstance(part, Mapping) or part.get("version") is None:
        return None
    return str(part["version"])


@dataclass
class Rollout:
    """What :func:`deploy` did; :meth:`to_result` is the operator's result.

    :param status: ``deployed`` (the primary serves the version), ``canary`` (a healthy canary,
        not promoted), ``shadow`` (a healthy shadow), ``unchanged`` (it already served it).
    """

    service_url: str
    model_name: str
    version: str
    mode: str
    status: str
    previous_version: str | None
    window: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_result(self) -> dict[str, Any]:
        """``status`` (see the class), ``passed`` True, ``model`` {name, version}; then
        ``service_url``, ``mode``, ``previous_version``, ``window`` (``seconds``,
        ``requests``, ``errors``, ``error_rate``) and ``state`` (the final ``/readyz`` body)."""
        return make_result(
            status=self.status,
            passed=True,
            reasons=self.reasons,
            model={"name": self.model_name, "version": self.version, "run_id": None, "uri": None},
            service_url=self.service_url,
            mode=self.mode,
            version=self.version,
            previous_version=self.previous_version,
            window=self.window,
            state=self.state,
        )


def _reload_payload(mode: str, version: str, canary_share: float) -> dict[str, Any]:
    if mode == "canary":
        return {"canary": {"version": version, "share": canary_share}}
    if mode == "shadow":
        return {"shadow": {"version": version}}
    return {"version": version, "canary": None, "shadow": None}


def _undo_payload(mode: str, previous: str | None) -> dict[str, Any] | None:
    if mode == "canary":
        return {"canary": None}
    if mode == "shadow":
        return {"shadow": None}
    if previous is None:
        return None
    return {"version": previous, "canary": None, "shadow": None}


class _Check:
    """Readiness and error-rate checks of a deployment in progress."""

    def __init__(
        self,
        client: ServingClient,
        mode: str,
        version: str,
        poll_seconds: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.client = client
        self.mode = mode
        self.version = version
        self.poll_seconds = poll_seconds
        self.sleep = sleep

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while True:
            try:
                ready, state = self.client.ready()
            except ServingUnavailable:
                ready = False
            if ready and _slot(state, self.mode) == self.version:
                return state
            if time.monotonic() >= deadline:
                raise DeploymentFailed(
                    f"version {self.version} was not ready as {self.mode} within {timeout:.0f} s "
                    f"(last /readyz: {state or 'no answer'})"
                )
            self.sleep(self.poll_seconds)

    def watch(self, seconds: float, max_error_rate: float, min_requests: int) -> dict[str, Any]:
        started = time.monotonic()
        before = self.client.traffic()
        while time.monotonic() - started < seconds:
            self.sleep(min(self.poll_seconds, max(0.0, seconds - (time.monotonic() - started))))
            try:
                ready, state = self.client.ready()
            except ServingUnavailable as err:
                raise DeploymentFailed(f"the service stopped answering: {err}") from err
            if not ready or _slot(state, self.mode) != self.version:
                raise DeploymentFailed(
                    f"version {self.version} lost readiness during the verification window: "
                    f"/readyz {state}"
                )
        seen: Traffic = self.client.traffic().since(before)
        window = {
            "seconds": round(time.monotonic() - started, 1),
            "requests": int(seen.requests),
            "errors": int(seen.errors),
            "error_rate": None if seen.error_rate is None else round(seen.error_rate, 6),
            "max_error_rate": max_error_rate,
        }
        if seen.requests < min_requests:
            raise DeploymentFailed(
                f"only {int(seen.requests)} /predict requests in the {window['seconds']} s "
                f"verification window, fewer than min_requests={min_requests}: cannot judge "
                "the new version"
            )
        if seen.error_rate is not None and seen.error_rate > max_error_rate:
            raise DeploymentFailed(
                f"error rate {seen.error_rate:.2%} ({int(seen.errors)} of {int(seen.requests)} "
                f"/predict requests answered 5xx) over the limit {max_error_rate:.2%} in the "
                f"{window['seconds']} s verification window"
            )
        return window


def _check(mode: str, canary_share: float, max_error_rate: float) -> None:
    if mode not in MODES:
        raise ParameterError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    if not 0.0 < canary_share < 1.0:
        raise ParameterError("canary_share", f"{canary_share} is not a share between 0 and 1")
    if not 0.0 <= max_error_rate <= 1.0:
        raise ParameterError("max_error_rate", f"{max_error_rate} is not between 0 and 1")


def _served_state(client: ServingClient, model_name: str) -> dict[str, Any]:
    """The service's ``/readyz`` body; it must serve ``model_name``."""
    _, before = client.ready()
    served = before.get("model") or {}
    if served.get("name") and str(served["name"]) != model_name:
        raise ParameterError(
            "registered_model_name",
            f"the service at {client.url} serves model {served['name']!r}, not {model_name!r}",
        )
    return before


def deploy(
    client: ServingClient,
    *,
    model_name: str,
    version: str | int,
    mode: str = "replace",
    canary_share: float = 0.1,
    promote_canary: bool = True,
    ready_timeout: float = 120.0,
    verify_seconds: float = 60.0,
    max_error_rate: float = 0.01,
    min_requests: int = 0,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Rollout:
    """Deploy ``version`` of ``model_name`` to the service behind ``client`` (see the module).

    :param mode: ``replace`` (the primary), ``canary`` (``canary_share`` of the traffic) or
        ``shadow`` (answers logged, not returned).
    :param promote_canary: after a healthy canary window, make the version the primary.
    :param verify_seconds: length of the verification window (0: only readiness).
    :param max_error_rate: highest share of 5xx ``/predict`` answers in the window.
    :param min_requests: fewest ``/predict`` requests the window must see (0: a quiet window
        passes).
    :raises ParameterError: a bad mode, share or limit; the service serves another model.
    :raises ReloadRefused: the service refused to load the version (nothing changed).
    :raises DeploymentFailed: readiness or the error rate failed; the service was rolled back.
    :raises ServingUnavailable: the service cannot be reached.
    """
    version = str(version)
    _check(mode, canary_share, max_error_rate)
    before = _served_state(client, model_name)
    previous = _slot(before, "replace")
    base: dict[str, Any] = {
        "service_url": client.url,
        "model_name": model_name,
        "version": version,
        "mode": mode,
    }
    if previous == version and (mode == "replace" or not before.get(mode)):
        log.info("%s already serves %s version %s: nothing to do", client.url, model_name, version)
        return Rollout(
            **base,
            status="unchanged",
            previous_version=previous,
            state=before,
            reasons=[f"the service already served version {version}"],
        )
    check = _Check(client, mode, version, poll_seconds, sleep)
    log.info(
        "deploying %s v%s to %s as %s (now %s)", model_name, version, client.url, mode, previous
    )
    client.reload(_reload_payload(mode, version, canary_share))  # ReloadRefused: nothing changed
    try:
        check.wait_ready(ready_timeout)
        window = check.watch(verify_seconds, max_error_rate, min_requests) if verify_seconds else {}
        status = mode if mode != "replace" else "deployed"
        if mode == "canary" and promote_canary:
            client.reload({"version": version, "canary": None})
            check.mode = "replace"
            check.wait_ready(ready_timeout)
            status = "deployed"
    except (DeploymentFailed, ServingUnavailable, ReloadRefused) as err:
        _roll_back(client, mode, previous, ready_timeout, check, err)
    reason = (
        f"version {version} serves as {'primary' if status == 'deployed' else mode}; "
        f"window: {window.get('requests', 0)} requests, {window.get('errors', 0)} errors"
    )
    log.info("%s: %s", status, reason)
    state = client.ready()[1]
    return Rollout(
        **base,
        status=status,
        previous_version=previous,
        window=window,
        state=state,
        reasons=[reason],
    )


def _roll_back(
    client: ServingClient,
    mode: str,
    previous: str | None,
    timeout: float,
    check: _Check,
    err: Exception,
) -> NoReturn:
    undo = _undo_payload(mode, previous)
    if undo is None:
        raise DeploymentFailed(
            f"{err}; nothing was served before, so there is nothing to roll back to"
        ) from err
    log.error("deployment failed: %s; rolling back with %s", err, undo)
    try:
        client.reload(undo)
        if "version" in undo:
            check.mode, check.version = "replace", str(undo["version"])
            check.wait_ready(timeout)
    except CoreError as undo_err:
        raise DeploymentFailed(f"{err}; the rollback ({undo}) failed too: {undo_err}") from err
    target = f"version {previous}" if "version" in undo else f"no {mode}"
    raise DeploymentFailed(f"{err}; rolled back to {target}") from err
