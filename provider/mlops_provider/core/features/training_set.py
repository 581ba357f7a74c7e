"""Point-in-time correct training sets through Feast's ``get_historical_features``, exactly
one row per entity row."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from mlops_provider.core import io
from mlops_provider.core.features.common import (
    ENTITY_TIMESTAMP_COLUMN,
    FeatureRequestError,
    quiet_offline_store,
)
from mlops_provider.core.features.registry import (
    applied_feature_views,
    join_keys,
    resolve_feature_refs,
)
from mlops_provider.core.results import make_result

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore

log = logging.getLogger(__name__)

__all__ = ["build_training_set", "create_training_dataset"]

_ROW_ID = "__entity_row"


def _utc_ns(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if column.type.tz is None:
        column = pc.assume_timezone(column, "UTC")
    return pc.cast(column, pa.timestamp("ns", tz="UTC"))


def _check_entity_columns(
    table: pa.Table,
    keys: Sequence[str],
    timestamp_column: str,
    label_columns: Sequence[str] | None,
    feature_names: Sequence[str],
) -> None:
    if table.num_rows == 0:
        raise FeatureRequestError("entity data has no rows")
    required = [*keys, timestamp_column, *(label_columns or [])]
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise FeatureRequestError(
            f"entity data is missing column(s) {missing} (needs entity key(s) {list(keys)}, "
            f"timestamp {timestamp_column!r}"
            + (f", labels {list(label_columns)}" if label_columns else "")
            + f"); it has {table.column_names}"
        )
    collide = [c for c in feature_names if c in table.column_names]
    if collide:
        raise FeatureRequestError(
            f"entity data column(s) {collide} have the names of requested features; drop or "
            "rename them"
        )


def _entity_table(table: pa.Table, timestamp_column: str) -> pa.Table:
    """The entity rows with UTC nanosecond timestamps and a row number to restore the order."""
    ts = table.column(timestamp_column)
    if not pa.types.is_timestamp(ts.type):
        try:
            ts = pc.cast(ts, pa.timestamp("ns", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise FeatureRequestError(
                f"entity data column {timestamp_column!r} is {ts.type}, not a timestamp: {err}"
            ) from err
    ts = _utc_ns(ts)
    if ts.null_count:
        raise FeatureRequestError(
            f"entity data column {timestamp_column!r} has {ts.null_count} null timestamp(s)"
        )
    table = table.set_column(table.schema.get_field_index(timestamp_column), timestamp_column, ts)
    return table.append_column(_ROW_ID, pa.array(range(table.num_rows), pa.int64()))


def _historical(
    store: FeatureStore,
    table: pa.Table,
    keys: Sequence[str],
    timestamp_column: str,
    features: list[str] | FeatureService,
    feature_names: Sequence[str],
) -> pa.Table:
    """Feature values as of each distinct (keys, timestamp) of ``table``, typed like it."""
    on = [*keys, timestamp_column]
    request_df = table.select(on).group_by(on).aggregate([]).to_pandas()
    if timestamp_column != ENTITY_TIMESTAMP_COLUMN:
        request_df = request_df.rename(columns={timestamp_column: ENTITY_TIMESTAMP_COLUMN})
    with quiet_offline_store():
        job = store.get_historical_features(
            entity_df=request_df, features=features, full_feature_names=False
        )
        result = job.to_arrow()
    if timestamp_column != ENTITY_TIMESTAMP_COLUMN:
        result = result.rename_columns(
            [timestamp_column if n == ENTITY_TIMESTAMP_COLUMN else n for n in result.column_names]
        )
    result = result.set_column(
        result.schema.get_field_index(timestamp_column),
        timestamp_column,
        _utc_ns(result.column(timestamp_column)),
    )
    for key in keys:
        result = result.set_column(
            result.schema.get_field_index(key),
            key,
            result.column(key).cast(table.schema.field(key).type),
        )
    return result.select([*on, *feature_names])


def build_training_set(
    store: FeatureStore,
    entity_df: pd.DataFrame | pa.Table,
    features: Sequence[str] | None = None,
    feature_service: str | None = None,
    *,
    label_columns: Sequence[str] | None = None,
    timestamp_column: str = ENTITY_TIMESTAMP_COLUMN,
) -> pa.Table:
    """A point-in-time correct training set: every entity row with the feature values that
    were current at its timestamp (never later ones; older than the view's ttl count as
    missing).

    Feast is asked once per distinct (entity key, timestamp) and the features are joined back
    onto the entity rows, so the result has exactly one row per entity row, in the input
    order, with nulls where no feature value existed yet. (The file offline store on its own
    drops entity rows whose every candidate feature row is newer than the row, and collapses
    rows sharing a key and timestamp.)

    :param entity_df: entity keys, ``timestamp_column`` and any label/extra columns.
    :param features: feature references ``view:feature``; or
    :param feature_service: the name of a feature service.
    :param label_columns: columns that must be present in the entity data (e.g. ``churned``).
    :returns: entity columns (input order) followed by the features (reference order).
    :raises FeatureRequestError: empty entity data, missing key/timestamp/label columns,
        unknown references or service, entity columns that collide with feature names.
    """
    refs, service = resolve_feature_refs(store, features, feature_service)
    table = (
        entity_df
        if isinstance(entity_df, pa.Table)
        else pa.Table.from_pandas(entity_df, preserve_index=False)
    )
    keys = join_keys(store, refs)
    feature_names = [r.split(":")[1] for r in refs]
    _check_entity_columns(table, keys, timestamp_column, label_columns, feature_names)
    table = _entity_table(table, timestamp_column)
    wanted = service if service is not None else refs
    values = _historical(store, table, keys, timestamp_column, wanted, feature_names)
    joined = table.join(values, [*keys, timestamp_column], join_type="left outer")
    joined = joined.sort_by(_ROW_ID).drop_columns([_ROW_ID])
    ordered = [c for c in table.column_names if c != _ROW_ID] + feature_names
    return joined.select(ordered)


def _rows_without_features(table: pa.Table, feature_names: Sequence[str]) -> int:
    all_null = None
    for name in feature_names:
        mask = pc.is_null(table.column(name))
        all_null = mask if all_null is None else pc.and_(all_null, mask)
    return int(pc.sum(all_null).as_py() or 0) if all_null is not None else 0


def create_training_dataset(
    store: FeatureStore,
    entity_data: str,
    output_uri: str,
    *,
    features: Sequence[str] | None = None,
    feature_service: str | None = None,
    label_columns: Sequence[str] | None = None,
    timestamp_column: str = ENTITY_TIMESTAMP_COLUMN,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Read entity data from a URI, build the training set and write it to ``output_uri``.

    The parquet file is written atomically (a rerun replaces it); its schema metadata records
    the feature references, the feature service, the entity data URI and the feature-view
    definitions as applied when the set was built (``feature_views``, JSON; see
    :func:`~mlops_provider.core.features.registry.feature_view_record`).

    :returns: a result (docs/results.md) with status ``written``, ``rows`` = rows written,
        ``reasons`` saying how many rows have no feature values; then ``uri``, ``row_count``,
        ``entity_rows``, ``rows_without_features``, ``feature_refs``, ``feature_service``,
        ``columns``, ``digest``, ``entity_data``, ``project``, ``feature_views`` (each view used:
        ``name``, ``definition``, ``definition_digest``, ``source``, ``ttl_seconds``,
        ``entities``, ``features``, ``created``, ``last_updated``).
    :raises FeatureRequestError: see :func:`build_training_set`.
    :raises DatasetError: the entity data is missing or unreadable.
    """
    refs, _ = resolve_feature_refs(store, features, feature_service)
    try:
        entities = io.read_table(entity_data, conn_id=conn_id, require_rows=True)
    except io.DatasetEmpty as err:
        raise FeatureRequestError(f"entity data {entity_data} has no rows") from err
    table = build_training_set(
        store,
        entities,
        features,
        feature_service,
        label_columns=label_columns,
        timestamp_column=timestamp_column,
    )
    without = _rows_without_features(table, [r.split(":")[1] for r in refs])
    reasons = []
    if without:
        reasons.append(
            f"{without} of {table.num_rows} entity rows have no feature values at their "
            "timestamp (no feature row at or before it within the ttl)"
        )
        log.warning("%s", reasons[0])
    views = applied_feature_views(store, refs)
    written = io.write_table(  # records the content digest (mlops.digest, docs/versioning.md)
        table,
        output_uri,
        conn_id=conn_id,
        metadata={
            "feature_refs": json.dumps(refs),
            "feature_service": feature_service or "",
            "entity_data": str(entity_data),
            "feature_views": json.dumps(views, default=str),
        },
    )
    digest = written["digest"]
    return make_result(
        status="written",
        passed=True,
        reasons=reasons,
        rows=table.num_rows,
        uri=written["uri"],
        row_count=table.num_rows,
        entity_rows=entities.num_rows,
        rows_without_features=without,
        feature_refs=refs,
        feature_service=feature_service,
        columns=table.column_names,
        digest=digest,
        entity_data=str(entity_data),
        project=store.project,
        feature_views=views,
    )
