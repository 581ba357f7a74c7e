"""System tests: the native production stack (``stack/stack.py``) started for the session.

The stack runs on its own state folder, ports, Redis db numbers and PostgreSQL databases, so a
user's ``make stack`` is left alone; it starts from empty databases and is ALWAYS stopped at the
end of the session, also when a test fails or the start itself fails. Without PostgreSQL or
Redis the tests skip loudly, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET_SENTINEL = "sentinel-7f3c9e1b-aws-secret-never-logged"
"""The test stack's ``aws_default`` secret key (moto accepts any): it must appear in no task log,
XCom value or report."""
TEST_STACK = {
    "MLOPS_STACK_HOME": str(ROOT / ".stack-test"),
    "MLOPS_STACK_API_PORT": "28090",
    "MLOPS_STACK_MLFLOW_PORT": "25010",
    "MLOPS_STACK_S3_PORT": "25011",
    "MLOPS_STACK_WORKER_LOG_PORT": "28795",
    "MLOPS_STACK_TRIGGER_LOG_PORT": "28796",
    "MLOPS_STACK_SERVING_PORT": "28010",
    "MLOPS_STACK_BROKER_DB": "4",
    "MLOPS_STACK_FEAST_DB": "5",
    "MLOPS_STACK_AIRFLOW_DB": "mlops_airflow_systest",
    "MLOPS_STACK_MLFLOW_DB": "mlops_mlflow_systest",
    "MLOPS_STACK_AWS_SECRET": SECRET_SENTINEL,
    "MLOPS_STACK_DEFERRABLE": "true",
    "MLOPS_SENSOR_POKE_INTERVAL": "5",
    "MLOPS_STACK_WORKER_CONCURRENCY": "4",  # as make stack-demo
    "MLOPS_DAG_END_DATE": "2026-01-14",  # the lifecycle's 14 days (test_stack_lifecycle.py)
    "MLOPS_SERVING_VERIFY_SECONDS": "5",  # the deployment DAG's verification window
    "MLOPS_SERVING_MAX_P99_MS": "5000",  # as make stack-demo: the app shares 2 busy cores
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "system: starts the native production stack (make stack) and drives Airflow"
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _stack_cli(command: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | TEST_STACK
    return subprocess.run(
        [sys.executable, "-m", "stack.stack", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="session")
def stack_services() -> None:
    """PostgreSQL and Redis answer: else skip loudly, or fail under CI."""
    from tests.conftest import service_up

    for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
        if not service_up("127.0.0.1", port):
            message = f"{name} is not answering at 127.0.0.1:{port}"
            if _in_ci():
                pytest.fail(f"{message} (CI=true: a missing service is a failure)")
            pytest.skip(f"{message}: the system tests need it")


@pytest.fixture(scope="session")
def stack(stack_services: None) -> Iterator[Any]:
    """The running stack's ``Settings``; stopped at the end of the session whatever happens."""
    from stack import stack as native

    saved = {k: os.environ.get(k) for k in TEST_STACK}
    os.environ.update(TEST_STACK)
    settings = native.Settings()
    try:
        _stack_cli("down")
        native.reset(settings)
        started = time.monotonic()
        result = _stack_cli("up")
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        assert result.returncode == 0, f"make stack failed:\n{result.stdout}\n{result.stderr}"
        print(f"stack up in {time.monotonic() - started:.0f} s")
        yield settings
    finally:
        result = _stack_cli("down")
        print(result.stdout, result.stderr, sep="\n")
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    assert result.returncode == 0, f"make stack-down left processes:\n{result.stdout}"
    assert not native._marked(settings), "processes of the stack are still running"


@pytest.fixture(scope="session")
def lifecycle(stack: Any) -> Any:
    """The 14-day lifecycle of ``make stack-demo`` on the test stack, run once for the session
    (test_stack.py, test_stack_lifecycle.py and test_stack_serving.py assert on its runs); its
    driver: per-day records (``result``), training run ids, the deferred scoring run, the
    deployment runs the promotions started."""
    from include.lifecycle_report import format_table
    from stack.lifecycle import StackLifecycle, parse_args

    args = parse_args(["--days", "14", "--keep"])
    last = date.fromordinal(args.start.toordinal() + args.days - 1)
    assert TEST_STACK["MLOPS_DAG_END_DATE"] == last.isoformat()
    for path in (str(ROOT / "dags"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    driver = StackLifecycle(stack, args)
    started = time.monotonic()
    driver.land_data()
    driver.result = driver.run()
    print(format_table(driver.result))
    print(f"lifecycle on the stack in {time.monotonic() - started:.0f} s")
    return driver
