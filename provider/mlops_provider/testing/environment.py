"""Isolated Airflow environments in which a project's CI runs its DAGs with ``dag.test()``.

An environment is a directory with everything a DAG run writes: an Airflow home (its own copy of
a migrated SQLite metadata database), an ``MLOPS_HOME`` (the data lake and the embedded MLflow
store) and a copy of the project's Feast repo (whose registry and online store therefore live
in the environment too). The project's DAGs folder and files are used where they are.

Every DAG runs in a fresh interpreter (``python -m mlops_provider.testing._runner``) with
:meth:`MlopsEnvironment.environ`: the calling process (a pytest session that may have imported
Airflow with another ``AIRFLOW_HOME``) is never touched, and two environments share nothing::

    template = migrate_template_database(tmp / "template")  # once per session (seconds)
    env = create_environment(tmp / "env", dags_folder=project / "dags", template_db=template)
    env.put("tests/samples/activity.parquet", "raw/dt=2026-01-01/activity.parquet")
    result = env.run_dag("mlops_feature_pipeline", day="2026-01-01")
    result.assert_success()
    assert result.xcoms["validate_raw"]["passed"]

The module also holds the in-process helpers the runner is built on (:func:`sync_dag`,
:func:`interval_logical_date`, :func:`run_dag_in_process`, :func:`task_states`, :func:`xcom`),
for a process that owns its Airflow configuration (the demo, the provider's own tests).

Only the standard library is imported at module level; Airflow is imported inside functions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "DagNotFoundError",
    "DagRunResult",
    "MlopsEnvironment",
    "RunnerError",
    "create_environment",
    "interval_logical_date",
    "migrate_template_database",
    "return_values",
    "run_dag_in_process",
    "sync_dag",
    "task_states",
    "xcom",
]

#: The metadata database file of an Airflow home (and of a template).
DB_FILE = "airflow.db"
#: How much of a subprocess's output a result or an error keeps (its tail, in characters).
OUTPUT_TAIL = 20_000
#: Variables of the caller that never reach an environment (its Airflow configuration,
#: connections and variables, the provider's settings, MLflow's URIs).
STRIPPED_PREFIXES = ("AIRFLOW_", "_AIRFLOW", "MLOPS_", "MLFLOW_")
#: The Execution API URL ``dag.test()`` is configured with (no server is started).
EXECUTION_API_SERVER_URL = "http://localhost:8080/execution/"
#: What a copy of a Feast repo leaves out: its local data and SQLite stores.
FEATURE_REPO_IGNORE = ("data", "*.db", "__pycache__")
_RUNNER_MODULE = "mlops_provider.testing._runner"
_PLACEHOLDER = re.compile(r"\$\{(MLOPS_HOME|MLOPS_DATA_ROOT|FEAST_REPO_PATH)\}")


class RunnerError(RuntimeError):
    """A subprocess of an environment crashed, timed out or wrote no result.

    :ivar output: the tail of the subprocess's output.
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(f"{message}\n--- output (tail) ---\n{output}" if output else message)
        self.output = output


class DagNotFoundError(RunnerError, LookupError):
    """The DAGs folder defines no DAG of that id; the message lists the ids found and the
    folder's import errors.

    :ivar dag_id: the id asked for.
    :ivar dag_ids: the ids the folder defines.
    :ivar import_errors: file -> error of the folder's files that failed to import.
    """

    def __init__(
        self, dag_id: str, folder: Path, dag_ids: list[str], import_errors: Mapping[str, str]
    ) -> None:
        lines = [f"no DAG {dag_id!r} in {folder}; DAGs found: {sorted(dag_ids) or 'none'}"]
        for path, error in sorted(import_errors.items()):
            lines.append(f"import error in {path}:\n{error.rstrip()}")
        super().__init__("\n".join(lines))
        self.dag_id = dag_id
        self.dag_ids = sorted(dag_ids)
        self.import_errors = dict(import_errors)


# ---------------------------------------------------------------- results


@dataclass
class DagRunResult:
    """What one ``dag.test()`` run in an environment left.

    :ivar dag_id: the DAG run.
    :ivar run_id: the run's id.
    :ivar logical_date: the run's logical date (ISO 8601), or None.
    :ivar state: the run's final state (``success``, ``failed``).
    :ivar task_states: ``"task"`` or ``"task[map_index]"`` -> state of each task instance.
    :ivar xcoms: the same keys -> the ``return_value`` XCom (as JSON), for the task instances
        that pushed one.
    :ivar output: the tail of the run's output (logs of every task).
    """

    dag_id: str
    run_id: str
    logical_date: str | None
    state: str
    task_states: dict[str, str]
    xcoms: dict[str, Any] = field(default_factory=dict)
    output: str = field(default="", repr=False)

    def failed_tasks(self) -> list[str]:
        """The task instances that failed (not those that only had a failed upstream)."""
        return sorted(key for key, state in self.task_states.items() if state == "failed")

    def assert_success(self) -> None:
        """Check that the run and all its task instances succeeded (or were skipped).

        :raises AssertionError: naming the run, the failed and upstream-failed task instances,
            and the log lines of each failed one (its exception) taken from :attr:`output`.
        """
        bad = {k: s for k, s in self.task_states.items() if s not in ("success", "skipped")}
        if self.state == "success" and not bad:
            return
        failed = self.failed_tasks()
        upstream = sorted(k for k, s in bad.items() if s == "upstream_failed")
        others = {k: s for k, s in sorted(bad.items()) if s not in ("failed", "upstream_failed")}
        lines = [f"DAG {self.dag_id} run {self.run_id} ended {self.state}"]
        lines.append(f"failed tasks: {', '.join(failed) or 'none'}")
        if upstream:
            lines.append(f"upstream_failed tasks: {', '.join(upstream)}")
        if others:
            lines.append(f"unfinished tasks: {others}")
        for key in failed:
            lines.append(f"--- log of {key} ---\n{task_log(self.output, key)}")
        if not failed:
            lines.append(f"--- output (tail) ---\n{self.output[-4000:]}")
        raise AssertionError("\n".join(lines))


def task_log(output: str, key: str, max_lines: int = 80) -> str:
    """The lines of ``output`` that ``dag.test()`` logged while running one task instance
    (without the Execution API's bookkeeping lines).

    :param key: ``"task"`` or ``"task[map_index]"``.
    :returns: the last ``max_lines`` lines of that task's log, or the output's error lines
        (``Traceback``/``ERROR``) when the task's start is not in the output (its tail).
    """
    task_id, _, rest = key.partition("[")
    marker = f"task_id={task_id} map_index={rest.rstrip(']') or '-1'}"
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if f"[DAG TEST] starting {marker}" in line]
    if not starts:
        errors = [line for line in lines if "Traceback" in line or "error" in line.lower()]
        return "\n".join(errors[-max_lines:]) or "(the task's log is not in the output tail)"
    section = []
    for line in lines[starts[-1] :]:
        if "[airflow.api_fastapi." not in line:
            section.append(line)
        if f"[DAG TEST] end task {marker}" in line:
            break
    return "\n".join(section[-max_lines:])


# ---------------------------------------------------------------- environments


def _clean_environ() -> dict[str, str]:
    """The caller's environment without its Airflow, provider and MLflow settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES)}


def _airflow_settings(airflow_home: Path, dags_folder: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / DB_FILE}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": EXECUTION_API_SERVER_URL,
    }


def _tail(path: Path, size: int = OUTPUT_TAIL) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - size))
        return handle.read().decode("utf-8", errors="replace")


def _run_logged(
    what: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float
) -> int:
    """Run ``cmd`` (``what`` it does, for errors) with its output in ``log``; its exit code.

    :raises RunnerError: it did not finish within ``timeout`` seconds (its process group is
        killed).
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    raise RunnerError(f"{what} did not finish within {timeout:g}s", _tail(log))


def migrate_template_database(directory: Path, *, timeout: float = 600) -> Path:
    """Create a migrated Airflow metadata database (SQLite) that environments copy.

    Runs ``airflow db migrate`` (the interpreter's own Airflow) once, in a fresh Airflow home
    ``directory``: migrating for every environment would cost seconds each.

    :param directory: the template's Airflow home (created; an existing database is migrated).
    :param timeout: seconds the migration may take.
    :returns: the database file, ``directory/airflow.db``.
    :raises RunnerError: the migration failed or timed out (with its output).
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    env = _clean_environ()
    env.update(_airflow_settings(directory, directory / "dags"))
    log = directory / "migrate.log"
    cmd = [sys.executable, "-m", "airflow", "db", "migrate"]
    code = _run_logged(f"airflow db migrate in {directory}", cmd, env, directory, log, timeout)
    if code != 0 or not (directory / DB_FILE).is_file():
        raise RunnerError(
            f"airflow db migrate in {directory} failed (exit code {code})", _tail(log)
        )
    return directory / DB_FILE


@dataclass
class MlopsEnvironment:
    """An isolated environment: its own Airflow home, ``MLOPS_HOME`` and Feast repo copy.

    Build one with :func:`create_environment`.

    :ivar root: the environment's directory.
    :ivar airflow_home: ``root/airflow`` (its metadata database ``airflow.db``, logs).
    :ivar mlops_home: ``root/mlops``, the provider's embedded state (lake, MLflow store, the
        Feast registry and online store of the reference repo).
    :ivar lake: ``mlops_home/data``, the local data lake.
    :ivar feature_repo: ``root/feature_repo``, the copy of the project's Feast repo (absent when
        the project has none).
    :ivar dags_folder: the project's DAGs folder (used in place).
    :ivar project_root: the project (its ``include/`` holds the files its DAGs name).
    """

    root: Path
    airflow_home: Path
    mlops_home: Path
    lake: Path
    feature_repo: Path
    dags_folder: Path
    project_root: Path
    _runs: int = field(default=0, init=False, repr=False)

    def environ(self) -> dict[str, str]:
        """The full environment of a subprocess running in this environment.

        The caller's environment without its ``AIRFLOW_*``/``AIRFLOW__*`` (Airflow home,
        configuration, connections, variables), ``MLOPS_*`` and ``MLFLOW_*`` variables, plus
        this environment's Airflow home, SQLite database, DAGs folder, ``LOAD_EXAMPLES=False``,
        the Execution API URL, ``MLOPS_HOME``, ``MLOPS_PROJECT_ROOT``, ``MLOPS_FEATURE_REPO``
        (the copy, when there is one) and ``PYTHONPATH`` (DAGs folder, project root, then the
        caller's ``PYTHONPATH``).

        :returns: a new dict; ``os.environ`` is not changed.
        """
        env = _clean_environ()
        env.update(_airflow_settings(self.airflow_home, self.dags_folder))
        env["MLOPS_HOME"] = str(self.mlops_home)
        env["MLOPS_PROJECT_ROOT"] = str(self.project_root)
        if self.feature_repo.is_dir():
            env["MLOPS_FEATURE_REPO"] = str(self.feature_repo)
        path = [str(self.dags_folder), str(self.project_root), os.environ.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        return env

    def path(self, relative: str) -> Path:
        """A path inside the lake (``raw/dt=2026-01-01/activity.parquet``); nothing is created.

        :raises ValueError: ``relative`` is absolute or leaves the lake.
        """
        target = (self.lake / relative).resolve()
        if Path(relative).is_absolute() or not target.is_relative_to(self.lake.resolve()):
            raise ValueError(f"{relative!r} is not a path inside the lake {self.lake}")
        return target

    def put(self, source: str | Path, relative: str) -> Path:
        """Copy a sample file or directory into the lake at ``relative`` (parents created; a
        directory is merged into an existing one).

        :returns: the copy.
        :raises FileNotFoundError: ``source`` does not exist.
        :raises ValueError: ``relative`` leaves the lake.
        """
        source = Path(source)
        target = self.path(relative)
        if not source.exists():
            raise FileNotFoundError(f"sample {source} does not exist (to copy to {target})")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return target

    def run_dag(
        self,
        dag_id: str,
        *,
        day: date | str | None = None,
        logical_date: datetime | str | None = None,
        conf: dict[str, Any] | None = None,
        tasks: Sequence[str] | None = None,
        timeout: float = 900,
    ) -> DagRunResult:
        """Run a DAG of the DAGs folder once with ``dag.test()``, in a fresh interpreter.

        The DAG is loaded as the DAG processor loads the folder (the folder importable),
        serialized into the environment's database and run; every task runs once (retries
        are set to 0, so a failure shows at once).

        :param dag_id: a DAG of the DAGs folder.
        :param day: the data interval ``[day, day + 1)``: logical date ``day + 1`` at 00:00
            UTC (a ``date`` or ``YYYY-MM-DD``).
        :param logical_date: an explicit logical date (naive means UTC); neither: now.
        :param conf: the run's ``conf``.
        :param tasks: run only these tasks (no upstream or downstream task is added).
        :param timeout: seconds the run may take.
        :returns: the run's states, XComs and output; a failed run is returned, not raised
            (see :meth:`DagRunResult.assert_success`).
        :raises ValueError: both ``day`` and ``logical_date``, or an unknown task in ``tasks``.
        :raises DagNotFoundError: the folder defines no ``dag_id``.
        :raises RunnerError: the subprocess crashed or timed out.
        """
        self._runs += 1
        workdir = self.root / "runs" / f"{self._runs:03d}-{dag_id}"
        workdir.mkdir(parents=True, exist_ok=True)
        request = {
            "dag_id": dag_id,
            "dags_folder": str(self.dags_folder),
            "logical_date": _logical_date(day, logical_date),
            "conf": conf or {},
            "tasks": list(tasks) if tasks is not None else None,
            "result": str(workdir / "result.json"),
        }
        (workdir / "request.json").write_text(json.dumps(request, indent=2, default=str))
        log = workdir / "output.log"
        cmd = [sys.executable, "-m", _RUNNER_MODULE, str(workdir / "request.json")]
        what = f"the run of DAG {dag_id} in {self.root}"
        code = _run_logged(what, cmd, self.environ(), self.root, log, timeout)
        return _read_result(workdir / "result.json", dag_id, code, self.dags_folder, log)


def _logical_date(day: date | str | None, logical_date: datetime | str | None) -> str | None:
    """The ISO logical date a runner request carries (None: now)."""
    if day is not None and logical_date is not None:
        raise ValueError(f"pass day or logical_date, not both (day={day}, {logical_date=})")
    if day is not None:
        value = date.fromisoformat(day) if isinstance(day, str) else day
        if isinstance(value, datetime):
            value = value.date()
        return interval_logical_date(value).isoformat()
    if logical_date is not None:
        when = (
            datetime.fromisoformat(logical_date) if isinstance(logical_date, str) else logical_date
        )
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.isoformat()
    return None


def _read_result(path: Path, dag_id: str, code: int, folder: Path, log: Path) -> DagRunResult:
    """The result a runner wrote, or the error it reported or died of (its output in ``log``)."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    error = data.get("error")
    if error == "dag_not_found":
        raise DagNotFoundError(dag_id, folder, data["dag_ids"], data["import_errors"])
    if error == "unknown_tasks":
        raise ValueError(f"DAG {dag_id} has no task(s) {data['missing']}; tasks: {data['tasks']}")
    if code != 0 or not data:
        message = f"the run of DAG {dag_id} crashed (exit code {code}; full output: {log})"
        raise RunnerError(message, _tail(log))
    return DagRunResult(
        dag_id=data["dag_id"],
        run_id=data["run_id"],
        logical_date=data["logical_date"],
        state=data["state"],
        task_states=data["task_states"],
        xcoms=data["xcoms"],
        output=_tail(log),
    )


def _copy_feature_repo(source: Path, target: Path, mlops_home: Path) -> None:
    """Copy a Feast repo without its data; its ``feature_store.yaml`` placeholders for the
    provider's state (``${MLOPS_HOME}``, ``${MLOPS_DATA_ROOT}``, ``${FEAST_REPO_PATH}``) are
    written out, so the copy opens the environment's stores from any process."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*FEATURE_REPO_IGNORE))
    values = {
        "MLOPS_HOME": str(mlops_home),
        "MLOPS_DATA_ROOT": str(mlops_home / "data"),
        "FEAST_REPO_PATH": str(target),
    }
    config = target / "feature_store.yaml"
    if config.is_file():
        text = _PLACEHOLDER.sub(lambda match: values[match.group(1)], config.read_text())
        config.write_text(text)


def create_environment(
    base_dir: Path,
    *,
    dags_folder: Path,
    project_root: Path | None = None,
    feature_repo: Path | None = None,
    template_db: Path | None = None,
) -> MlopsEnvironment:
    """Create an isolated environment in ``base_dir`` for the DAGs of ``dags_folder``.

    :param base_dir: the environment's directory (created; it must hold no environment yet).
    :param dags_folder: the project's DAGs folder (used in place, not copied).
    :param project_root: the project; default the directory above ``dags_folder``.
    :param feature_repo: the Feast repo to copy; default ``project_root/include/feature_repo``
        when it exists (else the environment has none).
    :param template_db: a database from :func:`migrate_template_database`, copied; None:
        ``airflow db migrate`` runs in the environment (seconds).
    :returns: the environment.
    :raises FileNotFoundError: ``dags_folder``, ``feature_repo`` or ``template_db`` is missing.
    :raises FileExistsError: ``base_dir`` already holds an environment.
    :raises RunnerError: the migration (without ``template_db``) failed.
    """
    root = Path(base_dir).resolve()
    dags = Path(dags_folder).resolve()
    if not dags.is_dir():
        raise FileNotFoundError(f"DAGs folder {dags} does not exist or is not a directory")
    project = Path(project_root).resolve() if project_root is not None else dags.parent
    repo = Path(feature_repo).resolve() if feature_repo is not None else None
    if repo is not None and not (repo / "feature_store.yaml").is_file():
        raise FileNotFoundError(f"Feast repo {repo} has no feature_store.yaml")
    if repo is None and (project / "include" / "feature_repo" / "feature_store.yaml").is_file():
        repo = project / "include" / "feature_repo"
    if template_db is not None and not Path(template_db).is_file():
        raise FileNotFoundError(f"template database {template_db} does not exist")
    if (root / "airflow").exists():
        raise FileExistsError(f"{root} already holds an environment (its airflow/ exists)")
    mlops_home = root / "mlops"
    env = MlopsEnvironment(
        root=root,
        airflow_home=root / "airflow",
        mlops_home=mlops_home,
        lake=mlops_home / "data",
        feature_repo=root / "feature_repo",
        dags_folder=dags,
        project_root=project,
    )
    env.lake.mkdir(parents=True)
    env.airflow_home.mkdir(parents=True)
    if repo is not None:
        _copy_feature_repo(repo, env.feature_repo, mlops_home)
    if template_db is not None:
        shutil.copyfile(template_db, env.airflow_home / DB_FILE)
    else:
        migrate_template_database(env.airflow_home)
    return env


# ---------------------------------------------------------------- in-process helpers


def sync_dag(dag: Any) -> None:
    """Serialize ``dag`` into the metadata DB (bundle ``dags-folder``) so ``dag.test`` can run
    it (needed for DAGs defined outside the DAGs folder)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder="/nonexistent", collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def interval_logical_date(day: date) -> datetime:
    """The ``logical_date`` to pass to ``dag.test`` so that the data interval is [day, day+1).

    The reference DAGs use data-interval timetables: the run for day D has
    ``data_interval_start = D`` and ``data_interval_end = D + 1 day``, which ``dag.test``
    infers from ``logical_date = D + 1 day`` (00:00 UTC).
    """
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)


def run_dag_in_process(
    dag: Any,
    day: date | None = None,
    *,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    sync: bool = True,
) -> Any:
    """Run ``dag`` once with ``dag.test()`` in this process (its Airflow configuration);
    ``day`` selects the data interval [day, day+1).

    :param conf: the run's ``conf``.
    :param logical_date: explicit logical date (for DAGs without data intervals); wins over day.
    :param sync: serialize the DAG first (needed for DAGs defined outside the DAGs folder).
    :returns: the finished ``DagRun``.
    """
    if sync:
        sync_dag(dag)
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    elif day is not None:
        kwargs["logical_date"] = interval_logical_date(day)
    return dag.test(**kwargs)


def _key(task_id: str, map_index: int) -> str:
    """How results name a task instance: ``task`` or ``task[map_index]``."""
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id[map_index]: state}`` of a finished run."""
    return {_key(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """An XCom value of a finished run (None when the task pushed none)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=dag_run.dag_id,
                run_id=dag_run.run_id,
                task_id=task_id,
                key=key,
                map_index=map_index,
            )
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def return_values(dag_run: Any) -> dict[str, Any]:
    """``{task_id[map_index]: return_value}`` of the task instances of a finished run that
    pushed one."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out = {}
    with create_session() as session:
        rows = session.query(XComModel).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, key="return_value"
        )
        for row in rows:
            out[_key(row.task_id, row.map_index)] = XComModel.deserialize_value(row)
    return out
