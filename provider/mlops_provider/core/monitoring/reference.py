"""The reference model of a monitoring check: its version, its training profile and what its
training run recorded.

A model is named by ``registered_model_name`` + ``alias`` or by any model URI
(:mod:`mlops_provider.core.models`: ``models:/name/version``, ``models:/name@alias``,
``models:/m-<id>``, ``runs:/<run_id>/<path>``). Its training run holds

- the reference profile of the training features (artifact
  :data:`REFERENCE_PROFILE_ARTIFACT`), the reference of data drift;
- the label column (tag ``mlops.target``) and, when the training run records them, the entity
  columns (tag ``mlops.entity_columns``, a JSON list): the defaults of performance monitoring.

For a model that is not registered the run is the logged model's source run.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import TYPE_CHECKING

from mlops_provider.core import models
from mlops_provider.core.errors import ParameterError
from mlops_provider.core.models import (
    ENTITY_COLUMNS_TAG,
    TARGET_TAG,
    TrainingRecord,
    training_record,
)
from mlops_provider.core.monitoring.errors import MonitoringError
from mlops_provider.core.profile import DriftInputError, ReferenceProfile

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "ENTITY_COLUMNS_TAG",
    "REFERENCE_PROFILE_ARTIFACT",
    "TARGET_TAG",
    "TrainingRecord",
    "load_reference_profile",
    "resolve_reference",
    "training_record",
]

log = logging.getLogger(__name__)

#: Where the training run of a model stores the monitoring reference profile.
REFERENCE_PROFILE_ARTIFACT = "monitoring/reference_profile.json"


def resolve_reference(
    client: MlflowClient,
    *,
    registered_model_name: str | None = None,
    alias: str | None = models.DEFAULT_ALIAS,
    model_uri: str | None = None,
) -> models.ModelVersion:
    """The model a check is about: ``model_uri`` (any form), else ``@alias`` of
    ``registered_model_name``.

    :raises MonitoringError: neither is given.
    :raises ParameterError: ``alias`` is empty.
    :raises ModelNotFoundError: the model, version, alias, run or logged model does not exist.
    """
    if model_uri:
        return models.resolve(client, model_uri)
    if not registered_model_name:
        raise MonitoringError(
            "no model to resolve: give registered_model_name (+ alias) or model_uri"
        )
    if not alias:
        raise ParameterError("alias", "is empty: give an alias (e.g. 'champion') or a model_uri")
    return models.resolve_alias(client, registered_model_name, alias)


def load_reference_profile(
    client: MlflowClient,
    model: models.ModelVersion,
    artifact_path: str = REFERENCE_PROFILE_ARTIFACT,
) -> ReferenceProfile:
    """The reference profile logged by the model's training run.

    :raises MonitoringError: the model has no run, the run has no such artifact, or it is not a
        profile.
    """
    from mlflow.exceptions import MlflowException

    what = model.describe()
    if not model.run_id:
        raise MonitoringError(
            f"{what} has no source run: its reference profile ({artifact_path}) cannot be "
            "found; pass reference_data instead"
        )
    with tempfile.TemporaryDirectory(prefix="mlops-profile-") as tmp, models.no_progress_bars():
        try:
            local = client.download_artifacts(model.run_id, artifact_path, tmp)
        except (MlflowException, OSError) as err:
            raise MonitoringError(
                f"{what}: run {model.run_id} has no artifact {artifact_path!r} (the training "
                f"run must log the reference profile there): {err}"
            ) from err
        if not os.path.isfile(local):
            raise MonitoringError(
                f"{what}: artifact {artifact_path!r} of run {model.run_id} is not a file"
            )
        try:
            return ReferenceProfile.from_json(local)
        except (DriftInputError, KeyError, TypeError, ValueError) as err:
            raise MonitoringError(
                f"{what}: artifact {artifact_path!r} of run {model.run_id} is not a valid "
                f"reference profile: {err}"
            ) from err
