"""Registry lookups: feature views, feature references and services, freshness.

Every unknown name raises :class:`~mlops_provider.core.features.common.FeatureRequestError`
listing the known ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.core.features.common import FeatureRequestError
from mlops_provider.core.times import to_utc

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView

__all__ = [
    "applied_feature_views",
    "check_feature_refs",
    "definition_digest",
    "feature_view_record",
    "feature_views",
    "freshness",
    "get_view",
    "join_keys",
    "resolve_feature_refs",
]


def feature_views(store: FeatureStore) -> dict[str, Any]:
    """Feature views and on-demand feature views by name."""
    views: dict[str, Any] = {v.name: v for v in store.list_feature_views()}
    with contextlib.suppress(Exception):  # registries without on-demand views support
        views.update({v.name: v for v in store.list_on_demand_feature_views()})
    return views


def _without_meta(value: Any) -> Any:
    """A definition without its ``meta`` entries (registry timestamps that a re-apply of the
    same definition changes)."""
    if isinstance(value, Mapping):
        return {k: _without_meta(v) for k, v in value.items() if k != "meta"}
    if isinstance(value, list):
        return [_without_meta(v) for v in value]
    return value


def definition_digest(definition: Mapping[str, Any]) -> str:
    """A digest of a feature-view definition (the spec as a dict) that ignores registry
    timestamps: equal for two applies of the same definition."""
    import hashlib
    import json

    text = json.dumps(_without_meta(definition), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _iso(value: Any) -> str | None:
    return None if value is None else to_utc(value).isoformat()


def feature_view_record(view: Any) -> dict[str, Any]:
    """A feature view as applied, JSON-able: ``name``, ``definition`` (the registry spec as a
    dict, protobuf ``MessageToDict``), ``definition_digest``, ``source`` (the batch source's
    path), ``ttl_seconds``, ``entities``, ``features``, ``created``, ``last_updated``."""
    from google.protobuf.json_format import MessageToDict

    definition = MessageToDict(view.to_proto().spec)
    ttl = getattr(view, "ttl", None)
    source = getattr(view, "batch_source", None)
    return {
        "name": view.name,
        "definition": definition,
        "definition_digest": definition_digest(definition),
        "source": getattr(source, "path", None) or getattr(source, "name", None),
        "ttl_seconds": None if ttl is None else int(ttl.total_seconds()),
        "entities": [str(e) for e in getattr(view, "entities", []) or []],
        "features": [f.name for f in view.features],
        "created": _iso(getattr(view, "created_timestamp", None)),
        "last_updated": _iso(getattr(view, "last_updated_timestamp", None)),
    }


def applied_feature_views(store: FeatureStore, refs: Sequence[str]) -> list[dict[str, Any]]:
    """:func:`feature_view_record` of each view the references name (in reference order), read
    from the registry as it is now (bypassing its cache)."""
    names = list(dict.fromkeys(str(r).split(":", 1)[0] for r in refs))
    views = feature_views(store)
    out = []
    for name in names:
        view = views.get(name)
        if view is None:
            continue
        with contextlib.suppress(Exception):  # an on-demand view: read without the cache
            view = store.get_feature_view(name, allow_registry_cache=False)
        out.append(feature_view_record(view))
    return out


def _known_refs(views: Mapping[str, Any]) -> list[str]:
    return [f"{name}:{f.name}" for name, view in sorted(views.items()) for f in view.features]


def _shorten(items: Sequence[str], limit: int = 40) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def check_feature_refs(store: FeatureStore, refs: Sequence[str]) -> list[str]:
    """Validate feature references (``view:feature``) against the registry.

    :returns: the references, de-duplicated, in the given order.
    :raises FeatureRequestError: a malformed reference, an unknown feature view or feature
        (every bad reference is named, with the known ones).
    """
    if isinstance(refs, str):
        refs = [refs]
    refs = list(dict.fromkeys(str(r).strip() for r in refs))
    if not refs:
        raise FeatureRequestError("no feature references given")
    views = feature_views(store)
    malformed = [r for r in refs if r.count(":") != 1 or not all(r.split(":"))]
    if malformed:
        raise FeatureRequestError(
            f"feature reference(s) {malformed} are not of the form '<feature_view>:<feature>'"
        )
    unknown = []
    for ref in refs:
        view_name, feature = ref.split(":")
        view = views.get(view_name)
        if view is None or feature not in {f.name for f in view.features}:
            unknown.append(ref)
    if unknown:
        known = _known_refs(views)
        hint = _shorten(known) if known else f"none (is project {store.project!r} applied?)"
        raise FeatureRequestError(
            f"feature reference(s) {unknown} do not exist in project {store.project!r}; "
            f"known: {hint}"
        )
    return refs


def _get_feature_service(store: FeatureStore, name: str) -> FeatureService:
    from feast.errors import FeatureServiceNotFoundException

    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        known = sorted(s.name for s in store.list_feature_services())
        raise FeatureRequestError(
            f"feature service {name!r} does not exist in project {store.project!r}; "
            f"known: {known or 'none'}"
        ) from None


def resolve_feature_refs(
    store: FeatureStore,
    features: Sequence[str] | None = None,
    feature_service: str | None = None,
) -> tuple[list[str], FeatureService | None]:
    """The feature references of a request: exactly one of ``features`` / ``feature_service``.

    :returns: ``(refs, service)``; ``service`` is ``None`` when ``features`` were given.
    """
    if bool(features) == bool(feature_service):
        raise FeatureRequestError(
            "give either features (e.g. ['customer_activity:tenure_months']) or a "
            f"feature_service, not {'both' if features else 'neither'}"
        )
    if features:
        return check_feature_refs(store, features), None
    assert feature_service is not None
    service = _get_feature_service(store, feature_service)
    views = feature_views(store)
    refs = []
    for projection in service.feature_view_projections:
        fields = projection.features or getattr(views.get(projection.name), "features", [])
        refs += [f"{projection.name_to_use()}:{f.name}" for f in fields]
    return refs, service


def get_view(store: FeatureStore, name: str, *, fresh: bool = True) -> FeatureView:
    """A feature view by name (``fresh``: bypassing the registry cache)."""
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(name, allow_registry_cache=not fresh)
    except FeatureViewNotFoundException:
        known = sorted(v.name for v in store.list_feature_views())
        raise FeatureRequestError(
            f"feature view {name!r} does not exist in project {store.project!r}; known: "
            f"{known or 'none (apply the feature repo first)'}"
        ) from None


def freshness(store: FeatureStore, view: str) -> datetime | None:
    """How far ``view`` has been materialized: the latest end of its materialization
    intervals (UTC), or ``None`` if never. Reads the registry, bypassing its cache."""
    end = get_view(store, view, fresh=True).most_recent_end_time
    return None if end is None else to_utc(end)


def join_keys(store: FeatureStore, refs: Sequence[str]) -> list[str]:
    """The entity join keys of the views the references name, in reference order."""
    views = feature_views(store)
    keys: list[str] = []
    for ref in refs:
        view = views.get(ref.split(":")[0])
        for column in getattr(view, "entity_columns", []) or []:
            if column.name not in keys:
                keys.append(column.name)
    return keys
