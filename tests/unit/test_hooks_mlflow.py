"""MLflow calls of the provider: a retry budget in seconds instead of MLflow's minutes, applied
only inside the provider's calls, and one error naming the store, its connection and the cause
(an unreachable server, or a URI scheme MLflow does not know)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mlops_provider.core import config
from mlops_provider.core.errors import MlflowUnreachableError, MlflowUriError, ServiceError
from mlops_provider.core.mlflow_target import (
    MAX_RETRIES,
    RETRY_VARIABLES,
    MlflowTarget,
    activated,
    bounded_calls,
    check_uris,
    make_client,
    probe,
    retry_settings,
    split_userinfo,
    where,
)
from tests.conftest import free_port


@pytest.fixture(autouse=True)
def _no_retry_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without MLflow's HTTP variables and the provider's budget setting."""
    for key in RETRY_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("MLOPS_MLFLOW_MAX_RETRY_SECONDS", raising=False)
    monkeypatch.delenv("AIRFLOW__MLOPS__MLFLOW_MAX_RETRY_SECONDS", raising=False)


def _worst_wait(retries: int) -> float:
    """The longest MLflow's client sleeps over ``retries`` retries with backoff factor 1 (urllib3:
    no wait before the first retry, then 2, 4, 8 ... s capped at 120 s, plus jitter < 1 s)."""
    return sum(min(120.0, 2.0**k + 1.0) for k in range(1, retries))


@pytest.mark.parametrize("seconds", [0, 1, 3, 5, 10, 30, 60, 240, 10_000])
def test_retry_settings_fit_the_budget(seconds: float) -> None:
    settings = retry_settings(seconds)
    retries = int(settings["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    assert settings["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert 0 <= retries <= MAX_RETRIES
    assert _worst_wait(retries) <= max(seconds, 0)
    if retries < MAX_RETRIES:  # as many retries as fit: one more would not
        assert _worst_wait(retries + 1) >= seconds
    assert 10 <= int(settings["MLFLOW_HTTP_REQUEST_TIMEOUT"]) <= 120
    assert retry_settings(0)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert retry_settings(30)["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"


def test_the_budget_comes_from_the_target_then_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MlflowTarget("http://h:1").retry_seconds == config.DEFAULT_MLFLOW_MAX_RETRY_SECONDS
    monkeypatch.setenv("MLOPS_MLFLOW_MAX_RETRY_SECONDS", "7.5")
    assert MlflowTarget("http://h:1").retry_seconds == 7.5
    assert MlflowTarget("http://h:1", max_retry_seconds=2).retry_seconds == 2.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("MLOPS_MLFLOW_MAX_RETRY_SECONDS", bad)
        with pytest.raises(config.ConfigError, match=f"mlflow_max_retry_seconds.*got '{bad}'"):
            _ = MlflowTarget("http://h:1").retry_seconds


def test_the_retry_variables_apply_only_inside_and_the_users_own_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = MlflowTarget("http://127.0.0.1:1", source="connection x", max_retry_seconds=5)
    with bounded_calls(target):
        assert {k: os.environ[k] for k in RETRY_VARIABLES} == retry_settings(5)
        with bounded_calls(MlflowTarget("http://h:2", max_retry_seconds=60)):  # nested: unchanged
            assert (
                os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
                == retry_settings(5)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
            )
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
    assert not any(k in os.environ for k in RETRY_VARIABLES)

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")  # set by the deployment: it wins
    with pytest.raises(RuntimeError, match="boom"), bounded_calls(target):
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
        raise RuntimeError("boom")  # not a connection failure: passes unchanged
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_overlapping_blocks_in_threads_restore_the_environment() -> None:
    """The last block to leave restores the environment, whichever thread entered first."""
    target = MlflowTarget("http://h:1", max_retry_seconds=1)
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with bounded_calls(target):
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    with bounded_calls(target):
        leave.set()
        thread.join(10)
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert not any(k in os.environ for k in RETRY_VARIABLES)


def test_a_dead_server_is_one_error_within_the_budget() -> None:
    port = free_port()
    target = MlflowTarget(
        f"http://ops:s3cret@127.0.0.1:{port}",
        source="connection mlflow_dead",
        max_retry_seconds=3,
    )
    client = make_client(target)
    with pytest.raises(MlflowUnreachableError):  # the first call also imports MLflow's stores
        client.search_experiments()
    started = time.monotonic()
    with pytest.raises(MlflowUnreachableError) as raised:
        client.get_registered_model("churn")
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert message.startswith(
        f"MLflow at http://127.0.0.1:{port} (connection mlflow_dead) is not reachable: "
    ), message
    assert "Connection refused" in message and "retry budget 3 s" in message
    assert "s3cret" not in message and "ops@" not in message
    assert isinstance(raised.value, ServiceError)
    assert elapsed < 20, elapsed  # the budget (3 s) and a margin; MLflow's own: about 4 minutes
    assert not any(k in os.environ for k in RETRY_VARIABLES)

    # the fluent API in an activated block: the same error, the same budget
    import mlflow

    named = f"127.0.0.1:{port} .connection mlflow_dead"
    with pytest.raises(MlflowUnreachableError, match=named), activated(target):
        mlflow.search_experiments(max_results=1)


def test_a_store_no_target_registered_keeps_mlflows_behaviour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider's REST stores are MLflow's for a URI no target bound (user code)."""
    port = free_port()
    make_client(MlflowTarget(f"http://127.0.0.1:{free_port()}"))  # installs the builders
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException) as raised:
        MlflowClient(f"http://127.0.0.1:{port}").search_experiments()
    assert not isinstance(raised.value, MlflowUnreachableError)


@pytest.mark.parametrize(
    ("tracking", "registry", "bad"),
    [
        ("htp://127.0.0.1:5000", None, "htp://127.0.0.1:5000"),
        ("http://127.0.0.1:5000", "sqlte:////tmp/reg.db", "sqlte:////tmp/reg.db"),
    ],
)
def test_an_unknown_scheme_is_refused_before_any_call(
    tracking: str, registry: str | None, bad: str, tmp_path: Path
) -> None:
    target = MlflowTarget(tracking, registry_uri=registry, source="connection mlflow_typo")
    with pytest.raises(MlflowUriError) as raised:
        check_uris(target)
    message = str(raised.value)
    assert message.startswith(f"MLflow at {bad} (connection mlflow_typo) rejected the URI: ")
    assert "http, https" in message and "sqlite" in message and "did you mean" in message
    with pytest.raises(MlflowUriError):
        make_client(target)
    with pytest.raises(MlflowUriError), activated(target):
        pass
    ok, tested = probe(target)
    assert not ok and tested == message
    for good in ("http://h:1", "https://h", "sqlite:///x.db", str(tmp_path), "file:///x"):
        check_uris(MlflowTarget(good))


def test_where_never_shows_credentials() -> None:
    assert where("https://alice:pw@mlflow.example.com:8443/x", "connection c") == (
        "MLflow at https://mlflow.example.com:8443/x (connection c)"
    )
    assert where("sqlite:////data/mlflow.db", "embedded default") == (
        "MLflow at sqlite:////data/mlflow.db (embedded default)"
    )


# ------------------------------------------------------------ credentials in URIs and requests


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://admin:p%40ss@mlflow:5000/base", ("http://mlflow:5000/base", "admin", "p@ss")),
        ("https://tok@mlflow.example", ("https://mlflow.example", "tok", None)),
        ("http://mlflow:5000", ("http://mlflow:5000", None, None)),
        ("postgresql://u:pw@db/mlflow", ("postgresql://u:pw@db/mlflow", None, None)),
        (None, (None, None, None)),
    ],
)
def test_split_userinfo(uri: str | None, expected: tuple[str | None, ...]) -> None:
    assert split_userinfo(uri) == expected


def test_a_uri_with_user_info_becomes_credentials() -> None:
    basic = MlflowTarget("http://admin:s3cret@mlflow:5000", registry_uri="http://mlflow:5000")
    assert (basic.tracking_uri, basic.username, basic.password) == (
        "http://mlflow:5000",
        "admin",
        "s3cret",
    )
    assert "s3cret" not in repr(basic) and basic.secrets == ("s3cret",)
    explicit = MlflowTarget("http://admin:from-uri@mlflow:5000", token="explicit")
    assert (explicit.token, explicit.username, explicit.tracking_uri) == (
        "explicit",
        None,
        "http://mlflow:5000",
    )
    database = MlflowTarget("postgresql://mlflow:db-pw@db:5432/mlflow")
    assert database.tracking_uri.endswith("@db:5432/mlflow") and database.secrets == ("db-pw",)
    assert not database.has_credentials


def test_credentials_cover_urls_under_their_uri_only() -> None:
    from mlops_provider.core.mlflow_target import _host_creds, _register_credentials

    base = f"http://127.0.0.1:{free_port()}/mlflow"
    _register_credentials(MlflowTarget(base, username="u", password="p", source="connection a"))
    upload = _host_creds(f"{base}/api/2.0/mlflow-artifacts/artifacts/1/x/model.pkl")
    assert (upload.username, upload.password) == ("u", "p")
    for elsewhere in (f"{base}-other/api", base.replace("/mlflow", "/api/2.0/mlflow")):
        creds = _host_creds(elsewhere)
        assert creds.username is None and creds.token is None, elsewhere
    # a target rebuilt from a client's URI keeps the connection's credentials ...
    _register_credentials(MlflowTarget(base, source="explicit"))
    assert _host_creds(f"{base}/api/2.0/x").username == "u"
    # ... a connection without credentials unbinds them
    _register_credentials(MlflowTarget(base, source="connection b"))
    assert _host_creds(f"{base}/api/2.0/x").username is None


def test_mlflows_artifact_repositories_use_the_bound_credentials() -> None:
    from mlflow.store.artifact import http_artifact_repo, mlflow_artifacts_repo

    from mlops_provider.core.mlflow_target import _host_creds

    make_client(MlflowTarget(f"http://127.0.0.1:{free_port()}", token="t", source="connection"))
    assert http_artifact_repo.get_default_host_creds is _host_creds
    assert mlflow_artifacts_repo.get_default_host_creds is _host_creds


def test_telemetry_is_off_once_a_client_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.telemetry.client import get_telemetry_client
    from mlflow.telemetry.utils import is_telemetry_disabled

    from mlops_provider.core import mlflow_target

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    monkeypatch.setattr(mlflow_target, "_TELEMETRY_OFF", False)
    make_client(MlflowTarget("sqlite:///:memory:"))
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert is_telemetry_disabled() and get_telemetry_client() is None
