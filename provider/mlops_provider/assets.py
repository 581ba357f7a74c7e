"""Assets of the ML lifecycle: one naming scheme for what a DAG produces and what schedules
the next.

The provider names no domain: a project builds its assets from its own names, once, and imports
them in every DAG so producer and consumer always agree on a name::

    features_asset("orders")          mlops.features.orders
    model_asset("demand")             mlops.models.demand
    predictions_asset("demand")       mlops.predictions.demand
    RETRAIN_REQUEST_ASSET             mlops.retrain-request   (RetrainDecisionOperator)
    retrain_request_asset("demand")   mlops.retrain-request.demand

(The reference DAGs build theirs in ``dags/mlops_common.py``.)

The assets are *named* (``Asset(name=...)``; Airflow then uses the name as the URI too), not
given a URI scheme: Airflow sanitizes an asset URI whose scheme is neither ``file`` nor
``x-...`` by loading every installed provider's asset URI handlers, which imports, for
example, boto3 through the Amazon provider. A name costs nothing to parse.

Earlier versions named the assets by URI, ``mlops://<kind>/<name>``. :func:`as_asset` still
accepts such a URI string and returns the named asset (``mlops://models/churn`` ->
``mlops.models.churn``), so an operator argument given as an old URI keeps working; an
``Asset("mlops://...")`` built by a DAG of yours no longer matches what the operators emit.

This module is light: it imports nothing but ``airflow.sdk.Asset``.
"""

from __future__ import annotations

from airflow.sdk import Asset

__all__ = [
    "ASSET_NAMESPACE",
    "ASSET_SCHEME",
    "RETRAIN_REQUEST_ASSET",
    "RETRAIN_REQUEST_ASSET_NAME",
    "RETRAIN_REQUEST_ASSET_URI",
    "as_asset",
    "features_asset",
    "model_asset",
    "predictions_asset",
    "retrain_request_asset",
]

#: First part of every asset name the provider builds.
ASSET_NAMESPACE = "mlops"
#: Scheme of the former asset URIs (``mlops://<kind>/<name>``), still accepted by ``as_asset``.
ASSET_SCHEME = "mlops"
#: Kinds of lifecycle assets (the second part of a name, the host of a former URI).
_KINDS = ("features", "models", "predictions", "retrain-request")
#: A retraining request (emitted by RetrainDecisionOperator / RetrainRequestOperator).
RETRAIN_REQUEST_ASSET_NAME = f"{ASSET_NAMESPACE}.retrain-request"
#: The same: a named asset's URI is its name.
RETRAIN_REQUEST_ASSET_URI = RETRAIN_REQUEST_ASSET_NAME
RETRAIN_REQUEST_ASSET = Asset(name=RETRAIN_REQUEST_ASSET_NAME)


def _named(kind: str, name: str, what: str) -> Asset:
    if not isinstance(name, str) or not name or "/" in name or ":" in name:
        raise ValueError(f"{what} must be a non-empty name without '/' or ':', got {name!r}")
    return Asset(name=f"{ASSET_NAMESPACE}.{kind}.{name}")


def features_asset(feature_view: str) -> Asset:
    """Fresh features of one feature view: ``mlops.features.<feature_view>``."""
    return _named("features", feature_view, "feature_view")


def model_asset(model_name: str) -> Asset:
    """A new champion of one registered model: ``mlops.models.<model_name>``."""
    return _named("models", model_name, "model_name")


def predictions_asset(model_name: str) -> Asset:
    """A new predictions partition of one model: ``mlops.predictions.<model_name>``."""
    return _named("predictions", model_name, "model_name")


def retrain_request_asset(model_name: str) -> Asset:
    """The retrain-request asset of one registered model: ``mlops.retrain-request.<name>``.

    Use it when several models are monitored and each training DAG should only be scheduled
    by requests for its own model.
    """
    return _named("retrain-request", model_name, "model_name")


def _from_legacy_uri(uri: str) -> Asset | None:
    """The named asset of a former ``mlops://<kind>[/<name>]`` URI, or None for another URI."""
    prefix = f"{ASSET_SCHEME}://"
    if not uri.lower().startswith(prefix):
        return None
    kind, _, name = uri[len(prefix) :].strip("/").partition("/")
    if kind not in _KINDS:
        raise ValueError(f"unknown lifecycle asset URI {uri!r}: the kind must be one of {_KINDS}")
    if not name:
        if kind != "retrain-request":
            raise ValueError(f"lifecycle asset URI {uri!r} names no {kind[:-1]}")
        return RETRAIN_REQUEST_ASSET
    return _named(kind, name, "the name in the URI")


def as_asset(value: Asset | str) -> Asset:
    """An ``Asset`` from an ``Asset``, a name or URI string, or a former ``mlops://`` URI.

    A string ``mlops://<kind>/<name>`` (the provider's former asset URIs) becomes the named
    asset of the same kind and name; any other string is passed to ``Asset`` as its name (and
    so its URI).

    :raises TypeError: ``value`` is neither an ``Asset`` nor a non-empty string.
    :raises ValueError: an ``mlops://`` URI of an unknown kind or without a name.
    """
    if isinstance(value, Asset):
        return value
    if isinstance(value, str) and value:
        return _from_legacy_uri(value) or Asset(value)
    raise TypeError(f"expected an Asset or a URI string, got {value!r}")
