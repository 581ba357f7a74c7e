"""Batch scoring: stream a dataset through a registered model into an atomic partition.

The flow of :func:`score`:

1. parse the model URI (``models:/<name>@<alias>``, ``models:/<name>/<version>``,
   ``runs:/<run_id>/<path>`` or ``models:/<model_id>``) and resolve it ONCE to a concrete model
   (an alias becomes ``models:/<name>/<version>``); nothing reads the alias again, so moving it
   during the run changes nothing for this run;
2. inspect the input without reading it (parquet footers of every file: row counts, schemas)
   and check it against the model's signature: a missing or mistyped column is an error that
   names the column and, for a file among many, the file;
3. download the model once and load the native scikit-learn flavor when there is one (so
   ``predict_proba`` is available and no pyfunc/pandas schema enforcement runs per batch),
   the pyfunc flavor otherwise;
4. stream record batches (bounded memory), predict each (classifiers: ``predict_proba`` once,
   the prediction is the arg-max class), and write the rows through :class:`io.PartitionWriter`:
   the partition appears atomically when everything succeeded, never partially.

Output columns: the entity id columns, any pass-through columns, ``prediction``, for
classifiers ``probability`` (binary: probability of ``classes_[1]``) or one
``probability_<class>`` column per class (multiclass), then ``model_name``, ``model_version``,
``model_run_id`` and ``scored_at`` (UTC, the same for the whole run).

Sharding (scale-out): :func:`list_shards` splits an input into files or partitions,
:func:`plan_scoring` resolves the model once for all shards and counts the rows to expect,
each shard is scored into ``<day partition>/shard=<nnnnn>`` (:func:`shard_uri`), and
:func:`verify_scoring` checks the shards against the plan and commits the day's ``_SUCCESS``.

Errors are :class:`ScoringInputError` (a ``ValueError``); operators turn them into
``ScoringError``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_provider.core import io
from mlops_provider.core.errors import InputError
from mlops_provider.core.mlflow_target import MlflowTarget, activated, make_client

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_ENTITY_COLUMNS",
    "RESERVED_COLUMNS",
    "ScoringInputError",
    "ModelReference",
    "ResolvedModel",
    "InputColumn",
    "LoadedModel",
    "InputInfo",
    "ScoringResult",
    "parse_model_uri",
    "resolve_model",
    "open_model",
    "inspect_input",
    "check_input_schema",
    "score",
    "score_batches",
    "stream_parquet",
    "historical_features",
    "list_shards",
    "shard_name",
    "shard_uri",
    "plan_scoring",
    "verify_scoring",
]

#: Rows per prediction call. 128Ki rows amortise the fixed per-call cost of a scikit-learn
#: pipeline (column selection, validation: ~1 ms per step) to well under 1% while keeping the
#: working set of one batch (Arrow input + pandas copy + transformed matrix + predictions) at
#: a few tens of MB for a dozen features, so the peak memory does not depend on the input size.
DEFAULT_BATCH_SIZE = 131_072
DEFAULT_ENTITY_COLUMNS: tuple[str, ...] = ("customer_id",)
MODEL_COLUMNS = ("model_name", "model_version", "model_run_id", "scored_at")
RESERVED_COLUMNS = ("prediction", "probability", *MODEL_COLUMNS)
SHARD_KEY = "shard"
_SUCCESS = "_SUCCESS"


class ScoringInputError(InputError):
    """Scoring cannot run: bad model URI, unknown model or alias, input that does not match the
    model, unreadable input, or an output location that cannot be written. The message names
    the problem (column, file, model, alias)."""


# ==========================================================================================
# Model URIs and resolution
# ==========================================================================================
_NAME = r"[^/@\s][^/@]*"
_ALIAS_RE = re.compile(rf"^models:/(?P<name>{_NAME})@(?P<alias>[A-Za-z0-9_\-]+)$")
_VERSION_RE = re.compile(rf"^models:/(?P<name>{_NAME})/(?P<version>[^/@]+)$")
_LOGGED_RE = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]{8,})$")
_RUN_RE = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]{8,})/(?P<path>[^\s].*)$")
_FORMS = (
    "models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/<artifact_path> "
    "or models:/<model_id>"
)


@dataclass(frozen=True)
class ModelReference:
    """A parsed model URI (nothing resolved yet)."""

    uri: str
    kind: Literal["alias", "version", "run", "logged_model"]
    name: str | None = None
    alias: str | None = None
    version: str | None = None
    run_id: str | None = None
    artifact_path: str | None = None
    model_id: str | None = None


def parse_model_uri(uri: Any) -> ModelReference:
    """Parse a model URI; raise :class:`ScoringInputError` naming the accepted forms."""
    if not isinstance(uri, str) or not uri.strip():
        raise ScoringInputError(f"model_uri must be a non-empty string ({_FORMS}), got {uri!r}")
    text = uri.strip()
    if match := _LOGGED_RE.match(text):
        return ModelReference(text, "logged_model", model_id=match["model_id"])
    if match := _ALIAS_RE.match(text):
        return ModelReference(text, "alias", name=match["name"], alias=match["alias"])
    if match := _VERSION_RE.match(text):
        version = match["version"]
        if not version.isdigit() or int(version) < 1:
            hint = (
                " (registry stages are not supported; use an alias: models:/<name>@<alias>)"
                if version.lower() in ("production", "staging", "archived", "none", "latest")
                else ""
            )
            raise ScoringInputError(
                f"malformed model URI {text!r}: version {version!r} is not a positive "
                f"integer{hint}; expected {_FORMS}"
            )
        return ModelReference(text, "version", name=match["name"], version=str(int(version)))
    if match := _RUN_RE.match(text):
        path = match["path"].strip("/")
        if path:
            return ModelReference(text, "run", run_id=match["run_id"], artifact_path=path)
    raise ScoringInputError(f"malformed model URI {text!r}: expected {_FORMS}")


@dataclass(frozen=True)
class ResolvedModel:
    """A model URI resolved to one concrete model: the identity every output row carries.

    :param uri: the concrete URI that is loaded (``models:/<name>/<version>`` for registry URIs,
        so an alias is never read again).
    :param requested_uri: the URI as given (e.g. ``models:/churn@champion``).
    :param name: registered model name (``None`` for ``runs:/`` and logged-model URIs).
    :param version: registered model version as a string (``None`` likewise).
    :param run_id: the MLflow run that produced the model.
    :param alias: the alias that was resolved, if any.
    """

    uri: str
    requested_uri: str
    name: str | None
    version: str | None
    run_id: str | None
    alias: str | None = None

    def describe(self) -> str:
        if self.name:
            via = f", resolved from {self.requested_uri}" if self.alias else ""
            return f"model {self.name} version {self.version} (run {self.run_id}{via})"
        return f"model {self.uri} (run {self.run_id})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_uri": self.uri,
            "requested_model_uri": self.requested_uri,
            "model_name": self.name,
            "model_version": self.version,
            "model_run_id": self.run_id,
            "model_alias": self.alias,
        }


def _not_found(err: Exception) -> bool:
    code = getattr(err, "error_code", "") or ""
    return "RESOURCE_DOES_NOT_EXIST" in str(code) or "not found" in str(err).lower()


def _registered_model_or_error(client: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if _not_found(err):
            raise ScoringInputError(f"registered model {name!r} does not exist") from err
        raise


def resolve_model(model_uri: str | ModelReference, client: MlflowClient) -> ResolvedModel:
    """Resolve a model URI to a concrete model (alias -> version), once.

    :raises ScoringInputError: malformed URI, unknown model/version/run, missing alias, or a
        version that is not ``READY``.
    """
    from mlflow.exceptions import MlflowException

    ref = model_uri if isinstance(model_uri, ModelReference) else parse_model_uri(model_uri)
    if ref.kind == "run":
        assert ref.run_id is not None
        try:
            run = client.get_run(ref.run_id)
        except MlflowException as err:
            if _not_found(err):
                raise ScoringInputError(
                    f"model URI {ref.uri!r}: run {ref.run_id} does not exist"
                ) from err
            raise
        return ResolvedModel(ref.uri, ref.uri, None, None, run.info.run_id)
    if ref.kind == "logged_model":
        assert ref.model_id is not None
        try:
            logged = client.get_logged_model(ref.model_id)
        except MlflowException as err:
            if _not_found(err):
                raise ScoringInputError(
                    f"model URI {ref.uri!r}: logged model {ref.model_id} does not exist"
                ) from err
            raise
        return ResolvedModel(ref.uri, ref.uri, None, None, logged.source_run_id)

    assert ref.name is not None
    if ref.kind == "alias":
        assert ref.alias is not None
        try:
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
        except MlflowException as err:
            if not _not_found(err):
                raise
            registered = _registered_model_or_error(client, ref.name)
            aliases = dict(getattr(registered, "aliases", {}) or {})
            known = ", ".join(f"@{a} -> version {v}" for a, v in sorted(aliases.items())) or "none"
            raise ScoringInputError(
                f"registered model {ref.name!r} has no alias {ref.alias!r} "
                f"(its aliases: {known}); promote a version first or pass models:/<name>/<v>"
            ) from err
    else:
        try:
            mv = client.get_model_version(ref.name, str(ref.version))
        except MlflowException as err:
            if not _not_found(err):
                raise
            _registered_model_or_error(client, ref.name)
            raise ScoringInputError(
                f"registered model {ref.name!r} has no version {ref.version}"
            ) from err
    status = str(getattr(mv, "status", "READY") or "READY")
    if status != "READY":
        raise ScoringInputError(
            f"model {ref.name!r} version {mv.version} is not ready to load (status {status})"
        )
    version = str(mv.version)
    return ResolvedModel(
        uri=f"models:/{ref.name}/{version}",
        requested_uri=ref.uri,
        name=ref.name,
        version=version,
        run_id=mv.run_id or None,
        alias=ref.alias,
    )


# ==========================================================================================
# Model loading and the input contract
# ==========================================================================================
@dataclass(frozen=True)
class InputColumn:
    """One model input column: its name, MLflow type name (``None`` = unknown) and whether
    it is required."""

    name: str
    type: str | None = None
    required: bool = True


# MLflow column type -> (Arrow type to feed the model, predicate accepting an input type)
def _is_integer(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t))


def _is_integer_or_float(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def _is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _is_bytes(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is_text(t))


def _is_time(t: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


_TYPE_RULES: dict[str, tuple[pa.DataType | None, Callable[[pa.DataType], bool]]] = {
    "double": (pa.float64(), _is_number),
    "float": (pa.float32(), _is_number),
    # integer features may arrive as floating point (an integer column with nulls after a
    # pandas round trip, e.g. from Feast's file offline store): accepted and fed as float64,
    # which is what scikit-learn computes with anyway
    "long": (pa.int64(), _is_integer_or_float),
    "integer": (pa.int32(), _is_integer_or_float),
    "string": (pa.string(), _is_text),
    "boolean": (pa.bool_(), pa.types.is_boolean),
    "binary": (pa.binary(), _is_bytes),
    "datetime": (None, _is_time),
}


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return f"dictionary<{t.value_type}>"
    return str(t)


def check_input_schema(
    schema: pa.Schema,
    columns: Sequence[InputColumn],
    *,
    where: str,
    skip: Iterable[str] = (),
) -> list[str]:
    """Problems of ``schema`` against the model's input columns (empty list = compatible).

    Numbers are interchangeable: integers are accepted where the model expects floating point
    (cast to it) and floating point where it expects integers (fed as float64: an integer
    column with nulls arrives like that); dictionary-encoded strings are accepted where it
    expects strings. Anything else (a string where a number is expected ...) is a problem.
    Columns in ``skip`` (e.g. hive partition keys that no data file holds) are not checked.
    """
    problems: list[str] = []
    missing = []
    skipped = set(skip)
    for col in columns:
        if col.name in skipped:
            continue
        idx = schema.get_field_index(col.name)
        if idx < 0:
            if col.required:
                missing.append(col.name)
            continue
        actual = schema.field(idx).type
        if col.type is None or pa.types.is_null(actual):
            continue
        rule = _TYPE_RULES.get(col.type)
        if rule is not None and not rule[1](actual):
            problems.append(f"{col.name}: expected {col.type}, got {_type_name(actual)}")
    if missing:
        problems.insert(0, f"missing column(s) {missing}")
    return [f"{where}: {p}" for p in problems]


def _feed_type(col: InputColumn, actual: pa.DataType) -> pa.DataType:
    """The Arrow type a column is cast to before it reaches the model."""
    rule = _TYPE_RULES.get(col.type or "")
    if col.type in ("long", "integer") and pa.types.is_floating(actual):
        return pa.float64()
    if rule is not None and rule[0] is not None:
        return rule[0]
    if pa.types.is_dictionary(actual):
        return actual.value_type
    return actual


@dataclass
class LoadedModel:
    """A model ready to predict, with its input contract and output description.

    :param flavor: ``sklearn`` (native estimator) or ``pyfunc``.
    :param estimator: the loaded object (scikit-learn estimator or ``PyFuncModel``).
    :param inputs: the input columns (from the signature, else ``feature_names_in_``).
    :param classes: class labels for classifiers with ``predict_proba``, else ``None``.
    :param prediction_type: Arrow type of the ``prediction`` column.
    """

    resolved: ResolvedModel
    flavor: Literal["sklearn", "pyfunc"]
    estimator: Any
    inputs: list[InputColumn]
    classes: list[Any] | None
    prediction_type: pa.DataType
    signature_source: str

    @property
    def probability_columns(self) -> list[str]:
        if self.classes is None:
            return []
        if len(self.classes) == 2:
            return ["probability"]
        return [f"probability_{c}" for c in self.classes]


def _signature_inputs(mlmodel: Any) -> list[InputColumn] | None:
    signature = getattr(mlmodel, "signature", None)
    if signature is None or signature.inputs is None:
        return None
    try:
        if not signature.inputs.has_input_names():
            return None
        specs = signature.inputs.inputs
    except Exception:  # tensor-based or unusual schemas: no column contract
        return None
    out = []
    for spec in specs:
        dtype = getattr(spec, "type", None)
        type_name = getattr(dtype, "name", None) if dtype is not None else None
        out.append(
            InputColumn(
                name=str(spec.name),
                type=str(type_name) if type_name in _TYPE_RULES else None,
                required=bool(getattr(spec, "required", True)),
            )
        )
    return out


def _arrow_type_of(values: np.ndarray) -> pa.DataType:
    kind = values.dtype.kind
    if kind == "b":
        return pa.bool_()
    if kind in "iu":
        return pa.int64()
    if kind == "f":
        return pa.float64()
    if kind in "OUS":
        return pa.string()
    return pa.from_numpy_dtype(values.dtype)


def _pyfunc_prediction_type(mlmodel: Any) -> pa.DataType:
    signature = getattr(mlmodel, "signature", None)
    outputs = getattr(signature, "outputs", None) if signature is not None else None
    try:
        specs = outputs.inputs if outputs is not None else []
    except Exception:
        specs = []
    if len(specs) == 1:
        spec = specs[0]
        dtype = getattr(spec, "type", None)
        name = getattr(dtype, "name", None)
        if name in _TYPE_RULES and _TYPE_RULES[name][0] is not None:
            return _TYPE_RULES[name][0]
        np_type = getattr(spec, "type", None)
        if isinstance(np_type, np.dtype):
            return _arrow_type_of(np.empty(0, dtype=np_type))
    return pa.float64()


def _flavor_of(mlmodel: Any) -> Literal["sklearn", "pyfunc"]:
    return "sklearn" if "sklearn" in (mlmodel.flavors or {}) else "pyfunc"


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """MLflow draws a download progress bar on stderr: noise in a task log."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


@contextlib.contextmanager
def open_model(
    resolved: ResolvedModel,
    target: MlflowTarget,
    *,
    feature_columns: Sequence[str] | None = None,
) -> Iterator[LoadedModel]:
    """Download the model once and load it (native scikit-learn flavor when available).

    The artifacts live in a temporary directory for the duration of the block (a pyfunc model
    may read them lazily).

    :param feature_columns: restrict/override the model's input columns (types still come
        from the signature when it names them).
    :raises ScoringInputError: the model has no column signature, no ``feature_names_in_`` and
        no ``feature_columns`` were given.
    """
    import mlflow
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp, activated(target):
        started = time.perf_counter()
        with _no_progress_bars():
            local = mlflow.artifacts.download_artifacts(artifact_uri=resolved.uri, dst_path=tmp)
        mlmodel = Model.load(local)
        flavor = _flavor_of(mlmodel)
        if flavor == "sklearn":
            estimator = mlflow.sklearn.load_model(local)
        else:
            estimator = mlflow.pyfunc.load_model(local)
        log.info(
            "Loaded %s as the %s flavor in %.1f s",
            resolved.describe(),
            "native scikit-learn" if flavor == "sklearn" else "pyfunc",
            time.perf_counter() - started,
        )
        inputs = _signature_inputs(mlmodel)
        source = "signature"
        if inputs is None and flavor == "sklearn":
            names = getattr(estimator, "feature_names_in_", None)
            if names is not None:
                inputs = [InputColumn(str(n)) for n in names]
                source = "feature_names_in_"
        if feature_columns:
            typed = {c.name: c for c in inputs or []}
            inputs = [typed.get(n, InputColumn(n)) for n in feature_columns]
            source = "feature_columns"
        if not inputs:
            raise ScoringInputError(
                f"{resolved.describe()} has no column-based signature and no "
                "feature_names_in_: pass feature_columns, or log the model with a signature"
            )
        classes: list[Any] | None = None
        if flavor == "sklearn":
            prediction_type, classes = _sklearn_outputs(estimator)
        else:
            prediction_type = _pyfunc_prediction_type(mlmodel)
        yield LoadedModel(
            resolved=resolved,
            flavor=flavor,
            estimator=estimator,
            inputs=inputs,
            classes=classes,
            prediction_type=prediction_type,
            signature_source=source,
        )


def _sklearn_outputs(estimator: Any) -> tuple[pa.DataType, list[Any] | None]:
    classes = getattr(estimator, "classes_", None)
    if classes is not None and hasattr(estimator, "predict_proba"):
        values = np.asarray(classes)
        return _arrow_type_of(values), values.tolist()
    if classes is not None:
        return _arrow_type_of(np.asarray(classes)), None
    return pa.float64(), None


# ==========================================================================================
# Input inspection
# ==========================================================================================
@dataclass
class InputInfo:
    """What is known about an input before reading it."""

    uri: str
    format: str
    files: list[str]
    schema: pa.Schema
    rows: int | None
    file_rows: dict[str, int] = field(default_factory=dict)
    partition_columns: list[str] = field(default_factory=list)


def _partition_keys(base: str, files: Sequence[str]) -> list[str]:
    """Hive partition keys in the paths of ``files`` below ``base`` (``dt=.../x.parquet``)."""
    keys: dict[str, None] = {}
    for path in files:
        if path == base:
            continue
        for part in posixpath.relpath(path, base).split("/")[:-1]:
            if "=" in part:
                keys[part.split("=", 1)[0]] = None
    return list(keys)


def inspect_input(
    uri: str,
    *,
    conn_id: str | None = None,
    format: str | None = None,  # noqa: A002 - pyarrow's name
    columns: Sequence[InputColumn] = (),
    extra_columns: Sequence[str] = (),
) -> InputInfo:
    """Open an input lazily and check every file against the model's columns.

    For parquet every file footer is read (row counts, per-file schema), so a corrupt file or
    a file whose column is missing or of another type is named before anything is scored.

    :param extra_columns: other columns that must exist (entity and pass-through columns).
    :raises ScoringInputError: missing input, unreadable file, missing/mistyped columns.
    """
    try:
        loc = io.resolve(uri, conn_id=conn_id)
        dataset = io.open_dataset(loc, format=format)
        files = io.list_files(loc)
    except io.DatasetError as err:
        raise ScoringInputError(f"input_data {err}") from err
    fmt = "csv" if files and all(f.lower().endswith(io.CSV_SUFFIXES) for f in files) else None
    fmt = format or fmt or "parquet"
    partition_columns = _partition_keys(loc.path, files)
    problems: list[str] = []
    file_rows: dict[str, int] = {}
    rows: int | None = None
    if fmt == "parquet":
        rows = 0
        for path in files:
            try:
                meta = pq.read_metadata(path, filesystem=loc.fs)
                file_schema = meta.schema.to_arrow_schema()
            except Exception as err:
                raise ScoringInputError(
                    f"input_data {uri}: file {path} is not readable as parquet: {err}"
                ) from err
            file_rows[path] = int(meta.num_rows)
            rows += int(meta.num_rows)
            where = f"file {path}" if len(files) > 1 else f"input_data {uri}"
            problems += check_input_schema(
                file_schema, columns, where=where, skip=partition_columns
            )
            missing = [
                c
                for c in extra_columns
                if c not in file_schema.names and c not in partition_columns
            ]
            if missing:
                problems.append(f"{where}: missing column(s) {missing}")
    else:
        problems += check_input_schema(dataset.schema, columns, where=f"input_data {uri}")
        missing = [c for c in extra_columns if c not in dataset.schema.names]
        if missing:
            problems.append(f"input_data {uri}: missing column(s) {missing}")
    if problems:
        shown = problems[:10] + (
            [f"... and {len(problems) - 10} more"] if len(problems) > 10 else []
        )
        raise ScoringInputError(
            "input does not match the model's input columns:\n  " + "\n  ".join(shown)
        )
    return InputInfo(
        uri=uri,
        format=fmt,
        files=files,
        schema=dataset.schema,
        rows=rows,
        file_rows=file_rows,
        partition_columns=partition_columns,
    )


def stream_parquet(
    info: InputInfo,
    columns: Sequence[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    conn_id: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` from the parquet files of ``info``, one file and one row
    group at a time.

    Memory stays at about one row group plus one batch whatever the file sizes: a
    ``pyarrow.dataset`` scanner decodes ahead of a slow consumer (a model) and was measured
    holding ~1 GB of a 1M-row file in Arrow memory while the model worked on the first batch.
    Hive partition columns (``dt=...`` directories) that are asked for are filled from the
    path; every batch has the dataset's types, so files that differ slightly (int32/int64)
    still stream as one schema.

    :raises ScoringInputError: a file that cannot be read (named).
    """
    loc = io.resolve(info.uri, conn_id=conn_id)
    target = pa.schema([info.schema.field(c) for c in columns])
    for path in info.files:
        in_file = [c for c in columns if c not in info.partition_columns]
        try:
            handle = pq.ParquetFile(path if loc.is_local else loc.fs.open(path, "rb"))
        except (pa.ArrowInvalid, OSError) as err:
            raise ScoringInputError(f"input_data {info.uri}: file {path}: {err}") from err
        partition = _partition_values(loc.path, path)
        try:
            for batch in handle.iter_batches(batch_size=batch_size, columns=in_file):
                arrays = []
                for field_ in target:
                    if field_.name in in_file:
                        arrays.append(batch.column(field_.name).cast(field_.type))
                    else:
                        value = pa.scalar(partition.get(field_.name)).cast(field_.type)
                        arrays.append(pa.repeat(value, batch.num_rows))
                yield pa.RecordBatch.from_arrays(arrays, schema=target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
            raise ScoringInputError(f"input_data {info.uri}: file {path}: {err}") from err
        finally:
            handle.close()


def _partition_values(base: str, path: str) -> dict[str, str]:
    values = {}
    for part in posixpath.relpath(path, base).split("/")[:-1]:
        if "=" in part:
            key, value = part.split("=", 1)
            values[key] = value
    return values


# ==========================================================================================
# Prediction
# ==========================================================================================
def _rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Group small batches (small row groups, small files) into tables of up to ``size`` rows,
    so per-call overhead stays amortised; no data is copied here."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if pending and rows + batch.num_rows > size:
            yield pa.Table.from_batches(pending)
            pending, rows = [], 0
        pending.append(batch)
        rows += batch.num_rows
    if pending:
        yield pa.Table.from_batches(pending)


def _to_frame(table: pa.Table) -> Any:
    # split_blocks avoids consolidating columns into 2-D blocks (a full copy); self_destruct
    # releases each Arrow column as soon as it is converted. Only the feature columns are in
    # ``table``, so entity/pass-through columns are never converted.
    return table.to_pandas(split_blocks=True, self_destruct=True, ignore_metadata=True)


class _Predictor:
    """Turns a pandas frame of feature columns into the output prediction columns."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.estimator = model.estimator
        self.classes = np.asarray(model.classes) if model.classes is not None else None
        self.binary = self.classes is not None and len(self.classes) == 2

    def fields(self) -> list[pa.Field]:
        out = [pa.field("prediction", self.model.prediction_type)]
        out += [pa.field(name, pa.float64()) for name in self.model.probability_columns]
        return out

    def __call__(self, frame: Any) -> list[pa.Array]:
        if self.classes is not None:
            proba = np.asarray(self.estimator.predict_proba(frame), dtype=np.float64)
            labels = self.classes.take(proba.argmax(axis=1))
            arrays = [pa.array(labels, type=self.model.prediction_type)]
            if self.binary:
                arrays.append(pa.array(np.ascontiguousarray(proba[:, 1])))
            else:
                arrays += [
                    pa.array(np.ascontiguousarray(proba[:, i])) for i in range(proba.shape[1])
                ]
            return arrays
        values = self.estimator.predict(frame)
        return [self._prediction_array(values)]

    def _prediction_array(self, values: Any) -> pa.Array:
        if hasattr(values, "columns"):  # DataFrame from a pyfunc model
            if len(values.columns) != 1:
                raise ScoringInputError(
                    f"{self.model.resolved.describe()} returned {len(values.columns)} output "
                    f"columns {list(values.columns)[:5]}; only single-output models are supported"
                )
            values = values.iloc[:, 0]
        array = np.asarray(values)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ScoringInputError(
                f"{self.model.resolved.describe()} returned predictions of shape {array.shape}; "
                "only one prediction per row is supported"
            )
        try:
            return pa.array(array, type=self.model.prediction_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array(array).cast(self.model.prediction_type)


@dataclass
class ScoringResult:
    """What a scoring run did; :meth:`to_xcom` is the operator's XCom."""

    output_uri: str
    rows: int
    seconds: float
    rows_per_second: float
    model: ResolvedModel
    scored_at: datetime
    input_data: str | None
    files: list[str]
    flavor: str
    empty: bool
    #: seconds spent streaming (read, predict, write, commit), without model resolution/loading
    stream_seconds: float = 0.0

    def to_xcom(self) -> dict[str, Any]:
        return {
            "output_uri": self.output_uri,
            "rows": self.rows,
            "empty": self.empty,
            **self.model.as_dict(),
            "flavor": self.flavor,
            "scored_at": self.scored_at.isoformat(),
            "rows_per_second": round(self.rows_per_second, 1),
            "seconds": round(self.seconds, 3),
            "stream_seconds": round(self.stream_seconds, 3),
            "input_data": self.input_data,
            "files": list(self.files),
        }


def _constant(value: Any, type_: pa.DataType, rows: int) -> pa.Array:
    return pa.array([value], type=type_).take(pa.array(np.zeros(rows, dtype=np.int32)))


def score_batches(
    model: LoadedModel,
    batches: Iterable[pa.RecordBatch],
    output_uri: str,
    *,
    input_schema: pa.Schema,
    entity_columns: Sequence[str] = DEFAULT_ENTITY_COLUMNS,
    passthrough_columns: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    total_rows: int | None = None,
    scored_at: datetime | None = None,
    conn_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    progress_every: float = 10.0,
    what: str = "scoring",
) -> tuple[int, dict[str, float], list[str]]:
    """Predict every batch and write the rows to ``output_uri`` atomically.

    ``batches`` must hold the model's input columns and the entity/pass-through columns
    (already checked). ``on_batch(batch_index, rows_done)`` is called after each written batch
    (progress hooks, tests).

    :returns: ``(rows, progress stats, part files)``.
    :raises ScoringInputError: the model failed on a batch, or the output is not writable;
        nothing is visible at ``output_uri`` in that case.
    """
    scored_at = scored_at or datetime.now(timezone.utc)
    resolved = model.resolved
    predictor = _Predictor(model)
    present = [c for c in model.inputs if c.name in input_schema.names]
    feed_schema = pa.schema(
        [pa.field(c.name, _feed_type(c, input_schema.field(c.name).type)) for c in present]
    )
    keep = list(dict.fromkeys([*entity_columns, *passthrough_columns]))
    keep_fields = [input_schema.field(c) for c in keep]
    keep_fields = [
        pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
        for f in keep_fields
    ]
    model_fields = [
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("model_run_id", pa.string()),
        pa.field("scored_at", pa.timestamp("us", tz="UTC")),
    ]
    out_schema = pa.schema([*keep_fields, *predictor.fields(), *model_fields])
    constants = [
        _constant(resolved.name, pa.string(), batch_size),
        _constant(resolved.version, pa.string(), batch_size),
        _constant(resolved.run_id, pa.string(), batch_size),
        _constant(scored_at, pa.timestamp("us", tz="UTC"), batch_size),
    ]
    file_meta = {
        **{k: "" if v is None else str(v) for k, v in resolved.as_dict().items()},
        "scored_at": scored_at.isoformat(),
        **dict(metadata or {}),
    }
    progress = io.ProgressLogger(what, total_rows=total_rows, every_seconds=progress_every)
    try:
        writer = io.PartitionWriter(
            output_uri, schema=out_schema, conn_id=conn_id, metadata=file_meta
        )
        with writer:
            for index, table in enumerate(_rebatch(batches, batch_size)):
                rows = table.num_rows
                first = progress.rows
                kept = [
                    table.column(f.name).cast(f.type) for f in keep_fields
                ]  # cast: dictionary -> plain values
                features = table.select(feed_schema.names).cast(feed_schema)
                del table
                try:
                    predicted = predictor(_to_frame(features))
                except ScoringInputError:
                    raise
                except Exception as err:
                    raise ScoringInputError(
                        f"{resolved.describe()} failed on rows {first:,}..{first + rows - 1:,} "
                        f"of the input: {type(err).__name__}: {err}"
                    ) from err
                del features
                if rows <= batch_size:
                    consts = [c.slice(0, rows) for c in constants]
                else:
                    consts = [_constant(c[0].as_py(), c.type, rows) for c in constants]
                writer.write(pa.Table.from_arrays([*kept, *predicted, *consts], schema=out_schema))
                progress.update(rows)
                if on_batch is not None:
                    on_batch(index, progress.rows)
    except io.DatasetError as err:
        raise ScoringInputError(
            f"{'output_uri' if err.uri == str(output_uri) else 'input_data'} {err}"
        ) from err
    stats = progress.done()
    return progress.rows, stats, list(writer.files)


def historical_features(
    store: Any,
    entity_data: str,
    *,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    as_of: datetime | None = None,
    conn_id: str | None = None,
    timestamp_column: str = "event_timestamp",
) -> pa.Table:
    """Point-in-time features from Feast for the entity rows in ``entity_data``.

    Rows are scored with the feature values current at their ``timestamp_column``; entity data
    without that column gets ``as_of`` (the scoring time, e.g. the end of the data interval),
    so each entity is scored with its latest features known then. The retrieval is
    :func:`mlops_provider.core.features.build_training_set` (one row per entity row, input
    order, nulls where no feature value existed).

    :raises ScoringInputError: neither/both of ``feature_service`` and ``features``, unreadable
        entity data, unknown features or service, or a Feast retrieval error.
    """
    from mlops_provider.core.features import FeatureRequestError, build_training_set

    if bool(feature_service) == bool(features):
        raise ScoringInputError("pass exactly one of feature_service or features for Feast input")
    try:
        table = io.read_table(entity_data, conn_id=conn_id)
    except io.DatasetError as err:
        raise ScoringInputError(f"feast_entity_data {err}") from err
    if timestamp_column not in table.column_names:
        if as_of is None:
            raise ScoringInputError(
                f"feast_entity_data {entity_data} has no {timestamp_column!r} column and no "
                "scoring time was given"
            )
        when = as_of if as_of.tzinfo else as_of.replace(tzinfo=timezone.utc)
        stamp = pa.scalar(when.astimezone(timezone.utc), type=pa.timestamp("us", tz="UTC"))
        table = table.append_column(timestamp_column, pa.repeat(stamp, table.num_rows))
    if table.num_rows == 0:
        log.warning("feast_entity_data %s has no rows: nothing to retrieve", entity_data)
        return table
    started = time.perf_counter()
    try:
        result = build_training_set(
            store,
            table,
            features=list(features) if features else None,
            feature_service=feature_service or None,
            timestamp_column=timestamp_column,
        )
    except FeatureRequestError as err:
        raise ScoringInputError(f"Feast input {entity_data}: {err}") from err
    except Exception as err:  # the offline store's own errors vary by backend
        raise ScoringInputError(
            f"Feast historical retrieval for {table.num_rows:,} entity rows of {entity_data} "
            f"failed: {type(err).__name__}: {err}"
        ) from err
    log.info(
        "Retrieved %s rows of Feast features (%s) for %s in %.1f s",
        f"{result.num_rows:,}",
        f"service {feature_service}" if feature_service else f"{len(features or [])} features",
        entity_data,
        time.perf_counter() - started,
    )
    return result


def _with_empty_inputs(table: pa.Table, inputs: Sequence[InputColumn]) -> pa.Table:
    for col in inputs:
        if col.name not in table.column_names:
            rule = _TYPE_RULES.get(col.type or "")
            type_ = rule[0] if rule is not None and rule[0] is not None else pa.string()
            table = table.append_column(pa.field(col.name, type_), pa.array([], type=type_))
    return table


def score(
    model_uri: str,
    *,
    target: MlflowTarget,
    output_uri: str,
    input_data: str | None = None,
    input_table: pa.Table | None = None,
    feast_store: Any = None,
    feast_entity_data: str | None = None,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    as_of: datetime | None = None,
    entity_columns: Sequence[str] | None = DEFAULT_ENTITY_COLUMNS,
    passthrough_columns: Sequence[str] = (),
    feature_columns: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    conn_id: str | None = None,
    input_format: str | None = None,
    scored_at: datetime | None = None,
    client: MlflowClient | None = None,
    metadata: Mapping[str, str] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    on_resolved: Callable[[ResolvedModel], None] | None = None,
    progress_every: float = 10.0,
) -> ScoringResult:
    """Score ``input_data`` (a dataset URI) or ``input_table`` with ``model_uri`` into the
    partition ``output_uri``, atomically.

    :param model_uri: ``models:/<name>@<alias>``, ``models:/<name>/<version>``,
        ``runs:/<run_id>/<path>`` or ``models:/<model_id>``; an alias is resolved once, here.
    :param target: where MLflow lives.
    :param output_uri: the partition directory to (re)write, e.g. ``.../dt=2026-01-05``.
    :param input_table: an Arrow table to score instead of ``input_data``.
    :param feast_store: a Feast ``FeatureStore``: score the point-in-time features of the
        entities in ``feast_entity_data`` (``feature_service`` or ``features``; rows without an
        ``event_timestamp`` are scored ``as_of``), see :func:`historical_features`.
    :param entity_columns: id columns copied to every output row (must exist in the input);
        ``None`` means the default ``["customer_id"]``, ``[]`` none.
    :param passthrough_columns: more input columns copied to the output.
    :param feature_columns: override the model's input columns (default: its signature).
    :param batch_size: rows per prediction call (see :data:`DEFAULT_BATCH_SIZE`).
    :param conn_id: connection for remote storage (``s3://``), input and output.
    :param on_resolved: called with the resolved model before anything is read (logging).
    :param on_batch: called after each written batch with ``(batch_index, rows_done)``.
    :raises ScoringInputError: see :func:`resolve_model`, :func:`inspect_input`, :func:`score_batches`.
    """
    if sum(x is not None for x in (input_data, input_table, feast_store)) != 1:
        raise ScoringInputError("pass exactly one of input_data, input_table or feast_store")
    if feast_store is not None and not feast_entity_data:
        raise ScoringInputError("Feast input needs feast_entity_data (a dataset of entities)")
    if batch_size < 1:
        raise ScoringInputError(f"batch_size must be >= 1, got {batch_size}")
    entity_columns = list(DEFAULT_ENTITY_COLUMNS if entity_columns is None else entity_columns)
    passthrough_columns = [c for c in passthrough_columns if c not in entity_columns]
    clashes = [
        c
        for c in [*entity_columns, *passthrough_columns]
        if c in RESERVED_COLUMNS or c.startswith("probability_")
    ]
    if clashes:
        raise ScoringInputError(
            f"entity/pass-through column(s) {clashes} clash with output columns {list(RESERVED_COLUMNS)}"
        )
    _check_output_location(output_uri, conn_id)
    ref = parse_model_uri(model_uri)
    scored_at = (scored_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    started = time.perf_counter()
    resolved = resolve_model(ref, client or make_client(target))
    log.info("Model %s resolved to %s", model_uri, resolved.describe())
    if on_resolved is not None:
        on_resolved(resolved)
    source_name = "feature data"
    with open_model(resolved, target, feature_columns=feature_columns) as model:
        extra = [*entity_columns, *passthrough_columns]
        if feast_store is not None:
            assert feast_entity_data is not None
            source_name = f"Feast features of {feast_entity_data}"
            input_table = historical_features(
                feast_store,
                feast_entity_data,
                feature_service=feature_service,
                features=features,
                as_of=as_of or scored_at,
                conn_id=conn_id,
            )
            if input_table.num_rows == 0:  # nothing to retrieve: an empty table of the inputs
                input_table = _with_empty_inputs(input_table, model.inputs)
        if input_data is not None:
            info = inspect_input(
                input_data,
                conn_id=conn_id,
                format=input_format,
                columns=model.inputs,
                extra_columns=extra,
            )
            schema, total, source = info.schema, info.rows, str(input_data)
            files_note = f"{len(info.files)} file(s)"
            read_columns = list(
                dict.fromkeys([*extra, *[c.name for c in model.inputs if c.name in schema.names]])
            )
            batches: Iterable[pa.RecordBatch]
            if info.format == "parquet":
                batches = stream_parquet(info, read_columns, batch_size=batch_size, conn_id=conn_id)
            else:
                batches = io.iter_batches(
                    input_data,
                    columns=read_columns,
                    batch_size=batch_size,
                    conn_id=conn_id,
                    format=input_format,
                )
        else:
            assert input_table is not None
            problems = check_input_schema(input_table.schema, model.inputs, where=source_name)
            missing = [c for c in extra if c not in input_table.schema.names]
            if missing:
                problems.append(f"{source_name}: missing column(s) {missing}")
            if problems:
                raise ScoringInputError(
                    "input does not match the model's input columns:\n  " + "\n  ".join(problems)
                )
            schema, total, source = input_table.schema, input_table.num_rows, source_name
            files_note = "in memory"
            batches = input_table.to_batches(max_chunksize=batch_size)
        total_text = f"{total:,} rows" if total is not None else "row count unknown (CSV)"
        log.info(
            "Scoring %s (%s, %s) with %s [%s flavor, inputs from %s] into %s",
            source,
            total_text,
            files_note,
            resolved.describe(),
            model.flavor,
            model.signature_source,
            output_uri,
        )
        if total == 0:
            log.warning("Input %s has no rows: writing an empty partition with the schema", source)
        rows, stats, files = score_batches(
            model,
            batches,
            output_uri,
            input_schema=schema,
            entity_columns=entity_columns,
            passthrough_columns=passthrough_columns,
            batch_size=batch_size,
            total_rows=total,
            scored_at=scored_at,
            conn_id=conn_id,
            metadata={"input_data": source, **dict(metadata or {})},
            on_batch=on_batch,
            progress_every=progress_every,
            what=f"scoring {source}",
        )
    seconds = time.perf_counter() - started
    if rows == 0:
        log.warning("Wrote an EMPTY partition %s (input had no rows)", output_uri)
    else:
        log.info(
            "Wrote %s rows scored by %s to %s in %.1f s (%s rows/s while streaming)",
            f"{rows:,}",
            resolved.describe(),
            output_uri,
            seconds,
            f"{stats['rows_per_second']:,.0f}",
        )
    return ScoringResult(
        output_uri=str(output_uri),
        rows=rows,
        seconds=seconds,
        rows_per_second=rows / seconds if seconds > 0 else 0.0,
        model=resolved,
        scored_at=scored_at,
        input_data=str(input_data) if input_data is not None else feast_entity_data,
        files=files,
        flavor=model.flavor,
        empty=rows == 0,
        stream_seconds=float(stats["seconds"]),
    )


def _check_output_location(output_uri: str, conn_id: str | None) -> None:
    """Fail before any work when the output cannot be a directory (a file in the way)."""
    try:
        loc = io.resolve(output_uri, conn_id=conn_id)
    except io.DatasetError as err:
        raise ScoringInputError(f"output_uri {err}") from err
    if not loc.is_local:
        return
    path = loc.path
    while True:
        if loc.fs.exists(path):
            if not loc.fs.isdir(path):
                raise ScoringInputError(
                    f"output_uri {output_uri}: {path} exists and is not a directory; "
                    "the output location is not writable"
                )
            break
        parent = posixpath.dirname(path)
        if parent == path:
            break
        path = parent


# ==========================================================================================
# Sharding
# ==========================================================================================
def list_shards(
    input_uri: str,
    *,
    by: Literal["auto", "file", "partition"] = "auto",
    conn_id: str | None = None,
) -> list[str]:
    """Split an input into independently scorable shards (URIs, sorted).

    ``by="partition"``: one shard per top-level hive partition directory (``key=value/``);
    ``by="file"``: one shard per data file; ``"auto"``: partitions when every top-level entry is
    a partition directory, files otherwise. A single file is one shard.

    :raises ScoringInputError: missing or empty input, or ``by="partition"`` on an input
        that has no partition directories.
    """
    try:
        loc = io.resolve(input_uri, conn_id=conn_id)
        files = io.list_files(loc)
    except io.DatasetError as err:
        raise ScoringInputError(f"input_data {err}") from err
    if not files:
        raise ScoringInputError(f"input_data {input_uri}: contains no data files to shard")
    if files == [loc.path]:
        return [str(input_uri)]
    rels = [posixpath.relpath(f, loc.path) for f in files]
    tops = sorted({r.split("/", 1)[0] for r in rels})
    partitioned = all("/" in r for r in rels) and all("=" in t for t in tops)
    if by == "partition" and not partitioned:
        raise ScoringInputError(
            f"input_data {input_uri}: not partitioned into key=value directories; shard by file"
        )
    if by == "partition" or (by == "auto" and partitioned):
        return [io.join_uri(str(input_uri), t) for t in tops]
    return [io.join_uri(str(input_uri), r) for r in rels]


def shard_name(shard: int | str) -> str:
    """Directory value of a shard: numbers are zero-padded (``3`` -> ``00003``)."""
    text = str(shard).strip()
    if text.isdigit():
        return f"{int(text):05d}"
    if not text or not re.fullmatch(r"[A-Za-z0-9_.\-]+", text) or text.startswith((".", "_")):
        raise ScoringInputError(
            f"shard name {shard!r} must be a number or letters, digits, '.', '_', '-'"
        )
    return text


def shard_uri(partition_uri: str, shard: int | str) -> str:
    """``<partition>/shard=<name>``: where one shard of a day's scoring is written."""
    return io.join_uri(partition_uri, f"{SHARD_KEY}={shard_name(shard)}")


def plan_scoring(
    input_uri: str,
    model_uri: str,
    *,
    target: MlflowTarget | None = None,
    client: MlflowClient | None = None,
    by: Literal["auto", "file", "partition"] = "auto",
    conn_id: str | None = None,
    output_partition: str | None = None,
) -> dict[str, Any]:
    """Plan a sharded scoring run: shards, the ONE concrete model, the rows to expect.

    Every shard gets ``model_uri`` of the plan (``models:/<name>/<version>``), so shards scored
    at different times cannot disagree on the version even if the alias moves meanwhile.

    :param output_partition: the day partition the shards will be written to. When given, its
        ``_SUCCESS`` marker is removed (the day is being rescored) and shard directories beyond
        the new shard count (left by an earlier plan with more shards) are deleted.
    :returns: ``{"shards": [uri...], "shard_count", "shard_rows", "expected_rows",
        "model_uri", "requested_model_uri", "model_name", "model_version", "model_run_id"}``.
    """
    shards = list_shards(input_uri, by=by, conn_id=conn_id)
    if client is None:
        if target is None:
            raise ScoringInputError("plan_scoring needs an MLflow target or client")
        client = make_client(target)
    resolved = resolve_model(model_uri, client)
    shard_rows: list[int | None] = []
    for shard in shards:
        try:
            shard_rows.append(io.count_rows(shard, conn_id=conn_id))
        except io.DatasetError as err:
            raise ScoringInputError(f"input_data {err}") from err
        except Exception as err:  # corrupt footers surface here as Arrow errors
            raise ScoringInputError(f"input_data {shard}: not readable: {err}") from err
    expected = sum(r for r in shard_rows if r is not None)
    if output_partition:
        _reset_day_partition(output_partition, len(shards), conn_id)
    plan = {
        "shards": shards,
        "shard_count": len(shards),
        "shard_rows": shard_rows,
        "expected_rows": expected,
        **resolved.as_dict(),
    }
    log.info(
        "Planned %d shard(s) of %s (%s rows) for %s",
        len(shards),
        input_uri,
        f"{expected:,}",
        resolved.describe(),
    )
    return plan


def _reset_day_partition(partition: str, shard_count: int, conn_id: str | None) -> None:
    loc = io.resolve(partition, conn_id=conn_id)
    if not loc.fs.exists(loc.path):
        return
    marker = posixpath.join(loc.path, _SUCCESS)
    if loc.fs.exists(marker):
        loc.fs.rm(marker)
    keep = {shard_name(i) for i in range(shard_count)}
    for entry in loc.fs.ls(loc.path, detail=False):
        name = posixpath.basename(str(entry).rstrip("/"))
        if name.startswith(f"{SHARD_KEY}=") and name.split("=", 1)[1] not in keep:
            log.info("Removing stale shard %s (not in the new plan)", entry)
            loc.fs.rm(str(entry), recursive=True)


def _read_marker(loc: io.Location, directory: str) -> dict[str, Any] | None:
    path = posixpath.join(directory, _SUCCESS)
    if not loc.fs.exists(path):
        return None
    with loc.fs.open(path, "r") as handle:
        try:
            value = json.loads(handle.read() or "{}")
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def verify_scoring(
    output_partition: str,
    expected_rows: int,
    *,
    expected_model_version: str | int | None = None,
    expected_model_name: str | None = None,
    expected_shards: int | Sequence[str] | None = None,
    conn_id: str | None = None,
    commit: bool = True,
) -> dict[str, Any]:
    """Check a day's scoring output and (for shards) commit the day with a ``_SUCCESS`` marker.

    Works on a sharded day partition (``shard=<n>`` sub-directories, each committed by its own
    task) and on a plain partition. Checks: every shard is committed (has ``_SUCCESS``), the
    rows in the files equal the rows each shard reported, the sum equals ``expected_rows``,
    every shard used the same model name and version (and the expected ones, if given), and
    the set of shards is the expected one.

    :returns: ``{"output_uri", "rows", "shards", "shard_rows", "model_name", "model_version",
        "model_run_id"}``.
    :raises ScoringInputError: listing every failed check.
    """
    loc = io.resolve(output_partition, conn_id=conn_id)
    if not loc.fs.exists(loc.path):
        raise ScoringInputError(f"output {output_partition} does not exist: nothing was scored")
    entries = [str(e).rstrip("/") for e in loc.fs.ls(loc.path, detail=False)]
    shard_dirs = sorted(
        e for e in entries if posixpath.basename(e).startswith(f"{SHARD_KEY}=") and loc.fs.isdir(e)
    )
    problems: list[str] = []
    units: dict[str, str] = {}
    if shard_dirs:
        stray = [
            posixpath.basename(e)
            for e in entries
            if e not in shard_dirs and not posixpath.basename(e).startswith((".", "_"))
        ]
        if stray:
            problems.append(f"files outside shard directories: {stray}")
        units = {posixpath.basename(d).split("=", 1)[1]: d for d in shard_dirs}
    else:
        units = {"": loc.path}
    if expected_shards is not None and shard_dirs:
        if isinstance(expected_shards, int):
            wanted = {shard_name(i) for i in range(expected_shards)}
        else:
            wanted = {shard_name(s) for s in expected_shards}
        missing = sorted(wanted - set(units))
        extra = sorted(set(units) - wanted)
        if missing:
            problems.append(f"shard(s) not written: {missing}")
        if extra:
            problems.append(f"unexpected shard(s) (stale from an earlier plan?): {extra}")
    shard_rows: dict[str, int] = {}
    versions: dict[tuple[Any, Any], list[str]] = {}
    run_ids: set[Any] = set()
    for name, directory in sorted(units.items()):
        label = f"shard {name}" if name else f"partition {output_partition}"
        marker = _read_marker(loc, directory)
        if marker is None:
            problems.append(f"{label} is not committed (no _SUCCESS marker)")
            continue
        try:
            actual = io.count_rows(loc.child(posixpath.basename(directory)) if name else loc)
        except Exception as err:
            problems.append(f"{label} is not readable: {err}")
            continue
        reported = marker.get("rows")
        if reported is not None and int(reported) != actual:
            problems.append(f"{label} has {actual} rows in its files but reported {reported}")
        shard_rows[name or "all"] = actual
        key = (marker.get("model_name") or None, marker.get("model_version") or None)
        versions.setdefault(key, []).append(name or "all")
        run_ids.add(marker.get("model_run_id") or None)
    if len(versions) > 1:
        detail = "; ".join(f"{n} v{v}: {sorted(s)}" for (n, v), s in versions.items())
        problems.append(f"shards used different model versions: {detail}")
    model_name, model_version = next(iter(versions)) if len(versions) == 1 else (None, None)
    if len(versions) == 1:
        if expected_model_version is not None and str(model_version) != str(expected_model_version):
            problems.append(
                f"scored with model version {model_version}, expected {expected_model_version}"
            )
        if expected_model_name is not None and model_name != expected_model_name:
            problems.append(f"scored with model {model_name!r}, expected {expected_model_name!r}")
    total = sum(shard_rows.values())
    if total != int(expected_rows):
        problems.append(f"{total:,} rows written, {int(expected_rows):,} expected from the input")
    if problems:
        raise ScoringInputError(
            f"scoring output {output_partition} failed verification:\n  " + "\n  ".join(problems)
        )
    summary = {
        "output_uri": str(output_partition),
        "rows": total,
        "shards": len(shard_dirs),
        "shard_rows": shard_rows,
        "model_name": model_name,
        "model_version": model_version,
        "model_run_id": next(iter(run_ids)) if len(run_ids) == 1 else None,
        "verified_at": datetime.now(timezone.utc).isoformat(),
    }
    if commit and shard_dirs:
        io.write_text(
            json.dumps(summary), io.join_uri(str(output_partition), _SUCCESS), conn_id=conn_id
        )
    log.info(
        "Verified %s: %s rows in %d shard(s), model %s version %s",
        output_partition,
        f"{total:,}",
        len(shard_dirs),
        model_name,
        model_version,
    )
    return summary
