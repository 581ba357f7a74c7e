"""The one result shape every operator returns to XCom (documented in docs/results.md).

Every result holds the common keys below, then the operator's own details::

    status         str        the verdict in one word (each operator documents its words)
    passed         bool       whether what the task checks or does held (True on plain success)
    reasons        list[str]  why, in sentences (empty when there is nothing to say)
    model          dict|None  {"name", "version", "run_id", "uri"} of the model the task is about
    mlflow_run_id  str|None   the MLflow run the task wrote to
    report_uri     str|None   the HTML report the task wrote
    rows           int|None   rows the task read, scored or wrote (its own docs say which)

:func:`make_result` builds one; :func:`check_result` lists what is wrong with one (the DAG
contract tests use it). Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["COMMON_KEYS", "MODEL_KEYS", "check_result", "make_result", "model_dict"]

#: key -> accepted types (``None`` allowed where listed).
COMMON_KEYS: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "passed": (bool,),
    "reasons": (list,),
    "model": (dict, type(None)),
    "mlflow_run_id": (str, type(None)),
    "report_uri": (str, type(None)),
    "rows": (int, type(None)),
}
MODEL_KEYS = ("name", "version", "run_id", "uri")


def model_dict(model: Any) -> dict[str, Any] | None:
    """The ``model`` entry from a ``ModelVersion`` (or anything with ``to_dict``), a mapping
    with the model keys, or ``None``."""
    if model is None:
        return None
    if hasattr(model, "to_dict"):
        model = model.to_dict()
    if not isinstance(model, Mapping):
        raise TypeError(f"model must be a ModelVersion, a mapping or None, got {model!r}")
    out = {key: model.get(key) for key in MODEL_KEYS}
    for key in ("version", "run_id", "name"):
        if out[key] is not None:
            out[key] = str(out[key])
    if model.get("alias"):
        out["alias"] = model["alias"]
    return out


def make_result(
    *,
    status: str,
    passed: bool,
    reasons: Iterable[str] = (),
    model: Any = None,
    mlflow_run_id: str | None = None,
    report_uri: str | None = None,
    rows: int | None = None,
    **details: Any,
) -> dict[str, Any]:
    """A result with the common keys first, then the operator's ``details``."""
    result: dict[str, Any] = {
        "status": str(status),
        "passed": bool(passed),
        "reasons": [str(r) for r in reasons],
        "model": model_dict(model),
        "mlflow_run_id": None if mlflow_run_id is None else str(mlflow_run_id),
        "report_uri": None if report_uri is None else str(report_uri),
        "rows": None if rows is None else int(rows),
    }
    result.update(details)
    return result


def check_result(result: Any) -> list[str]:
    """Problems of a result against the common shape (empty when it conforms)."""
    if not isinstance(result, Mapping):
        return [f"result is {type(result).__name__}, not a mapping"]
    problems = []
    for key, types in COMMON_KEYS.items():
        if key not in result:
            problems.append(f"missing key {key!r}")
        elif not isinstance(result[key], types) or (
            key == "rows" and isinstance(result[key], bool)
        ):
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            problems.append(f"{key!r} is {result[key]!r}, expected {names}")
    reasons = result.get("reasons")
    if isinstance(reasons, list) and not all(isinstance(r, str) for r in reasons):
        problems.append("'reasons' must hold strings only")
    model = result.get("model")
    if isinstance(model, Mapping):
        missing = [k for k in MODEL_KEYS if k not in model]
        if missing:
            problems.append(f"'model' lacks {missing}")
    return problems
