"""Settings shared by the reference DAGs (no DAG is defined here).

Everything is derived from the provider's embedded defaults unless overridden by environment
variables, so the same DAG files run on one machine (local data lake, SQLite MLflow, Feast
file/SQLite stores) and in production (s3:// data lake, MLflow server, Redis online store):
only connections and these variables differ.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlops_provider.core.config import data_root

PROJECT_ROOT = Path(os.environ.get("MLOPS_PROJECT_ROOT") or Path(__file__).resolve().parents[1])
"""The project these DAGs belong to (its include/ holds the GX suites and the Feast repo)."""

DATA_ROOT = os.environ.get("MLOPS_LAKE_URI") or str(data_root())
"""Base URI of the data lake (a local directory or s3://bucket/prefix)."""

RAW_URI = f"{DATA_ROOT}/raw"
LABELS_URI = f"{DATA_ROOT}/labels"
FEATURES_URI = f"{DATA_ROOT}/features/customer_activity"
PREDICTIONS_URI = f"{DATA_ROOT}/predictions/churn"
QUARANTINE_URI = f"{DATA_ROOT}/quarantine"
TRAINING_URI = f"{DATA_ROOT}/training"
REPORTS_URI = f"{DATA_ROOT}/reports"
EXPECTATIONS_DIR = os.environ.get("MLOPS_EXPECTATIONS_DIR") or str(
    PROJECT_ROOT / "include" / "expectations"
)

MODEL_NAME = os.environ.get("MLOPS_MODEL_NAME", "churn")
FEATURE_VIEW = "customer_activity"
FEATURE_SERVICE = "churn_model"
TARGET = "churned"
LABEL_DELAY_DAYS = int(os.environ.get("MLOPS_LABEL_DELAY_DAYS", "3"))
TRAINING_WINDOW_DAYS = int(os.environ.get("MLOPS_TRAINING_WINDOW_DAYS", "3"))
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
AWS_CONN_ID = os.environ.get("MLOPS_AWS_CONN_ID") or None

DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": int(os.environ.get("MLOPS_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=2),
}

DAY = "{{ data_interval_start | ds }}"
"""The day a data-interval run processes, as YYYY-MM-DD (templated)."""
