"""The provider's base operator: one error translation, one way to push keys and links, one
data interval, and every catalogue operator built on it."""

from __future__ import annotations

import importlib
import inspect
import warnings
from datetime import datetime, timezone
from typing import Any

import pytest

from mlops_provider.core.errors import CoreError, InputError, ParameterError
from mlops_provider.exceptions import MlopsError, MlopsProviderDeprecationWarning, ScoringError
from mlops_provider.operators._base import (
    AWS_CONN_ID,
    MlopsBaseOperator,
    data_interval,
    pop_renamed,
    run_identity,
)

OPERATOR_MODULES = [
    "validation",
    "feast",
    "training",
    "evaluation",
    "registry",
    "scoring",
    "monitoring",
    "retraining",
]


class _TI:
    dag_id, task_id, run_id, map_index, try_number = "d", "t", "manual__1", -1, 2

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class _Op(MlopsBaseOperator):
    error_class = ScoringError
    push_keys = ("passed", "missing")

    def __init__(self, outcome: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outcome = outcome

    def run(self, context: Any) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def test_core_errors_become_the_operators_exception() -> None:
    op = _Op(outcome=InputError("column 'x' is missing"), task_id="t")
    with pytest.raises(ScoringError, match="column 'x' is missing") as info:
        op.execute({"ti": _TI()})
    assert isinstance(info.value.__cause__, CoreError)


def test_programming_errors_are_not_reported_as_bad_input() -> None:
    for error in (TypeError("a bug"), ValueError("not a core error"), KeyError("k")):
        op = _Op(outcome=error, task_id="t")
        with pytest.raises(type(error)) as info:
            op.execute({"ti": _TI()})
        assert not isinstance(info.value, MlopsError)


def test_result_keys_are_pushed_and_returned() -> None:
    ti = _TI()
    result = {"passed": True, "status": "ok"}
    assert _Op(outcome=result, task_id="t").execute({"ti": ti}) == result
    assert ti.pushed == {"passed": True}


def test_data_interval_and_identity() -> None:
    start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    end = datetime(2026, 1, 6, tzinfo=timezone.utc)
    context: dict[str, Any] = {"ti": _TI(), "data_interval_start": start, "data_interval_end": end}
    assert data_interval(context) == (start, end)
    ident = run_identity(context)
    assert (ident.dag_id, ident.task_id, ident.map_index, ident.try_number) == ("d", "t", -1, 2)
    assert ident.key == "d/manual__1/t/-1"
    assert ident.key_tags()["mlops.data_interval_start"] == start.isoformat()


def test_manual_run_without_logical_date_keys_its_interval_by_run_after() -> None:
    class _DagRun:
        run_after = datetime(2026, 2, 1, 12, tzinfo=timezone.utc)

    start, end = data_interval({"dag_run": _DagRun()})
    assert start == _DagRun.run_after and end is None


def test_pop_renamed_warns_and_maps() -> None:
    kwargs: dict[str, Any] = {"task": "regression", "keep": 1}
    with pytest.warns(
        MlopsProviderDeprecationWarning, match="'task' is deprecated.*'problem_type'"
    ):
        out = pop_renamed(kwargs, {"task": "problem_type"}, "TrainModelOperator")
    assert out == {"problem_type": "regression"} and kwargs == {"keep": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pop_renamed({"keep": 1}, {"task": "problem_type"}, "X") == {}


def test_parameter_errors_name_the_parameter() -> None:
    err = ParameterError("batch_size", "expected a number, got 'many'")
    assert str(err) == "parameter batch_size: expected a number, got 'many'"
    assert isinstance(err, InputError) and isinstance(err, ValueError)


def _catalogue() -> list[type]:
    out = []
    for name in OPERATOR_MODULES:
        module = importlib.import_module(f"mlops_provider.operators.{name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            name_ok = cls.__name__.endswith("Operator") and not cls.__name__.startswith("_")
            if cls.__module__ == module.__name__ and name_ok:
                out.append(cls)
    return out


def test_every_operator_is_built_on_the_base_with_one_aws_default() -> None:
    operators = _catalogue()
    assert len(operators) == 16  # the catalogue, RetrainRequest, the sharded-scoring pair, skew
    for cls in operators:
        assert issubclass(cls, MlopsBaseOperator), cls.__name__
        assert issubclass(cls.error_class, MlopsError), cls.__name__
        params = inspect.signature(cls.__init__).parameters
        if "aws_conn_id" in params:
            assert params["aws_conn_id"].default == AWS_CONN_ID, cls.__name__
        for conn in ("mlflow_conn_id", "feast_conn_id"):
            if conn in params:
                assert params[conn].default == f"{conn.split('_')[0]}_default", cls.__name__


@pytest.mark.parametrize("setting", ["True", "False"])
def test_sensors_honour_default_deferrable(monkeypatch, setting) -> None:
    """FeatureFreshnessSensor ignored ``[operators] default_deferrable`` (ModelAliasSensor
    honoured it); an explicit ``deferrable`` still wins."""
    from mlops_provider.sensors.feast import FeatureFreshnessSensor
    from mlops_provider.sensors.mlflow import ModelAliasSensor

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)
    expected = setting == "True"
    fresh = FeatureFreshnessSensor(task_id="fresh", feature_view="v")
    alias = ModelAliasSensor(task_id="alias", registered_model_name="m")
    assert fresh.deferrable is expected and alias.deferrable is expected
    explicit = FeatureFreshnessSensor(task_id="f2", feature_view="v", deferrable=not expected)
    assert explicit.deferrable is (not expected)
