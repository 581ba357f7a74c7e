"""Which columns a drift check compares.

By default (``columns=None``) the columns are detected: the reference profile's columns, or
the columns both datasets share, minus identifiers, timestamps, labels and the scoring
output's bookkeeping columns (:data:`DEFAULT_EXCLUDED_COLUMNS`,
:data:`DEFAULT_EXCLUDED_PATTERNS`) and minus the label and entity columns the reference
model's training run recorded. ``exclude_columns`` replaces these exclusions; ``columns``
lists the columns explicitly.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from mlops_provider.core.monitoring.errors import MonitoringError

__all__ = [
    "DEFAULT_EXCLUDED_COLUMNS",
    "DEFAULT_EXCLUDED_PATTERNS",
    "ColumnPlan",
    "excluded",
    "plan_columns",
    "supported",
]

#: Columns never compared when columns are detected: labels, event and scoring times,
#: partition keys and the scoring output's bookkeeping columns.
DEFAULT_EXCLUDED_COLUMNS: tuple[str, ...] = (
    "event_timestamp",
    "label",
    "target",
    "label_available_at",
    "created",
    "dt",
    "ds",
    "prediction",
    "probability",
    "model_name",
    "model_version",
    "model_run_id",
    "scored_at",
)
#: Name patterns (``fnmatch``) of identifiers and timestamps, excluded the same way.
DEFAULT_EXCLUDED_PATTERNS: tuple[str, ...] = ("id", "*_id", "*_at", "*_timestamp", "*_ts")


def excluded(name: str, exclude_columns: Sequence[str] | None, also: Collection[str] = ()) -> bool:
    """Whether column detection leaves ``name`` out.

    With ``exclude_columns=None`` the defaults apply (:data:`DEFAULT_EXCLUDED_COLUMNS`, the
    :data:`DEFAULT_EXCLUDED_PATTERNS` and the names in ``also``, e.g. the model's label); a
    given list replaces them (``fnmatch`` patterns allowed).
    """
    if exclude_columns is None:
        if name in DEFAULT_EXCLUDED_COLUMNS or name in also:
            return True
        patterns: Sequence[str] = DEFAULT_EXCLUDED_PATTERNS
    else:
        patterns = exclude_columns
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def supported(dtype: pa.DataType) -> bool:
    """Whether drift detection can compare a column of this Arrow type."""
    return bool(
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_dictionary(dtype)
        or pa.types.is_decimal(dtype)
        or pa.types.is_null(dtype)
    )


@dataclass
class ColumnPlan:
    """The columns to compare, the ones skipped (-> why) and those only one side has."""

    columns: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    only_in_reference: list[str] = field(default_factory=list)
    only_in_current: list[str] = field(default_factory=list)


def _listed(
    columns: Sequence[str],
    reference_columns: Mapping[str, pa.DataType | None],
    current_names: Sequence[str],
    reference_label: str,
    current_label: str,
) -> ColumnPlan:
    wanted = list(columns)
    if not wanted:
        raise MonitoringError("columns is an empty list: nothing to compare")
    missing_ref = [c for c in wanted if c not in reference_columns]
    if missing_ref:
        raise MonitoringError(
            f"column(s) {missing_ref} are not in the reference ({reference_label}); "
            f"it has: {sorted(reference_columns)}"
        )
    missing_cur = [c for c in wanted if c not in current_names]
    if missing_cur:
        raise MonitoringError(
            f"column(s) {missing_cur} are not in the current data ({current_label}); "
            f"it has: {list(current_names)}"
        )
    return ColumnPlan(wanted)


def _detected(
    exclude_columns: Sequence[str] | None,
    reference_columns: Mapping[str, pa.DataType | None],
    current_names: Sequence[str],
    reference_label: str,
    current_label: str,
    also: Collection[str],
) -> ColumnPlan:
    skipped: dict[str, str] = {}
    candidates = []
    for name, dtype in reference_columns.items():
        if excluded(name, exclude_columns, also):
            continue
        if dtype is not None and not supported(dtype):
            skipped[name] = f"unsupported type {dtype}"
            continue
        candidates.append(name)
    chosen = [c for c in candidates if c in current_names]
    if not chosen:
        raise MonitoringError(
            f"no columns to compare: the reference ({reference_label}) and the current data "
            f"({current_label}) share no comparable column (reference: {list(reference_columns)}, "
            f"current: {list(current_names)})"
        )
    return ColumnPlan(
        chosen,
        skipped,
        only_in_reference=[c for c in candidates if c not in current_names],
        only_in_current=[
            c
            for c in current_names
            if c not in reference_columns and not excluded(c, exclude_columns, also)
        ],
    )


def plan_columns(
    columns: Sequence[str] | None,
    exclude_columns: Sequence[str] | None,
    reference_columns: Mapping[str, pa.DataType | None],
    current_names: Sequence[str],
    *,
    reference_label: str,
    current_label: str,
    also_excluded: Collection[str] = (),
) -> ColumnPlan:
    """The columns to compare: ``columns`` (each must exist on both sides) or those detected.

    :param reference_columns: reference column -> Arrow type (``None`` for a profile column).
    :param also_excluded: more names detection leaves out (the model's label and entities).
    :raises MonitoringError: a listed column is missing on a side, or nothing to compare.
    """
    if columns is not None:
        return _listed(columns, reference_columns, current_names, reference_label, current_label)
    return _detected(
        exclude_columns,
        reference_columns,
        current_names,
        reference_label,
        current_label,
        also_excluded,
    )
