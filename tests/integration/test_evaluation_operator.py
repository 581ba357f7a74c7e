"""EvaluateModelOperator (with training and promotion around it) in one real DAG, embedded store.

The DAG trains three candidates: A (weak: two features), B (all features), C (a constant-prior
dummy, worse than anything). A is evaluated on an explicit cold start and promoted; B (also
with ``cold_start``, which only allows a missing champion) is compared with A, beats it and is
promoted; C loses to B and is not promoted; a strict gate on C fails the task; evaluation data
lacking a column fails its task. The candidate may be named by every model URI form: the alias
(``models:/churn@champion``), a version, a run's artifact path and the logged model.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import ChurnSimulator
from mlops_provider.core import io
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.results import check_result
from mlops_provider.exceptions import MlopsProviderDeprecationWarning

pytestmark = pytest.mark.integration

DAY = date(2026, 1, 10)
LOGREG = "sklearn.linear_model.LogisticRegression"


def write_days(uri: str, first: date, days: int, seed: int = 5) -> str:
    sim = ChurnSimulator(seed=seed, n_customers=800)
    frames = []
    for i in range(days):
        day = first + timedelta(days=i)
        frames.append(
            sim.activity(day).merge(sim.labels(day), on=["customer_id", "event_timestamp"])
        )
    io.write_table(pd.concat(frames, ignore_index=True), uri)
    return uri


@pytest.fixture
def lifecycle_run(airflow_db, mlops_home: Path):
    from airflow.sdk import DAG

    from mlops_provider.operators.evaluation import EvaluateModelOperator
    from mlops_provider.operators.registry import PromoteModelOperator
    from mlops_provider.operators.training import TrainModelOperator

    data = mlops_home / "data"
    train_uri = write_days(str(data / "train.parquet"), date(2026, 1, 1), 4)
    eval_uri = write_days(str(data / "eval.parquet"), date(2026, 1, 5), 3)
    broken_uri = str(data / "eval_no_plan.parquet")
    io.write_table(io.read_pandas(eval_uri).drop(columns=["plan"]), broken_uri)
    common = {"training_data": train_uri, "target": "churned", "experiment_name": "it-eval"}
    with DAG(
        "evaluate_lifecycle",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:
        train_a = TrainModelOperator(
            task_id="train_a",
            estimator=LOGREG,
            feature_columns=["plan", "payment_method"],
            **common,
        )
        train_b = TrainModelOperator(
            task_id="train_b", estimator=LOGREG, estimator_params={"max_iter": 300}, **common
        )
        train_c = TrainModelOperator(
            task_id="train_c",
            estimator="sklearn.dummy.DummyClassifier",
            estimator_params={"strategy": "prior"},
            **common,
        )
        ev = {"registered_model_name": "churn", "evaluation_data": eval_uri}
        eval_a = EvaluateModelOperator(
            task_id="eval_a",
            model_uri=train_a.output["model_uri"],
            thresholds={"roc_auc": {"min": 0.4, "min_improvement": 0.0}},
            cold_start=True,
            **ev,
        )
        promote_a = PromoteModelOperator(
            task_id="promote_a", registered_model_name="churn", evaluation=eval_a.output
        )
        eval_b = EvaluateModelOperator(
            task_id="eval_b",
            model_uri=train_b.output["model_uri"],
            thresholds={"roc_auc": {"min": 0.6, "min_improvement": 0.0}, "log_loss": 0.6},
            cold_start="{{ 'true' }}",  # a champion exists: compared as usual
            **ev,
        )
        promote_b = PromoteModelOperator(
            task_id="promote_b", registered_model_name="churn", evaluation=eval_b.output
        )
        eval_c = EvaluateModelOperator(
            task_id="eval_c", model_uri=train_c.output["model_uri"], **ev
        )
        promote_c = PromoteModelOperator(
            task_id="promote_c", registered_model_name="churn", evaluation=eval_c.output
        )
        strict_c = EvaluateModelOperator(
            task_id="strict_c",
            model_uri=train_c.output["model_uri"],
            fail_on_rejection=True,
            report_uri=str(data / "reports" / "strict_c.html"),
            **ev,
        )
        missing = EvaluateModelOperator(
            task_id="eval_missing",
            model_uri=train_b.output["model_uri"],
            registered_model_name="churn",
            evaluation_data=broken_uri,
        )
        # every model URI form names a candidate; the old threshold key still works
        with pytest.warns(MlopsProviderDeprecationWarning, match="'max_regression'"):
            by_alias = EvaluateModelOperator(
                task_id="eval_alias",
                model_uri="models:/churn@champion",
                thresholds={"roc_auc": {"max_regression": 0.0}},
                **ev,
            )
        by_version = EvaluateModelOperator(
            task_id="eval_version", model_uri="models:/churn/1", **ev
        )
        by_run = EvaluateModelOperator(
            task_id="eval_run",
            model_uri="runs:/{{ ti.xcom_pull(task_ids='train_b')['run_id'] }}/model",
            thresholds='{"roc_auc": {"max_degradation": 0.0}}',  # JSON text, as templates give
            **ev,
        )
        forms = [by_alias, by_version, by_run]
        train_a >> eval_a >> promote_a >> eval_b >> promote_b >> [eval_c, strict_c, missing, *forms]
        [train_b, train_c] >> eval_b
        eval_c >> promote_c
    dr = run_dag(dag, DAY)
    return dr, mlops_home, eval_uri, broken_uri


def test_evaluation_gates_the_lifecycle(lifecycle_run) -> None:
    dr, home, _, broken_uri = lifecycle_run
    states = task_states(dr)
    failed = {t for t, s in states.items() if s != "success"}
    assert failed == {"strict_c", "eval_missing"}, states
    client = make_client(MlflowTarget(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"))

    for task_id in ("eval_a", "eval_b", "eval_c", "eval_alias", "eval_version", "eval_run"):
        assert check_result(xcom(dr, task_id)) == [], task_id
    assert_every_model_uri_form_is_a_candidate(dr)

    a = xcom(dr, "eval_a")
    assert a["passed"] and a["cold_start"] and a["champion"] is None
    assert (a["status"], a["model"]["uri"]) == ("accepted", xcom(dr, "train_a")["model_uri"])
    assert a["model"]["name"] is None and a["model"]["run_id"] == xcom(dr, "train_a")["run_id"]
    assert "does not exist yet" in a["cold_start_reason"] and "cold start" in a["rule"]
    skipped = [c for c in a["checks"] if c["check"] == "min_improvement"]
    assert skipped and "cold start" in skipped[0]["reason"]
    assert xcom(dr, "promote_a")["version"] == "1"

    b = xcom(dr, "eval_b")
    assert b["cold_start"] is False and b["cold_start_reason"] is None
    assert b["champion_version"] == "1" and b["champion"]["run_id"] == xcom(dr, "train_a")["run_id"]
    assert b["candidate_run_id"] == xcom(dr, "train_b")["run_id"]
    assert b["passed"], b["reason"]
    auc = b["metrics"]["roc_auc"]
    assert auc["candidate"] > auc["champion"] and auc["delta"] > 0
    assert {c["metric"] for c in b["checks"]} == {"roc_auc", "log_loss"}
    assert all(c["reason"] for c in b["checks"])
    pb = xcom(dr, "promote_b")
    assert (pb["promoted"], pb["version"], pb["previous_version"]) == (True, "2", "1")

    c = xcom(dr, "eval_c")
    assert not c["passed"] and c["champion_version"] == "2"
    assert "default rule" in c["rule"] and "roc_auc" in c["reason"]
    # record_rejection in the reference training DAG reads these
    assert c["status"] == "rejected" and len(c["reasons"]) == 1
    assert c["reasons"][0].startswith("roc_auc: candidate 0.5 is worse than champion")
    assert c["rows"] == c["n_rows"] > 0 and c["champion"]["version"] == "2"
    assert c["metrics"]["roc_auc"]["candidate"] == pytest.approx(0.5)
    pc = xcom(dr, "promote_c")
    assert pc["promoted"] is False and pc["version"] == "3"
    model = client.get_registered_model("churn")
    assert {k: str(v) for k, v in model.aliases.items()} == {
        "champion": "2",
        "previous_champion": "1",
    }
    assert client.get_model_version("churn", "3").tags["mlops.promotion_status"] == "rejected"

    # the result and the report are on the candidate's run and in the data root
    run_id = b["candidate_run_id"]
    paths = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert paths == {"evaluation/result.json", "evaluation/report.html"}
    local = client.download_artifacts(run_id, "evaluation/result.json", str(home / "dl"))
    assert json.loads(Path(local).read_text())["passed"] is True
    report = Path(b["report_uri"])
    assert report.exists() and report.name == "report.html" and report.parent.name == "eval_b"
    assert report.parent.parent.name == f"dt={dr.data_interval_start:%Y-%m-%d}"
    assert report.is_relative_to(home / "data" / "reports" / "evaluation" / "churn")
    assert json.loads((report.parent / "result.json").read_text())["status"] == "accepted"
    html = report.read_text()
    assert "ROC" in html and html.count("<img ") == 2
    rel = report.resolve().relative_to((home / "data" / "reports").resolve()).as_posix()
    assert xcom(dr, "eval_b", key="_link_ReportLink") == f"/mlops/reports/{rel}"
    assert (home / "data" / "reports" / "strict_c.html").exists()  # written before the rejection
    assert (home / "data" / "reports" / "strict_c.json").exists()  # its JSON twin

    # the failed tasks' errors, reproduced directly: clear and naming the problem
    from mlops_provider.core.evaluation import EvaluationDataError, evaluate_candidate
    from mlops_provider.core.models import ModelNotFoundError

    target = MlflowTarget(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    with pytest.raises(EvaluationDataError, match=r"lacks column\(s\) \['plan'\]"):
        evaluate_candidate(
            target,
            model_uri=xcom(dr, "train_b")["model_uri"],
            registered_model_name="churn",
            evaluation_data=broken_uri,
        )
    # a misspelt model or alias is not a cold start: what exists is named
    for name, alias, expected in (
        ("chrun", "champion", r"registered model 'chrun' does not exist \(registered models: "),
        ("churn", "champoin", r"'churn' has no alias 'champoin' \(its aliases: @champion -> "),
    ):
        with pytest.raises(ModelNotFoundError, match=expected) as raised:
            evaluate_candidate(
                target,
                model_uri=xcom(dr, "train_b")["model_uri"],
                registered_model_name=name,
                alias=alias,
                evaluation_data=broken_uri,
            )
        assert "did you mean 'ch" in str(raised.value) and "cold_start=True" in str(raised.value)
    with pytest.raises(ModelNotFoundError, match="logged model m-0000000000 does not exist"):
        evaluate_candidate(
            target,
            model_uri="models:/m-0000000000",
            registered_model_name="churn",
            evaluation_data=broken_uri,
        )


def assert_every_model_uri_form_is_a_candidate(dr) -> None:
    """models:/name@alias (rejected before), models:/name/version and runs:/ candidates."""
    b_run = xcom(dr, "train_b")["run_id"]
    alias = xcom(dr, "eval_alias")  # the champion (version 2 = B) against itself
    assert alias["passed"] and alias["status"] == "accepted"
    assert alias["model"] == {
        "name": "churn",
        "version": "2",
        "run_id": b_run,
        "uri": "models:/churn/2",
        "alias": "champion",
    }
    assert alias["champion_version"] == "2" and alias["thresholds"] == {
        "roc_auc": {"max_degradation": 0.0}
    }
    assert [c["check"] for c in alias["checks"]] == ["max_degradation"]
    version = xcom(dr, "eval_version")  # A (version 1) is worse than the champion B
    assert version["model"]["version"] == "1" and version["model"]["uri"] == "models:/churn/1"
    assert version["status"] == "rejected" and version["reasons"]
    by_run = xcom(dr, "eval_run")
    assert by_run["model"]["uri"] == f"runs:/{b_run}/model" and by_run["model"]["run_id"] == b_run
    assert by_run["passed"] and by_run["mlflow_run_id"] == b_run
