"""core.processes (owner strings, liveness), core.failpoints and RunIdentity.work_key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

from mlops_provider.core import processes
from mlops_provider.core.runs import RunIdentity


def test_owner_round_trip_and_liveness() -> None:
    owner = processes.this_owner()
    assert processes.parse_owner(owner) == (processes.host_id(), os.getpid())
    assert processes.owner_alive(owner) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert processes.owner_alive(f"{processes.host_id()}p{child.pid}") is False
    assert processes.owner_alive(f"{processes.host_id()}x1p{os.getpid()}") is None  # other host
    assert processes.parse_owner("not-an-owner") is None
    assert processes.owner_alive("") is None


def test_failpoint_kills_only_at_the_named_point() -> None:
    code = (
        "from mlops_provider.core.failpoints import failpoint\n"
        "failpoint('a.one'); print('passed one', flush=True); failpoint('a.two'); print('end')"
    )
    env = {**os.environ, "MLOPS_KILL_AT": "a.two"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == "passed one\n"
    env.pop("MLOPS_KILL_AT")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.endswith("end\n")


def test_work_key_is_the_interval_not_the_dag_run() -> None:
    start, end = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)
    first = RunIdentity("d", "t", start, end, run_id="scheduled__1", try_number=1)
    rerun = RunIdentity("d", "t", start, end, run_id="manual__2", try_number=3)
    assert first.work_key == rerun.work_key != first.key
    assert first.work_key == "d/t/-1/2026-01-05T00:00:00+00:00_2026-01-06T00:00:00+00:00"
    other_day = RunIdentity("d", "t", end, None, run_id="scheduled__1")
    assert other_day.work_key != first.work_key
    no_interval = RunIdentity("d", "t", run_id="manual__3")
    assert no_interval.work_key == no_interval.key
