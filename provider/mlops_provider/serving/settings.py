"""The settings of the realtime service (:class:`ServingSettings`) and where MLflow lives."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InputError

if TYPE_CHECKING:
    from datetime import datetime

    from mlops_provider.core.mlflow_target import MlflowTarget

__all__ = ["ENV_PREFIX", "ServingSettings", "ServingSettingsError"]

#: Prefix of the environment variables :meth:`ServingSettings.from_env` reads.
ENV_PREFIX = "MLOPS_SERVING_"
MIB = 1024 * 1024


class ServingSettingsError(InputError):
    """A setting of the service is invalid (the message names the setting and the value)."""


def _float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError as err:
        raise ServingSettingsError(f"{ENV_PREFIX}{name}={value!r} is not a number") from err


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as err:
        raise ServingSettingsError(f"{ENV_PREFIX}{name}={value!r} is not an integer") from err


def _bool(name: str, value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ServingSettingsError(f"{ENV_PREFIX}{name} must be true or false, got {value!r}")


def _refs(name: str, value: str) -> tuple[str, ...]:
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as err:
            raise ServingSettingsError(f"{ENV_PREFIX}{name} is not a JSON list: {err}") from err
        return tuple(str(i) for i in items)
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class ServingSettings:
    """What the service serves and how (every field has an ``MLOPS_SERVING_<FIELD>`` variable).

    :param model_name: registered model name (e.g. ``churn``).
    :param alias: the alias served and polled (default ``champion``).
    :param model_uri: a concrete ``models:/<name>/<version>`` to serve instead of the alias
        (pins the service: the alias is not polled).
    :param tracking_uri: MLflow tracking URI; default ``MLFLOW_TRACKING_URI``, else the
        provider's MLflow connection ``mlflow_conn_id`` when Airflow is importable, else the
        embedded default store.
    :param registry_uri: MLflow registry URI (default: the tracking URI).
    :param mlflow_conn_id: the Airflow connection used when no URI is given.
    :param feature_repo: Feast feature repo path for ``entities`` requests (``None``: rows only).
    :param feature_store_overrides: Feast ``feature_store.yaml`` overrides (a mapping or the
        JSON/YAML text), e.g. a Redis online store.
    :param feature_refs: Feast references (``view:feature``) to look up, overriding the ones
        the training run recorded (tag ``mlops.feature_refs``).
    :param entity_columns: the id columns echoed in answers and logged with each prediction,
        overriding what the training run recorded (``mlops.entity_columns``).
    :param prediction_log_uri: where sampled predictions are written (``None``: off).
    :param log_sample_rate: share of requests logged, 0..1.
    :param log_flush_rows: buffered rows that trigger a flush of the prediction log.
    :param log_flush_seconds: seconds after which buffered rows are flushed.
    :param admin_token: bearer token of ``POST /admin/reload`` (``None``: reload disabled).
    :param alias_poll_seconds: how often the alias is re-resolved (0: never).
    :param max_rows: most rows or entities in one request.
    :param max_body_bytes: largest request body.
    :param aws_conn_id: connection for an ``s3://`` prediction log.
    :param model_threads: native threads (OpenMP, BLAS) of one model call (default 1: requests
        are many and small; ``0`` leaves the libraries' defaults).
    :param micro_batching: predict concurrent requests of one model with one call (default on;
        see :mod:`mlops_provider.serving.batching`).
    :param readiness_cache_seconds: how long a feature store check is reused by ``/readyz``.
    :param clock: the request time (default: now, UTC); a simulation or a replay sets its own
        (the prediction log's day comes from it). Not read from the environment.
    :raises ServingSettingsError: (``validate``/``from_env``) an invalid value, named.
    """

    model_name: str
    alias: str = "champion"
    model_uri: str | None = None
    tracking_uri: str | None = None
    registry_uri: str | None = None
    mlflow_conn_id: str = "mlflow_default"
    feature_repo: str | None = None
    feature_store_overrides: str | Mapping[str, Any] | None = None
    feature_refs: Sequence[str] | None = None
    entity_columns: Sequence[str] | None = None
    prediction_log_uri: str | None = None
    log_sample_rate: float = 1.0
    log_flush_rows: int = 10_000
    log_flush_seconds: float = 60.0
    admin_token: str | None = field(default=None, repr=False)
    alias_poll_seconds: float = 30.0
    max_rows: int = 1000
    max_body_bytes: int = MIB
    aws_conn_id: str | None = None
    readiness_cache_seconds: float = 5.0
    model_threads: int = 1
    micro_batching: bool = True
    clock: Callable[[], datetime] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the values.

        :raises ServingSettingsError: the first invalid value, named.
        """
        if not self.model_name and not self.model_uri:
            raise ServingSettingsError("model_name is required (or a model_uri)")
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise ServingSettingsError(
                f"log_sample_rate must be within 0..1, got {self.log_sample_rate}"
            )
        for name in ("max_rows", "max_body_bytes", "log_flush_rows"):
            if getattr(self, name) < 1:
                raise ServingSettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.model_threads < 0:
            raise ServingSettingsError(f"model_threads must be >= 0, got {self.model_threads}")
        for name in ("alias_poll_seconds", "log_flush_seconds", "readiness_cache_seconds"):
            if getattr(self, name) < 0:
                raise ServingSettingsError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.model_uri and not str(self.model_uri).startswith(("models:/", "runs:/")):
            raise ServingSettingsError(
                f"model_uri must be models:/<name>/<version> (or runs:/...), got {self.model_uri!r}"
            )

    @property
    def pinned(self) -> bool:
        """Whether a concrete model URI was given (the alias is then not polled)."""
        return bool(self.model_uri)

    @property
    def requested_uri(self) -> str:
        """``model_uri``, else ``models:/<model_name>@<alias>``."""
        return self.model_uri or f"models:/{self.model_name}@{self.alias}"

    def replace(self, **changes: Any) -> ServingSettings:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServingSettings:
        """Settings from ``MLOPS_SERVING_<FIELD>`` variables (``MLOPS_SERVING_MODEL_NAME``,
        ``..._ALIAS``, ``..._MODEL_URI``, ``..._TRACKING_URI``, ``..._FEATURE_REPO``,
        ``..._FEATURE_REFS`` (JSON list or comma separated), ``..._PREDICTION_LOG_URI``,
        ``..._LOG_SAMPLE_RATE``, ``..._ADMIN_TOKEN``, ``..._ALIAS_POLL_SECONDS``,
        ``..._MAX_ROWS``, ``..._MAX_BODY_BYTES``, ...); ``overrides`` (not ``None``) win.

        :raises ServingSettingsError: a value that does not parse, or no model name.
        """
        env = os.environ if environ is None else environ
        parsers: dict[str, Callable[[str, str], Any]] = {}
        for f in dataclasses.fields(cls):
            if f.name == "clock":
                continue
            kind = str(f.type)
            if kind.startswith("float"):
                parsers[f.name] = _float
            elif kind.startswith("int"):
                parsers[f.name] = _int
            elif kind.startswith("bool"):
                parsers[f.name] = _bool
            elif f.name in ("feature_refs", "entity_columns"):
                parsers[f.name] = _refs
            else:
                parsers[f.name] = lambda _name, value: value
        values: dict[str, Any] = {}
        for name, parse in parsers.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw.strip() != "":
                values[name] = parse(name.upper(), raw.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("model_name", "")
        return cls(**values)

    def mlflow_target(self) -> MlflowTarget:
        """Where MLflow lives: ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else (Airflow
        importable) the connection ``mlflow_conn_id`` through ``MlflowHook``, else the embedded
        default store."""
        from mlops_provider.core.mlflow_target import MlflowTarget

        registry = self.registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or None
        if self.tracking_uri:
            return MlflowTarget(self.tracking_uri, registry, source="serving settings")
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return MlflowTarget(os.environ["MLFLOW_TRACKING_URI"], registry, source="environment")
        try:
            from mlops_provider.hooks.mlflow import MlflowHook
        except ImportError:  # no Airflow: the embedded default store
            from mlops_provider.core import config

            return MlflowTarget(
                config.embedded_mlflow_tracking_uri(),
                registry,
                artifact_location=config.embedded_mlflow_artifact_root(),
                source="embedded default",
            )
        return MlflowHook(self.mlflow_conn_id, registry_uri=registry).target
