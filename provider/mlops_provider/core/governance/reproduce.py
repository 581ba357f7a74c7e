"""Rebuild a model from what its training run recorded and say whether it comes out the same.

:func:`reproduce` takes a model version (``churn/2``, ``models:/churn@champion``) or a training
run id and:

1. reads the run's lineage document (:mod:`.record`; a run without one falls back to its tags,
   params and artifacts, and says so);
2. reads every recorded input again (training, validation and evaluation sets, entity data,
   source partitions) and compares its content digest with the recorded one, naming each input
   that changed (:mod:`.rebuild`);
3. rebuilds the training set through Feast from the recorded entity data and feature service
   (point in time) when the entity data was recorded, and compares its digest with the recorded
   training set's; a difference names the changed entity data, feature views or partitions;
4. refits with the recorded configuration and seed through the training code itself
   (:func:`~mlops_provider.core.training.prepare_training` +
   :func:`~mlops_provider.core.training.fit_prepared`), then compares every recorded metric
   (within ``tolerance``), the predictions on the holdout rows (the recorded
   :data:`HOLDOUT_PREDICTIONS_PATH`, and the registered model's own predictions), the
   estimator's parameters and the selected features;
5. returns a :class:`ReproduceReport` whose verdict is ``reproduced``, ``inputs_changed`` or
   ``mismatch``, with the library versions of the model's requirements against the ones
   installed now.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InputError
from mlops_provider.core.governance.rebuild import (
    InputCheck,
    Located,
    RebuildCheck,
    check_dataset,
    check_partitions,
)
from mlops_provider.core.governance.record import DatasetRef, TrainingLineage

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from feast import FeatureStore
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from mlops_provider.core.mlflow_target import MlflowTarget
    from mlops_provider.core.models import ModelVersion
    from mlops_provider.core.training.fit import FittedModel

__all__ = [
    "HOLDOUT_PREDICTIONS_PATH",
    "VERDICTS",
    "MetricCheck",
    "PredictionCheck",
    "ReproduceReport",
    "holdout_predictions",
    "reproduce",
]

log = logging.getLogger(__name__)

#: The training run's predictions on its holdout rows (``row``, ``prediction``, ``proba_<i>``).
HOLDOUT_PREDICTIONS_PATH = "training/holdout_predictions.parquet"
VERDICTS = ("reproduced", "inputs_changed", "mismatch")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


# --------------------------------------------------------------------------- results


@dataclass
class MetricCheck:
    """One recorded metric against the refit's value."""

    name: str
    recorded: float | None
    reproduced: float | None
    difference: float | None
    matches: bool

    def describe(self) -> str:
        diff = "n/a" if self.difference is None else f"{self.difference:.3g}"
        return f"{self.name}: recorded {self.recorded}, refit {self.reproduced} (diff {diff})"


@dataclass
class PredictionCheck:
    """The refit's holdout predictions against a reference (recorded, or the registered
    model's): ``rows`` compared, ``differing_rows`` beyond the tolerance, the largest absolute
    difference of a numeric output."""

    against: str
    rows: int
    differing_rows: int
    max_abs_difference: float | None
    matches: bool
    note: str = ""

    def describe(self) -> str:
        diff = (
            "" if self.max_abs_difference is None else f", max |diff| {self.max_abs_difference:.3g}"
        )
        note = f" ({self.note})" if self.note else ""
        return f"{self.against}: {self.differing_rows} of {self.rows} rows differ{diff}{note}"


@dataclass
class ReproduceReport:
    """What :func:`reproduce` found.

    :param verdict: ``reproduced`` (inputs, metrics and predictions match), ``inputs_changed``
        (a recorded input is not what it was: named in ``reasons``) or ``mismatch`` (the inputs
        are the same but the refit differs: which metric or prediction, by how much).
    :param reasons: one line per finding behind the verdict.
    :param lineage_source: ``lineage document`` or ``run tags and params`` (older runs).
    :param refit_on: the training set the refit used (rebuilt, recorded, or current content).
    :param configuration: differences between the recorded and the refit configuration
        (estimator parameters, features, task).
    :param libraries: ``package``, ``at_training`` (the model's requirements), ``now``.
    """

    model: dict[str, Any]
    verdict: str
    reasons: list[str]
    tolerance: float
    lineage_source: str
    inputs: list[InputCheck] = field(default_factory=list)
    rebuild: RebuildCheck | None = None
    refit_on: str = ""
    configuration: list[str] = field(default_factory=list)
    metrics: list[MetricCheck] = field(default_factory=list)
    predictions: list[PredictionCheck] = field(default_factory=list)
    libraries: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refit_error: str = ""

    @property
    def reproduced(self) -> bool:
        return self.verdict == "reproduced"

    @property
    def changed_inputs(self) -> list[InputCheck]:
        return [i for i in self.inputs if i.changed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``json.dumps`` works on it)."""
        return {
            "model": self.model,
            "verdict": self.verdict,
            "reproduced": self.reproduced,
            "reasons": self.reasons,
            "tolerance": self.tolerance,
            "lineage_source": self.lineage_source,
            "inputs": [i.to_dict() for i in self.inputs],
            "rebuild": self.rebuild.to_dict() if self.rebuild else None,
            "refit_on": self.refit_on,
            "refit_error": self.refit_error,
            "configuration": self.configuration,
            "metrics": [asdict(m) for m in self.metrics],
            "predictions": [asdict(p) for p in self.predictions],
            "libraries": self.libraries,
            "notes": self.notes,
        }

    def to_text(self) -> str:
        """A readable rendering (what the command prints)."""
        return _render(self)


# --------------------------------------------------------------------------- the record


def _model_uri(model: str) -> str:
    text = str(model).strip()
    if text.startswith(("models:/", "runs:/")):
        return text
    if _RUN_ID.match(text):
        return f"runs:/{text}/model"
    if "@" in text or "/" in text:
        return f"models:/{text}"
    raise InputError(
        f"model {text!r}: expected <name>/<version>, <name>@<alias>, a model URI or a run id"
    )


def _download_json(client: MlflowClient, run_id: str, path: str) -> Any:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())
    except Exception as err:  # an older or foreign run without the artifact
        log.info("run %s has no readable %s: %s", run_id, path, err)
        return None


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _lineage_from_run(client: MlflowClient, run: Run) -> TrainingLineage:
    """What a run without a lineage document recorded, as a lineage document: the training
    data URI (tag), the configuration (params, ``training/features.json``), feature refs."""
    from mlops_provider.core.models import ENTITY_COLUMNS_TAG, FEATURE_REFS_TAG

    tags, params = run.data.tags, run.data.params
    if "mlops.training_data" not in tags or "target" not in params:
        raise InputError(
            f"run {run.info.run_id} has no lineage document and no mlops.training_data tag or "
            "target param: it was not trained by this provider, nothing to reproduce from"
        )
    features = _download_json(client, run.info.run_id, "training/features.json") or {}
    estimator_params = {
        k[len("estimator.") :]: _literal(v) for k, v in params.items() if k.startswith("estimator.")
    }
    config = {
        "target": params["target"],
        "estimator": params.get("estimator") or None,
        "estimator_params": estimator_params,
        "feature_columns": features.get("feature_columns"),
        "categorical_columns": features.get("categorical_columns") or None,
        "entity_columns": json.loads(tags.get(ENTITY_COLUMNS_TAG) or "null"),
        "problem_type": params.get("task") or None,
        "test_size": _literal(params.get("test_size") or "0.2"),
        "random_state": _literal(params.get("random_state") or "None"),
    }
    for key in ("numeric_imputation", "categorical_imputation", "scale_numeric"):
        if key in params:
            config[key] = _literal(params[key]) if params[key] != "" else None
    validation = params.get("validation_data") or None
    return TrainingLineage(
        training_data=DatasetRef(tags["mlops.training_data"]),
        validation_data=DatasetRef(validation) if validation else None,
        config=config,
        feature_refs=json.loads(tags.get(FEATURE_REFS_TAG) or "[]"),
    )


def _mlflow_training_digest(run: Run) -> str | None:
    """The digest MLflow recorded for the run's training dataset input."""
    for item in getattr(run.inputs, "dataset_inputs", None) or []:
        context = {t.key: t.value for t in item.tags}.get("mlflow.data.context")
        if context == "training":
            return str(item.dataset.digest)
    return None


# --------------------------------------------------------------------------- inputs


@dataclass
class _Inputs:
    checks: list[InputCheck]
    training: Located
    validation: Located | None
    entities: Located | None


def _check_fallback_training(run: Run, check: InputCheck, located: Located, target: str) -> None:
    """Without a lineage document the training data is compared by MLflow's dataset digest."""
    import warnings

    import mlflow.data

    recorded = _mlflow_training_digest(run)
    if recorded is None or located.current is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        now = mlflow.data.from_pandas(located.current.to_pandas(), targets=target).digest
    check.recorded_digest, check.current_digest = recorded, str(now)
    check.status = "same" if str(now) == recorded else "changed"
    check.note = "compared by MLflow's dataset digest (no lineage document)"
    if check.status == "same":
        located.table = located.current
        located.uri = check.uri
    else:
        located.table, located.uri = None, None


def _check_inputs(
    lineage: TrainingLineage, run: Run, conn_id: str | None, documented: bool
) -> _Inputs:
    checks = []
    check, training = check_dataset("training set", lineage.training_data, conn_id=conn_id)
    if not documented:
        _check_fallback_training(run, check, training, str(lineage.config.get("target")))
    checks.append(check)
    validation = None
    if lineage.validation_data is not None:
        check, validation = check_dataset(
            "validation set", lineage.validation_data, conn_id=conn_id
        )
        checks.append(check)
    if lineage.evaluation_data is not None:
        checks.append(check_dataset("evaluation set", lineage.evaluation_data, conn_id=conn_id)[0])
    entities = None
    for role, ref in sorted(lineage.entity_data.items()):
        if ref is None:
            continue
        check, located = check_dataset(f"entity data ({role})", ref, conn_id=conn_id)
        checks.append(check)
        if role == "training":
            entities = located
    checks += check_partitions(lineage.source_partitions, conn_id=conn_id)
    return _Inputs(checks, training, validation, entities)


def _rebuild(
    lineage: TrainingLineage,
    inputs: _Inputs,
    store: FeatureStore | None,
    enabled: bool,
) -> RebuildCheck | None:
    from mlops_provider.core.governance.rebuild import rebuild_training_set

    if "training" not in lineage.entity_data or lineage.entity_data["training"] is None:
        return RebuildCheck("skipped", note="the run recorded no entity data to rebuild from")
    if not enabled:
        return RebuildCheck("skipped", note="not asked (rebuild_training_set=False)")
    entities = inputs.entities
    if entities is None or entities.table is None:
        return RebuildCheck(
            "skipped",
            note="the recorded entity data cannot be read in its recorded version",
            causes=[c.describe() for c in inputs.checks if c.role.startswith("entity data")],
        )
    if store is None:
        from mlops_provider.core.feast_config import make_feature_store

        store = make_feature_store(None)
    # what the training set is built from (the evaluation days' partitions are not)
    causes = [
        c.describe()
        for c in inputs.checks
        if c.changed
        and (c.role.startswith("source partition") or c.role == "entity data (training)")
        and not c.role.endswith("(evaluation)")
    ]
    return rebuild_training_set(
        lineage, store, entities.table, recorded_set=inputs.training.table, input_causes=causes
    )


# --------------------------------------------------------------------------- refit


def holdout_predictions(model: Any, x: pd.DataFrame, task: str) -> pa.Table:
    """A fitted model's predictions on holdout rows: ``row`` (the row's position in the
    labelled training or validation data), ``prediction`` and, for a classifier,
    ``proba_<i>`` per class (in ``classes_`` order)."""
    import numpy as np
    import pyarrow as pa

    index = x.index.to_numpy()
    rows = index if np.issubdtype(index.dtype, np.integer) else np.arange(len(x))
    columns: dict[str, Any] = {
        "row": pa.array(rows.astype("int64")),
        "prediction": pa.array(np.asarray(model.predict(x))),
    }
    if task == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(x), dtype="float64")
        for i in range(proba.shape[1]):
            columns[f"proba_{i}"] = pa.array(proba[:, i])
    return pa.table(columns)


def _training_config(lineage: TrainingLineage) -> Any:
    from dataclasses import fields

    from mlops_provider.core.training.config import TrainingConfig

    names = {f.name for f in fields(TrainingConfig)}
    values = {k: v for k, v in lineage.config.items() if k in names}
    if "target" not in values:
        raise InputError("the lineage document's configuration has no target: cannot refit")
    return TrainingConfig(**values)


def _refit_data(
    inputs: _Inputs, rebuild: RebuildCheck | None
) -> tuple[pa.Table | None, str, list[str]]:
    """The training table to refit on, what it is, and notes."""
    if rebuild is not None and rebuild.status == "reproduced" and rebuild.table is not None:
        return rebuild.table, "the rebuilt training set (same digest as recorded)", []
    located = inputs.training
    if located.table is not None:
        return located.table, f"the recorded training set {located.uri}", []
    if located.current is not None:
        note = (
            "the recorded training set cannot be read in its recorded version; the refit used "
            "its current content, so differences below are expected"
        )
        return located.current, f"the current content of {inputs.checks[0].uri}", [note]
    return None, "", ["the training set cannot be read: no refit"]


def _refit(lineage: TrainingLineage, table: pa.Table, validation: pa.Table | None) -> FittedModel:
    from mlops_provider.core.training.fit import fit_prepared, prepare_training

    config = _training_config(lineage)
    valid = validation.to_pandas() if validation is not None else None
    return fit_prepared(prepare_training(table.to_pandas(), config, valid))


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 500 else text[:497] + "..."


def _configuration_changes(
    run: Run, features: Mapping[str, Any] | None, fitted: FittedModel, lineage: TrainingLineage
) -> list[str]:
    """Recorded configuration (run params, ``training/features.json``, task) against the
    refit's: estimator parameters (a library whose defaults moved shows here), features."""
    params = run.data.params
    prepared = fitted.prepared
    out = []
    recorded = {k[len("estimator.") :]: v for k, v in params.items() if k.startswith("estimator.")}
    now = {k: _param_text(v) for k, v in prepared.estimator.get_params(deep=False).items()}
    for name in sorted(set(recorded) | set(now)):
        if recorded.get(name) != now.get(name):
            out.append(
                f"estimator parameter {name}: recorded {recorded.get(name)!r}, "
                f"refit {now.get(name)!r}"
            )
    if params.get("estimator") and params["estimator"] != prepared.estimator_path:
        out.append(f"estimator: recorded {params['estimator']}, refit {prepared.estimator_path}")
    task = lineage.config.get("task") or params.get("task")
    if task and task != prepared.task:
        out.append(f"task: recorded {task}, refit {prepared.task}")
    if features:
        for key in ("feature_columns", "numeric_columns", "categorical_columns"):
            mine = list(getattr(prepared.features, key))
            if key in features and list(features[key]) != mine:
                out.append(f"{key}: recorded {features[key]}, refit {mine}")
    return out


def _metric_checks(run: Run, fitted: FittedModel, tolerance: float) -> list[MetricCheck]:
    """Every metric the training logged (holdout under its name, training as ``train_*``)."""
    refit = {k: v for k, v in fitted.metrics.items()}
    refit.update({f"train_{k}": v for k, v in fitted.train_metrics.items()})
    recorded = run.data.metrics
    checks = []
    for name in sorted(set(refit) | {k for k in recorded if k.startswith("train_")}):
        was, now = recorded.get(name), refit.get(name)
        if was is None and (now is None or (isinstance(now, float) and math.isnan(now))):
            continue
        if was is None or now is None:
            checks.append(MetricCheck(name, was, now, None, False))
            continue
        diff = abs(float(now) - float(was))
        checks.append(MetricCheck(name, float(was), float(now), diff, diff <= tolerance))
    return checks


def _compare_predictions(
    expected: pa.Table, got: pa.Table, tolerance: float, against: str
) -> PredictionCheck:
    import numpy as np

    rows_e, rows_g = expected.column("row").to_pylist(), got.column("row").to_pylist()
    if rows_e != rows_g:
        missing = len(set(rows_e) - set(rows_g))
        note = (
            f"the holdout rows differ: {missing} of {len(rows_e)} recorded rows not in the refit's"
        )
        return PredictionCheck(against, len(rows_e), len(rows_e), None, False, note)
    differing = np.zeros(len(rows_e), dtype=bool)
    largest: float | None = None
    for name in expected.column_names:
        if name == "row":
            continue
        if name not in got.column_names:
            return PredictionCheck(against, len(rows_e), len(rows_e), None, False, f"no {name}")
        a = expected.column(name).to_numpy(zero_copy_only=False)
        b = got.column(name).to_numpy(zero_copy_only=False)
        if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
            delta = np.abs(a.astype("float64") - b.astype("float64"))
            largest = max(largest or 0.0, float(np.nanmax(delta)) if len(delta) else 0.0)
            differing |= delta > tolerance
        else:
            differing |= a != b
    count = int(differing.sum())
    return PredictionCheck(against, len(rows_e), count, largest, count == 0)


def _read_parquet_artifact(client: MlflowClient, run_id: str, path: str) -> pa.Table | None:
    import pyarrow.parquet as pq

    try:
        with tempfile.TemporaryDirectory() as tmp:
            return pq.read_table(client.download_artifacts(run_id, path, tmp))
    except Exception as err:  # runs trained before the predictions were recorded
        log.info("run %s has no %s: %s", run_id, path, err)
        return None


def _prediction_checks(
    client: MlflowClient,
    target: MlflowTarget,
    version: ModelVersion,
    fitted: FittedModel,
    tolerance: float,
) -> tuple[list[PredictionCheck], list[str]]:
    """The refit's holdout predictions against the recorded ones and against the registered
    (logged) model's on the same rows."""
    from mlops_provider.core import models
    from mlops_provider.core.mlflow_target import activated

    prepared = fitted.prepared
    mine = holdout_predictions(fitted.pipeline, prepared.x_holdout, fitted.task)
    checks, notes = [], []
    recorded = _read_parquet_artifact(client, str(version.run_id), HOLDOUT_PREDICTIONS_PATH)
    if recorded is not None:
        checks.append(
            _compare_predictions(recorded, mine, tolerance, "recorded holdout predictions")
        )
    else:
        notes.append(f"the run recorded no {HOLDOUT_PREDICTIONS_PATH}")
    try:
        with activated(target), models.opened(version, flavor="auto") as handle:
            model = handle.model
            theirs = holdout_predictions(model, prepared.x_holdout, fitted.task)
    except Exception as err:  # a model that cannot be loaded here is a finding, not a crash
        notes.append(f"the model {version.uri} cannot be loaded to compare: {err}")
        return checks, notes
    checks.append(_compare_predictions(theirs, mine, tolerance, f"model {version.uri}"))
    return checks, notes


# --------------------------------------------------------------------------- libraries


def _requirement_versions(target: MlflowTarget, model_uri: str) -> dict[str, str]:
    """``{package: version}`` of the ``==`` pins in the model's ``requirements.txt``."""
    import mlflow

    from mlops_provider.core.mlflow_target import activated
    from mlops_provider.core.models import no_progress_bars

    with tempfile.TemporaryDirectory() as tmp, activated(target), no_progress_bars():
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{model_uri.rstrip('/')}/requirements.txt", dst_path=tmp
        )
        lines = Path(path).read_text().splitlines()
    pins = {}
    for line in lines:
        name, sep, version = line.split(";")[0].strip().partition("==")
        if sep and name:
            pins[re.sub(r"\[.*\]", "", name).strip()] = version.strip()
    return pins


def _library_versions(
    target: MlflowTarget, model_uri: str
) -> tuple[list[dict[str, Any]], list[str]]:
    from importlib import metadata

    try:
        pins = _requirement_versions(target, model_uri)
    except Exception as err:  # a model without requirements.txt
        return [], [f"library versions not compared: no requirements of {model_uri} ({err})"]
    out = []
    for name, version in sorted(pins.items()):
        try:
            now: str | None = metadata.version(name)
        except metadata.PackageNotFoundError:
            now = None
        out.append({"package": name, "at_training": version, "now": now, "same": now == version})
    return out, []


# --------------------------------------------------------------------------- verdict


def _verdict(report: ReproduceReport) -> tuple[str, list[str]]:
    changed = [c.describe() for c in report.changed_inputs]
    rebuild = report.rebuild
    if rebuild is not None:
        changed += rebuild.changed_features
    if changed:
        return "inputs_changed", changed
    reasons = []
    if rebuild is not None and rebuild.status in ("differs", "failed"):
        reasons.append(rebuild.describe())
    reasons += report.configuration
    reasons += [f"metric {m.describe()}" for m in report.metrics if not m.matches]
    reasons += [f"predictions vs {p.describe()}" for p in report.predictions if not p.matches]
    if report.refit_error:
        reasons.append(f"no refit: {report.refit_error}")
    if reasons:
        differing = [
            f"{lib['package']} {lib['at_training']} -> {lib['now']}"
            for lib in report.libraries
            if not lib["same"]
        ]
        if differing:
            reasons.append("library versions differ from training: " + ", ".join(differing))
        return "mismatch", reasons
    return "reproduced", []


def reproduce(
    client_or_target: MlflowClient | MlflowTarget,
    model: str,
    *,
    conn_id: str | None = None,
    rebuild_training_set: bool = True,
    store: FeatureStore | None = None,
    tolerance: float = 1e-9,
) -> ReproduceReport:
    """Rebuild and refit a model from its training run's records and compare (module doc).

    :param client_or_target: the MLflow client or target holding the run and the registry.
    :param model: ``<name>/<version>``, ``<name>@<alias>``, a model URI or a training run id.
    :param conn_id: connection for the datasets (``aws_default`` for an ``s3://`` lake).
    :param rebuild_training_set: rebuild the training set through Feast when the entity data
        was recorded.
    :param store: the Feast store to rebuild with (default: the project's feature repo).
    :param tolerance: largest absolute difference of a metric or a predicted value that still
        counts as the same.
    :raises InputError: malformed model reference, or a run this provider did not train.
    :raises ModelNotFoundError: unknown model, version or run.
    """
    from mlops_provider.core import models

    client, target = _client_and_target(client_or_target)
    with models.no_progress_bars():
        return _reproduce(client, target, model, conn_id, rebuild_training_set, store, tolerance)


def _reproduce(
    client: MlflowClient,
    target: MlflowTarget,
    model: str,
    conn_id: str | None,
    rebuild_training_set: bool,
    store: FeatureStore | None,
    tolerance: float,
) -> ReproduceReport:
    from mlops_provider.core import models
    from mlops_provider.core.governance.record import read_training_lineage

    version = models.resolve(client, _model_uri(model))
    run = client.get_run(str(version.run_id))
    lineage = read_training_lineage(client, run.info.run_id)
    documented = lineage is not None
    notes = [] if documented else ["the run has no lineage document: read from its tags and params"]
    if lineage is None:
        lineage = _lineage_from_run(client, run)
    report = ReproduceReport(
        model=version.to_dict(),
        verdict="mismatch",
        reasons=[],
        tolerance=tolerance,
        lineage_source="lineage document" if documented else "run tags and params",
        notes=notes,
    )
    inputs = _check_inputs(lineage, run, conn_id, documented)
    report.inputs = inputs.checks
    report.rebuild = _rebuild(lineage, inputs, store, rebuild_training_set)
    _refit_and_compare(report, client, target, version, run, lineage, inputs)
    report.libraries, more = _library_versions(target, version.uri)
    report.notes += more
    report.verdict, report.reasons = _verdict(report)
    log.info("reproduce %s: %s", version.describe(), report.verdict)
    return report


def _refit_and_compare(
    report: ReproduceReport,
    client: MlflowClient,
    target: MlflowTarget,
    version: ModelVersion,
    run: Run,
    lineage: TrainingLineage,
    inputs: _Inputs,
) -> None:
    table, what, notes = _refit_data(inputs, report.rebuild)
    report.notes += notes
    if table is None:
        report.refit_error = "the training set cannot be read"
        return
    validation = inputs.validation.table if inputs.validation is not None else None
    if lineage.validation_data is not None and validation is None:
        report.refit_error = "the recorded validation set cannot be read"
        return
    try:
        fitted = _refit(lineage, table, validation)
    except Exception as err:  # a missing library or a changed input may make it impossible
        report.refit_error = f"the refit failed: {type(err).__name__}: {err}"
        return
    report.refit_on = what
    features = _download_json(client, run.info.run_id, "training/features.json")
    report.configuration = _configuration_changes(run, features, fitted, lineage)
    report.metrics = _metric_checks(run, fitted, report.tolerance)
    report.predictions, more = _prediction_checks(client, target, version, fitted, report.tolerance)
    report.notes += more


def _client_and_target(value: MlflowClient | MlflowTarget) -> tuple[MlflowClient, MlflowTarget]:
    from mlops_provider.core.mlflow_target import MlflowTarget, make_client

    if isinstance(value, MlflowTarget):
        return make_client(value), value
    registry = getattr(value, "_registry_uri", None)
    return value, MlflowTarget(tracking_uri=str(value.tracking_uri), registry_uri=registry)


# --------------------------------------------------------------------------- rendering


def _render(report: ReproduceReport) -> str:
    model = report.model
    name = (
        f"{model.get('name')} version {model.get('version')}"
        if model.get("version")
        else str(model.get("uri"))
    )
    lines = [
        f"Reproduce {name} (run {model.get('run_id')}): {report.verdict.upper()}",
        f"  record: {report.lineage_source}; tolerance {report.tolerance:g}",
    ]
    lines += [f"  - {r}" for r in report.reasons]
    lines.append("Inputs")
    width = max((len(c.status) for c in report.inputs), default=4)
    lines += [f"  {c.status:<{width}}  {c.describe()}" for c in report.inputs]
    if report.rebuild is not None:
        lines += ["Training set", f"  {report.rebuild.describe()}"]
    if report.refit_error:
        lines.append(f"No refit: {report.refit_error}")
    if report.refit_on:
        lines.append(f"Refit on {report.refit_on}")
        lines += [f"  configuration differs: {c}" for c in report.configuration]
        lines.append("Metrics")
        for m in report.metrics:
            mark = "same" if m.matches else "DIFF"
            lines.append(f"  {mark:<4}  {m.describe()}")
        lines.append("Predictions on the holdout")
        for p in report.predictions:
            lines.append(f"  {'same' if p.matches else 'DIFF':<4}  {p.describe()}")
    if report.libraries:
        lines.append("Libraries (model requirements at training -> installed now)")
        for lib in report.libraries:
            mark = "same" if lib["same"] else "DIFF"
            lines.append(f"  {mark:<4}  {lib['package']} {lib['at_training']} -> {lib['now']}")
    if report.notes:
        lines.append("Notes")
        lines += [f"  {n}" for n in report.notes]
    return "\n".join(lines)
