"""Crash points for recovery tests: ``MLOPS_KILL_AT=<point>[,<point>...]`` makes the process
kill itself (SIGKILL: no cleanup, no ``finally``) when it reaches a named point, so a test can
check that the next attempt (a retry in place or a new DAG run) completes or undoes what the
killed one left. Unset (always, outside such tests) a point costs one environment lookup.

Points are named ``<area>.<step>``; each area lists its points in a ``POINTS`` tuple
(:data:`mlops_provider.core.registry.journal.POINTS`,
:data:`mlops_provider.core.training.tracking.POINTS`).
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["ENV", "failpoint"]

ENV = "MLOPS_KILL_AT"

log = logging.getLogger(__name__)


def failpoint(point: str) -> None:
    """Kill this process if ``point`` is listed in ``MLOPS_KILL_AT``."""
    wanted = os.environ.get(ENV)
    if not wanted or point not in {p.strip() for p in wanted.split(",")}:
        return
    log.critical("%s=%s: killing process %d at %s", ENV, wanted, os.getpid(), point)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
