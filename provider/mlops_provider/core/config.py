"""Locations of the embedded defaults (one machine, no services).

Everything lives under ``$AIRFLOW_HOME/mlops`` unless ``MLOPS_DATA_ROOT`` says otherwise:

- ``data/``            the local data lake (raw partitions, features, predictions, reports)
- ``mlflow/mlflow.db`` the embedded MLflow tracking and registry store (SQLite)
- ``mlflow/artifacts`` the embedded MLflow artifact root
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "airflow_home",
    "mlops_home",
    "data_root",
    "embedded_mlflow_tracking_uri",
    "embedded_mlflow_artifact_root",
    "project_root",
    "default_feature_repo",
]


def airflow_home() -> Path:
    """``$AIRFLOW_HOME``, or ``~/airflow`` as Airflow itself defaults."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()


def mlops_home() -> Path:
    """Root of the provider's embedded state: ``$MLOPS_HOME`` or ``$AIRFLOW_HOME/mlops``."""
    env = os.environ.get("MLOPS_HOME")
    return Path(env).expanduser() if env else airflow_home() / "mlops"


def data_root() -> Path:
    """The local data lake: ``$MLOPS_DATA_ROOT`` or ``<mlops_home>/data``."""
    env = os.environ.get("MLOPS_DATA_ROOT")
    return Path(env).expanduser() if env else mlops_home() / "data"


def embedded_mlflow_tracking_uri() -> str:
    """SQLite tracking/registry store used when no connection and no MLFLOW_TRACKING_URI exist."""
    db = mlops_home() / "mlflow" / "mlflow.db"
    return f"sqlite:///{db}"


def embedded_mlflow_artifact_root() -> str:
    """Artifact root of the embedded MLflow store, as a ``file://`` URI."""
    return (mlops_home() / "mlflow" / "artifacts").as_uri()


def project_root() -> Path:
    """The checkout this provider runs from (where ``include/`` and ``dags/`` live)."""
    env = os.environ.get("MLOPS_PROJECT_ROOT")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3]


def default_feature_repo() -> Path:
    """Feast repo used when no ``feast`` connection exists: ``$MLOPS_FEATURE_REPO`` or the
    project's ``include/feature_repo``."""
    env = os.environ.get("MLOPS_FEATURE_REPO")
    return Path(env).expanduser() if env else project_root() / "include" / "feature_repo"
