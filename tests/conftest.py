"""Test configuration: an isolated Airflow home, service detection and shared fixtures.

Environment is set before anything imports Airflow, so every test (and every subprocess a test
starts) uses a throw-away metadata database and data root, never the user's ``~/airflow``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
AIRFLOW_HOME = _SESSION_DIR / "airflow"

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = "http://localhost:8080/execution/"
os.environ["MLOPS_PROJECT_ROOT"] = str(ROOT)
os.environ.pop("MLOPS_HOME", None)
os.environ.pop("MLOPS_DATA_ROOT", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_REGISTRY_URI", None)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), str(ROOT / "provider"), os.environ.get("PYTHONPATH", "")]
).rstrip(os.pathsep)
AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SERVICES = {"postgres": ("127.0.0.1", 5432), "redis": ("127.0.0.1", 6379)}
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379"
_missing_service_skips: Counter[str] = Counter()


def service_up(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _require_services(request: pytest.FixtureRequest) -> None:
    """Tests marked ``postgres``/``redis`` need those servers: skip loudly, or fail under CI."""
    for name, (host, port) in SERVICES.items():
        if request.node.get_closest_marker(name) is None or service_up(host, port):
            continue
        message = f"{name} is not answering at {host}:{port}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: a missing service is a failure, not a skip)")
        _missing_service_skips[name] += 1
        pytest.skip(f"{message}; start it to run this test")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _missing_service_skips:
        parts = ", ".join(
            f"{n} test(s) needing {name} at {':'.join(map(str, SERVICES[name]))}"
            for name, n in sorted(_missing_service_skips.items())
        )
        terminalreporter.write_sep("!", f"SKIPPED because a service is missing: {parts}", red=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata database (SQLite) for ``dag.test()``."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run(
        [str(airflow), "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return AIRFLOW_HOME


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh embedded-default state root (data lake, MLflow store) for one test."""
    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    return home


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"server did not answer {url} within {timeout}s:\n{log.read_text()[-3000:]}")


class MlflowServer:
    """A real ``mlflow server`` process on a free port."""

    def __init__(self, backend_store_uri: str, workdir: Path) -> None:
        self.backend_store_uri = backend_store_uri
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "mlflow-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        mlflow = Path(sys.executable).parent / "mlflow"
        cmd = [
            str(mlflow), "server",
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", str(self.workdir / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        # no background job runners (GenAI evaluation jobs): they cost CPU and memory here
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        _wait_http(f"{self.url}/health", self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    """A real MLflow tracking server (SQLite backend, served artifacts) for the whole session."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(f"sqlite:///{workdir / 'mlflow.db'}", workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_database() -> str:
    """A fresh PostgreSQL database on the local server; its SQLAlchemy URI."""
    if not service_up(*SERVICES["postgres"]):
        if IN_CI:
            pytest.fail("postgres is not answering at 127.0.0.1:5432 (CI=true)")
        _missing_service_skips["postgres"] += 1
        pytest.skip("postgres is not answering at 127.0.0.1:5432")
    import psycopg2

    name = f"mlops_test_{os.getpid()}_{int(time.time())}"
    conn = psycopg2.connect(f"{POSTGRES_DSN}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


@pytest.fixture(scope="session")
def mlflow_server_postgres(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory
) -> MlflowServer:
    """A real MLflow tracking server whose backend store is the local PostgreSQL."""
    workdir = tmp_path_factory.mktemp("mlflow-server-pg")
    server = MlflowServer(postgres_database, workdir).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url() -> str:
    """URL of the local Redis; tests using it must carry the ``redis`` marker."""
    return REDIS_URL


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


# ---------------------------------------------------------------- task logs


class RecordingHandler(logging.Handler):
    """Keeps every record it handles (attach it to a logger to see what reaches it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def task_log_records(records: list[logging.LogRecord], task_id: str) -> list[logging.LogRecord]:
    """The log records ``dag.test()`` emitted while running ``task_id`` (its task log)."""
    messages = [r.getMessage() for r in records]
    start = next(i for i, m in enumerate(messages) if f"starting task_id={task_id} " in m)
    end = next(i for i, m in enumerate(messages) if f"end task task_id={task_id} " in m)
    return records[start : end + 1]


#: At most this many lines in a training or scoring task's log under ``dag.test()`` (about 10
#: today; a library warning flood was about 1,160 lines).
MAX_TASK_LOG_LINES = 40
