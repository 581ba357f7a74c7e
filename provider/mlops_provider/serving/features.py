"""Online feature lookup for ``entities`` requests: Feast ``get_online_features`` through the
references the model's training run recorded, with missing values detected per entity and
feature (never zero-filled)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlops_provider.serving.payload import ServingError

log = logging.getLogger(__name__)

__all__ = ["FEATURE_REFS_TAG", "OnlineFeatures", "feature_refs_of_run", "open_feature_store"]

#: Training run tag holding the Feast references of the training set (a JSON list).
FEATURE_REFS_TAG = "mlops.feature_refs"
# Feast FieldStatus values (feast.protos.feast.serving.ServingService_pb2)
_PRESENT, _NULL, _NOT_FOUND, _OUTSIDE_MAX_AGE = 1, 2, 3, 4
_STATUS_NAMES = {
    _NULL: "null",
    _NOT_FOUND: "not found",
    _OUTSIDE_MAX_AGE: "older than the view's ttl",
}


def feature_refs_of_run(tags: Mapping[str, str]) -> list[str]:
    """The Feast references (``view:feature``) in a run's ``mlops.feature_refs`` tag (empty list
    when the run recorded none or the tag does not parse)."""
    import json

    text = tags.get(FEATURE_REFS_TAG)
    if not text:
        return []
    try:
        refs = json.loads(text)
    except ValueError:
        log.warning("tag %s is not JSON: %r", FEATURE_REFS_TAG, text)
        return []
    return [str(r) for r in refs] if isinstance(refs, list) else []


def open_feature_store(repo: str, overrides: Any = None) -> Any:
    """A Feast ``FeatureStore`` for ``repo`` (placeholders expanded, ``overrides`` applied)."""
    from mlops_provider.core.feast_config import make_feature_store

    return make_feature_store(repo, overrides)


def _refs_for_inputs(store: Any, inputs: Sequence[str]) -> list[str]:
    """References of the views that serve the model's input columns (when the training run did
    not record its references): the first view holding each column."""
    from mlops_provider.core.features.registry import feature_views

    refs = []
    views = feature_views(store)
    for name in inputs:
        for view_name, view in views.items():
            if name in {f.name for f in view.features}:
                refs.append(f"{view_name}:{name}")
                break
    return refs


class OnlineFeatures:
    """Reads a model's features for entities from the Feast online store.

    :param store: a Feast ``FeatureStore``.
    :param refs: the references to read (``view:feature``); the column name fed to the model
        is the feature name.
    :param entity_columns: the join keys an entity names (default: those of the referenced
        views).
    :param on_missing: called with the feature name for every missing value (metrics).
    :raises ServingError: (``lookup``) 404 naming the entity and the missing features, 503 when
        the online store fails.
    """

    def __init__(
        self,
        store: Any,
        refs: Sequence[str],
        entity_columns: Sequence[str] | None = None,
        on_missing: Callable[[str], None] | None = None,
    ) -> None:
        from mlops_provider.core.features.registry import join_keys

        self.store = store
        self.refs = list(refs)
        self.names = [ref.split(":", 1)[-1] for ref in self.refs]
        self.entity_columns = list(entity_columns or join_keys(store, self.refs))
        self.on_missing = on_missing
        # Feast's SQLite online store shares one connection: one read at a time there
        online = getattr(getattr(store, "config", None), "online_store", None)
        self._lock: threading.Lock | None = (
            threading.Lock() if getattr(online, "type", "sqlite") == "sqlite" else None
        )

    @classmethod
    def for_model(
        cls,
        store: Any,
        recorded_refs: Sequence[str],
        inputs: Sequence[str],
        entity_columns: Sequence[str] | None,
        override: Sequence[str] | None = None,
        on_missing: Callable[[str], None] | None = None,
    ) -> OnlineFeatures:
        """The lookup of a model: ``override``, else the recorded references, else the views
        holding its input columns; only references of the model's inputs are read."""
        refs = list(override or recorded_refs) or _refs_for_inputs(store, inputs)
        wanted = set(inputs)
        refs = [r for r in refs if r.split(":", 1)[-1] in wanted] or refs
        return cls(store, refs, entity_columns or None, on_missing)

    def lookup(self, entities: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Feature values of ``entities`` (column -> values in entity order).

        :raises ServingError: 404 ``unknown_entity`` when an entity has no online row at all,
            404 ``missing_feature`` when some of its features are missing; 422 for an entity
            key Feast refuses; 503 ``feature_store`` when the online store fails.
        """
        rows = [{k: e[k] for k in self.entity_columns} for e in entities]
        try:
            response = self._read(self.refs, rows)
        except (TypeError, ValueError) as err:
            raise ServingError(
                422, "invalid_input", f"entity keys {self.entity_columns} refused by Feast: {err}"
            ) from err
        except Exception as err:  # the online stores' own errors vary (Redis, SQLite)
            raise ServingError(
                503, "feature_store", f"Feast online store failed: {type(err).__name__}: {err}"
            ) from err
        return self._columns(response, rows)

    def _read(self, refs: list[str], rows: list[dict[str, Any]]) -> Any:
        if self._lock is None:
            return self.store.get_online_features(features=refs, entity_rows=rows)
        with self._lock:
            return self.store.get_online_features(features=refs, entity_rows=rows)

    def _columns(self, response: Any, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        proto = response.proto
        names = list(proto.metadata.feature_names.val)
        values = response.to_dict()
        wanted = set(self.names)
        missing: dict[int, list[str]] = {}
        for j, name in enumerate(names):
            if name not in wanted:
                continue
            statuses = proto.results[j].statuses
            column = values[name]
            for i, value in enumerate(column):
                if value is None or statuses[i] != _PRESENT:
                    status = _STATUS_NAMES.get(statuses[i], "null")
                    missing.setdefault(i, []).append(f"{name} ({status})")
                    if self.on_missing is not None:
                        self.on_missing(name)
        if missing:
            raise self._missing_error(rows, missing)
        return {name: values[name] for name in self.names}

    def _missing_error(
        self, rows: list[dict[str, Any]], missing: dict[int, list[str]]
    ) -> ServingError:
        unknown = [i for i, feats in missing.items() if len(feats) == len(self.names)]
        first = unknown[0] if unknown else min(missing)
        key = ", ".join(f"{k}={rows[first][k]!r}" for k in self.entity_columns)
        others = f" (and {len(missing) - 1} more entities)" if len(missing) > 1 else ""
        if unknown:
            return ServingError(
                404,
                "unknown_entity",
                f"unknown entity {key} (entities[{first}]): no online features for "
                f"{', '.join(self.refs[:5])}{'...' if len(self.refs) > 5 else ''}{others}",
            )
        return ServingError(
            404,
            "missing_feature",
            f"entity {key} (entities[{first}]): missing online feature(s) "
            f"{', '.join(missing[first])}{others}",
        )

    def probe(self) -> None:
        """One cheap online read (a key that need not exist) to check the store answers.

        :raises Exception: whatever the online store raises when it is unreachable.
        """
        from mlops_provider.core.features.registry import feature_views

        view = feature_views(self.store).get(self.refs[0].split(":", 1)[0]) if self.refs else None
        kinds = {c.name: str(c.dtype) for c in getattr(view, "entity_columns", []) or []}
        row = {
            k: ("__readyz__" if "String" in kinds.get(k, "") else 0) for k in self.entity_columns
        }
        self._read(self.refs[:1], [row])


class FeatureStoreCheck:
    """``/readyz``'s feature store state, cached for ``ttl`` seconds.

    :param probe: raises when the store is unreachable.
    """

    def __init__(self, probe: Callable[[], None], ttl: float) -> None:
        self._probe = probe
        self._ttl = ttl
        self._at = -1e18
        self._state: tuple[bool, str] = (False, "not checked")
        self._lock = threading.Lock()

    def state(self) -> tuple[bool, str]:
        """``(ok, message)``: ``(True, "ok")`` or ``(False, <the error>)``."""
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self._ttl:
                try:
                    self._probe()
                    self._state = (True, "ok")
                except Exception as err:  # any failure means not ready
                    self._state = (False, f"feature store unreachable: {type(err).__name__}: {err}")
                self._at = now
            return self._state
