"""Content digests, retained versions and retention of the lake's datasets (local paths)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from mlops_provider.core import io, versions


@pytest.fixture(autouse=True)
def _default_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("MLOPS_VERSIONS_MAX_AGE_DAYS", "MLOPS_VERSIONS_KEEP"):
        monkeypatch.delenv(env, raising=False)
        monkeypatch.delenv(f"AIRFLOW__MLOPS__{env[6:]}", raising=False)


def _table(n: int, *, offset: int = 0) -> pa.Table:
    ids = list(range(offset, offset + n))
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "score": pa.array([None if i % 7 == 0 else i / 3 for i in ids], pa.float64()),
            "segment": pa.array([None if i % 5 == 0 else f"s{i % 3}" for i in ids]),
            "active": pa.array([i % 2 == 0 for i in ids]),
        }
    )


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------------------------------
# digests
# ------------------------------------------------------------------------------------------
def test_streaming_digest_equals_one_shot_digest_however_the_rows_are_split() -> None:
    table = _table(150_000)
    one_shot = io.table_digest(table)
    for sizes in (
        [150_000],
        [1, 65_535, 65_536, 18_928],
        [40_000] * 3 + [30_000],
        [99_999, 50_001],
    ):
        running = versions.TableDigest(table.schema)
        start = 0
        for size in sizes:
            running.update(table.slice(start, size).to_batches()[0])
            start += size
        assert running.hexdigest() == one_shot, sizes
    rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=1_000))
    assert io.table_digest(rechunked) == one_shot
    assert io.table_digest(table.replace_schema_metadata({"x": "y"})) == one_shot


def test_digest_sees_values_nulls_and_types() -> None:
    table = _table(1_000)
    base = io.table_digest(table)
    changed = table.set_column(1, "score", pa.array([0.5] * 1_000))
    assert io.table_digest(changed) != base
    one_null_more = table.set_column(
        0, "customer_id", pa.array([None, *range(1, 1_000)], pa.int64())
    )
    assert io.table_digest(one_null_more) != base
    assert (
        io.table_digest(table.cast(table.schema.set(0, pa.field("customer_id", pa.int32()))))
        != base
    )
    # the bytes under a null do not matter, a dictionary is its values
    under_null = pa.Array.from_buffers(
        pa.float64(), 2, [pa.py_buffer(bytes([0b10])), pa.array([123.0, 1.0]).buffers()[1]]
    )
    zeroed = pa.array([None, 1.0])
    assert io.table_digest(pa.table({"x": under_null})) == io.table_digest(pa.table({"x": zeroed}))
    words = pa.array(["a", "b", "a", None])
    assert io.table_digest(pa.table({"w": words.dictionary_encode()})) != io.table_digest(
        pa.table({"w": words})
    )  # the type is part of the schema ...
    reordered = pa.DictionaryArray.from_arrays(
        pa.array([1, 0, 1, None], pa.int32()), pa.array(["b", "a"])
    )
    assert io.table_digest(pa.table({"w": words.dictionary_encode()})) == io.table_digest(
        pa.table({"w": reordered})
    )  # ... but not the order of the dictionary


def test_partition_digest_is_recorded_and_equals_the_digest_of_the_data_read_back(
    tmp_path: Path,
) -> None:
    table = _table(70_000)
    part = str(tmp_path / "predictions" / "dt=2026-01-05")
    with io.PartitionWriter(part, rows_per_file=30_000) as writer:
        for batch in table.to_batches(max_chunksize=9_000):
            writer.write(batch)
    marker = json.loads((Path(part) / "_SUCCESS").read_text())
    assert len(writer.files) == 2  # 36,000 + 34,000 rows
    assert marker["digest"] == writer.digest == io.table_digest(table)
    assert marker["committed_at"]
    # computed from the files (as for data written by others) it is the same digest
    (Path(part) / "_SUCCESS").unlink()
    assert io.digest_of(part) == writer.digest
    assert io.table_digest(io.read_table(part)) == writer.digest


def test_every_write_reports_its_digest(tmp_path: Path) -> None:
    table = _table(100)
    single = io.write_table(table, str(tmp_path / "training" / "train.parquet"))
    assert single["digest"] == io.table_digest(table) == io.digest_of(single["uri"])
    meta = pq.read_schema(single["uri"]).metadata
    assert meta[versions.DIGEST_KEY.encode()].decode() == single["digest"]
    nameless = io.write_table(table, str(tmp_path / "export" / "table"))  # parquet, no suffix
    assert nameless["digest"] == single["digest"] == io.digest_of(nameless["uri"])
    csv = io.write_table(table, str(tmp_path / "export" / "t.csv"))
    assert csv["digest"] == io.digest_of(csv["uri"])
    text = io.write_text("<html>é</html>", str(tmp_path / "reports" / "r.html"))
    assert text["digest"] == versions.bytes_digest("<html>é</html>".encode())
    assert text["digest"] == io.digest_of(text["uri"])
    part = io.write_partition(table, str(tmp_path / "raw" / "dt=2026-01-01"))
    assert part["digest"] == single["digest"]
    copied = io.copy(part["uri"], str(tmp_path / "quarantine" / "dt=2026-01-01"))
    assert copied["digest"] == part["digest"] == io.digest_of(copied["uri"])
    with pytest.raises(io.DatasetNotFound, match="nope"):
        io.digest_of(str(tmp_path / "nope"))


def test_unreadable_data_is_copied_with_the_digest_of_its_bytes(tmp_path: Path) -> None:
    bad = tmp_path / "raw" / "dt=2026-01-02"
    bad.mkdir(parents=True)
    (bad / "part-0.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    copied = io.copy(str(bad), str(tmp_path / "quarantine" / "dt=2026-01-02"))
    assert copied["digest"] == io.digest_of(str(bad))
    (bad / "part-0.parquet").write_bytes(b"PAR1 nor is this PAR1")
    assert io.digest_of(str(bad)) != copied["digest"]


# ------------------------------------------------------------------------------------------
# versions
# ------------------------------------------------------------------------------------------
def test_same_content_rerun_keeps_the_digest_and_retains_nothing(tmp_path: Path) -> None:
    part = str(tmp_path / "lake" / "predictions" / "dt=2026-01-05")
    first = io.write_partition(_table(500), part)
    again = io.write_partition(pa.Table.from_batches(_table(500).to_batches(100)), part)
    assert again["digest"] == first["digest"]
    assert not (tmp_path / "lake" / "_versions").exists()
    assert [v["digest"] for v in io.list_versions(part)] == [first["digest"]]


def test_changed_partition_is_a_new_version_and_the_old_stays_readable(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    part = str(lake / "predictions" / "dt=2026-01-05")
    old = io.write_partition(_table(500), part)
    new = io.write_partition(_table(300, offset=10), part)
    assert new["digest"] != old["digest"]
    assert io.read_table(part).num_rows == 300
    listed = io.list_versions(part)
    assert [(v["digest"], v["current"]) for v in listed] == [
        (new["digest"], True),
        (old["digest"], False),
    ]
    assert listed[1]["rows"] == 500 and listed[1]["retained_at"] and listed[1]["committed_at"]
    back = io.read_table(part, version=old["digest"])
    assert back.equals(_table(500))
    assert io.read_table(part, version=new["digest"]).num_rows == 300
    where = io.resolve_version(part, old["digest"])
    assert where == str(lake / "_versions" / "predictions" / "dt=2026-01-05" / f"@{old['digest']}")
    assert io.resolve_version(part, new["digest"]) == part
    with pytest.raises(io.DatasetNotFound) as caught:
        io.read_table(part, version="0123456789abcdef")
    message = str(caught.value)
    assert part in message and "0123456789abcdef" in message
    assert old["digest"] in message and f"{new['digest']} (current)" in message


def test_versions_of_a_single_file_and_of_a_report(tmp_path: Path) -> None:
    train = str(tmp_path / "lake" / "training" / "train.parquet")
    first = io.write_table(_table(10), train)
    io.write_table(_table(12), train)
    assert io.read_table(train, version=first["digest"]).num_rows == 10
    where = io.resolve_version(train, first["digest"])
    assert where.startswith(str(tmp_path / "lake" / "_versions" / "training" / "train.parquet"))
    report = str(tmp_path / "lake" / "reports" / "drift.html")
    v1 = io.write_text("<p>one</p>", report)
    io.write_text("<p>two</p>", report)
    assert io.read_text(report) == "<p>two</p>"
    assert io.read_text(report, version=v1["digest"]) == "<p>one</p>"
    # the directories the files are in hold nothing new
    assert sorted(os.listdir(tmp_path / "lake" / "training")) == ["train.parquet"]
    assert sorted(os.listdir(tmp_path / "lake" / "reports")) == ["drift.html"]


def test_dataset_readers_never_see_versions(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    features = lake / "features" / "customer_activity"
    for day, rows in (("2026-01-01", 50), ("2026-01-02", 60)):
        io.write_partition(_table(rows), str(features / f"dt={day}"))
    io.write_partition(_table(70, offset=1_000), str(features / "dt=2026-01-02"))
    assert (lake / "features" / "_versions" / "customer_activity" / "dt=2026-01-02").is_dir()
    # nothing but the partitions inside the dataset directory (Feast/dask read it recursively)
    assert sorted(os.listdir(features)) == ["dt=2026-01-01", "dt=2026-01-02"]
    assert io.read_table(str(features)).num_rows == 120
    assert ds.dataset(str(features), partitioning="hive").to_table().num_rows == 120
    assert ds.dataset(str(lake / "features"), partitioning="hive").count_rows() == 120


def test_a_version_already_retained_is_not_copied_again(tmp_path: Path) -> None:
    part = str(tmp_path / "lake" / "scores" / "dt=2026-01-05")
    a = io.write_partition(_table(5), part)["digest"]
    b = io.write_partition(_table(6), part)["digest"]
    io.write_partition(_table(5), part)
    io.write_partition(_table(6), part)
    listed = io.list_versions(part)
    assert [v["digest"] for v in listed] == [b, a, b]
    assert io.read_table(part, version=a).num_rows == 5


def test_a_crash_after_retaining_leaves_the_old_content_visible_and_retained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = str(tmp_path / "lake" / "predictions" / "dt=2026-01-05")
    old = io.write_partition(_table(40), part)

    def crash(staged: io.Location, target: io.Location) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(io, "_replace", crash)
    with pytest.raises(io.DatasetWriteError, match="disk gone"):
        io.write_partition(_table(41), part)
    assert io.read_table(part).num_rows == 40
    assert io.read_table(part, version=old["digest"]).num_rows == 40
    leftovers = [p for p in _tree(tmp_path / "lake") if ".staging-" in p]
    assert leftovers == []


def test_a_crash_while_retaining_leaves_the_old_content_and_no_half_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = str(tmp_path / "lake" / "predictions" / "dt=2026-01-05")
    io.write_partition(_table(40), part)
    real_link = os.link
    calls = []

    def failing_link(a: str, b: str) -> None:
        calls.append(a)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed in the middle of the retention
        real_link(a, b)

    monkeypatch.setattr(os, "link", failing_link)
    with pytest.raises(KeyboardInterrupt):
        io.write_partition(_table(41), part)
    monkeypatch.setattr(os, "link", real_link)
    assert io.read_table(part).num_rows == 40
    assert [v["current"] for v in io.list_versions(part)] == [True]
    # the next write retains it properly
    io.write_partition(_table(41), part)
    assert [v["rows"] for v in io.list_versions(part)] == [41, 40]


def test_the_location_is_never_empty_while_a_directory_is_replaced(tmp_path: Path) -> None:
    part = str(tmp_path / "lake" / "predictions" / "dt=2026-01-05")
    io.write_partition(_table(40), part)
    seen = []
    real = io._exchange

    def watching(a: str, b: str) -> bool:
        done = real(a, b)
        seen.append(os.path.isdir(b) and io.read_table(b).num_rows)
        return done

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(io, "_exchange", watching)
        io.write_partition(_table(41), part)
    assert seen == [41]  # swapped in one step: the new content, never nothing


# ------------------------------------------------------------------------------------------
# retention
# ------------------------------------------------------------------------------------------
def _age(part: str, digest: str, days: float) -> None:
    where = Path(io.resolve_version(part, digest))
    where = where if where.is_dir() else where.parent  # a file's version: @<digest>/<name>
    manifest = json.loads((where / versions.MANIFEST).read_text())
    manifest["retained_at"] = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()
    (where / versions.MANIFEST).write_text(json.dumps(manifest))


def test_prune_removes_only_versions_beyond_the_policy(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    part = str(lake / "predictions" / "dt=2026-01-05")
    digests = [io.write_partition(_table(10 + i), part)["digest"] for i in range(4)]
    _age(part, digests[0], 45)
    _age(part, digests[1], 10)
    other = str(lake / "reports" / "r.json")
    first_report = io.write_text("{}", other)["digest"]
    io.write_text('{"a": 1}', other)
    _age(other, first_report, 40)

    removed = io.prune_versions(str(lake))  # default policy: 30 days
    assert sorted(r["digest"] for r in removed) == sorted([digests[0], first_report])
    assert all("30 day" in r["reason"] for r in removed)
    assert [v["digest"] for v in io.list_versions(part)] == [digests[3], digests[2], digests[1]]
    # still within retention: readable
    assert io.read_table(part, version=digests[1]).num_rows == 11
    with pytest.raises(io.DatasetNotFound):
        io.read_table(part, version=digests[0])

    removed = io.prune_versions(part, keep=1, max_age_days=None, use_settings=False)
    assert [r["digest"] for r in removed] == [digests[1]]
    assert [v["digest"] for v in io.list_versions(part)] == [digests[3], digests[2]]
    assert io.read_table(part).num_rows == 13  # the current content is never pruned
    assert io.prune_versions(part, keep=0, use_settings=False)[0]["digest"] == digests[2]
    assert io.read_table(part).num_rows == 13


def test_retention_settings_apply_when_a_version_is_retained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = str(tmp_path / "lake" / "predictions" / "dt=2026-01-05")
    monkeypatch.setenv("MLOPS_VERSIONS_KEEP", "2")
    digests = [io.write_partition(_table(10 + i), part)["digest"] for i in range(5)]
    assert [v["digest"] for v in io.list_versions(part)] == digests[::-1][:3]
    monkeypatch.setenv("MLOPS_VERSIONS_KEEP", "")
    monkeypatch.setenv("MLOPS_VERSIONS_MAX_AGE_DAYS", "0")  # versioning off
    io.write_partition(_table(99), part)
    assert len(io.list_versions(part)) == 3
    monkeypatch.setenv("MLOPS_VERSIONS_MAX_AGE_DAYS", "soon")
    with pytest.raises(io.InputError, match=r"versions_max_age_days.*'soon'"):
        io.write_partition(_table(98), part)
    assert io.read_table(part).num_rows == 99  # the failed write changed nothing


def test_default_policy_keeps_thirty_days() -> None:
    policy = versions.RetentionPolicy.from_settings()
    assert policy == versions.RetentionPolicy(max_age_days=30.0, keep=None)
    now = datetime(2026, 2, 1, tzinfo=timezone.utc)
    manifests = [
        {"digest": "a", "retained_at": (now - timedelta(days=29)).isoformat()},
        {"digest": "b", "retained_at": (now - timedelta(days=31)).isoformat()},
    ]
    assert [m["digest"] for m, _ in policy.expired(manifests, now)] == ["b"]


def test_relative_paths_resolve_to_readable_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = io.write_table(_table(3), "train.parquet")
    io.write_table(_table(4), "train.parquet")
    where = io.resolve_version("train.parquet", first["digest"])
    assert Path(where).is_absolute() and io.read_table(where).num_rows == 3
    assert io.read_table("train.parquet", version=first["digest"]).num_rows == 3
