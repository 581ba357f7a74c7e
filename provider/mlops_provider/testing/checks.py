"""Data checks and the small training run of a project's CI (docs/ci.md).

- :func:`validate_sample`: a sample dataset against a Great Expectations suite the DAGs use.
- :func:`check_transformation`: a transformation of a sample keeps a suite passing.
- :func:`suites_used` / :func:`missing_samples`: which suites the DAGs validate with, and which
  of them have no sample to check.
- :func:`train_sample`: a DAG's training task's estimator configuration trained on a capped
  sample, against a metric floor and a time budget.

Each check returns a result with ``passed``, ``problems`` (one line per problem, naming the
column, expectation, metric or budget), ``assert_ok()`` and the HTML report it wrote. Only the
standard library is imported here at module level; the checks import pandas, GX and
scikit-learn when they run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DataCheckResult",
    "TrainingCheckResult",
    "check_transformation",
    "missing_samples",
    "suites_used",
    "train_sample",
    "validate_sample",
]

Sample = str | os.PathLike[str] | Any
"""A dataset path (parquet or CSV, file or directory) or a pandas DataFrame."""


class CheckFailed(AssertionError):
    """A CI check found problems; the message lists them."""


def _name_of(sample: Any) -> str:
    return os.fspath(sample) if isinstance(sample, str | os.PathLike) else "<dataframe>"


def _frame(sample: Sample) -> Any:
    """The sample as a pandas DataFrame (a copy is never needed: callers do not mutate)."""
    import pandas as pd

    if isinstance(sample, pd.DataFrame):
        return sample
    from mlops_provider.core import io

    path = os.fspath(sample)
    if not Path(path).exists() and "://" not in path:
        raise FileNotFoundError(f"sample dataset {path} does not exist")
    return io.read_table(path).to_pandas()


def _report_dir(report_dir: str | os.PathLike[str] | None, name: str) -> str | None:
    if report_dir is None:
        return None
    target = Path(report_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    return str(target)


@dataclass
class DataCheckResult:
    """What a data check found.

    :param name: the check's name (also the report's folder under the reports directory).
    :param sample: the sample's path (``<dataframe>`` for a frame).
    :param suite: the suite's name.
    :param passed: every expectation passed.
    :param problems: one line per failed expectation (column, expectation, observed value).
    :param rows: rows validated.
    :param report: the HTML report (``None`` without a reports directory).
    """

    name: str
    sample: str
    suite: str
    passed: bool
    problems: list[str]
    rows: int
    report: str | None = None
    stage: str = "sample"
    """``sample`` (the dataset itself), ``input`` or ``output`` (of a transformation)."""

    def assert_ok(self) -> None:
        """:raises CheckFailed: naming the sample, the suite and every failed expectation."""
        if self.passed:
            return
        what = {
            "sample": f"sample {self.sample}",
            "input": f"the input sample {self.sample} (before the transformation)",
            "output": f"the output of transformation {self.name} on {self.sample}",
        }[self.stage]
        lines = [f"{what} fails suite '{self.suite}' ({self.rows:,} rows):"]
        lines += [f"  - {p}" for p in self.problems]
        if self.report:
            lines.append(f"report: {self.report}")
        raise CheckFailed("\n".join(lines))


def _data_result(outcome: Any, name: str, sample: str, stage: str) -> DataCheckResult:
    return DataCheckResult(
        name=name,
        sample=sample,
        suite=outcome.suite_name,
        passed=bool(outcome.success),
        problems=[r.describe() for r in outcome.failed],
        rows=int(outcome.row_count),
        report=outcome.report_uri,
        stage=stage,
    )


def validate_sample(
    sample: Sample,
    suite: str | os.PathLike[str] | Mapping[str, Any],
    *,
    suite_parameters: Mapping[str, Any] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> DataCheckResult:
    """Validate a sample dataset with a GX suite (the JSON file a DataValidationOperator runs).

    :param sample: the dataset (parquet/CSV file or directory) or a DataFrame.
    :param suite: the suite file or dict.
    :param suite_parameters: values of the suite's ``$PARAMETER`` references (``now`` is
        always provided).
    :param report_dir: where the HTML report and JSON result go (``<report_dir>/<name>/``).
    :param name: the check's name (default: the suite file's stem).
    :returns: :class:`DataCheckResult`; call ``assert_ok()`` to fail a test on problems.
    :raises FileNotFoundError: the sample does not exist.
    :raises mlops_provider.core.errors.InputError: the suite is invalid or a suite parameter
        is missing (named).
    """
    from mlops_provider.core.validation import validate_frame

    name = name or _suite_stem(suite)
    outcome = validate_frame(
        _frame(sample),
        _suite_spec(suite),
        suite_parameters=suite_parameters,
        dataset=_name_of(sample),
        result_dir=_report_dir(report_dir, name),
        title=f"Data check {name}",
    )
    return _data_result(outcome, name, _name_of(sample), "sample")


def check_transformation(
    transform: Callable[[Any], Any],
    sample: Sample,
    suite: str | os.PathLike[str] | Mapping[str, Any],
    *,
    input_suite: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    suite_parameters: Mapping[str, Any] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> DataCheckResult:
    """Apply ``transform`` to a sample and validate its output with ``suite``.

    With ``input_suite`` the sample is validated first, so a failure names the culprit: the
    sample itself (``stage="input"``) or the transformation (``stage="output"``).

    :param transform: DataFrame -> DataFrame (it gets a copy of the sample).
    :param suite: the suite the output must pass.
    :param input_suite: the suite the sample must pass before the transformation.
    :returns: the output's :class:`DataCheckResult` (or the input's when the input fails).
    :raises TypeError: ``transform`` did not return a DataFrame.
    """
    import pandas as pd

    from mlops_provider.core.validation import validate_frame

    name = name or str(getattr(transform, "__name__", "transform"))
    frame = _frame(sample)
    if input_suite is not None:
        before = validate_frame(
            frame,
            _suite_spec(input_suite),
            suite_parameters=suite_parameters,
            dataset=_name_of(sample),
            result_dir=_report_dir(report_dir, f"{name}-input"),
            title=f"Transformation {name}: input",
        )
        if not before.success:
            return _data_result(before, name, _name_of(sample), "input")
    output = transform(frame.copy())
    if not isinstance(output, pd.DataFrame):
        raise TypeError(
            f"transformation {name} returned {type(output).__name__}, expected a pandas DataFrame"
        )
    after = validate_frame(
        output,
        _suite_spec(suite),
        suite_parameters=suite_parameters,
        dataset=f"{name}({_name_of(sample)})",
        result_dir=_report_dir(report_dir, name),
        title=f"Transformation {name}: output",
    )
    return _data_result(after, name, _name_of(sample), "output")


def _suite_spec(suite: Any) -> Any:
    return os.fspath(suite) if isinstance(suite, os.PathLike) else suite


def _suite_stem(suite: Any) -> str:
    if isinstance(suite, Mapping):
        return str(suite.get("name") or "suite")
    return Path(os.fspath(suite)).stem


def _validation_tasks(dags_folder: str | os.PathLike[str]) -> list[Any]:
    from mlops_provider.operators.validation import DataValidationOperator
    from mlops_provider.testing.integrity import load_dagbag

    bag = load_dagbag(dags_folder)
    return [
        task
        for dag in bag.dags.values()
        for task in dag.tasks
        if isinstance(task, DataValidationOperator)
    ]


def suites_used(dags_folder: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The GX suites the DAGs of ``dags_folder`` validate with.

    :returns: suite (as the task holds it: a file path, or a suite's name for an inline
        suite) -> the ``dag_id.task_id`` of each DataValidationOperator using it.
    """
    out: dict[str, list[str]] = {}
    for task in _validation_tasks(dags_folder):
        suite = task.expectation_suite
        key = _suite_stem(suite) if isinstance(suite, Mapping) else os.fspath(suite)
        out.setdefault(key, []).append(f"{task.dag_id}.{task.task_id}")
    return out


def missing_samples(
    dags_folder: str | os.PathLike[str], samples: Mapping[str, Any]
) -> dict[str, list[str]]:
    """Suites the DAGs use that no sample covers.

    :param samples: suite file name, stem or path -> its sample (what the data checks run).
    :returns: suite -> the tasks using it, for each suite without a sample (empty: all
        covered).
    """
    covered = {_suite_stem(s) for s in samples} | {Path(os.fspath(s)).name for s in samples}
    return {
        suite: tasks
        for suite, tasks in suites_used(dags_folder).items()
        if Path(suite).name not in covered and _suite_stem(suite) not in covered
    }


@dataclass
class TrainingCheckResult:
    """What the small training run measured.

    :param task: ``dag_id.task_id`` of the training task whose configuration was trained.
    :param estimator: the estimator's class path.
    :param rows: rows trained and scored (after the cap).
    :param metrics: holdout metrics.
    :param metric: the metric checked; ``floor`` / ``ceiling`` its worst acceptable value.
    :param seconds: preparation + fit + scoring time; ``budget_seconds`` its limit.
    :param problems: one line per check that failed (metric, value, limit).
    :param report: the HTML report (``None`` without a reports directory).
    """

    task: str
    estimator: str
    rows: int
    metrics: dict[str, float | None]
    metric: str
    floor: float | None
    ceiling: float | None
    seconds: float
    budget_seconds: float
    problems: list[str] = field(default_factory=list)
    report: str | None = None

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def value(self) -> float | None:
        return self.metrics.get(self.metric)

    def assert_ok(self) -> None:
        """:raises CheckFailed: naming the training task, the metric and the limits missed."""
        if self.passed:
            return
        lines = [
            f"the small training run of {self.task} ({self.estimator} on {self.rows:,} "
            "sample rows) failed:"
        ]
        lines += [f"  - {p}" for p in self.problems]
        if self.report:
            lines.append(f"report: {self.report}")
        raise CheckFailed("\n".join(lines))


def training_task(dags_folder: str | os.PathLike[str], dag_id: str, task_id: str) -> Any:
    """The TrainModelOperator ``task_id`` of DAG ``dag_id`` in ``dags_folder``.

    :raises LookupError: no such DAG or task, or the task does not train (names what exists).
    """
    from mlops_provider.operators.training import TrainModelOperator
    from mlops_provider.testing.integrity import load_dagbag

    bag = load_dagbag(dags_folder)
    if dag_id not in bag.dags:
        errors = "".join(
            f"\n  {f}: {e.strip().splitlines()[-1]}" for f, e in bag.import_errors.items()
        )
        raise LookupError(
            f"no DAG {dag_id!r} in {dags_folder} (DAGs: {sorted(bag.dags)})"
            + (f"; import errors:{errors}" if errors else "")
        )
    dag = bag.dags[dag_id]
    if task_id not in dag.task_dict:
        trainers = [t.task_id for t in dag.tasks if isinstance(t, TrainModelOperator)]
        raise LookupError(f"DAG {dag_id} has no task {task_id!r} (training tasks: {trainers})")
    task = dag.task_dict[task_id]
    if not isinstance(task, TrainModelOperator):
        raise LookupError(
            f"{dag_id}.{task_id} is a {type(task).__name__}, not a TrainModelOperator"
        )
    return task


def _capped(frame: Any, max_rows: int, seed: int) -> Any:
    return frame if len(frame) <= max_rows else frame.sample(n=max_rows, random_state=seed)


def _limits(
    metric: str, value: float | None, floor: float | None, ceiling: float | None
) -> list[str]:
    if value is None:
        return [f"metric {metric} was not computed on the holdout"]
    problems = []
    if floor is not None and value < floor:
        problems.append(f"{metric} = {value:.4f} is under the floor {floor}")
    if ceiling is not None and value > ceiling:
        problems.append(f"{metric} = {value:.4f} is over the ceiling {ceiling}")
    return problems


def train_sample(
    sample: Sample,
    *,
    dags_folder: str | os.PathLike[str],
    dag_id: str,
    task_id: str = "train",
    metric: str = "roc_auc",
    floor: float | None = None,
    ceiling: float | None = None,
    budget_seconds: float = 120.0,
    max_rows: int = 5000,
    seed: int = 0,
    report_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> TrainingCheckResult:
    """Train a DAG's training task's configuration on a sample, without MLflow.

    The estimator, its parameters, the target, the feature and entity columns and the
    preprocessing are the task's own (``overrides`` replace any of them, e.g. a templated
    ``target``); the same preparation and fitting code as the task runs
    (:func:`~mlops_provider.core.training.prepare_training` / ``fit_prepared``).

    :param sample: the training-set sample (what the task's ``training_data`` holds).
    :param floor: the lowest acceptable ``metric`` (metrics where higher is better).
    :param ceiling: the highest acceptable ``metric`` (errors: ``rmse``, ``log_loss``...).
    :param budget_seconds: the most preparation + fit + scoring may take.
    :param max_rows: rows kept from the sample (a seeded random subset).
    :returns: :class:`TrainingCheckResult`; ``assert_ok()`` fails a test on problems.
    :raises LookupError: the DAG or the task does not exist (see :func:`training_task`).
    :raises ValueError: neither ``floor`` nor ``ceiling`` is given.
    :raises mlops_provider.core.training.TrainingInputError: the sample cannot be trained on
        (the column or value at fault is named).
    """
    from dataclasses import replace

    from mlops_provider.core.training import fit_prepared, prepare_training

    if floor is None and ceiling is None:
        raise ValueError(f"train_sample needs a floor or a ceiling for metric {metric!r}")
    task = training_task(dags_folder, dag_id, task_id)
    config = replace(task.training_config(), **overrides)
    frame = _capped(_frame(sample), max_rows, seed)
    started = time.perf_counter()
    fitted = fit_prepared(prepare_training(frame, config))
    seconds = time.perf_counter() - started
    metrics = dict(fitted.metrics)
    result = TrainingCheckResult(
        task=f"{dag_id}.{task_id}",
        estimator=fitted.prepared.estimator_path,
        rows=len(frame),
        metrics=metrics,
        metric=metric,
        floor=floor,
        ceiling=ceiling,
        seconds=seconds,
        budget_seconds=budget_seconds,
    )
    result.problems = _limits(metric, metrics.get(metric), floor, ceiling)
    if seconds > budget_seconds:
        result.problems.append(
            f"training took {seconds:.1f} s, over the budget of {budget_seconds:g} s"
        )
    if report_dir is not None:
        result.report = _write_training_report(result, Path(report_dir))
    return result


def _write_training_report(result: TrainingCheckResult, report_dir: Path) -> str:
    from mlops_provider.core import reports

    names = [m for m, v in result.metrics.items() if v is not None]
    fig = reports.new_figure(5.0, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(names, [result.metrics[m] for m in names], color="#4c72b0")
    for limit, label in ((result.floor, "floor"), (result.ceiling, "ceiling")):
        if limit is not None:
            ax.axvline(limit, color="#c62828", linestyle="--", label=f"{result.metric} {label}")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_xlabel("holdout value")
    limits = {"floor": result.floor, "ceiling": result.ceiling}
    rows = [
        {"check": f"{result.metric} {k}", "limit": v, "value": result.value}
        for k, v in limits.items()
        if v is not None
    ]
    rows.append({"check": "seconds", "limit": result.budget_seconds, "value": result.seconds})
    body = reports.page(
        f"Small training run: {result.task}",
        [
            ("", reports.badge(result.passed)),
            ("Checks", reports.table_html(rows)),
            ("Problems", reports.table_html([{"problem": p} for p in result.problems])),
            ("Holdout metrics", reports.figure_to_img(fig, alt="holdout metrics")),
            ("Estimator", reports.escape(f"{result.estimator} on {result.rows:,} rows")),
        ],
        subtitle=f"{result.estimator}, {result.rows:,} sample rows;",
    )
    path = report_dir / "training" / f"{result.task}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return str(path)
