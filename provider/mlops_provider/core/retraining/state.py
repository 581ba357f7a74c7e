"""What the policy knows about the registry: the champion and the last retrain request.

The request state lives on the registered model as tags (``mlops.retrain.*``), so it needs no
extra storage and survives worker restarts. "Open" is derived, never stored
(:func:`is_request_open`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_provider.core.models import (
    DEFAULT_ALIAS,
    TARGET_TAG,
    ModelNotFoundError,
    ModelVersion,
    alias_holder,
    is_not_found,
    registered_model_or_error,
    version_uri,
)
from mlops_provider.core.times import iso, parse_time, utcnow

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_provider.core.runs import RunIdentity

__all__ = [
    "PROMOTED_AT_TAG",
    "TARGET_TAG",
    "TRAINING_END_TAGS",
    "ChampionInfo",
    "RequestState",
    "champion_from",
    "is_request_open",
    "mark_request_handled",
    "read_champion",
    "read_request_state",
    "record_request",
    "request_count",
    "request_id_for",
]

log = logging.getLogger(__name__)

PROMOTED_AT_TAG = "mlops.promoted_at"
#: Version or run tags that may hold the end of the champion's training data (first found wins).
TRAINING_END_TAGS = (
    "mlops.training_data_end",
    "mlops.data_interval_end",
    "mlops.training_data_interval_end",
    "data_interval_end",
)
TAG_LAST_REQUEST_AT = "mlops.retrain.last_request_at"
TAG_LAST_REQUEST_REASONS = "mlops.retrain.last_request_reasons"
TAG_LAST_REQUEST_CHAMPION = "mlops.retrain.last_request_champion_version"
TAG_LAST_REQUEST_ID = "mlops.retrain.last_request_id"
TAG_LAST_REQUEST_CHAMPION_PROMOTED_AT = "mlops.retrain.last_request_champion_promoted_at"
TAG_HANDLED_REQUEST_ID = "mlops.retrain.handled_request_id"
TAG_HANDLED_AT = "mlops.retrain.handled_at"
#: How many distinct requests were recorded on the registered model (a retry or rerun that
#: records the same request again does not count twice).
TAG_REQUEST_COUNT = "mlops.retrain.request_count"


# --------------------------------------------------------------------------- champion


@dataclass(frozen=True)
class ChampionInfo:
    """The alias holder (:attr:`model`) with what the policy needs beyond its identity.

    :param model: the version holding the alias.
    :param promoted_at: its ``mlops.promoted_at`` tag (when it last received the alias).
    :param training_data_end: end of its training data (version, then run tags).
    :param target: the label column its training run recorded (``mlops.target``).
    """

    model: ModelVersion
    promoted_at: datetime | None = None
    training_data_end: datetime | None = None
    target: str | None = None

    @classmethod
    def of(
        cls,
        name: str,
        version: str | int,
        *,
        promoted_at: datetime | None = None,
        created_at: datetime | None = None,
        training_data_end: datetime | None = None,
        run_id: str | None = None,
        target: str | None = None,
    ) -> ChampionInfo:
        """A champion described without a registry (tests, notebooks)."""
        created = None if created_at is None else int(created_at.timestamp() * 1000)
        model = ModelVersion(
            uri=version_uri(name, version),
            name=name,
            version=str(version),
            run_id=run_id,
            creation_timestamp=created,
        )
        return cls(model, promoted_at, training_data_end, target)

    @property
    def name(self) -> str:
        return str(self.model.name)

    @property
    def version(self) -> str:
        return str(self.model.version)

    @property
    def run_id(self) -> str | None:
        return self.model.run_id

    @property
    def created_at(self) -> datetime | None:
        return self.model.created_at

    @property
    def since(self) -> datetime | None:
        """When it became champion: ``mlops.promoted_at``, else the version's creation time."""
        return self.promoted_at or self.created_at

    @property
    def training_cutoff(self) -> datetime | None:
        """End of its training data (else its promotion/creation time, an upper bound)."""
        return self.training_data_end or self.promoted_at or self.created_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "promoted_at": iso(self.promoted_at),
            "created_at": iso(self.created_at),
            "training_data_end": iso(self.training_data_end),
            "run_id": self.run_id,
            "target": self.target,
        }


def _first_time(tags: Mapping[str, str]) -> datetime | None:
    return next((parse_time(tags[t]) for t in TRAINING_END_TAGS if tags.get(t)), None)


def champion_from(holder: ModelVersion, run_tags: Mapping[str, str] | None = None) -> ChampionInfo:
    """The champion from its version (tags) and its training run's tags (pure)."""
    tags, run_tags = holder.tags, run_tags or {}
    return ChampionInfo(
        holder,
        promoted_at=parse_time(tags.get(PROMOTED_AT_TAG)),
        training_data_end=_first_time(tags) or _first_time(run_tags),
        target=tags.get(TARGET_TAG) or run_tags.get(TARGET_TAG) or None,
    )


def _run_tags(client: MlflowClient, run_id: str | None) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return {}
    try:
        return dict(client.get_run(run_id).data.tags)
    except MlflowException as err:
        if is_not_found(err):
            return {}
        raise


def read_champion(
    client: MlflowClient, name: str, alias: str = DEFAULT_ALIAS
) -> ChampionInfo | None:
    """The alias holder (``None`` when the alias is not set).

    :raises ModelNotFoundError: the registered model does not exist.
    """
    holder = alias_holder(client, name, alias)
    if holder is None:
        registered_model_or_error(client, name)
        return None
    return champion_from(holder, _run_tags(client, holder.run_id))


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestState:
    """The last retrain request of a registered model (from its ``mlops.retrain.*`` tags).

    ``champion_version`` and ``champion_promoted_at`` describe the champion when the request was
    made; ``handled_request_id`` is the request the training pipeline marked handled (its
    candidate promoted or rejected, see :func:`mark_request_handled`).
    """

    last_request_at: datetime | None = None
    reasons: tuple[str, ...] = ()
    champion_version: str | None = None
    request_id: str | None = None
    champion_promoted_at: str | None = None
    handled_request_id: str | None = None
    handled_at: datetime | None = None

    @property
    def handled(self) -> bool:
        """The last request was marked handled by the training pipeline."""
        return bool(
            self.last_request_at is not None
            and self.handled_request_id is not None
            and self.handled_request_id == (self.request_id or "")
        )

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RequestState:
        reasons: tuple[str, ...] = ()
        raw = tags.get(TAG_LAST_REQUEST_REASONS)
        if raw:
            try:
                parsed = json.loads(raw)
                reasons = tuple(str(r) for r in parsed) if isinstance(parsed, list) else (raw,)
            except json.JSONDecodeError:
                reasons = (raw,)
        return cls(
            last_request_at=parse_time(tags.get(TAG_LAST_REQUEST_AT)),
            reasons=reasons,
            champion_version=tags.get(TAG_LAST_REQUEST_CHAMPION) or None,
            request_id=tags.get(TAG_LAST_REQUEST_ID) or None,
            champion_promoted_at=tags.get(TAG_LAST_REQUEST_CHAMPION_PROMOTED_AT) or None,
            handled_request_id=tags.get(TAG_HANDLED_REQUEST_ID),
            handled_at=parse_time(tags.get(TAG_HANDLED_AT)),
        )

    def to_tags(self) -> dict[str, str]:
        """The tags of a new request (handling tags are written by mark_request_handled)."""
        reasons = list(self.reasons)
        text = json.dumps(reasons)
        while len(text) > 4900 and reasons:  # registry tag values are limited in size
            reasons = reasons[:-1]
            text = json.dumps([*reasons, "..."])
        return {
            TAG_LAST_REQUEST_AT: iso(self.last_request_at) or "",
            TAG_LAST_REQUEST_REASONS: text,
            TAG_LAST_REQUEST_CHAMPION: self.champion_version or "",
            TAG_LAST_REQUEST_CHAMPION_PROMOTED_AT: self.champion_promoted_at or "",
            TAG_LAST_REQUEST_ID: self.request_id or "",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_request_at": iso(self.last_request_at),
            "reasons": list(self.reasons),
            "champion_version": self.champion_version,
            "request_id": self.request_id,
            "handled": self.handled,
            "handled_at": iso(self.handled_at),
        }


def request_id_for(identity: RunIdentity) -> str:
    """Identity of a deciding run: ``<dag_id>/<data interval start>`` (or the run id), the
    same for every try and rerun of one interval."""
    if identity.data_interval_start is not None:
        return f"{identity.dag_id}/{iso(identity.data_interval_start)}"
    return f"{identity.dag_id}/{identity.run_id}"


def is_request_open(
    state: RequestState | None,
    champion: ChampionInfo | None,
    *,
    now: datetime | None = None,
    expiry: timedelta | None = None,
) -> bool:
    """Whether the last request still waits for a new champion.

    Closed when there is no request; when the training pipeline marked it handled; when the
    request is older than ``expiry``; or when a promotion happened after it: the champion is
    not the version recorded with the request, or the same version was promoted again (its
    ``mlops.promoted_at`` tag changed). These comparisons need no common clock between the
    monitoring and the registry. A state without the recorded champion (written by another
    tool) falls back to comparing the promotion (or creation) time with the request time.
    """
    if state is None or state.last_request_at is None or state.handled:
        return False
    if expiry is not None and now is not None and now - state.last_request_at >= expiry:
        return False
    if champion is None:
        return True
    if state.champion_version is not None:
        if champion.version != state.champion_version:
            return False
        if state.champion_promoted_at and champion.promoted_at is not None:
            return parse_time(state.champion_promoted_at) == champion.promoted_at
        return True
    return not (champion.since is not None and champion.since > state.last_request_at)


def request_count(tags: Mapping[str, str]) -> int:
    """The number of retrain requests recorded on a registered model (its
    ``mlops.retrain.request_count`` tag; 1 for a model with a request recorded before the
    count existed, 0 without any)."""
    raw = tags.get(TAG_REQUEST_COUNT)
    if raw is not None and raw.strip().isdigit():
        return int(raw)
    return 1 if tags.get(TAG_LAST_REQUEST_AT) else 0


def read_request_state(client: MlflowClient, name: str) -> RequestState:
    """The last request recorded on the registered model.

    :raises ModelNotFoundError: the registered model does not exist.
    """
    return RequestState.from_tags(dict(registered_model_or_error(client, name).tags or {}))


def record_request(
    client: MlflowClient,
    name: str,
    *,
    reasons: Sequence[str],
    at: datetime,
    champion: ChampionInfo | None,
    request_id: str | None,
) -> RequestState:
    """Store a retrain request as registered-model tags (and count it in
    ``mlops.retrain.request_count`` unless it repeats the last request's id); returns the new
    state."""
    previous = dict(registered_model_or_error(client, name).tags or {})
    count = request_count(previous)
    if request_id is None or request_id != previous.get(TAG_LAST_REQUEST_ID):
        count += 1
    state = RequestState(
        last_request_at=at,
        reasons=tuple(reasons),
        champion_version=champion.version if champion else None,
        request_id=request_id,
        champion_promoted_at=iso(champion.promoted_at) if champion else None,
    )
    for key, value in {**state.to_tags(), TAG_REQUEST_COUNT: str(count)}.items():
        client.set_registered_model_tag(name, key, value)
    log.info("Recorded retrain request for %s at %s: %s", name, iso(at), list(reasons))
    return state


def mark_request_handled(
    client: MlflowClient,
    name: str,
    *,
    handled_at: datetime | str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Close the last retrain request: its retraining finished (promoted or rejected).

    The training pipeline calls this at its end so that monitoring may request again without
    waiting for ``request_expiry`` when the candidate was rejected. With ``request_id`` (the
    ``request_id`` of the triggering asset event's ``extra``), a newer request recorded in the
    meantime is left open.

    A registered model that does not exist yet (a first candidate was rejected) holds no
    request: nothing is closed and the reason says so.

    :returns: ``{"handled": bool, "request_id", "last_request_at", "handled_at", "reason"}``.
    """
    try:
        state = read_request_state(client, name)
    except ModelNotFoundError:
        return {
            "handled": False,
            "request_id": None,
            "last_request_at": None,
            "handled_at": None,
            "reason": f"no registered model {name!r} yet: no retrain request recorded",
        }
    when = parse_time(handled_at) or utcnow()
    out: dict[str, Any] = {
        "handled": False,
        "request_id": state.request_id,
        "last_request_at": iso(state.last_request_at),
        "handled_at": None,
        "reason": None,
    }
    if state.last_request_at is None:
        out["reason"] = "no retrain request recorded"
        return out
    if request_id is not None and request_id != state.request_id:
        out["reason"] = f"the last request is {state.request_id!r}, not {request_id!r}: left open"
        return out
    client.set_registered_model_tag(name, TAG_HANDLED_REQUEST_ID, state.request_id or "")
    client.set_registered_model_tag(name, TAG_HANDLED_AT, iso(when) or "")
    log.info("Marked retrain request %s of %s handled at %s", state.request_id, name, iso(when))
    out.update({"handled": True, "handled_at": iso(when)})
    return out
