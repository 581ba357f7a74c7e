"""Idempotent registration: one registered version per source run.

A candidate is registered once per source run: the version carries the tag
``mlops.source_run_id`` (set atomically with the version), and a retry finds it with
``search_model_versions`` instead of creating another version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlops_provider.core.models import is_not_found
from mlops_provider.core.registry.errors import lost_create_race
from mlops_provider.core.runs import quote

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion

__all__ = ["SOURCE_RUN_TAG", "find_version_for_run", "register_candidate", "search_versions"]

log = logging.getLogger(__name__)

SOURCE_RUN_TAG = "mlops.source_run_id"


def search_versions(client: MlflowClient, filter_string: str) -> list[MlflowModelVersion]:
    """Every model version matching ``filter_string`` (all pages)."""
    out: list[MlflowModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(filter_string, max_results=1000, page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def find_version_for_run(client: MlflowClient, name: str, run_id: str) -> MlflowModelVersion | None:
    """The version of ``name`` registered from ``run_id`` by :func:`register_candidate`."""
    versions = search_versions(
        client, f"name = {quote(name)} and tags.`{SOURCE_RUN_TAG}` = {quote(run_id)}"
    )
    if not versions:
        return None
    versions.sort(key=lambda v: int(v.version))
    if len(versions) > 1:
        log.warning(
            "%d versions of %s were registered from run %s; using version %s",
            len(versions),
            name,
            run_id,
            versions[0].version,
        )
    return versions[0]


def _logged_model_id(client: MlflowClient, run_id: str) -> str | None:
    run = client.get_run(run_id)
    model_id = run.data.tags.get("mlops.model_id")
    if model_id:
        return str(model_id)
    outputs = getattr(getattr(run, "outputs", None), "model_outputs", None) or []
    if outputs:
        return str(max(outputs, key=lambda o: o.step).model_id)
    return None


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return
    except MlflowException as err:
        if not is_not_found(err):
            raise
    try:
        client.create_registered_model(name)
        log.info("created registered model %s", name)
    except MlflowException as err:
        if not lost_create_race(err):
            raise


def _version_source(
    client: MlflowClient, run_id: str, model_id: str | None, model_uri: str | None
) -> str:
    """The artifact location a new version points at."""
    if model_id:
        return str(client.get_logged_model(model_id).artifact_location)
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    uri = model_uri or f"runs:/{run_id}/model"
    return str(RunsArtifactRepository.get_underlying_uri(uri)) if uri.startswith("runs:/") else uri


def _link_logged_model(client: MlflowClient, model_id: str, name: str, version: str) -> None:
    """The MLflow UI links logged models to their versions through this tag."""
    from mlflow.exceptions import MlflowException

    try:
        logged = client.get_logged_model(model_id)
        linked = json.loads(logged.tags.get("mlflow.modelVersions", "[]"))
        linked.append({"name": name, "version": version})
        client.set_logged_model_tags(model_id, {"mlflow.modelVersions": json.dumps(linked)})
    except (MlflowException, ValueError) as err:
        log.info("could not link logged model %s to the version: %s", model_id, err)


def register_candidate(
    client: MlflowClient,
    name: str,
    *,
    run_id: str,
    model_id: str | None = None,
    model_uri: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> tuple[MlflowModelVersion, bool]:
    """Register the model of ``run_id`` under ``name`` once; return ``(version, created)``.

    The registered model is created if missing (after the run and its model were read, so a
    missing run leaves nothing behind). The version source is the logged model's
    artifact location (``model_id`` recorded too), or ``model_uri``'s artifacts for models
    logged without MLflow 3's logged-model entity.
    """
    existing = find_version_for_run(client, name, run_id)
    if existing is not None:
        log.info("run %s is already registered as %s version %s", run_id, name, existing.version)
        return existing, False
    model_id = model_id or _logged_model_id(client, run_id)
    source = _version_source(client, run_id, model_id, model_uri)
    _ensure_registered_model(client, name)  # only once the run and its model are found
    version_tags = {SOURCE_RUN_TAG: run_id, **{k: str(v) for k, v in (tags or {}).items()}}
    mv = client.create_model_version(
        name, source, run_id=run_id, tags=version_tags, model_id=model_id
    )
    log.info("registered run %s as %s version %s", run_id, name, mv.version)
    if model_id:
        _link_logged_model(client, model_id, name, str(mv.version))
    return mv, True
