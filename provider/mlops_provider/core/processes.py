"""Who wrote something, and is that writer still alive?

Work that can be interrupted (a staging directory being written, an alias lease being held)
records its owner as ``<host>p<pid>`` (:func:`this_owner`). The next writer decides whether the
leftover belongs to a dead process with :func:`owner_alive`: on the same host the pid is checked
(a pid reused by an unrelated process counts as alive, the safe side); on another host nothing can
be known, so callers fall back to an age bound. Imports nothing heavy.
"""

from __future__ import annotations

import os
import re
import socket

__all__ = ["host_id", "owner_alive", "parse_owner", "this_owner"]

_UNSAFE = re.compile(r"[^A-Za-z0-9]+")
_OWNER = re.compile(r"^(?P<host>[A-Za-z0-9]+)p(?P<pid>[0-9]+)$")


def host_id() -> str:
    """This host's name reduced to letters and digits (safe in file names and tags), at most 24
    characters; ``host`` if the name has none."""
    return (_UNSAFE.sub("", socket.gethostname()) or "host")[:24]


def this_owner() -> str:
    """``<host>p<pid>`` of this process."""
    return f"{host_id()}p{os.getpid()}"


def parse_owner(owner: str) -> tuple[str, int] | None:
    """``(host, pid)`` of an owner written by :func:`this_owner`; ``None`` for anything else."""
    match = _OWNER.match(owner or "")
    if match is None:
        return None
    return match["host"], int(match["pid"])


def owner_alive(owner: str) -> bool | None:
    """Whether the process that wrote ``owner`` still runs: ``True``/``False`` on this host,
    ``None`` when it cannot be known (another host, or not an owner string)."""
    parsed = parse_owner(owner)
    if parsed is None or parsed[0] != host_id():
        return None
    pid = parsed[1]
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
