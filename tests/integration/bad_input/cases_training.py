"""Bad inputs of TrainModelOperator.

The broken training sets are copies of the world's labelled training data with one column
spoiled, written under ``bad/`` of the lake by the case's ``setup``. Every failing case must
fail before any MLflow run exists (``leftovers`` checks no run is left RUNNING and nothing is
registered).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from tests.integration.bad_input import UNDER_TEST, BadInput, World

BAD = "bad/"
MAY_WRITE = ("reports/", BAD)


def _train(world: World, **kwargs: Any) -> Any:
    from mlops_provider.operators.training import TrainModelOperator

    settings = {
        "training_data": world.train_uri,
        "target": "churned",
        "entity_columns": ["customer_id"],
        "estimator": "sklearn.linear_model.LogisticRegression",
        "estimator_params": {"max_iter": 300},
        "experiment_name": "bad-input-training",
        **kwargs,
    }
    return TrainModelOperator(task_id=UNDER_TEST, retries=0, **settings)


def _spoiled(name: str, spoil: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[World], None]:
    """A setup writing the world's training data, spoiled by ``spoil``, to ``bad/<name>``."""

    def setup(world: World) -> None:
        from mlops_provider.core import io

        frame = io.read_table(world.train_uri).to_pandas()
        io.write_table(spoil(frame.copy()), world.path(BAD + name))

    return setup


def _dollars(frame: pd.DataFrame) -> pd.DataFrame:
    frame["monthly_charges"] = [f"${v:,.2f}" for v in frame["monthly_charges"]]
    return frame


def _unknowns(frame: pd.DataFrame) -> pd.DataFrame:
    text = frame["tenure_months"].astype(str)
    frame["tenure_months"] = text.where(frame.index % 25 != 0, "unknown")
    return frame


def _digits(frame: pd.DataFrame) -> pd.DataFrame:
    frame["tenure_months"] = frame["tenure_months"].astype(str)
    return frame


def _coupons(frame: pd.DataFrame) -> pd.DataFrame:
    frame["coupon_code"] = [f"code-{i % 250}" for i in range(len(frame))]
    return frame


def _on_bad_data(
    case_id: str, name: str, spoil: Callable[[pd.DataFrame], pd.DataFrame], **kwargs: Any
) -> BadInput:
    """A case training on the world's training data spoiled by ``spoil`` (``bad/<name>``);
    ``kwargs`` are the operator's other arguments, plus ``expect`` and ``state``."""
    case = {key: kwargs.pop(key) for key in ("expect", "state") if key in kwargs}
    return BadInput(
        id=case_id,
        setup=_spoiled(name, spoil),
        build=lambda w: _train(w, training_data=w.path(BAD + name), **kwargs),
        may_write=MAY_WRITE,
        **case,
    )


CASES = [
    _on_bad_data(
        "training-dollar-strings",
        "train_dollars.parquet",
        _dollars,
        expect=["monthly_charges", "stored as text", "'$"],
    ),
    _on_bad_data(
        "training-unknown-strings",
        "train_unknowns.parquet",
        _unknowns,
        expect=["tenure_months", "'unknown'", "numeric_columns"],
    ),
    _on_bad_data(
        "training-high-cardinality",
        "train_coupons.parquet",
        _coupons,
        expect=["coupon_code", "250 distinct values", "max_categories"],
    ),
    _on_bad_data(
        "training-numeric-declared-unconvertible",
        "train_unknowns.parquet",
        _unknowns,
        numeric_columns=["tenure_months"],
        expect=["numeric_columns", "tenure_months", "'unknown'"],
    ),
    _on_bad_data(
        "training-numeric-declared-converts",
        "train_digits.parquet",
        _digits,
        numeric_columns="{{ ['tenure_months'] }}",
        expect=["converted numeric_columns ['tenure_months']"],
        state="success",
    ),
    BadInput(
        id="training-test-size-garbage",
        build=lambda w: _train(w, test_size="{{ 'a fifth' }}"),
        expect=["parameter test_size", "a fraction or a row count", "'a fifth'"],
    ),
    BadInput(
        id="training-estimator-params-garbage",
        build=lambda w: _train(w, estimator_params="{{ 'max_iter=300' }}"),
        expect=["parameter estimator_params", "expected a mapping", "'max_iter=300'"],
    ),
    BadInput(
        id="training-estimator-not-estimator",
        build=lambda w: _train(w, estimator="os.path.join"),
        expect=["os.path.join", "not an estimator", "fit", "predict"],
    ),
]
