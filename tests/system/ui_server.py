"""A throw-away Airflow UI for the browser test: ``api-server`` + ``dag-processor`` on SQLite.

No scheduler or executor: the pages the browser test opens need only the serialized DAGs (written
by the DAG processor) and the connection form metadata (read by the API server from the
installed providers). Every process runs in its own process group and is stopped, with its
children, when the context manager exits, also after a failed start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).parent / "airflow"
REFERENCE_DAGS = (
    "mlops_feature_pipeline",
    "mlops_training_pipeline",
    "mlops_batch_scoring",
    "mlops_monitoring",
    "mlops_deployment",
)


@dataclass(frozen=True)
class UiServer:
    """Where the throw-away UI answers and how to log in."""

    url: str
    username: str
    password: str
    home: Path


def airflow_env(home: Path, port: int, password_file: Path) -> dict[str, str]:
    """Environment for every Airflow process of the throw-away UI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    for name in ("MLOPS_HOME", "MLOPS_DATA_ROOT", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "ui-test-jwt-secret-not-for-production",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "MLOPS_PROJECT_ROOT": str(ROOT),
            "MLOPS_HOME": str(home / "mlops"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "provider")]),
        }
    )
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(AIRFLOW), *args],
            env=env,
            cwd=env["AIRFLOW_HOME"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    """Stop a process and everything in its process group (uvicorn/dag-processor children)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftover children of an exited leader
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)


def wait_healthy(url: str, procs: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    """Wait for ``/api/v2/monitor/health``; fail early with the log of a process that died."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-4000:]
                raise RuntimeError(f"airflow {name} exited ({proc.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=3) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url}/api/v2/monitor/health did not answer within 180 s")


def _require_free_port(port: int) -> None:
    """Refuse to start when something already listens: its health check would fool the wait."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is already in use; stop what listens there first")


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the servers (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def airflow_ui(home: Path, port: int = 28180) -> Iterator[UiServer]:
    """Migrate a fresh SQLite DB under ``home`` and run api-server + dag-processor on ``port``."""
    _require_free_port(port)
    home.mkdir(parents=True, exist_ok=True)
    logs = home / "process-logs"
    logs.mkdir(exist_ok=True)
    password_file = home / "simple_auth_manager_passwords.json"
    password_file.write_text(json.dumps({"admin": "admin"}) + "\n")
    env = airflow_env(home, port, password_file)
    subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with _sigterm_unwinds():
        try:
            procs["api-server"] = _start(
                ["api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
                env,
                logs / "api-server.log",
            )
            procs["dag-processor"] = _start(["dag-processor"], env, logs / "dag-processor.log")
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, procs, logs)
            yield UiServer(url=url, username="admin", password="admin", home=home)
        finally:
            for proc in procs.values():
                _stop(proc)
