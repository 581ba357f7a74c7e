"""pytest plugin of the provider: the CI checks of an Airflow project (docs/ci.md).

Installed as the ``pytest11`` entry point ``mlops``, so pytest loads it in any environment
where the provider is installed (Airflow never reads ``pytest11``: schedulers and workers do
not load it). Loading it only registers options, markers and fixtures; nothing runs and no
environment variable changes unless a test opts in: with ``--mlops`` on the command line, or
a marker whose name starts with ``mlops`` (``mlops``, ``mlops_integrity``, ``mlops_data``,
``mlops_training``, ``mlops_run``) on the test. A test that requests a fixture without opting
in fails, saying how to opt in.

Fixtures:

- ``mlops``: the project's checks (:class:`MlopsChecks`): DAG integrity, data checks, the
  small training run and isolated environments, with the project's paths and the reports
  directory filled in;
- ``mlops_env``: an isolated environment for this test
  (:class:`~mlops_provider.testing.environment.MlopsEnvironment`: its own Airflow home with
  a migrated metadata DB, embedded MLflow store, Feast repo copy and data lake), on which
  ``run_dag`` runs a DAG through Airflow in a subprocess;
- ``mlops_template_db``: the migrated metadata DB the session's environments copy (for
  environments a test builds itself with ``create_environment``).

Settings (command line, else ``[tool.pytest.ini_options]``):

- ``--mlops-project`` / ``mlops_project``: the Airflow project (default: the nearest
  directory from pytest's rootdir upwards holding a ``dags/`` folder);
- ``--mlops-dags`` / ``mlops_dags_folder``: its DAGs folder (default: ``<project>/dags``);
- ``--mlops-reports`` / ``mlops_reports_dir``: where the HTML reports go (default: a
  temporary directory); CI uploads it;
- ``mlops_parse_budget``: seconds a DAG file's parse may cost over an empty DAG's (0.3).

The DAG checks load the project's DAGs in the test process: with no ``AIRFLOW_HOME`` set, an
opted-in session uses a temporary Airflow home (never ``~/airflow``). DAG runs happen in
subprocesses, each in its own environment.

Only the standard library and pytest are imported at module level.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MARKERS = {
    "mlops": "opts the test in to the mlops CI checks' fixtures (mlops, mlops_env)",
    "mlops_integrity": "an mlops DAG integrity check (opts in; ci/mlops-ci.sh stage integrity)",
    "mlops_data": "an mlops data check (opts in; ci/mlops-ci.sh stage data)",
    "mlops_training": "the mlops small training run (opts in; ci/mlops-ci.sh stage training)",
    "mlops_run": "an mlops sample DAG run (opts in; ci/mlops-ci.sh stage run)",
}
DEFAULT_PARSE_BUDGET = 0.3


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlops", "airflow-provider-mlops CI checks (docs/ci.md)")
    group.addoption(
        "--mlops",
        action="store_true",
        default=False,
        help="opt every test in to the mlops fixtures (else only tests marked mlops*)",
    )
    group.addoption("--mlops-project", default=None, help="the Airflow project's directory")
    group.addoption("--mlops-dags", default=None, help="the project's DAGs folder")
    group.addoption("--mlops-reports", default=None, help="directory for the HTML reports")
    parser.addini("mlops_project", "the Airflow project's directory (default: rootdir)")
    parser.addini("mlops_dags_folder", "the DAGs folder (default: <project>/dags)")
    parser.addini("mlops_reports_dir", "directory for the mlops checks' HTML reports")
    parser.addini("mlops_parse_budget", "seconds a DAG file's parse may cost (default 0.3)")


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def _setting(config: pytest.Config, option: str, ini: str) -> str | None:
    value = config.getoption(option) or config.getini(ini)
    return str(value) if value else None


def _path(config: pytest.Config, value: str | None, default: Path) -> Path:
    if not value:
        return default
    path = Path(value).expanduser()
    return path if path.is_absolute() else (config.rootpath / path).resolve()


def opted_in(request: pytest.FixtureRequest) -> bool:
    """Whether the requesting test opted in (``--mlops`` or an ``mlops*`` marker)."""
    if request.config.getoption("mlops"):
        return True
    return any(m.name.startswith("mlops") for m in request.node.iter_markers())


def _require_opt_in(request: pytest.FixtureRequest) -> None:
    if not opted_in(request):
        pytest.fail(
            f"{request.node.nodeid} uses the mlops fixture {request.fixturename!r} without "
            "opting in: mark it @pytest.mark.mlops (or mlops_integrity, mlops_data, "
            "mlops_training, mlops_run) or run pytest with --mlops",
            pytrace=False,
        )


@dataclass
class MlopsChecks:
    """The CI checks of one Airflow project, with its paths filled in (fixture ``mlops``).

    Relative sample and suite paths are resolved against ``project_root``; every check writes
    its HTML report under ``reports_dir``.

    :param project_root: the Airflow project (its ``include/`` holds the suites, the Feast
        repo and the samples).
    :param dags_folder: its DAGs folder.
    :param reports_dir: where the HTML reports go.
    :param parse_budget: seconds a DAG file's parse may cost over an empty DAG's.
    """

    project_root: Path
    dags_folder: Path
    reports_dir: Path
    parse_budget: float = DEFAULT_PARSE_BUDGET
    _environment_factory: Callable[[], Any] | None = field(default=None, repr=False)
    _integrity: Any = field(default=None, repr=False)

    def path(self, relative: str | os.PathLike[str]) -> Path:
        """``relative`` resolved against the project root (absolute paths are kept)."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.project_root / path

    def _resolved(self, value: Any) -> Any:
        return self.path(value) if isinstance(value, str | os.PathLike) else value

    def integrity(self, **kwargs: Any) -> Any:
        """The DAG integrity report of the DAGs folder (computed once per session with the
        default settings; ``kwargs`` go to
        :func:`~mlops_provider.testing.integrity.check_dag_integrity` and recompute it).
        Its HTML report is ``<reports_dir>/integrity.html``."""
        from mlops_provider.testing.integrity import check_dag_integrity

        if self._integrity is not None and not kwargs:
            return self._integrity
        report = check_dag_integrity(
            self.dags_folder, **{"parse_budget": self.parse_budget, **kwargs}
        )
        report.write_html(self.reports_dir / "integrity.html")
        if not kwargs:
            self._integrity = report
        return report

    def validate_sample(self, sample: Any, suite: Any, **kwargs: Any) -> Any:
        """:func:`~mlops_provider.testing.checks.validate_sample` with project paths."""
        from mlops_provider.testing.checks import validate_sample

        kwargs.setdefault("report_dir", self.reports_dir / "data")
        return validate_sample(self._resolved(sample), self._resolved(suite), **kwargs)

    def check_transformation(
        self, transform: Callable[[Any], Any], sample: Any, suite: Any, **kwargs: Any
    ) -> Any:
        """:func:`~mlops_provider.testing.checks.check_transformation` with project paths."""
        from mlops_provider.testing.checks import check_transformation

        kwargs.setdefault("report_dir", self.reports_dir / "data")
        if "input_suite" in kwargs:
            kwargs["input_suite"] = self._resolved(kwargs["input_suite"])
        return check_transformation(
            transform, self._resolved(sample), self._resolved(suite), **kwargs
        )

    def suites_used(self) -> dict[str, list[str]]:
        """:func:`~mlops_provider.testing.checks.suites_used` of the DAGs folder."""
        from mlops_provider.testing.checks import suites_used

        return suites_used(self.dags_folder)

    def missing_samples(self, samples: Mapping[str, Any]) -> dict[str, list[str]]:
        """:func:`~mlops_provider.testing.checks.missing_samples` of the DAGs folder."""
        from mlops_provider.testing.checks import missing_samples

        return missing_samples(self.dags_folder, samples)

    def train_sample(self, sample: Any, dag_id: str, task_id: str = "train", **kwargs: Any) -> Any:
        """:func:`~mlops_provider.testing.checks.train_sample` on a DAG of the project."""
        from mlops_provider.testing.checks import train_sample

        kwargs.setdefault("report_dir", self.reports_dir)
        return train_sample(
            self._resolved(sample),
            dags_folder=self.dags_folder,
            dag_id=dag_id,
            task_id=task_id,
            **kwargs,
        )

    def environment(self) -> Any:
        """A new isolated environment (see the ``mlops_env`` fixture)."""
        if self._environment_factory is None:
            raise RuntimeError("environments are created through the mlops fixture")
        return self._environment_factory()


@pytest.fixture(scope="session")
def _mlops_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Per-session state: the migrated template DB (created on first use), the integrity
    report, and the Airflow home this session set (removed from the environment at the end)."""
    state = {"tmp": tmp_path_factory, "template_db": None, "integrity": None, "home": None}
    yield state
    if state["home"] is not None and os.environ.get("AIRFLOW_HOME") == state["home"]:
        del os.environ["AIRFLOW_HOME"]


def _airflow_home(state: dict[str, Any]) -> None:
    """The checks that load DAGs in the test process need an Airflow configuration: without
    ``AIRFLOW_HOME`` (and before Airflow is imported) a temporary one is used for the session,
    never ``~/airflow``."""
    if os.environ.get("AIRFLOW_HOME") or "airflow.configuration" in sys.modules:
        return
    home = state["tmp"].mktemp("mlops-airflow-home")
    os.environ["AIRFLOW_HOME"] = state["home"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def _template_db(state: dict[str, Any]) -> Path:
    from mlops_provider.testing.environment import migrate_template_database

    if state["template_db"] is None:
        state["template_db"] = migrate_template_database(state["tmp"].mktemp("mlops-airflow-db"))
    return Path(state["template_db"])


def default_project(rootdir: Path) -> Path:
    """The project of a run without ``mlops_project``: the nearest directory from pytest's
    rootdir upwards that holds a ``dags/`` folder (pytest's rootdir is ``tests/`` when the
    project has no pytest configuration file), else the rootdir."""
    for candidate in (rootdir, *rootdir.parents):
        if (candidate / "dags").is_dir():
            return candidate
    return rootdir


def _checks(config: pytest.Config, state: dict[str, Any]) -> MlopsChecks:
    project_setting = _setting(config, "mlops_project", "mlops_project")
    project = _path(config, project_setting, default_project(config.rootpath))
    dags = _path(config, _setting(config, "mlops_dags", "mlops_dags_folder"), project / "dags")
    reports_setting = _setting(config, "mlops_reports", "mlops_reports_dir")
    reports = _path(config, reports_setting, state["tmp"].getbasetemp() / "mlops-reports")
    reports.mkdir(parents=True, exist_ok=True)
    config.stash[_REPORTS_KEY] = reports
    budget = config.getini("mlops_parse_budget")
    checks = MlopsChecks(
        project_root=project,
        dags_folder=dags,
        reports_dir=reports,
        parse_budget=float(budget) if budget else DEFAULT_PARSE_BUDGET,
    )
    checks._integrity = state["integrity"]

    def factory() -> Any:
        from mlops_provider.testing.environment import create_environment

        base = state["tmp"].mktemp("mlops-env")
        return create_environment(
            base, dags_folder=dags, project_root=project, template_db=_template_db(state)
        )

    checks._environment_factory = factory
    return checks


_REPORTS_KEY = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def mlops_template_db(_mlops_session: dict[str, Any]) -> Path:
    """The migrated Airflow metadata DB (SQLite) the session's environments copy (migrated
    once, on first use); for ``create_environment(..., template_db=...)`` of your own."""
    return _template_db(_mlops_session)


@pytest.fixture
def mlops(request: pytest.FixtureRequest, _mlops_session: dict[str, Any]) -> Iterator[MlopsChecks]:
    """The project's CI checks (:class:`MlopsChecks`); the test must opt in."""
    _require_opt_in(request)
    _airflow_home(_mlops_session)
    checks = _checks(request.config, _mlops_session)
    yield checks
    if checks._integrity is not None:
        _mlops_session["integrity"] = checks._integrity


@pytest.fixture
def mlops_env(mlops: MlopsChecks) -> Any:
    """An isolated environment for this test: its own Airflow home (migrated metadata DB),
    embedded MLflow store, Feast repo copy and data lake; ``run_dag`` runs a DAG in it."""
    return mlops.environment()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    reports = config.stash.get(_REPORTS_KEY, None)
    if reports is None or not reports.is_dir():
        return
    files = sorted(p for p in reports.rglob("*.html"))
    if files:
        terminalreporter.write_sep("-", f"mlops reports ({len(files)} HTML file(s)): {reports}")
        for path in files[:20]:
            terminalreporter.write_line(f"  {path.relative_to(reports)}")
