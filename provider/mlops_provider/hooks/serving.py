"""Hook for the provider's realtime serving app (``python -m mlops_provider.serving``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlops_provider.core.deployment import ServingClient

#: Upper bound of a connection test's request.
TEST_TIMEOUT_SECONDS = 5.0


class ServingHook(BaseHook):
    """Where a serving app answers and the token that may reload it.

    The connection (conn type ``mlops_serving``, default ``mlops_serving_default``): ``host``
    holds the service URL (``http://churn-serving:8000``; or a host name with ``schema`` and
    ``port``), ``password`` the admin token the service reads from
    ``MLOPS_SERVING_ADMIN_TOKEN`` (masked in logs; it is only sent as
    ``Authorization: Bearer`` to ``/admin/reload``).

    :param serving_conn_id: connection id, default ``mlops_serving_default``.
    :param url: overrides the connection's URL (the token still comes from the connection, if
        there is one).
    :raises ValueError: the connection names no host and no ``url`` was given.
    """

    conn_name_attr = "serving_conn_id"
    default_conn_name = "mlops_serving_default"
    conn_type = "mlops_serving"
    hook_name = "MLOps serving app"

    def __init__(
        self, serving_conn_id: str = default_conn_name, *, url: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.serving_conn_id = serving_conn_id
        self._url = url

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Field labels for the connection form."""
        from mlops_provider.get_provider_info import ui_field_behaviour

        return ui_field_behaviour(cls.conn_type)

    def url_and_token(self) -> tuple[str, str | None]:
        """The service's base URL and the admin token."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.serving_conn_id)
        except AirflowNotFoundException:
            if not self._url:  # a URL given here needs no connection (no token then)
                raise
            conn = None
        token = (conn.password or None) if conn is not None else None
        if self._url or conn is None:  # no connection only when a URL was given
            return str(self._url).rstrip("/"), token
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(
                f"Connection {self.serving_conn_id} (mlops_serving) has no host: put the "
                "service URL there, e.g. http://churn-serving:8000"
            )
        if "://" in host:
            return host.rstrip("/"), token
        port = f":{conn.port}" if conn.port else ""
        scheme = conn.schema or "http"
        return f"{scheme}://{host}{port}", token

    def client(self, timeout: float = 30.0) -> ServingClient:
        """A client of the service (close it, or use it as a context manager)."""
        from mlops_provider.core.deployment import ServingClient

        url, token = self.url_and_token()
        return ServingClient(url, token=token, timeout=timeout)

    def get_conn(self) -> ServingClient:
        return self.client()

    def test_connection(self) -> tuple[bool, str]:
        """Ask the service whether it is ready (one request, a few seconds)."""
        try:
            with self.client(timeout=TEST_TIMEOUT_SECONDS) as client:
                ready, body = client.ready()
        except Exception as err:  # a test reports, never raises
            return False, str(err)
        model = body.get("model") or {}
        if ready:
            return True, f"ready: serving {model.get('name')} version {model.get('version')}"
        return False, f"not ready: {body.get('reason') or body}"
