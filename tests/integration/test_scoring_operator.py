"""BatchScoringOperator and the sharded scoring pattern inside real DAGs (``dag.test()``),
against the embedded MLflow store, a real ``mlflow server`` over HTTP and a Feast repo."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import (
    CATEGORICAL_FEATURES,
    ENTITY_COLUMN,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    TIMESTAMP_COLUMN,
    ChurnSimulator,
)
from mlops_provider.core import io
from mlops_provider.core.results import check_result
from mlops_provider.exceptions import ScoringError
from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.operators.scoring import (
    BatchScoringOperator,
    PlanScoringShardsOperator,
    VerifyScoringOperator,
)
from tests.conftest import MAX_TASK_LOG_LINES, RecordingHandler, task_log_records

pytestmark = pytest.mark.integration

DAY = date(2026, 1, 12)
SIM = ChurnSimulator(seed=11, n_customers=2000)
HGB_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


# ----------------------------------------------------------------------------- fixtures


def make_pipeline(kind: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC_FEATURES),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES),
        ]
    )
    clf: Any = (
        LogisticRegression(max_iter=500)
        if kind == "logreg"
        else HistGradientBoostingClassifier(max_iter=25, random_state=0)
    )
    return Pipeline([("pre", pre), ("clf", clf)])


@pytest.fixture(scope="module")
def pipelines() -> dict[str, Any]:
    days = [date(2026, 1, d) for d in range(1, 4)]
    X = pd.concat([SIM.activity(d) for d in days], ignore_index=True)[FEATURE_COLUMNS]
    y = pd.concat([SIM.labels(d) for d in days], ignore_index=True)["churned"]
    return {
        "X": X,
        "logreg": make_pipeline("logreg").fit(X, y),
        "hgb": make_pipeline("hgb").fit(X, y),
    }


def register(hook: MlflowHook, pipe: Any, X: pd.DataFrame, name: str) -> str:  # noqa: N803
    """Log ``pipe`` in a run of ``hook``'s store (recording its entity column, as training
    does), register it as ``name``; the new version."""
    import mlflow
    from mlflow.models import infer_signature

    with hook.activated():
        mlflow.set_experiment("scoring-operator-tests")
        with mlflow.start_run():
            mlflow.set_tag("mlops.entity_columns", '["customer_id"]')
            info = mlflow.sklearn.log_model(
                pipe,
                name="model",
                signature=infer_signature(X, pipe.predict(X)),
                input_example=X.head(3),
                pip_requirements=["scikit-learn"],
                skops_trusted_types=[HGB_TREE],
            )
        version = mlflow.register_model(info.model_uri, name).version
    return str(version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, pipelines: dict[str, Any]) -> str:
    """A SQLite MLflow store shared by the module: ``churn`` v1 (logistic), v2 (boosting)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    hook = MlflowHook(tracking_uri=uri)
    hook.client.create_experiment(
        "scoring-operator-tests", artifact_location=(root / "artifacts").as_uri()
    )
    assert register(hook, pipelines["logreg"], pipelines["X"], "churn") == "1"
    assert register(hook, pipelines["hgb"], pipelines["X"], "churn") == "2"
    return uri


@pytest.fixture
def churn(
    mlops_home: Path,
    registry: str,
    pipelines: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """The module's store as this test's MLflow (``MLFLOW_TRACKING_URI``; no connection), with
    ``champion`` on v1 (logistic); v2 is the gradient boosting pipeline."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    hook = MlflowHook()
    hook.client.set_registered_model_alias("churn", "champion", "1")
    return {"hook": hook, "v1": "1", "v2": "2", "1": pipelines["logreg"], "2": pipelines["hgb"]}


@pytest.fixture
def raw(mlops_home: Path) -> Path:
    """The day's raw activity, split into three files (``<data>/raw/dt=DAY/part-N.parquet``)."""
    frame = SIM.activity(DAY)
    root = mlops_home / "data" / "raw" / f"dt={DAY.isoformat()}"
    root.mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[chunk].to_parquet(root / f"part-{i}.parquet", index=False)
    return root


def _dag(name: str) -> Any:
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    return DAG(
        dag_id=f"{name}_{uuid.uuid4().hex[:6]}",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    )


def _expected(pipe: Any, source: pd.DataFrame) -> np.ndarray:
    return pipe.predict_proba(source[FEATURE_COLUMNS])[:, 1]


# ----------------------------------------------------------------------------- operator


def test_scores_a_day_into_its_partition_and_a_rerun_replaces_it(
    airflow_db: Path, churn: dict[str, Any], raw: Path, mlops_home: Path, caplog
) -> None:
    base = mlops_home / "data" / "predictions"
    with _dag("scoring") as dag:
        BatchScoringOperator(
            task_id="score",
            model_uri="models:/churn@champion",
            input_data=str(raw.parent) + "/dt={{ data_interval_start | ds }}",
            output_uri=str(base),
            passthrough_columns=[TIMESTAMP_COLUMN],
        )
    mlflow_handler = RecordingHandler()  # what reaches MLflow's own (stderr) handler
    logging.getLogger("mlflow").addHandler(mlflow_handler)
    try:
        with caplog.at_level(logging.INFO):
            run = run_dag(dag, DAY)
    finally:
        logging.getLogger("mlflow").removeHandler(mlflow_handler)
    assert task_states(run) == {"score": "success"}
    task_log = task_log_records(caplog.records, "score")
    lines = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in task_log]
    assert len(lines) <= MAX_TASK_LOG_LINES, "\n".join(lines)
    assert all(r.levelno < logging.WARNING for r in task_log), lines
    assert [r.getMessage() for r in mlflow_handler.records if r.levelno >= logging.INFO] == []
    out = xcom(run, "score")
    partition = base / f"dt={DAY.isoformat()}"
    source = pd.read_parquet(raw)
    assert out["output_uri"] == str(partition)
    assert out["rows"] == len(source) and out["empty"] is False
    assert (
        out["model_version"] == churn["v1"] and out["model_uri"] == f"models:/churn/{churn['v1']}"
    )
    assert out["requested_model_uri"] == "models:/churn@champion"
    assert (
        out["model_run_id"] == churn["hook"].client.get_model_version("churn", churn["v1"]).run_id
    )
    assert out["input_data"] == str(raw) and out["shard"] is None
    assert out["rows_per_second"] > 0 and out["seconds"] > 0
    assert check_result(out) == []
    assert (out["status"], out["passed"], out["reasons"]) == ("scored", True, [])
    assert out["model"] == {
        "name": "churn",
        "version": churn["v1"],
        "run_id": out["model_run_id"],
        "uri": f"models:/churn/{churn['v1']}",
        "alias": "champion",
    }
    assert out["data_interval_start"] == f"{DAY.isoformat()}T00:00:00+00:00"
    frame = io.read_pandas(str(partition))
    assert list(frame.columns) == [
        ENTITY_COLUMN,
        TIMESTAMP_COLUMN,
        "prediction",
        "probability",
        "model_name",
        "model_version",
        "model_run_id",
        "scored_at",
    ]
    assert np.array_equal(frame["probability"].to_numpy(), _expected(churn[churn["v1"]], source))
    assert set(frame["model_version"]) == {churn["v1"]}
    assert frame["scored_at"].nunique() == 1
    assert (partition / "_SUCCESS").exists()

    # rerun after a promotion: the partition is replaced (same rows, new version), not appended
    churn["hook"].client.set_registered_model_alias("churn", "champion", churn["v2"])
    rerun = run_dag(dag, DAY)
    assert task_states(rerun) == {"score": "success"}
    again = io.read_pandas(str(partition))
    assert len(again) == len(source)
    assert set(again["model_version"]) == {churn["v2"]}
    assert np.array_equal(again["probability"].to_numpy(), _expected(churn[churn["v2"]], source))
    assert sorted(p.name for p in base.iterdir()) == [f"dt={DAY.isoformat()}"]


def test_bad_inputs_fail_their_task_and_write_nothing(
    airflow_db: Path, churn: dict[str, Any], raw: Path, mlops_home: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    source = SIM.activity(DAY)
    source.drop(columns=["monthly_charges"]).to_parquet(bad / "missing.parquet")
    source.assign(monthly_charges=source["monthly_charges"].astype(str)).to_parquet(
        bad / "mistyped.parquet"
    )
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    cases = {
        "alias_missing": {"model_uri": "models:/churn@gold", "input_data": str(raw)},
        "malformed_uri": {"model_uri": "churn@champion", "input_data": str(raw)},
        "missing_column": {"input_data": str(bad / "missing.parquet")},
        "wrong_type": {"input_data": str(bad / "mistyped.parquet")},
        "not_writable": {"input_data": str(raw), "output_uri": str(blocker / "out")},
    }
    base = tmp_path / "predictions"
    with _dag("scoring_bad") as dag:
        for task_id, kwargs in cases.items():
            BatchScoringOperator(
                task_id=task_id,
                **{
                    "model_uri": "models:/churn@champion",
                    "output_uri": str(base / task_id),
                    **kwargs,
                },
            )
    run = run_dag(dag, DAY)
    assert task_states(run) == dict.fromkeys(cases, "failed")
    assert list(base.rglob("*.parquet")) == []
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_uri": "models:/churn@gold"}, "registered model 'churn' has no alias 'gold'"),
        ({"model_uri": "models:/churn/x"}, "malformed model URI"),
        ({"model_uri": "models:/nope@champion"}, "registered model 'nope' does not exist"),
        ({"input_data": "{bad}/mistyped.parquet"}, "monthly_charges: expected double, got string"),
        ({"input_data": "{bad}/missing.parquet"}, r"missing column\(s\) \['tenure_months'\]"),
        ({"batch_size": "many"}, "parameter batch_size: expected a number, got 'many'"),
        ({"batch_size": 0}, "parameter batch_size: must be >= 1"),
        ({"max_unseen_share": "some"}, "parameter max_unseen_share: expected a number, got 'some'"),
        ({"max_unseen_share": "1.5"}, "parameter max_unseen_share: must be <= 1"),
        ({"model_uri": None}, "pass model_uri, or registered_model_name"),
        ({"entity_columns": {"id": 1}}, "parameter entity_columns: expected a list"),
        ({"input_data": ("status", "planned")}, "parameter input_data: expected a string"),
        ({"feast_entity_data": "{bad}/missing.parquet"}, "pass exactly one of input_data"),
    ],
)
def test_errors_are_scoring_errors_naming_the_problem(
    churn: dict[str, Any], raw: Path, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    source = SIM.activity(DAY)
    source.drop(columns=["tenure_months"]).to_parquet(bad / "missing.parquet")
    source.assign(monthly_charges=source["monthly_charges"].astype(str)).to_parquet(
        bad / "mistyped.parquet"
    )
    params = {"model_uri": "models:/churn@champion", "input_data": str(raw), **kwargs}
    params = {
        k: v.replace("{bad}", str(bad)) if isinstance(v, str) else v for k, v in params.items()
    }
    op = BatchScoringOperator(task_id="score", output_uri=str(tmp_path / "out"), **params)
    context = {
        "ti": SimpleNamespace(map_index=-1, xcom_push=lambda **_: None),
        "data_interval_start": datetime(2026, 1, 12, tzinfo=timezone.utc),
        "data_interval_end": datetime(2026, 1, 13, tzinfo=timezone.utc),
    }
    with pytest.raises(ScoringError, match=message):
        op.execute(context)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


def test_empty_input_writes_an_empty_partition(
    airflow_db: Path, churn: dict[str, Any], mlops_home: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.parquet"
    SIM.activity(DAY).head(0).to_parquet(empty, index=False)
    with _dag("scoring_empty") as dag:
        BatchScoringOperator(
            task_id="score",
            registered_model_name="churn",
            input_data=str(empty),
            output_uri=str(tmp_path / "predictions"),
        )
    run = run_dag(dag, DAY)
    assert task_states(run) == {"score": "success"}
    out = xcom(run, "score")
    assert out["rows"] == 0 and out["empty"] is True
    table = io.read_table(out["output_uri"])
    assert table.num_rows == 0 and "probability" in table.schema.names


def test_over_http_against_a_real_mlflow_server(
    airflow_db: Path,
    mlflow_server: Any,
    mlops_home: Path,
    raw: Path,
    pipelines: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_HTTP",
        json.dumps({"conn_type": "mlflow", "host": mlflow_server.url}),
    )
    hook = MlflowHook(mlflow_conn_id="mlflow_http")
    name = f"churn_http_{uuid.uuid4().hex[:6]}"
    version = register(hook, pipelines["hgb"], pipelines["X"], name)
    hook.client.set_registered_model_alias(name, "champion", version)
    with _dag("scoring_http") as dag:
        BatchScoringOperator(
            task_id="score",
            registered_model_name=name,
            input_data=str(raw),
            output_uri=str(mlops_home / "data" / "predictions_http"),
            mlflow_conn_id="mlflow_http",
        )
    run = run_dag(dag, DAY)
    assert task_states(run) == {"score": "success"}
    out = xcom(run, "score")
    assert (out["model_name"], out["model_version"]) == (name, version)
    frame = io.read_pandas(out["output_uri"])
    source = pd.read_parquet(raw)
    assert np.array_equal(frame["probability"].to_numpy(), _expected(pipelines["hgb"], source))
    link = xcom(run, "score", key="_link_MlflowModelVersionLink")
    assert link == f"/mlops/mlflow/models/{name}/versions/{version}?conn_id=mlflow_http"


def test_every_scoring_operator_accepts_every_model_uri_form(
    airflow_db: Path, churn: dict[str, Any], raw: Path, mlops_home: Path
) -> None:
    """Plan, score and verify accept each URI naming a registered or logged model, and each
    result has the common shape (docs/results.md) with the model it used."""
    client = churn["hook"].client
    v1 = churn["v1"]
    mv = client.get_model_version("churn", v1)
    forms = {
        "version": f"models:/churn/{v1}",
        "alias": "models:/churn@champion",
        "logged": mv.source,  # models:/m-<id>: what TrainModelOperator returns
        "run": f"runs:/{mv.run_id}/model",
    }
    assert forms["logged"].startswith("models:/m-")
    base = mlops_home / "data" / "forms"
    with _dag("scoring_uri_forms") as dag:
        for form, uri in forms.items():
            plan = PlanScoringShardsOperator(
                task_id=f"plan_{form}", input_data=str(raw), model_uri=uri
            )
            score = BatchScoringOperator(
                task_id=f"score_{form}",
                model_uri=uri,
                input_data=str(raw),
                output_uri=str(base / form),
            )
            # a model that is not registered has no version (an XCom of None does not resolve)
            version = plan.output["model_version"] if form in ("version", "alias") else None
            verify = VerifyScoringOperator(
                task_id=f"verify_{form}",
                output_uri=str(base / form),
                expected_rows=plan.output["expected_rows"],
                expected_model_version=version,
            )
            plan >> score >> verify
    run = run_dag(dag, DAY)
    steps = ("plan", "score", "verify")
    assert task_states(run) == {f"{step}_{form}": "success" for form in forms for step in steps}
    rows = len(pd.read_parquet(raw))
    for form, uri in forms.items():
        registered = form in ("version", "alias")
        model = {
            "name": "churn" if registered else None,
            "version": v1 if registered else None,
            "run_id": mv.run_id,
            "uri": f"models:/churn/{v1}" if registered else uri,
        }
        for step in steps:
            key = "result" if step == "plan" else "return_value"
            result = xcom(run, f"{step}_{form}", key=key)
            assert check_result(result) == [], (step, form, check_result(result))
            assert result["passed"] is True and result["rows"] == rows, (step, form)
            assert {k: v for k, v in result["model"].items() if k != "alias"} == model
        scored = xcom(run, f"score_{form}")
        assert scored["requested_model_uri"] == uri
        frame = io.read_pandas(scored["output_uri"])
        assert set(frame["model_run_id"]) == {mv.run_id}
        assert np.array_equal(
            frame["probability"].to_numpy(), _expected(churn[v1], pd.read_parquet(raw))
        )


# ----------------------------------------------------------------------------- sharded


def test_sharded_scoring_with_mapped_tasks(
    airflow_db: Path, churn: dict[str, Any], raw: Path, mlops_home: Path
) -> None:
    from airflow.sdk import task

    base = mlops_home / "data" / "predictions"
    v1, v2 = churn["v1"], churn["v2"]
    day_uri = base / f"dt={DAY.isoformat()}"
    stale = day_uri / "shard=00009"  # left by an earlier plan with more shards
    stale.mkdir(parents=True)
    (stale / "part-00000.parquet").write_bytes(b"stale")

    with _dag("scoring_sharded") as dag:
        plan = PlanScoringShardsOperator(
            task_id="plan",
            input_data=str(raw.parent) + "/dt={{ data_interval_start | ds }}",
            model_uri="models:/churn@champion",
            output_uri=str(base),
        )

        @task
        def promote_meanwhile() -> None:
            """The alias moves after planning: shards must still use the planned version."""
            MlflowHook().client.set_registered_model_alias("churn", "champion", v2)

        score = BatchScoringOperator.partial(
            task_id="score",
            model_uri=plan.output["model_uri"],
            output_uri=str(base),
        ).expand(input_data=plan.output)
        verify = VerifyScoringOperator(
            task_id="verify",
            output_uri=str(base),
            expected_rows=plan.output["expected_rows"],
            expected_model_version=plan.output["model_version"],
            expected_shards=plan.output["shard_count"],
        )
        plan >> promote_meanwhile() >> score >> verify

    run = run_dag(dag, DAY)
    states = task_states(run)
    assert states == {
        "plan": "success",
        "promote_meanwhile": "success",
        "score[0]": "success",
        "score[1]": "success",
        "score[2]": "success",
        "verify": "success",
    }
    assert MlflowHook().client.get_model_version_by_alias("churn", "champion").version == int(v2)
    shards = xcom(run, "plan")  # the return value: what the shards are mapped over
    assert shards == [str(raw / f"part-{i}.parquet") for i in range(3)]
    planned = xcom(run, "plan", key="result")
    assert planned["shards"] == xcom(run, "plan", key="shards") == shards
    assert xcom(run, "plan", key="model_uri") == f"models:/churn/{v1}"
    assert check_result(planned) == []
    assert (planned["status"], planned["rows"]) == ("planned", planned["expected_rows"])
    assert planned["model"]["version"] == v1 and planned["model"]["alias"] == "champion"
    assert xcom(run, "plan", key="model") == planned["model"]
    outs = [xcom(run, "score", map_index=i) for i in range(3)]
    assert [o["output_uri"] for o in outs] == [str(day_uri / f"shard={i:05d}") for i in range(3)]
    assert {o["model_version"] for o in outs} == {v1}
    assert [o["input_data"] for o in outs] == shards
    summary = xcom(run, "verify")
    source = pd.read_parquet(raw)
    assert summary["rows"] == len(source) == sum(o["rows"] for o in outs)
    assert summary["shards"] == 3 and summary["model_version"] == v1
    assert check_result(summary) == [] and summary["status"] == "verified"
    assert summary["model"] == {
        "name": "churn",
        "version": v1,
        "run_id": planned["model"]["run_id"],
        "uri": f"models:/churn/{v1}",
    }
    assert json.loads((day_uri / "_SUCCESS").read_text())["rows"] == len(source)
    assert not stale.exists()
    whole = io.read_pandas(str(day_uri))  # the day reads as one dataset, shard as a column
    assert len(whole) == len(source) and set(whole["model_version"]) == {v1}
    for i, shard in enumerate(shards):  # each shard equals direct predictions on its rows
        rows = whole[whole["shard"].astype(int) == i]
        assert np.array_equal(
            rows["probability"].to_numpy(), _expected(churn[v1], pd.read_parquet(shard))
        )


# ----------------------------------------------------------------------------- Feast


def test_scores_point_in_time_features_from_feast(
    airflow_db: Path, churn: dict[str, Any], mlops_home: Path, tmp_path: Path
) -> None:
    from mlops_provider.core import features as feat
    from mlops_provider.hooks.feast import FeastHook

    lake = tmp_path / "lake"
    days = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
    features_root = mlops_home / "data" / "features" / "customer_activity"
    for day in days:
        raw_file = SIM.write_day(lake, day)["raw"]
        feat.publish_partition(
            str(Path(raw_file).parent), str(features_root), day, entity_columns=["customer_id"]
        )
    feat.apply_repo(FeastHook().store)
    ids = list(range(100_001, 100_301))
    entities = tmp_path / "entities.parquet"
    pd.DataFrame({ENTITY_COLUMN: ids}).to_parquet(entities, index=False)

    with _dag("scoring_feast") as dag:
        BatchScoringOperator(
            task_id="score",
            model_uri=f"models:/churn/{churn['v2']}",
            feast_entity_data=str(entities),
            feature_service="churn_model",
            output_uri=str(tmp_path / "predictions"),
            passthrough_columns=[TIMESTAMP_COLUMN],
        )
    run = run_dag(dag, DAY)
    assert task_states(run) == {"score": "success"}
    out = xcom(run, "score")
    frame = io.read_pandas(out["output_uri"]).set_index(ENTITY_COLUMN)
    assert sorted(frame.index) == ids
    as_of = pd.Timestamp(DAY + timedelta(days=1), tz="UTC")
    assert set(frame[TIMESTAMP_COLUMN]) == {as_of}
    # expected: each customer's latest activity up to the end of the interval (ttl 30 days)
    history = pd.concat([SIM.activity(d) for d in days], ignore_index=True)
    latest = history.sort_values(TIMESTAMP_COLUMN).groupby(ENTITY_COLUMN).tail(1)
    latest = latest.set_index(ENTITY_COLUMN)
    known = [i for i in ids if i in latest.index]
    assert len(known) > 100
    expected = churn[churn["v2"]].predict_proba(latest.loc[known, FEATURE_COLUMNS])[:, 1]
    assert np.array_equal(frame.loc[known, "probability"].to_numpy(), expected)
    shutil.rmtree(lake)
