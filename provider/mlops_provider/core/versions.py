"""Content digests and retained versions of the datasets in the lake (docs/versioning.md).

**Digest.** Every committed write has a content digest (16 hex characters of a SHA-256):

- parquet data (a file, or a directory of parquet part files): a *logical* digest of the
  table, :class:`TableDigest`: the schema (names, types, nullability; no metadata) and the
  values, hashed in slices of :data:`DIGEST_BATCH_ROWS` rows whatever the part files, row
  groups or in-memory chunks, with nulls, dictionaries and booleans put in one canonical form.
  The same rows written again, split differently or with other parquet metadata, have the same
  digest;
- anything else (CSV, HTML, JSON): the SHA-256 of the bytes (a directory: of its files' names
  and digests).

It is recorded with the data: in the ``_SUCCESS`` marker of a directory (``"digest"``,
``"committed_at"``), in the schema metadata of a single parquet file (``mlops.digest``,
``mlops.committed_at``); other files are small and hashed when asked. :func:`digest_of` reads
the recorded digest, or computes it (data written by others).

**Versions.** When a commit replaces content whose digest differs, the old content is kept in
the version store *beside* the dataset directory, never inside it (Feast's file offline store
reads dataset directories recursively, hidden entries included)::

    <lake>/predictions/dt=2026-01-05/            the current partition
    <lake>/_versions/predictions/dt=2026-01-05/@<digest>/part-00000.parquet, _SUCCESS, _VERSION
    <lake>/training/train.parquet                 a single file
    <lake>/_versions/training/train.parquet/@<digest>/train.parquet, _VERSION

``_VERSION`` (JSON: digest, uri, committed_at, retained_at, rows) is written last: a version
without it is incomplete and ignored. :func:`list_versions`, :func:`resolve_version`.

**Retention.** :class:`RetentionPolicy`: retained versions replaced more than
``versions_max_age_days`` days ago (default 30) and those beyond the newest
``versions_keep`` per location (default: no limit) are removed, when a location retains a new
version and by :func:`prune_versions`. The current content is never removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlops_provider.core.errors import InputError
from mlops_provider.core.leftovers import LEFTOVER_TAIL, remove_leftovers
from mlops_provider.core.processes import this_owner

if TYPE_CHECKING:
    from mlops_provider.core.io import Location

log = logging.getLogger(__name__)

__all__ = [
    "COMMITTED_AT_KEY",
    "DIGEST_BATCH_ROWS",
    "DIGEST_KEY",
    "MANIFEST",
    "VERSIONS_DIR",
    "RetentionPolicy",
    "TableDigest",
    "VersionNotFound",
    "bytes_digest",
    "digest_of",
    "list_versions",
    "locate_version",
    "prune_versions",
    "table_digest",
    "version_root",
]

#: Rows hashed together: a table's digest does not depend on how its rows are chunked.
DIGEST_BATCH_ROWS = 65_536
#: Parquet schema metadata keys of a single file's digest and commit time.
DIGEST_KEY = "mlops.digest"
COMMITTED_AT_KEY = "mlops.committed_at"
#: The version store's directory, beside the dataset directory.
VERSIONS_DIR = "_versions"
#: The manifest of a retained version, written last.
MANIFEST = "_VERSION"
_VERSION_PREFIX = "@"
_DIGEST_CHARS = 16
# the lake's conventions, as in mlops_provider.core.io (which builds on this module)
_SUCCESS = "_SUCCESS"
_STAGING_PREFIX = ".staging-"
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


class VersionNotFound(InputError, FileNotFoundError):
    """No content with the digest asked for (io raises it as ``DatasetNotFound``)."""

    def __init__(self, uri: str, problem: str) -> None:
        self.uri = uri
        self.problem = problem
        super().__init__(f"{uri}: {problem}")


def _visible(name: str) -> bool:
    return not posixpath.basename(name.rstrip("/")).startswith((".", "_"))


def _is_partition_segment(part: str) -> bool:
    return "=" in part and not part.startswith("=")


def _as_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    return pa.Table.from_pandas(data, preserve_index=False)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


# ==========================================================================================
# Digests
# ==========================================================================================
def _zero(type_: pa.DataType) -> Any:
    """The value put under nulls before hashing (None: the type is hashed as it is)."""
    if pa.types.is_integer(type_) or pa.types.is_floating(type_):
        return pa.scalar(0, type=type_)
    if pa.types.is_decimal(type_):
        return pa.scalar(0, type=pa.int64()).cast(type_)
    if pa.types.is_temporal(type_):
        width = pa.int32() if type_ in (pa.date32(), pa.time32("s"), pa.time32("ms")) else None
        return pa.scalar(0, type=width or pa.int64()).cast(type_)
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return pa.scalar("", type=type_)
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        return pa.scalar(b"", type=type_)
    return None


def _canonical(array: pa.Array) -> list[pa.Array]:
    """One column in a form whose IPC bytes depend only on its values: dictionaries decoded,
    booleans as 0/1 bytes, nulls as a 0/1 validity column plus the values with nulls zeroed
    (the bytes under a null are undefined in Arrow)."""
    import pyarrow.compute as pc

    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.uint8())
    if array.null_count:
        zero = _zero(array.type)
        if zero is not None:
            valid = pc.cast(pc.is_valid(array), pa.uint8())
            return [valid, pc.fill_null(array, zero)]
    return [array]


class TableDigest:
    """A running content digest of a table fed in any number of batches.

    ``update()`` with the batches of a table in order, then ``hexdigest()``: the result equals
    :func:`table_digest` of the whole table, however it was split.

    :param schema: the table's schema (default: the first batch's); later batches are cast to it.
    """

    def __init__(self, schema: pa.Schema | None = None) -> None:
        self.schema: pa.Schema | None = None
        self.rows = 0
        self._hash: Any = None
        self._pending: pa.Table | None = None
        if schema is not None:
            self._start(schema)

    def _start(self, schema: pa.Schema) -> None:
        self.schema = schema.remove_metadata()
        text = self.schema.to_string(show_field_metadata=False, show_schema_metadata=False)
        self._hash = hashlib.sha256(text.encode())

    def update(self, data: Any) -> None:
        """Add rows (a Table, RecordBatch or DataFrame) after those already added."""
        table = _as_table(data)
        if self.schema is None:
            self._start(table.schema)
        assert self.schema is not None
        table = table.replace_schema_metadata(None)
        if table.schema != self.schema:
            table = table.cast(self.schema)
        self.rows += table.num_rows
        pending = table if self._pending is None else pa.concat_tables([self._pending, table])
        while pending.num_rows >= DIGEST_BATCH_ROWS:
            self._hash_rows(self._hash, pending.slice(0, DIGEST_BATCH_ROWS))
            pending = pending.slice(DIGEST_BATCH_ROWS)
        self._pending = pending

    @staticmethod
    def _hash_rows(digest: Any, table: pa.Table) -> None:
        table = table.combine_chunks()
        arrays = [a for column in table.columns for a in _canonical(column.chunk(0))]
        batch = pa.RecordBatch.from_arrays(arrays, names=[str(i) for i in range(len(arrays))])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        digest.update(memoryview(sink.getvalue()))

    def hexdigest(self) -> str:
        """The digest of the rows added so far (more may be added afterwards)."""
        if self._hash is None:
            raise ValueError("no schema: add a batch or pass the schema first")
        digest = self._hash.copy()
        if self._pending is not None and self._pending.num_rows:
            self._hash_rows(digest, self._pending)
        return str(digest.hexdigest()[:_DIGEST_CHARS])


def table_digest(table: pa.Table) -> str:
    """The content digest of a table: schema and values, independent of chunking and metadata."""
    running = TableDigest(table.schema)
    running.update(table)
    return running.hexdigest()


def bytes_digest(data: bytes) -> str:
    """The digest of a file's bytes (CSV, HTML, JSON ...)."""
    return hashlib.sha256(data).hexdigest()[:_DIGEST_CHARS]


def _file_sha(loc: Location, path: str) -> str:
    sha = hashlib.sha256()
    with loc.fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:_DIGEST_CHARS]


def _is_parquet(loc: Location, path: str) -> bool:
    """A parquet file: by its name, else by its magic bytes (``write_table`` writes parquet
    whatever the name)."""
    if path.lower().endswith(_PARQUET_SUFFIXES):
        return True
    try:
        with loc.fs.open(path, "rb") as handle:
            return bool(handle.read(4) == b"PAR1")
    except OSError:
        return False


def _read_marker(loc: Location, path: str) -> dict[str, Any]:
    try:
        with loc.fs.open(posixpath.join(path, _SUCCESS), "rb") as handle:
            data = json.loads(handle.read() or b"{}")
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded(loc: Location, is_dir: bool) -> dict[str, Any]:
    """``{"digest", "committed_at", "rows"}`` as recorded with the data (values may be None)."""
    if is_dir:
        marker = _read_marker(loc, loc.path)
        return {k: marker.get(k) for k in ("digest", "committed_at", "rows")}
    if _is_parquet(loc, loc.path):
        import pyarrow.parquet as pq

        try:
            meta = pq.read_metadata(loc.path, filesystem=loc.fs)
        except (pa.ArrowException, OSError):
            return {"digest": None, "committed_at": None, "rows": None}
        kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
        rows = int(meta.num_rows)
        return {
            "digest": kv.get(DIGEST_KEY),
            "committed_at": kv.get(COMMITTED_AT_KEY),
            "rows": rows,
        }
    return {"digest": None, "committed_at": None, "rows": None}


def _data_files(loc: Location, is_dir: bool) -> list[str]:
    """The visible files of a dataset, sorted (what io's readers read)."""
    if not is_dir:
        return [loc.path]
    found = loc.fs.find(loc.path)
    return sorted(
        p for p in found if all(_visible(x) for x in posixpath.relpath(p, loc.path).split("/"))
    )


def _parquet_digest(loc: Location, is_dir: bool, files: Sequence[str]) -> str:
    import pyarrow.dataset as ds

    if is_dir:
        dataset = ds.dataset(
            list(files),
            filesystem=loc.fs,
            format="parquet",
            partitioning="hive",
            partition_base_dir=loc.path,
        )
    else:
        dataset = ds.dataset(loc.path, filesystem=loc.fs, format="parquet")
    running = TableDigest(dataset.schema)
    for batch in dataset.to_batches():
        running.update(batch)
    return running.hexdigest()


def _compute(loc: Location, is_dir: bool) -> str:
    """The digest of data without a recorded one, read as io reads it: the table digest of
    parquet data, the bytes digest of anything else, including parquet that cannot be read as
    one table (quarantined data)."""
    files = _data_files(loc, is_dir)
    if files and all(_is_parquet(loc, f) for f in files):
        try:
            return _parquet_digest(loc, is_dir, files)
        except pa.ArrowException as err:
            log.info("%s is not readable as one table (%s): digest of its bytes", loc.uri, err)
    if not is_dir:
        return _file_sha(loc, loc.path)
    listing = "".join(
        f"{posixpath.relpath(f, loc.path)}\0{_file_sha(loc, f)}\n" for f in sorted(files)
    )
    return bytes_digest(listing.encode())


def _digest(loc: Location, is_dir: bool | None = None) -> str:
    if is_dir is None:
        is_dir = bool(loc.fs.isdir(loc.path))
    recorded = _recorded(loc, is_dir).get("digest")
    return str(recorded) if recorded else _compute(loc, is_dir)


def digest_of(loc: Location) -> str:
    """The content digest of the (existing) dataset at ``loc``: the recorded one (``_SUCCESS``
    marker, parquet metadata ``mlops.digest``), else computed from the data
    (:func:`mlops_provider.core.io.digest_of` takes a URI)."""
    return _digest(loc)


# ==========================================================================================
# Version store layout
# ==========================================================================================
def version_root(loc: Location, *, is_dir: bool) -> Location:
    """The directory holding the retained versions of ``loc``, beside its dataset directory.

    The dataset directory is the one above the first hive partition segment
    (``<lake>/predictions`` for ``<lake>/predictions/dt=2026-01-05``), else the directory
    holding a file, else the directory itself; the store is ``_versions`` in its parent, so no
    reader of the dataset directory ever lists a version.
    """
    segments = loc.path.rstrip("/").split("/")
    first = next((i for i, seg in enumerate(segments) if i and _is_partition_segment(seg)), None)
    # a partition: above its dataset directory; a file: above its directory; a directory: beside it
    keep = first - 1 if first is not None else len(segments) - (1 if is_dir else 2)
    keep = max(keep, 1)
    rel = segments[keep:]
    base_path = "/".join(segments[:keep])
    if loc.is_local:  # the absolute path: a relative URI may have fewer segments
        base_uri = base_path
    else:
        uri_parts = loc.uri.rstrip("/").split("/")
        base_uri = "/".join(uri_parts[: len(uri_parts) - len(rel)])
    base = replace(loc, uri=base_uri, path=base_path)
    return base.child(VERSIONS_DIR, *rel)


def _roots(loc: Location) -> list[tuple[Location, bool]]:
    """Candidate version roots of ``loc`` (its kind is known when it exists)."""
    if loc.fs.exists(loc.path):
        is_dir = bool(loc.fs.isdir(loc.path))
        return [(version_root(loc, is_dir=is_dir), is_dir)]
    return [(version_root(loc, is_dir=True), True), (version_root(loc, is_dir=False), False)]


def _manifests(root: Location) -> list[dict[str, Any]]:
    """The complete retained versions under one version root, newest retained first."""
    try:
        entries = root.fs.ls(root.path, detail=True)
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        name = posixpath.basename(str(entry["name"]).rstrip("/"))
        if entry.get("type") != "directory" or not name.startswith(_VERSION_PREFIX):
            continue
        manifest = _read_manifest(root.child(name))
        if manifest is not None:
            out.append(manifest)
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(out, key=lambda m: _parse_time(m.get("retained_at")) or oldest, reverse=True)


def _read_manifest(entry: Location) -> dict[str, Any] | None:
    try:
        with entry.fs.open(posixpath.join(entry.path, MANIFEST), "rb") as handle:
            manifest = json.loads(handle.read())
    except (FileNotFoundError, ValueError):
        return None
    name = manifest.get("name")
    data = entry.child(name) if name else entry
    manifest.update(version_uri=data.uri, version_path=data.path, entry_path=entry.path)
    manifest["entry_uri"] = entry.uri
    return dict(manifest)


# ==========================================================================================
# Retention policy
# ==========================================================================================
def _number(option: str) -> float | None:
    from mlops_provider.core import config

    value = config.setting(option)
    if value is None or value.lower() in ("none", "unlimited"):
        return None
    try:
        number = float(value)
    except ValueError:
        raise config.ConfigError(
            f"[mlops] {option} / ${config.OPTIONS[option]} must be a number, got {value!r}"
        ) from None
    if number < 0:
        raise config.ConfigError(f"[mlops] {option} must be >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class RetentionPolicy:
    """How long replaced content stays readable.

    :param max_age_days: retained versions replaced more than this many days ago are removed
        (``None``: no age limit; ``0``: replaced content is not retained at all).
    :param keep: at most this many retained versions per location, newest first (``None``: no
        count limit; ``0``: nothing retained).
    """

    max_age_days: float | None = 30.0
    keep: int | None = None

    @classmethod
    def from_settings(cls) -> RetentionPolicy:
        """Settings ``versions_max_age_days`` (``$MLOPS_VERSIONS_MAX_AGE_DAYS``, default 30,
        ``none``: no limit) and ``versions_keep`` (``$MLOPS_VERSIONS_KEEP``, default no limit).

        :raises ConfigError: a value that is not a number >= 0.
        """
        from mlops_provider.core import config

        unset = config.setting("versions_max_age_days") is None
        age = cls.max_age_days if unset else _number("versions_max_age_days")
        keep = _number("versions_keep")
        return cls(max_age_days=age, keep=int(keep) if keep is not None else None)

    @property
    def retains(self) -> bool:
        """Whether replaced content is kept at all."""
        return self.max_age_days != 0 and self.keep != 0

    def expired(
        self, manifests: Sequence[dict[str, Any]], now: datetime | None = None
    ) -> list[tuple[dict[str, Any], str]]:
        """The versions (newest retained first) this policy removes, each with the reason."""
        now = now or _now()
        out = []
        for index, manifest in enumerate(manifests):
            retained = _parse_time(manifest.get("retained_at"))
            if self.keep is not None and index >= self.keep:
                out.append((manifest, f"beyond the newest {self.keep} retained version(s)"))
            elif (
                self.max_age_days is not None
                and retained is not None
                and now - retained > timedelta(days=self.max_age_days)
            ):
                out.append((manifest, f"replaced more than {self.max_age_days:g} day(s) ago"))
        return out


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _remove(fs: Any, manifests: Iterable[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
    removed = []
    for manifest, reason in manifests:
        entry = manifest["entry_path"]
        # the manifest first: a half-removed version is incomplete, hence invisible
        with contextlib.suppress(FileNotFoundError):
            fs.rm(posixpath.join(entry, MANIFEST))
        with contextlib.suppress(FileNotFoundError):
            fs.rm(entry, recursive=True)
        removed.append(
            {
                "uri": manifest.get("uri"),
                "digest": manifest.get("digest"),
                "version_uri": manifest.get("version_uri"),
                "retained_at": manifest.get("retained_at"),
                "reason": reason,
            }
        )
        log.info(
            "Removed version %s of %s: %s", manifest.get("digest"), manifest.get("uri"), reason
        )
    return removed


def prune_versions(
    uri_or_root: Location,
    *,
    policy: RetentionPolicy | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Remove retained versions the retention policy no longer keeps; never the current content.

    :param uri_or_root: a dataset location (its own versions), a version store (``_versions``)
        or any directory above (every version store below it, e.g. the lake root).
    :param policy: the policy to apply (default: :meth:`RetentionPolicy.from_settings`).
    :param now: the time ages are measured at (default: now).
    :returns: what was removed: ``{"uri", "digest", "version_uri", "retained_at", "reason"}``.
    """
    policy = policy or RetentionPolicy.from_settings()
    loc = uri_or_root
    roots: dict[str, Location] = {root.path: root for root, _ in _roots(loc)}
    if loc.fs.isdir(loc.path):
        for path in loc.fs.find(loc.path):
            parts = path.split("/")
            if parts[-1] != MANIFEST or VERSIONS_DIR not in parts:
                continue
            root_path = posixpath.dirname(posixpath.dirname(path))
            rel = posixpath.relpath(root_path, loc.path)
            roots.setdefault(root_path, loc.child(*rel.split("/")))
    removed: list[dict[str, Any]] = []
    for root in roots.values():
        removed += _remove(root.fs, policy.expired(_manifests(root), now))
    return removed


# ==========================================================================================
# Listing and resolving versions
# ==========================================================================================
def _committed_at(loc: Location, is_dir: bool, recorded: dict[str, Any]) -> str | None:
    """The recorded commit time, else the file's (or the marker's) modification time."""
    if recorded.get("committed_at"):
        return str(recorded["committed_at"])
    target = loc.path if not is_dir else posixpath.join(loc.path, _SUCCESS)
    try:
        return _iso(loc.fs.modified(target))
    except (OSError, NotImplementedError):  # no marker, or a filesystem without mtimes
        return None


def _current(loc: Location) -> dict[str, Any] | None:
    if not loc.fs.exists(loc.path):
        return None
    is_dir = bool(loc.fs.isdir(loc.path))
    recorded = _recorded(loc, is_dir)
    digest = recorded["digest"] or _compute(loc, is_dir)
    return {
        "digest": digest,
        "current": True,
        "uri": loc.uri,
        "committed_at": _committed_at(loc, is_dir, recorded),
        "retained_at": None,
        "rows": recorded["rows"],
    }


def _located(loc: Location) -> list[tuple[dict[str, Any], Location]]:
    """:func:`list_versions`, each with the location to read it from."""
    out = []
    current = _current(loc)
    if current is not None:
        out.append((current, loc))
    for root, _ in _roots(loc):
        for manifest in _manifests(root):
            where = replace(loc, uri=manifest["version_uri"], path=manifest["version_path"])
            version = {
                "digest": manifest.get("digest"),
                "current": False,
                "uri": where.uri,
                "committed_at": manifest.get("committed_at"),
                "retained_at": manifest.get("retained_at"),
                "rows": manifest.get("rows"),
            }
            out.append((version, where))
    return out


def list_versions(loc: Location) -> list[dict[str, Any]]:
    """The current content of ``loc`` (first, ``"current": True``) and its retained versions
    (newest replaced first): ``{"digest", "current", "uri", "committed_at", "retained_at",
    "rows"}``; ``uri`` is where that version is read (:func:`io.read_table`)."""
    return [version for version, _ in _located(loc)]


def locate_version(loc: Location, digest: str) -> Location:
    """Where the content of ``loc`` with ``digest`` is read: ``loc`` itself when its current
    content has that digest, else the retained version's location.

    :raises VersionNotFound: no such version; the message names the URI, the digest asked and
        the digests available.
    """
    versions = _located(loc)
    for version, where in versions:
        if version["digest"] == digest:
            return where
    available = [f"{v['digest']}{' (current)' if v['current'] else ''}" for v, _ in versions]
    raise VersionNotFound(
        loc.uri,
        f"no version with digest {digest!r}; available: {', '.join(available) or 'none'}",
    )


# ==========================================================================================
# Retaining replaced content (called by io's commit)
# ==========================================================================================
def _hidden_leaf(loc: Location) -> bool:
    return not _visible(loc.path)


def _link_tree(src: str, dst: str, is_dir: bool, name: str) -> None:
    """Hard links of the files of ``src`` under ``dst`` (a copy where links are refused)."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    os.makedirs(dst, exist_ok=True)
    if not is_dir:
        link(src, os.path.join(dst, name))
        return
    for folder, _dirs, files in os.walk(src):
        out = os.path.join(dst, os.path.relpath(folder, src))
        os.makedirs(out, exist_ok=True)
        for file in files:
            link(os.path.join(folder, file), os.path.join(out, file))


def _copy_objects(loc: Location, is_dir: bool, entry: Location, name: str) -> None:
    if not is_dir:
        loc.fs.copy(loc.path, posixpath.join(entry.path, name))
        return
    for path in loc.fs.find(loc.path):
        loc.fs.copy(path, posixpath.join(entry.path, posixpath.relpath(path, loc.path)))


#: Leaf names of the staging directories of a version root (``<digest>-<owner>-<id>``; older
#: ones without the owner).
_VERSION_STAGING = re.compile(rf"^{re.escape(_STAGING_PREFIX)}[0-9a-f]+-{LEFTOVER_TAIL}$")


def _remove_staging_leftovers(root: Location) -> None:
    """Remove the staging directories crashed retains left in ``root`` (a dead writer's; another
    host's or an unnamed one only after :data:`mlops_provider.core.leftovers.STAGING_MAX_AGE_HOURS`);
    never fails the retain."""
    try:
        remove_leftovers(root, _VERSION_STAGING)
    except Exception as err:
        log.warning("Could not remove staging leftovers in %s: %s", root.uri, err)


def retain(loc: Location, *, is_dir: bool, digest: str) -> Location:
    """Keep the current content of ``loc`` as version ``digest`` (it stays where it is).

    Locally the files are hard-linked (copied where links are refused) into a hidden staging
    directory (``.staging-<digest>-<owner>-<id>``; those crashed retains left are removed
    first, as :func:`mlops_provider.core.leftovers.remove_leftovers` decides) which is renamed to
    ``@<digest>``; on object stores they are copied and the
    manifest is written last. Already retained: only its ``retained_at`` is renewed.
    """
    root = version_root(loc, is_dir=is_dir)
    entry = root.child(f"{_VERSION_PREFIX}{digest}")
    recorded = _recorded(loc, is_dir)
    name = "" if is_dir else posixpath.basename(loc.path.rstrip("/"))
    manifest = {
        "digest": digest,
        "uri": loc.uri,
        "name": name or None,
        "kind": "directory" if is_dir else "file",
        "committed_at": _committed_at(loc, is_dir, recorded),
        "retained_at": _now().isoformat(),
        "rows": recorded["rows"],
    }
    text = json.dumps(manifest)
    fs = loc.fs
    if _read_manifest(entry) is not None:
        with fs.open(posixpath.join(entry.path, MANIFEST), "w") as handle:
            handle.write(text)
        return entry
    if loc.is_local:
        _remove_staging_leftovers(root)
        staging = root.child(f"{_STAGING_PREFIX}{digest}-{this_owner()}-{uuid.uuid4().hex[:12]}")
        try:
            _link_tree(loc.path, staging.path, is_dir, name)
            with open(os.path.join(staging.path, MANIFEST), "w", encoding="utf-8") as handle:
                handle.write(text)
            if os.path.lexists(entry.path):  # an incomplete earlier attempt
                shutil.rmtree(entry.path)
            try:
                os.replace(staging.path, entry.path)
            except OSError:
                if _read_manifest(entry) is None:
                    raise  # not a concurrent writer retaining the same content first
        finally:
            if os.path.lexists(staging.path):
                shutil.rmtree(staging.path, ignore_errors=True)
        return entry
    if fs.exists(entry.path):
        fs.rm(entry.path, recursive=True)
    _copy_objects(loc, is_dir, entry, name)
    with fs.open(posixpath.join(entry.path, MANIFEST), "w") as handle:
        handle.write(text)
    return entry


def before_commit(staged: Location, target: Location, digest: str | None) -> Location | None:
    """Called before ``target`` is replaced by ``staged``: retain its content when it differs
    from the new content (``digest``). Returns the version root to prune after the commit."""
    if digest is None or _hidden_leaf(target) or not target.fs.exists(target.path):
        return None
    policy = RetentionPolicy.from_settings()
    if not policy.retains:
        return None
    is_dir = bool(target.fs.isdir(target.path))
    old = _digest(target, is_dir)
    if old == digest:
        return None
    entry = retain(target, is_dir=is_dir, digest=old)
    log.info("Retained the replaced content of %s as version %s (%s)", target.uri, old, entry.uri)
    return version_root(target, is_dir=is_dir)


def after_commit(root: Location | None) -> None:
    """Apply the retention policy to the location that just retained a version."""
    if root is None:
        return
    try:
        policy = RetentionPolicy.from_settings()
        _remove(root.fs, policy.expired(_manifests(root)))
    except Exception as err:  # retention must never fail a committed write
        log.warning("Could not apply the version retention policy to %s: %s", root.uri, err)
