"""CI checks of this Airflow project, run by the provider's pytest plugin (docs/ci.md).

Run them with ``ci/mlops-ci.sh`` (all stages, as the CI workflow does) or directly:
``pytest tests/test_mlops_ci.py --mlops-reports reports``. Each test carries the marker of its
CI stage (``mlops_integrity``, ``mlops_data``, ``mlops_training``, ``mlops_run``; select one
with ``-m``); the marker also opts the test in to the plugin's fixtures ``mlops`` and
``mlops_env``. The HTML reports land in the reports directory.

Adapt the settings below when the DAGs change: every suite a DAG validates with needs a
sample, the training check names the DAG and task whose configuration it trains.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = "include/sample_data"
SUITES = "include/expectations"
RAW_SAMPLE = f"{SAMPLES}/raw/dt=2026-01-01/activity.parquet"
RAW_DAY = "2026-01-01"
RAW_INTERVAL = {
    "data_interval_start": "2026-01-01T00:00:00+00:00",
    "data_interval_end": "2026-01-02T00:00:00+00:00",
}
"""The sample day's data interval (the raw suite checks event times fall inside it)."""

DATA_CHECKS = {
    "churn_raw.json": (RAW_SAMPLE, RAW_INTERVAL),
    "churn_training_set.json": (
        f"{SAMPLES}/training_set.parquet",
        {"now": "2026-01-06T00:00:00+00:00"},
    ),
    "churn_predictions.json": (f"{SAMPLES}/predictions.parquet", {"expected_rows": None}),
}
"""Suite -> (its sample, the suite's parameters; ``expected_rows`` None: the sample's rows)."""

TRAINING_CHECK = {
    "dag_id": "mlops_training_pipeline",
    "task_id": "train",
    "sample": f"{SAMPLES}/training_set.parquet",
    "metric": "roc_auc",
    "floor": 0.7,
    "budget_seconds": 120,
    "max_rows": 5000,
}
"""The training task whose estimator configuration is trained on the sample, and its limits."""


@pytest.mark.mlops_integrity
def test_dags_are_sound(mlops) -> None:
    """Import errors, parse time and heavy imports at parse time, owner and retries, cycles,
    templated fields rendering for a sample run."""
    mlops.integrity().assert_ok()


@pytest.mark.mlops_data
def test_every_suite_the_dags_use_has_a_sample(mlops) -> None:
    missing = mlops.missing_samples(DATA_CHECKS)
    assert not missing, f"suites without a sample in DATA_CHECKS: {missing}"


@pytest.mark.mlops_data
@pytest.mark.parametrize("suite", sorted(DATA_CHECKS))
def test_sample_passes_its_suite(mlops, suite: str) -> None:
    sample, parameters = DATA_CHECKS[suite]
    if parameters.get("expected_rows", 0) is None:
        import pyarrow.parquet as pq

        parameters = {**parameters, "expected_rows": pq.read_metadata(mlops.path(sample)).num_rows}
    mlops.validate_sample(sample, f"{SUITES}/{suite}", suite_parameters=parameters).assert_ok()


@pytest.mark.mlops_data
def test_publishing_keeps_the_raw_suite_passing(mlops, tmp_path: Path) -> None:
    """The feature pipeline's publish step (what Feast reads) keeps the raw data's suite."""
    import pandas as pd

    from mlops_provider.core.features import publish_partition

    def publish(frame: pd.DataFrame) -> pd.DataFrame:
        source = tmp_path / "raw.parquet"
        frame.to_parquet(source, index=False)
        publish_partition(
            str(source),
            str(tmp_path / "features"),
            RAW_DAY,
            entity_columns=["customer_id"],
            timestamp_column="event_timestamp",
        )
        return pd.read_parquet(tmp_path / "features" / f"dt={RAW_DAY}")

    suite = f"{SUITES}/churn_raw.json"
    mlops.check_transformation(
        publish, RAW_SAMPLE, suite, input_suite=suite, suite_parameters=RAW_INTERVAL
    ).assert_ok()


@pytest.mark.mlops_training
def test_small_training_run(mlops) -> None:
    settings = dict(TRAINING_CHECK)
    result = mlops.train_sample(
        settings.pop("sample"), settings.pop("dag_id"), settings.pop("task_id"), **settings
    )
    result.assert_ok()


@pytest.mark.mlops_run
def test_feature_pipeline_runs_on_the_sample(mlops, mlops_env) -> None:
    """The feature pipeline validates, publishes and materializes the sample day through
    Airflow, with the embedded stores of an isolated environment."""
    import pyarrow.parquet as pq

    mlops_env.put(mlops.path(RAW_SAMPLE), f"raw/dt={RAW_DAY}/activity.parquet")
    run = mlops_env.run_dag("mlops_feature_pipeline", day=RAW_DAY)
    run.assert_success()
    validation = run.xcoms["validate_raw"]
    assert validation["status"] == "passed"
    assert validation["rows"] == pq.read_metadata(mlops.path(RAW_SAMPLE)).num_rows
