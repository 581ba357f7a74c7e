"""The model side of scoring: which model, how it is loaded, which columns it needs.

A model URI is parsed and resolved by :mod:`mlops_provider.core.models` (one grammar for the
whole provider); this module loads the resolved :class:`~mlops_provider.core.models.ModelVersion`
once (:func:`open_model`, native scikit-learn flavor when there is one) and states its input
contract (:class:`InputColumn`, :func:`check_input_schema`, :func:`feed_type`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from mlops_provider.core.errors import InputError, ParameterError
from mlops_provider.core.mlflow_target import MlflowTarget, activated
from mlops_provider.core.models import (
    DEFAULT_ALIAS,
    ModelVersion,
)

log = logging.getLogger(__name__)

__all__ = [
    "InputColumn",
    "LoadedModel",
    "ScoringInputError",
    "check_input_schema",
    "feed_type",
    "model_fields",
    "open_model",
    "requested_model_uri",
]


class ScoringInputError(InputError):
    """Scoring cannot run: input that does not match the model, unreadable input, an output
    location that cannot be written, or a model that fails on the input. The message names the
    problem (column, file, model). Model URI problems are
    :class:`~mlops_provider.core.models.ModelUriError` /
    :class:`~mlops_provider.core.models.ModelNotFoundError`."""


def requested_model_uri(
    model_uri: str | None, registered_model_name: str | None, alias: str | None = None
) -> str:
    """The model URI to resolve: ``model_uri``, else ``models:/<name>@<alias>`` (alias default
    ``champion``).

    :raises ParameterError: neither was given.
    """
    if model_uri:
        return str(model_uri)
    if registered_model_name:
        return f"models:/{registered_model_name}@{alias or DEFAULT_ALIAS}"
    raise ParameterError(
        "model_uri", "pass model_uri, or registered_model_name (+ alias, default champion)"
    )


def model_fields(model: ModelVersion) -> dict[str, Any]:
    """The model as flat ``model_*`` fields: what parquet metadata, ``_SUCCESS`` markers and the
    results of earlier releases carry (``model_uri`` is the concrete URI)."""
    return {
        "model_uri": model.uri,
        "requested_model_uri": model.requested_uri or model.uri,
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "model_alias": model.alias,
    }


# ==========================================================================================
# The input contract
# ==========================================================================================
@dataclass(frozen=True)
class InputColumn:
    """One model input column: its name, MLflow type name (``None`` = unknown) and whether
    it is required."""

    name: str
    type: str | None = None
    required: bool = True


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


# MLflow column type -> (Arrow type to feed the model, predicate accepting an input type)
TYPE_RULES: dict[str, tuple[pa.DataType | None, Callable[[pa.DataType], bool]]] = {
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
        rule = TYPE_RULES.get(col.type)
        if rule is not None and not rule[1](actual):
            problems.append(f"{col.name}: expected {col.type}, got {_type_name(actual)}")
    if missing:
        problems.insert(0, f"missing column(s) {missing}")
    return [f"{where}: {p}" for p in problems]


def feed_type(col: InputColumn, actual: pa.DataType) -> pa.DataType:
    """The Arrow type a column of type ``actual`` is cast to before it reaches the model."""
    rule = TYPE_RULES.get(col.type or "")
    if col.type in ("long", "integer") and pa.types.is_floating(actual):
        return pa.float64()
    if rule is not None and rule[0] is not None:
        return rule[0]
    if pa.types.is_dictionary(actual):
        return actual.value_type
    return actual


def empty_type(col: InputColumn) -> pa.DataType:
    """The Arrow type of an empty stand-in column (no rows to score): the model's, else string."""
    rule = TYPE_RULES.get(col.type or "")
    return rule[0] if rule is not None and rule[0] is not None else pa.string()


# ==========================================================================================
# Loading
# ==========================================================================================
@dataclass
class LoadedModel:
    """A model ready to predict, with its input contract and output description.

    :param resolved: the concrete model (its identity goes into every output row).
    :param flavor: ``sklearn`` (native estimator) or ``pyfunc``.
    :param estimator: the loaded object (scikit-learn estimator or ``PyFuncModel``).
    :param inputs: the input columns (from the signature, else ``feature_names_in_``).
    :param classes: class labels for classifiers with ``predict_proba``, else ``None``.
    :param prediction_type: Arrow type of the ``prediction`` column.
    :param signature_source: where ``inputs`` came from (``signature``, ``feature_names_in_``
        or ``feature_columns``).
    """

    resolved: ModelVersion
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
                type=str(type_name) if type_name in TYPE_RULES else None,
                required=bool(getattr(spec, "required", True)),
            )
        )
    return out


def arrow_type_of(values: np.ndarray) -> pa.DataType:
    """The Arrow type of a numpy array of labels or predictions."""
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
        if name in TYPE_RULES and TYPE_RULES[name][0] is not None:
            return TYPE_RULES[name][0]
        if isinstance(dtype, np.dtype):
            return arrow_type_of(np.empty(0, dtype=dtype))
    return pa.float64()


def _sklearn_outputs(estimator: Any) -> tuple[pa.DataType, list[Any] | None]:
    classes = getattr(estimator, "classes_", None)
    if classes is not None and hasattr(estimator, "predict_proba"):
        values = np.asarray(classes)
        return arrow_type_of(values), values.tolist()
    if classes is not None:
        return arrow_type_of(np.asarray(classes)), None
    return pa.float64(), None


def _input_contract(
    resolved: ModelVersion,
    mlmodel: Any,
    estimator: Any,
    flavor: str,
    feature_columns: Sequence[str] | None,
) -> tuple[list[InputColumn], str]:
    """The model's input columns and where they came from."""
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
    return inputs, source


@contextlib.contextmanager
def open_model(
    resolved: ModelVersion,
    target: MlflowTarget,
    *,
    feature_columns: Sequence[str] | None = None,
) -> Iterator[LoadedModel]:
    """Download the model once and load it (native scikit-learn flavor when available).

    The artifacts live in a temporary directory for the duration of the block (a pyfunc model
    may read them lazily): :func:`mlops_provider.core.models.opened`.

    :param resolved: the concrete model (:func:`mlops_provider.core.models.resolve`).
    :param feature_columns: restrict/override the model's input columns (types still come
        from the signature when it names them).
    :raises ScoringInputError: the model has no column signature, no ``feature_names_in_`` and
        no ``feature_columns`` were given.
    :raises ModelNotFoundError: the model has no artifacts.
    """
    from mlops_provider.core.models import opened

    with contextlib.ExitStack() as files:
        # MLflow is pointed at the target only while the model is downloaded and loaded: the
        # block below may last as long as a service runs, and the fluent state it restores
        # is process-wide (a restore at the end of a long block would undo later changes)
        with activated(target):
            started = time.perf_counter()
            handle = files.enter_context(opened(resolved))
        mlmodel, flavor, estimator = handle.mlmodel, handle.flavor, handle.model
        if flavor == "sklearn":
            prediction_type, classes = _sklearn_outputs(estimator)
        else:
            prediction_type, classes = _pyfunc_prediction_type(mlmodel), None
        log.info(
            "Loaded %s as the %s flavor in %.1f s",
            resolved.describe(),
            "native scikit-learn" if flavor == "sklearn" else "pyfunc",
            time.perf_counter() - started,
        )
        inputs, source = _input_contract(resolved, mlmodel, estimator, flavor, feature_columns)
        yield LoadedModel(
            resolved=resolved,
            flavor=flavor,
            estimator=estimator,
            inputs=inputs,
            classes=classes,
            prediction_type=prediction_type,
            signature_source=source,
        )
