"""core/training: feature selection, validation, the pipeline, and logging to an embedded MLflow store.

No Airflow here. The MLflow part uses one SQLite store per module (creating one costs seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.simulator import ChurnSimulator
from mlops_provider.core import io, runs
from mlops_provider.core.errors import InputError
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.processes import host_id
from mlops_provider.core.profile import ReferenceProfile
from mlops_provider.core.results import check_result
from mlops_provider.core.training import (
    REFERENCE_PROFILE_PATH,
    TASK_KEY_TAG,
    TrackingUnavailableError,
    TrainingConfig,
    TrainingInputError,
    infer_task,
    normalize_frame,
    prepare_training,
    resolve_estimator,
    select_features,
    train_and_log,
    train_model,
)

FAST = {
    "estimator": "sklearn.linear_model.LogisticRegression",
    "estimator_params": {"max_iter": 300},
}


def churn_frame(days: int = 4, seed: int = 3, n_customers: int = 800) -> pd.DataFrame:
    sim = ChurnSimulator(seed=seed, n_customers=n_customers)
    frames = []
    for i in range(days):
        day = date(2026, 1, 1) + timedelta(days=i)
        frames.append(
            sim.activity(day).merge(sim.labels(day), on=["customer_id", "event_timestamp"])
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return churn_frame()


# --------------------------------------------------------------------------- pure parts


def test_default_features_exclude_target_ids_and_timestamps(frame: pd.DataFrame) -> None:
    sel = select_features(frame, TrainingConfig(target="churned"))
    assert "churned" not in sel.feature_columns
    for col in ("customer_id", "event_timestamp", "label_available_at"):
        assert col in sel.excluded and col not in sel.feature_columns
    assert sel.categorical_columns == ["plan", "region", "payment_method", "device"]
    assert "tenure_months" in sel.numeric_columns and len(sel.feature_columns) == 13


def test_entity_columns_are_never_features_and_there_is_no_domain_default(
    frame: pd.DataFrame,
) -> None:
    data = frame.rename(columns={"customer_id": "customer"})
    sel = select_features(data, TrainingConfig(target="churned"))
    assert "customer" in sel.feature_columns  # no churn-specific default entity list
    sel = select_features(data, TrainingConfig(target="churned", entity_columns=["customer"]))
    assert sel.excluded["customer"] == "entity column" and "customer" not in sel.feature_columns


def test_normalize_frame_gives_plain_dtypes() -> None:
    nullable = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "b": pd.array([True, None, False], dtype="boolean"),
            "s": pd.array(["a", None, "c"], dtype="string"),
            "c": pd.Categorical(["x", None, "y"]),
            "f": [1.0, 2.0, np.nan],
        }
    )
    out = normalize_frame(nullable)
    assert out["n"].dtype == np.float64 and np.isnan(out["n"].iloc[1])
    assert out["b"].dtype == np.float64 and out["b"].iloc[0] == 1.0
    assert out["s"].dtype == object and out["s"].iloc[1] is None
    assert out["c"].dtype == object and out["c"].iloc[1] is None
    plain = nullable[["f"]]
    assert normalize_frame(plain) is plain


def test_explicit_features_and_errors(frame: pd.DataFrame) -> None:
    sel = select_features(
        frame,
        TrainingConfig(
            target="churned",
            feature_columns=["plan", "tenure_months"],
            categorical_columns=["tenure_months"],
        ),
    )
    assert sel.categorical_columns == ["plan", "tenure_months"] and sel.numeric_columns == []
    with pytest.raises(TrainingInputError, match=r"\['nope'\] not in the training data"):
        select_features(frame, TrainingConfig(target="churned", feature_columns=["plan", "nope"]))
    with pytest.raises(TrainingInputError, match="target 'churned' is listed"):
        select_features(frame, TrainingConfig(target="churned", feature_columns=["churned"]))
    with pytest.raises(TrainingInputError, match=r"event_timestamp.*unsupported type"):
        select_features(
            frame, TrainingConfig(target="churned", feature_columns=["event_timestamp"])
        )


def test_all_null_feature_is_rejected(frame: pd.DataFrame) -> None:
    bad = frame.assign(discount_pct=np.nan)
    with pytest.raises(TrainingInputError, match=r"\['discount_pct'\] contain only missing"):
        prepare_training(bad, TrainingConfig(target="churned", **FAST))


def test_task_inference() -> None:
    assert infer_task(pd.Series([0, 1, 1, 0])) == "classification"
    assert infer_task(pd.Series(["yes", "no"])) == "classification"
    assert infer_task(pd.Series([0.0, 1.0, 2.0])) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 100))) == "regression"
    assert infer_task(pd.Series(range(100))) == "regression"


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        ("sklearn.nope.Model", {}, "module 'sklearn.nope' cannot be imported"),
        ("sklearn.linear_model.NoSuchModel", {}, "has no attribute 'NoSuchModel'"),
        ("LogisticRegression", {}, "not a dotted path"),
        ("sklearn.linear_model.LogisticRegression", {"max_iterations": 5}, r"\['max_iterations'\]"),
        ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": -1}, "max_iter"),
        ("collections.OrderedDict", {}, "no fit/predict"),
    ],
)
def test_bad_estimators_are_clear(spec: str, params: dict, message: str) -> None:
    with pytest.raises(TrainingInputError, match=message):
        resolve_estimator(spec, params)


def test_estimator_forms() -> None:
    from sklearn.linear_model import LogisticRegression

    est, path = resolve_estimator("sklearn.linear_model.LogisticRegression", {"C": 0.5})
    assert (path, est.C) == ("sklearn.linear_model.LogisticRegression", 0.5)
    est, path = resolve_estimator(LogisticRegression(C=2.0), {"max_iter": 7})
    assert (est.C, est.max_iter) == (2.0, 7) and path.endswith("LogisticRegression")

    def factory(strength: float = 1.0) -> LogisticRegression:
        return LogisticRegression(C=strength)

    est, path = resolve_estimator(factory, {"strength": 3.0})
    assert est.C == 3.0 and path.endswith("factory")
    with pytest.raises(TrainingInputError, match=r"\['bogus'\]"):
        resolve_estimator(factory, {"bogus": 1})


def test_bad_targets_and_sizes(frame: pd.DataFrame) -> None:
    with pytest.raises(TrainingInputError, match="no rows"):
        prepare_training(frame.iloc[:0], TrainingConfig(target="churned", **FAST))
    with pytest.raises(TrainingInputError, match="target column 'label' not in"):
        prepare_training(frame, TrainingConfig(target="label", **FAST))
    with pytest.raises(TrainingInputError, match="single class"):
        prepare_training(frame.assign(churned=0), TrainingConfig(target="churned", **FAST))
    with pytest.raises(TrainingInputError, match="constant"):
        prepare_training(frame.assign(y=1.5), TrainingConfig(target="y", problem_type="regression"))
    with pytest.raises(TrainingInputError, match="between 0 and 1"):
        prepare_training(frame, TrainingConfig(target="churned", test_size=1.5, **FAST))
    with pytest.raises(TrainingInputError, match="problem_type 'regression' does not match"):
        prepare_training(frame, TrainingConfig(target="churned", problem_type="regression", **FAST))
    with pytest.raises(InputError, match="problem_type must be 'classification' or"):
        prepare_training(frame, TrainingConfig(target="churned", problem_type="ranking"))
    with pytest.raises(TrainingInputError, match="numeric_imputation"):
        prepare_training(frame, TrainingConfig(target="churned", numeric_imputation="avg", **FAST))


def test_stratified_holdout_keeps_class_balance(frame: pd.DataFrame) -> None:
    prepared = prepare_training(frame, TrainingConfig(target="churned", test_size=0.25, **FAST))
    overall = frame["churned"].mean()
    assert abs(prepared.y_holdout.mean() - overall) < 0.01
    assert abs(prepared.y_train.mean() - overall) < 0.01
    assert len(prepared.x_holdout) == int(np.ceil(0.25 * len(frame)))
    again = prepare_training(frame, TrainingConfig(target="churned", test_size=0.25, **FAST))
    assert prepared.x_holdout.index.equals(again.x_holdout.index)  # seeded


def test_pipeline_scores_raw_rows_with_missing_and_unseen_values(frame: pd.DataFrame) -> None:
    fitted = train_model(frame, TrainingConfig(target="churned", **FAST))
    assert set(fitted.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert fitted.metrics["roc_auc"] > 0.6
    raw = frame[fitted.prepared.features.feature_columns].head(4).copy()
    raw = raw.astype({"plan": object})
    raw.loc[raw.index[0], "plan"] = None
    raw.loc[raw.index[1], "plan"] = np.nan
    raw.loc[raw.index[2], "plan"] = "never-seen-plan"
    raw.loc[raw.index[3], "tenure_months"] = np.nan
    proba = fitted.pipeline.predict_proba(raw)
    assert proba.shape == (4, 2) and np.isfinite(proba).all()
    steps = fitted.pipeline.named_steps["preprocess"].named_transformers_
    assert steps["categorical"].named_steps["onehot"].handle_unknown == "ignore"


def test_regression_metrics(frame: pd.DataFrame) -> None:
    data = frame.drop(columns=["churned"])
    fitted = train_model(
        data,
        TrainingConfig(
            target="monthly_charges",
            estimator="sklearn.linear_model.Ridge",
            feature_columns=["plan", "tenure_months", "discount_pct"],
        ),
    )
    assert fitted.task == "regression"
    assert set(fitted.metrics) == {"rmse", "mae", "r2"}
    assert fitted.metrics["r2"] > 0.5 and fitted.metrics["rmse"] > 0


def test_validation_data_is_the_holdout(frame: pd.DataFrame) -> None:
    train, valid = frame.iloc[:600], frame.iloc[600:]
    prepared = prepare_training(train, TrainingConfig(target="churned", **FAST), valid)
    assert prepared.holdout == "validation_data"
    assert len(prepared.x_train) == 600 and len(prepared.x_holdout) == len(valid)
    with pytest.raises(TrainingInputError, match=r"validation data lacks.*\['plan'\]"):
        prepare_training(
            train, TrainingConfig(target="churned", **FAST), valid.drop(columns="plan")
        )


# --------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> MlflowTarget:
    root = tmp_path_factory.mktemp("training-mlflow")
    return MlflowTarget(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
    )


@pytest.fixture(scope="module")
def dataset(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = str(tmp_path_factory.mktemp("data") / "train.parquet")
    io.write_table(frame, uri)
    return uri


def _runs(store: MlflowTarget, experiment: str, key: str) -> list:
    client = make_client(store)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else runs.find_runs(client, exp.experiment_id, {TASK_KEY_TAG: key})


def test_train_and_log_records_everything(
    store: MlflowTarget, dataset: str, frame: pd.DataFrame, tmp_path: Path
) -> None:
    import mlflow

    from mlops_provider import __version__
    from mlops_provider.core.mlflow_target import activated

    result = train_and_log(
        store,
        dataset,
        TrainingConfig(target="churned", **FAST),
        experiment_name="unit-records",
        task_key="dag/run-1/train/-1",
        tags={"mlops.dag_id": "dag"},
        feature_refs=["customer_activity:tenure_months"],
    )
    assert result.model_uri.startswith("models:/m-") and not result.reused
    out = result.to_dict()
    assert check_result(out) == [] and (out["status"], out["passed"]) == ("trained", True)
    assert out["model"] == {
        "name": None,
        "version": None,
        "run_id": result.run_id,
        "uri": result.model_uri,
    }
    assert (out["mlflow_run_id"], out["rows"]) == (result.run_id, result.training_rows)
    assert out["problem_type"] == out["task"] == "classification"
    client = make_client(store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags[TASK_KEY_TAG] == "dag/run-1/train/-1" and tags["mlops.dag_id"] == "dag"
    assert tags["mlops.provider_version"] == __version__
    assert json.loads(tags["mlops.feature_refs"]) == ["customer_activity:tenure_months"]
    assert tags["mlops.target"] == "churned" and tags["mlops.task"] == "classification"
    assert run.data.params["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert run.data.params["estimator.max_iter"] == "300"
    for name in ("accuracy", "roc_auc", "log_loss", "train_roc_auc"):
        assert name in run.data.metrics
    assert run.data.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    (dataset_input,) = run.inputs.dataset_inputs
    assert json.loads(dataset_input.dataset.source)["uri"] == dataset
    assert dataset_input.dataset.digest == result.dataset_digest
    assert dataset_input.tags[0].value == "training"
    # the monitoring contract: profile of the training features only
    profile_path = client.download_artifacts(result.run_id, REFERENCE_PROFILE_PATH, str(tmp_path))
    profile = ReferenceProfile.from_json(profile_path)
    assert sorted(profile.columns) == sorted(result.feature_columns)
    assert profile.n_rows == len(frame) and profile.column_type("plan") == "categorical"
    # the model scores raw features
    with activated(store):
        model = mlflow.sklearn.load_model(result.model_uri)
        info = mlflow.models.get_model_info(result.model_uri)
    assert info.signature.inputs.input_names() == result.feature_columns
    raw = io.read_pandas(dataset)
    assert model.predict_proba(raw[result.feature_columns].head(3)).shape == (3, 2)
    assert info.signature.inputs.to_dict()[0]["type"] == "double"  # ints declared as doubles


def test_the_run_records_its_lineage_document(store: MlflowTarget, dataset: str) -> None:
    from mlops_provider import __version__
    from mlops_provider.core.governance import read_training_lineage

    window = {"as_of": "2026-01-05T00:00:00+00:00", "window_days": 4}
    result = train_and_log(
        store,
        dataset,
        TrainingConfig(target="churned", **FAST),
        experiment_name="unit-lineage",
        task_key="dag/run-1/train-lineage/-1",
        feature_refs=["customer_activity:tenure_months"],
        lineage={
            "label_window": window,
            "entity_data": {"training": {"uri": "/lake/entities/train", "digest": "abc"}},
            "code": {"dag_id": "dag"},
            "trigger": {"kind": "retrain_request", "reasons": ["drift"]},
        },
    )
    lineage = read_training_lineage(make_client(store), result.run_id)
    assert lineage is not None
    data = io.read_table(dataset)
    assert lineage.training_data.uri == dataset
    assert lineage.training_data.digest == io.table_digest(data)
    assert lineage.training_data.rows == data.num_rows
    assert lineage.config["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert lineage.config["target"] == "churned"
    assert lineage.config["fingerprint"] == result.fingerprint
    assert lineage.feature_refs == ["customer_activity:tenure_months"]
    assert lineage.code == {"provider_version": __version__, "dag_id": "dag"}
    assert lineage.entity_data["training"].digest == "abc"
    assert lineage.label_window == window and lineage.trigger["reasons"] == ["drift"]
    with pytest.raises(TrainingInputError, match="unknown lineage field"):
        train_and_log(
            store,
            dataset,
            TrainingConfig(target="churned", **FAST),
            experiment_name="unit-lineage-bad",
            lineage={"windows": {}},
        )
    assert make_client(store).get_experiment_by_name("unit-lineage-bad") is None


def test_retry_reuses_a_finished_run_and_replaces_when_inputs_change(
    store: MlflowTarget, dataset: str, frame: pd.DataFrame, tmp_path: Path
) -> None:
    key = "dag/run-2/train/-1"
    cfg = TrainingConfig(target="churned", **FAST)
    first = train_and_log(store, dataset, cfg, experiment_name="unit-retry", task_key=key)
    again = train_and_log(store, dataset, cfg, experiment_name="unit-retry", task_key=key)
    assert again.reused and again.run_id == first.run_id and again.model_uri == first.model_uri
    assert again.to_dict()["status"] == "reused" and check_result(again.to_dict()) == []
    assert again.reused_from == first.run_id and first.reused_from is None
    assert again.to_dict()["reused_from"] == first.run_id
    assert len(_runs(store, "unit-retry", key)) == 1
    changed = str(tmp_path / "changed.parquet")
    io.write_table(frame.iloc[:700], changed)
    third = train_and_log(store, changed, cfg, experiment_name="unit-retry", task_key=key)
    assert not third.reused and third.run_id != first.run_id
    runs = _runs(store, "unit-retry", key)
    assert [r.info.run_id for r in runs] == [third.run_id]
    old = make_client(store).get_run(first.run_id)
    assert old.data.tags["mlops.superseded_by"] == third.run_id


def test_failure_after_run_start_leaves_no_running_run(
    store: MlflowTarget, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.sklearn

    key = "dag/run-3/train/-1"
    cfg = TrainingConfig(target="churned", **FAST)
    real = mlflow.sklearn.log_model

    def broken(*args, **kwargs):
        raise RuntimeError("artifact store hiccup")

    monkeypatch.setattr(mlflow.sklearn, "log_model", broken)
    with pytest.raises(RuntimeError, match="hiccup"):
        train_and_log(store, dataset, cfg, experiment_name="unit-fail", task_key=key)
    (failed,) = _runs(store, "unit-fail", key)
    assert failed.info.status == "FAILED"
    # a try that died hard (no handler) leaves a RUNNING run: the next try marks it FAILED
    client = make_client(store)
    exp_id = client.get_experiment_by_name("unit-fail").experiment_id
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          check=True, capture_output=True, text=True)  # fmt: skip
    owner = f"{host_id()}p{int(dead.stdout)}"
    zombie = client.create_run(exp_id, tags={TASK_KEY_TAG: key, runs.OWNER_TAG: owner})
    monkeypatch.setattr(mlflow.sklearn, "log_model", real)
    result = train_and_log(store, dataset, cfg, experiment_name="unit-fail", task_key=key)
    statuses = {r.info.run_id: r.info.status for r in _runs(store, "unit-fail", key)}
    assert statuses.pop(result.run_id) == "FINISHED"
    assert set(statuses.values()) == {"FAILED"}
    zombie_after = client.get_run(zombie.info.run_id)
    assert zombie_after.info.status == "FAILED"
    assert owner in zombie_after.data.tags[runs.CLOSED_REASON_TAG]


def test_bad_input_creates_no_run(store: MlflowTarget, dataset: str) -> None:
    for cfg in (
        TrainingConfig(target="nope", **FAST),
        TrainingConfig(target="churned", estimator="sklearn.nope.X"),
        TrainingConfig(target="churned", estimator="sklearn.linear_model.LogisticRegression",
                       estimator_params={"max_iter": "many"}),
    ):  # fmt: skip
        with pytest.raises(TrainingInputError):
            train_and_log(store, dataset, cfg, experiment_name="unit-bad", task_key="k/bad")
    with pytest.raises(TrainingInputError, match="does not exist"):
        train_and_log(store, dataset + ".missing", TrainingConfig(target="churned"),
                      experiment_name="unit-bad", task_key="k/bad")  # fmt: skip
    assert make_client(store).get_experiment_by_name("unit-bad") is None


def test_unreachable_tracking_server(dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    port = free_port()
    target = MlflowTarget(tracking_uri=f"http://127.0.0.1:{port}")
    with pytest.raises(TrackingUnavailableError, match=str(port)):
        train_and_log(target, dataset, TrainingConfig(target="churned", **FAST), task_key="k/down")
