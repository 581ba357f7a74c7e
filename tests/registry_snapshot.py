"""A normalised snapshot of a registered model's state, to compare a recovered registry with
a clean run's: versions and their tags (timestamps, run and model ids and, optionally, who did it
left out), aliases, the alias history (without times), leftover lock models and pending journal
intents. Two snapshots of different registered models compare equal when the same changes were
made to them."""

from __future__ import annotations

import json
from typing import Any

from mlops_provider.core import registry
from mlops_provider.core.registry.registration import search_versions

TIMESTAMP_TAGS = {
    "mlops.promoted_at",
    "mlops.demoted_at",
    "mlops.rolled_back_at",
}
ID_TAGS = {registry.SOURCE_RUN_TAG}
BY_TAGS = {"mlops.promoted_by", "mlops.demoted_by", "mlops.rolled_back_by"}
EVENT_DROPPED = {"at", "at_ms"}


def _event(text: str, drop_by: bool) -> dict[str, Any]:
    data = json.loads(text)
    for key in EVENT_DROPPED | ({"by"} if drop_by else set()):
        data.pop(key, None)
    data.get("extra", {}).pop("source_run_id", None)
    return data


def snapshot(client: Any, name: str, *, drop_by: bool = False) -> dict[str, Any]:
    """The state of ``name`` with everything that differs between equal histories removed.

    :param drop_by: also leave out who made each change (``by``, ``*_by`` tags), to compare a
        change completed by another DAG run with a clean one.
    """
    dropped = TIMESTAMP_TAGS | ID_TAGS | (BY_TAGS if drop_by else set())
    versions: dict[str, Any] = {}
    for mv in sorted(search_versions(client, f"name = '{name}'"), key=lambda v: int(v.version)):
        tags: dict[str, Any] = {}
        events = []
        for key, value in sorted((mv.tags or {}).items()):
            if key.startswith(registry.HISTORY_TAG_PREFIX):
                events.append(_event(value, drop_by))
            elif key not in dropped:
                tags[key] = value
        tags["history"] = sorted(events, key=lambda e: json.dumps(e, sort_keys=True))
        versions[str(mv.version)] = tags
    model = client.get_registered_model(name)
    return {
        "versions": versions,
        "aliases": {k: str(v) for k, v in sorted(model.aliases.items())},
        "history": [
            {k: v for k, v in _event(e.to_json(), drop_by).items()}
            for e in registry.alias_history(client, name, "champion")
        ],
        "locks": sorted(m.name for m in client.search_registered_models(f"name LIKE '{name}.%'")),
        "pending": sorted(
            k for k in (model.tags or {}) if k.startswith(registry.PENDING_TAG_PREFIX)
        ),
    }
