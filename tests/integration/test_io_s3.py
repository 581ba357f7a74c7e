"""Object-storage code path: s3:// URIs through an Airflow aws connection (moto S3 server)."""

from __future__ import annotations

import json
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
