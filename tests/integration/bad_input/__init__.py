"""The bad-input catalogue: what a new user gets wrong, and what the provider must do about it.

Each case (:class:`BadInput`) builds one task, ``under_test``, from a bad input (a typo, a file
that is missing or corrupt, a template that renders to garbage, an unreachable service, missing
credentials...) and states what must happen: the task's final state, the words its error (or,
for a warning, its log and result) must contain (the parameter, file, column or connection at
fault), and what it may leave behind. tests/integration/test_bad_input_catalogue.py runs every
case in a real DAG run (``dag.test()``) against one world (an embedded MLflow store with a
champion, a data lake with training, evaluation and scoring data) and checks, after each case,
that the world holds nothing the case did not allow: no new registered model, version or alias,
no lock, no MLflow run left RUNNING, no file in the lake outside the allowed prefixes.

The cases live in the ``cases_*.py`` modules of this package, one per area, each exporting
``CASES``; a new operator adds its rows there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

START = datetime(2026, 1, 10, tzinfo=timezone.utc)
"""Start date of every case's DAG; its run's logical date."""
UNDER_TEST = "under_test"
"""The task id every case's ``build`` must give the task it checks."""


@dataclass
class World:
    """What every case runs against (built once per test module).

    :param lake: the data lake root (``$MLOPS_HOME/data``).
    :param train_uri: a labelled training set (parquet; ``churned`` is the target).
    :param eval_uri: a labelled evaluation set of later days.
    :param score_uri: rows to score (features and ``customer_id``, no label).
    :param raw_uri: one day of raw activity (``raw/dt=2026-01-09/activity.parquet``).
    :param model: the registered model holding ``alias`` (its champion).
    :param champion_version: the version ``alias`` points at; ``champion_run_id`` its run.
    :param tracking_uri: the embedded MLflow store's URI.
    """

    home: Path
    lake: Path
    train_uri: str
    eval_uri: str
    score_uri: str
    raw_uri: str
    tracking_uri: str
    model: str = "churn"
    alias: str = "champion"
    champion_version: str = ""
    champion_run_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for what an area's cases share (set by their ``setup``)."""

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def path(self, relative: str) -> str:
        """A path inside the lake."""
        return str(self.lake / relative)


@dataclass(frozen=True)
class BadInput:
    """One bad input and what must happen.

    :param id: a short kebab-case name (the test id).
    :param build: creates the ``under_test`` task (called inside the case's DAG context).
    :param expect: words the task's error (for ``state="success"``: its log and its XCom
        result) must contain; name the parameter, file, column, value or connection.
    :param state: the task's final state: ``failed`` (default) or ``success`` (a warning).
    :param may_write: lake prefixes (relative, e.g. ``"reports/"``) where the case may leave
        files; anything else new in the lake is a leftover.
    :param may_register: registered-model changes the case may make (e.g. a promotion that
        is meant to succeed): names of models whose versions/aliases may change.
    :param setup: runs before the DAG (e.g. puts a file in place); gets the world.
    :param schedule: the case DAG's schedule (default ``None``: a manual run at
        :data:`START`).
    :param conf: the run's ``conf``.
    :param timeout: seconds the whole case may take (a failure must be fast).
    """

    id: str
    build: Callable[[World], Any]
    expect: Sequence[str]
    state: str = "failed"
    may_write: Sequence[str] = ("reports/",)
    may_register: Sequence[str] = ()
    setup: Callable[[World], None] | None = None
    schedule: Any = None
    conf: Mapping[str, Any] | None = None
    timeout: float = 120.0


def all_cases() -> list[BadInput]:
    """Every ``CASES`` of the ``cases_*`` modules of this package, ids unique."""
    import importlib
    import pkgutil

    cases: list[BadInput] = []
    for info in sorted(pkgutil.iter_modules([os.path.dirname(__file__)]), key=lambda m: m.name):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            cases.extend(module.CASES)
    ids = [c.id for c in cases]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicated, f"bad-input case ids must be unique: {duplicated}"
    return cases


# ------------------------------------------------------------------------------- snapshots


@dataclass
class Snapshot:
    """What a case could leave behind, read from the world."""

    models: dict[str, dict[str, Any]]
    running_runs: set[str]
    lake_files: set[str]


LOCK_TAG_PREFIX = "mlops.lock."


def snapshot(world: World) -> Snapshot:
    """The registered models (versions, aliases, lock tags), RUNNING runs and lake files."""
    client = world.client()
    models: dict[str, dict[str, Any]] = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        models[model.name] = {
            "versions": sorted(v.version for v in versions),
            "aliases": dict(model.aliases or {}),
            "locks": {k: v for k, v in (model.tags or {}).items() if k.startswith(LOCK_TAG_PREFIX)},
        }
    running: set[str] = set()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if experiments:
        runs = client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=1000)
        running = {r.info.run_id for r in runs}
    files = {p.relative_to(world.lake).as_posix() for p in world.lake.rglob("*") if p.is_file()}
    return Snapshot(models=models, running_runs=running, lake_files=files)


def leftovers(before: Snapshot, after: Snapshot, case: BadInput) -> list[str]:
    """What ``case`` left behind that it was not allowed to (empty: nothing)."""
    found: list[str] = []
    for name, state in after.models.items():
        if name in case.may_register:
            continue
        old = before.models.get(name)
        if old is None:
            found.append(f"registered model {name!r} was created")
            continue
        for key in ("versions", "aliases"):
            if state[key] != old[key]:
                found.append(f"{key} of {name!r} changed: {old[key]} -> {state[key]}")
        if state["locks"]:
            found.append(f"lock tags left on {name!r}: {sorted(state['locks'])}")
    for run_id in sorted(after.running_runs - before.running_runs):
        found.append(f"MLflow run {run_id} left RUNNING")
    for path in sorted(before.lake_files - after.lake_files):
        found.append(f"file removed from the lake: {path}")
    new_files = sorted(after.lake_files - before.lake_files)
    for path in new_files:
        if not any(path.startswith(prefix) for prefix in case.may_write):
            found.append(f"file left in the lake: {path}")
    return found
