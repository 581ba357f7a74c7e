"""Where MLflow lives and how to talk to it, without touching process-wide settings.

MLflow reads credentials from environment variables and its fluent API from a module global.
An Airflow worker runs many tasks, possibly for different servers, so this module:

- keeps credentials per tracking URI in a process-local table and installs REST store builders
  for ``http``/``https`` that look them up (falling back to MLflow's own environment lookup);
  MLflow's HTTP artifact repositories (``mlflow-artifacts:`` through the tracking server's
  proxy, ``http(s)://`` artifact roots) look them up too, for URLs under a registered URI
  (:func:`_host_creds`), so artifact uploads authenticate like tracking calls;
- takes credentials out of a URI's user-info part (``http://user:password@host``) into the
  target, so no URI MLflow prints or the provider logs or returns carries them;
- switches MLflow's client telemetry off (:func:`disable_telemetry`): it sends nothing a task
  needs and its background thread has failed tasks;
- offers :func:`activated`, a context manager that points the fluent API (``mlflow.start_run``,
  ``mlflow.sklearn.log_model`` ...) at a target and restores the previous state afterwards;
- bounds the time MLflow's HTTP client spends retrying a server that does not answer (minutes
  by default) to the target's retry budget (:attr:`MlflowTarget.retry_seconds`), for each
  request of its REST stores and for the whole of an :func:`activated` block, and turns such
  a failure into ONE error, :class:`~mlops_provider.core.errors.MlflowUnreachableError`
  (``MLflow at <uri> (connection <id>) is not reachable: <cause>``), through
  :func:`bounded_calls`; a URI whose scheme MLflow does not know is refused before any call
  (:func:`check_uris`, :class:`~mlops_provider.core.errors.MlflowUriError`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import MlflowUnreachableError, MlflowUriError, did_you_mean

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.utils.rest_utils import MlflowHostCreds

__all__ = [
    "MlflowTarget",
    "make_client",
    "activated",
    "bounded_calls",
    "check_uris",
    "retry_settings",
    "where",
    "without_userinfo",
    "split_userinfo",
    "disable_telemetry",
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
#: Store URI -> (source, retry budget) of the targets whose REST stores are bounded.
_BUDGETS: dict[str, tuple[str, float]] = {}
_BUILDERS_INSTALLED = False

#: MLflow's HTTP client settings a retry budget sets (unless the environment sets them).
RETRY_VARIABLES = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)
#: At most this many retries (MLflow refuses more than 10).
MAX_RETRIES = 10
#: Bounds of the request timeout a budget sets (seconds; MLflow's default is 120).
MIN_TIMEOUT, MAX_TIMEOUT = 10, 120
#: Bounded blocks in progress (any thread) and the environment they replaced.
_BOUNDED_DEPTH = 0
_BOUNDED_SAVED: dict[str, str | None] = {}


@dataclass(frozen=True)
class MlflowTarget:
    """A resolved MLflow location.

    :param tracking_uri: tracking store URI (``http(s)://``, ``sqlite:///``, ``postgresql://`` ...)
    :param registry_uri: model registry URI, defaults to the tracking URI
    :param artifact_location: artifact root used for experiments created through this target
    :param source: where the settings came from (``connection``, ``environment``, ``embedded``)
    :param ui_url: address of the MLflow UI as a browser reaches it, when it differs from the
        tracking URI (a service name inside a container network); links use it.
    :param max_retry_seconds: how long one request may keep retrying a server that does not
        answer (None: setting ``mlflow_max_retry_seconds``, see :attr:`retry_seconds`).
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
    max_retry_seconds: float | None = None

    def __post_init__(self) -> None:
        """Move the user-info part of an ``http(s)`` URI into the credentials (explicit
        credentials win), leaving URIs that are safe to print."""
        tracking, user, secret = split_userinfo(self.tracking_uri)
        registry, r_user, r_secret = split_userinfo(self.registry_uri)
        object.__setattr__(self, "tracking_uri", tracking)
        object.__setattr__(self, "registry_uri", registry)
        if self.has_credentials:
            return
        user, secret = (user, secret) if (user or secret) else (r_user, r_secret)
        if user:
            object.__setattr__(self, "username", user)
            object.__setattr__(self, "password", secret)
        elif secret:
            object.__setattr__(self, "token", secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The credential values a log must never show: password, token, and the password of
        a database URI's user-info part (which stays in that URI for its driver)."""
        found = [self.password, self.token]
        found += [_userinfo(uri)[1] for uri in (self.tracking_uri, self.registry_uri)]
        return tuple(dict.fromkeys(s for s in found if s))

    @property
    def retry_seconds(self) -> float:
        """The retry budget: ``max_retry_seconds``, else setting ``mlflow_max_retry_seconds``
        (default 30).

        :raises ConfigError: the setting is not a number of seconds >= 0.
        """
        from mlops_provider.core import config

        if self.max_retry_seconds is not None:
            return float(self.max_retry_seconds)
        return config.mlflow_max_retry_seconds()

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


def split_userinfo(uri: str | None) -> tuple[str | None, str | None, str | None]:
    """``(uri without user info, user, password)`` for an ``http(s)`` URI with
    ``user:password@`` in its network location (percent-decoded), else ``(uri, None, None)``.
    Database URIs keep theirs: their driver needs it (logs use :func:`without_userinfo`)."""
    if not uri or not _is_http(uri):
        return uri, None, None
    user, secret = _userinfo(uri)
    return without_userinfo(uri), user, secret


def _userinfo(uri: str | None) -> tuple[str | None, str | None]:
    """``(user, password)`` of a URI's ``user:password@`` part (percent-decoded; None each
    where absent)."""
    from urllib.parse import unquote, urlsplit

    netloc = urlsplit(uri).netloc if uri else ""
    if "@" not in netloc:
        return None, None
    user, _, secret = netloc.rsplit("@", 1)[0].partition(":")
    return unquote(user) or None, unquote(secret) or None


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


def _registered(url: str) -> dict[str, Any] | None:
    """The settings registered for the longest registered URI that ``url`` equals or lies
    under (``http://host:5000`` covers ``http://host:5000/api/2.0/mlflow-artifacts/...``, not
    ``http://host:50001`` nor another host), else None."""
    url = url.rstrip("/")
    with _LOCK:
        bases = [b for b in _CREDENTIALS if url == b or url.startswith(b + "/")]
        return _CREDENTIALS[max(bases, key=len)] if bases else None


def _host_creds(url: str) -> MlflowHostCreds:
    """MLflow's host credentials for a request to ``url`` (the REST stores' calls and, through
    :func:`_install_artifact_credentials`, the HTTP artifact repositories' uploads and
    downloads): those registered by a target for a URI covering it
    (:func:`_register_credentials`), else MLflow's own lookup (its ``MLFLOW_TRACKING_*``
    environment variables), with the target's TLS setting."""
    from mlflow.utils.rest_utils import MlflowHostCreds

    settings = _registered(url)
    if settings is not None and _has_auth(settings):
        return MlflowHostCreds(host=url, **settings)
    from mlflow.utils.credentials import get_default_host_creds  # never replaced

    creds = get_default_host_creds(url)
    if settings is not None and settings.get("ignore_tls_verification"):
        creds.ignore_tls_verification = True
    return creds


def _has_auth(settings: dict[str, Any]) -> bool:
    return any(settings.get(k) for k in ("token", "username", "password"))


#: MLflow modules whose HTTP artifact requests look credentials up by URL.
ARTIFACT_MODULES = (
    "mlflow.store.artifact.http_artifact_repo",
    "mlflow.store.artifact.mlflow_artifacts_repo",
)


def _install_artifact_credentials() -> None:
    """Route the credential lookup of MLflow's HTTP artifact repositories through
    :func:`_host_creds`. MLflow builds those repositories itself, per call, and
    reads credentials only from the environment (``get_default_host_creds``), which a worker
    shared by tasks of different connections must not hold; each module's name is replaced,
    MLflow's function (in ``mlflow.utils.credentials``) stays the fallback."""
    import importlib

    for name in ARTIFACT_MODULES:
        module = importlib.import_module(name)
        module.get_default_host_creds = _host_creds  # type: ignore[attr-defined]


_TELEMETRY_OFF = False


def disable_telemetry() -> None:
    """Switch MLflow's client telemetry off in this process, unless the environment chose
    (``MLFLOW_DISABLE_TELEMETRY``): it is read when ``mlflow`` is imported, so a client already
    started is stopped too. Its background thread sends usage data a task does not need,
    queries the tracking server without the target's credentials, and its session variable
    has failed concurrent MLflow calls (``KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'``)."""
    global _TELEMETRY_OFF
    if _TELEMETRY_OFF:
        return
    with _LOCK:
        _TELEMETRY_OFF = True
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import sys

        client_module = sys.modules.get("mlflow.telemetry.client")
        if client_module is None:
            return
        client = client_module.get_telemetry_client()
        from mlflow.telemetry.utils import is_telemetry_disabled

        if client is not None and is_telemetry_disabled():
            client._clean_up()
            client_module._set_telemetry_client(None)


def _bounded_store(store: Any, store_uri: str) -> Any:
    """``store`` with each REST call bounded by the budget registered for ``store_uri`` (a URI
    no target registered keeps MLflow's own behaviour)."""
    call = store._call_endpoint

    def bounded_call(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            budget = _BUDGETS.get(store_uri.rstrip("/"))
        if budget is None:
            return call(*args, **kwargs)
        with _bounded([store_uri], *budget, any_failure=True):
            return call(*args, **kwargs)

    store._call_endpoint = bounded_call
    return store


def _rest_tracking_store(store_uri: str, **_: Any) -> Any:
    from mlflow.store.tracking.rest_store import RestStore

    return _bounded_store(RestStore(partial(_host_creds, store_uri)), store_uri)


def _rest_registry_store(store_uri: str, **_: Any) -> Any:
    from mlflow.store.model_registry.rest_store import RestStore

    return _bounded_store(RestStore(partial(_host_creds, store_uri)), store_uri)


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
        _install_artifact_credentials()
        _BUILDERS_INSTALLED = True


def _register_credentials(target: MlflowTarget) -> None:
    """Bind the target's credentials and retry budget to its ``http(s)`` store URIs (and the
    artifact URLs under them).

    Per URI, the last target bound wins, with one exception: a target without credentials that
    does not come from a connection (rebuilt from a client's URI, a trigger's URIs) keeps the
    credentials bound to its URI. A connection without credentials unbinds them, so a task
    using it never authenticates with another connection's."""
    uris = {u for u in (target.tracking_uri, target.effective_registry_uri) if _is_http(u)}
    if not uris:
        return
    _install_builders()
    creds: dict[str, Any] = {"ignore_tls_verification": target.insecure_tls, **_auth(target)}
    owns = target.has_credentials or target.source.startswith("connection")
    budget = (target.source, target.retry_seconds)
    with _LOCK:
        for uri in uris:
            key = uri.rstrip("/")
            if owns or key not in _CREDENTIALS:
                _CREDENTIALS[key] = creds
            _BUDGETS[key] = budget


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def make_client(target: MlflowTarget) -> MlflowClient:
    """An ``MlflowClient`` bound to the target (credentials and retry budget included,
    nothing global changed).

    :raises MlflowUriError: MLflow knows no store for a URI's scheme (:func:`check_uris`).
    """
    disable_telemetry()
    from mlflow import MlflowClient

    check_uris(target)
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

    Inside the block MLflow's HTTP retries fit the target's retry budget, and a failure to
    reach the target's store is :class:`MlflowUnreachableError` (:func:`bounded_calls`).

    :raises MlflowUriError: MLflow knows no store for a URI's scheme (:func:`check_uris`).
    """
    disable_telemetry()
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    check_uris(target)
    target.prepare_local_store()
    _register_credentials(target)
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
    with _ACTIVE, bounded_calls(target):
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


# ----------------------------------------------------------------- bounded calls, one error


def where(uri: str, source: str) -> str:
    """``MLflow at <uri> (<source>)``, the URI without user info (credentials never show)."""
    return f"MLflow at {without_userinfo(uri)} ({source})"


def check_uris(target: MlflowTarget) -> None:
    """Refuse, before any call, a tracking or registry URI whose scheme MLflow has no store for
    (``htp://``): the error names the URI, its source (the connection) and the schemes MLflow
    supports.

    :raises MlflowUriError: ``MLflow at <uri> (<source>) rejected the URI: ...``.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils
    from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException
    from mlflow.utils.uri import get_uri_scheme

    stores = (
        (target.tracking_uri, "tracking", tracking_utils._tracking_store_registry),
        (target.effective_registry_uri, "registry", registry_utils._get_store_registry()),
    )
    for uri, kind, registry in stores:
        try:
            registry.get_store_builder(uri)
        except UnsupportedModelRegistryStoreURIException as err:
            scheme = get_uri_scheme(uri)
            schemes = sorted(s for s in err.supported_uri_schemes if s)
            raise MlflowUriError(
                f"{where(uri, target.source)} rejected the URI: MLflow has no {kind} store for "
                f"scheme {scheme!r} (supported: {', '.join(schemes)}, or a local path)"
                f"{did_you_mean(scheme, schemes)}"
            ) from None


def retry_settings(seconds: float) -> dict[str, str]:
    """MLflow's HTTP client settings (:data:`RETRY_VARIABLES`) for a retry budget: as many
    retries (at most :data:`MAX_RETRIES`) as fit in ``seconds`` with backoff factor 1 (waits
    of 0, 2, 4, 8 ... s, capped at 120 s, plus MLflow's jitter of up to 1 s each), and a
    request timeout of ``seconds`` within [:data:`MIN_TIMEOUT`, :data:`MAX_TIMEOUT`].
    A server that refuses connections fails within ``seconds``; one that accepts them and never
    answers costs up to the timeout per attempt.
    """
    waited, retries = 0.0, 0
    while retries < MAX_RETRIES:
        wait = 0.0 if retries == 0 else min(120.0, 2.0**retries + 1.0)
        if waited + wait >= seconds:  # a budget of 0: no retry
            break
        waited, retries = waited + wait, retries + 1
    timeout = min(MAX_TIMEOUT, max(MIN_TIMEOUT, math.ceil(seconds)))
    return dict(zip(RETRY_VARIABLES, (str(retries), "1", str(timeout)), strict=True))


@contextmanager
def _retry_environment(seconds: float) -> Iterator[None]:
    """Set :func:`retry_settings` in the environment (where MLflow reads them, per request) for
    the block, restoring it afterwards; a variable the environment already sets is kept (a
    deployment tuned with MLflow's own settings keeps them). Blocks may nest and overlap across
    threads: the first to enter sets the variables, the last to leave restores them."""
    global _BOUNDED_DEPTH
    with _LOCK:
        if _BOUNDED_DEPTH == 0:
            _BOUNDED_SAVED.clear()
            for key, value in retry_settings(seconds).items():
                _BOUNDED_SAVED[key] = os.environ.get(key)
                if os.environ.get(key) is None:
                    os.environ[key] = value
        _BOUNDED_DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _BOUNDED_DEPTH -= 1
            if _BOUNDED_DEPTH == 0:
                for key, saved in _BOUNDED_SAVED.items():
                    if saved is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = saved


@contextmanager
def bounded_calls(target: MlflowTarget) -> Iterator[None]:
    """The one scope of the provider's MLflow calls: MLflow's HTTP retries fit the target's
    budget (:func:`retry_settings`) and a failure to reach its tracking or registry store
    becomes :class:`MlflowUnreachableError` ``MLflow at <uri> (<source>) is not reachable:
    <cause>`` (other errors pass unchanged). Each REST call of a target's client runs in one
    already; :func:`activated` makes its whole block one."""
    uris = [target.tracking_uri, target.effective_registry_uri]
    with _bounded(uris, target.source, target.retry_seconds, any_failure=False):
        yield


@contextmanager
def _bounded(
    uris: Sequence[str], source: str, seconds: float, *, any_failure: bool
) -> Iterator[None]:
    """:func:`bounded_calls` for ``uris``; ``any_failure``: every connection failure in the
    block is one of ``uris[0]`` (a store's own call), else only one naming a URI's host."""
    with _retry_environment(seconds):
        try:
            yield
        except MlflowUnreachableError:
            raise
        except Exception as err:
            failure = _connection_failure(err)
            uri = uris[0] if any_failure else _named_uri(err, uris)
            if failure is None or uri is None:
                raise
            retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLflow's default")
            raise MlflowUnreachableError(
                f"{where(uri, source)} is not reachable: {_cause(failure)} (retries: {retries}; "
                f"retry budget {seconds:g} s: the connection's extra max_retry_seconds or "
                "setting mlflow_max_retry_seconds)"
            ) from err


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and its causes (MLflow raises its REST errors inside ``except`` blocks)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connection_failure(err: BaseException) -> BaseException | None:
    """The HTTP client's failure to get an answer (refused, timed out, DNS, TLS, too many
    5xx answers) in ``err``'s chain, else None."""
    import requests

    kinds = (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError)
    return next((e for e in _chain(err) if isinstance(e, kinds)), None)


def _named_uri(err: BaseException, uris: Sequence[str]) -> str | None:
    """The URI of ``uris`` whose host and port ``err``'s chain names, else None."""
    from urllib.parse import urlsplit

    text = " ".join(str(e) for e in _chain(err))
    for uri in uris:
        if not _is_http(uri):
            continue
        parts = urlsplit(uri)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if f"{parts.hostname}:{port}" in text or f"host='{parts.hostname}', port={port}" in text:
            return uri
        if parts.port is None and f"//{parts.hostname}/" in text:
            return uri
    return None


def _cause(failure: BaseException) -> str:
    """What went wrong, without urllib3's connection object and pool wording."""
    reason: Any = failure.args[0] if failure.args else failure
    reason = getattr(reason, "reason", reason)  # MaxRetryError: the last attempt's error
    text = str(reason)
    if isinstance(reason, BaseException) and "): " in text:  # "HTTPConnection(...): Failed ..."
        text = text.split("): ", 1)[1]
    return text.strip() or type(failure).__name__


def check_reachable(target: MlflowTarget, client: MlflowClient | None = None) -> tuple[bool, str]:
    """Make one cheap call to the tracking store; return ``(ok, message)``."""
    client = client or make_client(target)
    try:
        with bounded_calls(target):
            client.search_experiments(max_results=1)
    except MlflowUnreachableError as err:
        return False, str(err)
    except Exception as err:  # the store's own errors vary by backend
        return False, f"{where(target.tracking_uri, target.source)} is not reachable: {err}"
    return True, f"{where(target.tracking_uri, target.source)} answered"


def probe(target: MlflowTarget, timeout: float = 5.0) -> tuple[bool, str]:
    """Check that the tracking store answers, within ``timeout`` seconds and without side
    effects (what a connection "Test" does): one HTTP request with the target's credentials
    and no retries for a server; for a local store, a read-only look at the SQLite file or
    directory, which is never created; a database URI is opened with a connect timeout.

    :returns: ``(ok, message)``; the message names the store and what is wrong.
    """
    uri = target.tracking_uri
    place = where(uri, target.source)
    try:
        check_uris(target)
        if target.is_remote:
            return _probe_http(target, timeout, place)
        if uri.startswith("sqlite:"):
            return _probe_sqlite(uri, place, created_on_use=target.source == EMBEDDED)
        if uri.startswith("file:") or "://" not in uri:
            path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
            if not path.is_dir():
                return False, f"{place}: no file store at {path} (a test creates nothing)"
            return True, f"{place}: file store at {path}"
        return _probe_database(uri, timeout, place)
    except MlflowUriError as err:
        return False, str(err)
    except Exception as err:  # every failure is a test result, never an exception
        return False, f"{place} is not reachable: {type(err).__name__}: {err}"


def without_userinfo(uri: str) -> str:
    """``uri`` without the ``user:password@`` of its network location (for messages and logs)."""
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
        return False, f"{where} is not reachable within {timeout:g} s: {_cause(err)}"
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
