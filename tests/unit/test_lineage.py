"""OpenLineage naming and facets (mlops_provider.lineage), and the provider without OpenLineage.

The events the OpenLineage listener emits for real operators are checked in
tests/integration/test_openlineage.py.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops_provider.lineage import (
    Lineage,
    dataset_naming,
    mlflow_namespace,
    model_naming,
    unpartitioned,
)
from tests.unit.test_base_operator import OPERATOR_MODULES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://lake/features/dt=2026-01-05/", ("s3://lake", "features/dt=2026-01-05")),
        ("s3a://lake/train.parquet", ("s3://lake", "train.parquet")),
        ("s3://lake", ("s3://lake", "/")),
        ("gs://bucket/a/b.parquet", ("gs://bucket", "a/b.parquet")),
        ("/data/raw/dt=2026-01-05/", ("file", "/data/raw/dt=2026-01-05")),
        ("file:///data/train.parquet", ("file", "/data/train.parquet")),
    ],
)
def test_dataset_naming_follows_the_openlineage_spec(uri: str, expected: tuple[str, str]) -> None:
    assert dataset_naming(uri) == expected


def test_a_relative_path_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert dataset_naming("data/x.parquet") == ("file", str(tmp_path / "data" / "x.parquet"))


@pytest.mark.parametrize(
    ("uri", "base"),
    [
        ("/p/predictions/dt=2026-01-12/shard=00001", "/p/predictions"),
        ("/p/raw/dt=2026-01-12/part-0.parquet", "/p/raw"),
        ("s3://b/features/dt=2026-01-12/", "s3://b/features"),
        ("/p/train.parquet", None),
        ("/p/predictions", None),
    ],
)
def test_unpartitioned_strips_hive_partitions(uri: str, base: str | None) -> None:
    assert unpartitioned(uri) == base


@pytest.mark.parametrize(
    ("store", "namespace"),
    [
        ("http://127.0.0.1:5000", "mlflow://127.0.0.1:5000"),
        ("https://user:secret@mlflow.example.com/ml/", "mlflow://mlflow.example.com:443/ml"),
        ("http://mlflow", "mlflow://mlflow:80"),
        ("sqlite:////srv/mlops/mlflow/mlflow.db", "mlflow+sqlite:///srv/mlops/mlflow/mlflow.db"),
        ("postgresql+psycopg2://u:pw@db:5432/mlflow", "mlflow+postgresql://db:5432/mlflow"),
        ("/srv/mlruns", "mlflow+file:///srv/mlruns"),
        ("file:///srv/mlruns", "mlflow+file:///srv/mlruns"),
        (None, "mlflow"),
    ],
)
def test_mlflow_namespace_never_carries_credentials(store: str | None, namespace: str) -> None:
    assert mlflow_namespace(store) == namespace


def test_model_naming() -> None:
    store = "http://mlflow:5000"
    assert model_naming({"name": "churn", "version": "3", "uri": "models:/churn/3"}, store) == (
        "mlflow://mlflow:5000",
        "models/churn/versions/3",
    )
    logged = {"name": None, "version": None, "run_id": "r1", "uri": "models:/m-abc"}
    assert model_naming(logged, store) == ("mlflow://mlflow:5000", "logged-models/m-abc")
    assert model_naming({"uri": "runs:/r1/model"}, store)[1] == "runs/r1/artifacts/model"  # type: ignore[index]
    assert model_naming({"uri": "models:/churn@champion"}, store)[1] == (  # type: ignore[index]
        "models/churn/aliases/champion"
    )
    assert model_naming({"name": None, "version": None, "uri": None}, store) is None


def test_build_carries_schema_statistics_assertions_and_model_facets(tmp_path: Path) -> None:
    import pandas as pd
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.serde import Serde

    part = tmp_path / "scores" / "dt=2026-01-12"
    part.mkdir(parents=True)
    pd.DataFrame({"customer_id": [1, 2], "probability": [0.1, 0.9]}).to_parquet(
        part / "part-0.parquet", index=False
    )
    model = {"name": "churn", "version": "2", "run_id": "r9", "uri": "models:/churn/2"}
    built = (
        Lineage(mlflow_uri="http://mlflow:5000")
        .dataset(
            str(tmp_path / "in.csv"),
            rows=5,
            assertions=[{"assertion": "not_null", "column": "a", "success": False, "actual": 0.5}],
            null_counts={"a": 2},
        )
        .dataset("", rows=1)  # nothing named: nothing added
        .model(model)
        .model(model)  # the same model twice: one input
        .dataset(str(part), output=True, rows=2, files=1)
        .build()
    )
    assert isinstance(built, OperatorLineage)
    inputs = [json.loads(Serde.to_json(d)) for d in built.inputs]
    (output,) = [json.loads(Serde.to_json(d)) for d in built.outputs]
    assert [(d["namespace"], d["name"]) for d in inputs] == [
        ("file", str(tmp_path / "in.csv")),
        ("mlflow://mlflow:5000", "models/churn/versions/2"),
    ]
    csv_in, model_in = inputs
    assert "schema" not in csv_in["facets"]  # the file does not exist: no schema, no failure
    assert csv_in["inputFacets"]["inputStatistics"]["rowCount"] == 5
    (assertion,) = csv_in["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertion == {
        "assertion": "not_null",
        "column": "a",
        "success": False,
        "actual": "0.5",
        "params": {},
    }
    assert csv_in["inputFacets"]["dataQualityMetrics"]["columnMetrics"]["a"]["nullCount"] == 2
    assert model_in["facets"]["datasetType"]["datasetType"] == "MODEL"
    assert model_in["facets"]["version"]["datasetVersion"] == "2"
    tags = {t["key"]: t["value"] for t in model_in["facets"]["tags"]["tags"]}
    assert tags["mlflow.run_id"] == "r9" and tags["mlflow.registered_model"] == "churn"
    assert output["name"] == str(part)
    assert output["outputFacets"]["outputStatistics"] == {
        **output["outputFacets"]["outputStatistics"],
        "rowCount": 2,
        "fileCount": 1,
    }
    fields = output["facets"]["schema"]["fields"]
    assert [(f["name"], f["type"]) for f in fields] == [
        ("customer_id", "int64"),
        ("probability", "double"),
    ]
    assert output["facets"]["symlinks"]["identifiers"][0]["name"] == str(tmp_path / "scores")


def test_every_dataset_operator_implements_the_complete_method() -> None:
    """Every public operator (each reads or writes a dataset or a model) has the method the
    OpenLineage provider's DefaultExtractor calls."""
    missing = []
    for module_name in OPERATOR_MODULES:
        module = importlib.import_module(f"mlops_provider.operators.{module_name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not name.endswith("Operator"):
                continue
            if name.startswith("_"):
                continue
            if not callable(getattr(cls, "get_openlineage_facets_on_complete", None)):
                missing.append(name)
    assert missing == []


_WITHOUT_OPENLINEAGE = """
import importlib, json, sys
from datetime import datetime, timezone

# As if apache-airflow-providers-openlineage were not installed: its distribution is not
# discovered (Airflow reads providers from distribution entry points) and its modules, and
# the OpenLineage client's, cannot be imported.
HIDDEN = "apache-airflow-providers-openlineage"
for meta_name in ("importlib.metadata", "importlib_metadata"):
    try:
        meta = importlib.import_module(meta_name)
    except ImportError:
        continue
    def visible(original=meta.distributions, **kwargs):
        for dist in original(**kwargs):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if name != HIDDEN:
                yield dist
    meta.distributions = visible
for name in ("airflow.providers.openlineage", "openlineage"):
    sys.modules[name] = None  # any import of them raises ImportError

modules = {modules!r}
for m in modules:
    importlib.import_module("mlops_provider.operators." + m)

from mlops_provider.operators.validation import DataValidationOperator

class TI:
    dag_id, task_id, run_id, map_index, try_number = "d", "validate", "manual__1", -1, 1
    def xcom_push(self, key, value):
        pass

op = DataValidationOperator(
    task_id="validate",
    dataset=sys.argv[1],
    expectation_suite=[{{"type": "expect_column_values_to_not_be_null",
                         "kwargs": {{"column": "customer_id"}}}}],
    report_uri=sys.argv[2],
)
start = datetime(2026, 1, 12, tzinfo=timezone.utc)
result = op.execute({{"ti": TI(), "task": op, "data_interval_start": start}})
try:
    op.get_openlineage_facets_on_complete(TI())
except ImportError as err:
    lineage = "ImportError: " + str(err)
else:
    lineage = "built"
loaded = sorted(m for m in sys.modules if m.startswith(("openlineage", "airflow.providers.openl"))
                and sys.modules[m] is not None)
print(json.dumps({{"status": result["status"], "rows": result["rows"], "lineage": lineage,
                  "loaded": loaded}}))
"""


def test_operators_import_and_execute_without_the_openlineage_provider(tmp_path: Path) -> None:
    import pandas as pd

    data = tmp_path / "customers.parquet"
    pd.DataFrame({"customer_id": [1, 2, 3], "x": [0.1, 0.2, 0.3]}).to_parquet(data, index=False)
    code = _WITHOUT_OPENLINEAGE.format(modules=OPERATOR_MODULES)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(data), str(tmp_path / "report")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MLOPS_HOME": str(tmp_path / "mlops")},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "passed" and out["rows"] == 3
    assert out["lineage"].startswith("ImportError")  # only the OpenLineage provider calls it
    assert out["loaded"] == []


def _names(lineage: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return (
        [(d.namespace, d.name) for d in lineage.inputs],
        [(d.namespace, d.name) for d in lineage.outputs],
    )


def test_operators_map_their_result_to_inputs_and_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operators the integration test does not run, from a result as they return it."""
    from mlops_provider.operators.monitoring import ModelPerformanceOperator
    from mlops_provider.operators.registry import RollbackModelOperator
    from mlops_provider.operators.retraining import RetrainRequestOperator
    from mlops_provider.operators.scoring import PlanScoringShardsOperator, VerifyScoringOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": "http://mlflow:5000"}),
    )
    ns = "mlflow://mlflow:5000"
    lake = tmp_path / "lake"  # nothing there: no schema facets (S3 naming is tested above)
    v3 = {"name": "churn", "version": "3", "run_id": "r3", "uri": "models:/churn/3"}

    plan = PlanScoringShardsOperator(task_id="plan", input_data=str(tmp_path / "raw"))
    plan._mlops_result = {"rows": 10, "model": v3}
    lineage = plan.get_openlineage_facets_on_complete(None)
    assert _names(lineage) == (
        [("file", str(tmp_path / "raw")), (ns, "models/churn/versions/3")],
        [],
    )
    assert lineage.inputs[0].inputFacets["inputStatistics"].rowCount == 10

    verify = VerifyScoringOperator(
        task_id="verify", output_uri=f"{lake}/predictions", expected_rows=4
    )
    verify._mlops_result = {"rows": 4, "output_uri": f"{lake}/predictions/dt=2026-01-12"}
    assert _names(verify.get_openlineage_facets_on_complete(None)) == (
        [("file", f"{lake}/predictions/dt=2026-01-12")],
        [],
    )

    rollback = RollbackModelOperator(task_id="rollback", registered_model_name="churn", reason="r")
    rollback._mlops_result = {
        "registered_model_name": "churn",
        "previous_version": "4",
        "model": {**v3, "alias": "champion"},
    }
    assert _names(rollback.get_openlineage_facets_on_complete(None)) == (
        [(ns, "models/churn/versions/4")],
        [(ns, "models/churn/versions/3")],
    )

    perf = ModelPerformanceOperator(
        task_id="perf", predictions_data=f"{lake}/predictions", labels_data=f"{lake}/labels"
    )
    perf._mlops_result = {"evaluated_days": ["2026-01-05", "2026-01-06"], "model": v3}
    assert _names(perf.get_openlineage_facets_on_complete(None))[0] == [
        ("file", f"{lake}/predictions/dt=2026-01-05"),
        ("file", f"{lake}/predictions/dt=2026-01-06"),
        ("file", f"{lake}/labels"),
        (ns, "models/churn/versions/3"),
    ]

    request = RetrainRequestOperator(task_id="request", registered_model_name="churn")
    request._mlops_result = {"model": v3}
    assert _names(request.get_openlineage_facets_on_complete(None)) == (
        [(ns, "models/churn/versions/3")],
        [],
    )
    # before execute (no result): what the parameters name, nothing else
    assert _names(
        PlanScoringShardsOperator(task_id="p", input_data="/x").get_openlineage_facets_on_complete(
            None
        )
    ) == (
        [("file", "/x")],
        [],
    )
