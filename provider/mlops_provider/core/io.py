"""Datasets by URI: read, stream and write parquet/CSV atomically, locally or on object storage.

A dataset URI is a plain path, ``file://...``, or a remote URI such as ``s3://bucket/prefix``.
Remote filesystems are resolved through Airflow's ``ObjectStoragePath`` when a connection id is
given (so ``aws_default`` credentials apply), otherwise through fsspec. A dataset is a single
file or a directory of files (optionally hive-partitioned, e.g. ``dt=2026-01-01/``); files and
directories whose names start with ``.`` or ``_`` (staging areas, ``_SUCCESS`` markers) are
ignored when reading.

Writes are atomic: data goes to a hidden staging location next to the target, then is committed
with a rename (local) or a copy + ``_SUCCESS`` marker (object stores). A rerun of the same
partition replaces it; a failure leaves the previous content (or nothing) visible, never a part.
A staging location is named with its writer (``<host>p<pid>``); once a write committed it
removes the staging leftovers of crashed writes to the same target, never a live writer's
(:mod:`mlops_provider.core.leftovers`, docs/scoring.md).

Every committed write has a content digest (``"digest"`` in the write's result, :func:`digest_of`);
content replaced by a different one is kept as a version beside the dataset until the retention
policy removes it (:func:`list_versions`, ``read_table(uri, version=<digest>)``,
:func:`prune_versions`; :mod:`mlops_provider.core.versions`, docs/versioning.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mlops_provider.core.errors import InputError
from mlops_provider.core.failpoints import failpoint
from mlops_provider.core.leftovers import (
    STAGING_MAX_AGE_HOURS,
    leftover_pattern,
    remove_leftovers,
)

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

__all__ = [
    "DatasetError",
    "DatasetNotFound",
    "DatasetFormatError",
    "DatasetEmpty",
    "DatasetWriteError",
    "StorageAccessError",
    "Location",
    "resolve",
    "open_dataset",
    "iter_batches",
    "read_table",
    "read_pandas",
    "write_table",
    "PartitionWriter",
    "write_partition",
    "partition_uri",
    "list_partitions",
    "dataset_name",
    "partition_key",
    "partition_days",
    "join_uri",
    "exists",
    "list_files",
    "copy",
    "write_text",
    "read_text",
    "table_digest",
    "digest_of",
    "list_versions",
    "resolve_version",
    "prune_versions",
    "ProgressLogger",
    "storage_error",
    "probe_writable",
    "remove_staging_leftovers",
    "STAGING_MAX_AGE_HOURS",
    "POINTS",
]

_STAGING_PREFIX = ".staging-"
_TRASH_PREFIX = ".trash-"
#: Crash points of a staged write (``MLOPS_KILL_AT``, :mod:`mlops_provider.core.failpoints`):
#: ``io.staged``: the data is written in the staging area, not committed; ``io.swapped``: a
#: directory was swapped in, the old content (in the staging area now) not yet removed.
POINTS = ("io.staged", "io.swapped")
_SUCCESS = "_SUCCESS"
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


class DatasetError(InputError):
    """A dataset could not be read or written; the message names the URI and the problem."""

    def __init__(self, uri: str, problem: str) -> None:
        self.uri = uri
        self.problem = problem
        super().__init__(f"{uri}: {problem}")


class DatasetNotFound(DatasetError, FileNotFoundError):
    """Nothing exists at the URI."""


class DatasetFormatError(DatasetError):
    """The data exists but is not readable in the expected format (corrupt, wrong format)."""


class DatasetEmpty(DatasetError):
    """The dataset has no files, or no rows where rows were required."""


class DatasetWriteError(DatasetError):
    """The target could not be written (permissions, storage errors)."""


class StorageAccessError(DatasetError):
    """Object storage could not be used: no credentials, endpoint unreachable, access denied or
    no such bucket (:attr:`kind`); the message names the URI and the connection
    (:func:`storage_error`)."""

    def __init__(self, uri: str, problem: str, *, kind: str, conn_id: str | None) -> None:
        self.kind = kind
        self.conn_id = conn_id
        super().__init__(uri, problem)


@dataclass(frozen=True)
class Location:
    """A resolved URI: the fsspec filesystem, the path inside it and the original URI."""

    uri: str
    fs: AbstractFileSystem
    path: str
    protocol: str

    @property
    def is_local(self) -> bool:
        return self.protocol in ("file", "local")

    def child(self, *parts: str) -> Location:
        return Location(
            uri=join_uri(self.uri, *parts),
            fs=self.fs,
            path=posixpath.join(self.path, *parts),
            protocol=self.protocol,
        )


def _protocol(uri: str) -> str:
    if "://" not in uri:
        return "file"
    return uri.split("://", 1)[0].lower()


def join_uri(base: str, *parts: str) -> str:
    """Join path parts onto a URI or path with ``/``."""
    out = str(base).rstrip("/")
    for part in parts:
        out = f"{out}/{str(part).strip('/')}"
    return out


def resolve(
    uri: str | os.PathLike[str],
    *,
    conn_id: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Location:
    """Resolve a URI to a filesystem and a path.

    :param uri: plain path, ``file://`` URI or a remote URI (``s3://`` ...).
    :param conn_id: Airflow connection for remote storage (e.g. ``aws_default``); used through
        ``ObjectStoragePath`` so the connection's credentials apply. Ignored for local paths.
    :param storage_options: fsspec options for remote storage when no connection is used.
    """
    import fsspec

    text = os.fspath(uri)
    if not text:
        raise DatasetError(repr(text), "empty URI")
    protocol = _protocol(text)
    if protocol in ("file", "local"):
        path = text.split("://", 1)[1] if "://" in text else text
        path = os.path.abspath(os.path.expanduser(path))
        return Location(uri=text, fs=fsspec.filesystem("file"), path=path, protocol="file")
    if conn_id:
        try:
            from airflow.sdk import ObjectStoragePath
        except ImportError:  # core is usable without Airflow; fall back to plain fsspec
            pass
        else:
            osp = ObjectStoragePath(text, conn_id=conn_id)
            return Location(uri=text, fs=osp.fs, path=osp.path, protocol=protocol)
    try:
        fs, path = fsspec.core.url_to_fs(text, **dict(storage_options or {}))
    except (ImportError, ValueError) as err:
        raise DatasetError(text, f"no filesystem for scheme {protocol!r}: {err}") from err
    return Location(uri=text, fs=fs, path=path, protocol=protocol)


def _loc(uri: str | os.PathLike[str] | Location, conn_id: str | None) -> Location:
    return uri if isinstance(uri, Location) else resolve(uri, conn_id=conn_id)


def exists(uri: str | os.PathLike[str] | Location, *, conn_id: str | None = None) -> bool:
    """Whether anything exists at the URI."""
    loc = _loc(uri, conn_id)
    return bool(loc.fs.exists(loc.path))


def _visible(name: str) -> bool:
    return not posixpath.basename(name.rstrip("/")).startswith((".", "_"))


def list_files(uri: str | os.PathLike[str] | Location, *, conn_id: str | None = None) -> list[str]:
    """Data files of a dataset (one file, or every visible file below a directory), sorted."""
    loc = _loc(uri, conn_id)
    try:
        info = loc.fs.info(loc.path)
    except FileNotFoundError:
        raise DatasetNotFound(loc.uri, "does not exist") from None
    except PermissionError as err:
        raise DatasetError(loc.uri, f"not readable: {err}") from err
    if info["type"] != "directory":
        return [loc.path]
    files = []
    for path in loc.fs.find(loc.path):
        rel = posixpath.relpath(path, loc.path)
        if all(_visible(part) for part in rel.split("/")):
            files.append(path)
    return sorted(files)


def _detect_format(loc: Location, files: Sequence[str], fmt: str | None) -> str:
    if fmt:
        if fmt not in ("parquet", "csv"):
            raise DatasetFormatError(loc.uri, f"unsupported format {fmt!r} (parquet or csv)")
        return fmt
    lowered = [f.lower() for f in files]
    if lowered and all(f.endswith(CSV_SUFFIXES) for f in lowered):
        return "csv"
    if lowered and any(f.endswith(CSV_SUFFIXES) for f in lowered):
        raise DatasetFormatError(loc.uri, "mixes CSV and other files; pass format= explicitly")
    return "parquet"


def _find_corrupt_file(loc: Location, files: Sequence[str], fmt: str) -> str | None:
    for path in files:
        try:
            if fmt == "parquet":
                pq.read_metadata(path, filesystem=loc.fs)
            else:
                with loc.fs.open(path, "rb") as handle:
                    pa_csv.read_csv(handle)
        except Exception:
            return path
    return None


def _format_error(loc: Location, files: Sequence[str], fmt: str, err: Exception) -> DatasetError:
    bad = _find_corrupt_file(loc, files, fmt)
    where = f" (file {bad})" if bad and bad != loc.path else ""
    return DatasetFormatError(loc.uri, f"not readable as {fmt}{where}: {err}")


def open_dataset(
    uri: str | os.PathLike[str] | Location,
    *,
    conn_id: str | None = None,
    format: str | None = None,  # noqa: A002 - the usual name in pyarrow
    schema: pa.Schema | None = None,
) -> ds.Dataset:
    """Open a dataset lazily (nothing is read but file footers).

    :raises DatasetNotFound: nothing at the URI.
    :raises DatasetEmpty: a directory without data files.
    :raises DatasetFormatError: an unreadable file; the message names it.
    """
    loc = _loc(uri, conn_id)
    files = list_files(loc)
    if not files:
        raise DatasetEmpty(loc.uri, "contains no data files")
    fmt = _detect_format(loc, files, format)
    for path in files:
        try:
            size = loc.fs.size(path)
        except OSError:
            size = None
        if size == 0:
            raise DatasetFormatError(loc.uri, f"file {path} is empty (0 bytes)")
    try:
        partitioning = "hive" if len(files) > 1 or files[0] != loc.path else None
        if fmt == "csv":
            file_format: Any = ds.CsvFileFormat()
        else:
            file_format = ds.ParquetFileFormat()
        return ds.dataset(
            files if files != [loc.path] else loc.path,
            filesystem=loc.fs,
            format=file_format,
            schema=schema,
            partitioning=partitioning if files != [loc.path] else None,
            partition_base_dir=loc.path if files != [loc.path] else None,
        )
    except (pa.ArrowInvalid, OSError) as err:
        raise _format_error(loc, files, fmt, err) from err


def iter_batches(
    uri: str | os.PathLike[str] | Location,
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = 65_536,
    conn_id: str | None = None,
    format: str | None = None,  # noqa: A002
) -> Iterator[pa.RecordBatch]:
    """Stream record batches; memory stays bounded by ``batch_size`` rows (plus readahead).

    :raises DatasetFormatError: a missing column or an unreadable file (named).
    """
    loc = _loc(uri, conn_id)
    dataset = open_dataset(loc, format=format)
    _check_columns(loc, dataset.schema, columns)
    try:
        scanner = dataset.scanner(
            columns=list(columns) if columns is not None else None,
            batch_size=batch_size,
            batch_readahead=2,
            fragment_readahead=1,
        )
        yield from scanner.to_batches()
    except (pa.ArrowInvalid, OSError) as err:
        raise _format_error(loc, list_files(loc), _detect_format(loc, [], format), err) from err


def _check_columns(loc: Location, schema: pa.Schema, columns: Sequence[str] | None) -> None:
    if columns is None:
        return
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise DatasetFormatError(
            loc.uri, f"missing column(s) {missing}; available: {list(schema.names)}"
        )


def read_table(
    uri: str | os.PathLike[str] | Location,
    *,
    columns: Sequence[str] | None = None,
    conn_id: str | None = None,
    format: str | None = None,  # noqa: A002
    filter: Any = None,  # noqa: A002 - pyarrow's name
    require_rows: bool = False,
    version: str | None = None,
) -> pa.Table:
    """Read a dataset (or the selected columns / filtered rows) into one Arrow table.

    :param require_rows: raise :class:`DatasetEmpty` when the result has no rows.
    :param version: read the content with this digest: the current one, or a retained
        version (:func:`resolve_version`; :class:`DatasetNotFound` names the digests available).
    """
    loc = _loc(uri, conn_id)
    if version is not None:
        loc = _version_loc(loc, version)
    dataset = open_dataset(loc, format=format)
    _check_columns(loc, dataset.schema, columns)
    try:
        table = dataset.to_table(columns=list(columns) if columns else None, filter=filter)
    except (pa.ArrowInvalid, OSError) as err:
        raise _format_error(loc, list_files(loc), _detect_format(loc, [], format), err) from err
    if require_rows and table.num_rows == 0:
        raise DatasetEmpty(loc.uri, "has no rows")
    return table


def read_pandas(
    uri: str | os.PathLike[str] | Location,
    *,
    columns: Sequence[str] | None = None,
    conn_id: str | None = None,
    format: str | None = None,  # noqa: A002
    require_rows: bool = False,
) -> pd.DataFrame:
    """Read a dataset into pandas (see :func:`read_table`)."""
    table = read_table(
        uri, columns=columns, conn_id=conn_id, format=format, require_rows=require_rows
    )
    return table.to_pandas()


def _as_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"expected a pyarrow Table/RecordBatch or a pandas DataFrame, got {type(data)}")


def _staging_place(loc: Location) -> tuple[str, str, str]:
    """``(parent path, parent URI, name)``: where the staging areas of a write to ``loc`` go
    and the target's name in them (see :func:`_staging_sibling`)."""
    path = loc.path.rstrip("/")
    segments = path.split("/")
    first = next((i for i, seg in enumerate(segments) if i and _is_partition_segment(seg)), None)
    keep = len(segments) - 1 if first is None else first - 1
    name = "-".join(segments[keep:])
    parent = "/".join(segments[:keep])
    uri_parts = loc.uri.rstrip("/").split("/")
    base_uri = "/".join(uri_parts[: len(uri_parts) - (len(segments) - keep)]) or "."
    return parent, base_uri, name


def _staging_sibling(loc: Location, prefix: str = _STAGING_PREFIX) -> Location:
    """Where a write to ``loc`` is staged before its commit: hidden, on the same filesystem,
    named ``<prefix><name>-<owner>-<id>`` (owner: :func:`~mlops_provider.core.processes.this_owner`,
    so the next writer can tell a crashed write's leftovers from a live one's,
    :func:`remove_leftovers`).

    Beside the target, except for a partition of a hive-partitioned dataset
    (``.../<dataset>/dt=2026-01-05``): its staging goes beside the dataset's directory
    (``.../.staging-<dataset>-dt=2026-01-05-<owner>-<id>``), outside it, so that readers listing
    the dataset recursively while another partition is being written (Feast's file offline store
    through dask, which does not skip hidden directories) never meet a half-written one.
    """
    from mlops_provider.core.processes import this_owner

    parent, base_uri, name = _staging_place(loc)
    leaf = f"{prefix}{name}-{this_owner()}-{uuid.uuid4().hex[:12]}"
    return Location(
        uri=join_uri(base_uri, leaf),
        fs=loc.fs,
        path=posixpath.join(parent, leaf) if parent else leaf,
        protocol=loc.protocol,
    )


def remove_staging_leftovers(
    uri: str | os.PathLike[str] | Location,
    *,
    conn_id: str | None = None,
    max_age_hours: float = STAGING_MAX_AGE_HOURS,
) -> list[dict[str, Any]]:
    """Remove the staging and trash areas that crashed writes to ``uri`` left (every write
    does this once it committed; see
    :func:`mlops_provider.core.leftovers.remove_leftovers` for what is removed).

    :returns: what was removed: ``{"path", "owner", "age_seconds", "reason"}``.
    """
    loc = _loc(uri, conn_id)
    parent, base_uri, name = _staging_place(loc)
    if not parent:
        return []
    where = Location(uri=base_uri, fs=loc.fs, path=parent, protocol=loc.protocol)
    pattern = leftover_pattern((_STAGING_PREFIX, _TRASH_PREFIX), name)
    return remove_leftovers(where, pattern, max_age_hours=max_age_hours)


def _clean_after_commit(target: Location) -> None:
    """Remove crashed writes' leftovers for ``target``; never fails the committed write."""
    try:
        remove_staging_leftovers(target)
    except Exception as err:
        log.warning("Could not remove staging leftovers of %s: %s", target.uri, err)


def _write_file(table: pa.Table, loc: Location, fmt: str, metadata: Mapping[str, str]) -> None:
    if fmt == "csv":
        with loc.fs.open(loc.path, "wb") as handle:
            pa_csv.write_csv(table, handle)
        return
    if metadata:
        existing = table.schema.metadata or {}
        table = table.replace_schema_metadata(
            {**existing, **{k.encode(): v.encode() for k, v in metadata.items()}}
        )
    with loc.fs.open(loc.path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def _commit(staged: Location, target: Location, digest: str | None = None) -> None:
    """Replace ``target`` by ``staged`` (a file or a directory) whose content digest is
    ``digest``; the replaced content is retained as a version first when its digest differs
    (:func:`mlops_provider.core.versions.before_commit`), so a crash at any point leaves the old
    or the new content visible and the old one retained."""
    from mlops_provider.core import versions

    failpoint("io.staged")
    root = versions.before_commit(staged, target, digest)
    _replace(staged, target)
    versions.after_commit(root)
    _clean_after_commit(target)


def _replace(staged: Location, target: Location) -> None:
    fs = target.fs
    if target.is_local:
        if not os.path.isdir(staged.path) and not os.path.isdir(target.path):
            os.replace(staged.path, target.path)  # a file over a file: atomic
            return
        if os.path.lexists(target.path) and _exchange(staged.path, target.path):
            failpoint("io.swapped")
            fs.rm(staged.path, recursive=True)  # now the old content
            return
        trash = None
        if os.path.lexists(target.path):
            trash = _staging_sibling(target, _TRASH_PREFIX).path
            os.replace(target.path, trash)
        os.replace(staged.path, target.path)
        if trash:
            fs.rm(trash, recursive=True)
        return
    # Object stores have no rename: replace the old objects by copies of the staged ones, with
    # the _SUCCESS marker copied last so readers that honour it never see a partial partition.
    if fs.exists(target.path):
        fs.rm(target.path, recursive=True)
    if fs.isfile(staged.path):
        fs.copy(staged.path, target.path)
        fs.rm(staged.path)
        return
    files = sorted(fs.find(staged.path), key=lambda p: posixpath.basename(p) == _SUCCESS)
    for path in files:
        fs.copy(path, posixpath.join(target.path, posixpath.relpath(path, staged.path)))
    fs.rm(staged.path, recursive=True)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two local paths (Linux ``renameat2(RENAME_EXCHANGE)``): a directory is
    replaced without a moment where neither exists. False, changing nothing, where the platform
    or the filesystem cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(done == 0)


def _ensure_parent(loc: Location) -> None:
    parent = posixpath.dirname(loc.path.rstrip("/"))
    try:
        loc.fs.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise DatasetWriteError(loc.uri, f"cannot create parent directory {parent}: {err}") from err


def write_table(
    data: Any,
    uri: str | os.PathLike[str] | Location,
    *,
    conn_id: str | None = None,
    format: str | None = None,  # noqa: A002
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write a table to a single file atomically (staging file + rename), replacing any old one.

    :param data: a pyarrow Table/RecordBatch or a pandas DataFrame.
    :param format: ``parquet`` (default) or ``csv`` (default for ``.csv`` names).
    :param metadata: key/value pairs stored in the parquet schema metadata.
    :returns: ``{"uri", "rows", "bytes", "digest"}``; the digest (of the table for parquet,
        stored in its metadata as ``mlops.digest``; of the bytes for CSV) is :func:`digest_of`.
    """
    from mlops_provider.core import versions

    loc = _loc(uri, conn_id)
    table = _as_table(data)
    fmt = format or ("csv" if loc.path.lower().endswith(CSV_SUFFIXES) else "parquet")
    _ensure_parent(loc)
    staged = _staging_sibling(loc)
    digest = None
    meta = dict(metadata or {})
    if fmt == "parquet":
        digest = versions.table_digest(table)
        meta[versions.DIGEST_KEY] = digest
        meta[versions.COMMITTED_AT_KEY] = _utc_now()
    try:
        _write_file(table, staged, fmt, meta)
        if digest is None:
            digest = versions.digest_of(staged)
        _commit(staged, loc, digest)
    except OSError as err:
        with contextlib.suppress(OSError):
            loc.fs.rm(staged.path)
        raise DatasetWriteError(loc.uri, f"write failed: {err}") from err
    except BaseException:
        with contextlib.suppress(OSError):
            loc.fs.rm(staged.path)
        raise
    return {
        "uri": loc.uri,
        "rows": table.num_rows,
        "bytes": int(loc.fs.size(loc.path)),
        "digest": digest,
    }


def _utc_now() -> str:
    from datetime import timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class PartitionWriter:
    """Stream batches into a partition directory and commit it atomically.

    Use as a context manager. Batches are written to parquet part files in a hidden staging
    directory beside the target; on a clean exit the staging directory replaces the target
    (a rerun replaces, never appends); on an exception it is removed and the target is untouched.
    A ``_SUCCESS`` file with the row count, ``metadata``, the content ``digest`` (computed
    while the batches stream, see :class:`~mlops_provider.core.versions.TableDigest`) and
    ``committed_at`` is written last; :attr:`digest` holds it after the commit.

    :param uri: the partition directory, e.g. ``.../predictions/dt=2026-01-01``.
    :param schema: schema of the data; required to write an empty partition.
    :param rows_per_file: start a new part file after this many rows.
    """

    uri: str | os.PathLike[str] | Location
    schema: pa.Schema | None = None
    conn_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    rows_per_file: int = 5_000_000
    rows: int = 0
    files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loc = _loc(self.uri, self.conn_id)
        self._staged: Location | None = None
        self._writer: pq.ParquetWriter | None = None
        self._handle: Any = None
        self._file_rows = 0
        self._digest: Any = None
        self.digest: str | None = None

    @property
    def location(self) -> Location:
        return self._loc

    def __enter__(self) -> PartitionWriter:
        _ensure_parent(self._loc)
        self._staged = _staging_sibling(self._loc)
        try:
            self._staged.fs.makedirs(self._staged.path, exist_ok=True)
        except OSError as err:
            raise DatasetWriteError(self._loc.uri, f"not writable: {err}") from err
        return self

    def _schema_with_metadata(self, schema: pa.Schema) -> pa.Schema:
        meta = dict(schema.metadata or {})
        meta.update({k.encode(): str(v).encode() for k, v in self.metadata.items()})
        return schema.with_metadata(meta)

    def _open_part(self, schema: pa.Schema) -> None:
        assert self._staged is not None
        name = f"part-{len(self.files):05d}.parquet"
        path = posixpath.join(self._staged.path, name)
        self._handle = self._staged.fs.open(path, "wb")
        self._writer = pq.ParquetWriter(
            self._handle, self._schema_with_metadata(schema), compression="zstd"
        )
        self.files.append(name)
        self._file_rows = 0

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def write(self, data: Any) -> None:
        """Append a RecordBatch, Table or DataFrame to the partition."""
        table = _as_table(data)
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        if self._writer is None or self._file_rows >= self.rows_per_file:
            self._close_part()
            self._open_part(self.schema)
        assert self._writer is not None
        self._writer.write_table(table)
        if self._digest is None:
            from mlops_provider.core.versions import TableDigest

            self._digest = TableDigest(self.schema)
        self._digest.update(table)
        self.rows += table.num_rows
        self._file_rows += table.num_rows

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._staged is not None
        try:
            self._close_part()
            if exc_type is not None:
                return
            if not self.files:
                if self.schema is None:
                    raise DatasetWriteError(
                        self._loc.uri, "no rows were written and no schema was given"
                    )
                self._open_part(self.schema)
                self._close_part()
            if self._digest is None:
                from mlops_provider.core.versions import TableDigest

                self._digest = TableDigest(self.schema)
            self.digest = self._digest.hexdigest()
            marker = {
                "rows": self.rows,
                "files": self.files,
                **dict(self.metadata),
                "digest": self.digest,
                "committed_at": _utc_now(),
            }
            with self._staged.fs.open(posixpath.join(self._staged.path, _SUCCESS), "w") as fh:
                fh.write(json.dumps(marker, default=str))
            _commit(self._staged, self._loc, self.digest)
            self._staged = None
        except OSError as err:
            raise DatasetWriteError(self._loc.uri, f"commit failed: {err}") from err
        finally:
            if self._staged is not None:
                with contextlib.suppress(OSError):
                    self._staged.fs.rm(self._staged.path, recursive=True)


def write_partition(
    data: Any | Iterable[Any],
    uri: str | os.PathLike[str] | Location,
    *,
    schema: pa.Schema | None = None,
    conn_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write a table, DataFrame or iterable of batches as a partition directory, atomically.

    :returns: ``{"uri", "rows", "files", "digest"}``.
    """
    with PartitionWriter(uri, schema=schema, conn_id=conn_id, metadata=metadata or {}) as writer:
        if isinstance(data, (pa.Table, pa.RecordBatch)) or type(data).__name__ == "DataFrame":
            writer.write(data)
        else:
            for chunk in data:
                writer.write(chunk)
    return {
        "uri": writer.location.uri,
        "rows": writer.rows,
        "files": list(writer.files),
        "digest": writer.digest,
    }


def partition_uri(
    base_uri: str,
    when: date | datetime | str,
    *,
    key: str = "dt",
    fmt: str = "%Y-%m-%d",
) -> str:
    """``<base_uri>/<key>=<when formatted>``: the partition for a data interval's start."""
    if isinstance(when, str):
        from datetime import datetime as _dt

        when = _dt.fromisoformat(when.replace("Z", "+00:00"))
    return join_uri(base_uri, f"{key}={when.strftime(fmt)}")


def _is_partition_segment(part: str) -> bool:
    return "=" in part and not part.startswith("=")


def _uri_parts(uri: str) -> list[str]:
    path = uri.split("://", 1)[1] if "://" in uri else uri
    return [p for p in path.split("/") if p and p != "."]


def dataset_name(uri: str | os.PathLike[str]) -> str:
    """A short name for a dataset URI: its last path segment that is not a partition or a
    file. ``.../raw/dt=2026-01-05/activity.parquet`` -> ``raw``, ``.../train.parquet`` ->
    ``train``, ``.../predictions/`` -> ``predictions``."""
    parts = _uri_parts(os.fspath(uri))
    if not parts:
        return "dataset"
    stem = None
    if parts[-1].lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES + (".json",)):
        stem = parts[-1].split(".", 1)[0]
        parts = parts[:-1]
    partitioned = False
    while parts and _is_partition_segment(parts[-1]):
        parts = parts[:-1]
        partitioned = True
    if partitioned and parts:
        return parts[-1]
    return stem or (parts[-1] if parts else "dataset")


def partition_key(uri: str | os.PathLike[str]) -> str | None:
    """The hive partition segments of a URI (``dt=2026-01-05``, ``a=1/b=2``), or None."""
    segments = [p for p in _uri_parts(os.fspath(uri)) if _is_partition_segment(p)]
    return "/".join(segments) if segments else None


def list_partitions(
    base_uri: str | os.PathLike[str], *, key: str = "dt", conn_id: str | None = None
) -> dict[date, str]:
    """``{day: uri}`` of the ``<key>=YYYY-MM-DD`` partition directories directly under
    ``base_uri``, oldest first. Hidden (staging) directories and other names are ignored; a
    missing base gives an empty mapping."""
    base = os.fspath(base_uri)
    loc = resolve(base, conn_id=conn_id)
    try:
        entries = loc.fs.ls(loc.path, detail=True)
    except FileNotFoundError:
        return {}
    out: dict[date, str] = {}
    prefix = f"{key}="
    for entry in entries:
        if entry.get("type") != "directory":
            continue
        leaf = posixpath.basename(str(entry["name"]).rstrip("/"))
        if not leaf.startswith(prefix):
            continue
        try:
            day = date.fromisoformat(leaf[len(prefix) :][:10])
        except ValueError:
            continue
        out[day] = join_uri(base, leaf)
    return dict(sorted(out.items()))


def partition_days(
    base_uri: str | os.PathLike[str], *, key: str = "dt", conn_id: str | None = None
) -> list[date]:
    """Days of the ``<key>=YYYY-MM-DD`` partitions under ``base_uri``, sorted."""
    return list(list_partitions(base_uri, key=key, conn_id=conn_id))


def copy(
    src: str | os.PathLike[str] | Location,
    dst: str | os.PathLike[str] | Location,
    *,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Copy a file or directory to ``dst`` (staged and committed); the source is kept.

    A copied directory gets a ``_SUCCESS`` marker with its digest when it has none.

    :returns: ``{"uri", "digest"}``.
    """
    from mlops_provider.core import versions

    source = _loc(src, conn_id)
    target = _loc(dst, conn_id)
    if not source.fs.exists(source.path):
        raise DatasetNotFound(source.uri, "does not exist")
    _ensure_parent(target)
    staged = _staging_sibling(target)
    try:
        if source.fs is target.fs or (source.is_local and target.is_local):
            source.fs.copy(source.path, staged.path, recursive=True)
        else:
            for path in list_files(source):
                rel = posixpath.relpath(path, source.path) if path != source.path else ""
                dest = posixpath.join(staged.path, rel) if rel else staged.path
                target.fs.makedirs(posixpath.dirname(dest), exist_ok=True)
                with source.fs.open(path, "rb") as fin, target.fs.open(dest, "wb") as fout:
                    fout.write(fin.read())
        digest = versions.digest_of(staged)
        marker = posixpath.join(staged.path, _SUCCESS)
        if target.fs.isdir(staged.path) and not target.fs.exists(marker):
            with target.fs.open(marker, "w") as handle:
                handle.write(json.dumps({"digest": digest, "committed_at": _utc_now()}))
        _commit(staged, target, digest)
    except OSError as err:
        with contextlib.suppress(OSError):
            target.fs.rm(staged.path, recursive=True)
        raise DatasetWriteError(target.uri, f"copy from {source.uri} failed: {err}") from err
    return {"uri": target.uri, "digest": digest}


def write_text(
    text: str, uri: str | os.PathLike[str] | Location, *, conn_id: str | None = None
) -> dict[str, Any]:
    """Write a small text file (report, JSON) atomically, UTF-8.

    :returns: ``{"uri", "bytes", "digest"}`` (the digest of the bytes).
    """
    from mlops_provider.core import versions

    loc = _loc(uri, conn_id)
    _ensure_parent(loc)
    staged = _staging_sibling(loc)
    data = text.encode("utf-8")
    digest = versions.bytes_digest(data)
    try:
        with loc.fs.open(staged.path, "wb") as handle:
            handle.write(data)
        _commit(staged, loc, digest)
    except OSError as err:
        with contextlib.suppress(OSError):
            loc.fs.rm(staged.path)
        raise DatasetWriteError(loc.uri, f"write failed: {err}") from err
    return {"uri": loc.uri, "bytes": len(data), "digest": digest}


def read_text(
    uri: str | os.PathLike[str] | Location,
    *,
    conn_id: str | None = None,
    version: str | None = None,
) -> str:
    """Read a small text file (``version``: the content with that digest, see
    :func:`resolve_version`)."""
    loc = _loc(uri, conn_id)
    if version is not None:
        loc = _version_loc(loc, version)
    try:
        with loc.fs.open(loc.path, "r", encoding="utf-8") as handle:
            return str(handle.read())
    except FileNotFoundError:
        raise DatasetNotFound(loc.uri, "does not exist") from None


def table_digest(table: pa.Table) -> str:
    """A content digest of a table (schema + values), stable across writes of the same data:
    independent of how its rows are chunked (part files, row groups) and of metadata
    (:class:`mlops_provider.core.versions.TableDigest`)."""
    from mlops_provider.core import versions

    return versions.table_digest(table)


def digest_of(uri: str | os.PathLike[str] | Location, *, conn_id: str | None = None) -> str:
    """The content digest of the dataset at ``uri``: recorded at commit (``_SUCCESS`` marker,
    parquet metadata ``mlops.digest``), else computed (data written by others).

    :raises DatasetNotFound: nothing at ``uri``.
    :raises DatasetFormatError: data without a recorded digest that cannot be read.
    """
    from mlops_provider.core import versions

    loc = _loc(uri, conn_id)
    if not loc.fs.exists(loc.path):
        raise DatasetNotFound(loc.uri, "does not exist")
    try:
        return versions.digest_of(loc)
    except (pa.ArrowInvalid, OSError) as err:
        raise DatasetFormatError(loc.uri, f"cannot compute its digest: {err}") from err


def list_versions(
    uri: str | os.PathLike[str] | Location, *, conn_id: str | None = None
) -> list[dict[str, Any]]:
    """The current content of ``uri`` (first, ``"current": True``) and its retained versions,
    newest replaced first: ``{"digest", "current", "uri", "committed_at", "retained_at",
    "rows"}`` (docs/versioning.md); ``uri`` is where each is read."""
    from mlops_provider.core import versions

    return versions.list_versions(_loc(uri, conn_id))


def resolve_version(
    uri: str | os.PathLike[str] | Location, digest: str, *, conn_id: str | None = None
) -> str:
    """Where the content of ``uri`` with ``digest`` is read: ``uri`` itself when its current
    content has that digest, else the retained version's location.

    :raises DatasetNotFound: no such version; the message names ``uri``, the digest asked and
        the digests available.
    """
    return _version_loc(_loc(uri, conn_id), digest).uri


def _version_loc(loc: Location, digest: str) -> Location:
    from mlops_provider.core import versions

    try:
        return versions.locate_version(loc, digest)
    except versions.VersionNotFound as err:
        raise DatasetNotFound(err.uri, err.problem) from None


def prune_versions(
    uri_or_root: str | os.PathLike[str] | Location,
    *,
    max_age_days: float | None = None,
    keep: int | None = None,
    use_settings: bool = True,
    now: datetime | None = None,
    conn_id: str | None = None,
) -> list[dict[str, Any]]:
    """Remove the retained versions (never the current content) below ``uri_or_root`` that
    the retention policy no longer keeps; see :func:`mlops_provider.core.versions.prune_versions`.

    :param max_age_days: remove versions replaced more than this many days ago.
    :param keep: keep at most this many retained versions per location.
    :param use_settings: fill what is not given from the settings ``versions_max_age_days``
        and ``versions_keep``; ``False``: ``None`` means no limit.
    :returns: what was removed (``uri``, ``digest``, ``version_uri``, ``retained_at``, ``reason``).
    """
    from mlops_provider.core import versions

    policy = versions.RetentionPolicy(max_age_days=max_age_days, keep=keep)
    if use_settings:
        settings = versions.RetentionPolicy.from_settings()
        policy = versions.RetentionPolicy(
            max_age_days=settings.max_age_days if max_age_days is None else max_age_days,
            keep=settings.keep if keep is None else keep,
        )
    return versions.prune_versions(_loc(uri_or_root, conn_id), policy=policy, now=now)


class ProgressLogger:
    """Log rows done, rows/s and the ETA at most every ``every_seconds`` while streaming."""

    def __init__(
        self,
        what: str,
        *,
        total_rows: int | None = None,
        every_seconds: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.what = what
        self.total_rows = total_rows
        self.every_seconds = every_seconds
        self.log = logger or log
        self.rows = 0
        self.started = time.perf_counter()
        self._last = self.started

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    def update(self, rows: int) -> None:
        self.rows += rows
        now = time.perf_counter()
        if now - self._last >= self.every_seconds:
            self._last = now
            self.log.info("%s", self.message())

    def message(self) -> str:
        rate = self.rows_per_second
        text = f"{self.what}: {self.rows:,} rows done, {rate:,.0f} rows/s"
        if self.total_rows:
            pct = 100.0 * self.rows / self.total_rows
            eta = (self.total_rows - self.rows) / rate if rate > 0 else float("nan")
            text += f", {pct:.1f}% of {self.total_rows:,}, ETA {eta:,.0f} s"
        return text

    def done(self) -> dict[str, float]:
        self.log.info("%s (finished in %.1f s)", self.message(), self.elapsed)
        return {"rows": self.rows, "seconds": self.elapsed, "rows_per_second": self.rows_per_second}


def count_rows(uri: str | os.PathLike[str] | Location, *, conn_id: str | None = None) -> int:
    """Row count of a dataset from metadata (parquet footers) where possible."""
    return int(open_dataset(_loc(uri, conn_id)).count_rows())


# ------------------------------------------------------------------------------------------
# Object-storage access problems, and a probe of an output location before any work
# ------------------------------------------------------------------------------------------
NO_CREDENTIALS = "no credentials"
ENDPOINT_UNREACHABLE = "endpoint unreachable"
ACCESS_DENIED = "access denied"
NO_BUCKET = "bucket does not exist"
#: Exception class names (botocore, aiohttp, builtins) -> the kind of access problem.
_ACCESS_KINDS = {
    "NoCredentialsError": NO_CREDENTIALS,
    "PartialCredentialsError": NO_CREDENTIALS,
    "CredentialRetrievalError": NO_CREDENTIALS,
    "EndpointConnectionError": ENDPOINT_UNREACHABLE,
    "ConnectTimeoutError": ENDPOINT_UNREACHABLE,
    "ClientConnectorError": ENDPOINT_UNREACHABLE,
    "ServerTimeoutError": ENDPOINT_UNREACHABLE,
    "ConnectionRefusedError": ENDPOINT_UNREACHABLE,
    "PermissionError": ACCESS_DENIED,
}
#: Error codes of S3 (in a ``ClientError``'s message) -> the kind of access problem.
_ACCESS_CODES = {
    "AccessDenied": ACCESS_DENIED,
    "InvalidAccessKeyId": ACCESS_DENIED,
    "SignatureDoesNotMatch": ACCESS_DENIED,
    "ExpiredToken": ACCESS_DENIED,
    "AllAccessDisabled": ACCESS_DENIED,
    "Forbidden": ACCESS_DENIED,
    "NoSuchBucket": NO_BUCKET,
}
_HINTS = {
    NO_CREDENTIALS: "give the connection an access key (login/password) or a role",
    ENDPOINT_UNREACHABLE: "check the endpoint (the connection's extra endpoint_url) and the "
    "network",
    ACCESS_DENIED: "the credentials in use may not write/read this location",
    NO_BUCKET: "create the bucket or correct the URI",
}


def _access_kind(err: BaseException) -> str | None:
    """The kind of object-storage access problem ``err`` (or what caused it) is, or None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for cls in type(current).__mro__:
            if cls.__name__ in _ACCESS_KINDS:
                return _ACCESS_KINDS[cls.__name__]
        text = str(current)
        for code, kind in _ACCESS_CODES.items():
            if code in text:
                return kind
        if isinstance(current, FileNotFoundError) and "bucket" in text.lower():
            return NO_BUCKET
        current = current.__cause__ or current.__context__
    return None


def _connection_defined(conn_id: str) -> bool | None:
    """Whether the Airflow connection exists (None: unknown, e.g. outside Airflow)."""
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        return None
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    except Exception:  # no metadata database, no task context...: unknown
        return None
    return True


def _describe_access(loc: Location | None, conn_id: str | None) -> str:
    """Which connection (and endpoint, anonymous access) the filesystem of ``loc`` uses."""
    if not conn_id:
        return (
            "no Airflow connection (aws_conn_id is None): boto's default credential chain "
            "(environment, ~/.aws, instance role) was used"
        )
    text = f"connection {conn_id!r}"
    if _connection_defined(conn_id) is False:
        text += (
            f", which is not defined (define it, e.g. as AIRFLOW_CONN_{conn_id.upper()}, or "
            "pass another aws_conn_id)"
        )
    endpoint = getattr(loc.fs, "endpoint_url", None) if loc is not None else None
    if endpoint:
        text += f", endpoint {endpoint}"
    if loc is not None and getattr(loc.fs, "anon", False):
        text += ", no credentials found: requests were anonymous"
    return text


def storage_error(
    err: BaseException,
    uri: str | os.PathLike[str] | Location,
    *,
    conn_id: str | None = None,
) -> StorageAccessError | None:
    """``err`` as a :class:`StorageAccessError` naming the URI, the connection and the kind of
    problem (no credentials, endpoint unreachable, access denied, bucket does not exist), or
    None when ``err`` is not an object-storage access problem (or ``uri`` is local).

    The raw errors (botocore's ``Unable to locate credentials``, ``Could not connect to the
    endpoint URL``, s3fs's ``PermissionError``) name neither the dataset nor the connection.
    """
    text = uri.uri if isinstance(uri, Location) else os.fspath(uri)
    if _protocol(text) in ("file", "local"):
        return None
    kind = _access_kind(err)
    if kind is None:
        return None
    loc: Location | None = uri if isinstance(uri, Location) else None
    if loc is None:
        with contextlib.suppress(Exception):
            loc = resolve(text, conn_id=conn_id)
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    hint = _HINTS[kind]
    if not conn_id and kind == NO_CREDENTIALS:
        hint = "pass aws_conn_id: an aws connection with an access key or a role"
    elif kind == ACCESS_DENIED and loc is not None and getattr(loc.fs, "anon", False):
        hint = f"anonymous requests may not use this location; {_HINTS[NO_CREDENTIALS]}"
    problem = f"{kind} ({_describe_access(loc, conn_id)}): {detail}; {hint}"
    return StorageAccessError(text, problem, kind=kind, conn_id=conn_id)


def _probe_local(loc: Location) -> None:
    """The nearest existing ancestor of ``loc`` is a writable directory."""
    path = loc.path
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if not os.path.isdir(path):
        raise DatasetWriteError(
            loc.uri, f"{path} exists and is not a directory; the location is not writable"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise DatasetWriteError(loc.uri, f"directory {path} is not writable (permission denied)")


def probe_writable(uri: str | os.PathLike[str] | Location, *, conn_id: str | None = None) -> None:
    """Check cheaply, before any work, that ``uri`` can be written.

    Local: the nearest existing ancestor must be a writable directory (nothing is created).
    Object storage: a small probe object is written where the write will be staged (a hidden
    name beside the target) and deleted, which checks the credentials, the endpoint, the
    bucket and the permission to write in one request or two.

    :raises StorageAccessError: no credentials, endpoint unreachable, access denied, no such
        bucket; the message names the URI and the connection.
    :raises DatasetWriteError: any other reason the location cannot be written (named).
    """
    loc = _loc(uri, conn_id)
    if loc.is_local:
        _probe_local(loc)
        return
    staged = _staging_sibling(loc)
    probe = f"{staged.path}.probe"
    try:
        with loc.fs.open(probe, "wb") as handle:
            handle.write(b"probe")
        loc.fs.rm(probe)
    except Exception as err:  # botocore/aiohttp errors are not OSError
        problem = storage_error(err, loc, conn_id=conn_id)
        if problem is not None:
            raise problem from err
        if isinstance(err, OSError):
            raise DatasetWriteError(loc.uri, f"not writable: {err}") from err
        raise
