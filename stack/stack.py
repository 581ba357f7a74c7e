"""The production topology as processes on one machine: ``make stack`` / ``make stack-down``.

PostgreSQL and Redis are the servers running on this machine (started as ``.ci/run`` does when
they are not, and then left running: they are shared). Everything else is started here, each
process in its own process group, with its pid file and log under one state folder
(``$MLOPS_STACK_HOME``, default ``<repo>/.stack``):

- ``moto_server``: the S3 endpoint (stands in for MinIO); buckets for the lake and MLflow;
- ``mlflow server``: backend store PostgreSQL ``mlops_mlflow``, artifacts proxied to S3;
- Airflow with CeleryExecutor (metadata DB PostgreSQL ``mlops_airflow``, broker Redis, result
  backend PostgreSQL): ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and one
  ``celery worker``;
- ``mlops-serving``: the realtime serving app (``python -m mlops_provider.serving``) for
  ``churn@champion``, with the Airflow processes' MLflow, S3 and Feast settings; it starts
  before any champion exists (``/readyz`` 503) and is deployed to by the ``mlops_deployment``
  DAG through the connection ``mlops_serving_default``.

Every setting the processes share (Airflow configuration, the ``AIRFLOW_CONN_*`` connections,
the ``MLOPS_*`` variables the reference DAGs read) comes from :func:`stack_environment`, the one
place the compose file's settings are compared with.

Usage: ``python -m stack.stack up|down|status|env [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FEATURE_REPO = ROOT / "include" / "feature_repo"
BIN = Path(sys.executable).parent
MARKER = "MLOPS_STACK_MARKER"
"""Environment variable set in every process of the stack: ``down`` finds stragglers by it."""
DAG_IDS = (
    "mlops_feature_pipeline",
    "mlops_training_pipeline",
    "mlops_batch_scoring",
    "mlops_monitoring",
    "mlops_deployment",
)


PASSED_THROUGH = (
    "MLOPS_SENSOR_POKE_INTERVAL",
    "MLOPS_DAG_END_DATE",
    "MLOPS_SERVING_VERIFY_SECONDS",
    "MLOPS_SERVING_MAX_P99_MS",
)
"""DAG settings handed to the stack's processes only when set where the stack starts."""

AWS_KEY = "stack-access-key"
AWS_SECRET = "stack-secret-key"  # moto accepts any key: dummy credentials
AWS_REGION = "us-east-1"
SERVED_MODEL = "churn"
"""The registered model the serving app serves (``@champion``), as ``dags/mlops_common.py``."""


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass(frozen=True)
class Settings:
    """Where the stack lives and listens; every field can be set by an environment variable."""

    home: Path = field(
        default_factory=lambda: Path(os.environ.get("MLOPS_STACK_HOME") or ROOT / ".stack")
    )
    api_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_API_PORT", 28080))
    mlflow_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_MLFLOW_PORT", 25000))
    s3_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_S3_PORT", 25001))
    worker_log_port: int = field(
        default_factory=lambda: _env_int("MLOPS_STACK_WORKER_LOG_PORT", 28793)
    )
    trigger_log_port: int = field(
        default_factory=lambda: _env_int("MLOPS_STACK_TRIGGER_LOG_PORT", 28794)
    )
    serving_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_SERVING_PORT", 28000))
    pg_host: str = field(default_factory=lambda: os.environ.get("MLOPS_STACK_PG_HOST", "127.0.0.1"))
    pg_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_PG_PORT", 5432))
    pg_user: str = field(default_factory=lambda: os.environ.get("MLOPS_STACK_PG_USER", "postgres"))
    redis_host: str = field(
        default_factory=lambda: os.environ.get("MLOPS_STACK_REDIS_HOST", "127.0.0.1")
    )
    redis_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_REDIS_PORT", 6379))
    broker_db: int = field(default_factory=lambda: _env_int("MLOPS_STACK_BROKER_DB", 2))
    feast_db: int = field(default_factory=lambda: _env_int("MLOPS_STACK_FEAST_DB", 3))
    lake_bucket: str = field(
        default_factory=lambda: os.environ.get("MLOPS_STACK_LAKE_BUCKET", "mlops-lake")
    )
    mlflow_bucket: str = field(
        default_factory=lambda: os.environ.get("MLOPS_STACK_MLFLOW_BUCKET", "mlops-mlflow")
    )
    airflow_db: str = field(
        default_factory=lambda: os.environ.get("MLOPS_STACK_AIRFLOW_DB", "mlops_airflow")
    )
    mlflow_db: str = field(
        default_factory=lambda: os.environ.get("MLOPS_STACK_MLFLOW_DB", "mlops_mlflow")
    )
    admin_user: str = field(default_factory=lambda: os.environ.get("MLOPS_STACK_USER", "admin"))
    admin_password: str = field(
        default_factory=lambda: os.environ.get("MLOPS_STACK_PASSWORD", "admin")
    )
    worker_concurrency: int = field(
        default_factory=lambda: _env_int("MLOPS_STACK_WORKER_CONCURRENCY", 2)
    )
    aws_secret: str = field(
        default_factory=lambda: os.environ.get("MLOPS_STACK_AWS_SECRET") or AWS_SECRET
    )
    """The S3 secret key of ``aws_default`` (moto accepts any): the system test sets a sentinel."""
    deferrable: bool = field(
        default_factory=lambda: (
            os.environ.get("MLOPS_STACK_DEFERRABLE", "").lower() in ("1", "true", "yes")
        )
    )
    """Airflow's ``[operators] default_deferrable``: the reference DAGs' sensors defer."""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def serving_url(self) -> str:
        return f"http://127.0.0.1:{self.serving_port}"

    @property
    def lake_uri(self) -> str:
        return f"s3://{self.lake_bucket}/lake"

    @property
    def online_predictions_uri(self) -> str:
        """The serving app's prediction log (``<lake>/predictions-online/<model>``, as
        ``make demo``'s)."""
        return f"{self.lake_uri}/predictions-online/{SERVED_MODEL}"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    def pg_uri(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.pg_user}@{self.pg_host}:{self.pg_port}/{database}"

    def redis_uri(self, db: int) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{db}"


def feast_overrides(s: Settings) -> dict[str, Any]:
    """``feature_store.yaml`` overrides: S3 registry next to the lake, Redis online store."""
    return {
        "registry": {
            "registry_type": "file",
            "path": f"s3://{s.lake_bucket}/feast/registry.db",
        },
        "online_store": {
            "type": "redis",
            "connection_string": f"{s.redis_host}:{s.redis_port},db={s.feast_db}",
        },
    }


def connections(s: Settings) -> dict[str, dict[str, Any]]:
    """The Airflow connections of the stack (JSON form of ``AIRFLOW_CONN_<ID>``)."""
    return {
        "mlflow_default": {
            "conn_type": "mlflow",
            "host": "127.0.0.1",
            "port": s.mlflow_port,
            "schema": "http",
            "extra": {"ui_url": f"http://127.0.0.1:{s.mlflow_port}"},
        },
        "aws_default": {
            "conn_type": "aws",
            "login": AWS_KEY,
            "password": s.aws_secret,
            "extra": {"endpoint_url": s.s3_url, "region_name": AWS_REGION},
        },
        "feast_default": {
            "conn_type": "feast",
            "extra": {
                "repo_path": str(FEATURE_REPO),
                "feature_store_yaml": json.dumps(feast_overrides(s)),
            },
        },
        # the serving app the deployment DAG reloads: its URL and admin token
        "mlops_serving_default": {
            "conn_type": "mlops_serving",
            "host": s.serving_url,
            "password": _secrets(s, create=False)["serving_token"],
        },
    }


_SECRETS: dict[str, Callable[[], str]] = {
    "jwt_secret": lambda: secrets.token_urlsafe(32),
    "secret_key": lambda: secrets.token_urlsafe(32),
    "fernet_key": lambda: urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "serving_token": lambda: secrets.token_urlsafe(32),  # the serving app's admin token
}


def _secrets(s: Settings, create: bool) -> dict[str, str]:
    """Secrets shared by the stack's processes, generated once per state folder (a key missing
    from an older state folder is added).

    Without ``create`` and before the first ``up``, placeholders are returned (nothing written).
    """
    path = s.home / "secrets.json"
    values: dict[str, str] = dict(json.loads(path.read_text())) if path.is_file() else {}
    missing = [key for key in _SECRETS if key not in values]
    if not missing:
        return values
    if not create:
        return dict.fromkeys(missing, "<generated by make stack>") | values
    values.update({key: _SECRETS[key]() for key in missing})
    s.home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def _airflow_config(s: Settings, create_secrets: bool) -> dict[str, str]:
    keys = _secrets(s, create_secrets)
    return {
        "AIRFLOW_HOME": str(s.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{s.api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(s.airflow_home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": s.pg_uri(s.airflow_db),
        "AIRFLOW__CELERY__BROKER_URL": s.redis_uri(s.broker_db),
        "AIRFLOW__CELERY__RESULT_BACKEND": s.pg_uri(s.airflow_db, "db+postgresql+psycopg2"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(s.worker_concurrency),
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "mlops_provider.worker.CELERY_CONFIG",
        "AIRFLOW__API__BASE_URL": s.api_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s.trigger_log_port),
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(s.deferrable),
    }


def stack_environment(s: Settings | None = None, *, create_secrets: bool = False) -> dict[str, str]:
    """Every variable the stack's processes share: Airflow config, connections, DAG settings.

    :param create_secrets: generate the state folder's secrets when missing (``up`` does);
        otherwise they are read if present, else placeholders.
    """
    s = s or Settings()
    env = _airflow_config(s, create_secrets)
    for conn_id, conn in connections(s).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    env.update(
        {
            "MLOPS_LAKE_URI": s.lake_uri,
            "MLOPS_AWS_CONN_ID": "aws_default",
            "MLOPS_PROJECT_ROOT": str(ROOT),
            "MLOPS_HOME": str(s.home / "mlops"),
            "MLOPS_TASK_RETRIES": os.environ.get("MLOPS_TASK_RETRIES", "0"),
            # bearer token of GET /mlops/metrics (as in docker-compose.yaml; docs/metrics.md)
            "MLOPS_METRICS_TOKEN": os.environ.get(
                "MLOPS_METRICS_TOKEN", "mlops-stack-metrics-token"
            ),
            # Feast reads the s3:// offline data and registry with boto3/s3fs, outside Airflow
            # connections: it needs the endpoint and credentials in the environment.
            "MLOPS_FEATURES_S3_ENDPOINT": s.s3_url,
            "FEAST_S3_ENDPOINT_URL": s.s3_url,
            "AWS_ENDPOINT_URL_S3": s.s3_url,  # pyarrow's S3 filesystem (Feast's source check)
            "AWS_ACCESS_KEY_ID": AWS_KEY,
            "AWS_SECRET_ACCESS_KEY": s.aws_secret,
            "AWS_DEFAULT_REGION": AWS_REGION,
            "GX_ANALYTICS_ENABLED": "False",
            "PYTHONPATH": str(ROOT),
        }
    )
    for name in PASSED_THROUGH:  # set for a replay (make stack-demo) or the system test
        if value := os.environ.get(name):
            env[name] = value
    return env


def process_environment(s: Settings) -> dict[str, str]:
    """The environment of a stack process: this one's, minus stray settings, plus the stack's."""
    drop = ("AIRFLOW", "MLOPS_", "MLFLOW_", "AWS_", "FEAST_", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(stack_environment(s, create_secrets=True))
    env[MARKER] = str(s.home.resolve())
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


# ---------------------------------------------------------------- processes and pid files


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    """Variables set from the state folder's secrets when the service starts (name -> key)."""


def services(s: Settings) -> list[Service]:
    """The long-running processes, in start order."""
    af = str(BIN / "airflow")
    mlflow_env = {
        "MLFLOW_S3_ENDPOINT_URL": s.s3_url,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    mlflow_argv = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", s.pg_uri(s.mlflow_db),
        "--artifacts-destination", f"s3://{s.mlflow_bucket}/artifacts",
        "--host", "127.0.0.1", "--port", str(s.mlflow_port), "--workers", "1",
    ]  # fmt: skip
    worker_argv = [
        af, "celery", "worker", "--concurrency", str(s.worker_concurrency),
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    # The alias poll is off: a new champion reaches the service only through the deployment
    # DAG, after validate_serving checked it (a poll would serve it before that check).
    serving_argv = [
        str(BIN / "python"), "-m", "mlops_provider.serving",
        "--model", SERVED_MODEL, "--alias", "champion",
        "--host", "127.0.0.1", "--port", str(s.serving_port),
        "--feature-repo", str(FEATURE_REPO),
        "--prediction-log", s.online_predictions_uri,
        "--poll-seconds", "0",
    ]  # fmt: skip
    return [
        Service("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s.s3_port)]),
        Service("mlflow", mlflow_argv, mlflow_env),
        Service("api-server", [af, "api-server", "--host", "127.0.0.1", "--port", str(s.api_port)]),
        Service("scheduler", [af, "scheduler"]),
        Service("dag-processor", [af, "dag-processor"]),
        Service("triggerer", [af, "triggerer"]),
        Service("celery-worker", worker_argv),
        Service(
            "mlops-serving",
            serving_argv,
            serving_environment(s),
            secrets={"MLOPS_SERVING_ADMIN_TOKEN": "serving_token"},  # never a flag
        ),
    ]


def serving_environment(s: Settings) -> dict[str, str]:
    """What the serving app gets beyond the shared environment: MLflow, the stack's Feast
    overrides (as the ``feast_default`` connection gives them to the Airflow processes), the
    connection for its ``s3://`` prediction log (its admin token is set when it starts:
    ``Service.secrets``)."""
    return {
        "MLFLOW_TRACKING_URI": s.mlflow_url,
        "MLOPS_SERVING_FEATURE_STORE_OVERRIDES": json.dumps(feast_overrides(s)),
        "MLOPS_SERVING_AWS_CONN_ID": "aws_default",
    }


def _pid_file(s: Settings, name: str) -> Path:
    return s.home / "pids" / f"{name}.pid"


def log_file(s: Settings, name: str) -> Path:
    return s.home / "logs" / f"{name}.log"


def _start_time(pid: int) -> str | None:
    """The start time of a live (not zombie) process, from /proc; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def running_pid(s: Settings, name: str) -> int | None:
    """The pid of a service started by this stack and still running (same pid, same start)."""
    path = _pid_file(s, name)
    try:
        pid_text, started = path.read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return pid if _start_time(pid) == started else None


def start(s: Settings, service: Service) -> int:
    """Start a service in its own process group unless it already runs; its pid."""
    if pid := running_pid(s, service.name):
        return pid
    log = log_file(s, service.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(s, service.name).parent.mkdir(parents=True, exist_ok=True)
    keys = _secrets(s, create=True)
    env = process_environment(s) | service.env
    env.update({name: keys[key] for name, key in service.secrets.items()})
    if log.exists():
        log.replace(log.with_suffix(".log.1"))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            service.argv,
            cwd=s.home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _pid_file(s, service.name).write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    say(f"  started {service.name} (pid {proc.pid}), log {log}")
    return proc.pid


def say(message: str) -> None:
    print(message, flush=True)


def _group_members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


def _is_ours(entry: Path, marker: bytes, home: str) -> bool:
    """Whether a /proc entry is a process of this stack: it carries the marker, or it is an
    Airflow process working in the state folder (Airflow's task supervisors rename themselves
    with setproctitle, which overwrites the environment block /proc shows)."""
    if marker in (entry / "environ").read_bytes().split(b"\0"):
        return True
    cwd = os.readlink(entry / "cwd")
    if cwd != home and not cwd.startswith(home + os.sep):
        return False
    command = (entry / "cmdline").read_bytes().split(b"\0")[0]
    return command.startswith(b"airflow") or b"/bin/airflow" in command


def _marked(s: Settings) -> list[int]:
    """Live processes of this stack that left their process group (see :func:`_is_ours`)."""
    home = str(s.home.resolve())
    marker = f"{MARKER}={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if _is_ours(entry, marker, home) and _start_time(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _signal_all(pids: list[int], sig: signal.Signals, groups: bool) -> None:
    for pid in pids:
        try:
            os.killpg(pid, sig) if groups else os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(check: Callable[[], list[int]], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := check()) and time.monotonic() < deadline:
        time.sleep(0.3)
    return left


def stop_all(s: Settings, timeout: float = 30) -> list[int]:
    """Stop the process groups this stack started (reverse order), then any marked straggler.

    SIGTERM first, SIGKILL after ``timeout``. Returns the pids still alive (empty on success).
    """
    groups = []
    for service in reversed(services(s)):
        if pid := running_pid(s, service.name):
            groups.append(pid)
            say(f"  stopping {service.name} (process group {pid})")
        _pid_file(s, service.name).unlink(missing_ok=True)
    _signal_all(groups, signal.SIGTERM, groups=True)

    def members() -> list[int]:
        return [p for g in groups for p in _group_members(g)]

    if left := _wait_gone(members, timeout):
        say(f"  processes {left} ignored SIGTERM: killing their groups")
        _signal_all(groups, signal.SIGKILL, groups=True)
        _wait_gone(members, 10)
    if stragglers := _marked(s):
        say(f"  stopping processes of the stack outside its groups: {stragglers}")
        _signal_all(stragglers, signal.SIGTERM, groups=False)
        if left := _wait_gone(lambda: _marked(s), 15):
            _signal_all(left, signal.SIGKILL, groups=False)
    return members() + _wait_gone(lambda: _marked(s), 10)


# ---------------------------------------------------------------- shared servers and setup


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ensure_server(name: str, host: str, port: int, start_cmd: list[str]) -> None:
    if port_open(host, port):
        say(f"  {name} at {host}:{port}: answers (not managed by the stack)")
        return
    say(f"  {name} at {host}:{port}: not answering, starting it: {' '.join(start_cmd)}")
    subprocess.run(start_cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise StackError(f"{name} does not answer at {host}:{port}")
        time.sleep(0.5)


def ensure_shared_servers(s: Settings) -> None:
    """PostgreSQL and Redis: used when running, started as .ci/run does when not (and kept)."""
    clusters = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
    version = clusters[0] if clusters else "16"
    pg = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]
    _ensure_server("PostgreSQL", s.pg_host, s.pg_port, pg)
    redis = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
             "--port", str(s.redis_port), "--save", "", "--appendonly", "no",
             "--dir", "/tmp", "--logfile", "/tmp/redis-ci.log"]  # fmt: skip
    _ensure_server("Redis", s.redis_host, s.redis_port, redis)


@contextmanager
def _admin_cursor(s: Settings) -> Iterator[Any]:
    """An autocommit cursor on the server's ``postgres`` database (CREATE/DROP DATABASE)."""
    import psycopg2

    conn = psycopg2.connect(s.pg_uri("postgres", "postgresql"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def ensure_databases(s: Settings) -> None:
    with _admin_cursor(s) as cur:
        for name in (s.airflow_db, s.mlflow_db):
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
                say(f"  created database {name}")


def drop_databases(s: Settings) -> None:
    """Drop the stack's PostgreSQL databases (closing their connections first)."""
    with _admin_cursor(s) as cur:
        for name in (s.airflow_db, s.mlflow_db):
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')


def reset(s: Settings) -> None:
    """Empty state for a stopped stack: its databases, Redis dbs and state folder are removed
    (moto keeps the buckets in memory: they went with it)."""
    import shutil

    import redis

    drop_databases(s)
    for db in (s.broker_db, s.feast_db):
        redis.Redis(host=s.redis_host, port=s.redis_port, db=db).flushdb()
    if s.home.is_dir():
        shutil.rmtree(s.home)
    say(
        f"  reset: databases {s.airflow_db}, {s.mlflow_db}, Redis dbs {s.broker_db}, "
        f"{s.feast_db} and {s.home} removed"
    )


def s3_client(s: Settings | None = None) -> Any:
    """A boto3 S3 client on the stack's moto endpoint."""
    import boto3

    s = s or Settings()
    return boto3.client(
        "s3",
        endpoint_url=s.s3_url,
        aws_access_key_id=AWS_KEY,
        aws_secret_access_key=s.aws_secret,
        region_name=AWS_REGION,
    )


def ensure_buckets(s: Settings) -> None:
    client = s3_client(s)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (s.lake_bucket, s.mlflow_bucket):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
            say(f"  created bucket s3://{bucket}")


def _celery_compatible() -> bool:
    try:
        from celery.backends.database import retry  # noqa: F401  (imported by the provider)
    except ImportError:
        return False
    return True


def check_environment() -> None:
    """Refuse to start when the environment lacks what this topology needs (uv.lock has it:
    run ``make setup``): ``asyncpg`` (Airflow 3's async metadata engine on PostgreSQL) and a
    celery that apache-airflow-providers-celery can load (celery 5.7 dropped
    ``celery.backends.database.retry``)."""
    import importlib.util

    problems = []
    if not importlib.util.find_spec("asyncpg"):
        problems.append("asyncpg is not installed")
    if not _celery_compatible():
        problems.append("celery lacks celery.backends.database.retry (celery>=5.5,<5.7 needed)")
    if problems:
        raise SystemExit(
            "the environment cannot run the stack: "
            + "; ".join(problems)
            + " (run `make setup` to install uv.lock's versions)"
        )


def write_auth_files(s: Settings) -> None:
    """The simple auth manager's passwords file: the known admin login."""
    s.airflow_home.mkdir(parents=True, exist_ok=True)
    path = s.airflow_home / "passwords.json"
    path.write_text(json.dumps({s.admin_user: s.admin_password}) + "\n")
    path.chmod(0o600)


def migrate(s: Settings) -> None:
    started = time.monotonic()
    log = log_file(s, "airflow-db-migrate")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        result = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"],
            env=process_environment(s),
            cwd=s.home,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode:
        raise StackError(f"airflow db migrate failed:\n{_tail(log)}")
    say(f"  Airflow metadata DB migrated ({time.monotonic() - started:.0f} s)")


# ---------------------------------------------------------------- health


class StackError(RuntimeError):
    """A service did not start or did not become healthy."""


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def http_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body.strip().startswith((b"{", b"[")) else body.decode()


def wait_for(s: Settings, name: str, check: Callable[[], bool], timeout: float = 240) -> None:
    """Wait until ``check()`` holds while service ``name`` keeps running."""
    started = time.monotonic()
    while True:
        if not running_pid(s, name):
            raise StackError(f"{name} exited during start:\n{_tail(log_file(s, name))}")
        try:
            if check():
                say(f"  {name} healthy ({time.monotonic() - started:.0f} s)")
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if time.monotonic() - started > timeout:
            raise StackError(f"{name} not healthy in {timeout:.0f} s:\n{_tail(log_file(s, name))}")
        time.sleep(1)


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)

    return check


def _component_healthy(s: Settings, component: str) -> Callable[[], bool]:
    def check() -> bool:
        health = http_json(f"{s.api_url}/api/v2/monitor/health")
        return bool(health.get(component, {}).get("status") == "healthy")

    return check


def _worker_ready(s: Settings) -> Callable[[], bool]:
    return lambda: " ready." in _tail(log_file(s, "celery-worker"), 200_000)


# ---------------------------------------------------------------- commands


def _health_checks(s: Settings) -> dict[str, Callable[[], bool]]:
    return {
        "moto": _http_ok(f"{s.s3_url}/moto-api/"),
        "mlflow": _http_ok(f"{s.mlflow_url}/health"),
        "api-server": _http_ok(f"{s.api_url}/api/v2/monitor/health"),
        "scheduler": _component_healthy(s, "scheduler"),
        "dag-processor": _component_healthy(s, "dag_processor"),
        "triggerer": _component_healthy(s, "triggerer"),
        "celery-worker": _worker_ready(s),
        # alive, not ready: /readyz wants a champion, which the lifecycle trains later
        "mlops-serving": _http_ok(f"{s.serving_url}/healthz"),
    }


def _start_everything(s: Settings) -> None:
    say("Shared servers")
    ensure_shared_servers(s)
    ensure_databases(s)
    check_environment()
    write_auth_files(s)
    checks = _health_checks(s)
    by_name = {svc.name: svc for svc in services(s)}
    say("Object storage and MLflow")
    start(s, by_name["moto"])
    wait_for(s, "moto", checks["moto"])
    ensure_buckets(s)
    start(s, by_name["mlflow"])
    wait_for(s, "mlflow", checks["mlflow"])
    say("Airflow")
    migrate(s)
    airflow = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")
    for name in airflow:
        start(s, by_name[name])
    say("Serving app")
    start(s, by_name["mlops-serving"])
    for name in (*airflow, "mlops-serving"):
        wait_for(s, name, checks[name])


def up(s: Settings) -> int:
    """Start what is not running, wait until healthy; on failure stop everything started."""
    s.home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"MLOps stack (state in {s.home})")
    if all(running_pid(s, svc.name) for svc in services(s)):
        say("  already running (`make stack-status`), nothing started")
        _summary(s)
        return 0
    try:
        _start_everything(s)
    except BaseException as err:
        say(f"\nStart failed: {err}\nStopping everything the stack started.")
        stop_all(s)
        return 1
    say(f"\nStack up in {time.monotonic() - started:.0f} s.")
    _summary(s)
    return 0


def _summary(s: Settings) -> None:
    say(f"  Airflow UI   {s.api_url}  (login {s.admin_user} / {s.admin_password})")
    say(f"  MLflow UI    {s.mlflow_url}")
    say(f"  serving      {s.serving_url}  (churn@champion, connection mlops_serving_default)")
    say(f"  S3 (moto)    {s.s3_url}  lake {s.lake_uri}, artifacts s3://{s.mlflow_bucket}/artifacts")
    say(f"  logs         {s.home / 'logs'};  stop with `make stack-down`")


def down(s: Settings) -> int:
    say(f"Stopping the MLOps stack (state in {s.home})")
    left = stop_all(s)
    if left:
        say(f"  still running: {left}")
        return 1
    say("  no process of the stack is running")
    return 0


def status(s: Settings) -> int:
    """Print each service's pid (or 'stopped'); exit 0 when all run."""
    states = {svc.name: running_pid(s, svc.name) for svc in services(s)}
    for name, pid in states.items():
        say(f"  {name:14} {'pid ' + str(pid) if pid else 'stopped'}")
    return 0 if all(states.values()) else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--json", action="store_true", help="env: print as JSON")
    args = parser.parse_args(argv)
    s = Settings()
    if args.command == "env":
        env = stack_environment(s)
        if args.json:
            say(json.dumps(env, indent=2, sort_keys=True))
        else:
            for key, value in sorted(env.items()):
                say(f"export {key}='{value}'")
        return 0
    return {"up": up, "down": down, "status": status}[args.command](s)


if __name__ == "__main__":
    sys.exit(main())
