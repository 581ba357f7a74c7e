"""Warm Celery workers: import the provider's heavy libraries once per worker, not once per task.

An Airflow 3 Celery worker runs each task in a process forked from one of its pool processes, so
whatever the worker imported before its pool started is already loaded in every task. Airflow
does this for its own modules (``celery_import_modules`` in the Celery provider); the provider's
tasks need more: MLflow, Feast, Great Expectations, scikit-learn, pandas, pyarrow and scipy take
10 to 25 s of CPU to import, paid again by every task of a cold worker.

Point Airflow's Celery configuration at :data:`CELERY_CONFIG` to preload them in the worker::

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=mlops_provider.worker.CELERY_CONFIG

It is Airflow's default Celery configuration unchanged, plus a ``worker_init`` hook that runs
:func:`preload` in the worker's main process (never in the scheduler, which also reads the
configuration). ``$MLOPS_WORKER_PRELOAD`` replaces the module list (comma-separated; ``none``
preloads nothing). Importing this module is cheap: the configuration is built on first access.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

PRELOAD_MODULES: tuple[str, ...] = (
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "scipy.stats",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.metrics",
    "mlflow",
    "mlflow.sklearn",
    "feast",
    "feast.infra.offline_stores.file_source",
    "feast.infra.online_stores.redis",
    "feast.infra.online_stores.sqlite",
    "great_expectations",
    "mlops_provider.core.features",
    "mlops_provider.core.training",
    "mlops_provider.core.validation",
    "skops.io",
)
"""What the provider's operators import lazily, in dependency order. ``skops.io`` (how models
are serialized) comes last: its import scans every module already loaded."""

PRELOAD_ENV = "MLOPS_WORKER_PRELOAD"


def preload_modules() -> list[str]:
    """The modules to preload: ``$MLOPS_WORKER_PRELOAD`` when set, else :data:`PRELOAD_MODULES`."""
    raw = os.environ.get(PRELOAD_ENV)
    if raw is None:
        return list(PRELOAD_MODULES)
    if raw.strip().lower() in ("", "none", "0", "false"):
        return []
    return [name.strip() for name in raw.split(",") if name.strip()]


def preload(modules: list[str] | None = None) -> dict[str, float]:
    """Import ``modules`` (default :func:`preload_modules`); seconds per module imported.

    A module that is not installed is skipped with a warning (a worker without Feast still
    starts); any other import error propagates, so a broken installation shows at worker start.
    Afterwards ``gc.freeze()`` keeps the forked task processes from copying the preloaded objects.
    """
    timings: dict[str, float] = {}
    for name in preload_modules() if modules is None else modules:
        started = time.perf_counter()
        try:
            _import_quietly(name)
        except ModuleNotFoundError as err:
            log.warning("worker preload: %s is not installed (%s), skipped", name, err)
            continue
        timings[name] = time.perf_counter() - started
    gc.freeze()
    total = sum(timings.values())
    log.info("worker preload: %d modules in %.1f s: %s", len(timings), total, ", ".join(timings))
    return timings


def _import_quietly(name: str) -> None:
    """Import ``name``; skops' import scans every loaded module (last in the list: it is paid
    once here instead of in every task) without logging Airflow's deprecation shims."""
    try:
        from mlops_provider.core.models import quiet_airflow_deprecations
    except ImportError:  # the provider's core needs MLflow
        importlib.import_module(name)
        return
    with quiet_airflow_deprecations():
        importlib.import_module(name)


def _on_worker_init(**_: Any) -> None:
    preload()


def celery_config() -> dict[str, Any]:
    """Airflow's default Celery configuration with the preload hook connected."""
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from celery import signals

    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="mlops_preload")
    return dict(DEFAULT_CELERY_CONFIG)


def __getattr__(name: str) -> Any:
    if name == "CELERY_CONFIG":
        return celery_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
