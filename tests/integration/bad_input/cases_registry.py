"""Bad inputs of EvaluateModelOperator, PromoteModelOperator and ModelAliasSensor.

A misspelt registered model (``chrun``) or alias (``champoin``) is never a cold start: the
evaluation, the promotion and the sensor fail at once naming what exists (and the closest
name), and nothing is registered. A promotion whose candidate run does not exist creates
nothing. Templated values that render to garbage are named with their parameter.
"""

from __future__ import annotations

from typing import Any

from tests.integration.bad_input import UNDER_TEST, BadInput, World

MISSING_RUN = "0123456789abcdef0123456789abcdef"


def _evaluate(world: World, **kwargs: Any) -> Any:
    """The champion (a registered version) evaluated as a candidate: no training needed."""
    from mlops_provider.operators.evaluation import EvaluateModelOperator

    settings = {
        "model_uri": f"models:/{world.model}/{world.champion_version}",
        "registered_model_name": world.model,
        "evaluation_data": world.eval_uri,
        "target": "churned",
        **kwargs,
    }
    return EvaluateModelOperator(task_id=UNDER_TEST, retries=0, **settings)


def _evaluation(world: World, name: str, alias: str = "champion", **keys: Any) -> dict[str, Any]:
    """An evaluation as a hand-written task would return it (no explicit cold start)."""
    return {
        "passed": True,
        "reasons": ["looks good"],
        "registered_model_name": name,
        "alias": alias,
        "candidate": {"run_id": world.champion_run_id},
        "champion": None,
        **keys,
    }


def _promote(world: World, name: str, evaluation: dict[str, Any], **kwargs: Any) -> Any:
    from mlops_provider.operators.registry import PromoteModelOperator

    return PromoteModelOperator(
        task_id=UNDER_TEST,
        retries=0,
        registered_model_name=name,
        evaluation=evaluation,
        lock_timeout=5,
        **kwargs,
    )


def _sensor(world: World, **kwargs: Any) -> Any:
    from mlops_provider.sensors.mlflow import ModelAliasSensor

    settings = {
        "registered_model_name": world.model,
        "mode": "poke",
        "poke_interval": 1,
        "timeout": 8,
        **kwargs,
    }
    return ModelAliasSensor(task_id=UNDER_TEST, retries=0, **settings)


CASES = [
    BadInput(
        id="registry-evaluate-model-typo",
        build=lambda w: _evaluate(w, registered_model_name="chrun"),
        expect=["'chrun'", "did you mean 'churn'", "cold_start"],
    ),
    BadInput(
        id="registry-evaluate-alias-typo",
        build=lambda w: _evaluate(w, alias="champoin"),
        expect=["'champoin'", "@champion", "did you mean 'champion'", "cold_start"],
    ),
    BadInput(
        id="registry-evaluate-thresholds-garbage",
        build=lambda w: _evaluate(w, thresholds="{{ 'roc_auc >= 0.8' }}"),
        expect=["parameter thresholds", "roc_auc >= 0.8"],
    ),
    BadInput(
        id="registry-promote-model-typo",
        build=lambda w: _promote(w, "chrun", _evaluation(w, "chrun")),
        expect=["'chrun'", "did you mean 'churn'", "cold start"],
    ),
    BadInput(
        id="registry-promote-alias-typo",
        build=lambda w: _promote(
            w, w.model, _evaluation(w, w.model, alias="champoin"), alias="champoin"
        ),
        expect=["'champoin'", "@champion", "did you mean 'champion'", "cold start"],
    ),
    BadInput(
        id="registry-promote-missing-run",
        build=lambda w: _promote(
            w,
            "churn-first",
            _evaluation(w, "churn-first", cold_start=True, candidate={"run_id": MISSING_RUN}),
        ),
        expect=["parameter evaluation", MISSING_RUN, "does not exist"],
    ),
    BadInput(
        id="registry-sensor-model-typo",
        build=lambda w: _sensor(w, registered_model_name="chrun"),
        expect=["'chrun'", "did you mean 'churn'", "wait_for_creation"],
        timeout=60,
    ),
    BadInput(
        id="registry-sensor-alias-typo-deferrable",
        build=lambda w: _sensor(w, alias="champoin", deferrable=True),
        expect=["'champoin'", "did you mean 'champion'", "wait_for_creation"],
        timeout=60,
    ),
    BadInput(
        id="registry-sensor-newer-than-garbage",
        build=lambda w: _sensor(w, newer_than="{{ 'last tuesday' }}"),
        expect=["parameter newer_than", "last tuesday"],
        timeout=60,
    ),
]
