"""Feast operators, sensor and trigger against real stores (SQLite and Redis online stores).

Operators run inside real DAGs with ``dag.test()``; the data root holds simulator activity
published as feature partitions. Redis tests use a unique Feast project per test (Redis keys
end with the project name) and remove their keys afterwards.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import ENTITY_COLUMN, FEATURE_COLUMNS, TIMESTAMP_COLUMN, ChurnSimulator
from mlops_provider.core import features as feat
from mlops_provider.core import io
from mlops_provider.core.results import check_result
from mlops_provider.exceptions import FeatureStoreError
from mlops_provider.hooks.feast import FeastHook
from mlops_provider.operators.feast import (
    FeastApplyOperator,
    FeastMaterializeOperator,
    FeastTrainingDatasetOperator,
)
from mlops_provider.sensors.feast import FeatureFreshnessSensor
from mlops_provider.triggers.feast import FeatureFreshnessTrigger

pytestmark = pytest.mark.integration

DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]
VIEW = "customer_activity"
REFS = [f"{VIEW}:{c}" for c in FEATURE_COLUMNS]
SIM = ChurnSimulator(seed=5, n_customers=60, daily_active_fraction=0.4)
IDS = list(range(100_001, 100_061))


def utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("lake")
    for day in DAYS:
        raw = SIM.write_day(lake, day)["raw"]
        feat.publish_partition(
            str(Path(raw).parent),
            str(lake / "features" / VIEW),
            day,
            entity_columns=["customer_id"],
        )
    return lake


@pytest.fixture
def lake(mlops_home: Path, published: Path) -> Path:
    """This test's data root (``$MLOPS_HOME/data``) with raw, labels and feature partitions."""
    root = mlops_home / "data"
    shutil.copytree(published, root)
    return root


def _dag(dag_id: str) -> Any:
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    return DAG(
        dag_id=f"{dag_id}_{uuid.uuid4().hex[:6]}",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=utc(DAYS[0]),
        catchup=False,
    )


def _latest(lake: Path, start: datetime, end: datetime) -> pd.DataFrame:
    rows = io.read_pandas(str(lake / "features" / VIEW)).drop(columns=["dt"])
    ts = rows[TIMESTAMP_COLUMN]
    rows = rows[(ts >= start) & (ts <= end)].sort_values(TIMESTAMP_COLUMN)
    return rows.groupby(ENTITY_COLUMN).tail(1).set_index(ENTITY_COLUMN)


def _online(store: Any) -> dict[int, dict[str, Any]]:
    values = store.get_online_features(
        features=REFS, entity_rows=[{ENTITY_COLUMN: i} for i in IDS]
    ).to_dict()
    return {
        int(cid): {c: values[c][i] for c in FEATURE_COLUMNS}
        for i, cid in enumerate(values[ENTITY_COLUMN])
    }


def _assert_online_is_latest(store: Any, expected: pd.DataFrame) -> dict[int, dict[str, Any]]:
    got = _online(store)
    assert len(expected) > 10
    for cid, values in got.items():
        if cid in expected.index:
            assert values == {c: expected.loc[cid, c] for c in FEATURE_COLUMNS}, cid
        else:
            assert all(v is None for v in values.values()), cid
    return got


# ------------------------------------------------------------------------------------------
# Operators in a DAG (embedded default: file offline store, SQLite online store)
# ------------------------------------------------------------------------------------------
def test_feature_pipeline_dag_applies_materializes_waits_and_builds_a_training_set(
    airflow_db: Path, lake: Path, mlops_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    labels = pd.concat([SIM.labels(DAYS[1]), SIM.labels(DAYS[2])], ignore_index=True)
    io.write_table(labels, str(lake / "entity" / "labels.parquet"))
    output = str(lake / "training" / "dt={{ data_interval_start | ds }}" / "training.parquet")

    with _dag("feast_ops") as dag:
        apply = FeastApplyOperator(task_id="apply")
        materialize = FeastMaterializeOperator(
            task_id="materialize",
            start="{{ (data_interval_start - macros.timedelta(days=2)).isoformat() }}",
            chunk=timedelta(hours=12),
        )
        fresh = FeatureFreshnessSensor(
            task_id="fresh", feature_view=VIEW, poke_interval=1, timeout=30
        )
        training = FeastTrainingDatasetOperator(
            task_id="training_set",
            entity_data=str(lake / "entity" / "labels.parquet"),
            output_uri=output,
            feature_service="churn_model",
            label_columns=["churned"],
        )
        apply >> materialize >> fresh >> training

    run = run_dag(dag, DAYS[2])
    assert task_states(run) == {
        t: "success" for t in ("apply", "materialize", "fresh", "training_set")
    }

    for task_id in ("apply", "materialize", "training_set"):
        assert check_result(xcom(run, task_id)) == [], task_id
    applied = xcom(run, "apply")
    assert applied["status"] == "applied" and applied["passed"] is True
    assert applied["project"] == "churn" and applied["changed"] is True
    assert applied["feature_views"] == [VIEW] and applied["feature_services"] == ["churn_model"]
    assert applied["entities"] == ["customer"]

    materialized = xcom(run, "materialize")
    window = {
        "start": utc(DAYS[0]).isoformat(),
        "end": (utc(DAYS[2]) + timedelta(days=1)).isoformat(),
    }
    assert materialized["window"] == window
    assert materialized["views"] == [VIEW] and materialized["chunks"] == 6
    assert materialized["source_rows"] == sum(len(SIM.activity(d)) for d in DAYS)
    assert materialized["status"] == "materialized"
    assert materialized["rows"] == materialized["source_rows"]

    store = FeastHook().store
    _assert_online_is_latest(store, _latest(lake, utc(DAYS[0]), utc(DAYS[2]) + timedelta(days=1)))

    assert xcom(run, "fresh") == {
        "feature_view": VIEW,
        "target_time": window["end"],
        "fresh_until": window["end"],
    }

    built = xcom(run, "training_set")
    expected_uri = str(lake / "training" / "dt=2026-01-03" / "training.parquet")
    assert built["uri"] == expected_uri
    assert built["row_count"] == len(labels) == built["entity_rows"] == built["rows"]
    assert built["status"] == "written" and built["reasons"] == []
    assert built["rows_without_features"] == 0
    assert built["feature_refs"] == REFS and built["feature_service"] == "churn_model"
    table = io.read_table(expected_uri)
    assert built["digest"] == io.table_digest(table)
    assert table.column("churned").to_pylist() == labels["churned"].tolist()
    # each label row carries the features of the activity row it was stamped with
    activity = pd.concat([SIM.activity(d) for d in DAYS[1:]], ignore_index=True)
    assert table.select(FEATURE_COLUMNS).to_pandas().equals(activity[FEATURE_COLUMNS])

    # Feast prints its apply diffs (whole protobuf messages), banners and progress bars: they
    # are logged at DEBUG by the provider, never printed into the task log (stdout -> INFO,
    # stderr -> ERROR lines)
    out, err = capfd.readouterr()
    for printed in ("Created feature view", "Materializing", "\x1b[", "it/s]"):
        assert printed not in out and printed not in err, printed


def test_materialize_rerun_of_the_same_interval_converges(
    airflow_db: Path, lake: Path, mlops_home: Path
) -> None:
    feat.apply_repo(FeastHook().store)
    with _dag("feast_rematerialize") as dag:
        FeastMaterializeOperator(task_id="materialize", feature_views=VIEW)
    first = run_dag(dag, DAYS[1])
    assert task_states(first) == {"materialize": "success"}
    store = FeastHook().store
    before = _assert_online_is_latest(store, _latest(lake, utc(DAYS[1]), utc(DAYS[2])))
    result = xcom(first, "materialize")
    assert result["source_rows"] == len(SIM.activity(DAYS[1])) == result["rows_written"]
    assert result["replayed"] is None and result["online_store"] == "sqlite"

    second = run_dag(dag, DAYS[1])
    assert xcom(second, "materialize")["rows_written"] == result["rows_written"]
    assert _online(store) == before
    assert feat.freshness(store, VIEW) == utc(DAYS[2])


def test_bad_operator_input_fails_the_task_with_a_clear_error(
    airflow_db: Path, lake: Path, mlops_home: Path, tmp_path: Path
) -> None:
    feat.apply_repo(FeastHook().store)
    with _dag("feast_bad_input") as dag:
        FeastMaterializeOperator(task_id="unknown_view", feature_views=["nope"], retries=0)
        FeastApplyOperator(task_id="missing_repo", repo_path=str(tmp_path / "nope"), retries=0)
    run = run_dag(dag, DAYS[1])
    assert task_states(run) == {"unknown_view": "failed", "missing_repo": "failed"}

    context: Any = {"data_interval_start": utc(DAYS[1]), "data_interval_end": utc(DAYS[2])}
    with pytest.raises(FeatureStoreError, match=r"\['nope'\] do not exist.*customer_activity"):
        FeastMaterializeOperator(task_id="x", feature_views=["nope"]).execute(context)
    with pytest.raises(FeatureStoreError, match="is in the future"):
        FeastMaterializeOperator(task_id="x", end="2999-01-01T00:00:00Z").execute(context)
    with pytest.raises(FeatureStoreError, match=r"^Feast apply failed: .*nope does not exist"):
        FeastApplyOperator(task_id="x", repo_path=str(tmp_path / "nope")).execute(context)
    with pytest.raises(FeatureStoreError, match="start 'yesterday' is not a date"):
        FeastMaterializeOperator(task_id="x", start="yesterday").execute(context)

    entity = str(tmp_path / "entity.parquet")
    io.write_table(SIM.labels(DAYS[1]).drop(columns=[TIMESTAMP_COLUMN]), entity)
    with pytest.raises(FeatureStoreError, match=r"missing column\(s\) \['event_timestamp'\]"):
        FeastTrainingDatasetOperator(
            task_id="x", entity_data=entity, output_uri=str(tmp_path / "o.parquet"), features=REFS
        ).execute(context)
    io.write_table(SIM.labels(DAYS[1]), entity)
    with pytest.raises(FeatureStoreError, match=r"\['customer_activity:tenure'\] do not exist"):
        FeastTrainingDatasetOperator(
            task_id="x",
            entity_data=entity,
            output_uri=str(tmp_path / "o.parquet"),
            features=[f"{VIEW}:tenure"],
        ).execute(context)
    with pytest.raises(FeatureStoreError, match="feature service 'nope' does not exist"):
        FeastTrainingDatasetOperator(
            task_id="x",
            entity_data=entity,
            output_uri=str(tmp_path / "o.parquet"),
            feature_service="nope",
        ).execute(context)
    assert not (tmp_path / "o.parquet").exists()


# ------------------------------------------------------------------------------------------
# Sensor and trigger
# ------------------------------------------------------------------------------------------
def _first_event(trigger: FeatureFreshnessTrigger, timeout: float) -> Any:
    async def first() -> Any:
        generator = trigger.run()
        try:
            return await asyncio.wait_for(generator.__anext__(), timeout)
        finally:
            await generator.aclose()

    return asyncio.run(first())


def test_freshness_sensor_poke_defer_and_trigger(lake: Path, mlops_home: Path) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    store = FeastHook().store
    feat.apply_repo(store)
    context: Any = {"data_interval_end": utc(DAYS[2])}
    sensor = FeatureFreshnessSensor(task_id="fresh", feature_view=VIEW, poke_interval=2)
    assert sensor.poke(context).is_done is False

    deferrable = FeatureFreshnessSensor(
        task_id="fresh_deferred", feature_view=VIEW, deferrable=True, poke_interval=2, timeout=60
    )
    with pytest.raises(TaskDeferred) as deferred:
        deferrable.execute(context)
    trigger = deferred.value.trigger
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_provider.triggers.feast.FeatureFreshnessTrigger"
    assert kwargs == {
        "feature_view": VIEW,
        "target_time": utc(DAYS[2]).isoformat(),
        "feast_conn_id": "feast_default",
        "repo_path": None,
        "poke_interval": 2.0,
    }
    json.dumps(kwargs)
    assert FeatureFreshnessTrigger(**kwargs).serialize() == (classpath, kwargs)

    # not fresh: run() keeps polling and yields nothing
    with pytest.raises(TimeoutError):
        _first_event(FeatureFreshnessTrigger(**kwargs), timeout=1.5)

    feat.materialize(store, utc(DAYS[0]), utc(DAYS[2]))
    event = _first_event(FeatureFreshnessTrigger(**kwargs), timeout=30)
    assert event.payload == {
        "status": "success",
        "feature_view": VIEW,
        "target_time": utc(DAYS[2]).isoformat(),
        "fresh_until": utc(DAYS[2]).isoformat(),
    }
    assert (
        deferrable.execute_complete(context, event.payload)["fresh_until"] == kwargs["target_time"]
    )

    done = sensor.poke(context)
    assert done.is_done and done.xcom_value["fresh_until"] == utc(DAYS[2]).isoformat()
    assert deferrable.execute(context)["fresh_until"] == utc(DAYS[2]).isoformat()  # no deferral
    later = FeatureFreshnessSensor(
        task_id="later", feature_view=VIEW, target_time="2026-01-03T00:00:01Z"
    )
    assert later.poke(context).is_done is False

    error = _first_event(FeatureFreshnessTrigger(**{**kwargs, "feature_view": "nope"}), 30)
    assert error.payload["status"] == "error"
    assert "feature view 'nope' does not exist" in error.payload["message"]
    with pytest.raises(FeatureStoreError, match="does not exist"):
        deferrable.execute_complete(context, error.payload)
    with pytest.raises(FeatureStoreError, match="feature view 'nope' does not exist"):
        FeatureFreshnessSensor(task_id="nope", feature_view="nope").poke(context)


# ------------------------------------------------------------------------------------------
# Redis online store
# ------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_operators_with_the_redis_online_store(
    airflow_db: Path, lake: Path, mlops_home: Path, redis_url: str, monkeypatch
) -> None:
    import redis

    project = f"churn_test_{uuid.uuid4().hex[:10]}"
    overrides = {
        "project": project,
        "online_store": {"type": "redis", "connection_string": redis_url.split("://", 1)[1]},
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_FEAST_REDIS",
        json.dumps({"conn_type": "feast", "extra": {"feature_store_yaml": json.dumps(overrides)}}),
    )
    client = redis.Redis.from_url(redis_url)
    store = FeastHook("feast_redis").store
    assert store.config.online_store.type == "redis" and store.project == project
    try:
        with _dag("feast_redis") as dag:
            apply = FeastApplyOperator(task_id="apply", feast_conn_id="feast_redis")
            materialize = FeastMaterializeOperator(
                task_id="materialize",
                feast_conn_id="feast_redis",
                start="2026-01-01T00:00:00Z",
            )
            apply >> materialize
        run = run_dag(dag, DAYS[1])
        assert task_states(run) == {"apply": "success", "materialize": "success"}
        result = xcom(run, "materialize")
        assert result["online_store"] == "redis" and result["chunks"] == 2
        expected = _latest(lake, utc(DAYS[0]), utc(DAYS[2]))
        before = _assert_online_is_latest(store, expected)
        keys = list(client.scan_iter(match=f"*{project}".encode()))
        assert len(keys) == len(expected)

        # rerun and a backfill of an older window: Redis keeps the newest values itself
        feat.materialize(store, utc(DAYS[0]), utc(DAYS[2]))
        backfill = feat.materialize(store, utc(DAYS[0]), utc(DAYS[1]))
        assert backfill["replayed"] is None
        assert _online(store) == before
    finally:
        store.teardown()
        leftover = list(client.scan_iter(match=f"*{project}".encode()))
        for key in leftover:
            client.delete(key)
    assert leftover == []


# ------------------------------------------------------------------------------------------
# One vocabulary
# ------------------------------------------------------------------------------------------
def test_every_feast_operator_defaults_to_the_aws_default_connection() -> None:
    operators = [
        FeastApplyOperator(task_id="apply"),
        FeastMaterializeOperator(task_id="materialize"),
        FeastTrainingDatasetOperator(task_id="training", entity_data="e", output_uri="o"),
    ]
    for operator in operators:
        assert operator.aws_conn_id == "aws_default", operator.task_id
        assert operator.feast_conn_id == "feast_default", operator.task_id
        assert "aws_conn_id" in operator.template_fields, operator.task_id


def test_a_trigger_serialized_with_poll_interval_still_resumes() -> None:
    """The trigger's interval is ``poke_interval`` like the sensor's; a trigger serialized by an
    earlier release (``poll_interval``) is still accepted, with a deprecation warning."""
    from mlops_provider.exceptions import MlopsProviderDeprecationWarning

    old = {
        "feature_view": VIEW,
        "target_time": "2026-01-03T00:00:00+00:00",
        "feast_conn_id": "feast_default",
        "repo_path": None,
        "poll_interval": 7.0,
    }
    with pytest.warns(MlopsProviderDeprecationWarning, match="'poll_interval' is deprecated"):
        trigger = FeatureFreshnessTrigger(**old)
    assert trigger.poke_interval == 7.0
    assert trigger.serialize()[1]["poke_interval"] == 7.0
    assert "poll_interval" not in trigger.serialize()[1]
    assert FeatureFreshnessTrigger(feature_view=VIEW, target_time="x").poke_interval == 60.0
    with pytest.raises(TypeError, match="unexpected arguments"):
        FeatureFreshnessTrigger(feature_view=VIEW, target_time="x", poll_every=3)


def test_features_stay_readable_while_a_materialization_runs(
    airflow_db: Path, lake: Path, mlops_home: Path
) -> None:
    """Feast marks a view MATERIALIZING in the shared registry for a whole materialization and
    then refuses its online and historical reads (one gate for both); the provider's stores keep
    serving the last values (a training set or a realtime request at the time of the daily
    materialization)."""
    from feast.feature_view import FeatureViewState

    from mlops_provider.core.feast_config import load_repo_config, store_from_config

    store = FeastHook().store
    feat.apply_repo(store)
    feat.materialize(store, utc(DAYS[1]), utc(DAYS[2]), views=[VIEW])
    view = store.get_feature_view(VIEW)
    view.state = FeatureViewState.MATERIALIZING  # as another process's materialization leaves it
    store.registry.apply_feature_view(view, store.project, commit=True)
    other = FeastHook().store  # another task's store reads the shared registry
    assert other.get_feature_view(VIEW).state == FeatureViewState.MATERIALIZING
    assert _online(other)  # online reads are served
    # a repo that says no keeps Feast's refusal
    config = load_repo_config(
        None,
        {
            "registry": {
                "path": str(mlops_home / "feast" / "registry.db"),
                "serve_features_while_materializing": False,
            }
        },
    )
    with pytest.raises(ValueError, match="is in state 'MATERIALIZING'"):
        _online(store_from_config(config))


def test_feast_reads_the_current_partitions_never_retained_versions(
    airflow_db: Path, lake: Path, mlops_home: Path
) -> None:
    """A republished partition with other content keeps the old content as a version beside
    the feature source (docs/versioning.md); Feast's file offline store, which reads the source
    directory recursively, sees only the current partitions. The new rows are one second
    older than the retained ones: if Feast read both, the retained values would win."""
    import pyarrow as pa

    part = io.partition_uri(str(lake / "features" / VIEW), DAYS[1])
    before = io.read_table(part)
    frame = before.to_pandas()
    frame[TIMESTAMP_COLUMN] -= pd.Timedelta(seconds=1)
    numeric = next(c for c in FEATURE_COLUMNS if pd.api.types.is_float_dtype(frame[c]))
    frame[numeric] = frame[numeric] + 1000.0
    changed = pa.Table.from_pandas(frame, schema=before.schema, preserve_index=False)
    old_digest = io.digest_of(part)
    written = io.write_partition(changed, part)
    assert written["digest"] != old_digest
    assert io.read_table(part, version=old_digest).equals(before)
    assert (lake / "features" / "_versions" / VIEW / f"dt={DAYS[1]}").is_dir()
    assert sorted(p.name for p in (lake / "features" / VIEW).iterdir()) == [
        f"dt={day}" for day in DAYS
    ]

    store = FeastHook().store
    feat.apply_repo(store)
    feat.materialize(store, utc(DAYS[0]), utc(DAYS[2]), views=[VIEW])
    expected = _latest(lake, utc(DAYS[0]), utc(DAYS[2]))
    assert (expected[numeric] > 900).any()  # the republished values are the latest ones
    _assert_online_is_latest(store, expected)
