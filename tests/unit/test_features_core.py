"""core/features against a real Feast store (file offline store, SQLite online store).

Simulator activity for four days is published once per module; each test gets a fresh
``MLOPS_HOME`` (registry, online store) with a copy of the published partitions under its data
root, and applies the project's feature repo there.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from include.simulator import (
    CATEGORICAL_FEATURES,
    ENTITY_COLUMN,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    TIMESTAMP_COLUMN,
    ChurnSimulator,
)
from mlops_provider.core import features as feat
from mlops_provider.core import io, times
from mlops_provider.core.errors import InputError
from mlops_provider.core.feast_config import FeastRepoError, make_feature_store
from mlops_provider.core.results import check_result

DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 4)]
VIEW = "customer_activity"
REFS = [f"{VIEW}:{c}" for c in FEATURE_COLUMNS]


def utc(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sim() -> ChurnSimulator:
    return ChurnSimulator(seed=11, n_customers=80, daily_active_fraction=0.4)


@pytest.fixture(scope="module")
def published(sim: ChurnSimulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Feature partitions dt=2026-01-01..04 published from simulator raw partitions."""
    lake = tmp_path_factory.mktemp("lake")
    source = lake / "features" / VIEW
    for day in DAYS:
        raw = sim.write_day(lake, day)["raw"]
        feat.publish_partition(
            str(Path(raw).parent), str(source), day, entity_columns=["customer_id"]
        )
    return source


@pytest.fixture
def store(mlops_home: Path, published: Path) -> Any:
    """A fresh store whose data root holds the published partitions; the repo applied."""
    shutil.copytree(published, mlops_home / "data" / "features" / VIEW)
    feature_store = make_feature_store(None)
    feat.apply_repo(feature_store)
    return feature_store


def source_rows(published: Path) -> pd.DataFrame:
    return io.read_pandas(str(published)).drop(columns=["dt"], errors="ignore")


def latest_per_customer(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    ts = frame[TIMESTAMP_COLUMN]
    window = frame[(ts >= start) & (ts <= end)].sort_values(TIMESTAMP_COLUMN)
    return window.groupby(ENTITY_COLUMN).tail(1).set_index(ENTITY_COLUMN)


def online(store: Any, ids: list[int]) -> dict[int, dict[str, Any]]:
    values = store.get_online_features(
        features=REFS, entity_rows=[{ENTITY_COLUMN: int(i)} for i in ids]
    ).to_dict()
    return {
        int(cid): {c: values[c][i] for c in FEATURE_COLUMNS}
        for i, cid in enumerate(values[ENTITY_COLUMN])
    }


def all_ids(sim: ChurnSimulator) -> list[int]:
    return list(range(100_001, 100_001 + sim.n_customers))


# ------------------------------------------------------------------------------------------
# Pure helpers
# ------------------------------------------------------------------------------------------
def test_to_utc_accepts_dates_strings_and_naive_times() -> None:
    assert feat.to_utc("2026-01-02") == utc(date(2026, 1, 2))
    assert feat.to_utc("2026-01-02T03:00:00Z") == utc(date(2026, 1, 2), 3)
    assert feat.to_utc("2026-01-02T04:00:00+01:00") == utc(date(2026, 1, 2), 3)
    assert feat.to_utc(datetime(2026, 1, 2, 3)) == utc(date(2026, 1, 2), 3)
    assert feat.to_utc(date(2026, 1, 2)) == utc(date(2026, 1, 2))
    import pendulum

    from_context = feat.to_utc(pendulum.datetime(2026, 1, 2, tz="Europe/Paris"))
    assert type(from_context) is datetime and from_context == utc(date(2026, 1, 1), 23)
    assert (from_context + timedelta(hours=1)).tzinfo is timezone.utc
    with pytest.raises(InputError, match="start 'yesterday' is not a date or datetime"):
        feat.to_utc("yesterday", what="start")


def test_one_time_helper_and_one_partition_lister() -> None:
    assert feat.to_utc is times.to_utc
    assert feat.published_days is io.partition_days


def test_feature_source_follows_the_data_root(mlops_home: Path, monkeypatch) -> None:
    assert feat.feature_source_uri(VIEW) == str(mlops_home / "data" / "features" / VIEW)
    assert feat.s3_endpoint_override() is None
    monkeypatch.setenv("MLOPS_LAKE_URI", "s3://lake")
    assert feat.feature_source_uri(VIEW) == "s3://lake/features/customer_activity"
    monkeypatch.setenv("MLOPS_FEATURES_ROOT", "s3://lake/features")
    monkeypatch.setenv("MLOPS_FEATURES_S3_ENDPOINT", "http://minio:9000")
    assert feat.feature_source_uri(VIEW) == "s3://lake/features/customer_activity"
    assert feat.s3_endpoint_override() == "http://minio:9000"


# ------------------------------------------------------------------------------------------
# Publishing
# ------------------------------------------------------------------------------------------
def test_publish_partition_rerun_replaces_and_selects_columns(
    sim: ChurnSimulator, tmp_path: Path
) -> None:
    raw = Path(sim.write_day(tmp_path / "lake", DAYS[0])["raw"]).parent
    target = str(tmp_path / "features" / VIEW)
    first = feat.publish_partition(str(raw), target, "2026-01-01", entity_columns=["customer_id"])
    expected_rows = len(sim.activity(DAYS[0]))
    assert check_result(first) == [] and first["status"] == "published"
    assert first["rows"] == expected_rows and first["replaced"] is False
    assert first["uri"].endswith("dt=2026-01-01")
    again = feat.publish_partition(
        str(raw), target, DAYS[0], columns=["plan", "tenure_months"], entity_columns=["customer_id"]
    )
    assert again["replaced"] is True
    table = io.read_table(again["uri"])
    assert table.num_rows == expected_rows  # replaced, not appended
    assert table.column_names == [ENTITY_COLUMN, TIMESTAMP_COLUMN, "plan", "tenure_months"]
    assert feat.published_days(target) == [DAYS[0]]
    # the validation that let the day through is kept in its _SUCCESS marker
    from mlops_provider.core.features.publish import partition_marker, partition_validation

    assert (
        first["validation"] is None and partition_validation(partition_marker(first["uri"])) is None
    )
    checked = {"status": "passed", "passed": True, "suite": "raw", "report_uri": "r.html", "x": 1}
    third = feat.publish_partition(
        str(raw), target, DAYS[0], entity_columns=["customer_id"], validation=checked
    )
    recorded = partition_validation(partition_marker(third["uri"]))
    assert recorded == third["validation"] == {k: v for k, v in checked.items() if k != "x"}
    # hidden staging directories of an interrupted publish are not days
    (tmp_path / "features" / VIEW / ".staging-dt=2026-01-05-abc").mkdir()
    assert feat.published_days(target) == [DAYS[0]]
    assert feat.published_days(str(tmp_path / "nothing")) == []


def test_publish_partition_rejects_missing_columns_and_schema_changes(
    sim: ChurnSimulator, tmp_path: Path
) -> None:
    target = str(tmp_path / "features" / VIEW)
    day1 = sim.activity(DAYS[0])
    io.write_table(day1, str(tmp_path / "d1.parquet"))
    feat.publish_partition(
        str(tmp_path / "d1.parquet"), target, DAYS[0], entity_columns=["customer_id"]
    )

    with pytest.raises(io.DatasetFormatError, match="missing column"):
        feat.publish_partition(
            str(tmp_path / "d1.parquet"),
            target,
            DAYS[1],
            columns=["nope"],
            entity_columns=["customer_id"],
        )
    no_ts = day1.drop(columns=[TIMESTAMP_COLUMN])
    io.write_table(no_ts, str(tmp_path / "no_ts.parquet"))
    with pytest.raises(io.DatasetFormatError, match="event_timestamp"):
        feat.publish_partition(
            str(tmp_path / "no_ts.parquet"), target, DAYS[1], entity_columns=["customer_id"]
        )

    day2 = sim.activity(DAYS[1])
    day2["tenure_months"] = day2["tenure_months"].astype("float64")
    io.write_table(day2, str(tmp_path / "d2.parquet"))
    with pytest.raises(io.DatasetFormatError, match=r"tenure_months: double \(was int64\)"):
        feat.publish_partition(
            str(tmp_path / "d2.parquet"), target, DAYS[1], entity_columns=["customer_id"]
        )
    assert feat.published_days(target) == [DAYS[0]]  # nothing half-published
    with pytest.raises(io.DatasetNotFound):
        feat.publish_partition(
            str(tmp_path / "missing"), target, DAYS[1], entity_columns=["customer_id"]
        )


# ------------------------------------------------------------------------------------------
# Apply and the feature repo
# ------------------------------------------------------------------------------------------
def test_feature_repo_definitions_match_the_simulator(store: Any, mlops_home: Path) -> None:
    from feast.types import Float64, Int64, String

    view = store.get_feature_view(VIEW)
    assert [f.name for f in view.features] == FEATURE_COLUMNS
    dtypes = {f.name: f.dtype for f in view.features}
    frame = ChurnSimulator(seed=1, n_customers=5).activity(DAYS[0])
    for name in NUMERIC_FEATURES:
        expected = Int64 if pd.api.types.is_integer_dtype(frame[name]) else Float64
        assert dtypes[name] == expected, name
    for name in CATEGORICAL_FEATURES:
        assert dtypes[name] == String, name
    assert [c.name for c in view.entity_columns] == [ENTITY_COLUMN]
    assert view.ttl == timedelta(days=30) and view.online
    # the source path was computed from this test's data root when the repo was applied
    assert view.batch_source.path == str(mlops_home / "data" / "features" / VIEW)
    service = store.get_feature_service("churn_model")
    assert feat.resolve_feature_refs(store, feature_service="churn_model")[0] == REFS
    assert service.name == "churn_model"
    assert store.project == "churn"
    assert (mlops_home / "feast" / "registry.db").is_file()


def test_apply_is_idempotent_and_lists_what_it_applied(store: Any) -> None:
    again = feat.apply_repo(store)
    assert check_result(again) == []
    assert again["status"] == "applied" and again["passed"] is True and again["rows"] is None
    assert again["changed"] is False and again["changes"] == []
    assert again["project"] == "churn"
    assert again["entities"] == ["customer"]
    assert again["feature_views"] == [VIEW]
    assert again["feature_services"] == ["churn_model"]


def test_apply_reports_changes_on_a_fresh_registry(mlops_home: Path) -> None:
    result = feat.apply_repo(make_feature_store(None))
    assert result["changed"] is True
    assert "create feature view customer_activity" in result["changes"]
    assert "create feature service churn_model" in result["changes"]


def test_apply_rejects_missing_empty_and_broken_repos(tmp_path: Path, mlops_home: Path) -> None:
    with pytest.raises(FeastRepoError, match="does not exist"):
        feat.apply_repo(tmp_path / "no-such-repo")
    repo = tmp_path / "repo"
    repo.mkdir()
    repo.joinpath("feature_store.yaml").write_text(
        "project: empty\nprovider: local\nregistry: ${MLOPS_HOME}/empty/registry.db\n"
        "online_store:\n  type: sqlite\n  path: ${MLOPS_HOME}/empty/online.db\n"
        "entity_key_serialization_version: 3\n"
    )
    with pytest.raises(FeastRepoError, match="defines no feature views"):
        feat.apply_repo(repo)
    repo.joinpath("broken_defs.py").write_text("import no_such_module_here\n")
    with pytest.raises(FeastRepoError, match="failed to import: ModuleNotFoundError"):
        feat.apply_repo(repo)
    assert Path.cwd() != repo  # the working directory is restored


# ------------------------------------------------------------------------------------------
# Materialization
# ------------------------------------------------------------------------------------------
def test_materialize_writes_latest_row_per_customer_and_reruns_converge(
    store: Any, sim: ChurnSimulator, published: Path
) -> None:
    start, end = utc(DAYS[0]), utc(DAYS[2])
    result = feat.materialize(store, start, end, chunk=timedelta(hours=12))
    assert check_result(result) == []
    assert result["status"] == "materialized" and result["reasons"] == []
    assert result["views"] == [VIEW]
    assert result["window"] == {"start": start.isoformat(), "end": end.isoformat()}
    assert result["chunks"] == 4
    assert result["unbounded_ttl_views"] == [] and result["replayed"] is None

    rows = source_rows(published)
    in_window = rows[(rows[TIMESTAMP_COLUMN] >= start) & (rows[TIMESTAMP_COLUMN] <= end)]
    assert result["source_rows"] == len(in_window) == result["rows"]
    half_days = in_window[TIMESTAMP_COLUMN].dt.floor("12h")
    assert result["rows_written"] == in_window.groupby(half_days)[ENTITY_COLUMN].nunique().sum()

    expected = latest_per_customer(rows, start, end)
    values = online(store, all_ids(sim))
    for cid, got in values.items():
        if cid in expected.index:
            assert got == {c: expected.loc[cid, c] for c in FEATURE_COLUMNS}, cid
        else:
            assert all(v is None for v in got.values()), cid  # never active in the window
    assert len(expected) > 20

    feat.materialize(store, start, end, chunk=timedelta(days=1))
    assert online(store, all_ids(sim)) == values
    assert feat.freshness(store, VIEW) == end


def test_backfill_of_an_old_window_restores_newer_values(
    store: Any, sim: ChurnSimulator, published: Path
) -> None:
    feat.materialize(store, utc(DAYS[0]), utc(DAYS[3]))
    in_order = online(store, all_ids(sim))
    result = feat.materialize(store, utc(DAYS[0]), utc(DAYS[1]))
    assert check_result(result) == [] and "was replayed" in result["reasons"][0]
    assert result["replayed"] == {
        "start": utc(DAYS[1]).isoformat(),
        "end": utc(DAYS[3]).isoformat(),
        "chunks": 2,
    }
    assert online(store, all_ids(sim)) == in_order
    # without the replay the SQLite store keeps the backfilled (older) values
    feat.materialize(store, utc(DAYS[0]), utc(DAYS[1]), restore_newer=False)
    stale = online(store, all_ids(sim))
    day1 = latest_per_customer(source_rows(published), utc(DAYS[0]), utc(DAYS[1]))
    changed = [c for c in day1.index if stale[c] != in_order[c]]
    assert changed, "expected customers active on day 1 and later to regress"


def test_materialize_refuses_bad_requests(store: Any, mlops_home: Path) -> None:
    now = datetime.now(timezone.utc)
    with pytest.raises(feat.FeatureRequestError, match="is in the future"):
        feat.materialize(store, now - timedelta(days=1), now + timedelta(hours=1))
    with pytest.raises(
        feat.FeatureRequestError, match=r"\['nope'\] do not exist.*customer_activity"
    ):
        feat.materialize(store, utc(DAYS[0]), utc(DAYS[1]), views=["nope"])
    with pytest.raises(feat.FeatureRequestError, match="empty window"):
        feat.materialize(store, utc(DAYS[1]), utc(DAYS[1]))
    with pytest.raises(feat.FeatureRequestError, match="positive duration"):
        feat.materialize(store, utc(DAYS[0]), utc(DAYS[1]), chunk=0)
    assert feat.freshness(store, VIEW) is None  # nothing was materialized
    shutil.rmtree(mlops_home / "data" / "features" / VIEW)
    with pytest.raises(feat.FeatureRequestError, match="Publish feature partitions"):
        feat.materialize(store, utc(DAYS[0]), utc(DAYS[1]))


def test_the_window_of_a_task_defaults_to_its_data_interval() -> None:
    day, next_day = utc(DAYS[1]), utc(DAYS[2])
    window = feat.materialization_window
    assert window(None, "", day, next_day) == (day, next_day)
    assert window("2026-01-01", None, day, day) == (utc(DAYS[0]), day)
    # a manual run, or a cron schedule of Airflow 3: a point interval, an empty default window
    with pytest.raises(feat.FeatureRequestError, match="empty window") as raised:
        window(None, None, day, day)
    message = str(raised.value)
    assert f"data interval [{day.isoformat()}, {day.isoformat()}]" in message
    assert "start=" in message and "end=" in message and "CronDataIntervalTimetable" in message
    with pytest.raises(feat.FeatureRequestError, match=r"\(the data interval end\)"):
        window(next_day, None, day, day)
    with pytest.raises(feat.FeatureRequestError, match="no data interval"):
        window(None, None, day, None)
    with pytest.raises(feat.FeatureRequestError, match="start 'yesterday' is not a date"):
        window("yesterday", None, day, next_day)
    # given bounds are passed on as they are (materialize refuses an empty window)
    assert window(next_day, day, day, day) == (next_day, day)


def test_materialize_on_an_unapplied_project_is_clear(mlops_home: Path) -> None:
    store = make_feature_store(None)
    with pytest.raises(feat.FeatureRequestError, match="apply the feature repo first"):
        feat.materialize(store, utc(DAYS[0]), utc(DAYS[1]))
    with pytest.raises(feat.FeatureRequestError, match="does not exist"):
        feat.freshness(store, VIEW)


def test_views_with_ttl_zero_are_reported(store: Any, sim: ChurnSimulator) -> None:
    from feast import FeatureView, Field
    from feast.types import Int64

    base = store.get_feature_view(VIEW)
    forever = FeatureView(
        name="tenure_forever",
        entities=[store.get_entity("customer")],
        ttl=timedelta(0),
        schema=[Field(name="tenure_months", dtype=Int64)],
        source=base.batch_source,
        online=True,
    )
    store.apply([forever])
    result = feat.materialize(store, utc(DAYS[0]), utc(DAYS[1]), views=["tenure_forever"])
    assert result["unbounded_ttl_views"] == ["tenure_forever"]
    assert result["reasons"] == [
        "feature view(s) ['tenure_forever'] have ttl=0: their values never expire"
    ]
    # Feast 0.67 still materializes them: ttl=0 means "never expires", not "empty"
    assert result["rows_written"] > 0
    got = store.get_online_features(
        features=["tenure_forever:tenure_months"],
        entity_rows=[{ENTITY_COLUMN: i} for i in all_ids(sim)],
    ).to_dict()
    assert sum(v is not None for v in got["tenure_months"]) == result["rows_written"]


# ------------------------------------------------------------------------------------------
# Training sets
# ------------------------------------------------------------------------------------------
def test_training_set_is_point_in_time_correct(
    store: Any, sim: ChurnSimulator, published: Path
) -> None:
    rows = source_rows(published)
    day1 = rows[rows[TIMESTAMP_COLUMN] < utc(DAYS[1])].set_index(ENTITY_COLUMN)
    day2 = rows[(rows[TIMESTAMP_COLUMN] >= utc(DAYS[1])) & (rows[TIMESTAMP_COLUMN] < utc(DAYS[2]))]
    both = sorted(set(day1.index) & set(day2[ENTITY_COLUMN]))
    assert len(both) >= 5
    # Labels stamped on day 2, before the customer's day-2 activity: only day-1 values count.
    day2_first = day2.groupby(ENTITY_COLUMN)[TIMESTAMP_COLUMN].min()
    label_times = [day2_first[c] - timedelta(milliseconds=1) for c in both]
    never_before = sorted(set(day2[ENTITY_COLUMN]) - set(day1.index))[:3]
    assert never_before
    never_times = [day2_first[c] - timedelta(seconds=1) for c in never_before]
    entity = pd.DataFrame(
        {
            ENTITY_COLUMN: [*both, *never_before, both[0]],
            TIMESTAMP_COLUMN: [*label_times, *never_times, label_times[0]],
            "churned": [i % 2 for i in range(len(both) + len(never_before) + 1)],
            "label_available_at": utc(DAYS[3]),
        }
    )
    table = feat.build_training_set(
        store, entity, feature_service="churn_model", label_columns=["churned"]
    )
    # one row per entity row (the duplicate key/timestamp pair included), input order kept
    assert table.num_rows == len(entity)
    assert table.column_names == [
        ENTITY_COLUMN,
        TIMESTAMP_COLUMN,
        "churned",
        "label_available_at",
        *FEATURE_COLUMNS,
    ]
    assert table.column(ENTITY_COLUMN).to_pylist() == entity[ENTITY_COLUMN].tolist()
    assert table.column("churned").to_pylist() == entity["churned"].tolist()
    out = table.to_pandas()
    for i, cid in enumerate(both):
        expected = day1.loc[[cid]].sort_values(TIMESTAMP_COLUMN).iloc[-1]
        for column in FEATURE_COLUMNS:
            assert out.loc[i, column] == expected[column], (cid, column)
    # the check above can fail: the day-2 values differ from day 1 for these customers
    later = day2.set_index(ENTITY_COLUMN)
    assert any(later.loc[c, "total_charges"] != day1.loc[c, "total_charges"] for c in both)
    # customers without any earlier activity keep their row, with null features
    for i in range(len(both), len(both) + len(never_before)):
        assert out.loc[i, FEATURE_COLUMNS].isna().all()
    assert out.iloc[-1][FEATURE_COLUMNS].equals(out.iloc[0][FEATURE_COLUMNS])


def test_training_set_respects_the_ttl(store: Any, published: Path) -> None:
    rows = source_rows(published)
    cid = int(rows[ENTITY_COLUMN].iloc[0])
    entity = pd.DataFrame(
        {ENTITY_COLUMN: [cid, cid], TIMESTAMP_COLUMN: [utc(DAYS[3], 23), utc(date(2026, 3, 1))]}
    )
    table = feat.build_training_set(store, entity, features=[f"{VIEW}:plan"])
    plans = table.column("plan").to_pylist()
    assert plans[0] is not None and plans[1] is None  # 2026-03-01 is beyond the 30-day ttl


def test_create_training_dataset_writes_parquet_with_digest(
    store: Any, sim: ChurnSimulator, tmp_path: Path
) -> None:
    labels = pd.concat([sim.labels(DAYS[0]), sim.labels(DAYS[1])], ignore_index=True)
    io.write_table(labels, str(tmp_path / "labels.parquet"))
    refs = [f"{VIEW}:tenure_months", f"{VIEW}:plan"]
    out = str(tmp_path / "train" / "training.parquet")
    result = feat.create_training_dataset(
        store, str(tmp_path / "labels.parquet"), out, features=refs, label_columns=["churned"]
    )
    written = io.read_table(out)
    assert check_result(result) == [] and result["status"] == "written"
    assert result["reasons"] == []
    assert result["uri"] == out and result["row_count"] == len(labels) == written.num_rows
    assert result["rows"] == written.num_rows
    assert result["entity_rows"] == len(labels)
    # every label has the activity row of its own timestamp: nothing is missing
    assert result["rows_without_features"] == 0
    assert pc.sum(pc.is_null(written.column("plan"))).as_py() == 0
    assert result["feature_refs"] == refs
    assert result["digest"] == io.table_digest(written)
    assert written.schema.metadata[b"mlops.digest"] == result["digest"].encode()  # recorded
    assert (
        written.schema.metadata[b"feature_refs"]
        == b'["customer_activity:tenure_months", "customer_activity:plan"]'
    )
    # the feature views as applied in the registry, in the result and the file's metadata
    (view,) = result["feature_views"]
    applied = store.get_feature_view(VIEW)
    assert view["name"] == VIEW and view["features"] == [f.name for f in applied.features]
    assert view["ttl_seconds"] == int(applied.ttl.total_seconds())
    assert view["source"] == applied.batch_source.path and view["entities"] == ["customer"]
    assert view["definition"]["name"] == VIEW and len(view["definition_digest"]) == 16
    assert json.loads(written.schema.metadata[b"feature_views"]) == result["feature_views"]
    again = feat.create_training_dataset(
        store, str(tmp_path / "labels.parquet"), out, features=refs, label_columns=["churned"]
    )
    assert again["digest"] == result["digest"]  # deterministic, and replaced in place
    assert again["feature_views"][0]["definition_digest"] == view["definition_digest"]
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["training.parquet"]


def test_training_set_errors_name_the_problem(store: Any, tmp_path: Path) -> None:
    entity = pd.DataFrame({ENTITY_COLUMN: [100_001], TIMESTAMP_COLUMN: [utc(DAYS[1])]})
    with pytest.raises(feat.FeatureRequestError, match=r"missing column\(s\) \['customer_id'\]"):
        feat.build_training_set(store, entity.drop(columns=[ENTITY_COLUMN]), features=REFS[:1])
    with pytest.raises(
        feat.FeatureRequestError, match=r"missing column\(s\) \['event_timestamp'\]"
    ):
        feat.build_training_set(store, entity.drop(columns=[TIMESTAMP_COLUMN]), features=REFS[:1])
    with pytest.raises(feat.FeatureRequestError, match=r"missing column\(s\) \['churned'\]"):
        feat.build_training_set(store, entity, features=REFS[:1], label_columns=["churned"])
    with pytest.raises(
        feat.FeatureRequestError,
        match=r"\['customer_activity:tenure'\] do not exist.*known: customer_activity:tenure_months",
    ):
        feat.build_training_set(store, entity, features=[f"{VIEW}:tenure"])
    with pytest.raises(feat.FeatureRequestError, match="not of the form"):
        feat.check_feature_refs(store, ["tenure_months"])
    with pytest.raises(feat.FeatureRequestError, match=r"feature service 'nope'.*churn_model"):
        feat.build_training_set(store, entity, feature_service="nope")
    with pytest.raises(feat.FeatureRequestError, match="not both"):
        feat.build_training_set(store, entity, features=REFS[:1], feature_service="churn_model")
    with pytest.raises(feat.FeatureRequestError, match="neither"):
        feat.build_training_set(store, entity)
    with pytest.raises(feat.FeatureRequestError, match="has no rows"):
        feat.build_training_set(store, entity.iloc[:0], features=REFS[:1])
    with pytest.raises(feat.FeatureRequestError, match=r"\['plan'\] have the names of requested"):
        feat.build_training_set(store, entity.assign(plan="x"), features=[f"{VIEW}:plan"])
    empty = pa.table(
        {
            ENTITY_COLUMN: pa.array([], pa.int64()),
            TIMESTAMP_COLUMN: pa.array([], pa.timestamp("us")),
        }
    )
    io.write_table(empty, str(tmp_path / "empty.parquet"))
    with pytest.raises(feat.FeatureRequestError, match="has no rows"):
        feat.create_training_dataset(
            store, str(tmp_path / "empty.parquet"), str(tmp_path / "o.parquet"), features=REFS
        )
    assert not (tmp_path / "o.parquet").exists()
