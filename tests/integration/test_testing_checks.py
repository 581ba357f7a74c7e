"""mlops_provider.testing.checks: the data checks and the small training run of a project's CI,
on the reference project's samples (real GX validation, the reference DAGs, scikit-learn)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_provider.testing.checks import (
    CheckFailed,
    check_transformation,
    missing_samples,
    suites_used,
    train_sample,
    validate_sample,
)

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
SUITES = ROOT / "include" / "expectations"
SAMPLES = ROOT / "include" / "sample_data"
RAW = SAMPLES / "raw" / "dt=2026-01-01" / "activity.parquet"
TRAINING_SET = SAMPLES / "training_set.parquet"
RAW_INTERVAL = {
    "data_interval_start": "2026-01-01T00:00:00+00:00",
    "data_interval_end": "2026-01-02T00:00:00+00:00",
}

pytestmark = pytest.mark.integration


def test_the_samples_pass_their_suites(tmp_path: Path) -> None:
    cases = [
        (RAW, "churn_raw", RAW_INTERVAL),
        (TRAINING_SET, "churn_training_set", {"now": "2026-01-06T00:00:00+00:00"}),
        (SAMPLES / "predictions.parquet", "churn_predictions", {"expected_rows": 474}),
    ]
    for sample, suite, parameters in cases:
        result = validate_sample(
            sample, SUITES / f"{suite}.json", suite_parameters=parameters, report_dir=tmp_path
        )
        result.assert_ok()
        assert (result.suite, result.rows) == (suite, len(pd.read_parquet(sample)))
        assert result.report == str(tmp_path / suite / "report.html")
        assert (
            "<img" in Path(result.report).read_text() or "<svg" in Path(result.report).read_text()
        )


def test_a_schema_break_names_the_column_and_the_expectation() -> None:
    frame = pd.read_parquet(RAW).rename(columns={"monthly_charges": "monthly_charge"})
    result = validate_sample(frame, SUITES / "churn_raw.json", suite_parameters=RAW_INTERVAL)
    assert not result.passed
    with pytest.raises(CheckFailed) as failure:
        result.assert_ok()
    message = str(failure.value)
    assert "suite 'churn_raw'" in message and "monthly_charges" in message
    assert "expect_table_columns_to_match_set" in message or "columns" in message


def test_a_missing_sample_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.parquet"):
        validate_sample(tmp_path / "nowhere.parquet", SUITES / "churn_raw.json")


def test_transformation_checks_tell_the_input_from_the_transformation() -> None:
    suite = SUITES / "churn_raw.json"

    def keeps(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values("customer_id")

    def drops_plan(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=["plan"])

    kwargs = {"input_suite": suite, "suite_parameters": RAW_INTERVAL}
    check_transformation(keeps, RAW, suite, **kwargs).assert_ok()

    broken = check_transformation(drops_plan, RAW, suite, **kwargs)
    assert (broken.passed, broken.stage, broken.name) == (False, "output", "drops_plan")
    with pytest.raises(CheckFailed, match=r"output of transformation drops_plan(.|\n)*plan"):
        broken.assert_ok()

    bad_input = pd.read_parquet(RAW).assign(monthly_charges=-5.0)
    upstream = check_transformation(keeps, bad_input, suite, **kwargs)
    assert (upstream.passed, upstream.stage) == (False, "input")
    assert any("monthly_charges" in p for p in upstream.problems)

    with pytest.raises(TypeError, match="returned list, expected a pandas DataFrame"):
        check_transformation(lambda frame: list(frame), RAW, suite, **kwargs)


def test_suites_used_by_the_reference_dags_and_the_ones_without_a_sample() -> None:
    used = suites_used(DAGS)
    assert used == {
        str(SUITES / "churn_raw.json"): ["mlops_feature_pipeline.validate_raw"],
        str(SUITES / "churn_training_set.json"): ["mlops_training_pipeline.validate_training_set"],
        str(SUITES / "churn_predictions.json"): ["mlops_batch_scoring.validate_predictions"],
    }
    assert missing_samples(DAGS, {"churn_raw.json": RAW, "churn_training_set": TRAINING_SET}) == {
        str(SUITES / "churn_predictions.json"): ["mlops_batch_scoring.validate_predictions"]
    }


def test_small_training_run_of_the_training_pipeline(tmp_path: Path) -> None:
    result = train_sample(
        TRAINING_SET,
        dags_folder=DAGS,
        dag_id="mlops_training_pipeline",
        floor=0.7,
        report_dir=tmp_path,
    )
    result.assert_ok()
    assert result.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert result.rows == len(pd.read_parquet(TRAINING_SET))
    assert result.value is not None and result.value > 0.7
    report = Path(str(result.report)).read_text()
    assert "<img" in report and "roc_auc" in report


def test_small_training_run_fails_under_the_floor_or_over_the_budget() -> None:
    frame = pd.read_parquet(TRAINING_SET)
    frame["churned"] = frame["churned"].sample(frac=1.0, random_state=3).to_numpy()
    kwargs = {"dags_folder": DAGS, "dag_id": "mlops_training_pipeline"}
    shuffled = train_sample(frame, floor=0.7, **kwargs)
    assert not shuffled.passed
    with pytest.raises(CheckFailed, match=r"roc_auc = 0\.\d+ is under the floor 0\.7"):
        shuffled.assert_ok()

    slow = train_sample(TRAINING_SET, floor=0.5, budget_seconds=1e-4, max_rows=500, **kwargs)
    assert slow.rows == 500
    assert [p for p in slow.problems if "over the budget of 0.0001 s" in p]

    ceiling = train_sample(TRAINING_SET, metric="log_loss", ceiling=0.01, max_rows=500, **kwargs)
    assert (
        ceiling.problems
        and "log_loss" in ceiling.problems[0]
        and "ceiling 0.01" in ceiling.problems[0]
    )


def test_small_training_run_names_what_does_not_exist() -> None:
    with pytest.raises(LookupError, match=r"no DAG 'mlops_trainnig'.*mlops_training_pipeline"):
        train_sample(TRAINING_SET, dags_folder=DAGS, dag_id="mlops_trainnig", floor=0.5)
    with pytest.raises(LookupError, match=r"has no task 'fit'.*\['train'\]"):
        train_sample(
            TRAINING_SET,
            dags_folder=DAGS,
            dag_id="mlops_training_pipeline",
            task_id="fit",
            floor=0.5,
        )
    with pytest.raises(LookupError, match="is a DataValidationOperator, not a TrainModelOperator"):
        train_sample(
            TRAINING_SET,
            dags_folder=DAGS,
            dag_id="mlops_training_pipeline",
            task_id="validate_training_set",
            floor=0.5,
        )
    with pytest.raises(ValueError, match="needs a floor or a ceiling"):
        train_sample(TRAINING_SET, dags_folder=DAGS, dag_id="mlops_training_pipeline")
