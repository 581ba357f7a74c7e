"""Leftovers of crashed writes: staging (and trash) areas whose writer died before removing
them (docs/scoring.md, "Reruns and crashed writes").

A staging area is named ``<prefix><target>-<owner>-<id>``, the owner being the writing process
(:func:`mlops_provider.core.processes.this_owner`, ``<host>p<pid>``). The next writer to the same
target removes those of a dead process of its host at once; those of another host, or named
without an owner (older versions), only when nothing in them changed for
:data:`STAGING_MAX_AGE_HOURS`. A live writer's area is never removed. Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.core.processes import owner_alive

if TYPE_CHECKING:
    from mlops_provider.core.io import Location

log = logging.getLogger(__name__)

__all__ = ["LEFTOVER_TAIL", "STAGING_MAX_AGE_HOURS", "leftover_pattern", "remove_leftovers"]

#: Staging (and trash) areas of a writer on another host, or named without an owner (older
#: versions), are removed as crash leftovers only when nothing in them changed for this long:
#: whether their writer still runs cannot be known.
STAGING_MAX_AGE_HOURS = 24.0
#: The end of a staging area's name: ``[<owner>-]<id>`` (no owner in older names), plus
#: ``.probe`` for the probe object of :func:`mlops_provider.core.io.probe_writable`.
LEFTOVER_TAIL = r"(?:(?P<owner>[A-Za-z0-9]+p[0-9]+)-)?[0-9a-f]{12}(?:\.probe)?"


def leftover_pattern(prefixes: Sequence[str], name: str) -> re.Pattern[str]:
    """Leaf names of the staging areas of the target ``name`` (with or without an owner)."""
    heads = "|".join(re.escape(f"{p}{name}-") for p in prefixes)
    return re.compile(f"^(?:{heads}){LEFTOVER_TAIL}$")


def _mtime(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _newest_change(fs: Any, path: str, local: bool) -> float | None:
    """When anything in ``path`` (a file or a directory tree) last changed: local mtimes,
    object stores' ``LastModified``; None when unknown."""
    if local:
        stamps = []
        for folder, _dirs, files in os.walk(path):
            stamps.append(os.stat(folder).st_mtime)
            stamps += [os.stat(os.path.join(folder, f)).st_mtime for f in files]
        return max(stamps) if stamps else os.stat(path).st_mtime
    infos = fs.find(path, detail=True, withdirs=False) or {path: fs.info(path)}
    stamps = [
        t
        for info in infos.values()
        for t in [_mtime(info.get("LastModified") or info.get("mtime") or info.get("modified"))]
        if t is not None
    ]
    return max(stamps) if stamps else None


def _leftover_verdict(owner: str | None, age: float | None, max_age: float) -> str | None:
    """Why a staging area is a crash leftover (None: keep it)."""
    alive = owner_alive(owner) if owner else None
    if alive is True:
        return None
    if alive is False:
        return "its writer is dead"
    if age is None or age <= max_age:
        return None
    what = "another host's writer" if owner else "a writer without an owner in the name"
    return f"{what}, unchanged for more than {max_age / 3600:g} h"


def remove_leftovers(
    parent: Location,
    pattern: re.Pattern[str],
    *,
    max_age_hours: float = STAGING_MAX_AGE_HOURS,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Remove the staging areas left by crashed writes in the directory ``parent`` whose names
    match ``pattern`` (a named group ``owner``: ``<host>p<pid>``, may be missing).

    Removed: those whose owner is a dead process of this host; those of another host or
    without an owner only when nothing in them changed for ``max_age_hours``. Kept: a live
    writer's (this process's included), and any whose age cannot be known.

    :returns: what was removed: ``{"path", "owner", "age_seconds", "reason"}`` (each logged).
    """
    fs = parent.fs
    with contextlib.suppress(Exception):
        fs.invalidate_cache(parent.path)
    try:
        entries = fs.ls(parent.path, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    now = time.time() if now is None else now
    removed = []
    for entry in entries:
        path = str(entry).rstrip("/")
        match = pattern.match(posixpath.basename(path))
        if match is None:
            continue
        owner = match.groupdict().get("owner")
        try:
            changed = _newest_change(fs, path, parent.is_local)
        except FileNotFoundError:  # its writer just committed or removed it
            continue
        age = None if changed is None else max(now - changed, 0.0)
        reason = _leftover_verdict(owner, age, max_age_hours * 3600)
        if reason is None:
            continue
        with contextlib.suppress(FileNotFoundError):
            fs.rm(path, recursive=True)
        shown = "unknown" if age is None else f"{age:.0f} s"
        log.warning(
            "Removed %s, left by a crashed write (owner %s, age %s): %s",
            path,
            owner or "unknown",
            shown,
            reason,
        )
        removed.append({"path": path, "owner": owner, "age_seconds": age, "reason": reason})
    return removed
