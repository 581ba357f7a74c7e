"""Readable task logs: libraries' own output at its real level, or at debug when it is chatter.

Inside an Airflow task, whatever a library prints to stdout becomes an INFO line and whatever
it writes to stderr an ERROR line of the task log. MLflow logs through its own stderr handler
(so its INFO lines show as errors) and Feast prints its apply diffs (whole protobuf messages)
and progress bars. The helpers here are scoped to a block, never global:

- :func:`library_logs` sends MLflow's log records to the standard logging tree (the task log)
  at their own level instead of stderr, and raises the level of named chatty loggers;
- :func:`captured_output` takes what a library prints inside the block and logs it at DEBUG.

This module is light (standard library only).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterable, Iterator

__all__ = ["CHATTY_LOGGERS", "MLFLOW_OWNED_LOGGERS", "captured_output", "library_logs"]

#: Loggers whose INFO/WARNING lines say nothing a task's reader can act on: MLflow's
#: environment inference while logging a model (it finds a uv project, misses pip in a uv
#: venv) and its database migrations of an embedded store.
CHATTY_LOGGERS = (
    "mlflow.utils.uv_utils",
    "mlflow.utils.environment",
    "mlflow.store.db.utils",
    "alembic.runtime.migration",
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


#: Loggers MLflow gives their own stderr handler (``mlflow._configure_mlflow_loggers``).
MLFLOW_OWNED_LOGGERS = ("mlflow", "alembic")


@contextlib.contextmanager
def library_logs(
    chatty: Iterable[str] = CHATTY_LOGGERS, *, chatty_level: int = logging.ERROR
) -> Iterator[None]:
    """Inside the block, MLflow's records reach the task log at their own level (not through
    MLflow's stderr handler, which Airflow shows as ERROR), and the ``chatty`` loggers only
    pass records at ``chatty_level`` or above. Everything is restored afterwards.

    MLflow imported for the first time inside the block does not install its handler either
    (``MLFLOW_CONFIGURE_LOGGING`` is false for the block's duration).
    """
    with contextlib.ExitStack() as stack:
        for name in MLFLOW_OWNED_LOGGERS:
            stack.enter_context(_through_logging_tree(logging.getLogger(name)))
        for name in chatty:
            stack.enter_context(_at_least(logging.getLogger(name), chatty_level))
        stack.enter_context(_environ("MLFLOW_CONFIGURE_LOGGING", "false"))
        yield


@contextlib.contextmanager
def _through_logging_tree(logger: logging.Logger) -> Iterator[None]:
    streams = [h for h in logger.handlers if type(h) is logging.StreamHandler]
    saved_propagate = logger.propagate
    filters = [f for h in streams for f in h.filters if f not in logger.filters]
    for handler in streams:
        logger.removeHandler(handler)
    for log_filter in filters:  # MLflow's handler drops records of suppressed threads
        logger.addFilter(log_filter)
    if streams:
        logger.propagate = True
    try:
        yield
    finally:
        for log_filter in filters:
            logger.removeFilter(log_filter)
        for handler in streams:
            logger.addHandler(handler)
        logger.propagate = saved_propagate


@contextlib.contextmanager
def _at_least(logger: logging.Logger, level: int) -> Iterator[None]:
    saved = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(saved)


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def captured_output(log: logging.Logger, what: str) -> Iterator[None]:
    """What a library prints to stdout or stderr inside the block (Feast's apply diffs and
    progress bars) is logged at DEBUG on ``log``, without terminal colours, instead of
    becoming INFO and ERROR lines of the task log. An exception still propagates; the
    captured lines are then logged at WARNING, as context for it."""
    buffer = io.StringIO()
    failed = False
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield
    except BaseException:
        failed = True
        raise
    finally:
        lines = [_ANSI.sub("", line).rstrip() for line in buffer.getvalue().split("\n")]
        lines = [line for line in (part.split("\r")[-1] for part in lines) if line.strip()]
        if lines:
            level = logging.WARNING if failed else logging.DEBUG
            log.log(level, "%s printed %d line(s):\n%s", what, len(lines), "\n".join(lines))
