"""Hook for MLflow tracking servers and model registries."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_provider.hooks._connection import (
    FLAG,
    SECONDS,
    TEXT,
    optional_connection,
    typed_extra,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from mlflow import MlflowClient

    from mlops_provider.core.mlflow_target import MlflowTarget


#: Upper bound of a connection test's request (MLflow's own client retries for minutes).
TEST_TIMEOUT_SECONDS = 5.0


#: The extras of an ``mlflow`` connection and their kinds (parsed strictly).
EXTRA_FIELDS = {
    "tracking_uri": TEXT,
    "registry_uri": TEXT,
    "artifact_location": TEXT,
    "token": TEXT,
    "insecure_tls": FLAG,
    "ui_url": TEXT,
    "max_retry_seconds": SECONDS,
}


class MlflowHook(BaseHook):
    """Resolve where MLflow lives and give an authenticated ``MlflowClient`` for it.

    Resolution order for the tracking URI:

    1. ``tracking_uri`` argument;
    2. the connection ``mlflow_conn_id``: extra ``tracking_uri``, else
       ``{schema or http}://{host}:{port}`` (a host that already holds a URI is used as is);
    3. with no such connection: the ``MLFLOW_TRACKING_URI`` environment variable;
    4. the embedded default: an SQLite store and an artifact directory under
       ``$AIRFLOW_HOME/mlops/mlflow``.

    Credentials: connection ``login``/``password`` for basic auth, or ``password`` alone (or extra
    ``token``) as a bearer token, or the ``user:password@`` part of an ``http(s)`` tracking URI
    (host or extra ``tracking_uri``), which is taken out of the URI. They reach every request
    the provider causes, artifact uploads and downloads through the server's proxy included;
    they are masked in logs and never put into the environment (docs/connections.md).

    Retry budget: extra ``max_retry_seconds``, else setting ``mlflow_max_retry_seconds``
    (default 30): how long one request may keep retrying a server that does not answer, after
    which every call fails with ``MLflow at <uri> (connection <id>) is not reachable: <cause>``
    (:func:`~mlops_provider.core.mlflow_target.bounded_calls`).

    :param mlflow_conn_id: connection id (conn type ``mlflow``), default ``mlflow_default``.
    :param tracking_uri: overrides the connection's tracking URI.
    :param registry_uri: overrides the registry URI (default: extra ``registry_uri`` or the
        tracking URI).
    :raises AirflowNotFoundException: only for a connection id other than the default that does
        not exist (the default falls back as described above).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(
        self,
        mlflow_conn_id: str = default_conn_name,
        *,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self._tracking_uri = tracking_uri
        self._registry_uri = registry_uri

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Field labels for the connection form."""
        from mlops_provider.get_provider_info import ui_field_behaviour

        return ui_field_behaviour(cls.conn_type)

    def _connection(self) -> Any | None:
        return optional_connection(self, self.mlflow_conn_id, self.default_conn_name)

    @cached_property
    def target(self) -> MlflowTarget:
        """The resolved tracking/registry location (see the class docstring for the order)."""
        from mlops_provider.core import config
        from mlops_provider.core.mlflow_target import EMBEDDED, MlflowTarget, without_userinfo

        conn = None if self._tracking_uri else self._connection()
        extra: dict[str, Any] = {}
        username = password = token = None
        if conn is not None:
            extra = typed_extra(conn, EXTRA_FIELDS)
            username = conn.login or None
            password = conn.password or None
            token = extra.get("token") or None
            if not username and password and not token:
                token, password = password, None
        artifact_location = extra.get("artifact_location")
        if self._tracking_uri:
            uri, source = self._tracking_uri, "argument"
        elif conn is not None:
            uri, source = _uri_from_connection(conn, extra), f"connection {self.mlflow_conn_id}"
        elif os.environ.get("MLFLOW_TRACKING_URI"):
            uri, source = os.environ["MLFLOW_TRACKING_URI"], "environment MLFLOW_TRACKING_URI"
        else:
            uri, source = config.embedded_mlflow_tracking_uri(), EMBEDDED
            artifact_location = artifact_location or config.embedded_mlflow_artifact_root()
        registry = self._registry_uri or extra.get("registry_uri") or None
        target = MlflowTarget(
            tracking_uri=uri,
            registry_uri=registry,
            artifact_location=artifact_location,
            source=source,
            username=username,
            password=password,
            token=token,
            insecure_tls=bool(extra.get("insecure_tls", False)),
            ui_url=extra.get("ui_url") or None,
            max_retry_seconds=extra.get("max_retry_seconds"),
        )
        from airflow.sdk.log import mask_secret

        for secret in target.secrets:  # including those a URI's user-info part held
            mask_secret(secret)
        self.log.info(
            "MLflow tracking URI %s (from %s), registry URI %s, retry budget %g s",
            without_userinfo(target.tracking_uri),
            source,
            without_userinfo(target.effective_registry_uri),
            target.retry_seconds,
        )
        return target

    @cached_property
    def client(self) -> MlflowClient:
        """An ``MlflowClient`` for the resolved tracking and registry URIs."""
        from mlops_provider.core.mlflow_target import make_client

        return make_client(self.target)

    def get_conn(self) -> MlflowClient:
        """Airflow's generic accessor: the ``MlflowClient``."""
        return self.client

    def activated(self) -> AbstractContextManager[None]:
        """Point MLflow's fluent API at this hook's target for a block, restoring it afterwards."""
        from mlops_provider.core.mlflow_target import activated

        return activated(self.target)

    def get_or_create_experiment(self, name: str) -> str:
        """Experiment id for ``name``, created with the target's artifact location if missing."""
        from mlops_provider.core.mlflow_target import ensure_experiment

        return ensure_experiment(self.client, name, self.target.artifact_location)

    def test_connection(self) -> tuple[bool, str]:
        """Check that the tracking store answers, in a few seconds and with no side effect:
        one HTTP request without retries for a server, a read-only look for a local store
        (an SQLite file or a directory is never created by a test)."""
        from mlops_provider.core.mlflow_target import probe

        try:
            target = self.target
        except Exception as err:  # a bad connection is a test result
            return False, str(err)
        return probe(target, timeout=TEST_TIMEOUT_SECONDS)


def _uri_from_connection(conn: Any, extra: dict[str, Any]) -> str:
    if extra.get("tracking_uri"):
        return str(extra["tracking_uri"])
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(
            f"Connection {conn.conn_id} (mlflow) has neither a host nor extra 'tracking_uri'"
        )
    if "://" in host:
        return host.rstrip("/")
    scheme = conn.schema or "http"
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{host}{port}"
