"""What the provider's hooks share: optional default connections and connection extras."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException


def optional_connection(hook: BaseHook, conn_id: str, default_conn_id: str) -> Any | None:
    """The connection ``conn_id``; ``None`` if it is the hook's default and does not exist.

    The default connection is optional (the hooks fall back to embedded defaults); a connection
    the user named explicitly must exist.
    """
    try:
        return hook.get_connection(conn_id)
    except AirflowNotFoundException:
        if conn_id != default_conn_id:
            raise
        return None


def connection_extra(conn: Any) -> dict[str, Any]:
    """A connection's extra as a dict (empty when unset); clear error for invalid JSON."""
    raw = conn.extra if conn is not None else None
    if not raw:
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"Connection {conn.conn_id}: extra is not valid JSON: {err}") from err
    return value if isinstance(value, dict) else {}


#: The kinds of value a connection extra may hold (see :func:`typed_extra`).
TEXT, FLAG, TEXT_OR_MAPPING = "text", "true or false", "text or a mapping"
SECONDS = "a number of seconds >= 0"


def typed_extra(conn: Any, spec: Mapping[str, str]) -> dict[str, Any]:
    """A connection's extra with each known key parsed strictly by its kind in ``spec``.

    Flags accept a JSON boolean or the text ``true/false/1/0/yes/no/on/off`` (so the text
    ``"false"`` of a URI-form connection is False, never truthy); texts must be strings;
    seconds a JSON number or its text, >= 0 (a float).
    Empty values count as absent. Keys not in ``spec`` are kept and logged as a warning (a
    typo such as ``insecure_tsl`` would otherwise be ignored silently).

    :raises ValueError: a value is not of its kind; the message names the connection, the key,
        the value and what was expected.
    """
    from mlops_provider.core.params import as_bool, as_float

    extra = connection_extra(conn)
    conn_id = getattr(conn, "conn_id", "?")
    out: dict[str, Any] = {}
    for key, value in extra.items():
        kind = spec.get(key)
        if value is None or value == "":
            continue
        if kind is None:
            out[key] = value
        elif kind in (FLAG, SECONDS):
            try:
                out[key] = as_bool(value, key) if kind == FLAG else as_float(value, key, minimum=0)
            except ValueError:
                raise ValueError(_wrong_kind(conn_id, key, kind, value)) from None
        elif isinstance(value, str):
            out[key] = value.strip()
        elif kind == TEXT_OR_MAPPING and isinstance(value, Mapping):
            out[key] = value
        else:
            raise ValueError(_wrong_kind(conn_id, key, kind, value))
    unknown = sorted(set(out) - set(spec))
    if unknown:
        logging.getLogger(__name__).warning(
            "Connection %s: extra %s not used (known: %s)",
            conn_id,
            ", ".join(repr(k) for k in unknown),
            ", ".join(sorted(spec)),
        )
    return out


def _wrong_kind(conn_id: str, key: str, kind: str, value: Any) -> str:
    return f"Connection {conn_id}: extra {key!r} must be {kind}, got {value!r}"
