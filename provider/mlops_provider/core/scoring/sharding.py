"""Sharded scoring (scale-out): plan the shards of a day, score each into its own directory,
verify the day and commit it.

:func:`list_shards` splits an input into files or partitions; :func:`plan_scoring` resolves
the model ONCE for all shards and counts the rows to expect; each shard is scored into
``<day partition>/shard=<nnnnn>`` (:func:`shard_uri`); :func:`verify_scoring` checks the shards
against the plan and commits the day's ``_SUCCESS``.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlops_provider.core import io, times
from mlops_provider.core.errors import ParameterError
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.models import resolve, version_uri
from mlops_provider.core.results import make_result
from mlops_provider.core.scoring.model import ScoringInputError, model_fields

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

__all__ = [
    "SHARD_BY",
    "SHARD_KEY",
    "list_shards",
    "plan_scoring",
    "shard_name",
    "shard_uri",
    "verify_scoring",
]

SHARD_KEY = "shard"
SHARD_BY = ("auto", "file", "partition")
_SUCCESS = "_SUCCESS"


# ==========================================================================================
# Shards
# ==========================================================================================
def list_shards(
    input_uri: str,
    *,
    by: str = "auto",
    conn_id: str | None = None,
) -> list[str]:
    """Split an input into independently scorable shards (URIs, sorted).

    ``by="partition"``: one shard per top-level hive partition directory (``key=value/``);
    ``by="file"``: one shard per data file; ``"auto"``: partitions when every top-level entry is
    a partition directory, files otherwise. A single file is one shard.

    :raises ParameterError: ``by`` is none of ``auto``, ``file``, ``partition``.
    :raises ScoringInputError: missing or empty input, or ``by="partition"`` on an input
        that has no partition directories.
    """
    if by not in SHARD_BY:
        raise ParameterError("shard_by", f"must be one of {', '.join(SHARD_BY)}, got {by!r}")
    try:
        loc = io.resolve(input_uri, conn_id=conn_id)
        files = io.list_files(loc)
    except io.DatasetError as err:
        raise ScoringInputError(f"input_data {err}") from err
    if not files:
        raise ScoringInputError(f"input_data {input_uri}: contains no data files to shard")
    if files == [loc.path]:
        return [str(input_uri)]
    rels = [posixpath.relpath(f, loc.path) for f in files]
    tops = sorted({r.split("/", 1)[0] for r in rels})
    partitioned = all("/" in r for r in rels) and all("=" in t for t in tops)
    if by == "partition" and not partitioned:
        raise ScoringInputError(
            f"input_data {input_uri}: not partitioned into key=value directories; shard by file"
        )
    if by == "partition" or (by == "auto" and partitioned):
        return [io.join_uri(str(input_uri), t) for t in tops]
    return [io.join_uri(str(input_uri), r) for r in rels]


def shard_name(shard: int | str) -> str:
    """Directory value of a shard: numbers are zero-padded (``3`` -> ``00003``).

    :raises ScoringInputError: a name that is not a number or a plain word.
    """
    text = str(shard).strip()
    if text.isdigit():
        return f"{int(text):05d}"
    if not text or not re.fullmatch(r"[A-Za-z0-9_.\-]+", text) or text.startswith((".", "_")):
        raise ScoringInputError(
            f"shard name {shard!r} must be a number or letters, digits, '.', '_', '-'"
        )
    return text


def shard_uri(partition_uri: str, shard: int | str) -> str:
    """``<partition>/shard=<name>``: where one shard of a day's scoring is written."""
    return io.join_uri(partition_uri, f"{SHARD_KEY}={shard_name(shard)}")


# ==========================================================================================
# Plan
# ==========================================================================================
def _count_shard_rows(shards: Sequence[str], conn_id: str | None) -> list[int]:
    out = []
    for shard in shards:
        try:
            out.append(io.count_rows(shard, conn_id=conn_id))
        except io.DatasetError as err:
            raise ScoringInputError(f"input_data {err}") from err
        except (pa.ArrowException, OSError) as err:  # corrupt footers surface as Arrow errors
            raise ScoringInputError(f"input_data {shard}: not readable: {err}") from err
    return out


def _reset_day_partition(partition: str, shard_count: int, conn_id: str | None) -> None:
    """Prepare a day for rescoring: remove its ``_SUCCESS`` and the shards beyond the plan."""
    loc = io.resolve(partition, conn_id=conn_id)
    if not loc.fs.exists(loc.path):
        return
    marker = posixpath.join(loc.path, _SUCCESS)
    if loc.fs.exists(marker):
        loc.fs.rm(marker)
    keep = {shard_name(i) for i in range(shard_count)}
    for entry in loc.fs.ls(loc.path, detail=False):
        name = posixpath.basename(str(entry).rstrip("/"))
        if name.startswith(f"{SHARD_KEY}=") and name.split("=", 1)[1] not in keep:
            log.info("Removing stale shard %s (not in the new plan)", entry)
            loc.fs.rm(str(entry), recursive=True)


def plan_scoring(
    input_uri: str,
    model_uri: str,
    *,
    target: MlflowTarget | None = None,
    client: MlflowClient | None = None,
    by: str = "auto",
    conn_id: str | None = None,
    output_partition: str | None = None,
) -> dict[str, Any]:
    """Plan a sharded scoring run: shards, the ONE concrete model, the rows to expect.

    Every shard gets ``model_uri`` of the plan (``models:/<name>/<version>``), so shards scored
    at different times cannot disagree on the version even if the alias moves meanwhile.

    :param model_uri: any model URI (see :func:`mlops_provider.core.models.parse_model_uri`).
    :param output_partition: the day partition the shards will be written to. When given, its
        ``_SUCCESS`` marker is removed (the day is being rescored) and shard directories beyond
        the new shard count (left by an earlier plan with more shards) are deleted.
    :returns: the result (docs/results.md): ``status`` ``planned``, ``passed`` True, ``model``
        (the concrete version), ``rows`` (the input's rows); then ``shards`` (URIs),
        ``shard_count``, ``shard_rows``, ``expected_rows`` and the flat ``model_uri``,
        ``requested_model_uri``, ``model_name``, ``model_version``, ``model_run_id``,
        ``model_alias``.
    :raises ModelUriError, ModelNotFoundError: see :func:`mlops_provider.core.models.resolve`.
    :raises ScoringInputError: missing, empty or unreadable input.
    """
    shards = list_shards(input_uri, by=by, conn_id=conn_id)
    if client is None:
        if target is None:
            raise TypeError("plan_scoring needs an MLflow target or client")
        client = make_client(target)
    resolved = resolve(client, model_uri)
    shard_rows = _count_shard_rows(shards, conn_id)
    expected = sum(shard_rows)
    if output_partition:
        _reset_day_partition(output_partition, len(shards), conn_id)
    log.info(
        "Planned %d shard(s) of %s (%s rows) for %s",
        len(shards),
        input_uri,
        f"{expected:,}",
        resolved.describe(),
    )
    return make_result(
        status="planned",
        passed=True,
        model=resolved,
        rows=expected,
        shards=shards,
        shard_count=len(shards),
        shard_rows=shard_rows,
        expected_rows=expected,
        **model_fields(resolved),
    )


# ==========================================================================================
# Verify
# ==========================================================================================
@dataclass
class _Found:
    """What the committed outputs say: rows per unit, the models that scored them, problems."""

    rows: dict[str, int] = field(default_factory=dict)
    versions: dict[tuple[Any, Any], list[str]] = field(default_factory=dict)
    run_ids: set[Any] = field(default_factory=set)
    uris: set[Any] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def model(self) -> dict[str, Any] | None:
        """The one model every unit used (``None`` when they disagree or nothing was found)."""
        if len(self.versions) != 1:
            return None
        name, version = next(iter(self.versions))
        uri = next(iter(self.uris)) if len(self.uris) == 1 else None
        if uri is None and name and version:
            uri = version_uri(name, version)
        run_id = next(iter(self.run_ids)) if len(self.run_ids) == 1 else None
        return {"name": name, "version": version, "run_id": run_id, "uri": uri}


def _units(loc: io.Location) -> tuple[dict[str, io.Location], bool, list[str]]:
    """The units to check (``shard name -> location``, or ``"" -> the partition``), whether
    the partition is sharded, and the stray entries beside the shards."""
    entries = [str(e).rstrip("/") for e in loc.fs.ls(loc.path, detail=False)]
    shard_dirs = sorted(
        e for e in entries if posixpath.basename(e).startswith(f"{SHARD_KEY}=") and loc.fs.isdir(e)
    )
    if not shard_dirs:
        return {"": loc}, False, []
    stray = [
        posixpath.basename(e)
        for e in entries
        if e not in shard_dirs and not posixpath.basename(e).startswith((".", "_"))
    ]
    problems = [f"files outside shard directories: {stray}"] if stray else []
    units = {
        posixpath.basename(d).split("=", 1)[1]: loc.child(posixpath.basename(d)) for d in shard_dirs
    }
    return units, True, problems


def _shard_set_problems(units: Mapping[str, Any], expected: int | Sequence[str]) -> list[str]:
    if isinstance(expected, int):
        wanted = {shard_name(i) for i in range(expected)}
    else:
        wanted = {shard_name(s) for s in expected}
    problems = []
    missing = sorted(wanted - set(units))
    extra = sorted(set(units) - wanted)
    if missing:
        problems.append(f"shard(s) not written: {missing}")
    if extra:
        problems.append(f"unexpected shard(s) (stale from an earlier plan?): {extra}")
    return problems


def _read_marker(loc: io.Location) -> dict[str, Any] | None:
    """The ``_SUCCESS`` marker of a committed output (``None``: not committed)."""
    try:
        text = io.read_text(loc.child(_SUCCESS))
    except io.DatasetNotFound:
        return None
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _read_units(units: Mapping[str, io.Location], output_partition: str) -> _Found:
    found = _Found()
    for name, unit in sorted(units.items()):
        label = f"shard {name}" if name else f"partition {output_partition}"
        marker = _read_marker(unit)
        if marker is None:
            found.problems.append(f"{label} is not committed (no _SUCCESS marker)")
            continue
        try:
            actual = io.count_rows(unit)
        except (io.DatasetError, pa.ArrowException, OSError) as err:
            found.problems.append(f"{label} is not readable: {err}")
            continue
        reported = marker.get("rows")
        if reported is not None and int(reported) != actual:
            found.problems.append(f"{label} has {actual} rows in its files but reported {reported}")
        found.rows[name or "all"] = actual
        key = (marker.get("model_name") or None, marker.get("model_version") or None)
        found.versions.setdefault(key, []).append(name or "all")
        found.run_ids.add(marker.get("model_run_id") or None)
        found.uris.add(marker.get("model_uri") or None)
    return found


def _model_problems(
    found: _Found, expected_name: str | None, expected_version: str | int | None
) -> list[str]:
    if len(found.versions) > 1:
        detail = "; ".join(f"{n} v{v}: {sorted(s)}" for (n, v), s in found.versions.items())
        return [f"shards used different model versions: {detail}"]
    if len(found.versions) != 1:
        return []
    name, version = next(iter(found.versions))
    problems = []
    if expected_version is not None and str(version) != str(expected_version):
        problems.append(f"scored with model version {version}, expected {expected_version}")
    if expected_name is not None and name != expected_name:
        problems.append(f"scored with model {name!r}, expected {expected_name!r}")
    return problems


def verify_scoring(
    output_partition: str,
    expected_rows: int,
    *,
    expected_model_version: str | int | None = None,
    expected_model_name: str | None = None,
    expected_shards: int | Sequence[str] | None = None,
    conn_id: str | None = None,
    commit: bool = True,
) -> dict[str, Any]:
    """Check a day's scoring output and (for shards) commit the day with a ``_SUCCESS`` marker.

    Works on a sharded day partition (``shard=<n>`` sub-directories, each committed by its own
    task) and on a plain partition. Checks: every shard is committed (has ``_SUCCESS``), the
    rows in the files equal the rows each shard reported, the sum equals ``expected_rows``,
    every shard used the same model name and version (and the expected ones, if given), and
    the set of shards is the expected one.

    :returns: the result (docs/results.md): ``status`` ``verified``, ``passed`` True, ``model``
        (the version found in the output), ``rows`` (rows found); then ``output_uri``,
        ``shards`` (count, 0 for a plain partition), ``shard_rows``, the flat ``model_name``,
        ``model_version``, ``model_run_id`` and ``verified_at``. For shards it is also the
        day's ``_SUCCESS`` marker.
    :raises ScoringInputError: listing every failed check.
    """
    # resolve: what was written
    loc = io.resolve(output_partition, conn_id=conn_id)
    if not loc.fs.exists(loc.path):
        raise ScoringInputError(f"output {output_partition} does not exist: nothing was scored")
    units, sharded, problems = _units(loc)
    if expected_shards is not None and sharded:
        problems += _shard_set_problems(units, expected_shards)
    # compute: check it against the plan
    found = _read_units(units, output_partition)
    problems += found.problems
    problems += _model_problems(found, expected_model_name, expected_model_version)
    total = sum(found.rows.values())
    if total != int(expected_rows):
        problems.append(f"{total:,} rows written, {int(expected_rows):,} expected from the input")
    if problems:
        raise ScoringInputError(
            f"scoring output {output_partition} failed verification:\n  " + "\n  ".join(problems)
        )
    # publish: the result, and the day's marker
    model = found.model()
    result = make_result(
        status="verified",
        passed=True,
        model=model,
        rows=total,
        output_uri=str(output_partition),
        shards=len(units) if sharded else 0,
        shard_rows=found.rows,
        model_name=model["name"] if model else None,
        model_version=model["version"] if model else None,
        model_run_id=model["run_id"] if model else None,
        verified_at=times.iso(times.utcnow()),
    )
    if commit and sharded:
        io.write_text(json.dumps(result), loc.child(_SUCCESS))
    log.info(
        "Verified %s: %s rows in %d shard(s), model %s version %s",
        output_partition,
        f"{total:,}",
        result["shards"],
        result["model_name"],
        result["model_version"],
    )
    return result
