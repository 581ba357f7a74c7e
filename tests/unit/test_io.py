from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_provider.core import io


def _table(n: int = 10, offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(range(offset, offset + n), pa.int64()),
            "x": pa.array([float(i) / 2 for i in range(n)]),
            "plan": pa.array(["basic", "premium"] * (n // 2) + ["basic"] * (n % 2)),
        }
    )


def test_single_file_round_trip_plain_path_and_file_uri(tmp_path: Path) -> None:
    table = _table()
    result = io.write_table(table, str(tmp_path / "a" / "data.parquet"))
    assert result["rows"] == 10
    back = io.read_table((tmp_path / "a" / "data.parquet").as_uri())
    assert back.equals(table)
    assert io.read_pandas(str(tmp_path / "a" / "data.parquet")).shape == (10, 3)


def test_csv_round_trip(tmp_path: Path) -> None:
    table = _table()
    io.write_table(table, str(tmp_path / "d.csv"))
    back = io.read_table(str(tmp_path / "d.csv"))
    assert back.column("customer_id").to_pylist() == list(range(10))
    assert back.column("plan").to_pylist() == table.column("plan").to_pylist()


def test_partitioned_directory_reads_all_partitions_and_ignores_hidden(tmp_path: Path) -> None:
    base = str(tmp_path / "raw")
    io.write_partition(_table(5), io.partition_uri(base, date(2026, 1, 1)))
    io.write_partition(_table(7, offset=100), io.partition_uri(base, date(2026, 1, 2)))
    (tmp_path / "raw" / ".staging-junk").mkdir()
    (tmp_path / "raw" / ".staging-junk" / "x.parquet").write_bytes(b"garbage")
    table = io.read_table(base)
    assert table.num_rows == 12
    assert sorted(set(table.column("dt").to_pylist())) == ["2026-01-01", "2026-01-02"]
    assert io.count_rows(base) == 12


def test_rerun_of_partition_replaces_not_appends(tmp_path: Path) -> None:
    part = io.partition_uri(str(tmp_path / "out"), datetime(2026, 1, 3, tzinfo=timezone.utc))
    io.write_partition(_table(10), part)
    io.write_partition(_table(4), part)
    assert io.read_table(part).num_rows == 4
    assert sorted(os.listdir(part)) == ["_SUCCESS", "part-00000.parquet"]
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".")]


def test_interrupted_partition_write_leaves_no_partial_output(tmp_path: Path) -> None:
    part = str(tmp_path / "out" / "dt=2026-01-01")
    io.write_partition(_table(3), part)

    def batches():
        yield _table(5).to_batches()[0]
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="worker killed"):
        io.write_partition(batches(), part)
    # the previous content is intact and no staging directory is left behind
    assert io.read_table(part).num_rows == 3
    assert os.listdir(tmp_path / "out") == ["dt=2026-01-01"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]

    fresh = str(tmp_path / "out" / "dt=2026-01-02")
    with pytest.raises(RuntimeError):
        io.write_partition(batches(), fresh)
    assert not os.path.exists(fresh)


def test_a_partition_being_written_is_invisible_to_dataset_readers(tmp_path: Path) -> None:
    """Feast's file offline store reads the whole dataset with dask, which lists hidden
    directories too: a partition staged by a concurrent writer must not be inside the dataset
    (it failed with ``KeyError: '.staging-dt'`` when two days were published in parallel)."""
    import dask.dataframe as dd

    root = tmp_path / "features" / "customer_activity"
    io.write_partition(_table(3), str(root / "dt=2026-01-01"))
    with io.PartitionWriter(str(root / "dt=2026-01-02")) as writer:
        writer.write(_table(5))
        assert sorted(os.listdir(root)) == ["dt=2026-01-01"]
        assert len(dd.read_parquet(str(root)).compute()) == 3
    assert sorted(os.listdir(root)) == ["dt=2026-01-01", "dt=2026-01-02"]
    assert len(dd.read_parquet(str(root)).compute()) == 8
    assert os.listdir(tmp_path / "features") == ["customer_activity"]


def test_empty_partition_keeps_schema(tmp_path: Path) -> None:
    part = str(tmp_path / "dt=2026-01-01")
    result = io.write_partition([], part, schema=_table().schema)
    assert result["rows"] == 0
    back = io.read_table(part)
    assert back.num_rows == 0 and back.schema.names == ["customer_id", "x", "plan"]
    with pytest.raises(io.DatasetEmpty, match="has no rows"):
        io.read_table(part, require_rows=True)


def test_streaming_batches_bounded(tmp_path: Path) -> None:
    io.write_table(_table(1000), str(tmp_path / "big.parquet"))
    sizes = [b.num_rows for b in io.iter_batches(str(tmp_path / "big.parquet"), batch_size=128)]
    assert sum(sizes) == 1000 and max(sizes) <= 128


def test_missing_uri_names_it(tmp_path: Path) -> None:
    with pytest.raises(io.DatasetNotFound, match=r"nowhere\.parquet: does not exist"):
        io.read_table(str(tmp_path / "nowhere.parquet"))


def test_empty_directory_and_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(io.DatasetEmpty, match="contains no data files"):
        io.read_table(str(tmp_path / "empty"))
    (tmp_path / "zero.parquet").write_bytes(b"")
    with pytest.raises(io.DatasetFormatError, match=r"zero\.parquet is empty"):
        io.read_table(str(tmp_path / "zero.parquet"))


def test_corrupt_file_among_many_is_named(tmp_path: Path) -> None:
    base = tmp_path / "many"
    for i in range(3):
        io.write_table(_table(4, offset=i * 10), str(base / f"f{i}.parquet"))
    (base / "f1.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(io.DatasetFormatError, match=r"f1\.parquet"):
        io.read_table(str(base))


def test_wrong_format_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "notparquet.parquet"
    path.write_text("customer_id,x\n1,2\n")
    with pytest.raises(io.DatasetFormatError, match="not readable as parquet"):
        io.read_table(str(path))


def test_missing_column_is_named(tmp_path: Path) -> None:
    io.write_table(_table(), str(tmp_path / "d.parquet"))
    with pytest.raises(io.DatasetFormatError, match=r"missing column\(s\) \['nope'\]"):
        io.read_table(str(tmp_path / "d.parquet"), columns=["x", "nope"])


def test_unwritable_location_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(io.DatasetWriteError, match="afile"):
        io.write_table(_table(), str(tmp_path / "afile" / "x.parquet"))


def test_unknown_scheme_is_clear() -> None:
    with pytest.raises(io.DatasetError, match="no filesystem for scheme 'nosuchfs'"):
        io.resolve("nosuchfs://bucket/x.parquet")


def test_copy_keeps_source(tmp_path: Path) -> None:
    io.write_partition(_table(), str(tmp_path / "src" / "dt=1"))
    io.copy(str(tmp_path / "src" / "dt=1"), str(tmp_path / "quarantine" / "dt=1"))
    assert io.read_table(str(tmp_path / "src" / "dt=1")).num_rows == 10
    assert io.read_table(str(tmp_path / "quarantine" / "dt=1")).num_rows == 10


def test_parquet_metadata_and_digest(tmp_path: Path) -> None:
    table = _table()
    io.write_table(table, str(tmp_path / "m.parquet"), metadata={"model_version": "3"})
    meta = pq.read_schema(tmp_path / "m.parquet").metadata
    assert meta[b"model_version"] == b"3"
    assert io.table_digest(table) == io.table_digest(io.read_table(str(tmp_path / "m.parquet")))
    assert io.table_digest(table) != io.table_digest(_table(9))


def test_partition_uri_formats() -> None:
    assert io.partition_uri("s3://b/p/", "2026-01-05T00:00:00+00:00") == "s3://b/p/dt=2026-01-05"
    assert io.partition_uri("/d", date(2026, 2, 1), key="day") == "/d/day=2026-02-01"


def test_pandas_input_accepted(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    io.write_table(df, str(tmp_path / "p.parquet"))
    assert io.read_pandas(str(tmp_path / "p.parquet")).equals(df)


def test_progress_logger_reports_rate(caplog: pytest.LogCaptureFixture) -> None:
    progress = io.ProgressLogger("scoring", total_rows=100, every_seconds=0)
    with caplog.at_level("INFO"):
        progress.update(50)
    assert "50 rows done" in caplog.text and "ETA" in caplog.text
    assert progress.done()["rows"] == 50


def test_probe_writable_local(tmp_path: Path) -> None:
    io.probe_writable(str(tmp_path / "new" / "deeper" / "dt=2026-01-05"))
    assert list(tmp_path.iterdir()) == []  # the probe creates nothing locally
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with pytest.raises(io.DatasetWriteError, match=rf"{blocker} exists and is not a directory"):
        io.probe_writable(str(blocker / "out" / "dt=2026-01-05"))
    if os.name == "posix" and os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(io.DatasetWriteError, match="not writable"):
            io.probe_writable(str(locked / "out"))


def _raised(error: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        raise error from cause
    except BaseException as err:
        return err


def test_storage_error_names_the_kind_the_uri_and_the_connection() -> None:
    class NoCredentialsError(Exception):  # botocore's name: classified by class name
        pass

    err = io.storage_error(NoCredentialsError("Unable to locate credentials"), "s3://b/p")
    assert isinstance(err, io.StorageAccessError) and err.kind == "no credentials"
    assert str(err).startswith("s3://b/p: no credentials (no Airflow connection")
    assert "pass aws_conn_id" in str(err)
    # s3fs turns AccessDenied into PermissionError; a cause names the code
    denied = io.storage_error(PermissionError("Access Denied"), "s3://b/p", conn_id=None)
    assert denied is not None and denied.kind == "access denied"
    chained = _raised(OSError("put failed"), RuntimeError("An error occurred (NoSuchBucket)"))
    assert getattr(io.storage_error(chained, "s3://b/p"), "kind", None) == "bucket does not exist"
    assert io.storage_error(ValueError("bad value"), "s3://b/p") is None
    assert io.storage_error(PermissionError("denied"), "/local/path") is None
