"""Champion/challenger evaluation against MLflow: :func:`evaluate_candidate`.

resolve (the candidate from any model URI, the holder of ``alias``, both loaded with their input
columns) -> compute (score both on the same labelled rows, apply the pure gate of
:mod:`~mlops_provider.core.evaluation.gate`) -> publish (the HTML report and its JSON twin at
``report_uri``, ``evaluation/result.json`` + ``evaluation/report.html`` and tags on the
candidate's run).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_provider.core import models
from mlops_provider.core.evaluation.frames import labelled_rows, normalize_frame
from mlops_provider.core.evaluation.gate import (
    Check,
    EvaluationError,
    Threshold,
    apply_gate,
    parse_thresholds,
    reasons_of,
    summary_reason,
)
from mlops_provider.core.evaluation.scores import ModelScores, model_task, score_model
from mlops_provider.core.metrics import higher_is_better, metric_names, primary_metric
from mlops_provider.core.results import make_result

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_provider.core.mlflow_target import MlflowTarget
    from mlops_provider.core.models import ModelVersion
    from mlops_provider.core.reports import ReportLocation

__all__ = [
    "EVALUATION_REPORT_PATH",
    "EVALUATION_RESULT_PATH",
    "EvaluationDataError",
    "EvaluationResult",
    "evaluate_candidate",
]

log = logging.getLogger(__name__)

EVALUATION_RESULT_PATH = "evaluation/result.json"
EVALUATION_REPORT_PATH = "evaluation/report.html"


class EvaluationDataError(EvaluationError):
    """The evaluation data cannot be scored (missing columns, no rows, no labels)."""


def _model_entry(model: ModelVersion) -> dict[str, Any]:
    """A model in the result: the common keys plus the keys earlier releases returned
    (``model_uri``, ``model_id``, ``registered_model_name``)."""
    return {
        **model.to_dict(),
        "model_uri": model.uri,
        "model_id": model.model_id,
        "registered_model_name": model.name,
    }


@dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate_candidate`; ``to_dict()`` is the XCom and ``result.json``."""

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
    candidate: ModelVersion
    champion: ModelVersion | None
    candidate_metrics: dict[str, float | None]
    champion_metrics: dict[str, float | None] | None
    checks: list[Check]
    thresholds: dict[str, dict[str, float]]
    evaluation_data: str
    evaluation_digest: str
    n_rows: int
    evaluated_at: str
    report_uri: str | None = None
    mlflow_experiment_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``accepted`` or ``rejected``."""
        return "accepted" if self.passed else "rejected"

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
        """The result (docs/results.md): common keys, then the evaluation's details."""
        return make_result(
            status=self.status,
            passed=self.passed,
            reasons=reasons_of(self.passed, self.checks),
            model=self.candidate,
            mlflow_run_id=self.candidate.run_id,
            report_uri=self.report_uri,
            rows=self.n_rows,
            mlflow_experiment_id=self.mlflow_experiment_id,
            reason=self.reason,
            rule=self.rule,
            cold_start=self.cold_start,
            cold_start_reason=self.cold_start_reason,
            problem_type=self.task,
            task=self.task,
            primary_metric=self.primary_metric,
            registered_model_name=self.registered_model_name,
            alias=self.alias,
            target=self.target,
            candidate=_model_entry(self.candidate),
            champion=_model_entry(self.champion) if self.champion else None,
            candidate_model_uri=self.candidate.uri,
            candidate_run_id=self.candidate.run_id,
            champion_version=self.champion_version,
            champion_run_id=self.champion.run_id if self.champion else None,
            metrics=self.metrics_table(),
            checks=[c.to_dict() for c in self.checks],
            thresholds=self.thresholds,
            evaluation_data=self.evaluation_data,
            evaluation_digest=self.evaluation_digest,
            n_rows=self.n_rows,
            evaluated_at=self.evaluated_at,
            **self.extra,
        )


# --------------------------------------------------------------------------- resolve


@dataclass
class _Side:
    """One model of the comparison: where it is, what it is, the columns it needs."""

    version: ModelVersion
    tags: dict[str, str]
    model: Any = None
    columns: list[str] = field(default_factory=list)


def _run_tags(client: MlflowClient, run_id: str | None) -> tuple[dict[str, str], str | None]:
    """The tags and the experiment id of a model's run (empty without a run)."""
    if not run_id:
        return {}, None
    run = client.get_run(run_id)
    return dict(run.data.tags), str(run.info.experiment_id)


COLD_START_HINT = (
    "A registered model or alias that does not exist is not a cold start unless you say so: "
    "check the name, or pass cold_start=True to evaluate a first model without a champion"
)


def _resolve(
    client: MlflowClient, model_uri: str, registered_model_name: str, alias: str, cold_start: bool
) -> tuple[_Side, _Side | None, str | None, str | None]:
    """The candidate, the alias holder (None on an allowed cold start, and why), the candidate
    run's experiment.

    :raises ModelNotFoundError: no alias holder and not ``cold_start`` (names what exists).
    """
    from mlops_provider.core.registry import holder_or_missing

    candidate = models.resolve(client, model_uri)
    cand_tags, experiment_id = _run_tags(client, candidate.run_id)
    holder = holder_or_missing(
        client, registered_model_name, alias, allow_missing=cold_start, hint=COLD_START_HINT
    )
    if holder is None:
        reason = models.cold_start_reason(client, registered_model_name, alias)
        log.info("cold start: %s; only absolute thresholds apply", reason)
        return _Side(candidate, cand_tags), None, reason, experiment_id
    champ_tags, _ = _run_tags(client, holder.run_id)
    return _Side(candidate, cand_tags), _Side(holder, champ_tags), None, experiment_id


def _load(side: _Side) -> None:
    side.model = models.load(side.version)
    side.columns = models.input_columns(side.version.uri, side.model)


def _task(candidate: _Side, champion: _Side | None, alias: str) -> str:
    """The candidate's task; the champion must be of the same kind."""
    task = model_task(candidate.model, candidate.tags)
    if champion is not None:
        champ_task = model_task(champion.model, champion.tags)
        if champ_task != task:
            raise EvaluationError(
                f"candidate is a {task} model but the {alias} (version "
                f"{champion.version.version}) is a {champ_task} model"
            )
    return task


def _primary(task: str, wanted: str | None) -> str:
    primary = wanted or primary_metric(task)
    if primary not in metric_names(task):
        raise EvaluationError(
            f"primary_metric {primary!r} is not a {task} metric; available: {list(metric_names(task))}"
        )
    return primary


def _load_frame(
    uri: str, columns: Sequence[str], target: str, conn_id: str | None
) -> tuple[pd.DataFrame, str]:
    """The labelled rows of the evaluation data (only the columns needed) and their digest."""
    from mlops_provider.core import io

    try:
        table = io.read_table(uri, conn_id=conn_id)
    except io.DatasetFormatError as err:
        raise EvaluationDataError(str(err)) from err
    missing = [c for c in [*columns, target] if c not in table.column_names]
    if missing:
        raise EvaluationDataError(
            f"evaluation data {uri} lacks column(s) {missing}; available: {table.column_names}"
        )
    table = table.select(list(dict.fromkeys([*columns, target])))
    digest = io.table_digest(table)
    frame, _ = labelled_rows(normalize_frame(table.to_pandas()), target, "evaluation data")
    if frame.empty:
        raise EvaluationDataError(f"evaluation data {uri} has no labelled rows (target {target!r})")
    return frame.reset_index(drop=True), digest


# --------------------------------------------------------------------------- compute


@dataclass
class _Scored:
    """Both models scored on the same rows, and the gate's verdict."""

    y: np.ndarray
    candidate: ModelScores
    champion: ModelScores | None
    passed: bool
    checks: list[Check]
    rule: str


def _score(
    frame: pd.DataFrame,
    target_column: str,
    candidate: _Side,
    champion: _Side | None,
    task: str,
    thresholds: Sequence[Threshold],
    primary: str,
) -> _Scored:
    y = frame[target_column].to_numpy()
    cand = score_model(candidate.model, frame[candidate.columns], y, task)
    champ = score_model(champion.model, frame[champion.columns], y, task) if champion else None
    passed, checks, rule = apply_gate(
        task, cand.metrics, champ.metrics if champ else None, thresholds, primary
    )
    return _Scored(y, cand, champ, passed, checks, rule)


def _result(
    scored: _Scored,
    candidate: _Side,
    champion: _Side | None,
    *,
    cold_reason: str | None,
    task: str,
    primary: str,
    thresholds: Sequence[Threshold],
    registered_model_name: str,
    alias: str,
    target_column: str,
    evaluation_data: str,
    digest: str,
    n_rows: int,
    experiment_id: str | None,
    context: Mapping[str, Any] | None,
) -> EvaluationResult:
    from mlops_provider.core.times import utcnow

    return EvaluationResult(
        passed=scored.passed,
        reason=summary_reason(scored.passed, scored.checks),
        rule=scored.rule,
        cold_start=champion is None,
        cold_start_reason=cold_reason,
        task=task,
        primary_metric=primary,
        registered_model_name=registered_model_name,
        alias=alias,
        target=target_column,
        candidate=candidate.version,
        champion=champion.version if champion else None,
        candidate_metrics=scored.candidate.metrics,
        champion_metrics=scored.champion.metrics if scored.champion else None,
        checks=scored.checks,
        thresholds={t.metric: t.as_dict() for t in thresholds},
        evaluation_data=evaluation_data,
        evaluation_digest=digest,
        n_rows=n_rows,
        evaluated_at=utcnow().isoformat(timespec="seconds"),
        mlflow_experiment_id=experiment_id,
        extra=dict(context or {}),
    )


# --------------------------------------------------------------------------- publish


def _publish(
    client: MlflowClient,
    result: EvaluationResult,
    scored: _Scored,
    report_uri: str | ReportLocation | None,
    conn_id: str | None,
) -> None:
    """Render the report; write it (and the JSON) to ``report_uri`` and onto the candidate's
    run (replaced by a rerun)."""
    from mlops_provider.core import io, runs
    from mlops_provider.core.evaluation.report import render_evaluation_report
    from mlops_provider.core.reports import report_location

    location = report_uri
    if isinstance(location, str):
        location = report_location(
            location, kind="evaluation", name=result.registered_model_name, day=None
        )
    if location is not None:
        result.report_uri = location.html_uri
    html = render_evaluation_report(result, scored.y, scored.candidate, scored.champion)
    payload = json.dumps(result.to_dict(), indent=2, default=str)
    if location is not None:
        io.write_text(html, location.html_uri, conn_id=conn_id)
        io.write_text(payload, location.json_uri, conn_id=conn_id)
    run_id = result.candidate.run_id
    if run_id:
        runs.log_results(
            client,
            run_id,
            tags={
                "mlops.evaluation.passed": str(result.passed).lower(),
                f"mlops.evaluation.{result.alias}_version": str(result.champion_version),
            },
            texts={EVALUATION_RESULT_PATH: payload, EVALUATION_REPORT_PATH: html},
        )


def evaluate_candidate(
    target: MlflowTarget,
    *,
    model_uri: str,
    registered_model_name: str,
    evaluation_data: str,
    alias: str = models.DEFAULT_ALIAS,
    target_column: str | None = None,
    thresholds: Mapping[str, Any] | None = None,
    primary_metric: str | None = None,
    report_uri: str | ReportLocation | None = None,
    conn_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    cold_start: bool = False,
) -> EvaluationResult:
    """Score the candidate and the alias holder on ``evaluation_data`` and apply the gate.

    :param model_uri: the candidate, any model URI form (:mod:`mlops_provider.core.models`).
    :param cold_start: allow the registered model or the alias not to exist (the first model:
        only absolute thresholds apply, the result says ``cold_start``); with a holder, the
        candidate is compared with it as usual. Without it, a missing model or alias is an
        error (most often a typo).
    :param target_column: label column (default: the candidate run's ``mlops.target`` tag).
    :param report_uri: the HTML report: an ``.html`` file (the JSON goes next to it), a
        directory (``report.html`` + ``result.json``) or a resolved ``ReportLocation``
        (:func:`mlops_provider.core.reports.report_location`); None writes no report file.
    :param context: free-form JSON added to the result (e.g. the Airflow task identity).
    :raises EvaluationError: bad thresholds or primary metric, incompatible task types, no target.
    :raises EvaluationDataError: the evaluation data lacks columns a model needs, or labels.
    :raises ModelUriError: a malformed ``model_uri``.
    :raises ModelNotFoundError: ``model_uri`` names nothing that exists in MLflow; or,
        without ``cold_start``, the registered model or the alias does not exist (the message
        lists the registered models, or the model's aliases, and the closest one).
    """
    from mlops_provider.core.mlflow_target import activated, make_client

    parse_thresholds(thresholds)  # validate before any IO
    client = make_client(target)
    candidate, champion, cold_reason, experiment_id = _resolve(
        client, model_uri, registered_model_name, alias, cold_start
    )
    target_column = target_column or candidate.tags.get("mlops.target")
    if not target_column:
        raise EvaluationError(
            f"no target column given and the candidate's run ({candidate.version.run_id}) has "
            "no 'mlops.target' tag: pass target="
        )
    with activated(target):
        for side in (candidate, champion):
            if side is not None:
                _load(side)
    task = _task(candidate, champion, alias)
    parsed = parse_thresholds(thresholds, task)
    primary = _primary(task, primary_metric)
    needed = list(dict.fromkeys([*candidate.columns, *(champion.columns if champion else [])]))
    frame, digest = _load_frame(evaluation_data, needed, target_column, conn_id)
    scored = _score(frame, target_column, candidate, champion, task, parsed, primary)
    result = _result(
        scored,
        candidate,
        champion,
        cold_reason=cold_reason,
        task=task,
        primary=primary,
        thresholds=parsed,
        registered_model_name=registered_model_name,
        alias=alias,
        target_column=target_column,
        evaluation_data=str(evaluation_data),
        digest=digest,
        n_rows=len(frame),
        experiment_id=experiment_id,
        context=context,
    )
    _publish(client, result, scored, report_uri, conn_id)
    log.info("evaluation %s", result.reason)
    return result
