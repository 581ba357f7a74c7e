"""Deployment of a registered model to the realtime serving app (:mod:`mlops_provider.serving`).

- :mod:`~mlops_provider.core.deployment.infra`: infra validation before any traffic
  (:func:`validate_serving`: the model in the serving binary answers exactly like batch scoring,
  within a latency budget; :func:`serving_process` runs the app for one version);
- :mod:`~mlops_provider.core.deployment.rollout`: :func:`deploy` to a running service
  (replace, canary or shadow; readiness and error-rate window; rollback);
- :mod:`~mlops_provider.core.deployment.client`: :class:`ServingClient` over HTTP.
"""

from __future__ import annotations

from mlops_provider.core.deployment.client import (
    ReloadRefused,
    ServingClient,
    ServingUnavailable,
    Traffic,
    traffic,
)
from mlops_provider.core.deployment.infra import (
    ServingStartError,
    ServingValidation,
    free_port,
    mlflow_environment,
    sample_rows,
    serving_process,
    validate_serving,
)
from mlops_provider.core.deployment.rollout import MODES, DeploymentFailed, Rollout, deploy

__all__ = [
    "MODES",
    "DeploymentFailed",
    "ReloadRefused",
    "Rollout",
    "ServingClient",
    "ServingStartError",
    "ServingUnavailable",
    "ServingValidation",
    "Traffic",
    "deploy",
    "free_port",
    "mlflow_environment",
    "sample_rows",
    "serving_process",
    "traffic",
    "validate_serving",
]
