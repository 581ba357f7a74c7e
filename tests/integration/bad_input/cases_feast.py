"""Bad inputs of the Feast operators."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.integration.bad_input import UNDER_TEST, BadInput, World

FEATURE_REPO = Path(__file__).resolve().parents[3] / "include" / "feature_repo"


def _feature_repo(world: World) -> None:
    """A copy of the project's feature repo beside the lake (definitions and
    feature_store.yaml only; its stores live under ``$MLOPS_HOME/feast``, which the world
    sets)."""
    if "feature_repo" in world.extra:
        return
    target = world.home / "feature_repo"
    shutil.copytree(FEATURE_REPO, target, ignore=shutil.ignore_patterns("data", "*.db"))
    world.extra["feature_repo"] = str(target)


def _materialize(world: World, **kwargs: Any) -> Any:
    from mlops_provider.operators.feast import FeastMaterializeOperator

    return FeastMaterializeOperator(
        task_id=UNDER_TEST, retries=0, repo_path=world.extra["feature_repo"], **kwargs
    )


POINT_INTERVAL = [
    "empty window",
    "2026-01-10T00:00:00+00:00",
    "start=",
    "end=",
    "CronDataIntervalTimetable",
]

CASES = [
    BadInput(
        id="feast-materialize-manual-run-point-interval",
        build=_materialize,
        expect=POINT_INTERVAL,
        setup=_feature_repo,
    ),
    BadInput(
        id="feast-materialize-cron-point-interval",
        build=_materialize,
        expect=POINT_INTERVAL,
        setup=_feature_repo,
        schedule="0 0 * * *",
    ),
]
