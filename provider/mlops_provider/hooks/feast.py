"""Hook for a Feast feature store."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_provider.hooks._connection import (
    TEXT,
    TEXT_OR_MAPPING,
    optional_connection,
    typed_extra,
)

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig


#: The extras of a ``feast`` connection and their kinds (parsed strictly).
EXTRA_FIELDS = {"repo_path": TEXT, "feature_store_yaml": TEXT_OR_MAPPING}


class FeastHook(BaseHook):
    """Open a Feast ``FeatureStore`` for a feature repo.

    The repo path comes from the ``repo_path`` argument, else the connection's extra
    ``repo_path``, else ``$MLOPS_FEATURE_REPO``, else the project's ``include/feature_repo``.
    Overrides (extra ``feature_store_yaml``, YAML or JSON text, or the ``overrides`` argument)
    are merged over the repo's ``feature_store.yaml``, e.g. to point the online store at Redis.

    :param feast_conn_id: connection id (conn type ``feast``), default ``feast_default``; a
        missing default connection is not an error.
    :param repo_path: overrides the connection's repo path.
    :param overrides: mapping merged over ``feature_store.yaml`` (after the connection's own).
    :raises FeastRepoError: the repo does not exist or its configuration is invalid.
    """

    conn_name_attr = "feast_conn_id"
    default_conn_name = "feast_default"
    conn_type = "feast"
    hook_name = "Feast"

    def __init__(
        self,
        feast_conn_id: str = default_conn_name,
        *,
        repo_path: str | None = None,
        overrides: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id
        self._repo_path = repo_path
        self._overrides = overrides

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Field labels for the connection form."""
        from mlops_provider.get_provider_info import ui_field_behaviour

        return ui_field_behaviour(cls.conn_type)

    @cached_property
    def _settings(self) -> tuple[Path, dict[str, Any]]:
        from mlops_provider.core.feast_config import describe, parse_overrides, resolve_repo_path

        conn = optional_connection(self, self.feast_conn_id, self.default_conn_name)
        extra = typed_extra(conn, EXTRA_FIELDS) if conn is not None else {}
        repo = self._repo_path or extra.get("repo_path") or None
        overrides = parse_overrides(extra.get("feature_store_yaml"))
        overrides.update(self._overrides or {})
        path = resolve_repo_path(repo)
        source = "argument" if self._repo_path else ("connection" if repo else "default")
        self.log.info("Feast repo %s (from %s), overrides %s", path, source, describe(overrides))
        return path, overrides

    @property
    def repo_path(self) -> Path:
        """The resolved feature repo directory."""
        return self._settings[0]

    @cached_property
    def repo_config(self) -> RepoConfig:
        """The repo's configuration with placeholders expanded and overrides applied."""
        from mlops_provider.core.feast_config import load_repo_config

        path, overrides = self._settings
        return load_repo_config(path, overrides)

    @cached_property
    def store(self) -> FeatureStore:
        """A ``FeatureStore`` for the repo (serving while it materializes:
        :func:`~mlops_provider.core.feast_config.store_from_config`)."""
        from mlops_provider.core.feast_config import store_from_config

        return store_from_config(self.repo_config)

    def get_conn(self) -> FeatureStore:
        """Airflow's generic accessor: the ``FeatureStore``."""
        return self.store

    def test_connection(self) -> tuple[bool, str]:
        """Load the configuration and read the registry, creating nothing (Feast's own
        loading would create an empty registry and the local store directories)."""
        from mlops_provider.core.feast_config import probe_repo

        try:
            path, overrides = self._settings
        except Exception as err:  # a bad connection is a test result
            return False, f"Feast repo {self._repo_path or 'default'}: {err}"
        return probe_repo(path, overrides)
