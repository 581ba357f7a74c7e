"""Models in MLflow: one URI grammar, one resolved value, one way to find an alias holder.

Every operator accepts every form of model URI:

- ``models:/<name>/<version>``: a registered model version,
- ``models:/<name>@<alias>``: the version an alias points at (resolved once, then pinned),
- ``models:/m-<id>``: a logged model (what :class:`TrainModelOperator` returns),
- ``runs:/<run_id>/<artifact_path>``: a model logged by a run.

:func:`parse_model_uri` checks the grammar (no MLflow call); :func:`resolve` turns a URI into a
:class:`ModelVersion` (the concrete model, its run, its registry identity when it has one);
:func:`alias_holder` answers "who holds ``@alias`` of ``name``" (``None`` on a cold start);
:func:`load` loads the model and :func:`input_columns` names the columns it needs.

Registry stages (``models:/name/Production``) are refused with a hint to use an alias.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mlops_provider.core.errors import InputError, NotFoundError
from mlops_provider.core.times import from_ms

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "DEFAULT_ALIAS",
    "ModelUri",
    "ModelUriError",
    "ModelNotFoundError",
    "ModelVersion",
    "alias_holder",
    "cold_start_reason",
    "ENTITY_COLUMNS_TAG",
    "FEATURE_REFS_TAG",
    "TARGET_TAG",
    "TrainingRecord",
    "input_columns",
    "training_record",
    "is_not_found",
    "OpenedModel",
    "load",
    "opened",
    "model_version_from_entity",
    "no_progress_bars",
    "parse_model_uri",
    "registered_model_or_error",
    "resolve",
    "resolve_alias",
    "version_uri",
]

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"

_NAME = r"[^/@\s][^/@]*"
_ALIAS_RE = re.compile(rf"^models:/(?P<name>{_NAME})@(?P<alias>[A-Za-z0-9_\-]+)$")
_VERSION_RE = re.compile(rf"^models:/(?P<name>{_NAME})/(?P<version>[^/@]+)$")
_LOGGED_RE = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]{8,})$")
_RUN_RE = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]{8,})/(?P<path>[^\s].*)$")
FORMS = (
    "models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/<artifact_path> "
    "or models:/<model_id>"
)
_STAGES = ("production", "staging", "archived", "none", "latest")


class ModelUriError(InputError):
    """A model URI does not follow the grammar; the message lists the accepted forms."""


class ModelNotFoundError(NotFoundError):
    """The model, version, alias, run or logged model a URI names does not exist."""


@dataclass(frozen=True)
class ModelUri:
    """A parsed model URI (nothing resolved yet).

    :param kind: ``alias``, ``version``, ``run`` or ``logged_model``.
    """

    uri: str
    kind: Literal["alias", "version", "run", "logged_model"]
    name: str | None = None
    alias: str | None = None
    version: str | None = None
    run_id: str | None = None
    artifact_path: str | None = None
    model_id: str | None = None


def version_uri(name: str, version: str | int) -> str:
    """``models:/<name>/<version>``."""
    return f"models:/{name}/{version}"


def parse_model_uri(uri: Any) -> ModelUri:
    """Parse a model URI.

    :raises ModelUriError: not a string, or none of the accepted forms (names them).
    """
    if isinstance(uri, ModelUri):
        return uri
    if not isinstance(uri, str) or not uri.strip():
        raise ModelUriError(f"model_uri must be a non-empty string ({FORMS}), got {uri!r}")
    text = uri.strip()
    if match := _LOGGED_RE.match(text):
        return ModelUri(text, "logged_model", model_id=match["model_id"])
    if match := _ALIAS_RE.match(text):
        return ModelUri(text, "alias", name=match["name"], alias=match["alias"])
    if match := _VERSION_RE.match(text):
        version = match["version"]
        if not version.isdigit() or int(version) < 1:
            hint = (
                " (registry stages are not supported; use an alias: models:/<name>@<alias>)"
                if version.lower() in _STAGES
                else ""
            )
            raise ModelUriError(
                f"malformed model URI {text!r}: version {version!r} is not a positive "
                f"integer{hint}; expected {FORMS}"
            )
        return ModelUri(text, "version", name=match["name"], version=str(int(version)))
    if match := _RUN_RE.match(text):
        path = match["path"].strip("/")
        if path:
            return ModelUri(text, "run", run_id=match["run_id"], artifact_path=path)
    raise ModelUriError(f"malformed model URI {text!r}: expected {FORMS}")


@dataclass(frozen=True)
class ModelVersion:
    """A model URI resolved to one concrete model: the identity results and rows carry.

    :param uri: the concrete URI to load: ``models:/<name>/<version>`` for registry models (an
        alias is never read again), else the logged-model or ``runs:/`` URI.
    :param name: registered model name (``None`` for a model that is not registered).
    :param version: registered version as a string (``None`` likewise).
    :param run_id: the MLflow run that produced the model.
    :param aliases: every alias the version holds.
    :param requested_uri: the URI as given (e.g. ``models:/churn@champion``).
    :param alias: the alias that was resolved, if any.
    :param model_id: the logged model id (``m-...``) when known.
    """

    uri: str
    name: str | None = None
    version: str | None = None
    run_id: str | None = None
    aliases: tuple[str, ...] = ()
    requested_uri: str | None = None
    alias: str | None = None
    model_id: str | None = None
    source: str | None = None
    status: str | None = None
    creation_timestamp: int | None = None
    tags: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def registered(self) -> bool:
        return self.name is not None and self.version is not None

    @property
    def created_at(self) -> datetime | None:
        """Registration time (UTC), when known."""
        if not self.creation_timestamp:
            return None
        return from_ms(self.creation_timestamp)

    def describe(self) -> str:
        """``model churn version 3 (run abc, resolved from models:/churn@champion)``."""
        if self.registered:
            via = (
                f", resolved from {self.requested_uri}"
                if self.requested_uri and self.requested_uri != self.uri
                else ""
            )
            return f"model {self.name} version {self.version} (run {self.run_id}{via})"
        return f"model {self.uri} (run {self.run_id})"

    def to_dict(self) -> dict[str, Any]:
        """The ``model`` entry of every result: ``name``, ``version``, ``run_id``, ``uri``
        (plus ``alias`` when one was resolved)."""
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "uri": self.uri,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


def is_not_found(err: Exception) -> bool:
    """Whether an MLflow error says the resource does not exist."""
    code = str(getattr(err, "error_code", "") or "")
    return "RESOURCE_DOES_NOT_EXIST" in code or "not found" in str(err).lower()


def _logged_model_id(source: Any) -> str | None:
    """The ``m-...`` id in a version's source (``models:/m-...``), when it has one."""
    match = _LOGGED_RE.match(str(source or ""))
    return match["model_id"] if match else None


def model_version_from_entity(
    mv: Any, *, requested_uri: str | None = None, alias: str | None = None
) -> ModelVersion:
    """A :class:`ModelVersion` from an MLflow ``ModelVersion`` entity."""
    name, version = str(mv.name), str(mv.version)
    created = getattr(mv, "creation_timestamp", None)
    return ModelVersion(
        uri=version_uri(name, version),
        name=name,
        version=version,
        run_id=getattr(mv, "run_id", None) or None,
        aliases=tuple(sorted(getattr(mv, "aliases", None) or ())),
        requested_uri=requested_uri or version_uri(name, version),
        alias=alias,
        model_id=getattr(mv, "model_id", None) or _logged_model_id(getattr(mv, "source", None)),
        source=getattr(mv, "source", None),
        status=str(getattr(mv, "status", "") or "") or None,
        creation_timestamp=int(created) if created else None,
        tags=dict(getattr(mv, "tags", None) or {}),
    )


def registered_model_or_error(client: MlflowClient, name: str) -> Any:
    """The registered model ``name``.

    :raises ModelNotFoundError: it does not exist.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if is_not_found(err):
            raise ModelNotFoundError(f"registered model {name!r} does not exist") from err
        raise


def _known_aliases(registered: Any) -> str:
    aliases = dict(getattr(registered, "aliases", {}) or {})
    return ", ".join(f"@{a} -> version {v}" for a, v in sorted(aliases.items())) or "none"


def resolve_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    """The version ``alias`` of ``name`` points at.

    :raises ModelNotFoundError: the registered model or the alias does not exist (the message
        lists the model's aliases).
    """
    return resolve(client, f"models:/{name}@{alias}")


def _resolve_run(client: MlflowClient, ref: ModelUri) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(str(ref.run_id))
    except MlflowException as err:
        if is_not_found(err):
            raise ModelNotFoundError(
                f"model URI {ref.uri!r}: run {ref.run_id} does not exist"
            ) from err
        raise
    return ModelVersion(uri=ref.uri, run_id=run.info.run_id, requested_uri=ref.uri)


def _resolve_logged(client: MlflowClient, ref: ModelUri) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        logged = client.get_logged_model(str(ref.model_id))
    except MlflowException as err:
        if is_not_found(err):
            raise ModelNotFoundError(
                f"model URI {ref.uri!r}: logged model {ref.model_id} does not exist"
            ) from err
        raise
    return ModelVersion(
        uri=ref.uri, run_id=logged.source_run_id, requested_uri=ref.uri, model_id=ref.model_id
    )


def _registry_entity(client: MlflowClient, ref: ModelUri) -> Any:
    from mlflow.exceptions import MlflowException

    name = str(ref.name)
    try:
        if ref.kind == "alias":
            return client.get_model_version_by_alias(name, str(ref.alias))
        return client.get_model_version(name, str(ref.version))
    except MlflowException as err:
        if not is_not_found(err):
            raise
        registered = registered_model_or_error(client, name)
        if ref.kind == "alias":
            raise ModelNotFoundError(
                f"registered model {name!r} has no alias {ref.alias!r} (its aliases: "
                f"{_known_aliases(registered)}); promote a version first or pass "
                "models:/<name>/<version>"
            ) from err
        raise ModelNotFoundError(f"registered model {name!r} has no version {ref.version}") from err


def resolve(client: MlflowClient, model_uri: str | ModelUri, *, ready: bool = True) -> ModelVersion:
    """Resolve any model URI to the concrete model it names (an alias is read once).

    :param ready: refuse a registry version whose status is not ``READY``.
    :raises ModelUriError: malformed URI.
    :raises ModelNotFoundError: unknown model, version, alias, run or logged model.
    """
    ref = parse_model_uri(model_uri)
    if ref.kind == "run":
        return _resolve_run(client, ref)
    if ref.kind == "logged_model":
        return _resolve_logged(client, ref)
    mv = _registry_entity(client, ref)
    status = str(getattr(mv, "status", "READY") or "READY")
    if ready and status != "READY":
        raise InputError(
            f"model {ref.name!r} version {mv.version} is not ready to load (status {status})"
        )
    return model_version_from_entity(mv, requested_uri=ref.uri, alias=ref.alias)


def alias_holder(
    client: MlflowClient, name: str, alias: str = DEFAULT_ALIAS
) -> ModelVersion | None:
    """The version holding ``@alias`` of ``name``; ``None`` when the registered model or the
    alias does not exist (a cold start). Use :func:`cold_start_reason` to say which."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if is_not_found(err):
            return None
        raise
    return model_version_from_entity(mv, requested_uri=f"models:/{name}@{alias}", alias=alias)


def cold_start_reason(client: MlflowClient, name: str, alias: str = DEFAULT_ALIAS) -> str:
    """Why ``@alias`` of ``name`` has no holder, in words."""
    try:
        registered_model_or_error(client, name)
    except ModelNotFoundError:
        return f"registered model {name!r} does not exist yet"
    return f"registered model {name!r} has no alias {alias!r} yet"


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """MLflow draws a download progress bar on stderr: noise in a task log."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


@dataclass(frozen=True)
class OpenedModel:
    """A downloaded, loaded model: its local directory, MLmodel metadata, flavor and object."""

    local_path: str
    mlmodel: Any
    flavor: Literal["sklearn", "pyfunc"]
    model: Any


def _download(uri: str, directory: str) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        with no_progress_bars():
            return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=directory))
    except MlflowException as err:
        if is_not_found(err):
            raise ModelNotFoundError(f"model {uri}: no artifacts to load ({err})") from err
        raise


@contextlib.contextmanager
def quiet_airflow_deprecations() -> Iterator[None]:
    """Drop the warnings of Airflow's deprecated-attribute shims inside the block.

    Some libraries look an object up in *every* loaded module (``pickle``/skops ``whichmodule``
    for scipy ufuncs); in an Airflow process that touches each deprecated attribute of Airflow's
    compatibility modules and logs one ``DeprecatedImportWarning`` per name (about 1,160 lines
    when skops is imported). Only those warnings are dropped.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The `airflow\.", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"The `airflow\.", category=DeprecationWarning)
        yield


def import_skops() -> Any:
    """``skops.io``, imported quietly: its import resolves the module of every scipy ufunc by
    scanning all loaded modules (see :func:`quiet_airflow_deprecations`), once per process."""
    with quiet_airflow_deprecations():
        import skops.io

    return skops.io


@contextlib.contextmanager
def opened(
    model: ModelVersion | str, *, flavor: Literal["auto", "sklearn", "pyfunc"] = "auto"
) -> Iterator[OpenedModel]:
    """Download a model once and load it: the native scikit-learn object when the model has
    that flavor (and ``flavor`` allows it), else the pyfunc model. The artifacts stay on disk
    for the block (a pyfunc model may read them lazily). A remote store must be active
    (``mlflow_target.activated``).

    :raises ModelNotFoundError: nothing can be downloaded from the URI.
    """
    import mlflow
    from mlflow.models import Model

    uri = model.uri if isinstance(model, ModelVersion) else str(model)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        local = _download(uri, tmp)
        mlmodel = Model.load(local)
        native = flavor == "sklearn" or (flavor == "auto" and "sklearn" in (mlmodel.flavors or {}))
        if native:
            import_skops()  # mlflow imports it to load a skops model; quietly here
        loaded = mlflow.sklearn.load_model(local) if native else mlflow.pyfunc.load_model(local)
        yield OpenedModel(local, mlmodel, "sklearn" if native else "pyfunc", loaded)


def load(model: ModelVersion | str, *, flavor: Literal["auto", "sklearn"] = "auto") -> Any:
    """Load a model that needs nothing on disk once loaded (a scikit-learn model; use
    :func:`opened` for a pyfunc model that reads its artifacts lazily).

    :raises ModelNotFoundError: nothing can be downloaded from the URI.
    """
    with opened(model, flavor=flavor) as handle:
        return handle.model


#: Training run tag naming the label column.
TARGET_TAG = "mlops.target"
#: Training run tag naming the entity (identifier) columns, a JSON list.
ENTITY_COLUMNS_TAG = "mlops.entity_columns"
#: Training run tag naming the Feast feature references (``view:feature``) of the training
#: set, a JSON list (empty when the training data did not come from Feast).
FEATURE_REFS_TAG = "mlops.feature_refs"


@dataclass(frozen=True)
class TrainingRecord:
    """What a model's training run recorded about its data (``None``: not recorded)."""

    run_id: str | None = None
    target: str | None = None
    entity_columns: tuple[str, ...] | None = None
    feature_refs: tuple[str, ...] | None = None


def _names(text: str | None, run_id: str, tag: str) -> tuple[str, ...] | None:
    """A JSON list of names recorded in a run tag (a comma-separated text is accepted)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        log.warning("run %s: tag %s is not a list of names: %r", run_id, tag, text)
        return None
    return tuple(value)


def training_record(client: MlflowClient, run_id: str | None) -> TrainingRecord:
    """The label, entity columns and feature references the training run ``run_id`` recorded
    (an empty record for ``None`` or a run that does not exist)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return TrainingRecord()
    try:
        tags = dict(client.get_run(run_id).data.tags)
    except MlflowException as err:
        if not is_not_found(err):
            raise
        log.warning("training run %s does not exist: nothing recorded", run_id)
        return TrainingRecord(run_id)
    return TrainingRecord(
        run_id,
        target=tags.get(TARGET_TAG) or None,
        entity_columns=_names(tags.get(ENTITY_COLUMNS_TAG), run_id, ENTITY_COLUMNS_TAG),
        feature_refs=_names(tags.get(FEATURE_REFS_TAG), run_id, FEATURE_REFS_TAG),
    )


def input_columns(model_uri: str, model: Any = None) -> list[str]:
    """The raw input columns a model needs: its MLflow signature, else ``feature_names_in_``.

    :raises InputError: the model names neither.
    """
    import mlflow

    try:
        signature = mlflow.models.get_model_info(model_uri).signature
    except Exception:  # a model without MLmodel metadata: fall back to the estimator
        signature = None
    if signature is not None and signature.inputs is not None:
        try:
            names = signature.inputs.input_names()
        except Exception:  # tensor-based schemas have no column names
            names = []
        if names and all(isinstance(n, str) for n in names):
            return [str(n) for n in names]
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    raise InputError(
        f"model {model_uri} has neither an input signature nor feature_names_in_: "
        "cannot tell which columns it needs"
    )
