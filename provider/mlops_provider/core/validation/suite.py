"""Expectation suites: read, check completely, and bind their ``$PARAMETER`` values.

A *suite* is GX's own JSON format (``{"name": ..., "expectations": [{"type": "expect_...",
"kwargs": {...}}]}``), given as a path/URI of such a file, a suite dict, or a list of
expectation dicts. :func:`read_suite` checks it completely (JSON syntax, known expectation
types, valid kwargs) before any data is read; :func:`prepare_parameters` checks that every
plain ``$PARAMETER`` name has a value. Every problem raises :class:`SuiteError` naming the suite
and the expectation.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeAlias

from mlops_provider.core import io
from mlops_provider.core.errors import InputError, did_you_mean
from mlops_provider.core.times import iso, utcnow

__all__ = [
    "SuiteError",
    "SuiteSpec",
    "column_label",
    "load_suite",
    "prepare_parameters",
    "quiet_gx_logging",
    "read_suite",
    "suite_parameter_names",
]

#: A suite as the callers give it: a file path/URI, a suite dict, or a list of expectations.
SuiteSpec: TypeAlias = str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Mapping[str, Any]

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
COLUMN_KWARGS = ("column", "column_A", "column_B")
COLUMN_LIST_KWARGS = ("column_list",)
_ENTRY_KEYS = {
    "type",
    "kwargs",
    "meta",
    "id",
    "notes",
    "description",
    "rendered_content",
    "severity",
}


class SuiteError(InputError):
    """An expectation suite is unusable: missing file, invalid JSON, unknown expectation type,
    invalid kwargs or a suite parameter without a value. The message names the suite and the
    expectation."""


def quiet_gx_logging() -> None:
    """Raise GX's own logger to WARNING unless the user configured it.

    GX logs its API registration and data source loading at INFO on import and on every
    context, which buries the task log.
    """
    logger = logging.getLogger("great_expectations")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def referenced_columns(kwargs: Mapping[str, Any]) -> list[str]:
    """The columns an expectation's kwargs name, in kwargs order."""
    cols = [str(kwargs[k]) for k in COLUMN_KWARGS if kwargs.get(k) is not None]
    for key in COLUMN_LIST_KWARGS:
        if isinstance(kwargs.get(key), (list, tuple)):
            cols.extend(str(c) for c in kwargs[key])
    return cols


def column_label(kwargs: Mapping[str, Any]) -> str | None:
    """The column(s) an expectation is about, comma-separated; None for a table expectation."""
    return ",".join(referenced_columns(kwargs)) or None


# ------------------------------------------------------------------------------------------
# Reading and checking
# ------------------------------------------------------------------------------------------
def _resolve_suite_location(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if "://" in text and not text.startswith("file://"):
        return text
    local = Path(text[len("file://") :] if text.startswith("file://") else text).expanduser()
    from mlops_provider.core.config import resolve_project_file

    return str(resolve_project_file(local))


def _registered_types() -> list[str]:
    quiet_gx_logging()
    from great_expectations.expectations.registry import (
        list_registered_expectation_implementations,
    )

    return sorted(list_registered_expectation_implementations())


def _check_kwargs(where: str, kind: str, kwargs: Mapping[str, Any]) -> None:
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    try:
        ExpectationConfiguration(type=kind, kwargs=dict(kwargs)).to_domain_obj()
    except Exception as err:  # pydantic ValidationError and friends: report them all alike
        detail = " ".join(str(err).split())
        raise SuiteError(f"{where} ({kind}) has invalid kwargs {dict(kwargs)!r}: {detail}") from err


def _check_expectation(source: str, index: int, item: Any, known: Sequence[str]) -> dict:
    where = f"suite {source}: expectation #{index}"
    if not isinstance(item, Mapping):
        raise SuiteError(f"{where} must be an object with 'type' and 'kwargs', got {item!r}")
    entry = dict(item)
    if "type" not in entry and "expectation_type" in entry:  # GX 0.x spelling
        entry["type"] = entry.pop("expectation_type")
    kind = entry.get("type")
    if not isinstance(kind, str) or not kind:
        raise SuiteError(f"{where} has no 'type' (e.g. 'expect_column_values_to_not_be_null')")
    if kind not in known:
        hint = did_you_mean(kind, known)
        raise SuiteError(f"{where} has unknown expectation type {kind!r}{hint}")
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise SuiteError(f"{where} ({kind}): 'kwargs' must be an object, got {kwargs!r}")
    unknown_keys = set(entry) - _ENTRY_KEYS
    if unknown_keys:
        raise SuiteError(f"{where} ({kind}) has unknown key(s) {sorted(unknown_keys)}")
    entry["kwargs"] = dict(kwargs)
    _check_kwargs(where, kind, kwargs)
    return entry


def _read_suite_file(path: str | os.PathLike[str], conn_id: str | None) -> tuple[str, Any]:
    """``(location, parsed JSON)`` of a suite file."""
    location = _resolve_suite_location(path)
    try:
        text = io.read_text(location, conn_id=conn_id)
    except io.DatasetNotFound:
        raise SuiteError(f"suite file {location} does not exist") from None
    except (OSError, io.DatasetError) as err:
        raise SuiteError(f"suite file {location} is not readable: {err}") from err
    try:
        return location, json.loads(text)
    except json.JSONDecodeError as err:
        raise SuiteError(
            f"suite file {location} is not valid JSON: {err.msg} at line {err.lineno}, "
            f"column {err.colno} (char {err.pos})"
        ) from err


def read_suite(suite: SuiteSpec, *, conn_id: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Load and check a suite; return its name and its expectation dicts.

    :param suite: a path or URI of a GX suite JSON file (relative paths are looked up in the
        working directory, then in ``$MLOPS_PROJECT_ROOT``), a suite dict with
        ``expectations``, or a list of expectation dicts (``{"type": ..., "kwargs": {...}}``).
    :param conn_id: connection for a remote suite file.
    :raises SuiteError: the file is missing or not valid JSON (the message names the file and
        the position of the error), an expectation type is unknown (with close names), or an
        expectation's kwargs are invalid.
    """
    name: str | None = None
    if isinstance(suite, (str, os.PathLike)):
        source, data = _read_suite_file(suite, conn_id)
        name = Path(source.rstrip("/")).stem
    else:
        source, data = "<inline>", suite
    if isinstance(data, Mapping):
        if "expectations" not in data:
            raise SuiteError(f"suite {source} has no 'expectations' list")
        name = str(data.get("name") or data.get("expectation_suite_name") or name or "suite")
        items = data["expectations"]
    else:
        items = data
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise SuiteError(
            f"suite {source} must be a list of expectations, got {type(items).__name__}"
        )
    if not items:
        raise SuiteError(f"suite {source} has no expectations")
    known = _registered_types()
    expectations = [_check_expectation(source, i, item, known) for i, item in enumerate(items)]
    return name or "inline_suite", expectations


def load_suite(suite: SuiteSpec, *, conn_id: str | None = None) -> list[dict[str, Any]]:
    """The checked expectation dicts of a suite file or list (see :func:`read_suite`)."""
    return read_suite(suite, conn_id=conn_id)[1]


# ------------------------------------------------------------------------------------------
# Suite parameters
# ------------------------------------------------------------------------------------------
def _parameter_name(value: Any) -> str | None:
    if isinstance(value, Mapping) and "$PARAMETER" in value:
        return str(value["$PARAMETER"]).strip()
    return None


def suite_parameter_names(expectations: Sequence[Mapping[str, Any]]) -> set[str]:
    """Names used as ``{"$PARAMETER": "name"}`` in the expectations' kwargs (plain names only;
    expressions such as ``now() - timedelta(days=1)`` are left to GX)."""
    names: set[str] = set()
    for item in expectations:
        for value in dict(item.get("kwargs") or {}).values():
            expr = _parameter_name(value)
            if expr is not None and _PARAM_NAME.match(expr):
                names.add(expr)
    return names


def _parameter_value(value: Any) -> Any:
    # GX compares datetime columns with ISO strings (it parses them) and keeps its result JSON
    # clean that way; pendulum DateTimes are datetimes too.
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def prepare_parameters(
    suite_name: str,
    expectations: Sequence[Mapping[str, Any]],
    suite_parameters: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The values GX gets for ``$PARAMETER`` kwargs: datetimes as ISO strings, ``now`` (UTC)
    unless given.

    :raises SuiteError: a plain parameter name has no value (the expectations using it named).
    """
    params = {str(k): _parameter_value(v) for k, v in dict(suite_parameters or {}).items()}
    params.setdefault("now", utcnow().isoformat())
    missing = sorted(suite_parameter_names(expectations) - set(params))
    if missing:
        users = [
            f"{e['type']}({column_label(e['kwargs']) or ''})"
            for e in expectations
            if any(_parameter_name(v) in missing for v in e["kwargs"].values())
        ]
        raise SuiteError(
            f"suite {suite_name}: no value for suite parameter(s) {missing} used by "
            f"{', '.join(users)}; given: {sorted(params)}"
        )
    return params
