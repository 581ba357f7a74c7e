"""Batch scoring core (no Airflow): model resolution, input contract, streaming, atomic output,
sharding and verification, against a real embedded MLflow registry."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.simulator import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    SCENARIOS,
    ChurnSimulator,
)
from mlops_provider.core import io, models
from mlops_provider.core import scoring as sc
from mlops_provider.core.mlflow_target import MlflowTarget, activated, make_client
from mlops_provider.core.results import check_result

DAY = date(2026, 1, 10)
HGB_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


# ----------------------------------------------------------------------------- fixtures


def make_pipeline(kind: str = "logreg") -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC_FEATURES),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES),
        ]
    )
    if kind == "logreg":
        clf: Any = LogisticRegression(max_iter=500)
    else:
        clf = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    return Pipeline([("pre", pre), ("clf", clf)])


def log_and_register(
    target: MlflowTarget,
    model: Any,
    X: pd.DataFrame,  # noqa: N803
    name: str,
    *,
    pyfunc: bool = False,
    entity_columns: list[str] | None = None,
) -> str:
    """Log ``model`` in a run (recording ``entity_columns`` as training does), register it
    under ``name``; return the new version."""
    import json

    import mlflow
    from mlflow.models import infer_signature

    client = make_client(target)
    with activated(target):
        mlflow.set_experiment("scoring-tests")
        with mlflow.start_run():
            if entity_columns is not None:
                mlflow.set_tag("mlops.entity_columns", json.dumps(entity_columns))
            example = X.head(3)
            if pyfunc:
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=model,
                    signature=infer_signature(X, model.predict(None, X)),
                    input_example=example,
                    pip_requirements=["pandas"],
                )
            else:
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    signature=infer_signature(X, model.predict(X)),
                    input_example=example,
                    pip_requirements=["scikit-learn"],
                    # MLflow saves with skops, which asks to trust HGB's tree predictor type
                    skops_trusted_types=[HGB_TREE],
                )
        mv = mlflow.register_model(info.model_uri, name)
    client.get_model_version(name, mv.version)
    return str(mv.version)


def _pyfunc_model() -> Any:
    import mlflow.pyfunc

    class _Model(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return model_input["monthly_charges"].to_numpy() * 2.0

    return _Model()


@pytest.fixture(scope="module")
def sim() -> ChurnSimulator:
    return ChurnSimulator(seed=7, n_customers=2500)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, sim: ChurnSimulator) -> dict[str, Any]:
    """An embedded MLflow store with: churn v1 (gradient boosting) @champion, churn v2
    (logistic), plan_clf v1 (3 classes) and charges v1 (a pyfunc model).

    The champion is tree-based on purpose: its probabilities do not depend on how rows are
    grouped into batches, so they must equal direct predictions bit for bit whatever the batch
    size. (A linear model's dot products go through BLAS, whose blocking can change the last
    bit of a row's result with the batch's size.)"""
    root = tmp_path_factory.mktemp("registry")
    target = MlflowTarget(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
    )
    frames = [sim.activity(date(2026, 1, d)) for d in range(1, 4)]
    X = pd.concat(frames, ignore_index=True)[FEATURE_COLUMNS]
    y = pd.concat([sim.labels(date(2026, 1, d)) for d in range(1, 4)], ignore_index=True)
    v1_model = make_pipeline("hgb").fit(X, y["churned"])
    v2_model = make_pipeline("logreg").fit(X, y["churned"])
    client = make_client(target)
    v1 = log_and_register(target, v1_model, X, "churn", entity_columns=["customer_id"])
    v2 = log_and_register(target, v2_model, X, "churn", entity_columns=["customer_id"])
    client.set_registered_model_alias("churn", "champion", v1)
    numeric = X[NUMERIC_FEATURES]
    from sklearn.linear_model import LogisticRegression

    plan_model = LogisticRegression(max_iter=300).fit(numeric, X["plan"])
    log_and_register(target, plan_model, numeric, "plan_clf")
    log_and_register(target, _pyfunc_model(), X, "charges", pyfunc=True)
    return {
        "target": target,
        "client": client,
        "models": {v1: v1_model, v2: v2_model},
        "v1": v1,
        "v2": v2,
        "plan_model": plan_model,
    }


@pytest.fixture
def target(registry: dict[str, Any]) -> MlflowTarget:
    return registry["target"]


def write_days(sim: ChurnSimulator, root: Path, days: list[int], **kwargs: Any) -> Path:
    """One parquet file per simulated day under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for d in days:
        frame = sim.activity(date(2026, 1, d))
        frame.to_parquet(root / f"activity-{d:02d}.parquet", index=False, **kwargs)
    return root


@pytest.fixture
def input_dir(sim: ChurnSimulator, tmp_path: Path) -> Path:
    return write_days(sim, tmp_path / "input", [10, 11, 12])


def out_uri(tmp_path: Path) -> str:
    return io.partition_uri(str(tmp_path / "predictions"), DAY)


def visible(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# ----------------------------------------------------------------------------- model URIs


@pytest.mark.parametrize(
    ("uri", "kind", "fields"),
    [
        ("models:/churn@champion", "alias", {"name": "churn", "alias": "champion"}),
        ("models:/churn/3", "version", {"name": "churn", "version": "3"}),
        ("models:/my.catalog.churn/12", "version", {"name": "my.catalog.churn", "version": "12"}),
        ("runs:/0123456789abcdef/model", "run", {"run_id": "0123456789abcdef"}),
        ("models:/m-0123456789abcdef", "logged_model", {"model_id": "m-0123456789abcdef"}),
    ],
)
def test_parse_model_uri_forms(uri: str, kind: str, fields: dict[str, str]) -> None:
    ref = sc.parse_model_uri(uri)
    assert ref.kind == kind
    for key, value in fields.items():
        assert getattr(ref, key) == value


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("churn@champion", "malformed model URI"),
        ("models:/churn", "malformed model URI"),
        ("models:/churn/abc", "not a positive integer"),
        ("models:/churn/Production", "stages are not supported"),
        ("models:/churn/0", "not a positive integer"),
        ("models:/@champion", "malformed model URI"),
        ("models:/churn@", "malformed model URI"),
        ("runs:/abc/model", "malformed model URI"),
        ("runs:/0123456789abcdef/", "malformed model URI"),
        ("", "non-empty string"),
    ],
)
def test_malformed_model_uri_is_named(uri: str, message: str) -> None:
    with pytest.raises(models.ModelUriError, match=message) as info:
        sc.parse_model_uri(uri)
    if uri:
        assert repr(uri.strip()) in str(info.value)
    assert "models:/<name>@<alias>" in str(info.value) or not uri


def test_resolve_alias_version_and_run(registry: dict[str, Any]) -> None:
    client = registry["client"]
    resolved = models.resolve(client, "models:/churn@champion")
    assert resolved.uri == f"models:/churn/{registry['v1']}"
    assert (resolved.name, resolved.version, resolved.alias) == (
        "churn",
        registry["v1"],
        "champion",
    )
    assert resolved.run_id == client.get_model_version("churn", registry["v1"]).run_id
    assert resolved.to_dict() == {
        "name": "churn",
        "version": registry["v1"],
        "run_id": resolved.run_id,
        "uri": f"models:/churn/{registry['v1']}",
        "alias": "champion",
    }
    by_version = models.resolve(client, f"models:/churn/{registry['v2']}")
    assert by_version.version == registry["v2"] and by_version.alias is None
    by_run = models.resolve(client, f"runs:/{resolved.run_id}/model")
    assert (by_run.name, by_run.version, by_run.run_id) == (None, None, resolved.run_id)


def test_resolve_model_is_a_deprecated_wrapper_of_models_resolve(registry: dict[str, Any]) -> None:
    client = registry["client"]
    with pytest.warns(DeprecationWarning, match=r"core\.models\.resolve"):
        old = sc.resolve_model("models:/churn@champion", client)
    assert old == models.resolve(client, "models:/churn@champion")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "models:/churn@nope",
            "registered model 'churn' has no alias 'nope'.*@champion -> version",
        ),
        ("models:/ghost@champion", "registered model 'ghost' does not exist"),
        ("models:/churn/99", "registered model 'churn' has no version 99"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "run 0123456789abcdef"),
    ],
)
def test_resolve_errors_are_clear(registry: dict[str, Any], uri: str, message: str) -> None:
    with pytest.raises(models.ModelNotFoundError, match=message):
        models.resolve(registry["client"], uri)


@pytest.mark.parametrize("form", ["version", "alias", "logged_model", "run"])
def test_every_model_uri_form_scores_plans_and_verifies(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path, form: str
) -> None:
    """Every URI naming the champion's model (registered version, alias, MLflow 3 logged model,
    run artifact) scores the same predictions; rows and results carry the model's identity."""
    mv = registry["client"].get_model_version("churn", registry["v1"])
    uri = {
        "version": f"models:/churn/{registry['v1']}",
        "alias": "models:/churn@champion",
        "logged_model": mv.source,  # models:/m-<id>: what log_model returned
        "run": f"runs:/{mv.run_id}/model",
    }[form]
    assert mv.source.startswith("models:/m-")
    registered = form in ("version", "alias")
    concrete = f"models:/churn/{registry['v1']}" if registered else uri
    result = sc.score(
        uri, target=registry["target"], output_uri=out_uri(tmp_path), input_data=str(input_dir)
    )
    frame = io.read_pandas(result.output_uri)
    source = pd.read_parquet(input_dir)
    expected = registry["models"][registry["v1"]].predict_proba(source[FEATURE_COLUMNS])[:, 1]
    assert np.array_equal(frame["probability"].to_numpy(), expected)
    assert set(frame["model_run_id"]) == {mv.run_id}
    if registered:
        assert set(frame["model_name"]) == {"churn"}
        assert set(frame["model_version"]) == {registry["v1"]}
    else:  # not resolved through the registry: no name or version to claim
        assert frame["model_name"].isna().all() and frame["model_version"].isna().all()
    out = result.to_result()
    assert check_result(out) == []
    model = {k: v for k, v in out["model"].items() if k != "alias"}
    assert model == {
        "name": "churn" if registered else None,
        "version": registry["v1"] if registered else None,
        "run_id": mv.run_id,
        "uri": concrete,
    }
    assert out["model_uri"] == concrete and out["requested_model_uri"] == uri
    plan = sc.plan_scoring(str(input_dir), uri, client=registry["client"])
    assert check_result(plan) == [] and plan["model"] == out["model"]
    assert plan["model_uri"] == concrete
    summary = sc.verify_scoring(result.output_uri, result.rows)
    assert check_result(summary) == [] and summary["model"] == model


# ----------------------------------------------------------------------------- scoring


def test_scores_match_direct_sklearn_predictions_exactly(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = out_uri(tmp_path)
    scored_at = datetime(2026, 1, 11, 3, 0, tzinfo=timezone.utc)
    with caplog.at_level(logging.INFO):
        result = sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out,
            input_data=str(input_dir),
            batch_size=700,  # several batches per file, batches spanning files
            scored_at=scored_at,
            progress_every=0,
        )
    source = pd.read_parquet(input_dir)
    pipe = registry["models"][registry["v1"]]
    expected = pipe.predict_proba(source[FEATURE_COLUMNS])[:, 1]
    table = io.read_table(out)
    frame = table.to_pandas()
    assert table.schema.names == [
        "customer_id",
        "prediction",
        "probability",
        "model_name",
        "model_version",
        "model_run_id",
        "scored_at",
    ]
    assert len(frame) == len(source) == result.rows
    assert frame["customer_id"].tolist() == source["customer_id"].tolist()
    assert np.array_equal(frame["probability"].to_numpy(), expected)  # exact, not approx
    assert np.array_equal(frame["prediction"].to_numpy(), pipe.predict(source[FEATURE_COLUMNS]))
    run_id = registry["client"].get_model_version("churn", registry["v1"]).run_id
    assert set(frame["model_name"]) == {"churn"}
    assert set(frame["model_version"]) == {registry["v1"]}
    assert set(frame["model_run_id"]) == {run_id}
    assert set(frame["scored_at"]) == {pd.Timestamp(scored_at)}
    meta = pq.read_schema(next(Path(out).glob("*.parquet"))).metadata
    assert meta[b"model_version"] == registry["v1"].encode()
    assert meta[b"model_uri"] == f"models:/churn/{registry['v1']}".encode()
    assert meta[b"requested_model_uri"] == b"models:/churn@champion"
    xcom = result.to_xcom()
    assert json.loads(json.dumps(xcom)) == xcom
    # the data it came from and the data it wrote, by content digest (docs/versioning.md)
    assert xcom["input_digest"] == io.table_digest(io.read_table(str(input_dir)))
    assert xcom["output_digest"] == io.digest_of(out) == io.table_digest(table)
    assert meta[b"input_digest"] == xcom["input_digest"].encode()
    assert check_result(xcom) == []
    assert (xcom["status"], xcom["passed"], xcom["reasons"]) == ("scored", True, [])
    assert xcom["model"] == {
        "name": "churn",
        "version": registry["v1"],
        "run_id": run_id,
        "uri": f"models:/churn/{registry['v1']}",
        "alias": "champion",
    }
    assert xcom["model_version"] == registry["v1"] and xcom["rows"] == len(source)
    assert xcom["model_uri"] == f"models:/churn/{registry['v1']}"
    assert xcom["requested_model_uri"] == "models:/churn@champion"
    assert (xcom["model_name"], xcom["model_run_id"]) == ("churn", run_id)
    assert xcom["output_uri"] == out and xcom["flavor"] == "sklearn" and not xcom["empty"]
    assert "rows done" in caplog.text and "ETA" in caplog.text
    assert f"churn version {registry['v1']}" in caplog.text


def test_alias_moved_between_batches_does_not_change_the_version(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    client = registry["client"]
    v1, v2 = registry["v1"], registry["v2"]
    moved = []

    def move_alias(index: int, rows: int) -> None:
        if index == 0:
            client.set_registered_model_alias("churn", "champion", v2)
            moved.append(rows)

    try:
        result = sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(input_dir),
            batch_size=500,
            on_batch=move_alias,
        )
    finally:
        client.set_registered_model_alias("churn", "champion", v1)
    assert moved and moved[0] < result.rows  # the alias really moved mid-run
    frame = io.read_pandas(result.output_uri)
    assert set(frame["model_version"]) == {v1}
    source = pd.read_parquet(input_dir)
    v1_proba = registry["models"][v1].predict_proba(source[FEATURE_COLUMNS])[:, 1]
    assert np.array_equal(frame["probability"].to_numpy(), v1_proba)
    v2_proba = registry["models"][v2].predict_proba(source[FEATURE_COLUMNS])[:, 1]
    assert not np.array_equal(frame["probability"].to_numpy(), v2_proba)


def test_rerun_replaces_the_partition(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    out = out_uri(tmp_path)
    kwargs = {"target": registry["target"], "output_uri": out, "input_data": str(input_dir)}
    first = sc.score("models:/churn@champion", **kwargs)
    second = sc.score(f"models:/churn/{registry['v2']}", **kwargs)
    frame = io.read_pandas(out)
    assert first.rows == second.rows == len(frame)
    assert set(frame["model_version"]) == {registry["v2"]}
    assert sorted(frame["customer_id"]) == sorted(pd.read_parquet(input_dir)["customer_id"])
    assert [p for p in visible(Path(out).parent) if p.startswith(".")] == []


def test_interrupted_write_leaves_no_partition(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    out = out_uri(tmp_path)

    def crash(index: int, rows: int) -> None:
        if index == 1:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="worker killed"):
        sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out,
            input_data=str(input_dir),
            batch_size=500,
            on_batch=crash,
        )
    assert visible(Path(out).parent) == []  # no partition, no staging leftovers
    # with a previous good partition, a crash keeps it intact
    good = sc.score(
        "models:/churn@champion",
        target=registry["target"],
        output_uri=out,
        input_data=str(input_dir),
    )
    with pytest.raises(RuntimeError):
        sc.score(
            f"models:/churn/{registry['v2']}",
            target=registry["target"],
            output_uri=out,
            input_data=str(input_dir),
            batch_size=500,
            on_batch=crash,
        )
    frame = io.read_pandas(out)
    assert len(frame) == good.rows and set(frame["model_version"]) == {registry["v1"]}
    assert visible(Path(out).parent) == ["dt=2026-01-10"]


def test_passthrough_columns_and_csv_input(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path
) -> None:
    source = sim.activity(DAY)
    csv = tmp_path / "activity.csv"
    source.to_csv(csv, index=False)
    result = sc.score(
        "models:/churn@champion",
        target=registry["target"],
        output_uri=out_uri(tmp_path),
        input_data=str(csv),
        passthrough_columns=["plan", "event_timestamp"],
    )
    frame = io.read_pandas(result.output_uri)
    assert list(frame.columns[:3]) == ["customer_id", "plan", "event_timestamp"]
    assert frame["plan"].tolist() == source["plan"].tolist()
    expected = registry["models"][registry["v1"]].predict_proba(source[FEATURE_COLUMNS])[:, 1]
    np.testing.assert_allclose(frame["probability"].to_numpy(), expected, rtol=1e-12)


def test_entity_columns_default_to_what_training_recorded(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path
) -> None:
    """No domain default: a model whose training run recorded no entity columns copies none
    (churn's runs recorded ``customer_id``, which the other tests rely on)."""
    source = sim.activity(DAY)
    path = tmp_path / "activity.parquet"
    source.to_parquet(path, index=False)
    result = sc.score(
        "models:/charges/1",
        target=registry["target"],
        output_uri=out_uri(tmp_path),
        input_data=str(path),
    )
    frame = io.read_pandas(result.output_uri)
    assert "customer_id" not in frame.columns
    recorded = sc.score(
        "models:/churn@champion",
        target=registry["target"],
        output_uri=out_uri(tmp_path / "recorded"),
        input_data=str(path),
    )
    assert io.read_pandas(recorded.output_uri)["customer_id"].tolist() == (
        source["customer_id"].tolist()
    )


def test_partitioned_input_with_differing_int_widths(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path
) -> None:
    root = tmp_path / "raw"
    frames = []
    for i, day in enumerate([date(2026, 1, 10), date(2026, 1, 11)]):
        frame = sim.activity(day)
        if i == 1:  # another writer stored the integer features as int32
            frame = frame.astype({"tenure_months": "int32", "sessions_last_7d": "int32"})
        (root / f"dt={day.isoformat()}").mkdir(parents=True)
        frame.to_parquet(root / f"dt={day.isoformat()}" / "activity.parquet", index=False)
        frames.append(frame.assign(dt=day.isoformat()))
    result = sc.score(
        "models:/churn@champion",
        target=registry["target"],
        output_uri=out_uri(tmp_path),
        input_data=str(root),
        passthrough_columns=["dt"],
        batch_size=256,
    )
    frame = io.read_pandas(result.output_uri)
    source = pd.concat(frames, ignore_index=True)
    assert frame["dt"].astype(str).tolist() == source["dt"].tolist()
    expected = registry["models"][registry["v1"]].predict_proba(source[FEATURE_COLUMNS])[:, 1]
    assert np.array_equal(frame["probability"].to_numpy(), expected)


def test_stream_parquet_reads_one_row_group_at_a_time(sim: ChurnSimulator, tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(
        pa.Table.from_pandas(sim.activity(DAY), preserve_index=False), path, row_group_size=100
    )
    info = sc.inspect_input(str(path), columns=[sc.InputColumn("plan", "string")])
    sizes = [b.num_rows for b in sc.stream_parquet(info, ["customer_id", "plan"], batch_size=64)]
    assert sum(sizes) == info.rows and max(sizes) <= 64


def test_multiclass_probability_columns(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path
) -> None:
    path = tmp_path / "in.parquet"
    source = sim.activity(DAY)
    source.to_parquet(path, index=False)
    result = sc.score(
        "models:/plan_clf/1",
        target=registry["target"],
        output_uri=out_uri(tmp_path),
        input_data=str(path),
    )
    frame = io.read_pandas(result.output_uri)
    model = registry["plan_model"]
    classes = list(model.classes_)
    assert [c for c in frame.columns if c.startswith("probab")] == [
        f"probability_{c}" for c in classes
    ]
    proba = model.predict_proba(source[NUMERIC_FEATURES])
    for i, cls in enumerate(classes):
        assert np.array_equal(frame[f"probability_{cls}"].to_numpy(), proba[:, i])
    assert frame["prediction"].tolist() == model.predict(source[NUMERIC_FEATURES]).tolist()


def test_pyfunc_fallback_for_other_flavors(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    result = sc.score(
        "models:/charges/1",
        target=registry["target"],
        output_uri=out_uri(tmp_path),
        input_data=str(input_dir),
    )
    assert result.flavor == "pyfunc"
    frame = io.read_pandas(result.output_uri)
    source = pd.read_parquet(input_dir)
    assert "probability" not in frame.columns
    np.testing.assert_array_equal(frame["prediction"], source["monthly_charges"] * 2.0)


def test_empty_input_writes_an_empty_partition_with_schema(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "empty.parquet"
    sim.activity(DAY).head(0).to_parquet(path, index=False)
    with caplog.at_level(logging.INFO):
        result = sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(path),
        )
    assert result.rows == 0 and result.empty and result.to_xcom()["empty"] is True
    out = result.to_result()
    assert check_result(out) == [] and out["rows"] == 0 and out["status"] == "scored"
    assert out["reasons"] == ["the input had no rows: wrote an empty partition"]
    table = io.read_table(result.output_uri)
    assert table.num_rows == 0
    assert "probability" in table.schema.names and "model_version" in table.schema.names
    assert (Path(result.output_uri) / "_SUCCESS").exists()
    assert "no rows" in caplog.text and "EMPTY" in caplog.text


def test_missing_column_is_named_and_nothing_is_written(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path
) -> None:
    path = tmp_path / "in.parquet"
    sim.activity(DAY).drop(columns=["monthly_charges", "device"]).to_parquet(path)
    with pytest.raises(
        sc.ScoringInputError, match=r"missing column\(s\) \['monthly_charges', 'device'\]"
    ):
        sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(path),
        )
    assert visible(tmp_path / "predictions") == []


def test_wrong_type_is_named(registry: dict[str, Any], tmp_path: Path) -> None:
    bad = ChurnSimulator(seed=7, n_customers=2500, scenarios=SCENARIOS["wrong_dtype"](DAY))
    path = tmp_path / "in.parquet"
    bad.activity(DAY).to_parquet(path)
    with pytest.raises(sc.ScoringInputError, match="total_charges: expected double, got string"):
        sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(path),
        )
    assert visible(tmp_path / "predictions") == []


def test_mistyped_file_among_many_is_named(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    frame = pd.read_parquet(input_dir / "activity-11.parquet")
    frame["monthly_charges"] = frame["monthly_charges"].map("{:.2f}".format)
    frame.to_parquet(input_dir / "activity-11.parquet", index=False)
    with pytest.raises(sc.ScoringInputError) as info:
        sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(input_dir),
        )
    assert "activity-11.parquet: monthly_charges: expected double, got string" in str(info.value)
    assert visible(tmp_path / "predictions") == []


def test_corrupt_file_among_many_is_named(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    (input_dir / "activity-12.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(sc.ScoringInputError, match=r"activity-12\.parquet"):
        sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(input_dir),
        )
    assert visible(tmp_path / "predictions") == []


def test_missing_input_and_missing_entity_column(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path
) -> None:
    with pytest.raises(sc.ScoringInputError, match="does not exist"):
        sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(tmp_path / "nope"),
        )
    path = tmp_path / "in.parquet"
    sim.activity(DAY).drop(columns=["customer_id"]).to_parquet(path)
    with pytest.raises(sc.ScoringInputError, match=r"missing column\(s\) \['customer_id'\]"):
        sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(path),
        )
    # explicitly no entity columns: scores without ids
    result = sc.score(
        "models:/churn@champion",
        target=registry["target"],
        output_uri=out_uri(tmp_path),
        input_data=str(path),
        entity_columns=[],
    )
    assert io.read_table(result.output_uri).schema.names[0] == "prediction"


def test_alias_missing_fails_before_reading_or_writing(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(models.ModelNotFoundError, match="'churn' has no alias 'gold'"):
        sc.score(
            "models:/churn@gold",
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(input_dir),
        )
    assert visible(tmp_path / "predictions") == []


def test_output_not_writable(registry: dict[str, Any], input_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    with pytest.raises(sc.ScoringInputError, match="not a directory"):
        sc.score(
            "models:/churn@champion",
            target=registry["target"],
            output_uri=io.partition_uri(str(blocker / "predictions"), DAY),
            input_data=str(input_dir),
        )
    assert blocker.read_text() == "a regular file"


def test_output_is_probed_before_the_model_is_resolved(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    # the alias does not exist either: the output's problem is found first, before MLflow
    with pytest.raises(sc.ScoringInputError, match="checked before scoring") as info:
        sc.score(
            "models:/churn@nowhere",
            target=registry["target"],
            output_uri=io.partition_uri(str(blocker / "predictions"), DAY),
            input_data=str(input_dir),
        )
    assert str(blocker) in str(info.value)


# ----------------------------------------------------------------------------- unseen categories


def test_known_categories_of_the_training_pipeline(
    registry: dict[str, Any], sim: ChurnSimulator
) -> None:
    from sklearn.linear_model import LogisticRegression

    from mlops_provider.core.training.estimator import build_pipeline

    frame = sim.activity(date(2026, 1, 2))
    y = sim.labels(date(2026, 1, 2))["churned"]
    levels = {c: sorted(frame[c].unique()) for c in CATEGORICAL_FEATURES}
    # as training builds it: Pipeline(ColumnTransformer(Pipeline(imputers, OneHotEncoder)))
    pipe = build_pipeline(LogisticRegression(max_iter=200), NUMERIC_FEATURES, CATEGORICAL_FEATURES)
    assert sc.known_categories(pipe.fit(frame[FEATURE_COLUMNS], y)) == levels
    # a ColumnTransformer with a bare encoder (the registry's champion)
    champion = registry["models"][registry["v1"]]
    assert sc.known_categories(champion) == levels
    # a model without encoders has nothing to compare with
    assert sc.known_categories(registry["plan_model"]) == {}
    assert sc.known_categories(object()) == {}


def test_unseen_categories_counter() -> None:
    unseen = sc.UnseenCategories({"plan": ["basic", "premium"], "n": [1, 2]})
    table = pa.table(
        {
            "plan": pa.array(["basic", "gold", None, "gold", "silver"]).dictionary_encode(),
            "n": pa.array([1, 3, 2, None, 1], type=pa.int32()),
        }
    )
    unseen.update(table)
    unseen.update(table.slice(0, 2))
    report = unseen.report()
    assert unseen.rows == 7
    # nulls are imputed by the pipeline: not counted
    assert report["plan"] == {
        "count": 4,
        "share": round(4 / 7, 6),
        "examples": ["gold", "silver"],
        "known": ["basic", "premium"],
    }
    assert report["n"]["count"] == 2 and report["n"]["examples"] == [3]
    assert unseen.lines()[1].startswith("column 'plan': 4 of 7 rows (57.1%)")
    unseen.check(None)
    unseen.check(0.6)
    with pytest.raises(sc.ScoringInputError, match=r"max_unseen_share=0\.5") as info:
        unseen.check(0.5)
    assert "column 'plan'" in str(info.value) and "column 'n'" not in str(info.value)
    # while streaming, against all the rows of the input: 4 of 100 is under 5%
    unseen.check(0.05, of_rows=100)


def _with_unseen_plans(sim: ChurnSimulator, path: Path, share: float) -> int:
    """The day's rows with ``plan`` = platinum/gold in the first ``share`` of them."""
    frame = sim.activity(DAY)
    n = int(len(frame) * share)
    frame.loc[: n - 1, "plan"] = ["platinum" if i % 3 else "gold" for i in range(n)]
    frame.loc[n : n + 9, "region"] = None  # missing values are not unseen categories
    frame.to_parquet(path, index=False)
    return n


def _score_champion(registry: dict[str, Any], path: Path, out: Path, **kwargs: Any) -> Any:
    return sc.score(
        "models:/churn@champion",
        target=registry["target"],
        output_uri=out_uri(out),
        input_data=str(path),
        **kwargs,
    )


def test_unseen_categories_are_reported_in_the_result_and_the_log(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "in.parquet"
    n = _with_unseen_plans(sim, path, 0.2)
    with caplog.at_level(logging.WARNING):
        result = _score_champion(registry, path, tmp_path, batch_size=100)
    out = result.to_result()
    assert check_result(out) == [] and out["passed"] is True
    assert list(out["unseen_categories"]) == ["plan"]
    plan = out["unseen_categories"]["plan"]
    assert plan["count"] == n and plan["share"] == round(n / result.rows, 6)
    assert plan["examples"] == ["platinum", "gold"]
    assert plan["known"] == ["basic", "premium", "standard"]
    assert out["reasons"] == result.unseen_lines and "'platinum'" in out["reasons"][0]
    assert "Unseen categories: column 'plan'" in caplog.text
    # the rows were scored all the same (the encoder ignores the unknown category)
    assert io.read_table(result.output_uri).num_rows == result.rows


def test_max_unseen_share_fails_before_anything_is_written(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path
) -> None:
    path = tmp_path / "in.parquet"
    _with_unseen_plans(sim, path, 0.2)
    batches: list[int] = []
    with pytest.raises(sc.ScoringInputError, match=r"max_unseen_share=0\.1 .*\n.*'plan'"):
        _score_champion(
            registry,
            path,
            tmp_path,
            batch_size=1000,
            max_unseen_share=0.1,
            on_batch=lambda index, rows: batches.append(rows),
        )
    # the first batch already held more than 10% of all the rows unseen: it stopped there
    assert batches == []
    assert visible(tmp_path / "predictions") == []
    with pytest.raises(sc.ScoringInputError, match=r"max_unseen_share must be within \[0, 1\]"):
        _score_champion(registry, path, tmp_path, max_unseen_share=1.5)
    result = _score_champion(registry, path, tmp_path, max_unseen_share=0.25)
    assert result.unseen_categories["plan"]["share"] < 0.25


def test_model_failure_names_the_rows(
    registry: dict[str, Any], sim: ChurnSimulator, tmp_path: Path
) -> None:
    frame = sim.activity(DAY)
    frame.loc[5, "tenure_months"] = None  # int column with a null -> NaN: LogisticRegression fails
    path = tmp_path / "in.parquet"
    frame.astype({"tenure_months": "Int64"}).to_parquet(path)
    with pytest.raises(
        sc.ScoringInputError, match=r"model churn version 2 .* failed on rows 0\.\."
    ):
        sc.score(
            f"models:/churn/{registry['v2']}",  # the logistic model rejects NaN
            target=registry["target"],
            output_uri=out_uri(tmp_path),
            input_data=str(path),
        )
    assert visible(tmp_path / "predictions") == []


def test_check_input_schema_rules() -> None:
    cols = [
        sc.InputColumn("a", "double"),
        sc.InputColumn("b", "long"),
        sc.InputColumn("c", "string"),
        sc.InputColumn("d", "string", required=False),
    ]
    ok = pa.schema(
        [("a", pa.int32()), ("b", pa.int64()), ("c", pa.dictionary(pa.int32(), pa.string()))]
    )
    assert sc.check_input_schema(ok, cols, where="x") == []
    bad = pa.schema([("a", pa.string()), ("b", pa.bool_()), ("d", pa.int64())])
    assert sc.check_input_schema(bad, cols, where="x") == [
        "x: missing column(s) ['c']",
        "x: a: expected double, got string",
        "x: b: expected long, got bool",
        "x: d: expected string, got int64",
    ]
    # an integer feature with nulls arrives as float64: accepted, fed as float64
    floats = pa.schema([("a", pa.float64()), ("b", pa.float64()), ("c", pa.string())])
    assert sc.check_input_schema(floats, cols, where="x") == []
    assert sc.feed_type(cols[1], pa.float64()) == pa.float64()
    assert sc.feed_type(cols[1], pa.int32()) == pa.int64()


# ----------------------------------------------------------------------------- sharding


def test_list_shards_by_file_and_partition(tmp_path: Path, sim: ChurnSimulator) -> None:
    files = write_days(sim, tmp_path / "flat", [10, 11])
    assert sc.list_shards(str(files)) == [
        f"{files}/activity-10.parquet",
        f"{files}/activity-11.parquet",
    ]
    single = files / "activity-10.parquet"
    assert sc.list_shards(str(single)) == [str(single)]
    parted = tmp_path / "parted"
    write_days(sim, parted / "region=north", [10, 11])
    write_days(sim, parted / "region=south", [12])
    (parted / "_SUCCESS").write_text("{}")
    assert sc.list_shards(str(parted)) == [f"{parted}/region=north", f"{parted}/region=south"]
    assert len(sc.list_shards(str(parted), by="file")) == 3
    with pytest.raises(sc.ScoringInputError, match="not partitioned"):
        sc.list_shards(str(files), by="partition")
    (tmp_path / "void").mkdir()
    with pytest.raises(sc.ScoringInputError, match="no data files"):
        sc.list_shards(str(tmp_path / "void"))
    assert sc.shard_name(3) == "00003" and sc.shard_name("7") == "00007"
    with pytest.raises(sc.ScoringInputError):
        sc.shard_name("../x")


def test_sharded_scoring_plan_and_verify(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    day = out_uri(tmp_path)
    plan = sc.plan_scoring(
        str(input_dir), "models:/churn@champion", client=registry["client"], output_partition=day
    )
    assert plan["model_uri"] == f"models:/churn/{registry['v1']}"
    assert plan["shard_count"] == 3
    assert plan["expected_rows"] == len(pd.read_parquet(input_dir))
    assert check_result(plan) == []
    assert (plan["status"], plan["passed"], plan["rows"]) == (
        "planned",
        True,
        plan["expected_rows"],
    )
    run_id = registry["client"].get_model_version("churn", registry["v1"]).run_id
    assert plan["model"] == {
        "name": "churn",
        "version": registry["v1"],
        "run_id": run_id,
        "uri": f"models:/churn/{registry['v1']}",
        "alias": "champion",
    }
    assert plan["shards"] == [str(p) for p in sorted(input_dir.glob("*.parquet"))]
    assert plan["shard_rows"] == [len(pd.read_parquet(p)) for p in plan["shards"]]
    for i, shard in enumerate(plan["shards"]):
        sc.score(
            plan["model_uri"],
            target=registry["target"],
            output_uri=sc.shard_uri(day, i),
            input_data=shard,
        )
    summary = sc.verify_scoring(
        day,
        plan["expected_rows"],
        expected_model_version=plan["model_version"],
        expected_shards=plan["shard_count"],
    )
    assert summary["rows"] == plan["expected_rows"] and summary["shards"] == 3
    assert summary["model_version"] == registry["v1"]
    assert check_result(summary) == []
    assert (summary["status"], summary["passed"]) == ("verified", True)
    assert summary["model"] == {
        "name": "churn",
        "version": registry["v1"],
        "run_id": run_id,
        "uri": f"models:/churn/{registry['v1']}",
    }
    assert summary["shard_rows"] == {f"{i:05d}": n for i, n in enumerate(plan["shard_rows"])}
    marker = json.loads((Path(day) / "_SUCCESS").read_text())
    assert marker["rows"] == plan["expected_rows"] and marker["status"] == "verified"
    # the day partition reads as one dataset, with the shard as a partition column
    whole = io.read_table(day)
    assert whole.num_rows == plan["expected_rows"] and "shard" in whole.schema.names
    # rerunning one shard replaces only that shard
    before = {p.name: sorted(x.name for x in p.iterdir()) for p in Path(day).glob("shard=*")}
    sc.score(
        plan["model_uri"],
        target=registry["target"],
        output_uri=sc.shard_uri(day, 1),
        input_data=plan["shards"][1],
    )
    assert io.read_table(day).num_rows == plan["expected_rows"]
    assert {p.name for p in Path(day).glob("shard=*")} == set(before)

    # a shard scored with another version is caught
    sc.score(
        f"models:/churn/{registry['v2']}",
        target=registry["target"],
        output_uri=sc.shard_uri(day, 2),
        input_data=plan["shards"][2],
    )
    with pytest.raises(sc.ScoringInputError, match="different model versions"):
        sc.verify_scoring(day, plan["expected_rows"], expected_shards=3)
    # wrong expected rows and a missing shard are caught
    sc.score(
        plan["model_uri"],
        target=registry["target"],
        output_uri=sc.shard_uri(day, 2),
        input_data=plan["shards"][2],
    )
    with pytest.raises(sc.ScoringInputError, match="rows written"):
        sc.verify_scoring(day, plan["expected_rows"] + 1, expected_shards=3)
    with pytest.raises(sc.ScoringInputError, match=r"shard\(s\) not written: \['00003'\]"):
        sc.verify_scoring(day, plan["expected_rows"], expected_shards=4)
    with pytest.raises(sc.ScoringInputError, match="expected 99"):
        sc.verify_scoring(day, plan["expected_rows"], expected_model_version=99)


def test_plan_resets_the_day_and_verify_needs_committed_shards(
    registry: dict[str, Any], input_dir: Path, tmp_path: Path
) -> None:
    day = Path(out_uri(tmp_path))
    stale = day / "shard=00007"
    stale.mkdir(parents=True)
    (stale / "part-00000.parquet").write_bytes(b"old")
    (day / "_SUCCESS").write_text("{}")
    plan = sc.plan_scoring(
        str(input_dir), "models:/churn/1", client=registry["client"], output_partition=str(day)
    )
    assert not stale.exists() and not (day / "_SUCCESS").exists()
    # a shard directory without its marker (a writer died mid-commit on an object store)
    sc.score(
        plan["model_uri"],
        target=registry["target"],
        output_uri=sc.shard_uri(str(day), 0),
        input_data=plan["shards"][0],
    )
    (day / "shard=00000" / "_SUCCESS").unlink()
    with pytest.raises(sc.ScoringInputError, match="shard 00000 is not committed") as info:
        sc.verify_scoring(str(day), plan["expected_rows"], expected_shards=plan["shard_count"])
    assert "not written: ['00001', '00002']" in str(info.value)
    assert not (day / "_SUCCESS").exists()


def test_verify_plain_partition(registry: dict[str, Any], input_dir: Path, tmp_path: Path) -> None:
    result = sc.score(
        "models:/churn@champion",
        target=registry["target"],
        output_uri=out_uri(tmp_path),
        input_data=str(input_dir),
    )
    summary = sc.verify_scoring(result.output_uri, result.rows, expected_model_name="churn")
    assert summary["rows"] == result.rows and summary["shards"] == 0
    with pytest.raises(sc.ScoringInputError, match="does not exist"):
        sc.verify_scoring(str(tmp_path / "nothing"), 1)
