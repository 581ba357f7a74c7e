"""Bad inputs of DataValidationOperator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.bad_input import UNDER_TEST, BadInput, World

SUITES = Path(__file__).resolve().parents[3] / "include" / "expectations"
RAW_INTERVAL = {
    "data_interval_start": "2026-01-09T00:00:00+00:00",
    "data_interval_end": "2026-01-10T00:00:00+00:00",
}


def _validate(world: World, **kwargs: Any) -> Any:
    from mlops_provider.operators.validation import DataValidationOperator

    settings = {
        "dataset": world.raw_uri,
        "expectation_suite": str(SUITES / "churn_raw.json"),
        "suite_parameters": RAW_INTERVAL,
        "on_failure": "fail",
        **kwargs,
    }
    return DataValidationOperator(task_id=UNDER_TEST, retries=0, **settings)


CASES = [
    BadInput(
        id="validation-missing-dataset",
        build=lambda w: _validate(w, dataset=w.path("raw/dt=2026-01-08/activity.parquet")),
        expect=["raw/dt=2026-01-08/activity.parquet"],
    ),
    BadInput(
        id="validation-missing-suite",
        build=lambda w: _validate(w, expectation_suite=str(SUITES / "churn_rwa.json")),
        expect=["churn_rwa.json"],
    ),
]


EMPTY_DATASET = "raw-empty/dt=2026-01-09/activity.parquet"
NOT_NULL_IDS = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}}
]
FAILING = [
    {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "tenure_months", "max_value": -1},
    }
]


def _empty_dataset(world: World) -> None:
    """The raw day with its schema and no rows."""
    from mlops_provider.core import io

    io.write_table(io.read_table(world.raw_uri).slice(0, 0), world.path(EMPTY_DATASET))


CASES += [
    BadInput(
        id="validation-empty-dataset",
        setup=_empty_dataset,
        build=lambda w: _validate(w, dataset=w.path(EMPTY_DATASET), expectation_suite=NOT_NULL_IDS),
        expect=[EMPTY_DATASET, "0 rows", "allow_empty"],
    ),
    BadInput(
        id="validation-empty-dataset-allowed",
        setup=_empty_dataset,
        build=lambda w: _validate(
            w, dataset=w.path(EMPTY_DATASET), expectation_suite=NOT_NULL_IDS, allow_empty=True
        ),
        state="success",
        expect=["0 rows", "allow_empty"],
    ),
    BadInput(
        id="validation-quarantine-unwritable",
        build=lambda w: _validate(
            w,
            expectation_suite=FAILING,
            on_failure="quarantine",
            quarantine_uri=w.path("train.parquet/quarantine"),
        ),
        expect=[
            "expect_column_values_to_be_between(tenure_months)",
            "train.parquet/quarantine",
            "not copied to quarantine",
        ],
    ),
]
