"""Batch scoring: stream a dataset through one resolved model into an atomic partition.

:func:`score` goes resolve -> compute -> publish:

1. **resolve**: check the request, check the output location, resolve the model URI ONCE with
   :func:`mlops_provider.core.models.resolve` (an alias becomes ``models:/<name>/<version>``;
   nothing reads the alias again, so moving it during the run changes nothing for this run),
   load the model once (:func:`~mlops_provider.core.scoring.model.open_model`) and open the
   input without reading it (:func:`inspect_input`: parquet footers of every file, checked
   against the model's signature; a missing or mistyped column names the column and the file);
2. **compute**: stream record batches (bounded memory) through the model
   (:func:`score_batches`; classifiers: ``predict_proba`` once, the prediction is the arg-max
   class);
3. **publish**: the rows go through :class:`io.PartitionWriter`: the partition appears
   atomically when everything succeeded, never partially; :class:`ScoringResult` describes
   the run and :meth:`ScoringResult.to_result` is the operator's result.

Output columns: the entity id columns, any pass-through columns, ``prediction``, for
classifiers ``probability`` (binary: probability of ``classes_[1]``) or one
``probability_<class>`` column per class (multiclass), then ``model_name``, ``model_version``,
``model_run_id`` and ``scored_at`` (UTC, the same for the whole run).
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_provider.core import io, times
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.models import ModelVersion, resolve, training_record
from mlops_provider.core.results import make_result
from mlops_provider.core.scoring.categories import UnseenCategories, known_categories
from mlops_provider.core.scoring.model import (
    InputColumn,
    LoadedModel,
    ScoringInputError,
    check_input_schema,
    empty_type,
    feed_type,
    model_fields,
    open_model,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MODEL_COLUMNS",
    "RESERVED_COLUMNS",
    "InputInfo",
    "Predictor",
    "ScoringResult",
    "historical_features",
    "inspect_input",
    "score",
    "score_batches",
    "stream_parquet",
]

#: Rows per prediction call. 128Ki rows amortise the fixed per-call cost of a scikit-learn
#: pipeline (column selection, validation: ~1 ms per step) to well under 1% while keeping the
#: working set of one batch (Arrow input + pandas copy + transformed matrix + predictions) at
#: a few tens of MB for a dozen features, so the peak memory does not depend on the input size.
DEFAULT_BATCH_SIZE = 131_072
MODEL_COLUMNS = ("model_name", "model_version", "model_run_id", "scored_at")
RESERVED_COLUMNS = ("prediction", "probability", *MODEL_COLUMNS)
_MAX_PROBLEMS = 10


# ==========================================================================================
# Input inspection and streaming
# ==========================================================================================
@dataclass
class InputInfo:
    """What is known about an input before reading it."""

    uri: str
    format: str
    files: list[str]
    schema: pa.Schema
    rows: int | None
    file_rows: dict[str, int] = field(default_factory=dict)
    partition_columns: list[str] = field(default_factory=list)


def _hive_values(base: str, path: str) -> dict[str, str]:
    """Hive partition values (``dt=2026-01-05/``) in the directories of ``path`` below ``base``."""
    if path == base:
        return {}
    key = io.partition_key(posixpath.dirname(posixpath.relpath(path, base)))
    return dict(segment.split("=", 1) for segment in key.split("/")) if key else {}


def _schema_problems(
    schema: pa.Schema,
    columns: Sequence[InputColumn],
    extra_columns: Sequence[str],
    *,
    where: str,
    skip: Sequence[str] = (),
) -> list[str]:
    """:func:`check_input_schema` plus the other columns that must exist (entity, pass-through)."""
    problems = check_input_schema(schema, columns, where=where, skip=skip)
    missing = [c for c in extra_columns if c not in schema.names and c not in skip]
    if missing:
        problems.append(f"{where}: missing column(s) {missing}")
    return problems


def _raise_mismatch(problems: Sequence[str]) -> None:
    if not problems:
        return
    shown = list(problems[:_MAX_PROBLEMS])
    if len(problems) > _MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - _MAX_PROBLEMS} more")
    raise ScoringInputError(
        "input does not match the model's input columns:\n  " + "\n  ".join(shown)
    )


def _parquet_footers(
    loc: io.Location,
    files: Sequence[str],
    columns: Sequence[InputColumn],
    extra_columns: Sequence[str],
    partition_columns: Sequence[str],
) -> tuple[dict[str, int], list[str]]:
    """Row count of each parquet file and the problems of its schema (footers only)."""
    file_rows: dict[str, int] = {}
    problems: list[str] = []
    for path in files:
        try:
            meta = pq.read_metadata(path, filesystem=loc.fs)
            file_schema = meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as err:
            raise ScoringInputError(
                f"input_data {loc.uri}: file {path} is not readable as parquet: {err}"
            ) from err
        file_rows[path] = int(meta.num_rows)
        where = f"file {path}" if len(files) > 1 else f"input_data {loc.uri}"
        problems += _schema_problems(
            file_schema, columns, extra_columns, where=where, skip=partition_columns
        )
    return file_rows, problems


def inspect_input(
    uri: str,
    *,
    conn_id: str | None = None,
    format: str | None = None,  # noqa: A002 - pyarrow's name
    columns: Sequence[InputColumn] = (),
    extra_columns: Sequence[str] = (),
) -> InputInfo:
    """Open an input lazily and check every file against the model's columns.

    For parquet every file footer is read (row counts, per-file schema), so a corrupt file or
    a file whose column is missing or of another type is named before anything is scored.

    :param extra_columns: other columns that must exist (entity and pass-through columns).
    :raises ScoringInputError: missing input, unreadable file, missing/mistyped columns.
    """
    try:
        loc = io.resolve(uri, conn_id=conn_id)
        dataset = io.open_dataset(loc, format=format)
        files = io.list_files(loc)
    except io.DatasetError as err:
        raise ScoringInputError(f"input_data {err}") from err
    except Exception as err:  # object storage: botocore's errors name no URI, no connection
        problem = io.storage_error(err, uri, conn_id=conn_id)
        if problem is None:
            raise
        raise ScoringInputError(f"input_data {problem}") from err
    csv = bool(files) and all(f.lower().endswith(io.CSV_SUFFIXES) for f in files)
    fmt = format or ("csv" if csv else "parquet")
    partition_columns = list(dict.fromkeys(k for f in files for k in _hive_values(loc.path, f)))
    rows: int | None = None
    file_rows: dict[str, int] = {}
    if fmt == "parquet":
        file_rows, problems = _parquet_footers(
            loc, files, columns, extra_columns, partition_columns
        )
        rows = sum(file_rows.values())
    else:
        problems = _schema_problems(
            dataset.schema, columns, extra_columns, where=f"input_data {uri}"
        )
    _raise_mismatch(problems)
    return InputInfo(
        uri=uri,
        format=fmt,
        files=files,
        schema=dataset.schema,
        rows=rows,
        file_rows=file_rows,
        partition_columns=partition_columns,
    )


def stream_parquet(
    info: InputInfo,
    columns: Sequence[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    conn_id: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` from the parquet files of ``info``, one file and one row
    group at a time.

    Memory stays at about one row group plus one batch whatever the file sizes: a
    ``pyarrow.dataset`` scanner decodes ahead of a slow consumer (a model) and was measured
    holding ~1 GB of a 1M-row file in Arrow memory while the model worked on the first batch.
    Hive partition columns (``dt=...`` directories) that are asked for are filled from the
    path; every batch has the dataset's types, so files that differ slightly (int32/int64)
    still stream as one schema.

    :raises ScoringInputError: a file that cannot be read (named).
    """
    loc = io.resolve(info.uri, conn_id=conn_id)
    target = pa.schema([info.schema.field(c) for c in columns])
    in_file = [c for c in columns if c not in info.partition_columns]
    for path in info.files:
        try:
            handle = pq.ParquetFile(path if loc.is_local else loc.fs.open(path, "rb"))
        except (pa.ArrowInvalid, OSError) as err:
            raise ScoringInputError(f"input_data {info.uri}: file {path}: {err}") from err
        partition = _hive_values(loc.path, path)
        try:
            for batch in handle.iter_batches(batch_size=batch_size, columns=in_file):
                arrays = []
                for field_ in target:
                    if field_.name in in_file:
                        arrays.append(batch.column(field_.name).cast(field_.type))
                    else:
                        value = pa.scalar(partition.get(field_.name)).cast(field_.type)
                        arrays.append(pa.repeat(value, batch.num_rows))
                yield pa.RecordBatch.from_arrays(arrays, schema=target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
            raise ScoringInputError(f"input_data {info.uri}: file {path}: {err}") from err
        finally:
            handle.close()


# ==========================================================================================
# Prediction
# ==========================================================================================
def _rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Group small batches (small row groups, small files) into tables of up to ``size`` rows,
    so per-call overhead stays amortised; no data is copied here."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if pending and rows + batch.num_rows > size:
            yield pa.Table.from_batches(pending)
            pending, rows = [], 0
        pending.append(batch)
        rows += batch.num_rows
    if pending:
        yield pa.Table.from_batches(pending)


def _to_frame(table: pa.Table) -> Any:
    # split_blocks avoids consolidating columns into 2-D blocks (a full copy); self_destruct
    # releases each Arrow column as soon as it is converted. Only the feature columns are in
    # ``table``, so entity/pass-through columns are never converted.
    return table.to_pandas(split_blocks=True, self_destruct=True, ignore_metadata=True)


class Predictor:
    """Turns a pandas frame of feature columns into the output prediction columns: batch
    scoring and the realtime service (:mod:`mlops_provider.serving`) predict through it.

    :param model: the loaded model; classifiers with ``predict_proba`` give ``prediction`` (the
        arg-max class) plus ``probability`` (binary) or ``probability_<class>`` columns.
    :raises ScoringInputError: (when called) a model output that is not one value per row.
    """

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.estimator = model.estimator
        self.classes = np.asarray(model.classes) if model.classes is not None else None
        self.binary = self.classes is not None and len(self.classes) == 2

    def fields(self) -> list[pa.Field]:
        out = [pa.field("prediction", self.model.prediction_type)]
        out += [pa.field(name, pa.float64()) for name in self.model.probability_columns]
        return out

    def __call__(self, frame: Any) -> list[pa.Array]:
        if self.classes is not None:
            proba = np.asarray(self.estimator.predict_proba(frame), dtype=np.float64)
            labels = self.classes.take(proba.argmax(axis=1))
            arrays = [pa.array(labels, type=self.model.prediction_type)]
            if self.binary:
                arrays.append(pa.array(np.ascontiguousarray(proba[:, 1])))
            else:
                arrays += [
                    pa.array(np.ascontiguousarray(proba[:, i])) for i in range(proba.shape[1])
                ]
            return arrays
        values = self.estimator.predict(frame)
        return [self._prediction_array(values)]

    def _prediction_array(self, values: Any) -> pa.Array:
        if hasattr(values, "columns"):  # DataFrame from a pyfunc model
            if len(values.columns) != 1:
                raise ScoringInputError(
                    f"{self.model.resolved.describe()} returned {len(values.columns)} output "
                    f"columns {list(values.columns)[:5]}; only single-output models are supported"
                )
            values = values.iloc[:, 0]
        array = np.asarray(values)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ScoringInputError(
                f"{self.model.resolved.describe()} returned predictions of shape {array.shape}; "
                "only one prediction per row is supported"
            )
        try:
            return pa.array(array, type=self.model.prediction_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array(array).cast(self.model.prediction_type)


def _constant(value: Any, type_: pa.DataType, rows: int) -> pa.Array:
    return pa.array([value], type=type_).take(pa.array(np.zeros(rows, dtype=np.int32)))


@dataclass
class _Layout:
    """How an input batch becomes an output batch: the columns kept, the columns fed to the
    model (and their types), the output schema and the per-run constant columns."""

    predictor: Predictor
    keep: list[pa.Field]
    feed: pa.Schema
    out: pa.Schema
    constants: list[pa.Array]
    batch_size: int

    def _constants(self, rows: int) -> list[pa.Array]:
        if rows <= self.batch_size:
            return [c.slice(0, rows) for c in self.constants]
        return [_constant(c[0].as_py(), c.type, rows) for c in self.constants]

    def score(self, table: pa.Table, first: int) -> pa.Table:
        """The output rows of one input table (``first``: index of its first row)."""
        rows = table.num_rows
        kept = [table.column(f.name).cast(f.type) for f in self.keep]  # dictionary -> values
        features = table.select(self.feed.names).cast(self.feed)
        del table
        model = self.predictor.model.resolved
        try:
            predicted = self.predictor(_to_frame(features))
        except ScoringInputError:
            raise
        except Exception as err:  # the model's own error on this data: name the rows
            raise ScoringInputError(
                f"{model.describe()} failed on rows {first:,}..{first + rows - 1:,} "
                f"of the input: {type(err).__name__}: {err}"
            ) from err
        del features
        return pa.Table.from_arrays([*kept, *predicted, *self._constants(rows)], schema=self.out)


def _layout(
    model: LoadedModel,
    input_schema: pa.Schema,
    keep_columns: Sequence[str],
    scored_at: datetime,
    batch_size: int,
) -> _Layout:
    predictor = Predictor(model)
    present = [c for c in model.inputs if c.name in input_schema.names]
    feed = pa.schema(
        [pa.field(c.name, feed_type(c, input_schema.field(c.name).type)) for c in present]
    )
    keep = []
    for name in dict.fromkeys(keep_columns):
        f = input_schema.field(name)
        keep.append(pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f)
    stamp = pa.timestamp("us", tz="UTC")
    model_fields_ = [pa.field(name, pa.string()) for name in MODEL_COLUMNS[:3]]
    out = pa.schema([*keep, *predictor.fields(), *model_fields_, pa.field("scored_at", stamp)])
    resolved = model.resolved
    constants = [
        _constant(resolved.name, pa.string(), batch_size),
        _constant(resolved.version, pa.string(), batch_size),
        _constant(resolved.run_id, pa.string(), batch_size),
        _constant(scored_at, stamp, batch_size),
    ]
    return _Layout(predictor, keep, feed, out, constants, batch_size)


def score_batches(
    model: LoadedModel,
    batches: Iterable[pa.RecordBatch],
    output_uri: str,
    *,
    input_schema: pa.Schema,
    entity_columns: Sequence[str] = (),
    passthrough_columns: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    total_rows: int | None = None,
    scored_at: datetime | None = None,
    conn_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    progress_every: float = 10.0,
    what: str = "scoring",
    unseen: UnseenCategories | None = None,
    max_unseen_share: float | None = None,
) -> tuple[int, dict[str, float], list[str], str | None]:
    """Predict every batch and write the rows to ``output_uri`` atomically.

    ``batches`` must hold the model's input columns and the entity/pass-through columns
    (already checked). ``on_batch(batch_index, rows_done)`` is called after each written batch
    (progress hooks, tests). ``unseen`` counts the categories the model never saw in every
    batch; above ``max_unseen_share`` (of ``total_rows`` when known, else at the end) the run
    fails before the partition is committed (:meth:`UnseenCategories.check`).

    :returns: ``(rows, progress stats, part files, content digest of the written partition)``.
    :raises ScoringInputError: the model failed on a batch, or the output is not writable;
        nothing is visible at ``output_uri`` in that case.
    """
    scored_at = scored_at or times.utcnow()
    layout = _layout(
        model, input_schema, [*entity_columns, *passthrough_columns], scored_at, batch_size
    )
    file_meta = {
        **{k: "" if v is None else str(v) for k, v in model_fields(model.resolved).items()},
        "scored_at": scored_at.isoformat(),
        **dict(metadata or {}),
    }
    progress = io.ProgressLogger(what, total_rows=total_rows, every_seconds=progress_every)
    try:
        writer = io.PartitionWriter(
            output_uri, schema=layout.out, conn_id=conn_id, metadata=file_meta
        )
        with writer:
            for index, table in enumerate(_rebatch(batches, batch_size)):
                rows = table.num_rows
                if unseen is not None:
                    unseen.update(table)
                    if total_rows is not None:
                        unseen.check(max_unseen_share, of_rows=total_rows)
                writer.write(layout.score(table, progress.rows))
                progress.update(rows)
                if on_batch is not None:
                    on_batch(index, progress.rows)
            if unseen is not None:  # before the commit: a failure leaves nothing visible
                unseen.check(max_unseen_share)
    except io.DatasetError as err:
        where = "output_uri" if err.uri == str(output_uri) else "input_data"
        raise ScoringInputError(f"{where} {err}") from err
    stats = progress.done()
    return progress.rows, stats, list(writer.files), writer.digest


def predict_table(
    model: LoadedModel,
    table: pa.Table,
    *,
    keep_columns: Sequence[str] = (),
    scored_at: datetime | None = None,
) -> pa.Table:
    """The batch prediction rows of an in-memory table: what :func:`score` writes for the same
    rows (``keep_columns``, prediction, probabilities, ``model_*``, ``scored_at``).

    :raises ScoringInputError: the table does not match the model's input contract, or the
        model failed on it.
    """
    _raise_mismatch(_schema_problems(table.schema, model.inputs, keep_columns, where="rows"))
    layout = _layout(
        model, table.schema, keep_columns, scored_at or times.utcnow(), max(table.num_rows, 1)
    )
    return layout.score(table, 0)


# ==========================================================================================
# Feast input
# ==========================================================================================
def historical_features(
    store: Any,
    entity_data: str,
    *,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    as_of: datetime | None = None,
    conn_id: str | None = None,
    timestamp_column: str = "event_timestamp",
) -> pa.Table:
    """Point-in-time features from Feast for the entity rows in ``entity_data``.

    Rows are scored with the feature values current at their ``timestamp_column``; entity data
    without that column gets ``as_of`` (the scoring time, e.g. the end of the data interval),
    so each entity is scored with its latest features known then. The retrieval is
    :func:`mlops_provider.core.features.build_training_set` (one row per entity row, input
    order, nulls where no feature value existed).

    :raises ScoringInputError: neither/both of ``feature_service`` and ``features``, unreadable
        entity data, unknown features or service, or a Feast retrieval error.
    """
    from mlops_provider.core.features import FeatureRequestError, build_training_set

    if bool(feature_service) == bool(features):
        raise ScoringInputError("pass exactly one of feature_service or features for Feast input")
    try:
        table = io.read_table(entity_data, conn_id=conn_id)
    except io.DatasetError as err:
        raise ScoringInputError(f"feast_entity_data {err}") from err
    if timestamp_column not in table.column_names:
        if as_of is None:
            raise ScoringInputError(
                f"feast_entity_data {entity_data} has no {timestamp_column!r} column and no "
                "scoring time was given"
            )
        stamp = pa.scalar(times.to_utc(as_of, what="as_of"), type=pa.timestamp("us", tz="UTC"))
        table = table.append_column(timestamp_column, pa.repeat(stamp, table.num_rows))
    if table.num_rows == 0:
        log.warning("feast_entity_data %s has no rows: nothing to retrieve", entity_data)
        return table
    started = time.perf_counter()
    try:
        result = build_training_set(
            store,
            table,
            features=list(features) if features else None,
            feature_service=feature_service or None,
            timestamp_column=timestamp_column,
        )
    except FeatureRequestError as err:
        raise ScoringInputError(f"Feast input {entity_data}: {err}") from err
    except Exception as err:  # the offline store's own errors vary by backend
        raise ScoringInputError(
            f"Feast historical retrieval for {table.num_rows:,} entity rows of {entity_data} "
            f"failed: {type(err).__name__}: {err}"
        ) from err
    log.info(
        "Retrieved %s rows of Feast features (%s) for %s in %.1f s",
        f"{result.num_rows:,}",
        f"service {feature_service}" if feature_service else f"{len(features or [])} features",
        entity_data,
        time.perf_counter() - started,
    )
    return result


# ==========================================================================================
# score(): resolve -> compute -> publish
# ==========================================================================================
@dataclass
class ScoringResult:
    """What a scoring run did; :meth:`to_result` is the operator's result (XCom)."""

    output_uri: str
    rows: int
    seconds: float
    rows_per_second: float
    model: ModelVersion
    scored_at: datetime
    input_data: str | None
    files: list[str]
    flavor: str
    empty: bool
    #: seconds spent streaming (read, predict, write, commit), without model resolution/loading
    stream_seconds: float = 0.0
    #: content digests (docs/versioning.md) of the input and of the written partition
    input_digest: str | None = None
    output_digest: str | None = None
    #: per categorical column with values the model never saw: ``{count, share, examples,
    #: known}`` (:meth:`UnseenCategories.report`), and one line each for the reasons
    unseen_categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    unseen_lines: list[str] = field(default_factory=list)

    def to_result(self, **details: Any) -> dict[str, Any]:
        """The result (docs/results.md): ``status`` ``scored``, ``passed`` True, ``model``
        (the concrete version), ``rows`` scored; then ``output_uri``, ``empty``, the flat
        ``model_*`` keys of earlier releases, ``flavor``, ``scored_at``, ``rows_per_second``,
        ``seconds``, ``stream_seconds``, ``input_data``, ``input_digest`` (content digest of the
        input: dataset, table or retrieved Feast features), ``output_digest`` (of the written
        partition), ``files``, ``unseen_categories`` (per column with categories the model
        never saw: ``count``, ``share``, ``examples``, ``known``; also one line each in
        ``reasons``) and ``details``."""
        reasons = ["the input had no rows: wrote an empty partition"] if self.empty else []
        reasons += self.unseen_lines
        return make_result(
            status="scored",
            passed=True,
            reasons=reasons,
            model=self.model,
            rows=self.rows,
            output_uri=self.output_uri,
            empty=self.empty,
            **model_fields(self.model),
            flavor=self.flavor,
            scored_at=self.scored_at.isoformat(),
            rows_per_second=round(self.rows_per_second, 1),
            seconds=round(self.seconds, 3),
            stream_seconds=round(self.stream_seconds, 3),
            input_data=self.input_data,
            input_digest=self.input_digest,
            output_digest=self.output_digest,
            files=list(self.files),
            unseen_categories=self.unseen_categories,
            **details,
        )

    def to_xcom(self) -> dict[str, Any]:
        """The earlier name of :meth:`to_result`."""
        return self.to_result()


@dataclass
class _Source:
    """An opened, checked input: what to log and the batches to score."""

    name: str
    schema: pa.Schema
    rows: int | None
    note: str
    batches: Iterable[pa.RecordBatch]
    #: the content digest of an in-memory input (a dataset's is read from the lake)
    digest: str | None = None


@dataclass
class _Request:
    """The arguments of :func:`score` (documented there), checked once."""

    model_uri: str
    target: MlflowTarget
    output_uri: str
    input_data: str | None
    input_table: pa.Table | None
    feast_store: Any
    feast_entity_data: str | None
    feature_service: str | None
    features: Sequence[str] | None
    as_of: datetime | None
    entity_columns: Sequence[str] | None
    passthrough_columns: Sequence[str]
    feature_columns: Sequence[str] | None
    batch_size: int
    conn_id: str | None
    input_format: str | None
    scored_at: datetime | None
    client: MlflowClient | None
    metadata: Mapping[str, str] | None
    on_batch: Callable[[int, int], None] | None
    on_resolved: Callable[[ModelVersion], None] | None
    progress_every: float
    max_unseen_share: float | None

    def check(self) -> None:
        """Check the request before anything is read or written."""
        sources = {
            "input_data": self.input_data,
            "input_table": self.input_table,
            "feast_entity_data": self.feast_entity_data,
        }
        given = [name for name, value in sources.items() if value is not None]
        if len(given) != 1:
            raise ScoringInputError(
                f"pass exactly one of {', '.join(sources)} (got {', '.join(given) or 'none'})"
            )
        if self.feast_entity_data is not None and self.feast_store is None:
            raise ScoringInputError("Feast input (feast_entity_data) needs a feast_store")
        if self.batch_size < 1:
            raise ScoringInputError(f"batch_size must be >= 1, got {self.batch_size}")
        share = self.max_unseen_share
        if share is not None and not 0 <= share <= 1:
            raise ScoringInputError(f"max_unseen_share must be within [0, 1], got {share}")
        if self.entity_columns is not None:
            self.copied(list(self.entity_columns))
        _check_output_location(self.output_uri, self.conn_id)

    def copied(self, entity: list[str]) -> tuple[list[str], list[str]]:
        """The entity and pass-through columns to copy to every output row."""
        passthrough = [c for c in self.passthrough_columns if c not in entity]
        clashes = [
            c
            for c in [*entity, *passthrough]
            if c in RESERVED_COLUMNS or c.startswith("probability_")
        ]
        if clashes:
            raise ScoringInputError(
                f"entity/pass-through column(s) {clashes} clash with output columns "
                f"{list(RESERVED_COLUMNS)}"
            )
        return entity, passthrough

    def entity_for(self, client: MlflowClient, model: ModelVersion) -> list[str]:
        """``entity_columns`` as given, else those the model's training run recorded."""
        if self.entity_columns is not None:
            return list(self.entity_columns)
        recorded = training_record(client, model.run_id).entity_columns
        log.info("Entity columns recorded by the training run: %s", list(recorded or []))
        return list(recorded or [])


def _check_output_location(output_uri: str, conn_id: str | None) -> None:
    """Fail before any work when the output cannot be written: a file in the way or an
    unwritable directory (local); no credentials, an unreachable endpoint, access denied or no
    such bucket (object storage: a probe object is written and deleted,
    :func:`io.probe_writable`)."""
    try:
        io.probe_writable(output_uri, conn_id=conn_id)
    except io.DatasetError as err:
        raise ScoringInputError(
            f"output_uri {err} (checked before scoring; nothing was scored)"
        ) from err


def _dataset_source(
    req: _Request, model: LoadedModel, input_data: str, extra: Sequence[str]
) -> _Source:
    info = inspect_input(
        input_data,
        conn_id=req.conn_id,
        format=req.input_format,
        columns=model.inputs,
        extra_columns=extra,
    )
    present = [c.name for c in model.inputs if c.name in info.schema.names]
    read_columns = list(dict.fromkeys([*extra, *present]))
    batches: Iterable[pa.RecordBatch]
    if info.format == "parquet":
        batches = stream_parquet(info, read_columns, batch_size=req.batch_size, conn_id=req.conn_id)
    else:
        batches = io.iter_batches(
            input_data,
            columns=read_columns,
            batch_size=req.batch_size,
            conn_id=req.conn_id,
            format=req.input_format,
        )
    return _Source(str(input_data), info.schema, info.rows, f"{len(info.files)} file(s)", batches)


def _feast_table(req: _Request, model: LoadedModel, entity_data: str, as_of: datetime) -> pa.Table:
    """The point-in-time features of the entities; an empty table of the model's inputs when
    there is nothing to retrieve."""
    table = historical_features(
        req.feast_store,
        entity_data,
        feature_service=req.feature_service,
        features=req.features,
        as_of=req.as_of or as_of,
        conn_id=req.conn_id,
    )
    if table.num_rows == 0:
        for col in model.inputs:
            if col.name not in table.column_names:
                type_ = empty_type(col)
                table = table.append_column(pa.field(col.name, type_), pa.array([], type=type_))
    return table


def _open_source(
    req: _Request, model: LoadedModel, extra: Sequence[str], scored_at: datetime
) -> _Source:
    """The input of the request, opened and checked against the model."""
    if req.input_data is not None:
        return _dataset_source(req, model, req.input_data, extra)
    name, table = "feature data", req.input_table
    if req.feast_entity_data is not None:
        name = f"Feast features of {req.feast_entity_data}"
        table = _feast_table(req, model, req.feast_entity_data, scored_at)
    assert table is not None
    _raise_mismatch(_schema_problems(table.schema, model.inputs, extra, where=name))
    batches = table.to_batches(max_chunksize=req.batch_size)
    digest = io.table_digest(table)
    return _Source(name, table.schema, table.num_rows, "in memory", batches, digest)


def _log_start(source: _Source, model: LoadedModel, output_uri: str) -> None:
    log.info(
        "Scoring %s (%s, %s) with %s [%s flavor, inputs from %s] into %s",
        source.name,
        f"{source.rows:,} rows" if source.rows is not None else "row count unknown (CSV)",
        source.note,
        model.resolved.describe(),
        model.flavor,
        model.signature_source,
        output_uri,
    )
    if source.rows == 0:
        log.warning("Input %s has no rows: writing an empty partition with the schema", source.name)


def _log_done(
    resolved: ModelVersion, output_uri: str, rows: int, seconds: float, rate: float
) -> None:
    if rows == 0:
        log.warning("Wrote an EMPTY partition %s (input had no rows)", output_uri)
        return
    log.info(
        "Wrote %s rows scored by %s to %s in %.1f s (%s rows/s while streaming)",
        f"{rows:,}",
        resolved.describe(),
        output_uri,
        seconds,
        f"{rate:,.0f}",
    )


def _input_digest(source: _Source, conn_id: str | None) -> str:
    """The content digest of the input (recorded in the lake, else computed)."""
    if source.digest is not None:
        return source.digest
    try:
        return io.digest_of(source.name, conn_id=conn_id)
    except io.DatasetError as err:
        raise ScoringInputError(f"input_data {err}") from err


def _run(req: _Request) -> ScoringResult:
    """:func:`score`: resolve -> compute -> publish."""
    # resolve: the request, the output location, the model (once), the input
    req.check()
    scored_at = times.to_utc(req.scored_at, what="scored_at") if req.scored_at else times.utcnow()
    started = time.perf_counter()
    client = req.client or make_client(req.target)
    resolved = resolve(client, req.model_uri)
    entity, passthrough = req.copied(req.entity_for(client, resolved))
    log.info("Model %s resolved to %s", req.model_uri, resolved.describe())
    if req.on_resolved is not None:
        req.on_resolved(resolved)
    with open_model(resolved, req.target, feature_columns=req.feature_columns) as model:
        source = _open_source(req, model, [*entity, *passthrough], scored_at)
        _log_start(source, model, req.output_uri)
        input_digest = _input_digest(source, req.conn_id)
        unseen = UnseenCategories(known_categories(model.estimator, [c.name for c in model.inputs]))
        # compute and publish: stream through the model into the atomic partition
        rows, stats, files, output_digest = score_batches(
            model,
            source.batches,
            req.output_uri,
            input_schema=source.schema,
            entity_columns=entity,
            passthrough_columns=passthrough,
            batch_size=req.batch_size,
            total_rows=source.rows,
            scored_at=scored_at,
            conn_id=req.conn_id,
            metadata={
                "input_data": source.name,
                "input_digest": input_digest,
                **dict(req.metadata or {}),
            },
            on_batch=req.on_batch,
            progress_every=req.progress_every,
            what=f"scoring {source.name}",
            unseen=unseen,
            max_unseen_share=req.max_unseen_share,
        )
    for line in unseen.lines():
        log.warning("Unseen categories: %s", line)
    seconds = time.perf_counter() - started
    _log_done(resolved, req.output_uri, rows, seconds, float(stats["rows_per_second"]))
    return ScoringResult(
        output_uri=str(req.output_uri),
        rows=rows,
        seconds=seconds,
        rows_per_second=rows / seconds if seconds > 0 else 0.0,
        model=resolved,
        scored_at=scored_at,
        input_data=str(req.input_data) if req.input_data is not None else req.feast_entity_data,
        files=files,
        flavor=model.flavor,
        empty=rows == 0,
        stream_seconds=float(stats["seconds"]),
        input_digest=input_digest,
        output_digest=output_digest,
        unseen_categories=unseen.report(),
        unseen_lines=unseen.lines(),
    )


def score(
    model_uri: str,
    *,
    target: MlflowTarget,
    output_uri: str,
    input_data: str | None = None,
    input_table: pa.Table | None = None,
    feast_store: Any = None,
    feast_entity_data: str | None = None,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    as_of: datetime | None = None,
    entity_columns: Sequence[str] | None = None,
    passthrough_columns: Sequence[str] = (),
    feature_columns: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    conn_id: str | None = None,
    input_format: str | None = None,
    scored_at: datetime | None = None,
    client: MlflowClient | None = None,
    metadata: Mapping[str, str] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    on_resolved: Callable[[ModelVersion], None] | None = None,
    progress_every: float = 10.0,
    max_unseen_share: float | None = None,
) -> ScoringResult:
    """Score ``input_data`` (a dataset URI), ``input_table`` or Feast features with
    ``model_uri`` into the partition ``output_uri``, atomically.

    :param model_uri: any model URI (``models:/<name>@<alias>``, ``models:/<name>/<version>``,
        ``models:/m-<id>``, ``runs:/<run_id>/<path>``); an alias is resolved once, here.
    :param target: where MLflow lives.
    :param output_uri: the partition directory to (re)write, e.g. ``.../dt=2026-01-05``.
    :param input_table: an Arrow table to score instead of ``input_data``.
    :param feast_entity_data: instead of ``input_data``: entities whose point-in-time features
        are retrieved from ``feast_store`` (a Feast ``FeatureStore``; ``feature_service`` or
        ``features``; rows without an ``event_timestamp`` are scored ``as_of``, default
        ``scored_at``), see :func:`historical_features`.
    :param entity_columns: id columns copied to every output row (must exist in the input);
        ``None`` means those the model's training run recorded (tag ``mlops.entity_columns``,
        none when it recorded none), ``[]`` none.
    :param passthrough_columns: more input columns copied to the output.
    :param feature_columns: override the model's input columns (default: its signature).
    :param batch_size: rows per prediction call (see :data:`DEFAULT_BATCH_SIZE`).
    :param conn_id: connection for remote storage (``s3://``), input and output.
    :param scored_at: the ``scored_at`` of every row (default: now, UTC).
    :param client: an MLflow client of ``target`` to reuse.
    :param metadata: more key/values for the parquet metadata and the ``_SUCCESS`` marker.
    :param on_resolved: called with the resolved model before anything is read (logging).
    :param on_batch: called after each written batch with ``(batch_index, rows_done)``.
    :param max_unseen_share: fail (before the partition is committed) when, in a categorical
        column, more than this share (0..1) of the rows has a category the model's encoder never
        saw in training; ``None`` (default) only reports them (log warning, result
        ``unseen_categories`` and ``reasons``).
    :raises ModelUriError: malformed model URI.
    :raises ModelNotFoundError: unknown model, version, alias, run or logged model.
    :raises ScoringInputError: see :func:`inspect_input` and :func:`score_batches`.
    """
    return _run(_Request(**locals()))  # every parameter above, in one checked request
