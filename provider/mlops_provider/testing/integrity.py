"""DAG integrity: the checks a CI runs against a DAGs folder before anything is deployed.

:func:`check_dag_integrity` parses a DAGs folder the way Airflow's DAG processor does and
reports, per problem, an :class:`IntegrityFinding` naming its file, DAG, task and cause:

``import_error``
    a file fails to import (the message ends with the error's last line);
``cycle``
    a DAG's tasks form a cycle (Airflow reports it as an import error of the file);
``parse_time``
    parsing a DAG file costs more than ``parse_budget`` seconds over parsing an empty DAG
    (best of ``runs``; time spent waiting for a CPU on a busy machine is left out);
``heavy_import``
    parsing a DAG file imports a module of ``forbidden`` (by the file or anything it imports);
``owner``
    tasks keep Airflow's default owner (``"airflow"``);
``retries``
    the DAG's ``default_args`` set no ``retries`` and some tasks have none;
``template``
    a task's templated field does not render for a sample run of the DAG (syntax errors,
    undefined variables, unknown filters or macros, XCom pulls of tasks the DAG lacks).

Everything runs in fresh interpreters (``sys.executable``, the caller's environment plus
``env``), so nothing the calling process has imported counts and a DAG file cannot affect it.
This module imports only the standard library at module level.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "AWS_SDK",
    "CHECKS",
    "DEFAULT_OWNER",
    "DEFAULT_PARSE_BUDGET",
    "DEFAULT_RUNS",
    "DEFAULT_SAMPLE_DATE",
    "EMPTY_DAG",
    "HEAVY_MODULES",
    "DagFacts",
    "FileFacts",
    "IntegrityFinding",
    "IntegrityReport",
    "check_dag_integrity",
    "import_findings",
    "load_dagbag",
    "measure_parse_costs",
]

#: Libraries a DAG file must never import at parse time (the tasks import them when they run).
HEAVY_MODULES: tuple[str, ...] = (
    "mlflow",
    "feast",
    "great_expectations",
    "sklearn",
    "pandas",
    "pyarrow",
    "scipy",
)
#: The AWS SDK: pulled in at parse time, for example, by an ``Asset`` whose URI scheme makes
#: Airflow load every provider's URI handlers.
AWS_SDK: tuple[str, ...] = ("boto3", "botocore", "aiobotocore", "s3fs")
#: The names of the checks, in the order they are reported.
CHECKS: tuple[str, ...] = (
    "no_dags",
    "import_error",
    "cycle",
    "parse_time",
    "heavy_import",
    "owner",
    "retries",
    "template",
)
#: Seconds a DAG file may take to parse over an empty DAG (best of :data:`DEFAULT_RUNS`).
DEFAULT_PARSE_BUDGET = 0.3
#: Parses of each DAG file when timing it (the best counts: a loaded machine's slow run does not).
DEFAULT_RUNS = 5
#: The owner Airflow gives a task that sets none.
DEFAULT_OWNER = "airflow"
#: The sample run's logical date when neither the caller nor the DAG (``start_date``) gives one.
DEFAULT_SAMPLE_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: The baseline of the parse time: a DAG file that imports the task SDK and defines one DAG.
EMPTY_DAG = """\
from airflow.sdk import DAG

with DAG("empty", schedule=None):
    pass
"""
#: Runs in a fresh interpreter: the setup every DAG file shares (the DAGs folder importable,
#: the task SDK imported), then, per file and run, a fork of that interpreter parses the file
#: once (a fork starts from exactly the setup, as the DAG processor's parsing processes do)
#: and reports the seconds and the forbidden modules loaded after it. Writes JSON to the file
#: named by its first argument. The seconds leave out the time the parse waited for a CPU
#: (Linux's run delay in /proc/self/schedstat), so a busy CI machine does not make a DAG file
#: look slow; time spent on I/O, the network or sleeping still counts.
_PARSE_PROBE = """\
import json, os, runpy, sys, time

sys.path.insert(0, {dags!r})
import airflow.sdk
from airflow.sdk import DAG

FORBIDDEN = {forbidden!r}


def run_delay():
    # seconds this process waited for a CPU (Linux schedstat; 0 where it is not available)
    try:
        with open("/proc/self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def parse(path):
    started, waited = time.perf_counter(), run_delay()
    runpy.run_path(path, run_name="dag_module")
    seconds = time.perf_counter() - started - (run_delay() - waited)
    loaded = {{m.split(".")[0] for m in sys.modules}}
    return {{"seconds": seconds, "forbidden": sorted(loaded & set(FORBIDDEN))}}


out = {{}}
for path in {paths!r}:
    for _ in range({runs}):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                data = {{"result": parse(path)}}
            except BaseException as error:
                data = {{"error": type(error).__name__ + ": " + str(error)}}
            with os.fdopen(write, "w") as pipe:
                pipe.write(json.dumps(data))
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            text = pipe.read()
        os.waitpid(pid, 0)
        data = json.loads(text) if text else {{"error": "the parsing process died"}}
        out.setdefault(path, []).append(data)
with open(sys.argv[1], "w") as handle:
    json.dump(out, handle)
"""


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class IntegrityFinding:
    """One problem found in a DAGs folder.

    :param check: which check found it (one of :data:`CHECKS`).
    :param file: the DAG file, relative to the DAGs folder.
    :param dag_id: the DAG, when the problem is one DAG's.
    :param task_id: the task, when the problem is one task's.
    :param message: what is wrong and where (file, DAG, tasks, field), and how to fix it.
    """

    check: str
    file: str
    dag_id: str | None
    task_id: str | None
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


@dataclass
class FileFacts:
    """What parsing one DAG file costs.

    :param file: the file, relative to the DAGs folder.
    :param dag_ids: the DAGs it defines.
    :param parse_seconds: seconds to parse it over an empty DAG's (best of the runs; ``None``:
        not measured).
    :param forbidden_imports: the forbidden top-level modules parsing it imports (beyond those
        an empty DAG imports).
    :param parse_error: why it could not be timed, if it could not.
    """

    file: str
    dag_ids: list[str] = field(default_factory=list)
    parse_seconds: float | None = None
    forbidden_imports: list[str] = field(default_factory=list)
    parse_error: str | None = None


@dataclass
class DagFacts:
    """One DAG as parsed, and the sample run its templates were rendered for.

    :param dag_id: the DAG.
    :param file: its file, relative to the DAGs folder.
    :param task_count: how many tasks it has.
    :param logical_date: the sample run's logical date (ISO).
    :param data_interval: the sample run's data interval (ISO start and end).
    """

    dag_id: str
    file: str
    task_count: int
    logical_date: str | None = None
    data_interval: tuple[str | None, str | None] = (None, None)


@dataclass
class IntegrityReport:
    """The result of :func:`check_dag_integrity`: the findings and what was measured.

    :param dags_folder: the folder checked (absolute).
    :param parse_budget: seconds a DAG file may take to parse over an empty DAG.
    :param runs: parses of each file (the best counts).
    :param baseline_seconds: seconds to parse an empty DAG (best of ``runs``).
    :param forbidden: the modules no DAG file may import at parse time.
    :param files: per DAG file, what parsing it costs.
    :param dags: per DAG, its size and sample run.
    :param findings: every problem found (empty: the folder passes).
    """

    dags_folder: str
    parse_budget: float
    runs: int
    baseline_seconds: float | None
    forbidden: list[str]
    files: list[FileFacts] = field(default_factory=list)
    dags: list[DagFacts] = field(default_factory=list)
    findings: list[IntegrityFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no check found a problem."""
        return not self.findings

    def format(self) -> str:
        """The report as text: one line per problem (its check and message), or a pass line."""
        head = (
            f"DAG integrity of {self.dags_folder}: {len(self.dags)} DAG(s) in "
            f"{len(self.files)} file(s)"
        )
        if self.ok:
            return f"{head}: all checks passed"
        lines = [f"{head}: {len(self.findings)} problem(s)"]
        lines += [f"  {finding}" for finding in self.findings]
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise unless the folder passed every check.

        :raises AssertionError: with :meth:`format` as its message.
        """
        if not self.ok:
            raise AssertionError(self.format())

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (with ``ok``)."""
        return {**asdict(self), "ok": self.ok}

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as a self-contained HTML page (a bar chart of each file's parse
        time against the budget, the problems, the files and the DAGs).

        :returns: the path written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_render_html(self), encoding="utf-8")
        return target


# --------------------------------------------------------------------------- the checks


def load_dagbag(dags_folder: str | os.PathLike[str]) -> Any:
    """Parse a DAGs folder in this process, as the DAG processor parses a bundle: the folder is
    importable (its helper modules too), ``.airflowignore`` and safe mode apply.

    :returns: Airflow's ``BundleDagBag`` (``dags``, ``import_errors``...).
    """
    from airflow.dag_processing.dagbag import BundleDagBag

    folder = Path(dags_folder).resolve()
    return BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")


def check_dag_integrity(
    dags_folder: str | os.PathLike[str],
    *,
    parse_budget: float = DEFAULT_PARSE_BUDGET,
    forbidden: Sequence[str] = HEAVY_MODULES + AWS_SDK,
    require_owner: bool = True,
    require_retries: bool = True,
    sample_date: datetime | None = None,
    runs: int = DEFAULT_RUNS,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> IntegrityReport:
    """Check every DAG of a folder (see the module's documentation for the checks).

    :param dags_folder: the DAGs folder (a bundle's root: its helper modules are importable).
    :param parse_budget: seconds a DAG file may take to parse over an empty DAG.
    :param forbidden: top-level modules no DAG file may import at parse time.
    :param require_owner: check that no task keeps Airflow's default owner.
    :param require_retries: check that the DAG's tasks retry.
    :param sample_date: the logical date templates are rendered for (default: each DAG's
        ``start_date``, else :data:`DEFAULT_SAMPLE_DATE`); the run and its data interval are
        the DAG's first scheduled run from it, per its timetable.
    :param runs: parses of each DAG file for its parse time (the best counts).
    :param env: environment variables for the interpreters that parse the folder, over the
        caller's.
    :param timeout: seconds the whole check may take.
    :returns: the :class:`IntegrityReport`.
    :raises FileNotFoundError: no such folder.
    :raises RuntimeError: an interpreter that parses the folder failed or timed out.
    """
    folder = Path(dags_folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"no DAGs folder at {folder}")
    deadline = time.monotonic() + timeout
    options = {
        "folder": str(folder),
        "require_owner": require_owner,
        "require_retries": require_retries,
        "sample_date": sample_date.isoformat() if sample_date else None,
    }
    doing = f"inspecting the DAGs of {folder}"
    inspected = _run_python(_inspection_code(options), env, deadline, doing)
    dags = [
        DagFacts(**{**d, "data_interval": tuple(d["data_interval"])}) for d in inspected["dags"]
    ]
    report = IntegrityReport(
        dags_folder=str(folder),
        parse_budget=parse_budget,
        runs=runs,
        baseline_seconds=None,
        forbidden=list(forbidden),
        dags=dags,
        findings=[IntegrityFinding(**f) for f in inspected["findings"]],
    )
    if not dags and not report.findings:
        message = f"no DAG in {folder}: is it the DAGs folder (the one holding the DAG files)?"
        report.findings.append(IntegrityFinding("no_dags", ".", None, None, message))
    dag_files = sorted({d.file for d in dags})
    if dag_files:
        remaining = max(deadline - time.monotonic(), 1.0)
        report.baseline_seconds, report.files = measure_parse_costs(
            folder, dag_files, runs=runs, forbidden=forbidden, env=env, timeout=remaining
        )
    for facts in report.files:
        facts.dag_ids = sorted(d.dag_id for d in dags if d.file == facts.file)
    report.findings = _ordered(report.findings + _parse_findings(report))
    return report


def measure_parse_costs(
    dags_folder: str | os.PathLike[str],
    files: Sequence[str | Path],
    *,
    runs: int = DEFAULT_RUNS,
    forbidden: Sequence[str] = HEAVY_MODULES + AWS_SDK,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> tuple[float, list[FileFacts]]:
    """What parsing each file costs over parsing an empty DAG, in a fresh interpreter whose
    forks parse one file each (the DAGs folder importable, the task SDK already imported).

    :param dags_folder: the folder on ``sys.path`` while parsing (the files' helper modules).
    :param files: the DAG files (absolute, or relative to ``dags_folder``).
    :param runs: parses per file; the best counts.
    :param forbidden: the top-level modules to look for after each parse.
    :returns: the empty DAG's parse seconds (best of ``runs``), and per file, in the order
        given, its :class:`FileFacts` (``file`` relative to ``dags_folder`` when inside it;
        ``parse_error`` set when the file failed to parse; no ``dag_ids``).
    :raises RuntimeError: the interpreter failed or timed out.
    """
    folder = Path(dags_folder).resolve()
    paths = [folder / f for f in files]
    with tempfile.TemporaryDirectory(prefix="mlops-parse-") as tmp:
        empty = Path(tmp) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        code = _PARSE_PROBE.format(
            dags=str(folder),
            forbidden=tuple(forbidden),
            paths=[str(p) for p in [empty, *paths]],
            runs=runs,
        )
        doing = f"timing the DAG files of {folder}"
        measured = _run_python(code, env, time.monotonic() + timeout, doing)
        baseline_runs = [r["result"] for r in measured[str(empty)] if "result" in r]
    if not baseline_runs:
        raise RuntimeError(f"an empty DAG does not parse: {measured[str(empty)][0]['error']}")
    baseline = min(r["seconds"] for r in baseline_runs)
    preloaded = set(baseline_runs[0]["forbidden"])
    facts = [
        _file_costs(_relative(path, folder), measured[str(path)], baseline, preloaded)
        for path in paths
    ]
    return baseline, facts


def _file_costs(
    name: str, results: list[dict[str, Any]], baseline: float, preloaded: set[str]
) -> FileFacts:
    ok = [r["result"] for r in results if "result" in r]
    if not ok:
        return FileFacts(file=name, parse_error=results[0]["error"])
    forbidden = {m for r in ok for m in r["forbidden"]} - preloaded
    best = min(r["seconds"] for r in ok) - baseline
    return FileFacts(file=name, parse_seconds=round(best, 4), forbidden_imports=sorted(forbidden))


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def _run_python(
    code: str, env: Mapping[str, str] | None, deadline: float, doing: str
) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it writes JSON to the file named by its first
    argument, returned here.

    :param doing: what the code does, for the error message.
    :raises RuntimeError: the interpreter failed, wrote nothing or ran past ``deadline``.
    """
    with tempfile.TemporaryDirectory(prefix="mlops-integrity-") as tmp:
        out = Path(tmp) / "out.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code, str(out)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, **(env or {})},
                timeout=max(deadline - time.monotonic(), 1.0),
            )
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"{doing} timed out") from err
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout)[-3000:]
            raise RuntimeError(f"{doing} failed (exit code {proc.returncode}):\n{tail}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _parse_findings(report: IntegrityReport) -> list[IntegrityFinding]:
    """``parse_time`` and ``heavy_import`` findings from the files' measured costs."""
    found = []
    for facts in report.files:
        name = facts.file
        dag_id = facts.dag_ids[0] if len(facts.dag_ids) == 1 else None
        if facts.parse_error:
            message = f"{name}: could not be timed: {facts.parse_error}"
            found.append(IntegrityFinding("parse_time", name, dag_id, None, message))
        elif facts.parse_seconds is not None and facts.parse_seconds > report.parse_budget:
            message = (
                f"{name}: parses in {facts.parse_seconds:.3f} s over an empty DAG "
                f"(best of {report.runs}), over the budget of {report.parse_budget:.3f} s"
            )
            found.append(IntegrityFinding("parse_time", name, dag_id, None, message))
        if facts.forbidden_imports:
            message = (
                f"{name}: parsing it imports {', '.join(facts.forbidden_imports)} "
                "(directly or through a module it imports); import it inside the task callable"
            )
            found.append(IntegrityFinding("heavy_import", name, dag_id, None, message))
    return found


def _ordered(findings: list[IntegrityFinding]) -> list[IntegrityFinding]:
    rank = {name: i for i, name in enumerate(CHECKS)}
    return sorted(
        findings,
        key=lambda f: (rank.get(f.check, len(rank)), f.file, f.dag_id or "", f.task_id or ""),
    )


# --------------------------------------------------------------------------- in the interpreter
# What follows runs in the fresh interpreter that parses the folder (it loads this file by its
# path: the caller's copy, whatever ``sys.path`` the interpreter has). import_findings also
# serves a DagBag parsed in any process.


def _inspection_code(options: dict[str, Any]) -> str:
    """Code for a fresh interpreter: load this module from its file, inspect the folder."""
    return (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('_mlops_integrity', {__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules[spec.name] = module\n"
        "spec.loader.exec_module(module)\n"
        f"module._inspect_main({json.dumps(options)!r}, sys.argv[1])\n"
    )


def _inspect_main(options_json: str, out: str) -> None:
    """Parse the folder with a DagBag, run the checks on it, write the result as JSON."""
    options = json.loads(options_json)
    folder = Path(options["folder"])
    sample = datetime.fromisoformat(options["sample_date"]) if options["sample_date"] else None
    bag = load_dagbag(folder)
    findings = import_findings(bag.import_errors)
    dags = []
    for dag in bag.dags.values():
        name = _relative(Path(dag.fileloc), folder)
        run = _sample_run(dag, sample)
        dags.append(
            {
                "dag_id": dag.dag_id,
                "file": name,
                "task_count": len(dag.tasks),
                "logical_date": run[0].isoformat(),
                "data_interval": [run[1].isoformat(), run[2].isoformat()],
            }
        )
        if options["require_owner"]:
            findings += _owner_findings(dag, name)
        if options["require_retries"]:
            findings += _retries_findings(dag, name)
        findings += _template_findings(dag, name, run)
    result = {"dags": dags, "findings": [asdict(f) for f in findings]}
    Path(out).write_text(json.dumps(result, default=str))


def import_findings(import_errors: Mapping[str, str]) -> list[IntegrityFinding]:
    """The findings of a DagBag's import errors: ``cycle`` for a DAG Airflow refused for a cycle
    (``AirflowDagCycleException: Cycle detected in Dag: <dag>. Faulty task: <task>``),
    ``import_error`` for any other error (the message gives the error's last line and the
    innermost file and line of its traceback).

    :param import_errors: ``DagBag.import_errors`` (file relative to the DAGs folder -> error).
    """
    import re

    found = []
    for name, error in sorted(import_errors.items()):
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        last = lines[-1] if lines else "(no message)"
        cycle = re.search(r"Cycle detected in Dag: (.+)\. Faulty task: (.+)$", last)
        if cycle:
            dag_id, task_id = cycle.group(1), cycle.group(2)
            message = (
                f"{name}: DAG {dag_id!r} has a cycle through task {task_id!r}: its "
                "dependencies must not lead back to a task"
            )
            found.append(IntegrityFinding("cycle", name, dag_id, task_id, message))
        else:
            frames = re.findall(r'File "([^"<]+)", line (\d+)', str(error))
            where = f" (at {Path(frames[-1][0]).name}, line {frames[-1][1]})" if frames else ""
            message = f"{name}: does not import: {last}{where}"
            found.append(IntegrityFinding("import_error", name, None, None, message))
    return found


def _owner_findings(dag: Any, name: str) -> list[IntegrityFinding]:
    """An ``owner`` finding when tasks keep Airflow's default owner."""
    tasks = sorted(t.task_id for t in dag.tasks if (t.owner or DEFAULT_OWNER) == DEFAULT_OWNER)
    if not tasks:
        return []
    message = (
        f"{name}: DAG {dag.dag_id!r}: task(s) {', '.join(tasks)} keep Airflow's default owner "
        f"{DEFAULT_OWNER!r}; set 'owner' in the DAG's default_args (or on each task)"
    )
    task_id = tasks[0] if len(tasks) == 1 else None
    return [IntegrityFinding("owner", name, dag.dag_id, task_id, message)]


def _retries_findings(dag: Any, name: str) -> list[IntegrityFinding]:
    """A ``retries`` finding when ``default_args`` set no ``retries`` and some tasks do not
    retry (with ``retries`` in ``default_args``, a task may set ``retries=0`` on purpose)."""
    if "retries" in (dag.default_args or {}):
        return []
    tasks = sorted(t.task_id for t in dag.tasks if not (t.retries or 0) > 0)
    if not tasks:
        return []
    message = (
        f"{name}: DAG {dag.dag_id!r}: no 'retries' in default_args and task(s) "
        f"{', '.join(tasks)} do not retry; set 'retries' in the DAG's default_args "
        "(a task that must not retry sets retries=0)"
    )
    task_id = tasks[0] if len(tasks) == 1 else None
    return [IntegrityFinding("retries", name, dag.dag_id, task_id, message)]


def _sample_run(dag: Any, sample_date: datetime | None) -> tuple[datetime, datetime, datetime]:
    """``(logical date, data interval start, end)`` of the run templates are rendered for: the
    DAG's first scheduled run from the sample date, else a manual run at it."""
    import pendulum

    start = sample_date or dag.start_date or DEFAULT_SAMPLE_DATE
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    moment = pendulum.instance(start)
    try:
        from airflow.serialization.encoders import coerce_to_core_timetable
        from airflow.timetables.base import TimeRestriction

        timetable = coerce_to_core_timetable(dag.timetable)
        info = timetable.next_dagrun_info_v2(
            last_dagrun_info=None,
            restriction=TimeRestriction(earliest=moment, latest=None, catchup=True),
        )
        if info is not None and info.logical_date is not None and info.data_interval:
            return info.logical_date, info.data_interval.start, info.data_interval.end
        interval = timetable.infer_manual_data_interval(run_after=moment)
        return moment, interval.start, interval.end
    except Exception:  # a timetable that cannot say: a run at the sample date
        return moment, moment, moment


def _template_findings(
    dag: Any, name: str, run: tuple[datetime, datetime, datetime]
) -> list[IntegrityFinding]:
    """A ``template`` finding per templated field of a task that does not render."""
    found = []
    for task in dag.tasks:
        for field_name, error, template in _render_errors(task, run):
            shown = f"; template: {template!r}" if template else ""
            message = (
                f"{name}: DAG {dag.dag_id!r}, task {task.task_id!r}, field {field_name!r} does "
                f"not render for a run at {run[0].isoformat()}: {error}{shown}"
            )
            found.append(IntegrityFinding("template", name, dag.dag_id, task.task_id, message))
    return found


def _render_errors(
    task: Any, run: tuple[datetime, datetime, datetime]
) -> list[tuple[str, str, str | None]]:
    """``(field, error, template)`` for each templated field of ``task`` that fails to render.

    Each field is rendered on its own, on a copy of the task locked for execution (what the
    task runner renders), with the task's own Jinja environment and a context built as the
    task runner builds it. A mapped task's copy expands (as map index 0) before it renders.
    """
    import copy

    errors = []
    for field_name in task.template_fields:
        try:
            context = _sample_context(task, run)
            clone = copy.copy(task) if task.is_mapped else task.prepare_for_execution()
            clone.template_fields = (field_name,)
            clone.render_template_fields(context, task.get_template_env())
        except Exception as err:
            template = getattr(task, field_name, None)
            if task.is_mapped:
                template = task.partial_kwargs.get(field_name)
            shown = template if isinstance(template, str) and len(template) <= 200 else None
            errors.append((field_name, _describe(err), shown))
    return errors


def _describe(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    lineno = getattr(err, "lineno", None)
    if lineno and "line" not in str(err):
        text += f" (line {lineno})"
    return text


def _sample_context(task: Any, run: tuple[datetime, datetime, datetime]) -> Any:
    """The template context of ``task`` in the sample run, from the task SDK's own
    ``get_template_context`` (macros, params, dates, ``ti``...); ``ti.xcom_pull``, ``var``
    and ``conn`` give placeholders (nothing runs, no Airflow API server is needed)."""
    import uuid

    from airflow.sdk.api.datamodels._generated import (
        DagRun,
        DagRunState,
        DagRunType,
        TIRunContext,
    )

    logical, start, end = run
    run_id = f"scheduled__{logical.isoformat()}"
    dag_run = DagRun(
        dag_id=task.dag_id,
        run_id=run_id,
        logical_date=logical,
        data_interval_start=start,
        data_interval_end=end,
        run_after=end,
        start_date=end,
        end_date=None,
        run_type=DagRunType.SCHEDULED,
        state=DagRunState.RUNNING,
        conf={},
        consumed_asset_events=[],
        partition_key=None,
    )
    retries = int(getattr(task, "retries", 0) or 0)
    ti = _sample_task_instance_class().model_construct(
        id=uuid.uuid4(),
        task_id=task.task_id,
        dag_id=task.dag_id,
        run_id=run_id,
        try_number=1,
        dag_version_id=uuid.uuid4(),
        map_index=0 if task.is_mapped else -1,
        task=task,
        start_date=end,
        max_tries=retries,
        _ti_context_from_server=TIRunContext.model_construct(dag_run=dag_run, max_tries=retries),
    )
    with _lenient_params():
        context = ti.get_template_context()
    context["var"] = {"json": _Placeholder("var.json"), "value": _Placeholder("var.value")}
    context["conn"] = _Placeholder("conn")
    return context


@functools.cache
def _sample_task_instance_class() -> Any:
    """The task SDK's runtime task instance, whose ``xcom_pull`` returns a placeholder (and
    fails for a task the DAG does not have, as the real pull would find nothing)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    class SampleTaskInstance(RuntimeTaskInstance):
        def xcom_pull(self, task_ids: Any = None, dag_id: Any = None, *args: Any, **kw: Any) -> Any:
            ids = [task_ids] if isinstance(task_ids, str) else list(task_ids or [])
            if dag_id in (None, self.dag_id):
                known = self.task.dag.task_dict
                missing = [t for t in ids if t not in known]
                if missing:
                    raise LookupError(
                        f"xcom_pull(task_ids={task_ids!r}): DAG {self.dag_id!r} has no task "
                        f"{', '.join(map(repr, missing))}"
                    )
            key = kw.get("key", args[0] if args else "return_value")
            shown = f"task_ids={task_ids!r}" + (f", key={key!r}" if key != "return_value" else "")
            return _Placeholder(f"xcom_pull({shown})")

    return SampleTaskInstance


@contextlib.contextmanager
def _lenient_params() -> Iterator[None]:
    """While building the sample context, validate the DAG's params without failing on a
    required one the sample run (which has no conf) does not give: the rendering is under test,
    not the run conf."""
    from airflow.sdk.execution_time import task_runner

    strict = task_runner.process_params

    def lenient(*args: Any, **kwargs: Any) -> Any:
        return strict(*args, **{**kwargs, "suppress_exception": True})

    task_runner.process_params = lenient
    try:
        yield
    finally:
        task_runner.process_params = strict


class _Placeholder(str):
    """Stands for a value only a real run has (an XCom, a Variable, a Connection).

    It is a string (its description, ``<xcom_pull(task_ids='t')>``), so string use renders:
    concatenation, string methods, filters such as ``tojson``. Its items, its attributes other
    than a string's, and its calls are placeholders too, so ``{{ ti.xcom_pull(task_ids='t')
    ['key'] }}`` and ``{{ var.value.region }}`` render; it is a sequence of one placeholder,
    so a loop over it runs its body once and a mapped task expands over it.
    """

    #: Attributes Jinja and Airflow probe for: a placeholder has none of them.
    _PROTOCOL = frozenset({"unsafe_callable", "alters_data", "jinja_pass_arg", "resolve"})
    #: What it stands for (``xcom_pull(task_ids='t')['key']``).
    path: str

    def __new__(cls, path: str) -> _Placeholder:
        placeholder = super().__new__(cls, f"<{path}>")
        placeholder.path = path
        return placeholder

    def __getattr__(self, name: str) -> _Placeholder:
        if name.startswith("_") or name in self._PROTOCOL:
            raise AttributeError(name)
        return _Placeholder(f"{self.path}.{name}")

    def __getitem__(self, key: Any) -> _Placeholder:  # type: ignore[override]
        return _Placeholder(f"{self.path}[{key!r}]")

    def __call__(self, *args: Any, **kwargs: Any) -> _Placeholder:
        return _Placeholder(f"{self.path}(...)")

    def __iter__(self) -> Any:
        return iter([_Placeholder(f"{self.path}[0]")])

    def __len__(self) -> int:
        return 1


# --------------------------------------------------------------------------- HTML


def _render_html(report: IntegrityReport) -> str:
    """The report as a self-contained page (:mod:`mlops_provider.core.reports`)."""
    from mlops_provider.core import reports

    verdict = reports.badge(report.ok, "passed" if report.ok else "FAILED")
    baseline = report.baseline_seconds
    facts = [
        ("DAGs folder", report.dags_folder),
        ("DAGs", f"{len(report.dags)} in {len(report.files)} file(s)"),
        ("problems", len(report.findings)),
        ("parse budget", f"{report.parse_budget:.3f} s over an empty DAG (best of {report.runs})"),
        ("empty DAG parses in", "-" if baseline is None else f"{baseline:.3f} s"),
        ("forbidden at parse time", ", ".join(report.forbidden)),
    ]
    problems = [
        {"check": f.check, "file": f.file, "DAG": f.dag_id, "task": f.task_id, "problem": f.message}
        for f in report.findings
    ]
    files = [
        {
            "file": f.file,
            "DAGs": ", ".join(f.dag_ids),
            "parse s (over empty DAG)": f.parse_seconds,
            "forbidden imports": ", ".join(f.forbidden_imports),
            "status": reports.badge(_file_ok(report, f)),
        }
        for f in report.files
    ]
    dags = [
        {
            "DAG": d.dag_id,
            "file": d.file,
            "tasks": d.task_count,
            "sample logical date": d.logical_date,
            "data interval": " - ".join(str(t) for t in d.data_interval),
        }
        for d in report.dags
    ]
    sections = [
        ("Summary", f"<p>{verdict}</p>" + reports.table_html(facts, ["", ""])),
        ("Problems", reports.table_html(problems)),
        ("Parse time", _parse_plot(report)),
        ("DAG files", reports.table_html(files)),
        ("DAGs", reports.table_html(dags)),
    ]
    return reports.page("DAG integrity", sections, subtitle=f"{report.dags_folder};")


def _file_ok(report: IntegrityReport, facts: FileFacts) -> bool:
    return not any(f.file == facts.file for f in report.findings)


def _parse_plot(report: IntegrityReport) -> str:
    from mlops_provider.core import reports

    timed = [f for f in report.files if f.parse_seconds is not None]
    if not timed:
        return "<p><em>no DAG file was timed</em></p>"
    values = [max(f.parse_seconds or 0.0, 0.0) for f in timed]
    over = [v > report.parse_budget or bool(f.forbidden_imports) for v, f in zip(values, timed)]
    return reports.svg_bars(
        [f.file for f in timed],
        values,
        color=["#c62828" if bad else "#4c72b0" for bad in over],
        axis_label="seconds to parse over an empty DAG (best of runs)",
        caption="Parse time per DAG file against the budget (red: over it or heavy imports)",
        maximum=max([*values, report.parse_budget]) * 1.15,
        unit=" s",
        digits=3,
        limit=report.parse_budget,
        limit_label=f"budget {report.parse_budget:g} s",
    )
