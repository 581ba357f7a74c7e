"""core/governance/reproduce: a model rebuilt and refitted from what its training run recorded.

One real setup per module, as the reference training DAG builds it: simulator data published
as feature partitions, the project's Feast repo applied, a label window (entity + label
datasets), a point-in-time training set through Feast, ``train_and_log`` into an SQLite MLflow
store with the lineage the DAG records, registration and promotion through the registry code.
Tests that change an input put it back afterwards.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

from include.simulator import ChurnSimulator
from mlops_provider.core import io
from mlops_provider.core.governance import (
    HOLDOUT_PREDICTIONS_PATH,
    read_training_lineage,
    reproduce,
)
from mlops_provider.core.governance.rebuild import view_definitions
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.training import TrainingConfig, train_and_log

START = date(2026, 1, 1)
DAYS = [START + timedelta(days=i) for i in range(6)]
VIEW = "customer_activity"
SERVICE = "churn_model"
MODEL = "churn-repro"


class DriftingLogistic(LogisticRegression):
    """A logistic regression whose default ``C`` a test moves, as a library upgrade that
    changes a default would."""

    def __init__(self, C: float = 1.0, max_iter: int = 300) -> None:  # noqa: N803 - sklearn's name
        super().__init__(C=C, max_iter=max_iter)


@dataclass
class Setup:
    target: MlflowTarget
    store: Any
    lake: Path
    features: Path
    training_set: str
    lineage: dict[str, Any]
    champion: Any  # TrainingResult of the promoted model


def _publish(sim: ChurnSimulator, lake: Path, features: Path) -> None:
    from mlops_provider.core.features import publish_partition

    for day in DAYS:
        raw = Path(sim.write_day(lake, day)["raw"]).parent
        publish_partition(str(raw), str(features), day, entity_columns=["customer_id"])


def _lineage(store: Any, window: Any, features: Path, evaluation: dict[str, Any]) -> dict:
    """What the reference training DAG records besides the datasets train_and_log reads."""

    def ref(uri: str) -> dict[str, Any]:
        table = io.read_table(uri)
        return {"uri": uri, "digest": io.table_digest(table), "rows": table.num_rows}

    partitions = []
    for day, uri in io.list_partitions(str(features)).items():
        if day.isoformat() in window.train_days:
            partitions.append(
                {**ref(uri), "day": day.isoformat(), "role": "training", "validation": {}}
            )
    return {
        "entity_data": {"training": ref(window.train_uri), "evaluation": ref(window.eval_uri)},
        "evaluation_data": ref(evaluation["uri"]),
        "label_window": {**window.to_dict(), "timestamp_column": "event_timestamp"},
        "feature_service": SERVICE,
        "feature_views": view_definitions(store, [VIEW]),
        "source_partitions": partitions,
        "code": {"dag_id": "mlops_training_pipeline"},
        "trigger": {"kind": "manual"},
    }


def _promote(target: MlflowTarget, result: Any) -> None:
    from mlops_provider.core.registry import promote

    evaluation = {
        "passed": True,
        "model": {"run_id": result.run_id, "uri": result.model_uri},
        "reasons": ["first model"],
        "cold_start": True,
    }
    promote(make_client(target), MODEL, evaluation)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    from mlops_provider.core.feast_config import make_feature_store
    from mlops_provider.core.features import apply_repo, create_training_dataset
    from mlops_provider.core.labels import build_label_window

    root = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLOPS_HOME", str(root / "mlops"))
        lake = root / "mlops" / "data"
        features = lake / "features" / VIEW
        sim = ChurnSimulator(seed=5, n_customers=300, start_date=START, label_delay_days=1)
        _publish(sim, lake, features)
        store = make_feature_store(None)
        apply_repo(store)
        window = build_label_window(
            str(lake / "labels"),
            str(features),
            str(lake / "training" / "run1" / "entities"),
            as_of=datetime(2026, 1, 7, tzinfo=timezone.utc),
            label_column="churned",
            entity_columns=["customer_id"],
            window_days=4,
        )
        sets = {}
        for role, entities in (("training", window.train_uri), ("evaluation", window.eval_uri)):
            sets[role] = create_training_dataset(
                store,
                entities,
                str(lake / "training" / "run1" / f"{role}_set.parquet"),
                feature_service=SERVICE,
                label_columns=["churned"],
            )
        target = MlflowTarget(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_location=(root / "artifacts").as_uri(),
        )
        lineage = _lineage(store, window, features, sets["evaluation"])
        champion = train_and_log(
            target,
            sets["training"]["uri"],
            TrainingConfig(
                target="churned",
                entity_columns=["customer_id"],
                estimator="sklearn.linear_model.LogisticRegression",
                estimator_params={"max_iter": 300},
            ),
            experiment_name="reproduce",
            feature_refs=sets["training"]["feature_refs"],
            lineage=lineage,
        )
        _promote(target, champion)
        yield Setup(target, store, lake, features, sets["training"]["uri"], lineage, champion)


@pytest.fixture
def restore(setup: Setup, tmp_path: Path) -> Iterator[None]:
    """Put the lake back as it was after a test that changes an input."""
    backup = tmp_path / "lake"
    shutil.copytree(setup.lake, backup)
    yield
    shutil.rmtree(setup.lake)
    shutil.copytree(backup, setup.lake)


def test_a_promoted_champion_is_reproduced_within_tolerance(setup: Setup) -> None:
    report = reproduce(setup.target, f"{MODEL}@champion", store=setup.store)
    assert report.verdict == "reproduced", report.to_text()
    assert report.model["version"] == "1" and report.model["run_id"] == setup.champion.run_id
    assert report.lineage_source == "lineage document"
    roles = [c.role for c in report.inputs]
    assert roles[:2] == ["training set", "evaluation set"]
    assert "entity data (training)" in roles and "source partition 2026-01-01 (training)" in roles
    assert all(c.status == "same" for c in report.inputs)
    assert report.rebuild is not None and report.rebuild.status == "reproduced"
    assert (
        report.rebuild.digest
        == read_training_lineage(
            make_client(setup.target), setup.champion.run_id
        ).training_data.digest
    )
    assert report.refit_on.startswith("the rebuilt training set")
    names = {m.name for m in report.metrics}
    assert {"roc_auc", "train_roc_auc"} <= names and all(m.matches for m in report.metrics)
    recorded = make_client(setup.target).get_run(setup.champion.run_id).data.metrics
    assert {m.name: m.recorded for m in report.metrics}["roc_auc"] == recorded["roc_auc"]
    assert [p.against for p in report.predictions] == [
        "recorded holdout predictions",
        f"model models:/{MODEL}/1",
    ]
    assert all(p.matches and p.rows == setup.champion.holdout_rows for p in report.predictions)
    sklearn = {lib["package"]: lib for lib in report.libraries}["scikit-learn"]
    assert sklearn["same"] and report.configuration == []
    data = json.loads(json.dumps(report.to_dict()))
    assert data["verdict"] == "reproduced" and data["reproduced"] is True
    text = report.to_text()
    assert f"Reproduce {MODEL} version 1" in text and "REPRODUCED" in text
    by_version = reproduce(setup.target, f"{MODEL}/1", rebuild_training_set=False)
    assert by_version.verdict == "reproduced" and by_version.rebuild.status == "skipped"
    assert by_version.refit_on == f"the recorded training set {setup.training_set}"


def test_the_holdout_predictions_are_recorded_at_training(setup: Setup) -> None:
    import pyarrow.parquet as pq

    client = make_client(setup.target)
    path = client.download_artifacts(
        setup.champion.run_id, HOLDOUT_PREDICTIONS_PATH, str(Path(setup.lake).parent)
    )
    table = pq.read_table(path)
    assert table.column_names == ["row", "prediction", "proba_0", "proba_1"]
    assert table.num_rows == setup.champion.holdout_rows


def test_a_changed_source_partition_is_detected_and_named(setup: Setup, restore: None) -> None:
    day = setup.lineage["source_partitions"][1]
    frame = io.read_pandas(day["uri"])
    frame["monthly_charges"] = frame["monthly_charges"] * 1.5
    for old in Path(day["uri"]).glob("*.parquet"):
        old.unlink()
    io.write_table(frame, str(Path(day["uri"]) / "part-0.parquet"))
    report = reproduce(setup.target, f"{MODEL}/1", store=setup.store)
    assert report.verdict == "inputs_changed", report.to_text()
    [changed] = report.changed_inputs
    assert changed.role == f"source partition {day['day']} (training)"
    assert changed.uri == day["uri"]
    assert changed.recorded_digest == day["digest"] and changed.current_digest != day["digest"]
    assert changed.recorded_rows == changed.current_rows == day["rows"]
    assert any(day["uri"] in reason and "changed" in reason for reason in report.reasons)
    assert report.rebuild.status == "differs"
    assert any(day["uri"] in cause for cause in report.rebuild.causes)
    # the recorded training set itself is intact: the refit on it still matches
    assert report.refit_on.startswith("the recorded training set")
    assert all(m.matches for m in report.metrics)
    assert f"changed  source partition {day['day']} (training) {day['uri']} changed" in (
        report.to_text()
    )


def test_a_changed_training_set_is_named_and_refitted_from_its_retained_version(
    setup: Setup, restore: None
) -> None:
    frame = io.read_pandas(setup.training_set)
    io.write_table(frame.iloc[: len(frame) - 30], setup.training_set)
    report = reproduce(setup.target, f"{MODEL}/1", rebuild_training_set=False)
    assert report.verdict == "inputs_changed"
    [changed] = report.changed_inputs
    assert changed.role == "training set" and changed.uri == setup.training_set
    assert changed.current_rows == changed.recorded_rows - 30
    # the lake kept the replaced content (io.resolve_version): the refit uses it and matches
    kept = changed.readable_version
    assert kept and "/_versions/" in kept and kept != setup.training_set
    assert f"the recorded version is at {kept}" in changed.describe()
    assert report.refit_on == f"the recorded training set {kept}"
    assert report.metrics and all(m.matches for m in report.metrics)
    assert all(p.matches for p in report.predictions)

    # once retention has removed it, the refit runs on what is there now, and says so
    shutil.rmtree(kept[: kept.index("/_versions/") + len("/_versions")])
    report = reproduce(setup.target, f"{MODEL}/1", rebuild_training_set=False)
    [changed] = report.changed_inputs
    assert changed.readable_version is None
    assert report.refit_on == f"the current content of {setup.training_set}"
    assert any("differences below are expected" in n for n in report.notes)


def test_changed_feature_view_definitions_are_named(setup: Setup, restore: None) -> None:
    from mlops_provider.core.governance.rebuild import definition_changes

    recorded = json.loads(json.dumps(setup.lineage["feature_views"]))
    assert definition_changes(recorded, setup.store) == []
    # bookkeeping the training pipeline records besides the definition is not compared
    recorded[0].update(created="2026-01-01T00:00:00+00:00", definition_digest="0123abcd")
    recorded[0]["definition"]["meta"] = {"createdTimestamp": "2026-01-01T00:00:00Z"}
    assert definition_changes(recorded, setup.store) == []
    recorded[0]["ttl_seconds"] = 86400
    recorded[0]["definition"]["ttl"] = "86400s"
    recorded[0]["features"] = recorded[0]["features"][:-1]
    [change] = definition_changes(recorded, setup.store)
    assert change.startswith(f"feature view {VIEW} changed: ")
    assert "ttl_seconds: 86400 -> 2592000" in change and "definition.ttl" in change
    assert "features: [" in change


def test_a_feature_view_changed_in_the_registry_is_named(setup: Setup) -> None:
    from datetime import timedelta as td

    from mlops_provider.core.features import apply_repo

    view = setup.store.get_feature_view(VIEW)
    view.ttl = td(hours=12)  # every training row has same-day features: no effect on the set
    setup.store.apply([view])
    try:
        harmless = reproduce(setup.target, f"{MODEL}/1", store=setup.store)
        view.features = [f for f in view.features if f.name != "monthly_charges"]
        setup.store.apply([view])
        dropped = reproduce(setup.target, f"{MODEL}/1", store=setup.store)
    finally:
        apply_repo(setup.store)
    assert harmless.verdict == "reproduced", harmless.to_text()
    assert harmless.rebuild.status == "reproduced"
    assert "without effect on the training set: feature view customer_activity changed" in (
        harmless.rebuild.note
    )
    assert "ttl_seconds: 2592000 -> 43200" in harmless.rebuild.note
    assert dropped.verdict == "inputs_changed", dropped.to_text()
    assert dropped.changed_inputs == []  # every dataset is what it was
    assert dropped.rebuild.status in ("differs", "failed")
    change = dropped.rebuild.changed_features[0]
    assert change.startswith(f"feature view {VIEW} changed: ") and "monthly_charges" in change
    assert dropped.reasons[0] == change
    assert reproduce(setup.target, f"{MODEL}/1", store=setup.store).reproduced


def test_a_changed_library_version_is_reported(setup: Setup) -> None:
    import sklearn

    result = train_and_log(
        setup.target,
        setup.training_set,
        TrainingConfig(target="churned", entity_columns=["customer_id"], **_fast()),
        experiment_name="reproduce-libraries",
        pip_requirements=["scikit-learn==1.0.2", "numpy==1.26.4"],
    )
    report = reproduce(setup.target, result.run_id)
    assert report.verdict == "reproduced"  # same numbers: the versions are reported, not fatal
    libraries = {lib["package"]: lib for lib in report.libraries}
    assert libraries["scikit-learn"] == {
        "package": "scikit-learn",
        "at_training": "1.0.2",
        "now": sklearn.__version__,
        "same": False,
    }
    assert f"DIFF  scikit-learn 1.0.2 -> {sklearn.__version__}" in report.to_text()
    assert report.model["version"] is None and report.model["run_id"] == result.run_id


def _fast() -> dict[str, Any]:
    return {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "estimator_params": {"max_iter": 300},
    }


def test_a_changed_estimator_default_is_named_and_the_refit_mismatches(setup: Setup) -> None:
    path = f"{__name__}.DriftingLogistic"
    result = train_and_log(
        setup.target,
        setup.training_set,
        TrainingConfig(target="churned", entity_columns=["customer_id"], estimator=path),
        experiment_name="reproduce-defaults",
    )
    defaults = DriftingLogistic.__init__.__defaults__
    DriftingLogistic.__init__.__defaults__ = (0.001, 300)  # the "upgrade" moved a default
    try:
        report = reproduce(setup.target, result.run_id)
    finally:
        DriftingLogistic.__init__.__defaults__ = defaults
    assert report.verdict == "mismatch", report.to_text()
    assert report.changed_inputs == []
    assert report.configuration == ["estimator parameter C: recorded '1.0', refit '0.001'"]
    assert report.reasons[0] == report.configuration[0]
    differing = [m for m in report.metrics if not m.matches]
    assert differing and all(m.difference > report.tolerance for m in differing)
    assert any(r.startswith("metric ") for r in report.reasons)
    assert not report.predictions[0].matches and report.predictions[0].differing_rows > 0


def test_a_run_without_a_lineage_document_is_read_from_its_tags_and_params(
    setup: Setup,
) -> None:
    from urllib.parse import urlparse

    from mlops_provider.core.governance import LINEAGE_ARTIFACT

    result = train_and_log(
        setup.target,
        setup.training_set,
        TrainingConfig(target="churned", entity_columns=["customer_id"], **_fast()),
        experiment_name="reproduce-old-run",
    )
    run = make_client(setup.target).get_run(result.run_id)
    (Path(urlparse(run.info.artifact_uri).path) / LINEAGE_ARTIFACT).unlink()
    report = reproduce(setup.target, result.run_id)
    assert report.lineage_source == "run tags and params"
    assert report.verdict == "reproduced", report.to_text()
    assert report.inputs[0].note == "compared by MLflow's dataset digest (no lineage document)"
    assert report.rebuild is not None and report.rebuild.status == "skipped"


def test_the_command_prints_the_report_and_exits_with_the_verdict(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import subprocess
    import sys

    from mlops_provider.__main__ import main

    uri = setup.target.tracking_uri
    # a process of its own, as a user runs it: stdout holds the JSON report and nothing else
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_provider",
            "reproduce",
            f"{MODEL}/1",
            "--json",
            "--tracking-uri",
            uri,
        ],
        env={**os.environ, "MLOPS_HOME": str(setup.lake.parent)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["verdict"] == "reproduced" and out["rebuild"]["status"] == "reproduced"
    assert main(["reproduce", "no-such-model/7", "--tracking-uri", uri]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_bad_model_references_are_refused(setup: Setup) -> None:
    from mlops_provider.core.errors import InputError

    with pytest.raises(InputError, match="expected <name>/<version>"):
        reproduce(setup.target, "churn")
