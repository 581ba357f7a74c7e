"""Validation in the serving app and deployment to a running service, with real components:
an embedded MLflow store with registered churn versions, the serving app started as its own
process (ValidateServingOperator) or in a thread (the service deployments go to), real HTTP.

Versions: 1 logistic regression, 2 gradient boosting, 3 a model that loads but fails on every
request (its deployment must be rolled back by the error-rate check).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import ENTITY_COLUMN, FEATURE_COLUMNS, ChurnSimulator
from mlops_provider.core import deployment, io
from mlops_provider.core.models import resolve
from mlops_provider.core.results import check_result
from mlops_provider.hooks.mlflow import MlflowHook
from tests.integration.test_scoring_operator import make_pipeline, register

pytestmark = pytest.mark.integration

SIM = ChurnSimulator(seed=21, n_customers=600)
TOKEN = "deploy-test-token"


class FailingModel:
    """A pyfunc model that loads fine and fails on every prediction."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        raise RuntimeError("this model cannot predict")


def _register_failing(hook: MlflowHook, X: pd.DataFrame, name: str) -> str:  # noqa: N803
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.pyfunc import PythonModel

    class _Failing(FailingModel, PythonModel):
        pass

    with hook.activated():
        mlflow.set_experiment("scoring-operator-tests")
        with mlflow.start_run():
            mlflow.set_tag("mlops.entity_columns", '["customer_id"]')
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=_Failing(),
                signature=infer_signature(X, pd.Series([0.0] * len(X))),
                pip_requirements=["scikit-learn"],
            )
        return str(mlflow.register_model(info.model_uri, name).version)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    days = [date(2026, 1, d) for d in range(1, 4)]
    X = pd.concat([SIM.activity(d) for d in days], ignore_index=True)[FEATURE_COLUMNS]
    y = pd.concat([SIM.labels(d) for d in days], ignore_index=True)["churned"]
    root = tmp_path_factory.mktemp("deploy-mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    hook = MlflowHook(tracking_uri=uri)
    hook.client.create_experiment(
        "scoring-operator-tests", artifact_location=(root / "artifacts").as_uri()
    )
    assert register(hook, make_pipeline("logreg").fit(X, y), X, "churn") == "1"
    assert register(hook, make_pipeline("hgb").fit(X, y), X, "churn") == "2"
    assert _register_failing(hook, X, "churn") == "3"
    evaluation = root / "evaluation.parquet"
    io.write_table(SIM.activity(date(2026, 1, 5)).head(300), str(evaluation))
    return {"uri": uri, "evaluation": str(evaluation)}


@pytest.fixture
def churn(store: dict[str, Any], mlops_home: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowHook:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    hook = MlflowHook()
    hook.client.set_registered_model_alias("churn", "champion", "1")
    return hook


@pytest.fixture
def service(churn: MlflowHook) -> Iterator[Any]:
    """The serving app in this process, serving churn@champion (version 1), reloadable."""
    from mlops_provider.serving import ServingSettings, serve_in_thread

    settings = ServingSettings(
        model_name="churn",
        alias="champion",
        tracking_uri=churn.target.tracking_uri,
        admin_token=TOKEN,
        alias_poll_seconds=0,
    )
    with serve_in_thread(settings) as handle:
        yield handle


class Traffic:
    """Single-row /predict requests in a loop from a background thread; statuses counted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._rows = (
            SIM.activity(date(2026, 1, 6))
            .head(50)[[ENTITY_COLUMN, *FEATURE_COLUMNS]]
            .to_dict("records")
        )
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                response = client.post("/predict", json={"rows": [self._rows[i % 50]]})
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions[str(response.json()["model"]["version"])] += 1
                i += 1

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _served(url: str) -> str:
    with deployment.ServingClient(url) as client:
        _, body = client.ready()
    return str(body["model"]["version"])


# ------------------------------------------------------------------------ validation


def test_validation_starts_the_app_for_the_version_and_matches_batch_scoring(
    churn: MlflowHook, store: dict[str, Any]
) -> None:
    model = resolve(churn.client, "models:/churn/2")
    sample = io.read_table(store["evaluation"])
    result = deployment.validate_serving(
        model,
        churn.target,
        sample,
        entity_columns=[ENTITY_COLUMN],
        latency_requests=50,
        max_p99_latency_ms=60_000,  # latency is measured, not judged here (a busy machine)
    )
    assert result.passed, result.reasons
    out = result.to_result()
    assert check_result(out) == []
    assert out["status"] == "valid" and out["rows"] == sample.num_rows > 100
    assert out["mismatches"] == 0
    assert out["served_version"] == "2"
    assert set(out["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert 0 < out["latency_ms"]["p50"] <= out["latency_ms"]["p99"]


def test_validation_reports_answers_that_differ_and_a_blown_latency_budget(
    churn: MlflowHook, store: dict[str, Any], service: Any
) -> None:
    # the running service answers with version 1 while version 2 is being validated
    model = resolve(churn.client, "models:/churn/2")
    sample = io.read_table(store["evaluation"])
    result = deployment.validate_serving(
        model,
        churn.target,
        sample,
        entity_columns=[ENTITY_COLUMN],
        latency_requests=20,
        max_p99_latency_ms=0.001,
        url=service.url,
    )
    assert not result.passed
    text = " ".join(result.reasons)
    assert "serves version 1, expected 2" in text
    assert result.mismatches > 0 and f"{result.mismatches:,} of {sample.num_rows:,} rows" in text
    assert result.examples[0][ENTITY_COLUMN] is not None
    assert "probability_batch" in result.examples[0] or "prediction_batch" in result.examples[0]
    assert "p99 latency" in text and "over the budget of 0.001 ms" in text


def test_validation_names_a_missing_column(churn: MlflowHook, store: dict[str, Any]) -> None:
    from mlops_provider.core.scoring import ScoringInputError

    model = resolve(churn.client, "models:/churn/1")
    sample = io.read_table(store["evaluation"]).drop(["plan"])
    with pytest.raises(ScoringInputError, match=r"missing column\(s\) \['plan'\]"):
        deployment.validate_serving(model, churn.target, sample, latency_requests=0)


# ------------------------------------------------------------------------ deployment


def test_deploy_replaces_the_version_under_traffic_and_a_rerun_changes_nothing(
    service: Any,
) -> None:
    with deployment.ServingClient(service.url, token=TOKEN) as client, Traffic(service.url) as t:
        rollout = deployment.deploy(
            client, model_name="churn", version="2", verify_seconds=1.5, poll_seconds=0.2
        )
        again = deployment.deploy(client, model_name="churn", version=2, verify_seconds=1)
    assert rollout.status == "deployed" and rollout.previous_version == "1"
    assert rollout.window["requests"] > 0 and rollout.window["errors"] == 0
    assert again.status == "unchanged"
    assert _served(service.url) == "2"
    assert set(t.statuses) == {200}, t.statuses  # no request failed during the swap
    assert set(t.versions) <= {"1", "2"} and t.versions["2"] > 0


def test_a_version_that_fails_requests_is_rolled_back(service: Any) -> None:
    with (
        deployment.ServingClient(service.url, token=TOKEN) as client,
        Traffic(service.url),
        pytest.raises(deployment.DeploymentFailed) as caught,
    ):
        deployment.deploy(
            client,
            model_name="churn",
            version="3",
            verify_seconds=1.5,
            poll_seconds=0.2,
            min_requests=5,
        )
    message = str(caught.value)
    assert "error rate" in message and "answered 5xx" in message
    assert "rolled back to version 1" in message
    assert _served(service.url) == "1"


def test_a_version_that_does_not_load_is_refused_and_nothing_changes(service: Any) -> None:
    with deployment.ServingClient(service.url, token=TOKEN) as client:
        with pytest.raises(deployment.ReloadRefused, match="keeps serving"):
            deployment.deploy(client, model_name="churn", version="99", verify_seconds=0)
        with pytest.raises(deployment.ReloadRefused, match=r"\(40[13]\)"):
            deployment.ServingClient(service.url, token="wrong").reload({"version": "2"})
        from mlops_provider.core.errors import ParameterError

        with pytest.raises(ParameterError, match="serves model 'churn', not 'other'"):
            deployment.deploy(client, model_name="other", version="2")
    assert _served(service.url) == "1"


def test_a_healthy_canary_takes_a_share_then_becomes_the_primary(service: Any) -> None:
    with deployment.ServingClient(service.url, token=TOKEN) as client, Traffic(service.url) as t:
        rollout = deployment.deploy(
            client,
            model_name="churn",
            version="2",
            mode="canary",
            canary_share=0.5,
            verify_seconds=1.5,
            poll_seconds=0.2,
        )
        metrics = client.metrics()
    assert rollout.status == "deployed"
    assert t.versions["1"] > 0 and t.versions["2"] > 0
    assert 'variant="canary"' in metrics
    assert _served(service.url) == "2"


def test_a_failing_canary_is_removed_and_the_primary_stays(service: Any) -> None:
    with deployment.ServingClient(service.url, token=TOKEN) as client, Traffic(service.url):
        with pytest.raises(deployment.DeploymentFailed, match="rolled back to no canary"):
            deployment.deploy(
                client,
                model_name="churn",
                version="3",
                mode="canary",
                canary_share=0.5,
                verify_seconds=1.5,
                poll_seconds=0.2,
            )
        _, state = client.ready()
    assert state["canary"] is None and str(state["model"]["version"]) == "1"


# ------------------------------------------------------------------------ the reference DAG


def _deployment_dag() -> Any:
    import importlib
    import sys

    dags = str(Path(__file__).resolve().parents[2] / "dags")
    if dags not in sys.path:
        sys.path.insert(0, dags)
    dag = importlib.import_module("mlops_deployment").dag
    dag.get_task("validate_serving").max_p99_latency_ms = 60_000  # not judged on a busy machine
    return dag


def test_the_deployment_dag_validates_and_deploys_the_new_champion(
    airflow_db: Path,
    churn: MlflowHook,
    store: dict[str, Any],
    service: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    churn.client.set_registered_model_alias("churn", "champion", "2")
    run = churn.client.get_model_version("churn", "2").run_id
    churn.client.set_tag(run, "mlops.training_data", store["evaluation"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLOPS_SERVING_DEFAULT",
        json.dumps({"conn_type": "mlops_serving", "host": service.url, "password": TOKEN}),
    )
    monkeypatch.setenv("MLOPS_SERVING_VERIFY_SECONDS", "1")
    dr = run_dag(_deployment_dag())
    states = task_states(dr)
    assert set(states.values()) == {"success"}, states
    validated = xcom(dr, "validate_serving")
    assert validated["status"] == "valid" and validated["model"]["version"] == "2"
    deployed = xcom(dr, "deploy")
    assert check_result(deployed) == []
    assert deployed["status"] == "deployed" and deployed["previous_version"] == "1"
    assert _served(service.url) == "2"


def test_without_a_service_connection_the_dag_validates_and_skips_the_deployment(
    airflow_db: Path, churn: MlflowHook, store: dict[str, Any]
) -> None:
    run = churn.client.get_model_version("churn", "1").run_id
    churn.client.set_tag(run, "mlops.training_data", store["evaluation"])
    dr = run_dag(_deployment_dag())
    states = task_states(dr)
    assert states["validate_serving"] == "success", states
    assert states["service_configured"] == "success" and states["deploy"] == "skipped"
