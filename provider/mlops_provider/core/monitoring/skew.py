"""Training-serving skew: the features a model was served online against the offline features
of the same entities at the same times. resolve -> compare -> publish.

* **resolve**: the rows of the online prediction log (the serving contract:
  ``<log>/dt=YYYY-MM-DD/part-*.parquet``, read by :func:`.performance_check.read_predictions`)
  for the days checked, sampled down to ``max_rows`` (seeded); the feature references: the
  ``features`` or ``feature_service`` given, else the ``mlops.feature_refs`` tag of the training
  run of each row's model (``model_run_id``; the ``registered_model_name`` alias holder for rows
  without one); the offline values: Feast historical retrieval
  (:func:`mlops_provider.core.features.build_training_set`) at each row's ``event_timestamp``
  (``scored_at`` when the log has none), the point in time of the request.
* **compare**: :func:`compare_features` (pure): per feature the rows compared, the mismatches
  (numbers within ``rtol``/``atol``, anything else exactly; a value served online where
  offline has one, or none served where offline has one, is a mismatch), the rows whose
  offline value is missing (counted apart, neither match nor mismatch) and a few mismatching
  entities; :func:`skew_verdict`: ``skew`` when a feature's mismatch rate exceeds
  ``max_mismatch_rate``.
* **publish**: the result (docs/results.md), the JSON + HTML report (:func:`render_skew_report`)
  and the monitoring run (:func:`.publish.publish_monitoring_result`).

Every error is raised before anything is written. Everything is Airflow-free.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlops_provider.core import io, models, reports
from mlops_provider.core.errors import ParameterError
from mlops_provider.core.features import (
    FeatureRequestError,
    build_training_set,
    check_feature_refs,
    resolve_feature_refs,
)
from mlops_provider.core.features.registry import join_keys
from mlops_provider.core.monitoring.errors import MonitoringError
from mlops_provider.core.monitoring.performance_check import (
    DAY_COLUMN,
    MODEL_NAME,
    MODEL_RUN_ID,
    MODEL_VERSION,
    SCORED_AT,
    read_predictions,
)
from mlops_provider.core.monitoring.publish import (
    DEFAULT_MONITORING_EXPERIMENT,
    MonitoringRun,
    check_report_location,
    publish_monitoring_result,
)
from mlops_provider.core.monitoring.reference import resolve_reference, training_record
from mlops_provider.core.params import as_float, as_int
from mlops_provider.core.results import make_result
from mlops_provider.core.runs import RunIdentity
from mlops_provider.core.times import iso, utcnow

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient

__all__ = [
    "DEFAULT_MAX_MISMATCH_RATE",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_SKEW_ATOL",
    "DEFAULT_SKEW_RTOL",
    "FeatureSkew",
    "SkewOptions",
    "check_skew",
    "compare_features",
    "render_skew_report",
    "sample_rows",
    "skew_result",
    "skew_verdict",
]

log = logging.getLogger(__name__)

SkewStatus = Literal["ok", "skew", "insufficient_data"]

#: A feature is skewed when more than this share of its compared rows differ.
DEFAULT_MAX_MISMATCH_RATE = 0.01
#: Numbers match when ``|online - offline| <= atol + rtol * |offline|``.
DEFAULT_SKEW_RTOL = 1e-6
DEFAULT_SKEW_ATOL = 1e-9
#: At most this many log rows are compared (a seeded sample of a larger log).
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_EXAMPLES = 5
#: The point in time of a logged request: the first of these the log has.
TIMESTAMP_COLUMNS = ("event_timestamp", SCORED_AT)
#: Log columns an example mismatch shows besides the entity keys and the time.
_EXAMPLE_COLUMNS = ("request_id", "variant", MODEL_VERSION)


# --------------------------------------------------------------------------- compare (pure)


@dataclass
class FeatureSkew:
    """The comparison of one feature.

    :param kind: ``numeric`` (compared within a tolerance) or ``exact``.
    :param rows: log rows checked.
    :param compared: rows with an offline value (``rows - offline_missing``).
    :param mismatches: compared rows whose online value differs (or is missing).
    :param offline_missing: rows without an offline value at their time (not compared).
    :param online_missing: compared rows served without a value (part of ``mismatches``).
    :param examples: the first mismatching rows: entity keys, time, online and offline value.
    """

    feature: str
    kind: str
    rows: int = 0
    compared: int = 0
    mismatches: int = 0
    offline_missing: int = 0
    online_missing: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mismatch_rate(self) -> float | None:
        """Mismatches per compared row (``None``: nothing compared)."""
        return self.mismatches / self.compared if self.compared else None

    @property
    def offline_missing_rate(self) -> float | None:
        return self.offline_missing / self.rows if self.rows else None

    def add(self, other: FeatureSkew, max_examples: int = DEFAULT_MAX_EXAMPLES) -> None:
        """Add the counts of ``other`` (the same feature on other rows)."""
        self.rows += other.rows
        self.compared += other.compared
        self.mismatches += other.mismatches
        self.offline_missing += other.offline_missing
        self.online_missing += other.online_missing
        self.examples = (self.examples + other.examples)[:max_examples]
        if self.kind != other.kind:
            self.kind = "exact"

    def to_dict(self, max_mismatch_rate: float) -> dict[str, Any]:
        rate, missing = self.mismatch_rate, self.offline_missing_rate
        return {
            "kind": self.kind,
            "rows": self.rows,
            "compared": self.compared,
            "mismatches": self.mismatches,
            "mismatch_rate": None if rate is None else round(rate, 6),
            "offline_missing": self.offline_missing,
            "offline_missing_rate": None if missing is None else round(missing, 6),
            "online_missing": self.online_missing,
            "skewed": rate is not None and rate > max_mismatch_rate,
            "examples": self.examples,
        }


def _plain(value: Any) -> Any:
    """A JSON-safe scalar (``None`` for a missing value)."""
    if value is None or (not isinstance(value, (str, bytes)) and bool(pd.isna(value))):
        return None
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_numeric(series: pd.Series) -> bool:
    return bool(
        pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
    )


def _missing(values: pd.Series) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool)


def _compare_one(
    online: pd.Series, offline: pd.Series, rtol: float, atol: float
) -> tuple[str, np.ndarray, np.ndarray]:
    """``(kind, offline missing, mismatch)`` masks of one feature."""
    if _is_numeric(online) and _is_numeric(offline):
        on = online.to_numpy(dtype="float64", na_value=np.nan)
        off = offline.to_numpy(dtype="float64", na_value=np.nan)
        off_missing = np.isnan(off)
        close = np.isclose(on, off, rtol=rtol, atol=atol, equal_nan=False)
        return "numeric", off_missing, ~off_missing & ~close
    off_missing = _missing(offline)
    on_missing = _missing(online)
    on_obj = online.astype(object).to_numpy()
    off_obj = offline.astype(object).to_numpy()
    equal = np.fromiter(
        (a == b for a, b in zip(on_obj, off_obj, strict=True)), dtype=bool, count=len(on_obj)
    )
    return "exact", off_missing, ~off_missing & (on_missing | ~equal)


def compare_features(
    online: pd.DataFrame,
    offline: pd.DataFrame,
    features: Sequence[str],
    *,
    context_columns: Sequence[str] = (),
    rtol: float = DEFAULT_SKEW_RTOL,
    atol: float = DEFAULT_SKEW_ATOL,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> dict[str, FeatureSkew]:
    """Compare the served values of ``features`` (``online``) with the offline ones, row by row.

    Both frames hold the same rows in the same order. Numbers (integers, floats, booleans) match
    when ``|online - offline| <= atol + rtol * |offline|``; other values must be equal. A row
    whose offline value is missing (null or NaN) is counted in ``offline_missing`` and not
    compared; a compared row served without a value is a mismatch (and counted in
    ``online_missing``).

    :param context_columns: ``online`` columns shown with each example (entity keys, time).
    :raises ValueError: the frames differ in length, or a feature is missing from one of them.
    """
    if len(online) != len(offline):
        raise ValueError(f"online has {len(online)} rows, offline {len(offline)}")
    absent = [f for f in features if f not in online.columns or f not in offline.columns]
    if absent:
        raise ValueError(f"feature(s) {absent} missing from the online or offline frame")
    online = online.reset_index(drop=True)
    offline = offline.reset_index(drop=True)
    out: dict[str, FeatureSkew] = {}
    for name in features:
        on, off = online[name], offline[name]
        kind, off_missing, mismatch = _compare_one(on, off, rtol, atol)
        compared = int((~off_missing).sum())
        examples = [
            {
                **{c: _plain(online.at[i, c]) for c in context_columns if c in online.columns},
                "online": _plain(on.iat[i]),
                "offline": _plain(off.iat[i]),
            }
            for i in np.flatnonzero(mismatch)[:max_examples]
        ]
        out[name] = FeatureSkew(
            feature=name,
            kind=kind,
            rows=len(online),
            compared=compared,
            mismatches=int(mismatch.sum()),
            offline_missing=int(off_missing.sum()),
            online_missing=int((_missing(on) & ~off_missing).sum()),
            examples=examples,
        )
    return out


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def skew_verdict(
    features: Mapping[str, FeatureSkew], max_mismatch_rate: float = DEFAULT_MAX_MISMATCH_RATE
) -> tuple[SkewStatus, list[str], list[str]]:
    """``(status, reasons, skewed features)``: ``skew`` when a feature's mismatch rate exceeds
    ``max_mismatch_rate``; ``insufficient_data`` when no feature had an offline value to
    compare with; else ``ok``."""
    skewed = [
        name
        for name, f in features.items()
        if f.mismatch_rate is not None and f.mismatch_rate > max_mismatch_rate
    ]
    rates = [f.mismatch_rate for f in features.values() if f.mismatch_rate is not None]
    status: SkewStatus
    if skewed:
        status = "skew"
        detail = ", ".join(
            f"{n} ({_pct(features[n].mismatch_rate or 0.0)} of {features[n].compared} rows)"
            for n in skewed
        )
        reasons = [
            f"skew: {len(skewed)} of {len(features)} feature(s) served online differ from the "
            f"offline features in more than {_pct(max_mismatch_rate)} of the rows: {detail}"
        ]
    elif not rates:
        status = "insufficient_data"
        reasons = [
            "nothing compared: the offline store has no value of any feature for the logged "
            "entities at their request times"
        ]
    else:
        status = "ok"
        reasons = [
            f"no skew: {len(rates)} feature(s) compared, at most {_pct(max(rates))} of the rows "
            f"differ (max_mismatch_rate {_pct(max_mismatch_rate)})"
        ]
    missing = [
        f"{n} ({f.offline_missing} of {f.rows})" for n, f in features.items() if f.offline_missing
    ]
    if missing:
        reasons.append(
            "rows without an offline value at their time (not compared): " + ", ".join(missing)
        )
    return status, reasons, skewed


def sample_rows(frame: pd.DataFrame, max_rows: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``frame``, drawn without replacement with ``seed`` and kept
    in their order (the same rows on a rerun)."""
    if max_rows is None or len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[picked].reset_index(drop=True)


# --------------------------------------------------------------------------- resolve


@dataclass
class _Group:
    """Log rows checked against one list of feature references."""

    refs: list[str]
    service: str | None
    positions: np.ndarray
    source: str

    @property
    def names(self) -> list[str]:
        return [r.split(":", 1)[1] for r in self.refs]


def _as_days(days: Sequence[date | datetime | str]) -> list[date]:
    out = []
    for day in days:
        if isinstance(day, datetime):
            out.append(day.date())
        elif isinstance(day, date):
            out.append(day)
        else:
            try:
                out.append(date.fromisoformat(str(day).strip()[:10]))
            except ValueError:
                raise ParameterError("days", f"{day!r} is not a YYYY-MM-DD day") from None
    if not out:
        raise ParameterError("days", "is empty: give the day(s) of the log to check")
    return sorted(set(out))


def _read_log(
    predictions_data: str, days: list[date], variants: Sequence[str] | None, conn_id: str | None
) -> tuple[pd.DataFrame, list[date]]:
    frame, missing = read_predictions(predictions_data, days, conn_id=conn_id)
    listed = ", ".join(d.isoformat() for d in days)
    if not len(frame):
        raise MonitoringError(
            f"prediction log {predictions_data} has no rows for {listed} (no partition "
            f"dt=YYYY-MM-DD with rows: was online traffic logged?): nothing to check"
        )
    if variants:
        if "variant" not in frame.columns:
            raise MonitoringError(
                f"prediction log {predictions_data} has no 'variant' column to select "
                f"{list(variants)} from"
            )
        frame = frame[frame["variant"].isin(list(variants))]
        if not len(frame):
            raise MonitoringError(
                f"prediction log {predictions_data} has no rows of variant(s) {list(variants)} "
                f"for {listed}: nothing to check"
            )
    return frame.reset_index(drop=True), missing


def _timestamp_column(frame: pd.DataFrame, given: str | None, where: str) -> str:
    candidates = (given,) if given else TIMESTAMP_COLUMNS
    for name in candidates:
        if name in frame.columns:
            return name
    raise MonitoringError(
        f"prediction log {where} has no request time column {list(candidates)}; it has: "
        f"{[c for c in frame.columns if c != DAY_COLUMN]}"
    )


def _model_run_ids(
    frame: pd.DataFrame,
    client: MlflowClient,
    registered_model_name: str | None,
    alias: str | None,
    where: str,
) -> pd.Series:
    """The training run of each row's model: ``model_run_id``, else the alias holder's run."""
    ids = frame[MODEL_RUN_ID] if MODEL_RUN_ID in frame.columns else pd.Series(None, frame.index)
    ids = ids.astype(object).where(ids.notna(), None)
    if ids.notna().all():
        return ids
    if not registered_model_name:
        raise MonitoringError(
            f"{int(ids.isna().sum())} row(s) of prediction log {where} name no model_run_id: "
            "give registered_model_name (its alias holder's training run names the features), "
            "features or feature_service"
        )
    holder = resolve_reference(client, registered_model_name=registered_model_name, alias=alias)
    return ids.fillna(holder.run_id)


def _feature_groups(
    frame: pd.DataFrame,
    store: FeatureStore,
    client: MlflowClient | None,
    *,
    features: Sequence[str] | None,
    feature_service: str | None,
    registered_model_name: str | None,
    alias: str | None,
    where: str,
) -> list[_Group]:
    """The rows to check against each list of feature references."""
    everything = np.arange(len(frame))
    try:
        if features or feature_service:
            refs, _ = resolve_feature_refs(store, features, feature_service)
            source = f"feature service {feature_service}" if feature_service else "features"
            return [_Group(refs, feature_service, everything, source)]
        if client is None:
            raise MonitoringError(
                "reading the model's feature references needs an MLflow client; or give "
                "features or feature_service"
            )
        run_ids = _model_run_ids(frame, client, registered_model_name, alias, where)
        by_refs: dict[tuple[str, ...], list[str]] = {}
        for run_id in sorted(set(run_ids)):
            recorded = training_record(client, run_id).feature_refs
            if not recorded:
                raise MonitoringError(
                    f"training run {run_id} (of the model in prediction log {where}) recorded "
                    f"no feature references (tag {models.FEATURE_REFS_TAG}): it was not trained "
                    "on a Feast training set; give features or feature_service"
                )
            checked = tuple(check_feature_refs(store, list(recorded)))
            by_refs.setdefault(checked, []).append(run_id)
    except FeatureRequestError as err:
        raise MonitoringError(f"feature references of prediction log {where}: {err}") from err
    return [
        _Group(
            list(refs),
            None,
            np.flatnonzero(run_ids.isin(runs).to_numpy()),
            f"{models.FEATURE_REFS_TAG} of training run(s) {', '.join(runs)}",
        )
        for refs, runs in by_refs.items()
    ]


def _check_log_columns(
    frame: pd.DataFrame, groups: Sequence[_Group], keys: Sequence[str], where: str
) -> None:
    for group in groups:
        missing = [n for n in group.names if n not in frame.columns]
        if missing:
            raise MonitoringError(
                f"prediction log {where} lacks feature column(s) {missing} of {group.source} "
                f"(the log must hold the features as fed to the model); it has: "
                f"{[c for c in frame.columns if c != DAY_COLUMN]}"
            )
    missing_keys = [k for k in keys if k not in frame.columns]
    if missing_keys:
        raise MonitoringError(
            f"prediction log {where} lacks entity column(s) {missing_keys} (the join keys of "
            f"the feature views); it has: {[c for c in frame.columns if c != DAY_COLUMN]}"
        )


def _offline(
    store: FeatureStore,
    rows: pd.DataFrame,
    group: _Group,
    keys: Sequence[str],
    timestamp_column: str,
) -> pd.DataFrame:
    """The offline values of the group's features at each row's time (one row per row)."""
    import pyarrow as pa

    entity = pa.Table.from_pandas(rows[[*keys, timestamp_column]], preserve_index=False)
    try:
        table = build_training_set(
            store,
            entity,
            features=None if group.service else group.refs,
            feature_service=group.service,
            timestamp_column=timestamp_column,
        )
    except FeatureRequestError as err:
        raise MonitoringError(f"offline features of the prediction log: {err}") from err
    except Exception as err:  # the offline store's own errors vary by backend
        raise MonitoringError(
            f"Feast historical retrieval for {len(rows):,} prediction log rows failed: "
            f"{type(err).__name__}: {err}"
        ) from err
    return table.select(group.names).to_pandas()


# --------------------------------------------------------------------------- publish


@dataclass
class _CheckedRows:
    """The log rows a check compares and what they are compared through."""

    frame: pd.DataFrame
    rows_logged: int
    missing_days: list[date]
    timestamp_column: str
    groups: list[_Group]
    refs: list[str]
    keys: list[str]

    def details(
        self, predictions_data: str, days: Sequence[date], options: SkewOptions
    ) -> dict[str, Any]:
        return {
            "predictions_data": str(predictions_data),
            "days": [d.isoformat() for d in days],
            "missing_days": [d.isoformat() for d in self.missing_days],
            "rows_logged": self.rows_logged,
            "sampled": len(self.frame) < self.rows_logged,
            "max_rows": options.max_rows,
            "seed": options.seed,
            "feature_refs": self.refs,
            "feature_source": "; ".join(g.source for g in self.groups),
            "timestamp_column": self.timestamp_column,
            "variants": _counts(self.frame, "variant"),
            "model_versions": _counts(self.frame, MODEL_VERSION),
            "rtol": options.rtol,
            "atol": options.atol,
        }


def _read_checked(
    predictions_data: str,
    days: list[date],
    store: FeatureStore,
    client: MlflowClient | None,
    *,
    features: Sequence[str] | None,
    feature_service: str | None,
    registered_model_name: str | None,
    alias: str | None,
    options: SkewOptions,
    conn_id: str | None,
) -> _CheckedRows:
    """Read the log rows of ``days``, sample them, resolve their feature references and check
    that the log holds the features and the entity keys."""
    logged, missing_days = _read_log(predictions_data, days, options.variants, conn_id)
    ts = _timestamp_column(logged, options.timestamp_column, predictions_data)
    frame = sample_rows(logged, options.max_rows, options.seed)
    groups = _feature_groups(
        frame,
        store,
        client,
        features=features,
        feature_service=feature_service,
        registered_model_name=registered_model_name,
        alias=alias,
        where=predictions_data,
    )
    refs = list(dict.fromkeys(r for g in groups for r in g.refs))
    keys = join_keys(store, refs)
    _check_log_columns(frame, groups, keys, predictions_data)
    return _CheckedRows(frame, len(logged), missing_days, ts, groups, refs, keys)


def _compare_groups(
    frame: pd.DataFrame, store: FeatureStore, read: _CheckedRows, options: SkewOptions
) -> dict[str, FeatureSkew]:
    """Compare each group of rows with its offline features; the counts merged per feature."""
    log.info(
        "Comparing %d feature(s) of %d prediction log rows (%d logged) with the offline store",
        len(read.refs),
        len(frame),
        read.rows_logged,
    )
    keys, ts = read.keys, read.timestamp_column
    context = [*keys, ts, *(c for c in _EXAMPLE_COLUMNS if c in frame.columns)]
    merged: dict[str, FeatureSkew] = {}
    for group in read.groups:
        rows = frame.iloc[group.positions].reset_index(drop=True)
        offline = _offline(store, rows, group, keys, ts)
        compared = compare_features(
            rows,
            offline,
            group.names,
            context_columns=context,
            rtol=options.rtol,
            atol=options.atol,
            max_examples=options.max_examples,
        )
        for name, skew in compared.items():
            if name in merged:
                merged[name].add(skew, options.max_examples)
            else:
                merged[name] = skew
    return merged


def _newest_model(frame: pd.DataFrame, timestamp_column: str) -> dict[str, Any] | None:
    if MODEL_VERSION not in frame.columns or MODEL_NAME not in frame.columns:
        return None
    newest = frame.sort_values(timestamp_column, kind="stable").iloc[-1]
    name, version = _plain(newest[MODEL_NAME]), _plain(newest[MODEL_VERSION])
    if name is None or version is None:
        return None
    run_id = _plain(newest[MODEL_RUN_ID]) if MODEL_RUN_ID in frame.columns else None
    return {
        "name": str(name),
        "version": str(version),
        "run_id": run_id,
        "uri": models.version_uri(str(name), str(version)),
    }


def _counts(frame: pd.DataFrame, column: str) -> dict[str, int]:
    if column not in frame.columns:
        return {}
    values = frame[column].astype(object).where(frame[column].notna(), "unknown")
    return {str(k): int(v) for k, v in values.astype(str).value_counts().sort_index().items()}


def _run_metrics(out: Mapping[str, Any]) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "skew": out["status"] == "skew",
        "rows": out["rows"],
        "rows_logged": out["rows_logged"],
        "n_features": out["n_features"],
        "n_skewed": out["n_skewed"],
        "worst_mismatch_rate": out["worst_mismatch_rate"],
    }
    for name, info in out["features"].items():
        metrics[f"mismatch_rate.{name}"] = info["mismatch_rate"]
        metrics[f"offline_missing_rate.{name}"] = info["offline_missing_rate"]
    return metrics


def _run_tags(out: Mapping[str, Any]) -> dict[str, str]:
    tags = {
        "mlops.skew_status": str(out["status"]),
        "mlops.predictions_data": str(out["predictions_data"]),
        "mlops.days": ",".join(out["days"]),
        "mlops.feature_refs": json.dumps(out["feature_refs"])[:5000],
    }
    model = out.get("model") or {}
    if model.get("name"):
        tags["mlops.reference_model_name"] = str(model["name"])
        tags["mlops.reference_model_version"] = str(model["version"])
    return tags


def _plot(features: Mapping[str, Mapping[str, Any]], threshold: float) -> str:
    names = list(features)
    fig = reports.new_figure(5.0, max(1.6, 0.28 * len(names) + 0.8))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    rates = [features[n]["mismatch_rate"] or 0.0 for n in names]
    missing = [features[n]["offline_missing_rate"] or 0.0 for n in names]
    colors = ["#c62828" if features[n]["skewed"] else "#4c72b0" for n in names]
    ax.barh(y - 0.2, rates, 0.4, color=colors, label="mismatch rate")
    ax.barh(y + 0.2, missing, 0.4, color="#bdbdbd", label="offline missing")
    ax.axvline(threshold, color="#c62828", linestyle="--", linewidth=1, label="max_mismatch_rate")
    ax.set_yticks(y, names, fontsize=6)
    ax.invert_yaxis()
    ax.tick_params(labelsize=6)
    ax.set_xlim(0, max(1e-3, threshold * 1.5, *rates, *missing) * 1.05)
    ax.legend(fontsize=6, loc="lower right")
    return reports.figure_to_img(
        fig,
        alt="mismatch rate per feature",
        caption="share of compared rows whose online value differs from the offline one",
    )


def render_skew_report(result: Mapping[str, Any], *, title: str) -> str:
    """A self-contained HTML page of a skew result (:func:`check_skew`'s): the verdict, a bar
    chart of the mismatch rate per feature, the per-feature table and example mismatches."""
    status = result["status"]
    ok = {"ok": True, "skew": False}.get(status)
    threshold = float(result["max_mismatch_rate"])
    facts = [
        ("prediction log", result["predictions_data"]),
        ("days", ", ".join(result["days"])),
        ("days without a partition", ", ".join(result["missing_days"]) or "none"),
        ("rows compared", f"{result['rows']:,} of {result['rows_logged']:,} logged"),
        ("feature references", result["feature_source"]),
        ("point in time", result["timestamp_column"]),
        ("max_mismatch_rate", _pct(threshold)),
        ("tolerance (numbers)", f"rtol {result['rtol']:g}, atol {result['atol']:g}"),
        ("variants", ", ".join(f"{k} ({v})" for k, v in result["variants"].items()) or "n/a"),
    ]
    summary = f"<p>{reports.badge(ok, status)}</p>" + reports.table_html(facts, ["", ""])
    summary += "<ul>" + "".join(f"<li>{reports.escape(r)}</li>" for r in result["reasons"])
    summary += "</ul>"
    features = result["features"]
    ordered = sorted(features, key=lambda n: -(features[n]["mismatch_rate"] or 0.0))
    rows = [
        {
            "feature": n,
            "kind": features[n]["kind"],
            "compared": features[n]["compared"],
            "mismatches": features[n]["mismatches"],
            "mismatch rate": features[n]["mismatch_rate"],
            "offline missing": features[n]["offline_missing"],
            "online missing": features[n]["online_missing"],
            "verdict": reports.badge(
                None if features[n]["mismatch_rate"] is None else not features[n]["skewed"],
                "skew" if features[n]["skewed"] else "ok",
            ),
        }
        for n in ordered
    ]
    examples = [
        {"feature": n, **example}
        for n in ordered
        if features[n]["mismatches"]
        for example in features[n]["examples"]
    ]
    sections = [
        ("Summary", summary),
        ("Mismatch rate per feature", _plot({n: features[n] for n in ordered}, threshold)),
        ("Features", reports.table_html(rows)),
        ("Example mismatches", reports.table_html(examples)),
    ]
    return reports.page(title, sections, subtitle="online features vs offline features;")


def skew_result(
    compared: Mapping[str, FeatureSkew],
    max_mismatch_rate: float,
    *,
    model: Any = None,
    rows: int | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The task's result (docs/results.md): status ``ok`` / ``skew`` / ``insufficient_data``
    (:func:`skew_verdict`), ``passed`` = not skew, ``model`` = the version that served the
    newest row, ``rows`` = rows compared, then the per-feature comparison and the ``details``
    (docs/monitoring.md)."""
    status, reasons, skewed = skew_verdict(compared, max_mismatch_rate)
    rates = [s.mismatch_rate for s in compared.values() if s.mismatch_rate is not None]
    return make_result(
        status=status,
        passed=status != "skew",
        reasons=reasons,
        model=model,
        rows=rows,
        max_mismatch_rate=max_mismatch_rate,
        worst_mismatch_rate=round(max(rates), 6) if rates else None,
        skewed_features=skewed,
        n_features=len(compared),
        n_skewed=len(skewed),
        features={n: s.to_dict(max_mismatch_rate) for n, s in compared.items()},
        **details,
    )


def _publish(
    out: dict[str, Any],
    *,
    name: str,
    day: date,
    report_uri: str | None,
    run: MonitoringRun,
    conn_id: str | None,
) -> None:
    publish_monitoring_result(
        out,
        kind="skew",
        name=name,
        day=day,
        html=render_skew_report(out, title=f"Training-serving skew: {name} {day.isoformat()}"),
        json_name="skew.json",
        metrics=_run_metrics(out),
        tags=_run_tags(out),
        report_uri=report_uri,
        run=run,
        document_extra={"generated_at": iso(utcnow())},
        conn_id=conn_id,
    )


@dataclass(frozen=True)
class SkewOptions:
    """How a skew check compares: :meth:`of` checks the values (``ParameterError``).

    :param max_mismatch_rate: a feature is skewed above this share of mismatching rows.
    :param rtol: relative tolerance of numbers; ``atol``: absolute tolerance.
    :param max_rows: rows compared at most (a seeded sample of a larger log; ``None``: all).
    :param seed: seed of the sample.
    :param max_examples: example mismatching rows kept per feature.
    :param timestamp_column: the point in time of a request (default: the first of
        :data:`TIMESTAMP_COLUMNS` the log has).
    :param variants: only the rows of these variants (default all).
    """

    max_mismatch_rate: float = DEFAULT_MAX_MISMATCH_RATE
    rtol: float = DEFAULT_SKEW_RTOL
    atol: float = DEFAULT_SKEW_ATOL
    max_rows: int | None = DEFAULT_MAX_ROWS
    seed: int = 0
    max_examples: int = DEFAULT_MAX_EXAMPLES
    timestamp_column: str | None = None
    variants: tuple[str, ...] | None = None

    @classmethod
    def of(cls, values: SkewOptions | Mapping[str, Any] | None) -> SkewOptions:
        if isinstance(values, SkewOptions):
            return values
        v = dict(values or {})
        unknown = sorted(set(v) - set(cls.__dataclass_fields__))
        if unknown:
            raise ParameterError("options", f"unknown option(s) {unknown}")
        variants = v.get("variants")
        return cls(
            max_mismatch_rate=as_float(
                v.get("max_mismatch_rate"),
                "max_mismatch_rate",
                default=DEFAULT_MAX_MISMATCH_RATE,
                minimum=0.0,
                maximum=1.0,
            )
            or 0.0,
            rtol=as_float(v.get("rtol"), "rtol", default=DEFAULT_SKEW_RTOL, minimum=0.0) or 0.0,
            atol=as_float(v.get("atol"), "atol", default=DEFAULT_SKEW_ATOL, minimum=0.0) or 0.0,
            max_rows=as_int(v.get("max_rows"), "max_rows", default=DEFAULT_MAX_ROWS, minimum=1),
            seed=as_int(v.get("seed"), "seed", default=0) or 0,
            max_examples=as_int(
                v.get("max_examples"), "max_examples", default=DEFAULT_MAX_EXAMPLES, minimum=0
            )
            or 0,
            timestamp_column=v.get("timestamp_column") or None,
            variants=tuple(str(x) for x in variants) if variants else None,
        )


def check_skew(
    predictions_data: str,
    days: Sequence[date | datetime | str],
    *,
    store: FeatureStore,
    client: MlflowClient | None = None,
    features: Sequence[str] | None = None,
    feature_service: str | None = None,
    registered_model_name: str | None = None,
    alias: str | None = models.DEFAULT_ALIAS,
    options: SkewOptions | Mapping[str, Any] | None = None,
    report_uri: str | None = None,
    report_name: str | None = None,
    data_interval_start: datetime | None = None,
    data_interval_end: datetime | None = None,
    identity: RunIdentity | None = None,
    experiment_name: str | None = DEFAULT_MONITORING_EXPERIMENT,
    artifact_location: str | None = None,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Compare the features served online with the offline ones, write the report, log the run.

    The parameters are TrainingServingSkewOperator's (docs/monitoring.md); ``options`` holds
    the comparison's (a :class:`SkewOptions` or its fields), ``store`` is the Feast feature
    store, ``client`` the MLflow client (the models' feature references, the monitoring run),
    ``identity`` the task whose monitoring run is logged to, ``conn_id`` the connection of
    remote URIs.

    :returns: the result (docs/results.md; status ``ok`` / ``skew`` / ``insufficient_data``).
    :raises CoreError: (MonitoringError, ParameterError, ModelNotFoundError) a report location
        that cannot be written, no log rows for the days, no feature references, feature or
        entity columns missing from the log, a Feast retrieval error: raised before anything is
        written (a failure while publishing ends the monitoring run FAILED).
    """
    started = time.perf_counter()
    opts = SkewOptions.of(options)
    if features and feature_service:
        raise ParameterError("features", "give features or feature_service, not both")
    checked_days = _as_days(days)
    check_report_location(report_uri, conn_id=conn_id)
    read = _read_checked(
        predictions_data,
        checked_days,
        store,
        client,
        features=features,
        feature_service=feature_service,
        registered_model_name=registered_model_name,
        alias=alias,
        options=opts,
        conn_id=conn_id,
    )
    frame = read.frame
    out = skew_result(
        _compare_groups(frame, store, read, opts),
        opts.max_mismatch_rate,
        model=_newest_model(frame, read.timestamp_column),
        rows=len(frame),
        **read.details(predictions_data, checked_days, opts),
        feature_service=feature_service,
        data_interval_start=iso(data_interval_start),
        data_interval_end=iso(data_interval_end),
    )
    name = report_name or registered_model_name or (out["model"] or {}).get("name")
    _publish(
        out,
        name=name or io.dataset_name(predictions_data),
        day=(data_interval_start.date() if data_interval_start else None) or checked_days[-1],
        report_uri=report_uri,
        run=MonitoringRun(client, identity, experiment_name, artifact_location),
        conn_id=conn_id,
    )
    log.info(
        "Skew check done in %.1fs: status=%s, %d row(s), skewed features %s",
        time.perf_counter() - started,
        out["status"],
        len(frame),
        out["skewed_features"],
    )
    return out
