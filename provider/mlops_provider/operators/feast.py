"""Operators for the Feast feature store: apply definitions, materialize, training sets.

Each operator resolves the feature store through :class:`~mlops_provider.hooks.feast.FeastHook`
and calls one function of :mod:`mlops_provider.core.features`; see ``docs/feast.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import FeatureStoreError
from mlops_provider.hooks.feast import FeastHook

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["FeastApplyOperator", "FeastMaterializeOperator", "FeastTrainingDatasetOperator"]


@contextlib.contextmanager
def _feature_store_errors(what: str) -> Iterator[None]:
    """Re-raise input and repo errors from core as ``FeatureStoreError`` (message kept)."""
    from mlops_provider.core import io
    from mlops_provider.core.features import FeastRepoError, FeatureRequestError

    try:
        yield
    except (FeatureRequestError, FeastRepoError, io.DatasetError) as err:
        raise FeatureStoreError(f"{what}: {err}") from err


class _FeastOperator(BaseOperator):
    """Shared hook handling of the Feast operators."""

    def __init__(
        self,
        *,
        feast_conn_id: str = FeastHook.default_conn_name,
        repo_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id
        self.repo_path = repo_path

    @cached_property
    def hook(self) -> FeastHook:
        return FeastHook(self.feast_conn_id, repo_path=self.repo_path or None)


class FeastApplyOperator(_FeastOperator):
    """Apply a feature repo's definitions to its registry and online store (``feast apply``).

    The repo's Python definition files are parsed with Feast's own repo parser and applied as
    a whole: objects no longer defined are removed, as ``feast apply`` does. Idempotent: a
    rerun with unchanged definitions changes nothing. Definitions are re-imported on every
    run, so paths they compute (the published feature source under the data root) follow the
    environment that runs the task.

    :param feast_conn_id: Feast connection (templated), default ``feast_default``.
    :param repo_path: feature repo directory (templated); default: the connection's, else
        ``include/feature_repo``.

    XCom: ``{"project", "repo_path", "entities", "data_sources", "feature_views",
    "on_demand_feature_views", "feature_services", "changed", "changes"}``.

    :raises FeatureStoreError: the repo does not exist, has no definitions, or its
        definitions fail to import.
    """

    template_fields: Sequence[str] = ("feast_conn_id", "repo_path")
    ui_color = "#e8f1fb"

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import features

        with _feature_store_errors("Feast apply failed"):
            store = self.hook.store
            result = features.apply_repo(store)
        self.log.info(
            "Project %s: %s", result["project"], "; ".join(result["changes"]) or "no changes"
        )
        return result


class FeastMaterializeOperator(_FeastOperator):
    """Materialize a time window of feature views into the online store.

    The window defaults to the run's data interval. It is processed in chunks (bounded memory,
    progress logged per chunk) in time order, so the newest row per entity wins. A rerun of the
    same window converges to the same online state; a window ending before what was already
    materialized replays the newer span afterwards when the online store overwrites blindly
    (SQLite), so backfills in any order end in the same state (``restore_newer``).

    :param feature_views: feature view names (templated); default: every online view.
    :param start: window start (templated; datetime or ISO string); default
        ``data_interval_start``.
    :param end: window end (templated; datetime or ISO string); default ``data_interval_end``.
        An end in the future is refused.
    :param chunk: chunk length (timedelta or seconds), default one day.
    :param restore_newer: replay ``[end, previous materialized end]`` after a backfill.
    :param feast_conn_id: Feast connection (templated), default ``feast_default``.
    :param repo_path: feature repo directory (templated), see :class:`FeastApplyOperator`.
    :param aws_conn_id: storage connection used to count rows of ``s3://`` sources (templated).

    XCom: ``{"project", "views", "window": {"start", "end"}, "chunks", "chunk_seconds",
    "rows_written", "source_rows", "rows_by_view", "unbounded_ttl_views", "replayed",
    "online_store"}``. ``source_rows`` counts the source rows with ``start <= timestamp <= end``
    per chunk (what the file offline store reads), ``rows_written`` the distinct entity keys
    per chunk (the online writes); both ``None`` when the source is not a countable file
    source. ``unbounded_ttl_views`` lists views with ``ttl=0`` (values never expire).

    :raises FeatureStoreError: end in the future, empty window, unknown feature view (the
        known ones are listed), offline-only view, no published feature data.
    """

    template_fields: Sequence[str] = (
        "feature_views",
        "start",
        "end",
        "feast_conn_id",
        "repo_path",
        "aws_conn_id",
    )
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        feature_views: Sequence[str] | str | None = None,
        start: Any = None,
        end: Any = None,
        chunk: timedelta | float = timedelta(days=1),
        restore_newer: bool = True,
        feast_conn_id: str = FeastHook.default_conn_name,
        repo_path: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(feast_conn_id=feast_conn_id, repo_path=repo_path, **kwargs)
        self.feature_views = feature_views
        self.start = start
        self.end = end
        self.chunk = chunk
        self.restore_newer = restore_newer
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import features

        start = self.start if self.start not in (None, "") else context["data_interval_start"]
        end = self.end if self.end not in (None, "") else context["data_interval_end"]
        if start is None or end is None:
            raise FeatureStoreError(
                "Feast materialization needs a window: the run has no data interval, so pass "
                "start and end"
            )
        views = [self.feature_views] if isinstance(self.feature_views, str) else self.feature_views
        with _feature_store_errors("Feast materialization refused"):
            result = features.materialize(
                self.hook.store,
                start,
                end,
                views=list(views) if views else None,
                chunk=self.chunk,
                restore_newer=self.restore_newer,
                conn_id=self.aws_conn_id,
            )
        if result["unbounded_ttl_views"]:
            self.log.warning(
                "Feature view(s) %s have ttl=0: their values never expire",
                result["unbounded_ttl_views"],
            )
        self.log.info(
            "Materialized %s over [%s, %s] in %d chunk(s): %s source rows, %s online writes",
            result["views"],
            result["window"]["start"],
            result["window"]["end"],
            result["chunks"],
            result["source_rows"],
            result["rows_written"],
        )
        return result


class FeastTrainingDatasetOperator(_FeastOperator):
    """Build a point-in-time correct training set and write it to a URI.

    Entity data (entity keys, ``event_timestamp``, labels and any other columns) is joined with
    feature values as of each row's timestamp through Feast's ``get_historical_features``; a
    feature value from after a row's timestamp never reaches that row. The output has one row
    per entity row, in input order (null features where no value existed yet), and is written
    as one parquet file atomically (a rerun replaces it).

    :param entity_data: URI of the entity data (templated).
    :param output_uri: URI of the parquet file to write (templated).
    :param features: feature references ``view:feature`` (templated); or
    :param feature_service: a feature service name (templated), e.g. ``churn_model``.
    :param label_columns: columns that must be present in the entity data (templated).
    :param timestamp_column: the entity data's timestamp column, default ``event_timestamp``.
    :param feast_conn_id: Feast connection (templated), default ``feast_default``.
    :param repo_path: feature repo directory (templated).
    :param aws_conn_id: storage connection for ``s3://`` URIs (templated).

    XCom: ``{"uri", "row_count", "entity_rows", "rows_without_features", "feature_refs",
    "feature_service", "columns", "digest", "entity_data", "project"}``.

    :raises FeatureStoreError: missing entity/timestamp/label columns (named), unknown feature
        references (named, with the known ones), unknown feature service, empty or missing
        entity data, both or neither of ``features``/``feature_service``.
    """

    template_fields: Sequence[str] = (
        "entity_data",
        "output_uri",
        "features",
        "feature_service",
        "label_columns",
        "feast_conn_id",
        "repo_path",
        "aws_conn_id",
    )
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        entity_data: str,
        output_uri: str,
        features: Sequence[str] | None = None,
        feature_service: str | None = None,
        label_columns: Sequence[str] | None = None,
        timestamp_column: str = "event_timestamp",
        feast_conn_id: str = FeastHook.default_conn_name,
        repo_path: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(feast_conn_id=feast_conn_id, repo_path=repo_path, **kwargs)
        self.entity_data = entity_data
        self.output_uri = output_uri
        self.features = features
        self.feature_service = feature_service
        self.label_columns = label_columns
        self.timestamp_column = timestamp_column
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import features

        refs = [self.features] if isinstance(self.features, str) else self.features
        labels = [self.label_columns] if isinstance(self.label_columns, str) else self.label_columns
        with _feature_store_errors("Training set not built"):
            result = features.create_training_dataset(
                self.hook.store,
                self.entity_data,
                self.output_uri,
                features=list(refs) if refs else None,
                feature_service=self.feature_service or None,
                label_columns=list(labels) if labels else None,
                timestamp_column=self.timestamp_column,
                conn_id=self.aws_conn_id,
            )
        self.log.info(
            "Wrote %d rows x %d features to %s (digest %s)",
            result["row_count"],
            len(result["feature_refs"]),
            result["uri"],
            result["digest"],
        )
        return result
