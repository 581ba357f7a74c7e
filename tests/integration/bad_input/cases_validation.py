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
