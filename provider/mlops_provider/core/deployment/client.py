"""Talk to a running serving app (:mod:`mlops_provider.serving`) over HTTP.

:class:`ServingClient` wraps the routes the deployment steps use (``/readyz``,
``/admin/reload``, ``/predict``, ``/metrics``) and turns every failure into a
:class:`ServingUnavailable` (cannot reach it, it answered 5xx) or :class:`ReloadRefused` (it
refused the reload and kept what it served) whose message names the URL and what the service
said. Imports httpx and prometheus_client lazily.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_provider.core.errors import InputError, ServiceError

log = logging.getLogger(__name__)

__all__ = [
    "ReloadRefused",
    "ServingClient",
    "ServingUnavailable",
    "Traffic",
    "traffic",
]


class ServingUnavailable(ServiceError):
    """The serving app cannot be reached, or answered with a server error."""


class ReloadRefused(InputError):
    """The serving app refused a reload (bad token, unknown version, model failed to load); it
    kept serving what it served before."""


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, Mapping) and "detail" in body:
        return str(body["detail"])
    return json.dumps(body)[:500]


@dataclass(frozen=True)
class Traffic:
    """Request counters of ``/predict`` read from ``/metrics`` (cumulative since start).

    :param requests: answered requests.
    :param errors: requests answered with a server error (5xx): the service's fault, not the
        caller's; 4xx answers are the callers' mistakes and count as requests only.
    """

    requests: float
    errors: float

    def since(self, earlier: Traffic) -> Traffic:
        """The traffic between ``earlier`` and this reading (a restart resets to this one)."""
        if self.requests < earlier.requests:
            return self
        return Traffic(self.requests - earlier.requests, self.errors - earlier.errors)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def traffic(metrics_text: str, route: str = "/predict") -> Traffic:
    """The ``/predict`` traffic in a ``/metrics`` text (``mlops_serving_requests_total``)."""
    from prometheus_client.parser import text_string_to_metric_families

    requests = errors = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name != "mlops_serving_requests_total":
                continue
            if sample.labels.get("route") != route:
                continue
            requests += sample.value
            if str(sample.labels.get("status", "")).startswith("5"):
                errors += sample.value
    return Traffic(requests, errors)


class ServingClient:
    """A client of one serving app.

    :param url: base URL, e.g. ``http://churn-serving:8000``.
    :param token: the admin token (``Authorization: Bearer``) for :meth:`reload`.
    :param timeout: seconds per request.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ServingUnavailable(
                f"serving app at {self.url} is not reachable ({method} {path}): "
                f"{type(err).__name__}: {err}"
            ) from err

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, body)`` of ``GET /readyz`` (a 503 is an answer: not ready)."""
        response = self._request("GET", "/readyz")
        if response.status_code not in (200, 503):
            raise ServingUnavailable(
                f"serving app at {self.url}: GET /readyz answered {response.status_code}: "
                f"{_detail(response)}"
            )
        try:
            body = response.json()
        except ValueError as err:
            raise ServingUnavailable(
                f"serving app at {self.url}: GET /readyz did not answer JSON: {response.text[:200]}"
            ) from err
        return response.status_code == 200 and bool(body.get("ready")), body

    def reload(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /admin/reload``; returns the new ``/readyz`` body.

        :raises ReloadRefused: 4xx (bad token, unknown version, the model failed to load).
        :raises ServingUnavailable: not reachable or 5xx.
        """
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        response = self._request("POST", "/admin/reload", json=dict(payload), headers=headers)
        if 400 <= response.status_code < 500:
            raise ReloadRefused(
                f"serving app at {self.url} refused the reload {json.dumps(dict(payload))} "
                f"({response.status_code}): {_detail(response)}; it keeps serving what it served"
            )
        if response.status_code != 200:
            raise ServingUnavailable(
                f"serving app at {self.url}: reload answered {response.status_code}: "
                f"{_detail(response)}"
            )
        body: dict[str, Any] = response.json()
        return body

    def predict(self, rows: Iterable[Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
        """``POST /predict`` with complete feature rows; the response body.

        :raises ServingUnavailable: not reachable or any non-200 answer (the message holds the
            service's explanation).
        """
        response = self._request("POST", "/predict", json={"rows": list(rows), **extra})
        if response.status_code != 200:
            raise ServingUnavailable(
                f"serving app at {self.url}: POST /predict answered {response.status_code}: "
                f"{_detail(response)}"
            )
        body: dict[str, Any] = response.json()
        return body

    def metrics(self) -> str:
        """The ``GET /metrics`` text."""
        response = self._request("GET", "/metrics")
        if response.status_code != 200:
            raise ServingUnavailable(
                f"serving app at {self.url}: GET /metrics answered {response.status_code}"
            )
        return str(response.text)

    def traffic(self) -> Traffic:
        """The ``/predict`` counters now."""
        return traffic(self.metrics())
