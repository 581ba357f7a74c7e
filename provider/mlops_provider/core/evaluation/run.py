"""Model metrics and the champion/challenger gate.

Two halves:

- pure functions: :func:`compute_metrics` / :func:`score_model` (the standard metrics, shared
  with training so the holdout metrics of a run and an evaluation mean the same thing),
  :func:`parse_thresholds` and :func:`apply_gate` (the decision and a reason for every check);
- :func:`evaluate_candidate`: loads the candidate and the current holder of an alias from MLflow,
  scores both on the same evaluation data, applies the gate, renders the HTML report and records
  ``evaluation/result.json`` + ``evaluation/report.html`` on the candidate's run.

Metric directions: ``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc`` and ``r2`` are
higher-is-better; ``log_loss``, ``rmse`` and ``mae`` are lower-is-better. An *improvement* is
always measured in the good direction (a drop of ``rmse`` is a positive improvement).

Binary classification: the positive class is the greater label of the model's ``classes_``
(``1`` for 0/1, ``True`` for booleans, the alphabetically last string); precision, recall and
f1 are those of the positive class. Multiclass: macro averages, one-vs-rest macro ROC AUC.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlops_provider.core.errors import InputError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_provider.core.mlflow_target import MlflowTarget

log = logging.getLogger(__name__)

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "LOWER_IS_BETTER",
    "PRIMARY_METRIC",
    "THRESHOLD_KEYS",
    "EVALUATION_RESULT_PATH",
    "EVALUATION_REPORT_PATH",
    "EvaluationError",
    "EvaluationDataError",
    "Check",
    "ModelRef",
    "ModelScores",
    "EvaluationResult",
    "compute_metrics",
    "score_model",
    "parse_thresholds",
    "apply_gate",
    "model_feature_columns",
    "resolve_model_uri",
    "resolve_alias_holder",
    "evaluate_candidate",
]

Task = Literal["classification", "regression"]

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
PRIMARY_METRIC: dict[str, str] = {"classification": "roc_auc", "regression": "rmse"}
THRESHOLD_KEYS: tuple[str, ...] = (
    "min",
    "max",
    "min_improvement",
    "min_relative_improvement",
    "max_regression",
)
EVALUATION_RESULT_PATH = "evaluation/result.json"
EVALUATION_REPORT_PATH = "evaluation/report.html"


class EvaluationError(InputError):
    """The evaluation cannot run: bad thresholds, unknown model, incompatible models."""


class EvaluationDataError(EvaluationError):
    """The evaluation data cannot be scored (missing columns, no rows, no labels)."""


def metric_names(task: str) -> tuple[str, ...]:
    """The standard metrics of a task."""
    if task == "classification":
        return CLASSIFICATION_METRICS
    if task == "regression":
        return REGRESSION_METRICS
    raise EvaluationError(f"unknown task {task!r}: expected 'classification' or 'regression'")


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better."""
    return metric not in LOWER_IS_BETTER


# --------------------------------------------------------------------------- metrics


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    """A metric value, or None when it is undefined on this data (e.g. one class only)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _finite_or_none(fn(*args, **kwargs))
    except ValueError as err:
        log.info("metric %s undefined on this data: %s", getattr(fn, "__name__", fn), err)
        return None


def compute_metrics(
    task: str,
    y_true: Any,
    y_pred: Any,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float | None]:
    """The standard metrics of ``task``; an undefined metric (one class only ...) is None.

    :param proba: class probabilities (classification), columns in the order of ``classes``.
    :param classes: the model's ``classes_``.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if task == "regression":
        yt = y_true.astype(np.float64)
        yp = y_pred.astype(np.float64)
        return {
            "rmse": _safe(lambda a, b: math.sqrt(skm.mean_squared_error(a, b)), yt, yp),
            "mae": _safe(skm.mean_absolute_error, yt, yp),
            "r2": _safe(skm.r2_score, yt, yp),
        }
    if task != "classification":
        raise EvaluationError(f"unknown task {task!r}")
    labels = list(classes) if classes is not None else sorted(set(y_true) | set(y_pred))
    out: dict[str, float | None] = {"accuracy": _safe(skm.accuracy_score, y_true, y_pred)}
    if len(labels) <= 2:
        positive = labels[-1]
        t, p = y_true == positive, y_pred == positive
        out["precision"] = _safe(skm.precision_score, t, p, zero_division=0)
        out["recall"] = _safe(skm.recall_score, t, p, zero_division=0)
        out["f1"] = _safe(skm.f1_score, t, p, zero_division=0)
        if proba is not None and len(labels) == 2:
            score = np.asarray(proba)[:, 1]
            out["roc_auc"] = _safe(skm.roc_auc_score, t, score)
            out["log_loss"] = _safe(skm.log_loss, t, score, labels=[False, True])
        else:
            out["roc_auc"] = out["log_loss"] = None
        return out
    out["precision"] = _safe(
        skm.precision_score, y_true, y_pred, average="macro", labels=labels, zero_division=0
    )
    out["recall"] = _safe(
        skm.recall_score, y_true, y_pred, average="macro", labels=labels, zero_division=0
    )
    out["f1"] = _safe(skm.f1_score, y_true, y_pred, average="macro", labels=labels, zero_division=0)
    if proba is not None:
        out["roc_auc"] = _safe(
            skm.roc_auc_score, y_true, proba, multi_class="ovr", average="macro", labels=labels
        )
        out["log_loss"] = _safe(skm.log_loss, y_true, proba, labels=labels)
    else:
        out["roc_auc"] = out["log_loss"] = None
    return out


@dataclass
class ModelScores:
    """Predictions of one model on one dataset, and its metrics."""

    task: str
    y_pred: np.ndarray
    metrics: dict[str, float | None]
    proba: np.ndarray | None = None
    classes: list[Any] | None = None

    @property
    def positive_score(self) -> np.ndarray | None:
        """Probability of the positive (greater) class for binary classification."""
        if self.proba is None or self.classes is None or len(self.classes) != 2:
            return None
        return np.asarray(self.proba)[:, 1]


def score_model(model: Any, x: pd.DataFrame, y: Any, task: str) -> ModelScores:
    """Predict ``x`` with a fitted model and compute the metrics of ``task`` against ``y``."""
    y_pred = np.asarray(model.predict(x))
    if task == "classification":
        proba = None
        fitted = getattr(model, "classes_", None)
        classes = list(fitted) if fitted is not None else None
        if hasattr(model, "predict_proba"):
            try:
                proba = np.asarray(model.predict_proba(x))
            except (AttributeError, NotImplementedError):
                proba = None
        metrics = compute_metrics(task, y, y_pred, proba, classes)
        return ModelScores(task, y_pred, metrics, proba, classes)
    return ModelScores(task, y_pred, compute_metrics(task, y, y_pred))


# --------------------------------------------------------------------------- the gate


@dataclass
class Threshold:
    """Thresholds of one metric (see :func:`parse_thresholds`)."""

    metric: str
    min: float | None = None
    max: float | None = None
    min_improvement: float | None = None
    min_relative_improvement: float | None = None
    max_regression: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k != "metric" and v is not None}


@dataclass
class Check:
    """One check of the gate and its human-readable reason."""

    metric: str
    check: str
    passed: bool
    reason: str
    candidate: float | None = None
    champion: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_thresholds(
    thresholds: Mapping[str, Any] | None, task: str | None = None
) -> list[Threshold]:
    """Validate ``{"metric": {"min": .., "max": .., "min_improvement": .., ...}}``.

    A bare number is shorthand for ``{"min": x}`` (``{"max": x}`` for lower-is-better metrics).

    :raises EvaluationError: unknown metric (for ``task``), unknown key, non-numeric value.
    """
    if thresholds is None:
        return []
    if not isinstance(thresholds, Mapping):
        raise EvaluationError(
            f"thresholds must be a mapping metric -> {{key: value}}, got {type(thresholds).__name__}"
        )
    known = metric_names(task) if task else CLASSIFICATION_METRICS + REGRESSION_METRICS
    out = []
    for metric, spec in thresholds.items():
        if metric not in known:
            raise EvaluationError(
                f"threshold for unknown metric {metric!r}"
                + (f" (task {task})" if task else "")
                + f"; available: {list(known)}"
            )
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            spec = {"max" if metric in LOWER_IS_BETTER else "min": spec}
        if not isinstance(spec, Mapping):
            raise EvaluationError(f"thresholds[{metric!r}] must be a mapping, got {spec!r}")
        unknown = sorted(set(spec) - set(THRESHOLD_KEYS))
        if unknown:
            raise EvaluationError(
                f"thresholds[{metric!r}] has unknown key(s) {unknown}; allowed: {list(THRESHOLD_KEYS)}"
            )
        values: dict[str, float] = {}
        for key, value in spec.items():
            if value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise EvaluationError(
                    f"thresholds[{metric!r}][{key!r}] must be a number, got {value!r}"
                ) from None
            if not math.isfinite(number):
                raise EvaluationError(f"thresholds[{metric!r}][{key!r}] must be finite")
            values[key] = number
        out.append(Threshold(metric=metric, **values))
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _improvement(metric: str, candidate: float, champion: float) -> float:
    delta = candidate - champion
    return delta if higher_is_better(metric) else -delta


def apply_gate(
    task: str,
    candidate: Mapping[str, float | None],
    champion: Mapping[str, float | None] | None,
    thresholds: Sequence[Threshold],
    primary_metric: str | None = None,
) -> tuple[bool, list[Check], str]:
    """Decide whether the candidate passes. Returns ``(passed, checks, rule)``.

    - absolute checks (``min``/``max``) always apply;
    - comparisons with the champion (``min_improvement``, ``min_relative_improvement``,
      ``max_regression``) apply when there is a champion; on a cold start (``champion`` None)
      they are recorded as skipped and passed;
    - with no thresholds at all, the default rule: the candidate must not be worse than the
      champion on the primary metric (``roc_auc`` / ``rmse``); on a cold start it is accepted.

    A metric that is undefined (None) for the candidate fails its checks; one undefined for
    the champion fails the comparison (there is nothing to compare with).
    """
    primary = primary_metric or PRIMARY_METRIC[task]
    checks: list[Check] = []
    cold = champion is None

    def value(metrics: Mapping[str, float | None] | None, metric: str) -> float | None:
        return None if metrics is None else _finite_or_none(metrics.get(metric))

    def compare(metric: str, kind: str, limit: float) -> None:
        cand, champ = value(candidate, metric), value(champion, metric)
        if cold:
            checks.append(
                Check(
                    metric,
                    kind,
                    True,
                    f"{metric}: no champion (cold start), {kind} check skipped",
                    cand,
                    None,
                    limit,
                )
            )
            return
        if cand is None or champ is None:
            who = "candidate" if cand is None else "champion"
            checks.append(
                Check(
                    metric,
                    kind,
                    False,
                    f"{metric}: undefined for the {who}, cannot compare",
                    cand,
                    champ,
                    limit,
                )
            )
            return
        gain = _improvement(metric, cand, champ)
        direction = "higher" if higher_is_better(metric) else "lower"
        if kind == "min_improvement":
            ok = gain >= limit - 1e-12
            text = (
                f"{metric}: candidate {_fmt(cand)} vs champion {_fmt(champ)}, improvement "
                f"{gain:+.4g} ({direction} is better) {'>=' if ok else '<'} required {limit:.4g}"
            )
        elif kind == "min_relative_improvement":
            rel = gain / abs(champ) if champ != 0 else (math.inf if gain > 0 else 0.0)
            ok = rel >= limit - 1e-12
            text = (
                f"{metric}: relative improvement {rel:+.2%} over champion {_fmt(champ)} "
                f"{'>=' if ok else '<'} required {limit:.2%}"
            )
        else:  # max_regression
            ok = -gain <= limit + 1e-12
            text = (
                f"{metric}: candidate {_fmt(cand)} vs champion {_fmt(champ)}, regression "
                f"{max(-gain, 0.0):.4g} {'<=' if ok else '>'} allowed {limit:.4g}"
            )
        checks.append(Check(metric, kind, ok, text, cand, champ, limit))

    for threshold in thresholds:
        metric = threshold.metric
        cand = value(candidate, metric)
        if threshold.min is not None:
            ok = cand is not None and cand >= threshold.min
            checks.append(
                Check(
                    metric,
                    "min",
                    ok,
                    f"{metric}: candidate {_fmt(cand)} "
                    f"{'>=' if ok else '<'} minimum {threshold.min:.4g}"
                    + ("" if cand is not None else " (undefined)"),
                    cand,
                    value(champion, metric),
                    threshold.min,
                )
            )
        if threshold.max is not None:
            ok = cand is not None and cand <= threshold.max
            checks.append(
                Check(
                    metric,
                    "max",
                    ok,
                    f"{metric}: candidate {_fmt(cand)} "
                    f"{'<=' if ok else '>'} maximum {threshold.max:.4g}"
                    + ("" if cand is not None else " (undefined)"),
                    cand,
                    value(champion, metric),
                    threshold.max,
                )
            )
        for kind in ("min_improvement", "min_relative_improvement", "max_regression"):
            limit = getattr(threshold, kind)
            if limit is not None:
                compare(metric, kind, limit)

    if thresholds:
        rule = "configured thresholds" + (
            " (cold start: no champion, only absolute thresholds apply)" if cold else ""
        )
    elif cold:
        rule = (
            "default rule, cold start: no thresholds configured and no champion to compare "
            "with, the candidate is accepted"
        )
        checks.append(
            Check(
                primary,
                "not_worse",
                True,
                f"{primary}: no champion (cold start), accepted by the default rule",
                value(candidate, primary),
                None,
                None,
            )
        )
    else:
        rule = (
            f"default rule: no thresholds configured, the candidate must not be worse than the "
            f"champion on the primary metric {primary}"
        )
        cand, champ = value(candidate, primary), value(champion, primary)
        if cand is None or champ is None:
            who = "candidate" if cand is None else "champion"
            checks.append(
                Check(
                    primary,
                    "not_worse",
                    False,
                    f"{primary}: undefined for the {who}, cannot compare",
                    cand,
                    champ,
                    0.0,
                )
            )
        else:
            gain = _improvement(primary, cand, champ)
            ok = gain >= -1e-12
            checks.append(
                Check(
                    primary,
                    "not_worse",
                    ok,
                    f"{primary}: candidate {_fmt(cand)} "
                    f"{'is not worse than' if ok else 'is worse than'} champion {_fmt(champ)} "
                    f"({'higher' if higher_is_better(primary) else 'lower'} is better)",
                    cand,
                    champ,
                    0.0,
                )
            )
    passed = all(c.passed for c in checks)
    return passed, checks, rule


# --------------------------------------------------------------------------- MLflow side


@dataclass
class ModelRef:
    """A model resolved from a URI: where it came from in MLflow."""

    model_uri: str
    run_id: str | None = None
    model_id: str | None = None
    registered_model_name: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_model_uri(client: MlflowClient, model_uri: str) -> ModelRef:
    """Find the run (and logged model / registry version) behind ``runs:/``/``models:/`` URIs.

    :raises EvaluationError: the URI is malformed or names nothing that exists.
    """
    from mlflow.exceptions import MlflowException

    uri = str(model_uri).strip()
    try:
        if uri.startswith("runs:/"):
            run_id = uri[len("runs:/") :].strip("/").split("/", 1)[0]
            client.get_run(run_id)
            model_id = None
            return ModelRef(uri, run_id=run_id, model_id=model_id)
        if uri.startswith("models:/"):
            rest = uri[len("models:/") :].strip("/")
            if rest.startswith("m-") and "/" not in rest:
                logged = client.get_logged_model(rest)
                return ModelRef(uri, run_id=logged.source_run_id, model_id=rest)
            name, _, ref = rest.partition("/")
            if not ref:
                raise EvaluationError(f"model URI {uri!r}: expected models:/<name>/<version>")
            if ref.startswith("@"):
                mv = client.get_model_version_by_alias(name, ref[1:])
            elif ref.isdigit():
                mv = client.get_model_version(name, ref)
            else:
                raise EvaluationError(
                    f"model URI {uri!r}: use a version number or @alias (stages are deprecated)"
                )
            return ModelRef(
                f"models:/{name}/{mv.version}",
                run_id=mv.run_id,
                model_id=getattr(mv, "model_id", None),
                registered_model_name=name,
                version=str(mv.version),
            )
    except MlflowException as err:
        raise EvaluationError(f"model {uri!r} not found in MLflow: {err.message}") from err
    raise EvaluationError(
        f"model URI {uri!r} not supported: use runs:/<run_id>/model, models:/<model_id> or "
        "models:/<name>/<version>"
    )


def resolve_alias_holder(
    client: MlflowClient, registered_model_name: str, alias: str
) -> tuple[ModelRef | None, str | None]:
    """The version holding ``alias``, or ``(None, why)`` on a cold start.

    A missing registered model or a missing alias is a cold start, not an error.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(registered_model_name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None, f"registered model {registered_model_name!r} does not exist yet"
        raise
    version = (getattr(model, "aliases", None) or {}).get(alias)
    if version is None:
        return None, f"registered model {registered_model_name!r} has no alias {alias!r} yet"
    mv = client.get_model_version(registered_model_name, str(version))
    return (
        ModelRef(
            f"models:/{registered_model_name}/{mv.version}",
            run_id=mv.run_id,
            model_id=getattr(mv, "model_id", None),
            registered_model_name=registered_model_name,
            version=str(mv.version),
        ),
        None,
    )


def model_feature_columns(model_uri: str, model: Any) -> list[str]:
    """The raw input columns a model needs: its MLflow signature, else ``feature_names_in_``."""
    import mlflow

    try:
        signature = mlflow.models.get_model_info(model_uri).signature
    except Exception:  # a model without MLmodel metadata: fall back to the estimator
        signature = None
    if signature is not None and signature.inputs is not None:
        names = signature.inputs.input_names()
        if names and all(isinstance(n, str) for n in names):
            return [str(n) for n in names]
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    raise EvaluationError(
        f"model {model_uri} has neither an input signature nor feature_names_in_: "
        "cannot tell which columns it needs"
    )


def _run_tags(client: MlflowClient, run_id: str | None) -> dict[str, str]:
    if not run_id:
        return {}
    return dict(client.get_run(run_id).data.tags)


def _model_task(model: Any, tags: Mapping[str, str]) -> str:
    task = tags.get("mlops.task")
    if task in ("classification", "regression"):
        return task
    from sklearn.base import is_classifier

    return "classification" if is_classifier(model) else "regression"


@dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate_candidate`; ``to_dict()`` is the XCom / result.json."""

    passed: bool
    reason: str
    rule: str
    cold_start: bool
    cold_start_reason: str | None
    task: str
    primary_metric: str
    registered_model_name: str
    alias: str
    target: str
    candidate: ModelRef
    champion: ModelRef | None
    candidate_metrics: dict[str, float | None]
    champion_metrics: dict[str, float | None] | None
    checks: list[Check]
    thresholds: dict[str, dict[str, float]]
    evaluation_data: str
    evaluation_digest: str
    n_rows: int
    evaluated_at: str
    report_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def champion_version(self) -> str | None:
        return self.champion.version if self.champion else None

    def metrics_table(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for metric in metric_names(self.task):
            cand = self.candidate_metrics.get(metric)
            champ = self.champion_metrics.get(metric) if self.champion_metrics else None
            out[metric] = {
                "candidate": cand,
                "champion": champ,
                "delta": None if cand is None or champ is None else cand - champ,
                "higher_is_better": higher_is_better(metric),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable summary (the operator's XCom and ``evaluation/result.json``)."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "rule": self.rule,
            "cold_start": self.cold_start,
            "cold_start_reason": self.cold_start_reason,
            "task": self.task,
            "primary_metric": self.primary_metric,
            "registered_model_name": self.registered_model_name,
            "alias": self.alias,
            "target": self.target,
            "candidate": self.candidate.to_dict(),
            "champion": self.champion.to_dict() if self.champion else None,
            "candidate_model_uri": self.candidate.model_uri,
            "candidate_run_id": self.candidate.run_id,
            "champion_version": self.champion_version,
            "champion_run_id": self.champion.run_id if self.champion else None,
            "metrics": self.metrics_table(),
            "checks": [c.to_dict() for c in self.checks],
            "thresholds": self.thresholds,
            "evaluation_data": self.evaluation_data,
            "evaluation_digest": self.evaluation_digest,
            "n_rows": self.n_rows,
            "evaluated_at": self.evaluated_at,
            "report_uri": self.report_uri,
            **self.extra,
        }


def _summary_reason(passed: bool, checks: Sequence[Check]) -> str:
    failed = [c.reason for c in checks if not c.passed]
    if passed:
        return f"passed: all {len(checks)} check(s) passed"
    return f"rejected: {len(failed)} of {len(checks)} check(s) failed: " + "; ".join(failed)


def _load_frame(
    uri: str, columns: Sequence[str], target: str, conn_id: str | None
) -> tuple[pd.DataFrame, str]:
    from mlops_provider.core import io
    from mlops_provider.core.training import normalize_frame

    table = io.read_table(uri, conn_id=conn_id)
    missing = [c for c in [*columns, target] if c not in table.column_names]
    if missing:
        raise EvaluationDataError(
            f"evaluation data {uri} lacks column(s) {missing}; available: {table.column_names}"
        )
    table = table.select(list(dict.fromkeys([*columns, target])))
    digest = io.table_digest(table)
    frame = normalize_frame(table.to_pandas())
    n_before = len(frame)
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if len(frame) < n_before:
        log.warning("dropped %d evaluation rows without a %r label", n_before - len(frame), target)
    if frame.empty:
        raise EvaluationDataError(f"evaluation data {uri} has no labelled rows (target {target!r})")
    return frame, digest


def evaluate_candidate(
    target: MlflowTarget,
    *,
    model_uri: str,
    registered_model_name: str,
    evaluation_data: str,
    alias: str = "champion",
    target_column: str | None = None,
    thresholds: Mapping[str, Any] | None = None,
    primary_metric: str | None = None,
    report_uri: str | None = None,
    conn_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Score the candidate and the alias holder on ``evaluation_data`` and apply the gate.

    Writes the HTML report to ``report_uri`` (if given) and logs ``evaluation/result.json`` and
    ``evaluation/report.html`` on the candidate's run.

    :param target_column: label column (default: the candidate run's ``mlops.target`` tag).
    :param context: free-form JSON added to the result (e.g. the Airflow task identity).
    :raises EvaluationError: bad thresholds, unknown candidate, incompatible task types.
    :raises EvaluationDataError: the evaluation data lacks columns a model needs, or labels.
    """
    import mlflow

    from mlops_provider.core import io
    from mlops_provider.core.evaluation_report import render_evaluation_report
    from mlops_provider.core.mlflow_target import activated, make_client

    parsed = parse_thresholds(thresholds)  # validate before any IO
    client = make_client(target)
    candidate = resolve_model_uri(client, model_uri)
    cand_tags = _run_tags(client, candidate.run_id)
    target_column = target_column or cand_tags.get("mlops.target")
    if not target_column:
        raise EvaluationError(
            f"no target column given and the candidate's run ({candidate.run_id}) has no "
            "'mlops.target' tag: pass target="
        )
    champion, cold_reason = resolve_alias_holder(client, registered_model_name, alias)
    if cold_reason:
        log.info("cold start: %s; only absolute thresholds apply", cold_reason)

    with activated(target):
        cand_model = mlflow.sklearn.load_model(candidate.model_uri)
        cand_columns = model_feature_columns(candidate.model_uri, cand_model)
        champ_model = champ_columns = None
        if champion is not None:
            champ_model = mlflow.sklearn.load_model(champion.model_uri)
            champ_columns = model_feature_columns(champion.model_uri, champ_model)

    task = _model_task(cand_model, cand_tags)
    parsed = parse_thresholds(thresholds, task)
    primary = primary_metric or PRIMARY_METRIC[task]
    if primary not in metric_names(task):
        raise EvaluationError(
            f"primary_metric {primary!r} is not a {task} metric; available: {list(metric_names(task))}"
        )
    if champ_model is not None:
        champ_task = _model_task(
            champ_model, _run_tags(client, champion.run_id if champion else None)
        )
        if champ_task != task:
            raise EvaluationError(
                f"candidate is a {task} model but the {alias} (version "
                f"{champion.version if champion else '?'}) is a {champ_task} model"
            )

    needed = list(dict.fromkeys([*cand_columns, *(champ_columns or [])]))
    try:
        frame, digest = _load_frame(evaluation_data, needed, target_column, conn_id)
    except io.DatasetFormatError as err:
        raise EvaluationDataError(str(err)) from err
    y = frame[target_column].to_numpy()
    cand_scores = score_model(cand_model, frame[cand_columns], y, task)
    champ_scores = (
        score_model(champ_model, frame[champ_columns], y, task)
        if champ_model is not None and champ_columns is not None
        else None
    )
    passed, checks, rule = apply_gate(
        task, cand_scores.metrics, champ_scores.metrics if champ_scores else None, parsed, primary
    )
    result = EvaluationResult(
        passed=passed,
        reason=_summary_reason(passed, checks),
        rule=rule,
        cold_start=champion is None,
        cold_start_reason=cold_reason,
        task=task,
        primary_metric=primary,
        registered_model_name=registered_model_name,
        alias=alias,
        target=target_column,
        candidate=candidate,
        champion=champion,
        candidate_metrics=cand_scores.metrics,
        champion_metrics=champ_scores.metrics if champ_scores else None,
        checks=checks,
        thresholds={t.metric: t.as_dict() for t in parsed},
        evaluation_data=str(evaluation_data),
        evaluation_digest=digest,
        n_rows=len(frame),
        evaluated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        report_uri=report_uri,
        extra=dict(context or {}),
    )
    html = render_evaluation_report(result, y, cand_scores, champ_scores)
    if report_uri:
        io.write_text(html, report_uri, conn_id=conn_id)
    if candidate.run_id:
        _record_on_run(client, candidate.run_id, result, html)
    log.info("evaluation %s", result.reason)
    return result


def _record_on_run(client: MlflowClient, run_id: str, result: EvaluationResult, html: str) -> None:
    """Attach the result and the report to the candidate's run (overwritten by a rerun)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "evaluation"
        folder.mkdir()
        (folder / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
        (folder / "report.html").write_text(html, encoding="utf-8")
        client.log_artifacts(run_id, str(folder), artifact_path="evaluation")
    client.set_tag(run_id, "mlops.evaluation.passed", str(result.passed).lower())
    client.set_tag(run_id, f"mlops.evaluation.{result.alias}_version", str(result.champion_version))
