"""Operators for the Feast feature store: apply definitions, materialize, training sets.

Each operator opens the feature store through the base operator's
:attr:`~mlops_provider.operators._base.MlopsBaseOperator.feast_hook` (``feast_conn_id`` and
``repo_path``) and calls one function of :mod:`mlops_provider.core.features`; see
``docs/feast.md``. A core error (an unknown view, a missing repo, unreadable entity data)
becomes :class:`~mlops_provider.exceptions.FeatureStoreError` with the core message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from mlops_provider.exceptions import FeatureStoreError
from mlops_provider.operators._base import AWS_CONN_ID, FEAST_CONN_ID, MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "FeastApplyOperator",
    "FeastMaterializeOperator",
    "FeastTrainingDatasetOperator",
    "FeatureStoreError",
]


class _FeastOperator(MlopsBaseOperator):
    """The connections every Feast operator has; core errors become ``FeatureStoreError``."""

    error_class = FeatureStoreError
    #: Prefix of the error message, e.g. "Feast apply failed".
    failure: ClassVar[str] = "Feast operation failed"
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        feast_conn_id: str = FEAST_CONN_ID,
        repo_path: str | None = None,
        aws_conn_id: str | None = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id
        self.repo_path = repo_path
        self.aws_conn_id = aws_conn_id

    def error_message(self, err: Exception) -> str:
        return f"{self.failure}: {err}"

    def _served_views_lineage(self, views_key: str, rows_key: str | None = None) -> Any:
        """OpenLineage of an operator that writes feature views as served (``feast://<project>``,
        with their schema), their file sources as inputs: the views of ``result[views_key]``,
        with the rows per view of ``result[rows_key]`` when given."""
        from mlops_provider.lineage import Lineage, add_feature_views, operator_result

        result = operator_result(self)
        if not result.get("project"):
            return Lineage.of(self).build()
        return add_feature_views(
            Lineage.of(self),
            self.feast_hook.store,
            result["project"],
            result.get(views_key) or [],
            served=True,
            rows_by_view=result.get(rows_key) if rows_key else None,
        ).build()


class FeastApplyOperator(_FeastOperator):
    """Apply a feature repo's definitions to its registry and online store (``feast apply``).

    The repo's Python definition files are parsed with Feast's own repo parser and applied as
    a whole: objects no longer defined are removed, as ``feast apply`` does. Idempotent: a
    rerun with unchanged definitions changes nothing. Definitions are re-imported on every
    run, so paths they compute (the published feature source under the data root) follow the
    environment that runs the task.

    :param feast_conn_id: Feast connection (templated), default ``feast_default``.
    :param repo_path: feature repo directory (templated); default: the connection's, else
        ``$MLOPS_FEATURE_REPO``.
    :param aws_conn_id: storage connection (templated), default ``aws_default``; unused by the
        apply itself, accepted like every operator of the provider.

    **XCom**: the common result keys (docs/results.md): ``status`` ``applied``, ``passed``
    ``True``, ``reasons`` ``[]``, ``model`` / ``mlflow_run_id`` / ``report_uri`` / ``rows``
    ``None``; then ``project``, ``repo_path``, ``entities``, ``data_sources``,
    ``feature_views``, ``on_demand_feature_views``, ``feature_services``, ``changed`` (bool),
    ``changes`` (e.g. ``"create feature view customer_activity"``). No deprecated keys.

    :raises FeatureStoreError: the repo does not exist, has no definitions, or its
        definitions fail to import.
    """

    template_fields: Sequence[str] = ("feast_conn_id", "repo_path", "aws_conn_id")
    failure = "Feast apply failed"

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import features

        result = features.apply_repo(self.feast_hook.store)
        self.log.info(
            "Project %s: %s", result["project"], "; ".join(result["changes"]) or "no changes"
        )
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the feature views' file sources as inputs; the
        feature views (``feast://<project>``, with their schema) as outputs."""
        return self._served_views_lineage("feature_views")


class FeastMaterializeOperator(_FeastOperator):
    """Materialize a time window of feature views into the online store.

    The window defaults to the run's data interval. A manual run, and a run of a cron schedule
    (Airflow 3's default ``CronTriggerTimetable``), has a point interval
    (``data_interval_start == data_interval_end``): its default window is empty and is refused
    before anything is materialized; pass ``start`` and ``end`` (templates, e.g.
    ``start="{{ macros.ds_add(ds, -1) }}", end="{{ ds }}"``) or schedule the DAG with
    ``CronDataIntervalTimetable``. The window is processed in chunks (bounded memory,
    progress logged per chunk) in time order, so the newest row per entity wins. A rerun of the
    same window converges to the same online state; a window ending before what was already
    materialized replays the newer span afterwards when the online store overwrites blindly
    (SQLite), so backfills in any order end in the same state (``restore_newer``).

    :param feature_views: feature view names (templated; a name, a list, or its JSON text);
        default: every online view.
    :param start: window start (templated; datetime or ISO string); default
        ``data_interval_start``.
    :param end: window end (templated; datetime or ISO string); default ``data_interval_end``.
        An end in the future is refused.
    :param chunk: chunk length (timedelta or seconds), default one day.
    :param restore_newer: replay ``[end, previous materialized end]`` after a backfill.
    :param feast_conn_id: Feast connection (templated), default ``feast_default``.
    :param repo_path: feature repo directory (templated), see :class:`FeastApplyOperator`.
    :param aws_conn_id: storage connection used to count rows of ``s3://`` sources
        (templated), default ``aws_default``.

    **XCom**: the common result keys (docs/results.md): ``status`` ``materialized``,
    ``passed`` ``True``, ``reasons`` (views with ``ttl=0``, a replay), ``rows`` = source rows
    read (as ``source_rows``), ``model`` / ``mlflow_run_id`` / ``report_uri`` ``None``; then
    ``project``, ``views``, ``window`` (``start``, ``end``), ``chunks``, ``chunk_seconds``,
    ``rows_written``, ``source_rows``, ``rows_by_view``, ``unbounded_ttl_views``,
    ``replayed``, ``online_store``. ``source_rows`` counts the source rows with
    ``start <= timestamp <= end`` per chunk (what the file offline store reads),
    ``rows_written`` the distinct entity keys per chunk (the online writes); both ``None``
    when the source is not a countable file source. ``unbounded_ttl_views`` lists views with
    ``ttl=0`` (values never expire). No deprecated keys.

    :raises FeatureStoreError: end in the future, empty window (a point data interval names
        the interval and the fix), no window (a run without a data interval and no
        ``start``/``end``), unknown feature view (the known ones are listed), offline-only
        view, no published feature data.
    """

    template_fields: Sequence[str] = (
        "feature_views",
        "start",
        "end",
        "feast_conn_id",
        "repo_path",
        "aws_conn_id",
    )
    failure = "Feast materialization refused"

    def __init__(
        self,
        *,
        feature_views: Sequence[str] | str | None = None,
        start: Any = None,
        end: Any = None,
        chunk: timedelta | float = timedelta(days=1),
        restore_newer: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feature_views = feature_views
        self.start = start
        self.end = end
        self.chunk = chunk
        self.restore_newer = restore_newer

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import features
        from mlops_provider.core.params import as_bool, as_list

        start, end = features.materialization_window(
            self.start, self.end, *self.data_interval(context)
        )
        result = features.materialize(
            self.feast_hook.store,
            start,
            end,
            views=as_list(self.feature_views, "feature_views"),
            chunk=self.chunk,
            restore_newer=bool(as_bool(self.restore_newer, "restore_newer", default=True)),
            conn_id=self.aws_conn_id,
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

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the views' file sources as inputs (source rows
        read); the views as served online (``feast://<project>``) as outputs (online writes)."""
        return self._served_views_lineage("views", rows_key="rows_by_view")


class FeastTrainingDatasetOperator(_FeastOperator):
    """Build a point-in-time correct training set and write it to a URI.

    Entity data (entity keys, ``event_timestamp``, labels and any other columns) is joined with
    feature values as of each row's timestamp through Feast's ``get_historical_features``; a
    feature value from after a row's timestamp never reaches that row. The output has one row
    per entity row, in input order (null features where no value existed yet), and is written
    as one parquet file atomically (a rerun replaces it).

    :param entity_data: URI of the entity data (templated).
    :param output_uri: URI of the parquet file to write (templated).
    :param features: feature references ``view:feature`` (templated; a list, its JSON text or
        one reference); or
    :param feature_service: a feature service name (templated), e.g. ``churn_model``.
    :param label_columns: columns that must be present in the entity data (templated).
    :param timestamp_column: the entity data's timestamp column, default ``event_timestamp``.
    :param feast_conn_id: Feast connection (templated), default ``feast_default``.
    :param repo_path: feature repo directory (templated).
    :param aws_conn_id: storage connection for ``s3://`` URIs (templated), default
        ``aws_default``; unused for local paths.

    **XCom**: the common result keys (docs/results.md): ``status`` ``written``, ``passed``
    ``True``, ``reasons`` (how many rows have no feature values at their time), ``rows`` =
    rows written, ``model`` / ``mlflow_run_id`` / ``report_uri`` ``None``; then ``uri``,
    ``row_count``, ``entity_rows``, ``rows_without_features``, ``feature_refs``,
    ``feature_service``, ``columns``, ``digest``, ``entity_data``, ``project``.

    **Deprecated keys** (kept for one release): ``row_count`` (use ``rows``).

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
    failure = "Training set not built"

    def __init__(
        self,
        *,
        entity_data: str,
        output_uri: str,
        features: Sequence[str] | None = None,
        feature_service: str | None = None,
        label_columns: Sequence[str] | None = None,
        timestamp_column: str = "event_timestamp",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entity_data = entity_data
        self.output_uri = output_uri
        self.features = features
        self.feature_service = feature_service
        self.label_columns = label_columns
        self.timestamp_column = timestamp_column

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import features
        from mlops_provider.core.params import as_list, as_str

        result = features.create_training_dataset(
            self.feast_hook.store,
            as_str(self.entity_data, "entity_data") or "",
            as_str(self.output_uri, "output_uri") or "",
            features=as_list(self.features, "features"),
            feature_service=as_str(self.feature_service, "feature_service"),
            label_columns=as_list(self.label_columns, "label_columns"),
            timestamp_column=as_str(self.timestamp_column, "timestamp_column")
            or features.ENTITY_TIMESTAMP_COLUMN,
            conn_id=self.aws_conn_id,
        )
        self.log.info(
            "Wrote %d rows x %d features to %s (digest %s)",
            result["rows"],
            len(result["feature_refs"]),
            result["uri"],
            result["digest"],
        )
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the entity data and the file sources of the
        requested views as inputs; the training set as the output (schema, rows)."""
        from mlops_provider.lineage import Lineage, add_feature_views, operator_result

        result = operator_result(self)
        lineage = Lineage.of(self).dataset(
            result.get("entity_data") or self.entity_data, rows=result.get("entity_rows")
        )
        views = [str(ref).split(":", 1)[0] for ref in result.get("feature_refs") or []]
        if views:
            add_feature_views(lineage, self.feast_hook.store, str(result.get("project")), views)
        return lineage.dataset(
            result.get("uri") or self.output_uri, output=True, rows=result.get("rows")
        ).build()
