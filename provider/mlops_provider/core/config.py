"""Locations of the embedded defaults (one machine, no services).

Everything lives under ``$AIRFLOW_HOME/mlops`` unless ``MLOPS_DATA_ROOT`` says otherwise:

- ``data/``            the local data lake (raw partitions, features, predictions, reports)
- ``mlflow/mlflow.db`` the embedded MLflow tracking and registry store (SQLite)
- ``mlflow/artifacts`` the embedded MLflow artifact root
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops_provider.core.errors import InputError

__all__ = [
    "airflow_home",
    "mlops_home",
    "data_root",
    "embedded_mlflow_tracking_uri",
    "embedded_mlflow_artifact_root",
    "project_root",
    "default_feature_repo",
    "resolve_project_file",
    "ConfigError",
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


class ConfigError(InputError):
    """A setting the provider needs is missing or points at nothing; the message names it."""


def project_root() -> Path | None:
    """The project whose ``include/`` holds the DAGs' files: ``$MLOPS_PROJECT_ROOT``, or
    ``None`` when unset. The provider never guesses it from its own location (an installed
    wheel lives in site-packages)."""
    env = os.environ.get("MLOPS_PROJECT_ROOT")
    return Path(env).expanduser() if env else None


def default_feature_repo() -> Path:
    """Feast repo used when no ``feast`` connection exists: ``$MLOPS_FEATURE_REPO``, else
    ``$MLOPS_PROJECT_ROOT/include/feature_repo``.

    :raises ConfigError: neither setting is present.
    """
    env = os.environ.get("MLOPS_FEATURE_REPO")
    if env:
        return Path(env).expanduser()
    root = project_root()
    if root is None:
        raise ConfigError(
            "no Feast feature repo configured: create a 'feast_default' connection (extra "
            "repo_path), pass repo_path, or set MLOPS_FEATURE_REPO (or MLOPS_PROJECT_ROOT, whose "
            "include/feature_repo is used)"
        )
    return root / "include" / "feature_repo"


def resolve_project_file(path: str | os.PathLike[str]) -> Path:
    """A local path as given when absolute or existing, else relative to
    ``$MLOPS_PROJECT_ROOT`` when that exists there (the reference DAGs name files of their
    project relative to it); else the path as given (the caller reports it missing)."""
    local = Path(path).expanduser()
    if local.is_absolute() or local.exists():
        return local
    root = project_root()
    if root is not None and (root / local).exists():
        return root / local
    return local
