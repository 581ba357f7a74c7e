"""What the provider's hooks share: optional default connections and connection extras."""

from __future__ import annotations

import json
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
