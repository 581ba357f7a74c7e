"""Training tracked in MLflow: :func:`train_and_log`.

resolve (read and validate the data and the estimator, fingerprint them; no MLflow call yet)
-> reach the tracking store and settle the runs of earlier tries (:mod:`mlops_provider.core.runs`)
-> fit (:func:`~.fit.fit_prepared`) -> publish (one run: params, dataset inputs, the monitoring
reference profile, the model, metrics, ``training/summary.json``).

Rerun and crash safety: runs carry a deterministic ``mlops.task_key`` tag (the operator passes
``RunIdentity.work_key``: ``dag_id/task_id/map_index/<data interval>``, the same for every try
and every DAG run of one data interval) and the writing process (``mlops.owner``). Before
training, runs of the same key are looked up: a RUNNING one left by an attempt that is gone
(:func:`mlops_provider.core.runs.settle_running`: its owner is dead, or unknown and older than
``stale_after``) is marked FAILED with ``mlops.closed_reason``; a RUNNING one whose writer may
still work refuses this attempt (:class:`TrainingInProgressError`); a FINISHED one with the same
fingerprint (same data digest and configuration) is reused without retraining. A try that fails
after creating its run marks that run FAILED. When a new run finishes, older runs of the key are
tagged ``mlops.superseded_by`` and a FINISHED older run loses its task-key tag, so each key has
exactly one FINISHED run.

Crash points (:data:`POINTS`, :func:`mlops_provider.core.failpoints.failpoint`) let recovery
tests kill the process between these steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_provider.core import io, runs
from mlops_provider.core.failpoints import failpoint
from mlops_provider.core.models import ENTITY_COLUMNS_TAG, FEATURE_REFS_TAG, TARGET_TAG
from mlops_provider.core.results import make_result
from mlops_provider.core.training.config import (
    DEFAULT_EXPERIMENT,
    TrackingUnavailableError,
    TrainingConfig,
    TrainingInProgressError,
    TrainingInputError,
)
from mlops_provider.core.training.fit import (
    FittedModel,
    PreparedTraining,
    fit_prepared,
    prepare_training,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.models.model import ModelInfo

    from mlops_provider.core.mlflow_target import MlflowTarget

__all__ = [
    "MODEL_ARTIFACT",
    "POINTS",
    "REFERENCE_PROFILE_PATH",
    "SUMMARY_PATH",
    "TASK_KEY_TAG",
    "TrainingResult",
    "train_and_log",
]

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
REFERENCE_PROFILE_PATH = "monitoring/reference_profile.json"
FEATURES_PATH = "training/features.json"
SUMMARY_PATH = "training/summary.json"
TASK_KEY_TAG = "mlops.task_key"
SUPERSEDED_BY_TAG = "mlops.superseded_by"

#: The crash points of :func:`train_and_log`, in order (``MLOPS_KILL_AT``): earlier runs of the
#: key settled; the new run created; the model logged; the summary logged (the run still
#: RUNNING); the run FINISHED (older runs not yet superseded); about to return.
POINTS = (
    "training.settled",
    "training.run_created",
    "training.model_logged",
    "training.summary_logged",
    "training.run_finished",
    "training.done",
)


@dataclass
class TrainingResult:
    """What a training run produced; ``to_dict()`` is the operator's result (docs/results.md)."""

    run_id: str
    experiment_id: str
    experiment_name: str
    model_uri: str
    model_id: str
    task: str
    target: str
    estimator: str
    metrics: dict[str, float | None]
    train_metrics: dict[str, float | None]
    feature_columns: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]
    training_rows: int
    holdout_rows: int
    dataset_digest: str
    dataset_source: str
    fingerprint: str
    tracking_uri: str
    reused: bool = False
    reused_from: str | None = None

    @property
    def run_model_uri(self) -> str:
        return f"runs:/{self.run_id}/{MODEL_ARTIFACT}"

    @property
    def reference_profile_uri(self) -> str:
        return f"runs:/{self.run_id}/{REFERENCE_PROFILE_PATH}"

    @property
    def status(self) -> str:
        """``trained``, or ``reused`` (the finished run of an earlier try or DAG run of the
        same data interval; ``reused_from`` is its run id)."""
        return "reused" if self.reused else "trained"

    def to_dict(self) -> dict[str, Any]:
        """Common result keys (the model is the logged model, not registered), then the
        training details."""
        reasons = (
            [
                f"run {self.reused_from or self.run_id} of an earlier attempt for this work "
                "had the same data and configuration"
            ]
            if self.reused
            else []
        )
        model = {"name": None, "version": None, "run_id": self.run_id, "uri": self.model_uri}
        return make_result(
            status=self.status,
            passed=True,
            reasons=reasons,
            model=model,
            mlflow_run_id=self.run_id,
            rows=self.training_rows,
            mlflow_experiment_id=self.experiment_id,
            problem_type=self.task,
            run_model_uri=self.run_model_uri,
            reference_profile_uri=self.reference_profile_uri,
            **asdict(self),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> TrainingResult:
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in names}
        values.update(overrides)
        return cls(**values)


# --------------------------------------------------------------------------- resolve


@dataclass
class _Inputs:
    """The validated inputs of one training and their fingerprint."""

    training_data: str
    validation_data: str | None
    frame: pd.DataFrame
    valid_frame: pd.DataFrame | None
    prepared: PreparedTraining
    feature_refs: list[str]
    fingerprint: str
    digests: dict[str, str | None]


def _read(uri: str, conn_id: str | None, what: str) -> pa.Table:
    try:
        return io.read_table(uri, conn_id=conn_id)
    except io.DatasetError as err:
        raise TrainingInputError(f"{what}: {err}") from err


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 500 else text[:497] + "..."


def _estimator_params(prepared: PreparedTraining) -> dict[str, str]:
    return {k: _param_value(v) for k, v in prepared.estimator.get_params(deep=False).items()}


def _fingerprint(
    digests: Mapping[str, str | None], prepared: PreparedTraining, feature_refs: list[str]
) -> str:
    """A digest of everything that decides the model: data, estimator, features, split."""
    config = prepared.config
    parts = {
        "data": digests["training"],
        "validation": digests["validation"],
        "estimator": prepared.estimator_path,
        "params": _estimator_params(prepared),
        "features": asdict(prepared.features),
        "pipeline": prepared.pipeline_params,
        "target": config.target,
        "task": prepared.task,
        "test_size": config.test_size,
        "random_state": config.random_state,
        "feature_refs": feature_refs,
    }
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _inputs(
    training_data: str,
    validation_data: str | None,
    config: TrainingConfig,
    conn_id: str | None,
    feature_refs: Sequence[str] | None,
) -> _Inputs:
    table = _read(training_data, conn_id, "training data")
    if table.num_rows == 0:
        raise TrainingInputError(f"training data {training_data} has no rows")
    valid = _read(validation_data, conn_id, "validation data") if validation_data else None
    frame = table.to_pandas()
    valid_frame = valid.to_pandas() if valid is not None else None
    prepared = prepare_training(frame, config, valid_frame)
    refs = [str(r) for r in (feature_refs or [])]
    digests = {
        "training": io.table_digest(table),
        "validation": io.table_digest(valid) if valid is not None else None,
    }
    fingerprint = _fingerprint(digests, prepared, refs)
    return _Inputs(
        str(training_data),
        validation_data,
        frame,
        valid_frame,
        prepared,
        refs,
        fingerprint,
        digests,
    )


# --------------------------------------------------------------------------- the run ledger


def _reach(target: MlflowTarget, experiment_name: str) -> tuple[MlflowClient, str]:
    """A client and the experiment id (created if missing).

    :raises TrackingUnavailableError: the tracking store does not answer.
    """
    from mlops_provider.core.mlflow_target import check_reachable, ensure_experiment, make_client

    client = make_client(target)
    ok, message = check_reachable(target, client)
    if not ok:
        raise TrackingUnavailableError(message)
    return client, ensure_experiment(client, experiment_name, target.artifact_location)


def _load_summary(client: MlflowClient, run_id: str) -> dict[str, Any] | None:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, SUMMARY_PATH, tmp)
            return dict(json.loads(Path(path).read_text()))
    except Exception as err:  # a run without the summary is not reusable
        log.info("run %s has no readable %s: %s", run_id, SUMMARY_PATH, err)
        return None


def _reusable(
    client: MlflowClient, previous: Sequence[Run], fingerprint: str
) -> TrainingResult | None:
    """The result of a FINISHED earlier run with the same fingerprint, if there is one."""
    for run in previous:
        if run.info.status == "FINISHED" and run.data.tags.get("mlops.fingerprint") == fingerprint:
            summary = _load_summary(client, run.info.run_id)
            if summary is not None:
                return TrainingResult.from_dict(summary, reused=True, reused_from=run.info.run_id)
    return None


def _settle(
    client: MlflowClient, previous: Sequence[Run], task_key: str, stale_after: float
) -> None:
    """Close the RUNNING runs of ``task_key`` left by attempts that are gone.

    :raises TrainingInProgressError: a RUNNING run whose writer may still work on it.
    """
    settled = runs.settle_running(client, previous, stale_after=stale_after)
    if settled.active:
        run = settled.active[0]
        owner = run.data.tags.get(runs.OWNER_TAG) or "unknown"
        raise TrainingInProgressError(
            f"run {run.info.run_id} of {task_key} is RUNNING and its writer (owner {owner}) "
            f"may still be training it; it counts as abandoned once that process is gone "
            f"(or, on another host, {stale_after / 3600:g} h after its start)"
        )


def _supersede(client: MlflowClient, experiment_id: str, new_run_id: str, key: str) -> None:
    """Older runs of the key point at the new one; a FINISHED one gives up the key.

    The runs are looked up again (not the list read before training): a concurrent attempt
    for the same key that finished meanwhile is superseded too, so the attempt finishing last
    holds the key. A run still RUNNING (a concurrent attempt) is not touched.
    """
    for run in runs.find_runs(client, experiment_id, {TASK_KEY_TAG: key}):
        run_id, status = run.info.run_id, run.info.status
        if run_id == new_run_id or status == "RUNNING":
            continue
        if status != "FINISHED" and run.data.tags.get(SUPERSEDED_BY_TAG) == new_run_id:
            continue  # settled by an earlier rerun already
        client.set_tag(run_id, SUPERSEDED_BY_TAG, new_run_id)
        if status == "FINISHED":
            client.set_tag(run_id, "mlops.superseded_task_key", key)
            client.delete_tag(run_id, TASK_KEY_TAG)


# --------------------------------------------------------------------------- publish


def _serialization(pipeline: Any) -> dict[str, Any]:
    """``log_model`` arguments for the safe skops format, trusting the types of our own model.

    skops refuses to load types outside its allow-list (``numpy.dtype`` is referenced by the
    encoders); the list of types this freshly fitted pipeline uses is recorded in the model's
    flavor configuration so loading it later works. Models skops cannot serialize (custom code
    in a factory) fall back to cloudpickle.
    """
    import mlflow.sklearn

    from mlops_provider.core.models import import_skops

    try:
        skops_io = import_skops()
        trusted = list(skops_io.get_untrusted_types(data=skops_io.dumps(pipeline)))
    except Exception as err:  # skops cannot represent the model: pickle it instead
        log.warning("model cannot be saved with skops (%s); using cloudpickle", err)
        return {"serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE}
    return {
        "serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        "skops_trusted_types": trusted or None,
    }


def _pip_requirements(estimator: Any, serialization_format: str) -> list[str]:
    """Pinned requirements without MLflow's slow import-tracing inference."""
    from importlib import metadata

    import mlflow.sklearn

    requirements = list(
        mlflow.sklearn.get_default_pip_requirements(
            include_cloudpickle=serialization_format == "cloudpickle",
            include_skops=serialization_format == "skops",
        )
    )
    package = type(estimator).__module__.split(".", 1)[0]
    if package not in ("sklearn", "builtins", "__main__"):
        for dist in metadata.packages_distributions().get(package, []):
            try:
                requirements.append(f"{dist}=={metadata.version(dist)}")
            except metadata.PackageNotFoundError:
                pass
    return requirements


def _run_tags(
    inputs: _Inputs, tags: Mapping[str, Any] | None, task_key: str | None
) -> dict[str, str]:
    from mlops_provider import __version__
    from mlops_provider.core.processes import this_owner

    prepared = inputs.prepared
    out = {
        **{k: str(v) for k, v in (tags or {}).items() if v is not None},
        "mlops.provider_version": __version__,
        TARGET_TAG: prepared.config.target,
        "mlops.task": prepared.task,
        "mlops.estimator": prepared.estimator_path,
        "mlops.training_data": inputs.training_data,
        "mlops.fingerprint": inputs.fingerprint,
        FEATURE_REFS_TAG: json.dumps(inputs.feature_refs),
    }
    if prepared.config.entity_columns:
        # monitoring joins predictions with labels on these (core.monitoring.reference)
        out[ENTITY_COLUMNS_TAG] = json.dumps([str(c) for c in prepared.config.entity_columns])
    if task_key:
        out[TASK_KEY_TAG] = task_key
    out[runs.OWNER_TAG] = this_owner()
    return out


def _params(inputs: _Inputs) -> dict[str, Any]:
    prepared, config = inputs.prepared, inputs.prepared.config
    params = {
        "estimator": prepared.estimator_path,
        "task": prepared.task,
        "target": config.target,
        "holdout": prepared.holdout,
        "test_size": config.test_size if prepared.holdout == "split" else "",
        "random_state": config.random_state,
        "validation_data": inputs.validation_data or "",
        **config.pipeline_params,
        "n_features": len(prepared.features.feature_columns),
        "training_rows": len(prepared.x_train),
        "holdout_rows": len(prepared.x_holdout),
    }
    params.update({f"estimator.{k}": v for k, v in _estimator_params(prepared).items()})
    return {k: "" if v is None else v for k, v in params.items()}


def _log_datasets(inputs: _Inputs) -> str:
    """The training (and validation) data as MLflow dataset inputs; returns the digest."""
    import mlflow
    import mlflow.data

    target = inputs.prepared.config.target
    with warnings.catch_warnings():  # schema hints about int columns, source guessing
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            inputs.frame,
            source=inputs.training_data,
            name=io.dataset_name(inputs.training_data),
            targets=target,
        )
        mlflow.log_input(dataset, context="training")
        if inputs.valid_frame is not None and inputs.validation_data:
            validation = mlflow.data.from_pandas(
                inputs.valid_frame,
                source=str(inputs.validation_data),
                name=io.dataset_name(inputs.validation_data),
                targets=target,
            )
            mlflow.log_input(validation, context="validation")
    return str(dataset.digest)


def _profile(inputs: _Inputs, run_id: str, digest: str) -> str:
    """The monitoring reference profile of the training features (JSON)."""
    from mlops_provider.core.profile import ReferenceProfile
    from mlops_provider.core.times import utcnow

    prepared = inputs.prepared
    features = prepared.features
    profile = ReferenceProfile.from_data(
        prepared.data,
        columns=features.feature_columns,
        numeric_columns=features.numeric_columns,
        categorical_columns=features.categorical_columns,
        metadata={
            "run_id": run_id,
            "source": inputs.training_data,
            "dataset_digest": digest,
            "target": prepared.config.target,
            "task": prepared.task,
            "created_at": utcnow().isoformat(timespec="seconds"),
        },
    )
    return profile.to_json()


def _lineage(inputs: _Inputs, extra: Mapping[str, Any] | None) -> str:
    """The run's lineage document (:mod:`mlops_provider.core.governance.record`): what this
    function knows (datasets and digests, configuration, feature references, provider version),
    completed by the caller's ``extra`` (windows, feature views, code, trigger)."""
    from mlops_provider import __version__
    from mlops_provider.core.governance.record import DatasetRef, TrainingLineage

    prepared = inputs.prepared
    config = prepared.config
    validation = None
    if inputs.validation_data and inputs.valid_frame is not None:
        validation = DatasetRef(
            inputs.validation_data, inputs.digests["validation"], len(inputs.valid_frame)
        )
    lineage = TrainingLineage(
        training_data=DatasetRef(
            inputs.training_data, inputs.digests["training"], len(inputs.frame)
        ),
        validation_data=validation,
        config={
            **{k: v for k, v in asdict(config).items() if k != "estimator"},
            "estimator": prepared.estimator_path,
            "task": prepared.task,
            "fingerprint": inputs.fingerprint,
        },
        feature_refs=list(inputs.feature_refs),
        code={"provider_version": __version__},
    )
    return lineage.merged(extra).to_json()


def _check_lineage(lineage: Mapping[str, Any]) -> None:
    """Reject an unknown or malformed lineage field before anything is read or logged."""
    from mlops_provider.core.governance.record import DatasetRef, TrainingLineage

    try:
        TrainingLineage(training_data=DatasetRef("-")).merged(lineage)
    except (ValueError, TypeError, KeyError) as err:
        raise TrainingInputError(f"lineage: {err}") from err


def _log_holdout_predictions(client: MlflowClient, run_id: str, fitted: FittedModel) -> None:
    """The model's predictions on its holdout rows, which a reproduction compares a refit with
    (:data:`~mlops_provider.core.governance.reproduce.HOLDOUT_PREDICTIONS_PATH`)."""
    import pyarrow.parquet as pq

    from mlops_provider.core.governance.reproduce import (
        HOLDOUT_PREDICTIONS_PATH,
        holdout_predictions,
    )

    prepared = fitted.prepared
    table = holdout_predictions(fitted.pipeline, prepared.x_holdout, prepared.task)
    folder, _, name = HOLDOUT_PREDICTIONS_PATH.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(table, Path(tmp) / name)
        client.log_artifact(run_id, str(Path(tmp) / name), folder)


def _log_model(fitted: FittedModel, pip_requirements: Sequence[str] | None) -> ModelInfo:
    """The Pipeline with its signature and input example (integer columns declared as doubles:
    a scoring batch may hold missing values)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = fitted.prepared.x_train.head(5)
    example = example.astype(
        {c: "float64" for c in example.columns if pd.api.types.is_integer_dtype(example[c])}
    )
    serialization = _serialization(fitted.pipeline)
    requirements = pip_requirements or _pip_requirements(
        fitted.prepared.estimator, serialization["serialization_format"]
    )
    return mlflow.sklearn.log_model(
        fitted.pipeline,
        name=MODEL_ARTIFACT,
        signature=infer_signature(example, fitted.pipeline.predict(example)),
        input_example=example,
        pip_requirements=list(requirements),
        **serialization,
    )


def _log_metrics(fitted: FittedModel, model_id: str) -> None:
    """Holdout metrics under plain names, training metrics as ``train_*``, linked to the model."""
    import mlflow

    metrics = {k: v for k, v in fitted.metrics.items() if v is not None}
    metrics.update({f"train_{k}": v for k, v in fitted.train_metrics.items() if v is not None})
    mlflow.log_metrics(metrics, model_id=model_id)


def _result(
    inputs: _Inputs,
    fitted: FittedModel,
    run: Run,
    info: ModelInfo,
    digest: str,
    *,
    experiment_name: str,
    tracking_uri: str,
) -> TrainingResult:
    prepared, features = inputs.prepared, inputs.prepared.features
    return TrainingResult(
        run_id=run.info.run_id,
        experiment_id=str(run.info.experiment_id),
        model_uri=info.model_uri,
        model_id=str(info.model_id),
        task=prepared.task,
        target=prepared.config.target,
        estimator=prepared.estimator_path,
        metrics=fitted.metrics,
        train_metrics=fitted.train_metrics,
        feature_columns=features.feature_columns,
        numeric_columns=features.numeric_columns,
        categorical_columns=features.categorical_columns,
        training_rows=len(prepared.x_train),
        holdout_rows=len(prepared.x_holdout),
        dataset_digest=digest,
        dataset_source=inputs.training_data,
        fingerprint=inputs.fingerprint,
        experiment_name=experiment_name,
        tracking_uri=tracking_uri,
    )


def _publish(
    target: MlflowTarget,
    client: MlflowClient,
    run: Run,
    inputs: _Inputs,
    fitted: FittedModel,
    *,
    experiment_name: str,
    pip_requirements: Sequence[str] | None,
    lineage: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """Log everything on the (new) run; a failure marks it FAILED before raising."""
    import mlflow

    from mlops_provider.core.governance.record import LINEAGE_ARTIFACT
    from mlops_provider.core.mlflow_target import activated

    run_id = run.info.run_id
    features = {**asdict(inputs.prepared.features), "target": fitted.prepared.config.target}
    try:
        with activated(target), mlflow.start_run(run_id=run_id):
            runs.log_results(client, run_id, params=_params(inputs))
            digest = _log_datasets(inputs)
            texts = {
                FEATURES_PATH: json.dumps({**features, "task": fitted.task}, indent=2),
                REFERENCE_PROFILE_PATH: _profile(inputs, run_id, digest),
                LINEAGE_ARTIFACT: _lineage(inputs, lineage),
            }
            runs.log_results(client, run_id, texts=texts)
            _log_holdout_predictions(client, run_id, fitted)
            info = _log_model(fitted, pip_requirements)
            failpoint("training.model_logged")
            _log_metrics(fitted, str(info.model_id))
            result = _result(
                inputs,
                fitted,
                run,
                info,
                digest,
                experiment_name=experiment_name,
                tracking_uri=target.tracking_uri,
            )
            summary = json.dumps(result.to_dict(), indent=2, default=str)
            runs.log_results(
                client,
                run_id,
                tags={"mlops.model_id": info.model_id},
                texts={SUMMARY_PATH: summary},
            )
            failpoint("training.summary_logged")
    except BaseException:
        runs.fail_run(client, run_id, why="this try failed")
        raise
    return result


def _earlier_runs(
    client: MlflowClient, experiment_id: str, task_key: str | None, stale_after: float
) -> list[Run]:
    """The runs of ``task_key`` (newest first), the abandoned RUNNING ones closed."""
    if not task_key:
        return []
    previous = runs.find_runs(client, experiment_id, {TASK_KEY_TAG: task_key})
    _settle(client, previous, task_key, stale_after)
    failpoint("training.settled")
    return previous


def train_and_log(
    target: MlflowTarget,
    training_data: str,
    config: TrainingConfig,
    *,
    experiment_name: str = DEFAULT_EXPERIMENT,
    task_key: str | None = None,
    tags: Mapping[str, str] | None = None,
    validation_data: str | None = None,
    conn_id: str | None = None,
    feature_refs: Sequence[str] | None = None,
    run_name: str | None = None,
    pip_requirements: Sequence[str] | None = None,
    lineage: Mapping[str, Any] | None = None,
    stale_after: float = runs.DEFAULT_STALE_AFTER,
) -> TrainingResult:
    """Train on ``training_data`` and log params, metrics, dataset, profile and model to MLflow.

    Order: read and validate the data and the estimator (no MLflow call yet) -> reach the
    tracking store -> settle runs of earlier attempts of ``task_key`` (close abandoned RUNNING
    ones, reuse a FINISHED one with the same fingerprint) -> fit -> create the run and log
    everything -> older runs of the key are superseded.

    :param task_key: the identity of the work across retries and reruns
        (``RunIdentity.work_key``: one per data interval).
    :param tags: extra run tags (the Airflow lineage).
    :param lineage: fields of the run's lineage document
        (:class:`~mlops_provider.core.governance.TrainingLineage`) the caller knows: entity and
        evaluation data, label window, feature views, source partitions, code, trigger. The
        datasets read here, their digests and the configuration are recorded in any case.
    :param stale_after: seconds after its start at which a RUNNING run of ``task_key`` whose
        writer cannot be checked (another host) counts as abandoned
        (:func:`mlops_provider.core.runs.stale_reason`).
    :raises TrainingInputError: bad data, estimator or configuration (nothing was logged).
    :raises InputError: an unknown ``problem_type`` (nothing was logged).
    :raises TrackingUnavailableError: the tracking store does not answer.
    :raises TrainingInProgressError: another attempt may still be training ``task_key``.
    """
    if lineage:
        _check_lineage(lineage)
    inputs = _inputs(training_data, validation_data, config, conn_id, feature_refs)
    client, experiment_id = _reach(target, experiment_name)
    previous = _earlier_runs(client, experiment_id, task_key, stale_after)
    reused = _reusable(client, previous, inputs.fingerprint)
    if reused is not None:
        log.info(
            "reusing run %s of an earlier attempt (same data and configuration)", reused.run_id
        )
        if task_key:
            _supersede(client, experiment_id, reused.run_id, task_key)
        failpoint("training.done")
        return reused
    fitted = fit_prepared(inputs.prepared)
    run = client.create_run(
        experiment_id, run_name=run_name, tags=_run_tags(inputs, tags, task_key)
    )
    log.info(
        "MLflow run %s created in experiment %s (%s)",
        run.info.run_id,
        experiment_name,
        experiment_id,
    )
    failpoint("training.run_created")
    runs.run_started(run.info.run_id, experiment_id)
    result = _publish(
        target,
        client,
        run,
        inputs,
        fitted,
        experiment_name=experiment_name,
        pip_requirements=pip_requirements,
        lineage=lineage,
    )
    failpoint("training.run_finished")
    if task_key:
        _supersede(client, experiment_id, result.run_id, task_key)
    log.info("run %s finished: %s", result.run_id, fitted.metrics)
    failpoint("training.done")
    return result
