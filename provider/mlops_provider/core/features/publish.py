"""Publish a validated raw partition into the feature source Feast reads
(``<features_root>/dt=YYYY-MM-DD/``), atomically and with a schema check."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from mlops_provider.core import io
from mlops_provider.core.features.common import ENTITY_TIMESTAMP_COLUMN, PARTITION_KEY
from mlops_provider.core.io import partition_days as published_days
from mlops_provider.core.results import make_result
from mlops_provider.core.times import to_utc

log = logging.getLogger(__name__)

__all__ = [
    "VALIDATION_KEYS",
    "partition_marker",
    "partition_validation",
    "publish_partition",
    "published_days",
]

#: What a publish records of the validation that let the partition through, in the partition's
#: ``_SUCCESS`` marker (and parquet metadata): ``validation_<key>`` for each key here, taken
#: from the DataValidationOperator result.
VALIDATION_KEYS = ("status", "passed", "suite", "report_uri", "result_uri", "rows")


def _selected_schema(
    source_uri: str,
    columns: Sequence[str] | None,
    required: Sequence[str],
    timestamp_column: str,
    conn_id: str | None,
) -> pa.Schema:
    """The schema to publish: required + wanted columns of the source (all by default)."""
    wanted = None if columns is None else list(dict.fromkeys([*required, *columns]))
    schema = io.open_dataset(source_uri, conn_id=conn_id).schema
    missing = [c for c in (wanted or required) if c not in schema.names]
    if missing:
        raise io.DatasetFormatError(
            source_uri, f"missing column(s) {missing}; available: {list(schema.names)}"
        )
    selected = wanted or [n for n in schema.names if n != PARTITION_KEY]
    ts_type = schema.field(timestamp_column).type
    if not pa.types.is_timestamp(ts_type):
        raise io.DatasetFormatError(
            source_uri, f"column {timestamp_column!r} must be a timestamp, got {ts_type}"
        )
    return pa.schema([schema.field(c) for c in selected])


def _schema_problems(reference: pa.Schema, schema: pa.Schema) -> list[str]:
    ref_fields = {f.name: f.type for f in reference if f.name != PARTITION_KEY}
    new_fields = {f.name: f.type for f in schema}
    problems = []
    for name in sorted(set(ref_fields) | set(new_fields)):
        old, new = ref_fields.get(name), new_fields.get(name)
        if old is None:
            problems.append(f"{name}: new column ({new})")
        elif new is None:
            problems.append(f"{name}: column missing (was {old})")
        elif old != new and not (pa.types.is_timestamp(old) and pa.types.is_timestamp(new)):
            problems.append(f"{name}: {new} (was {old})")
    return problems


def _check_compatible(
    features_root: str, schema: pa.Schema, *, exclude: date, conn_id: str | None
) -> None:
    others = [d for d in published_days(features_root, conn_id=conn_id) if d != exclude]
    if not others:
        return
    reference_uri = io.partition_uri(features_root, others[-1])
    try:
        reference = io.open_dataset(reference_uri, conn_id=conn_id).schema
    except io.DatasetError:
        return  # an unreadable or empty old partition is not this partition's problem
    problems = _schema_problems(reference, schema)
    if problems:
        raise io.DatasetFormatError(
            reference_uri.rsplit("/", 1)[0],
            "the new partition's schema differs from the published partition "
            f"{reference_uri}: {'; '.join(problems)}. Feast reads all partitions as one "
            "dataset, so the partition was not published.",
        )


def _validation_metadata(validation: Mapping[str, Any] | None) -> dict[str, str]:
    """``validation_<key>`` entries of the marker, from a validation result (JSON values)."""
    if not validation:
        return {}
    if not isinstance(validation, Mapping):
        raise TypeError(
            "validation must be the DataValidationOperator result (a mapping), got "
            f"{type(validation).__name__}"
        )
    return {
        f"validation_{key}": json.dumps(validation.get(key), default=str)
        for key in VALIDATION_KEYS
        if key in validation
    }


def partition_marker(uri: str, *, conn_id: str | None = None) -> dict[str, Any] | None:
    """The ``_SUCCESS`` marker of a partition written by :func:`~mlops_provider.core.io.
    write_partition` (rows, files, and the metadata of the write), or None when the partition
    has no readable marker."""
    try:
        text = io.read_text(io.join_uri(uri, "_SUCCESS"), conn_id=conn_id)
    except (io.DatasetError, OSError) as err:
        log.info("no _SUCCESS marker under %s: %s", uri, err)
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return dict(data) if isinstance(data, dict) else None


def partition_validation(
    marker: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The validation a published partition's marker recorded (``status``, ``passed``,
    ``suite``, ``report_uri``, ``result_uri``, ``rows``), or None when the publish recorded none
    (published before it was recorded, or without a validation)."""
    if not marker:
        return None
    out: dict[str, Any] = {}
    for key in VALIDATION_KEYS:
        raw = marker.get(f"validation_{key}")
        if raw is None:
            continue
        try:
            out[key] = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            out[key] = raw
    return out or None


def publish_partition(
    source_uri: str,
    features_root: str,
    day: date | datetime | str,
    *,
    entity_columns: Sequence[str],
    columns: Sequence[str] | None = None,
    timestamp_column: str = ENTITY_TIMESTAMP_COLUMN,
    conn_id: str | None = None,
    batch_size: int = 65_536,
    validation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Publish a validated partition as ``<features_root>/dt=<day>/`` of a feature source.

    Rows are streamed (bounded memory) into a staging directory that replaces the partition
    in one commit: a rerun of the same day replaces it, never duplicates rows. Before writing,
    the new data's schema is compared with the newest existing partition so that a type
    change (e.g. an int column that became float or string) cannot poison the source Feast
    reads as one dataset.

    :param source_uri: the validated raw partition (file or directory).
    :param features_root: the feature source directory, e.g. ``.../features/customer_activity``.
    :param day: the partition day (date, datetime or ``YYYY-MM-DD``).
    :param entity_columns: the entity key columns of the feature view (required: the source
        must hold them).
    :param columns: feature columns to keep (entity and timestamp columns are always kept);
        default: every column of the source.
    :param conn_id: storage connection for remote URIs (e.g. ``aws_default``).
    :param validation: the result of the validation that let the partition through (the
        DataValidationOperator result): its ``status``, ``passed``, ``suite``, ``report_uri``,
        ``result_uri`` and ``rows`` are recorded in the partition's ``_SUCCESS`` marker as
        ``validation_<key>`` (JSON values), where :func:`partition_validation` reads them back.
    :returns: a result (docs/results.md) with status ``published``, ``rows`` = rows written,
        then ``uri``, ``day``, ``columns``, ``source``, ``replaced``, ``validation`` (what was
        recorded of it, or None).
    :raises DatasetError: the source is missing, empty of files, or lacks a required column.
    """
    day_value = to_utc(day, what="day").date()
    recorded = _validation_metadata(validation)
    required = [*entity_columns, timestamp_column]
    out_schema = _selected_schema(source_uri, columns, required, timestamp_column, conn_id)
    selected = out_schema.names
    target = io.partition_uri(features_root, day_value)
    _check_compatible(features_root, out_schema, exclude=day_value, conn_id=conn_id)
    replaced = io.exists(target, conn_id=conn_id)
    progress = io.ProgressLogger(f"publish {source_uri} -> {target}", logger=log)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in io.iter_batches(
            source_uri, columns=selected, batch_size=batch_size, conn_id=conn_id
        ):
            progress.update(batch.num_rows)
            yield batch

    written = io.write_partition(
        batches(),
        target,
        schema=out_schema,
        conn_id=conn_id,
        metadata={"source": str(source_uri), "day": day_value.isoformat(), **recorded},
    )
    progress.done()
    return make_result(
        status="published",
        passed=True,
        rows=int(written["rows"]),
        uri=written["uri"],
        day=day_value.isoformat(),
        columns=selected,
        source=str(source_uri),
        replaced=bool(replaced),
        validation=partition_validation(recorded),
    )
