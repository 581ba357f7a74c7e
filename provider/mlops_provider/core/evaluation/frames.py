"""Model input frames: the same dtypes in training, evaluation and scoring.

Neutral ground shared by ``core.training`` and ``core.evaluation`` (which never imports
training): :func:`normalize_frame` and :func:`labelled_rows`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

__all__ = ["labelled_rows", "normalize_frame"]

log = logging.getLogger(__name__)


def _plain(col: pd.Series) -> pd.Series | None:
    """``col`` with a plain numpy dtype, or None when it already has one (or has no plain
    equivalent)."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return col.astype(object).where(col.notna(), None)
    if not pd.api.types.is_extension_array_dtype(dtype):
        return None
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.Series(values, index=col.index, name=col.name)
    if pd.api.types.is_string_dtype(dtype):
        return col.astype(object).where(col.notna(), None)
    return None


def normalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy dtypes: nullable numbers/booleans -> float64 (NaN), strings and categories
    -> object (None).

    The same dtypes ``pyarrow`` produces by default, so a model sees identical inputs in
    training and in scoring. Returns ``frame`` itself when nothing changes.
    """
    out = {}
    changed = False
    for name in frame.columns:
        plain = _plain(frame[name])
        changed = changed or plain is not None
        out[name] = frame[name] if plain is None else plain
    return pd.DataFrame(out, index=frame.index) if changed else frame


def labelled_rows(frame: pd.DataFrame, target: str, what: str) -> tuple[pd.DataFrame, int]:
    """The rows of ``frame`` whose ``target`` is set (index reset) and how many were dropped
    (logged, naming ``what``). The caller checks that ``target`` exists and what an empty
    result means."""
    labelled = frame[target].notna()
    dropped = int((~labelled).sum())
    if dropped:
        log.warning("%s: dropped %d row(s) without a %r label", what, dropped, target)
        frame = frame[labelled].reset_index(drop=True)
    return frame, dropped
