"""core.logs: libraries' output at its real level in the task log, scoped to a block."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from mlops_provider.core.logs import captured_output, library_logs


def test_mlflow_records_go_through_the_logging_tree_at_their_level(caplog) -> None:
    """MLflow's handler writes to stderr (an ERROR line in Airflow); inside the block its
    records reach the task log as INFO, its chatty loggers are quiet; all restored after."""
    mlflow_logger = logging.getLogger("mlflow")
    handler = logging.StreamHandler(stream=sys.stderr)
    saved = (list(mlflow_logger.handlers), mlflow_logger.propagate)
    mlflow_logger.handlers, mlflow_logger.propagate = [handler], False
    try:
        with caplog.at_level(logging.INFO), library_logs():
            logging.getLogger("mlflow.tracking").info("a real message")
            logging.getLogger("mlflow.utils.environment").warning("Failed to resolve pip")
            assert os.environ["MLFLOW_CONFIGURE_LOGGING"] == "false"
        assert [(r.name, r.levelno) for r in caplog.records] == [("mlflow.tracking", logging.INFO)]
        assert mlflow_logger.handlers == [handler] and mlflow_logger.propagate is False
        assert logging.getLogger("mlflow.utils.environment").level == logging.NOTSET
        assert "MLFLOW_CONFIGURE_LOGGING" not in os.environ
    finally:
        mlflow_logger.handlers, mlflow_logger.propagate = saved


def test_captured_output_is_logged_at_debug_without_colours(caplog, capfd) -> None:
    log = logging.getLogger("mlops_provider.test")
    with (
        caplog.at_level(logging.DEBUG, logger="mlops_provider.test"),
        captured_output(log, "feast apply"),
    ):
        print("\x1b[1m\x1b[32mCreated feature view\x1b[0m customer_activity")
        print("progress  10%\rprogress 100%", file=sys.stderr)
    out, err = capfd.readouterr()
    assert out == err == ""
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == (
        "feast apply printed 2 line(s):\nCreated feature view customer_activity\nprogress 100%"
    )


def test_captured_output_of_a_failure_is_kept_as_context(caplog) -> None:
    log = logging.getLogger("mlops_provider.test")
    with (
        caplog.at_level(logging.DEBUG, logger="mlops_provider.test"),
        pytest.raises(RuntimeError),
        captured_output(log, "feast materialize"),
    ):
        print("Materializing 1 feature views")
        raise RuntimeError("store down")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "Materializing 1 feature views" in caplog.records[0].getMessage()
