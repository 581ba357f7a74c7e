"""What exists in the registry, for the error a misspelt name gets.

A registered model or alias that does not exist is a typo far more often than a first model:
the evaluation, the promotion and the alias sensor refuse it (unless told that a first model is
meant) with :func:`missing_holder`, which names what is missing, what exists and the closest
name (:func:`mlops_provider.core.errors.did_you_mean`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mlops_provider.core.errors import did_you_mean
from mlops_provider.core.models import ModelNotFoundError, alias_holder, registered_model_or_error
from mlops_provider.core.registry.lock import LOCK_SUFFIX

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_provider.core.models import ModelVersion

__all__ = ["holder_or_missing", "missing_holder", "registered_model_names"]

_LISTED = 20
"""At most this many names are listed in a message (the closest is found among all)."""


def registered_model_names(client: MlflowClient) -> list[str]:
    """Every registered model's name (all pages), sorted, without the transient lock models
    of :mod:`.lock`."""
    names: list[str] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        names.extend(str(m.name) for m in page)
        token = getattr(page, "token", None)
        if not token:
            return sorted(n for n in names if not n.endswith(LOCK_SUFFIX))


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def missing_holder(client: MlflowClient, name: str, alias: str) -> str:
    """Why ``name@alias`` has no holder, naming what exists and the closest name::

    registered model 'chrun' does not exist (registered models: 'churn', 'fraud');
    did you mean 'churn'?
    registered model 'churn' has no alias 'champoin' (its aliases: @champion -> version
    3, @previous_champion -> version 2); did you mean 'champion'?
    """
    try:
        registered = registered_model_or_error(client, name)
    except ModelNotFoundError:
        names = registered_model_names(client)
        existing = f"registered models: {_listed(map(repr, names))}" if names else "none yet"
        return f"registered model {name!r} does not exist ({existing}){did_you_mean(name, names)}"
    aliases = {str(a): str(v) for a, v in (getattr(registered, "aliases", None) or {}).items()}
    listed = _listed(f"@{a} -> version {v}" for a, v in sorted(aliases.items())) or "none"
    return (
        f"registered model {name!r} has no alias {alias!r} (its aliases: {listed})"
        f"{did_you_mean(alias, aliases)}"
    )


def holder_or_missing(
    client: MlflowClient, name: str, alias: str, *, allow_missing: bool, hint: str
) -> ModelVersion | None:
    """The version holding ``name@alias``; ``None`` when there is none and ``allow_missing``.

    :param hint: what the caller's user can do, appended to the error (e.g. the parameter that
        allows a missing holder).
    :raises ModelNotFoundError: no holder and not ``allow_missing``; the message is
        :func:`missing_holder`'s, then ``hint``.
    """
    holder = alias_holder(client, name, alias)
    if holder is None and not allow_missing:
        missing = missing_holder(client, name, alias)
        raise ModelNotFoundError(f"{missing}{'' if missing.endswith('?') else '.'} {hint}")
    return holder
