"""Build a Feast ``RepoConfig`` from a feature repo plus overrides.

``feature_store.yaml`` may use ``${VAR}`` placeholders. Besides the environment, the placeholders
``${MLOPS_HOME}``, ``${MLOPS_DATA_ROOT}`` and ``${FEAST_REPO_PATH}`` are always defined (from
:mod:`mlops_provider.core.config`), so the embedded default keeps its registry and SQLite online
store under ``$AIRFLOW_HOME/mlops`` without anyone exporting variables.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InputError

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

__all__ = [
    "FeastRepoError",
    "resolve_repo_path",
    "load_repo_config",
    "make_feature_store",
    "probe_repo",
]


class FeastRepoError(InputError):
    """The feature repo or its configuration is missing or invalid."""


def resolve_repo_path(repo_path: str | os.PathLike[str] | None) -> Path:
    """Absolute feature repo path; default :func:`config.default_feature_repo`."""
    from mlops_provider.core import config

    path = Path(repo_path).expanduser() if repo_path else config.default_feature_repo()
    path = path.resolve()
    if not path.is_dir():
        raise FeastRepoError(f"Feast feature repo {path} does not exist or is not a directory")
    if not (path / "feature_store.yaml").is_file():
        raise FeastRepoError(f"Feast feature repo {path} has no feature_store.yaml")
    return path


def _placeholders(repo_path: Path) -> dict[str, str]:
    from mlops_provider.core import config

    values = dict(os.environ)
    values.setdefault("MLOPS_HOME", str(config.mlops_home()))
    values.setdefault("MLOPS_DATA_ROOT", str(config.data_root()))
    values["FEAST_REPO_PATH"] = str(repo_path)
    return values


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        # A block of another ``type`` (a redis online_store over the sqlite default) replaces
        # the base block: the old type's options (e.g. sqlite's ``path``) are invalid for it.
        if (
            isinstance(value, Mapping)
            and isinstance(current, dict)
            and value.get("type", current.get("type")) == current.get("type")
        ):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def parse_overrides(overrides: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Overrides as given in a connection extra: a mapping, or YAML/JSON text."""
    if not overrides:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    import yaml

    try:
        value = yaml.safe_load(overrides)
    except yaml.YAMLError as err:
        raise FeastRepoError(
            f"feature_store.yaml overrides are not valid YAML/JSON: {err}"
        ) from err
    if not isinstance(value, dict):
        raise FeastRepoError(f"feature_store.yaml overrides must be a mapping, got {value!r}")
    return value


def load_raw_config(
    repo_path: str | os.PathLike[str] | None,
    overrides: str | Mapping[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The repo's ``feature_store.yaml`` with placeholders expanded and overrides merged in."""
    import yaml

    path = resolve_repo_path(repo_path)
    text = (path / "feature_store.yaml").read_text()
    expanded = string.Template(text).safe_substitute(_placeholders(path))
    try:
        raw = yaml.safe_load(expanded) or {}
    except yaml.YAMLError as err:
        raise FeastRepoError(f"{path / 'feature_store.yaml'} is not valid YAML: {err}") from err
    return path, _deep_merge(raw, parse_overrides(overrides))


def load_repo_config(
    repo_path: str | os.PathLike[str] | None,
    overrides: str | Mapping[str, Any] | None = None,
    *,
    prepare: bool = True,
) -> RepoConfig:
    """A validated ``RepoConfig``; with ``prepare``, local registry/online-store directories
    are created."""
    from feast.repo_config import RepoConfig

    path, raw = load_raw_config(repo_path, overrides)
    try:
        repo_config = RepoConfig(repo_path=path, **raw)
    except Exception as err:  # pydantic's ValidationError and Feast's own config errors
        raise FeastRepoError(f"Invalid Feast configuration for repo {path}: {err}") from err
    if prepare:
        _prepare_local_paths(raw, path)
    return repo_config


def probe_repo(
    repo_path: str | os.PathLike[str] | None,
    overrides: str | Mapping[str, Any] | None = None,
) -> tuple[bool, str]:
    """Check a feature repo without side effects (what a connection "Test" does): its
    configuration loads, and a file registry (local, ``s3://``, ``gs://``) exists and is read.
    Nothing is created: no directory, no registry (Feast's own loading creates an empty one).
    A ``sql`` or remote registry is not opened (that would create its tables).

    :returns: ``(ok, message)``; the message names the repo, the registry and what is wrong.
    """
    try:
        config = load_repo_config(repo_path, overrides, prepare=False)
    except FeastRepoError as err:
        return False, str(err)
    registry = config.registry
    where = f"Feast repo {config.repo_path} ({config.provider} provider, online store {config.online_store.type})"
    kind = getattr(registry, "registry_type", "file")
    if kind != "file":
        return True, f"{where}: configuration valid; the {kind} registry is not opened by a test"
    from feast.infra.registry.registry import (
        get_registry_store_class_from_scheme,
        get_registry_store_class_from_type,
    )

    try:
        store_class = (
            get_registry_store_class_from_type(str(registry.registry_store_type))
            if registry.registry_store_type
            else get_registry_store_class_from_scheme(registry.path)
        )
        proto = store_class(registry, Path(config.repo_path)).get_registry_proto()
    except FileNotFoundError:
        return False, (
            f"{where}: no registry at {registry.path} yet (apply the repo first: "
            "FeastApplyOperator or feast apply); a test creates nothing"
        )
    except Exception as err:  # the stores' own errors vary (S3 access, bucket missing)
        return False, f"{where}: registry {registry.path} cannot be read: {err}"
    views = [v for v in proto.feature_views if v.spec.project == config.project]
    return True, f"{where}: registry {registry.path}, {len(views)} feature views"


def _prepare_local_paths(raw: Mapping[str, Any], repo_path: Path) -> None:
    candidates: list[Any] = []
    registry = raw.get("registry")
    candidates.append(registry.get("path") if isinstance(registry, Mapping) else registry)
    online = raw.get("online_store")
    if isinstance(online, Mapping) and online.get("type", "sqlite") == "sqlite":
        candidates.append(online.get("path"))
    for candidate in candidates:
        if not isinstance(candidate, str) or "://" in candidate:
            continue
        target = Path(candidate)
        if not target.is_absolute():
            target = repo_path / target
        target.parent.mkdir(parents=True, exist_ok=True)


def make_feature_store(
    repo_path: str | os.PathLike[str] | None,
    overrides: str | Mapping[str, Any] | None = None,
) -> FeatureStore:
    """A ``FeatureStore`` for the repo with placeholders expanded and overrides applied."""
    return store_from_config(load_repo_config(repo_path, overrides))


def store_from_config(repo_config: RepoConfig) -> FeatureStore:
    """A ``FeatureStore`` of a loaded configuration that keeps serving while it materializes.

    Feast moves a feature view to ``MATERIALIZING`` in the shared registry for the whole of a
    materialization and then refuses every online *and* historical read of it (Feast issue
    6780): a training set or a realtime request that coincides with the daily materialization
    would fail. Feast's ``serve_features_while_materializing`` keeps the last values readable;
    it is the provider's default unless the repo's ``registry`` block sets it. (Set in the
    registry block it also makes Feast warn, on every configuration parse, that it targets SQL
    registries; the flag is honoured by the file registry too.)
    """
    from feast import FeatureStore

    store = FeatureStore(config=repo_config, repo_path=str(repo_config.repo_path))
    raw = getattr(repo_config, "registry_config", None)
    if not (isinstance(raw, Mapping) and "serve_features_while_materializing" in raw):
        store.registry.serve_features_while_materializing = True
    return store


def describe(overrides: Mapping[str, Any]) -> str:
    """A log-safe one-line rendering of overrides (values of secret-looking keys hidden)."""
    hidden = {"password", "token", "secret", "connection_string"}

    def scrub(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                k: ("***" if any(h in str(k).lower() for h in hidden) else scrub(v))
                for k, v in value.items()
            }
        return value

    return json.dumps(scrub(overrides), sort_keys=True, default=str)
