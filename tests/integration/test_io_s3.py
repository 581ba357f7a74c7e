"""Object-storage code path: s3:// URIs through an Airflow aws connection (moto S3 server)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pyarrow as pa
import pytest

from mlops_provider.core import io
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_conn(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import boto3

    extra = {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_TEST",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}),
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="lake")
    return "aws_test"


def test_s3_partition_round_trip_through_connection(aws_conn: str) -> None:
    table = pa.table({"customer_id": [1, 2, 3], "p": [0.1, 0.5, 0.9]})
    part = io.partition_uri("s3://lake/predictions", "2026-01-02")
    io.write_partition(table, part, conn_id=aws_conn)
    io.write_partition(table.slice(0, 2), part, conn_id=aws_conn)  # rerun replaces
    back = io.read_table("s3://lake/predictions", conn_id=aws_conn)
    assert back.num_rows == 2
    assert io.exists(f"{part}/_SUCCESS", conn_id=aws_conn)
    io.write_text("<html></html>", "s3://lake/reports/r.html", conn_id=aws_conn)
    assert io.read_text("s3://lake/reports/r.html", conn_id=aws_conn) == "<html></html>"


def test_s3_missing_object_is_named(aws_conn: str) -> None:
    with pytest.raises(io.DatasetNotFound, match=r"s3://lake/nope\.parquet"):
        io.read_table("s3://lake/nope.parquet", conn_id=aws_conn)


def _keys(prefix: str, conn: str) -> list[str]:
    loc = io.resolve(prefix, conn_id=conn)
    return sorted(loc.fs.find(loc.path))


def test_s3_versions_same_content_changed_content_and_retention(
    aws_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_VERSIONS_MAX_AGE_DAYS", raising=False)
    monkeypatch.delenv("MLOPS_VERSIONS_KEEP", raising=False)
    old_table = pa.table({"customer_id": [1, 2, 3], "p": [0.1, None, 0.9]})
    part = "s3://lake/features/customer_activity/dt=2026-01-05"
    first = io.write_partition(old_table, part, conn_id=aws_conn)
    rerun = io.write_partition(
        pa.Table.from_batches(old_table.to_batches(max_chunksize=1)), part, conn_id=aws_conn
    )
    assert rerun["digest"] == first["digest"] == io.digest_of(part, conn_id=aws_conn)
    assert not _keys("s3://lake/features/_versions", aws_conn)

    new = io.write_partition(old_table.slice(0, 2), part, conn_id=aws_conn)
    assert new["digest"] != first["digest"]
    listed = io.list_versions(part, conn_id=aws_conn)
    assert [(v["digest"], v["current"], v["rows"]) for v in listed] == [
        (new["digest"], True, 2),
        (first["digest"], False, 3),
    ]
    old = io.read_table(part, version=first["digest"], conn_id=aws_conn)
    assert old.equals(old_table)
    assert io.resolve_version(part, first["digest"], conn_id=aws_conn) == (
        f"s3://lake/features/_versions/customer_activity/dt=2026-01-05/@{first['digest']}"
    )
    # readers of the dataset (and of its parent) see the current partition only
    assert io.read_table("s3://lake/features/customer_activity", conn_id=aws_conn).num_rows == 2
    assert io.read_table("s3://lake/features", conn_id=aws_conn).num_rows == 2
    inside = _keys("s3://lake/features/customer_activity", aws_conn)
    assert all("/dt=2026-01-05/" in k and "_versions" not in k for k in inside)

    report = "s3://lake/reports/r.html"
    v1 = io.write_text("<p>1</p>", report, conn_id=aws_conn)
    io.write_text("<p>2</p>", report, conn_id=aws_conn)
    assert io.read_text(report, version=v1["digest"], conn_id=aws_conn) == "<p>1</p>"

    # retention: a version within the policy stays, beyond it goes; the current never does
    assert io.prune_versions("s3://lake", conn_id=aws_conn) == []
    removed = io.prune_versions("s3://lake", keep=0, use_settings=False, conn_id=aws_conn)
    # (the bucket is shared with the test above, whose replaced partition goes too)
    assert {first["digest"], v1["digest"]} <= {r["digest"] for r in removed}
    with pytest.raises(io.DatasetNotFound, match=first["digest"]):
        io.read_table(part, version=first["digest"], conn_id=aws_conn)
    assert io.read_table(part, conn_id=aws_conn).num_rows == 2
    assert io.read_text(report, conn_id=aws_conn) == "<p>2</p>"
    assert not [k for k in _keys("s3://lake/features/_versions", aws_conn) if "@" in k]


def test_s3_probe_writable_leaves_nothing_and_names_each_problem(
    aws_conn: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    io.probe_writable("s3://lake/probed/dt=2026-01-05", conn_id=aws_conn)
    assert _keys("s3://lake/probed", aws_conn) == []
    assert not [k for k in _keys("s3://lake", aws_conn) if ".probe" in k]

    with pytest.raises(io.StorageAccessError) as missing:
        io.probe_writable("s3://no-such-bucket/p", conn_id=aws_conn)
    assert missing.value.kind == "bucket does not exist"
    assert "s3://no-such-bucket/p: bucket does not exist (connection 'aws_test', endpoint " in (
        str(missing.value)
    )

    extra = {"endpoint_url": f"http://127.0.0.1:{free_port()}", "region_name": "us-east-1"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEAD",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}),
    )
    with pytest.raises(io.StorageAccessError) as dead:
        io.probe_writable("s3://lake/p", conn_id="aws_dead")
    assert dead.value.kind == "endpoint unreachable" and dead.value.conn_id == "aws_dead"
    assert "connection 'aws_dead', endpoint http://127.0.0.1:" in str(dead.value)

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(io.StorageAccessError, match=r"^s3://lake/p: no credentials \(no Airflow"):
        io.probe_writable("s3://lake/p")


def test_s3_staging_leftovers_of_crashed_writes_are_removed(aws_conn: str) -> None:
    from mlops_provider.core.processes import host_id, this_owner

    dead_child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_child.wait()
    part = "s3://lake/scores/dt=2026-01-05"
    name = "scores-dt=2026-01-05"
    dead = f"s3://lake/.staging-{name}-{host_id()}p{dead_child.pid}-0123456789ab"
    live = f"s3://lake/.staging-{name}-{this_owner()}-0123456789ab"
    other_host = f"s3://lake/.staging-{name}-otherhostp7-0123456789ab"
    probe = f"s3://lake/.staging-{name}-{host_id()}p{dead_child.pid}-aaaaaaaaaaaa.probe"
    fs = io.resolve("s3://lake", conn_id=aws_conn).fs
    for prefix in (dead, live, other_host):
        fs.pipe(f"{prefix.removeprefix('s3://')}/part-00000.parquet", b"half written")
    fs.pipe(probe.removeprefix("s3://"), b"probe")
    io.write_partition(pa.table({"customer_id": [1, 2]}), part, conn_id=aws_conn)
    hidden = sorted({k.split("/")[1] for k in _keys("s3://lake", aws_conn) if "/." in k})
    assert hidden == sorted(p.split("/")[-1] for p in (live, other_host))
    # another host's staging goes by its objects' LastModified: older than the bound
    removed = io.remove_staging_leftovers(part, conn_id=aws_conn, max_age_hours=0)
    assert [r["owner"] for r in removed] == ["otherhostp7"]
    assert removed[0]["age_seconds"] is not None
    assert io.read_table(part, conn_id=aws_conn).num_rows == 2
