"""Settings of the provider and locations of the embedded defaults (one machine, no services).

Every setting is read, in this order, from

1. its ``MLOPS_*`` environment variable (``MLOPS_LAKE_URI``, ...), then
2. the ``[mlops]`` section of Airflow's configuration (``airflow.cfg``, or the environment
   variable ``AIRFLOW__MLOPS__<OPTION>``), declared by the provider (``get_provider_info()``'s
   ``config``), then
3. its default.

An explicit ``MLOPS_*`` variable wins so that a deployment configured before the section existed
keeps working; an empty value counts as unset. :data:`OPTIONS` lists the options and their
variables, :func:`setting` reads one.

Everything lives under ``$AIRFLOW_HOME/mlops`` unless ``data_root`` says otherwise:

- ``data/``            the local data lake (raw partitions, features, predictions, reports)
- ``mlflow/mlflow.db`` the embedded MLflow tracking and registry store (SQLite)
- ``mlflow/artifacts`` the embedded MLflow artifact root

This module is light (DAG files import it): Airflow's configuration is imported only when a
setting is read, and an Airflow process has imported it already.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops_provider.core.errors import InputError

__all__ = [
    "CONFIG_SECTION",
    "OPTIONS",
    "setting",
    "lake_uri",
    "reports_uri",
    "model_name",
    "mlflow_conn_id",
    "mlflow_max_retry_seconds",
    "DEFAULT_MLFLOW_MAX_RETRY_SECONDS",
    "feast_conn_id",
    "aws_conn_id",
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


#: The provider's section of Airflow's configuration.
CONFIG_SECTION = "mlops"

#: Option of the ``[mlops]`` section -> the ``MLOPS_*`` environment variable that overrides it.
OPTIONS: dict[str, str] = {
    "lake_uri": "MLOPS_LAKE_URI",
    "reports_uri": "MLOPS_REPORTS_URI",
    "model_name": "MLOPS_MODEL_NAME",
    "mlflow_conn_id": "MLOPS_MLFLOW_CONN_ID",
    "feast_conn_id": "MLOPS_FEAST_CONN_ID",
    "aws_conn_id": "MLOPS_AWS_CONN_ID",
    "feature_repo": "MLOPS_FEATURE_REPO",
    "project_root": "MLOPS_PROJECT_ROOT",
    "data_root": "MLOPS_DATA_ROOT",
    "metrics_token": "MLOPS_METRICS_TOKEN",
    "versions_max_age_days": "MLOPS_VERSIONS_MAX_AGE_DAYS",
    "versions_keep": "MLOPS_VERSIONS_KEEP",
    "mlflow_max_retry_seconds": "MLOPS_MLFLOW_MAX_RETRY_SECONDS",
}


def _airflow_option(option: str) -> str | None:
    """``[mlops] <option>`` from Airflow's configuration, or None (unset, or no Airflow)."""
    try:
        from airflow.configuration import conf
    except ImportError:  # the core used without Airflow
        return None
    value = conf.get(CONFIG_SECTION, option, fallback=None)
    return str(value) if value is not None else None


def setting(option: str) -> str | None:
    """One setting: ``$MLOPS_<OPTION>``, else ``[mlops] <option>`` of Airflow's configuration
    (``AIRFLOW__MLOPS__<OPTION>``), else None. Empty or blank values count as unset.

    :param option: an option of :data:`OPTIONS` (``"lake_uri"``, ...).
    :raises ValueError: an unknown option.
    """
    if option not in OPTIONS:
        raise ValueError(f"unknown [mlops] option {option!r}; options: {sorted(OPTIONS)}")
    value = os.environ.get(OPTIONS[option])
    if value is None or not value.strip():
        # Airflow's configuration only when the variable is unset: importing it initialises
        # Airflow, which a process without Airflow's settings (a serving app) cannot do
        value = _airflow_option(option)
    return value.strip() if value is not None and value.strip() else None


def data_root() -> Path:
    """The local data lake: setting ``data_root`` (``$MLOPS_DATA_ROOT``) or ``<mlops_home>/data``."""
    value = setting("data_root")
    return Path(value).expanduser() if value else mlops_home() / "data"


def lake_uri() -> str:
    """Base URI of the data lake (a local directory or ``s3://bucket/prefix``): setting
    ``lake_uri`` (``$MLOPS_LAKE_URI``), else :func:`data_root`."""
    return (setting("lake_uri") or str(data_root())).rstrip("/")


def reports_uri() -> str:
    """Where the reference DAGs write their reports: setting ``reports_uri``
    (``$MLOPS_REPORTS_URI``), else ``<lake_uri>/reports``."""
    return (setting("reports_uri") or f"{lake_uri()}/reports").rstrip("/")


def model_name(default: str) -> str:
    """The registered model of the reference DAGs: setting ``model_name``
    (``$MLOPS_MODEL_NAME``), else ``default`` (the provider names no model)."""
    return setting("model_name") or default


def mlflow_conn_id() -> str:
    """MLflow connection of the reference DAGs: setting ``mlflow_conn_id``, else
    ``mlflow_default``."""
    return setting("mlflow_conn_id") or "mlflow_default"


#: Default of setting ``mlflow_max_retry_seconds``.
DEFAULT_MLFLOW_MAX_RETRY_SECONDS = 30.0


def mlflow_max_retry_seconds() -> float:
    """How long one MLflow request of the provider may keep retrying a server that does not
    answer: setting ``mlflow_max_retry_seconds`` (``$MLOPS_MLFLOW_MAX_RETRY_SECONDS``), else
    :data:`DEFAULT_MLFLOW_MAX_RETRY_SECONDS`. A connection's extra ``max_retry_seconds`` wins
    (:mod:`mlops_provider.core.mlflow_target`).

    :raises ConfigError: the setting is not a number of seconds >= 0.
    """
    value = setting("mlflow_max_retry_seconds")
    if value is None:
        return DEFAULT_MLFLOW_MAX_RETRY_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise ConfigError(
            f"setting mlflow_max_retry_seconds ($MLOPS_MLFLOW_MAX_RETRY_SECONDS or [mlops] "
            f"mlflow_max_retry_seconds) must be a number of seconds >= 0, got {value!r}"
        )
    return seconds


def feast_conn_id() -> str:
    """Feast connection of the reference DAGs: setting ``feast_conn_id``, else ``feast_default``."""
    return setting("feast_conn_id") or "feast_default"


def aws_conn_id() -> str:
    """Connection of ``s3://`` lake URIs: setting ``aws_conn_id``, else ``aws_default``."""
    return setting("aws_conn_id") or "aws_default"


def embedded_mlflow_tracking_uri() -> str:
    """SQLite tracking/registry store used when no connection and no MLFLOW_TRACKING_URI exist."""
    db = mlops_home() / "mlflow" / "mlflow.db"
    return f"sqlite:///{db}"


def embedded_mlflow_artifact_root() -> str:
    """Artifact root of the embedded MLflow store, as a ``file://`` URI."""
    return (mlops_home() / "mlflow" / "artifacts").as_uri()


class ConfigError(InputError):
    """A setting the provider needs is missing or points at nothing; the message names it."""


def metrics_token() -> str | None:
    """The bearer token Prometheus scrapes ``/mlops/metrics`` with: setting ``metrics_token``
    (``$MLOPS_METRICS_TOKEN``); ``None`` = the endpoint wants an Airflow login like the
    reports (docs/metrics.md)."""
    return setting("metrics_token")


def project_root() -> Path | None:
    """The project whose ``include/`` holds the DAGs' files: setting ``project_root``
    (``$MLOPS_PROJECT_ROOT``), or ``None`` when unset. The provider never guesses it from its
    own location (an installed wheel lives in site-packages)."""
    value = setting("project_root")
    return Path(value).expanduser() if value else None


def default_feature_repo() -> Path:
    """Feast repo used when no ``feast`` connection exists: setting ``feature_repo``
    (``$MLOPS_FEATURE_REPO``), else ``<project_root>/include/feature_repo``.

    :raises ConfigError: neither setting is present.
    """
    value = setting("feature_repo")
    if value:
        return Path(value).expanduser()
    root = project_root()
    if root is None:
        raise ConfigError(
            "no Feast feature repo configured: create a 'feast_default' connection (extra "
            "repo_path), pass repo_path, or set MLOPS_FEATURE_REPO or [mlops] feature_repo (or "
            "MLOPS_PROJECT_ROOT / [mlops] project_root, whose include/feature_repo is used)"
        )
    return root / "include" / "feature_repo"


def resolve_project_file(path: str | os.PathLike[str]) -> Path:
    """A local path as given when absolute or existing, else relative to the setting
    ``project_root`` (``$MLOPS_PROJECT_ROOT``) when that exists there (the reference DAGs name files of their
    project relative to it); else the path as given (the caller reports it missing)."""
    local = Path(path).expanduser()
    if local.is_absolute() or local.exists():
        return local
    root = project_root()
    if root is not None and (root / local).exists():
        return root / local
    return local
