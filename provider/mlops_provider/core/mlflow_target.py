"""Where MLflow lives and how to talk to it, without touching process-wide settings.

MLflow reads credentials from environment variables and its fluent API from a module global.
An Airflow worker runs many tasks, possibly for different servers, so this module:

- keeps credentials per tracking URI in a process-local table and installs REST store builders
  for ``http``/``https`` that look them up (falling back to MLflow's own environment lookup);
- offers :func:`activated`, a context manager that points the fluent API (``mlflow.start_run``,
  ``mlflow.sklearn.log_model`` ...) at a target and restores the previous state afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.utils.rest_utils import MlflowHostCreds

__all__ = [
    "MlflowTarget",
    "make_client",
    "activated",
    "ensure_experiment",
    "check_reachable",
    "probe",
    "sqlite_path",
]

#: ``MlflowTarget.source`` of the provider's embedded default store.
EMBEDDED = "embedded default"

_LOCK = threading.RLock()
#: Held for the whole of an :func:`activated` block (re-entrant: blocks may nest in a thread).
_ACTIVE = threading.RLock()
_CREDENTIALS: dict[str, dict[str, Any]] = {}
_BUILDERS_INSTALLED = False


@dataclass(frozen=True)
class MlflowTarget:
    """A resolved MLflow location.

    :param tracking_uri: tracking store URI (``http(s)://``, ``sqlite:///``, ``postgresql://`` ...)
    :param registry_uri: model registry URI, defaults to the tracking URI
    :param artifact_location: artifact root used for experiments created through this target
    :param source: where the settings came from (``connection``, ``environment``, ``embedded``)
    :param ui_url: address of the MLflow UI as a browser reaches it, when it differs from the
        tracking URI (a service name inside a container network); links use it.
    """

    tracking_uri: str
    registry_uri: str | None = None
    artifact_location: str | None = None
    source: str = "explicit"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    insecure_tls: bool = False
    ui_url: str | None = None

    @property
    def ui_base_uri(self) -> str:
        """What UI links are built on: ``ui_url``, else the tracking URI."""
        return self.ui_url or self.tracking_uri

    @property
    def effective_registry_uri(self) -> str:
        return self.registry_uri or self.tracking_uri

    @property
    def is_remote(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def has_credentials(self) -> bool:
        return bool(self.token or self.username or self.password)

    def prepare_local_store(self) -> None:
        """Create the directories an SQLite store and a local artifact root need."""
        for uri in (self.tracking_uri, self.effective_registry_uri):
            path = sqlite_path(uri)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        if self.artifact_location and self.artifact_location.startswith("file://"):
            Path(self.artifact_location[len("file://") :]).mkdir(parents=True, exist_ok=True)


def sqlite_path(uri: str) -> Path | None:
    """The database file of an ``sqlite:///`` store URI, else None."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _auth(target: MlflowTarget) -> dict[str, str]:
    """The target's credentials as MLflow's host credentials take them: ``token`` (bearer, when
    there is no username) or ``username`` + ``password`` (basic auth); empty without any."""
    if target.token and not target.username:
        return {"token": target.token}
    if target.username:
        return {"username": target.username, "password": target.password or target.token or ""}
    return {}


def _host_creds(store_uri: str) -> MlflowHostCreds:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import MlflowHostCreds

    with _LOCK:
        creds = _CREDENTIALS.get(store_uri.rstrip("/"))
    if creds is None:
        return get_default_host_creds(store_uri)
    return MlflowHostCreds(host=store_uri, **creds)


def _rest_tracking_store(store_uri: str, **_: Any) -> Any:
    from mlflow.store.tracking.rest_store import RestStore

    return RestStore(partial(_host_creds, store_uri))


def _rest_registry_store(store_uri: str, **_: Any) -> Any:
    from mlflow.store.model_registry.rest_store import RestStore

    return RestStore(partial(_host_creds, store_uri))


def _install_builders() -> None:
    global _BUILDERS_INSTALLED
    with _LOCK:
        if _BUILDERS_INSTALLED:
            return
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        registry_utils._get_store_registry()  # builds the registry on first use
        for scheme in ("http", "https"):
            tracking_utils._tracking_store_registry.register(scheme, _rest_tracking_store)
            registry_utils._model_registry_store_registry.register(scheme, _rest_registry_store)
        _BUILDERS_INSTALLED = True


def _register_credentials(target: MlflowTarget) -> None:
    if not target.is_remote:
        return
    _install_builders()
    creds: dict[str, Any] = {"ignore_tls_verification": target.insecure_tls, **_auth(target)}
    with _LOCK:
        for uri in {target.tracking_uri, target.effective_registry_uri}:
            if uri.startswith(("http://", "https://")):
                _CREDENTIALS[uri.rstrip("/")] = creds


def make_client(target: MlflowTarget) -> MlflowClient:
    """An ``MlflowClient`` bound to the target (credentials included, nothing global changed)."""
    from mlflow import MlflowClient

    target.prepare_local_store()
    _register_credentials(target)
    return MlflowClient(
        tracking_uri=target.tracking_uri, registry_uri=target.effective_registry_uri
    )


@contextmanager
def activated(target: MlflowTarget) -> Iterator[None]:
    """Point MLflow's fluent API at ``target`` for the duration of the block, then restore.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment; both the
    module globals and the environment are put back as they were when the block ends. The state
    is process-wide, so one thread at a time is inside such a block (others wait): two threads
    restoring interleaved would leave the first one's target behind (a serving app that loads
    a model in its reload thread while its alias poll loads another).
    """
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    target.prepare_local_store()
    _register_credentials(target)
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
    with _ACTIVE:
        with _LOCK:
            saved_env = {k: os.environ.get(k) for k in keys}
            saved_tracking = tracking_utils._tracking_uri
            saved_registry = registry_utils._registry_uri
            # an experiment made active earlier in this process (mlflow.set_experiment) belongs
            # to another store or task; it must not leak into runs started in this block
            saved_experiment = fluent._active_experiment_id
            fluent._active_experiment_id = None
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
            mlflow.set_tracking_uri(target.tracking_uri)
            mlflow.set_registry_uri(target.effective_registry_uri)
        try:
            yield
        finally:
            with _LOCK:
                tracking_utils._tracking_uri = saved_tracking
                registry_utils._registry_uri = saved_registry
                fluent._active_experiment_id = saved_experiment
                for key, value in saved_env.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """Return the id of experiment ``name``, creating it (with the artifact root) if missing.

    Safe under concurrency: a create that loses a race re-reads the experiment.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def check_reachable(target: MlflowTarget, client: MlflowClient | None = None) -> tuple[bool, str]:
    """Make one cheap call to the tracking store; return ``(ok, message)``."""
    client = client or make_client(target)
    try:
        client.search_experiments(max_results=1)
    except Exception as err:  # the store's own errors vary by backend
        return False, f"MLflow at {target.tracking_uri} is not reachable: {err}"
    return True, f"MLflow reachable at {target.tracking_uri} ({target.source})"


def probe(target: MlflowTarget, timeout: float = 5.0) -> tuple[bool, str]:
    """Check that the tracking store answers, within ``timeout`` seconds and without side
    effects (what a connection "Test" does): one HTTP request with the target's credentials
    and no retries for a server; for a local store, a read-only look at the SQLite file or
    directory, which is never created; a database URI is opened with a connect timeout.

    :returns: ``(ok, message)``; the message names the store and what is wrong.
    """
    uri = target.tracking_uri
    where = f"MLflow at {_without_userinfo(uri)} ({target.source})"
    try:
        if target.is_remote:
            return _probe_http(target, timeout, where)
        if uri.startswith("sqlite:"):
            return _probe_sqlite(uri, where, created_on_use=target.source == EMBEDDED)
        if uri.startswith("file:") or "://" not in uri:
            path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
            if not path.is_dir():
                return False, f"{where}: no file store at {path} (a test creates nothing)"
            return True, f"{where}: file store at {path}"
        return _probe_database(uri, timeout, where)
    except Exception as err:  # every failure is a test result, never an exception
        return False, f"{where} is not reachable: {type(err).__name__}: {err}"


def _without_userinfo(uri: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.netloc or "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _probe_http(target: MlflowTarget, timeout: float, where: str) -> tuple[bool, str]:
    import requests

    creds = _auth(target)
    headers = {"Authorization": f"Bearer {creds['token']}"} if "token" in creds else {}
    auth = (creds["username"], creds["password"]) if "username" in creds else None
    url = target.tracking_uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    try:
        response = requests.post(
            url,
            json={"max_results": 1},
            headers=headers,
            auth=auth,
            timeout=timeout,
            verify=not target.insecure_tls,
        )
    except requests.RequestException as err:
        return False, f"{where} is not reachable within {timeout:g} s: {type(err).__name__}"
    if response.status_code in (401, 403):
        return False, f"{where} refused the credentials (HTTP {response.status_code})"
    if response.status_code != 200:
        return False, f"{where} answered HTTP {response.status_code}: {response.text[:200]}"
    return True, f"{where} answered"


def _probe_sqlite(uri: str, where: str, *, created_on_use: bool) -> tuple[bool, str]:
    import sqlite3

    path = sqlite_path(uri)
    if path is not None and not path.exists() and created_on_use:
        return True, f"{where}: the embedded store {path} is created by the first task using it"
    if path is None or not path.is_file():
        return False, f"{where}: no SQLite store at {path or uri} (a test creates nothing)"
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    if "experiments" not in tables:
        return False, f"{where}: {path} is not an MLflow store (no experiments table)"
    return True, f"{where}: SQLite store at {path}"


def _probe_database(uri: str, timeout: float, where: str) -> tuple[bool, str]:
    import sqlalchemy

    args = (
        {"connect_timeout": int(max(timeout, 1))} if uri.startswith(("postgres", "mysql")) else {}
    )
    engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1 FROM experiments LIMIT 1"))
    finally:
        engine.dispose()
    return True, f"{where}: database store answered"
