"""Request bodies of ``POST /predict``: parsing, checking against the model's input contract and
turning rows into feature columns. Pure Python (no web framework), unit tested on its own.

Every problem is a :class:`ServingError` whose ``detail`` names the field, the row index and the
value, and whose ``status`` is the HTTP status the service answers with.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_provider.core.scoring.model import InputColumn

__all__ = [
    "PredictRequest",
    "ServingError",
    "canary_hit",
    "check_entities",
    "columns_from_rows",
    "feed_signature",
    "frame_from_columns",
    "parse_predict_body",
]

_NUMBER_TYPES = ("double", "float")
_INTEGER_TYPES = ("long", "integer")
#: JSON values accepted per MLflow column type (bool is an int in Python: excluded for numbers).
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "double": (int, float),
    "float": (int, float),
    "long": (int, float),
    "integer": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "binary": (str,),
    "datetime": (str,),
}
_JSON_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


class ServingError(Exception):
    """A request the service refuses or cannot answer.

    :param status: the HTTP status (400 malformed, 404 unknown entity / missing online feature,
        409 failed reload, 413 too large, 422 missing column / wrong type, 503 not ready).
    :param kind: the ``kind`` label of ``mlops_serving_errors_total`` (``bad_request``,
        ``too_large``, ``invalid_input``, ``unknown_entity``, ``missing_feature``,
        ``model_error``, ``not_ready`` ...).
    :param detail: the message, naming the field, row and value.
    """

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class PredictRequest:
    """A parsed ``POST /predict`` body: ``mode`` ``rows`` or ``entities``, the items, the
    caller's ``request_id`` (``None`` when not given)."""

    mode: str
    items: list[dict[str, Any]]
    request_id: str | None


def _json_name(value: Any) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) else _json_name(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_predict_body(body: bytes, *, max_body_bytes: int, max_rows: int) -> PredictRequest:
    """Parse and check a ``POST /predict`` body.

    :raises ServingError: 413 body larger than ``max_body_bytes`` or more than ``max_rows``
        items; 400 not JSON, not an object, neither or both of ``rows``/``entities``, not a list
        of objects, empty, or a ``request_id`` that is not a string.
    """
    if len(body) > max_body_bytes:
        raise ServingError(
            413, "too_large", f"request body of {len(body):,} bytes exceeds {max_body_bytes:,}"
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ServingError(400, "bad_request", f"request body is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ServingError(
            400, "bad_request", f"request body must be a JSON object, got {_json_name(data)}"
        )
    modes = [key for key in ("rows", "entities") if key in data]
    if len(modes) != 1:
        raise ServingError(
            400,
            "bad_request",
            "request body must hold exactly one of 'rows' or 'entities'"
            + (" (got both)" if len(modes) == 2 else ""),
        )
    mode = modes[0]
    items = data[mode]
    if not isinstance(items, list):
        raise ServingError(
            400, "bad_request", f"'{mode}' must be a list of objects, got {_json_name(items)}"
        )
    if not items:
        raise ServingError(400, "bad_request", f"'{mode}' is empty")
    if len(items) > max_rows:
        raise ServingError(
            413,
            "too_large",
            f"'{mode}' holds {len(items):,} items, more than max_rows={max_rows:,}",
        )
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ServingError(
                400, "bad_request", f"{mode}[{i}] must be an object, got {_json_name(item)}"
            )
    request_id = data.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise ServingError(
            400, "bad_request", f"request_id must be a string, got {_json_name(request_id)}"
        )
    return PredictRequest(mode, items, request_id)


def _check_value(col: InputColumn, value: Any, index: int, mode: str) -> None:
    if value is None:
        raise ServingError(
            422,
            "invalid_input",
            f"{mode}[{index}]: field '{col.name}' is null (no value to feed the model)",
        )
    accepted = _ACCEPTS.get(col.type or "")
    if accepted is None:
        return
    bad = not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted)
    if not bad and isinstance(value, float) and not math.isfinite(value):
        bad = True
    if bad:
        raise ServingError(
            422,
            "invalid_input",
            f"{mode}[{index}]: field '{col.name}' expects {col.type}, got {_json_name(value)} {_show(value)}",
        )


def columns_from_rows(
    rows: Sequence[Mapping[str, Any]],
    inputs: Sequence[InputColumn],
    *,
    echo: Sequence[str] = (),
    mode: str = "rows",
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """The model's feature columns (and the ``echo`` columns present in every row) of ``rows``.

    Values are checked against the MLflow type of each input column; nothing is filled in.

    :returns: ``(features, echoed)``: column name -> values in row order.
    :raises ServingError: 422 a required column missing from a row, a null value or a value of
        the wrong JSON type (names the row index, the field and the value).
    """
    features: dict[str, list[Any]] = {}
    for col in inputs:
        values = []
        name = col.name
        for i, row in enumerate(rows):
            if name not in row:
                if not col.required:
                    break
                raise ServingError(
                    422, "invalid_input", f"{mode}[{i}]: missing feature column '{name}'"
                )
            value = row[name]
            _check_value(col, value, i, mode)
            values.append(value)
        else:
            features[name] = values
    echoed = {
        name: [row[name] for row in rows]
        for name in echo
        if name not in features and all(name in row for row in rows)
    }
    for name in echo:
        if name in features:
            echoed[name] = features[name]
    return features, {name: echoed[name] for name in echo if name in echoed}


def check_entities(entities: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Every entity names each join key with a scalar value.

    :raises ServingError: 422 naming the entity index and the key.
    """
    for i, entity in enumerate(entities):
        for key in keys:
            if key not in entity:
                raise ServingError(
                    422,
                    "invalid_input",
                    f"entities[{i}]: missing entity key '{key}' (keys: {list(keys)})",
                )
            value = entity[key]
            if value is None or isinstance(value, (list, dict, bool, float)):
                raise ServingError(
                    422,
                    "invalid_input",
                    f"entities[{i}]: entity key '{key}' must be an integer or a string, got {_json_name(value)} {_show(value)}",
                )


def frame_from_columns(features: Mapping[str, list[Any]], inputs: Sequence[InputColumn]) -> Any:
    """A pandas frame of the feature columns, typed as batch scoring feeds them
    (:func:`mlops_provider.core.scoring.model.feed_type`): integers as int64 (float64 when a
    value is fractional), floating point as float64/float32, strings as objects."""
    import numpy as np
    import pandas as pd

    data: dict[str, Any] = {}
    for col in inputs:
        if col.name not in features:
            continue
        values = features[col.name]
        if col.type in _NUMBER_TYPES:
            data[col.name] = np.asarray(
                values, dtype=np.float32 if col.type == "float" else np.float64
            )
        elif col.type in _INTEGER_TYPES:
            ints = all(type(v) is int for v in values)
            if ints and col.type == "integer":
                data[col.name] = np.asarray(values, dtype=np.int32)
            else:
                data[col.name] = np.asarray(values, dtype=np.int64 if ints else np.float64)
        elif col.type == "boolean":
            data[col.name] = np.asarray(values, dtype=bool)
        elif col.type == "datetime":
            data[col.name] = pd.to_datetime(values, utc=True)
        else:
            data[col.name] = np.asarray(values, dtype=object)
    return pd.DataFrame(data, copy=False)


def feed_signature(
    features: Mapping[str, list[Any]], inputs: Sequence[InputColumn]
) -> tuple[Any, ...] | None:
    """What decides the types :func:`frame_from_columns` gives these columns: the columns of
    requests with equal signatures, joined, are typed as each request's alone (integer columns
    become float64 when a value is fractional). ``None`` when joining could change a value
    (datetime strings are parsed together)."""
    key: list[Any] = []
    for col in inputs:
        values = features.get(col.name)
        if values is None:
            key.append(None)
        elif col.type == "datetime":
            return None
        elif col.type in _INTEGER_TYPES:
            key.append(all(type(v) is int for v in values))
        else:
            key.append(True)
    return tuple(key)


def canary_hit(share: float, request_id: str | None, draw: float) -> bool:
    """Whether a request goes to the canary: a ``request_id`` decides deterministically (its
    CRC32 mapped to [0, 1)), else ``draw`` (a uniform random number in [0, 1))."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    point = (zlib.crc32(request_id.encode()) / 2**32) if request_id is not None else draw
    return point < share
