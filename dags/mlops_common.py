"""Settings shared by the reference DAGs (no DAG is defined here).

Everything is derived from the provider's embedded defaults unless overridden by the provider's
settings (``mlops_provider.core.config``: an ``MLOPS_*`` environment variable, else the ``[mlops]``
section of Airflow's configuration), so the same DAG files run on one machine (local data lake,
SQLite MLflow, Feast file/SQLite stores) and in production (s3:// data lake, MLflow server, Redis
online store): only connections and these settings differ.

The DAGs name the files of their project (the Feast repo, the GX suites) explicitly, from
``PROJECT_ROOT``: the directory above ``dags/`` (or the ``project_root`` setting). They work the
same from a source checkout and with the provider installed from a wheel.

This module also holds the demo domain (churn of a subscription business): the model, feature
view, label and entity columns, and the lifecycle's assets. The provider itself names no domain.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlops_provider.assets import model_asset, predictions_asset
from mlops_provider.core import config

PROJECT_ROOT = config.project_root() or Path(__file__).resolve().parents[1]
"""The project these DAGs belong to (its include/ holds the GX suites and the Feast repo)."""

FEATURE_REPO = config.setting("feature_repo") or str(PROJECT_ROOT / "include" / "feature_repo")
"""The Feast repo every Feast task of these DAGs uses (the connection's overrides still apply)."""
EXPECTATIONS_DIR = os.environ.get("MLOPS_EXPECTATIONS_DIR") or str(
    PROJECT_ROOT / "include" / "expectations"
)
"""The GX suites (JSON) the validation tasks run."""

DATA_ROOT = config.lake_uri()
"""Base URI of the data lake (a local directory or s3://bucket/prefix): setting ``lake_uri``."""

RAW_URI = f"{DATA_ROOT}/raw"
LABELS_URI = f"{DATA_ROOT}/labels"
FEATURES_URI = f"{DATA_ROOT}/features/customer_activity"
PREDICTIONS_URI = f"{DATA_ROOT}/predictions/churn"
QUARANTINE_URI = f"{DATA_ROOT}/quarantine"
TRAINING_URI = f"{DATA_ROOT}/training"
REPORTS_URI = config.reports_uri()
"""Root of the reports: setting ``reports_uri``, else ``<DATA_ROOT>/reports``."""

MODEL_NAME = config.model_name("churn")
"""The registered model: setting ``model_name``, else ``churn``."""
ONLINE_PREDICTIONS_URI = f"{DATA_ROOT}/predictions-online/{MODEL_NAME}"
"""The serving app's online prediction log (``dt=YYYY-MM-DD/part-*.parquet``, one row per
request with the features as fed to the model): what the training-serving skew check reads."""
FEATURE_VIEW = "customer_activity"
FEATURE_SERVICE = "churn_model"
TARGET = "churned"
"""The label column."""
ENTITY_COLUMNS = ["customer_id"]
"""Identifier columns: never features, carried to predictions, the join key of labels."""
TIMESTAMP_COLUMN = "event_timestamp"
"""Event time of an activity row and of its label."""
SCORE_COLUMN = "probability"
"""The predictions' probability column (monitored for prediction drift)."""
LABEL_DELAY_DAYS = int(os.environ.get("MLOPS_LABEL_DELAY_DAYS", "3"))
TRAINING_WINDOW_DAYS = int(os.environ.get("MLOPS_TRAINING_WINDOW_DAYS", "3"))
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
_END = os.environ.get("MLOPS_DAG_END_DATE")
END_DATE = datetime.fromisoformat(_END).replace(tzinfo=timezone.utc) if _END else None
"""Last day the reference DAGs are scheduled for (``$MLOPS_DAG_END_DATE``, ISO date; unset: no
end). For a replay of a past period on a live scheduler (``make stack-demo``): unpausing the DAGs
creates no run of "today"; backfills and manual runs inside the period still run, and so do
asset-triggered training runs (they have no logical date)."""
AWS_CONN_ID = config.aws_conn_id()
"""Connection of ``s3://`` lake URIs (unused for a local lake): setting ``aws_conn_id``."""
MLFLOW_CONN_ID = config.mlflow_conn_id()
"""MLflow connection of every task (``default_args``): setting ``mlflow_conn_id``."""
FEAST_CONN_ID = config.feast_conn_id()
"""Feast connection of every task (``default_args``): setting ``feast_conn_id``."""

SERVING_CONN_ID = os.environ.get("MLOPS_SERVING_CONN_ID") or "mlops_serving_default"
"""Connection of the realtime serving app the deployment DAG deploys to (conn type
``mlops_serving``: URL in host, admin token in password). Without it the deployment DAG
validates the new champion and skips the deployment."""
SERVING_MAX_P99_MS = float(os.environ.get("MLOPS_SERVING_MAX_P99_MS") or 250)
"""Single-row p99 latency budget (ms) of the deployment DAG's serving validation."""
SERVING_VERIFY_SECONDS = float(os.environ.get("MLOPS_SERVING_VERIFY_SECONDS") or 60)
"""Verification window (s) after a deployment: readiness and error rate, else roll back."""

MODEL_ASSET = model_asset(MODEL_NAME)
"""A new champion promoted by the training pipeline (``mlops.models.churn``): the hook for a
deployment DAG of yours (docs/lifecycle.md)."""
PREDICTIONS_ASSET = predictions_asset(MODEL_NAME)
"""A new validated predictions partition written by batch scoring
(``mlops.predictions.churn``): the hook for a DAG that publishes them (docs/lifecycle.md)."""
MODEL_ASSET_URI = MODEL_ASSET.uri
PREDICTIONS_ASSET_URI = PREDICTIONS_ASSET.uri

DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": int(os.environ.get("MLOPS_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=2),
    # Airflow passes a default argument only to the operators that take it
    "mlflow_conn_id": MLFLOW_CONN_ID,
    "feast_conn_id": FEAST_CONN_ID,
}


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


DEFERRABLE_SENSORS = _flag(
    os.environ.get("MLOPS_DEFERRABLE_SENSORS")
    or os.environ.get("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE")
    or "false"
)
"""Sensors wait in the triggerer (``deferrable=True``) instead of ``mode="reschedule"``.

``$MLOPS_DEFERRABLE_SENSORS``, else Airflow's ``[operators] default_deferrable`` as set in the
environment (read without importing Airflow's configuration, to keep DAG parsing cheap)."""
SENSOR_POKE_INTERVAL = float(os.environ.get("MLOPS_SENSOR_POKE_INTERVAL") or 300)
"""Seconds between two checks of the feature freshness sensor (in both modes)."""

APPROVAL_TIMEOUT = timedelta(hours=float(os.environ.get("MLOPS_APPROVAL_TIMEOUT_HOURS") or 72))
"""How long the training pipeline's approval step (``require_approval``) waits for an answer
before it rejects the candidate by default."""

DAY = "{{ data_interval_start | ds }}"
"""The day a data-interval run processes, as YYYY-MM-DD (templated)."""
