"""MlflowHook and FeastHook through AIRFLOW_CONN_* environment variables, against real stores."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from mlops_provider.hooks.feast import FeastHook
from mlops_provider.hooks.mlflow import MlflowHook

pytestmark = pytest.mark.integration


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_embedded_fallback_without_connection_or_env(mlops_home: Path, caplog, capsys) -> None:
    with caplog.at_level(logging.INFO):
        hook = MlflowHook()
        target = hook.target
    logged = caplog.text + capsys.readouterr().out
    assert target.source == "embedded default"
    assert target.tracking_uri == f"sqlite:///{mlops_home / 'mlflow' / 'mlflow.db'}"
    assert target.artifact_location == (mlops_home / "mlflow" / "artifacts").as_uri()
    assert "embedded default" in logged
    ok, message = hook.test_connection()  # the provider's own default: created on first use
    assert ok and "created by the first task" in message, message
    assert not (mlops_home / "mlflow" / "mlflow.db").exists()
    exp_id = hook.get_or_create_experiment("hook-test")
    assert hook.get_or_create_experiment("hook-test") == exp_id
    ok, message = hook.test_connection()
    assert ok, message
    assert (mlops_home / "mlflow" / "mlflow.db").exists()
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_environment_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    target = MlflowHook().target
    assert (target.tracking_uri, target.source) == (uri, "environment MLFLOW_TRACKING_URI")


def test_connection_to_real_server_over_http(mlflow_server, monkeypatch) -> None:
    _set_conn(
        monkeypatch,
        "mlflow_http",
        conn_type="mlflow",
        host="127.0.0.1",
        port=mlflow_server.port,
        schema="http",
    )
    hook = MlflowHook(mlflow_conn_id="mlflow_http")
    assert hook.target.tracking_uri == mlflow_server.url
    assert hook.target.source == "connection mlflow_http"
    ok, message = hook.test_connection()
    assert ok, message
    exp_id = hook.get_or_create_experiment("over-http")
    run = hook.client.create_run(exp_id)
    hook.client.log_metric(run.info.run_id, "m", 1.5)
    assert hook.client.get_run(run.info.run_id).data.metrics == {"m": 1.5}
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_token_is_sent_masked_and_not_exported(mlflow_server, monkeypatch) -> None:
    _set_conn(
        monkeypatch,
        "mlflow_tok",
        conn_type="mlflow",
        host=mlflow_server.url,
        password="s3cr3t-token",
    )
    hook = MlflowHook(mlflow_conn_id="mlflow_tok")
    target = hook.target
    assert target.token == "s3cr3t-token" and target.username is None
    assert "s3cr3t-token" not in repr(target)
    from mlops_provider.core.mlflow_target import _host_creds

    assert hook.client is not None  # binding the client registers the credentials
    creds = _host_creds(mlflow_server.url)
    assert creds.token == "s3cr3t-token"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert hook.test_connection()[0]  # the server ignores auth; the header is still sent


def test_basic_auth_and_extra_uris(monkeypatch, tmp_path: Path) -> None:
    registry = f"sqlite:///{tmp_path / 'reg.db'}"
    _set_conn(
        monkeypatch,
        "mlflow_basic",
        conn_type="mlflow",
        host="mlflow.internal",
        login="alice",
        password="pw",
        extra={"tracking_uri": "https://mlflow.internal:8443", "registry_uri": registry},
    )
    target = MlflowHook(mlflow_conn_id="mlflow_basic").target
    assert target.tracking_uri == "https://mlflow.internal:8443"
    assert target.effective_registry_uri == registry
    assert (target.username, target.password) == ("alice", "pw")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", False),
        ("False", False),
        ("0", False),
        (False, False),
        ("true", True),
        (True, True),
    ],
)
def test_insecure_tls_text_false_keeps_verification_on(monkeypatch, value, expected) -> None:
    """``bool("false")`` is True: TLS verification must not be switched off by the text
    "false" (JSON extra or URI form)."""
    _set_conn(
        monkeypatch,
        "mlflow_tls",
        conn_type="mlflow",
        host="mlflow.internal",
        extra={"tracking_uri": "https://mlflow.internal:8443", "insecure_tls": value},
    )
    assert MlflowHook(mlflow_conn_id="mlflow_tls").target.insecure_tls is expected


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"insecure_tls": "maybe"}, "'insecure_tls' must be true or false, got 'maybe'"),
        ({"insecure_tls": 2}, "'insecure_tls' must be true or false, got 2"),
        ({"tracking_uri": 5000}, "'tracking_uri' must be text, got 5000"),
        ({"token": ["a", "b"]}, "'token' must be text"),
        ({"max_retry_seconds": "soon"}, "'max_retry_seconds' must be a number of seconds >= 0"),
        ({"max_retry_seconds": -1}, "'max_retry_seconds' must be a number of seconds >= 0"),
        ({"max_retry_seconds": True}, "'max_retry_seconds' must be a number of seconds >= 0"),
    ],
)
def test_typed_extras_are_parsed_strictly(monkeypatch, extra, named) -> None:
    _set_conn(monkeypatch, "mlflow_typed", conn_type="mlflow", host="mlflow.internal", extra=extra)
    with pytest.raises(ValueError, match="Connection mlflow_typed: extra ") as err:
        _ = MlflowHook(mlflow_conn_id="mlflow_typed").target
    assert named in str(err.value)
    ok, message = MlflowHook(mlflow_conn_id="mlflow_typed").test_connection()
    assert not ok and named in message


def test_unknown_extra_is_reported(monkeypatch, caplog) -> None:
    _set_conn(
        monkeypatch,
        "mlflow_typo",
        conn_type="mlflow",
        host="mlflow.internal",
        extra={"insecure_tsl": "true"},
    )
    with caplog.at_level(logging.WARNING):
        target = MlflowHook(mlflow_conn_id="mlflow_typo").target
    assert target.insecure_tls is False
    assert "'insecure_tsl' not used" in caplog.text and "insecure_tls" in caplog.text
    _set_conn(monkeypatch, "feast_typed", conn_type="feast", extra={"repo_path": 3})
    with pytest.raises(ValueError, match="extra 'repo_path' must be text, got 3"):
        _ = FeastHook("feast_typed").repo_path


def test_connection_test_is_bounded_and_creates_nothing(monkeypatch, tmp_path: Path) -> None:
    """ "Test" against a host that does not answer returned after MLflow's retries (minutes);
    testing an ``sqlite:`` URI created the database file on the API server's host."""
    import socket
    import time

    from mlops_provider.hooks.mlflow import TEST_TIMEOUT_SECONDS

    # a server that accepts connections and never answers (a hung or overloaded host)
    with socket.create_server(("127.0.0.1", 0), backlog=8) as hung:
        port = hung.getsockname()[1]
        _set_conn(monkeypatch, "mlflow_hung", conn_type="mlflow", host="127.0.0.1", port=port)
        started = time.monotonic()
        ok, message = MlflowHook(mlflow_conn_id="mlflow_hung").test_connection()
        elapsed = time.monotonic() - started
    assert not ok and f"127.0.0.1:{port}" in message and "not reachable" in message
    assert elapsed < TEST_TIMEOUT_SECONDS + 10, elapsed  # MLflow's own retries take minutes

    store = tmp_path / "nowhere" / "mlflow.db"
    _set_conn(
        monkeypatch,
        "mlflow_sqlite",
        conn_type="mlflow",
        extra={"tracking_uri": f"sqlite:///{store}"},
    )
    ok, message = MlflowHook(mlflow_conn_id="mlflow_sqlite").test_connection()
    assert not ok and str(store) in message and "creates nothing" in message
    assert not store.exists() and not store.parent.exists()

    _set_conn(
        monkeypatch,
        "mlflow_secret",
        conn_type="mlflow",
        host="http://admin:hunter2@127.0.0.1:1",
    )
    ok, message = MlflowHook(mlflow_conn_id="mlflow_secret").test_connection()
    assert not ok and "hunter2" not in message


def test_ui_url_is_what_links_are_built_on(monkeypatch) -> None:
    """Inside a container network the tracking URI names a service a browser cannot reach;
    the ``ui_url`` extra is the address links use."""
    from mlops_provider.links.mlflow import mlflow_ui_model_version_url

    _set_conn(
        monkeypatch,
        "mlflow_compose",
        conn_type="mlflow",
        host="mlflow",
        port=5000,
        extra={"ui_url": "http://localhost:5000"},
    )
    target = MlflowHook(mlflow_conn_id="mlflow_compose").target
    assert target.tracking_uri == "http://mlflow:5000"
    assert mlflow_ui_model_version_url(target.ui_base_uri, "churn", 3) == (
        "http://localhost:5000/#/models/churn/versions/3"
    )
    plain = MlflowHook(tracking_uri="http://mlflow.internal:5000").target
    assert plain.ui_base_uri == "http://mlflow.internal:5000"


def test_unreachable_server_reports_failure(monkeypatch) -> None:
    from tests.conftest import free_port

    port = free_port()
    _set_conn(monkeypatch, "mlflow_down", conn_type="mlflow", host="127.0.0.1", port=port)
    ok, message = MlflowHook(mlflow_conn_id="mlflow_down").test_connection()
    assert not ok and str(port) in message


def test_a_dead_server_fails_every_call_in_seconds_naming_the_connection(monkeypatch) -> None:
    """MLflow's client retries a closed port for about 4 minutes and then raises its own
    exception; through the hook every call fails within the connection's retry budget with one
    error naming the store and the connection, never the credentials."""
    import mlflow

    from mlops_provider.core.errors import MlflowUnreachableError
    from tests.conftest import free_port

    port = free_port()
    _set_conn(
        monkeypatch,
        "mlflow_dead",
        conn_type="mlflow",
        host="127.0.0.1",
        port=port,
        login="ops",
        password="s3cret",
        extra={"max_retry_seconds": "2"},
    )
    hook = MlflowHook(mlflow_conn_id="mlflow_dead")
    assert hook.target.max_retry_seconds == 2.0 and hook.target.retry_seconds == 2.0
    error = rf"^MLflow at http://127\.0\.0\.1:{port} \(connection mlflow_dead\) is not reachable: "
    calls = {
        "search": lambda: hook.client.search_experiments(),
        "experiment": lambda: hook.get_or_create_experiment("dead"),
        "alias": lambda: hook.client.get_model_version_by_alias("churn", "champion"),
        "fluent": lambda: _fluent_run(hook, mlflow),
    }
    for name, call in calls.items():
        with pytest.raises(MlflowUnreachableError, match=error) as raised:
            call()
        assert "s3cret" not in str(raised.value), name
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def _fluent_run(hook: MlflowHook, mlflow: object) -> None:
    with hook.activated():
        mlflow.start_run()  # type: ignore[attr-defined]


def test_activated_restores_fluent_state(mlops_home: Path) -> None:
    import mlflow

    before = mlflow.get_tracking_uri()
    hook = MlflowHook()
    with hook.activated():
        assert mlflow.get_tracking_uri() == hook.target.tracking_uri
        assert os.environ["MLFLOW_TRACKING_URI"] == hook.target.tracking_uri
    assert mlflow.get_tracking_uri() == before
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_missing_named_connection_raises() -> None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException):
        _ = MlflowHook(mlflow_conn_id="does_not_exist").target


def test_feast_hook_default_repo_and_test_connection(mlops_home: Path) -> None:
    """A test reads the registry and creates nothing: Feast's own loading wrote an empty
    registry (and the store directories) where none existed."""
    from mlops_provider.core.features import apply_repo

    ok, message = FeastHook().test_connection()
    registry = mlops_home / "feast" / "registry.db"
    assert not ok and f"no registry at {registry}" in message and "creates nothing" in message
    assert not (mlops_home / "feast").exists()
    hook = FeastHook()
    assert hook.repo_path.name == "feature_repo"
    assert hook.repo_config.online_store.type == "sqlite"
    apply_repo(hook.store)
    ok, message = FeastHook().test_connection()
    assert ok and "1 feature views" in message and str(registry) in message, message


def test_feast_hook_connection_overrides(monkeypatch, mlops_home: Path) -> None:
    from mlops_provider.core.config import default_feature_repo

    overrides = {"online_store": {"type": "redis", "connection_string": "127.0.0.1:6379"}}
    _set_conn(
        monkeypatch,
        "feast_redis",
        conn_type="feast",
        extra={
            "repo_path": str(default_feature_repo()),
            "feature_store_yaml": json.dumps(overrides),
        },
    )
    hook = FeastHook(feast_conn_id="feast_redis")
    assert hook.repo_config.online_store.type == "redis"


def test_feast_hook_without_connection_or_settings_names_them(
    monkeypatch: pytest.MonkeyPatch, mlops_home: Path
) -> None:
    """Installed from a wheel, the provider cannot guess a repo: with no feast_default
    connection and neither MLOPS_FEATURE_REPO nor MLOPS_PROJECT_ROOT, the error says what to set."""
    from mlops_provider.core.config import ConfigError
    from mlops_provider.core.errors import CoreError

    monkeypatch.delenv("MLOPS_FEATURE_REPO", raising=False)
    monkeypatch.delenv("MLOPS_PROJECT_ROOT", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_FEAST_DEFAULT", raising=False)
    with pytest.raises(ConfigError, match="MLOPS_FEATURE_REPO") as raised:
        _ = FeastHook().repo_path
    assert isinstance(raised.value, CoreError)
    assert "MLOPS_PROJECT_ROOT" in str(raised.value) and "feast_default" in str(raised.value)
    ok, message = FeastHook().test_connection()
    assert not ok and "MLOPS_FEATURE_REPO" in message


def test_feast_hook_repo_from_settings(monkeypatch: pytest.MonkeyPatch, mlops_home: Path) -> None:
    """MLOPS_FEATURE_REPO wins over MLOPS_PROJECT_ROOT; either one is enough."""
    from tests.conftest import ROOT

    repo = ROOT / "include" / "feature_repo"
    monkeypatch.delenv("MLOPS_PROJECT_ROOT", raising=False)
    monkeypatch.setenv("MLOPS_FEATURE_REPO", str(repo))
    assert FeastHook().repo_path == repo.resolve()
    monkeypatch.delenv("MLOPS_FEATURE_REPO")
    monkeypatch.setenv("MLOPS_PROJECT_ROOT", str(ROOT))
    assert FeastHook().repo_path == repo.resolve()
    monkeypatch.setenv("MLOPS_FEATURE_REPO", str(mlops_home / "elsewhere"))
    from mlops_provider.core.feast_config import FeastRepoError

    with pytest.raises(FeastRepoError, match="elsewhere does not exist"):
        _ = FeastHook().repo_path


def test_feast_hook_missing_repo_is_clear(tmp_path: Path) -> None:
    from mlops_provider.core.feast_config import FeastRepoError

    with pytest.raises(FeastRepoError, match="does not exist"):
        _ = FeastHook(repo_path=str(tmp_path / "nope")).repo_path
    ok, message = FeastHook(repo_path=str(tmp_path / "nope")).test_connection()
    assert not ok and "does not exist" in message


def test_activated_ignores_an_experiment_made_active_elsewhere(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import fluent

    # other code in the worker process called mlflow.set_experiment on another store
    monkeypatch.setattr(fluent, "_active_experiment_id", "424242")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "424242")
    hook = MlflowHook()
    exp_id = hook.get_or_create_experiment("ours")
    run = hook.client.create_run(exp_id)
    with hook.activated(), mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_metric("m", 1.0)
    assert hook.client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    assert fluent._active_experiment_id == "424242"  # restored for the other code
    assert os.environ["MLFLOW_EXPERIMENT_ID"] == "424242"
