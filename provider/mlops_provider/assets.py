"""Asset URIs of the ML lifecycle: one naming scheme for what a DAG produces and what
schedules the next.

The provider names no domain: a project builds its assets from its own names, once, and imports
them in every DAG so producer and consumer always agree on a URI::

    features_asset("orders")          mlops://features/orders
    model_asset("demand")             mlops://models/demand
    predictions_asset("demand")       mlops://predictions/demand
    RETRAIN_REQUEST_ASSET             mlops://retrain-request   (RetrainDecisionOperator)
    retrain_request_asset("demand")   mlops://retrain-request/demand

(The reference DAGs build theirs in ``dags/mlops_common.py``.)

Airflow normalizes a URI without a path (``mlops://retrain-request``) to one with a trailing
slash; an ``Asset`` built from the constant on both sides still matches. This module is light:
it imports nothing but ``airflow.sdk.Asset``.
"""

from __future__ import annotations

from airflow.sdk import Asset

__all__ = [
    "ASSET_SCHEME",
    "RETRAIN_REQUEST_ASSET",
    "RETRAIN_REQUEST_ASSET_URI",
    "as_asset",
    "features_asset",
    "model_asset",
    "predictions_asset",
    "retrain_request_asset",
]

#: Scheme of every asset URI the provider builds.
ASSET_SCHEME = "mlops"
#: A retraining request (emitted by RetrainDecisionOperator / RetrainRequestOperator).
RETRAIN_REQUEST_ASSET_URI = f"{ASSET_SCHEME}://retrain-request"
RETRAIN_REQUEST_ASSET = Asset(RETRAIN_REQUEST_ASSET_URI)


def _named(kind: str, name: str, what: str) -> Asset:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{what} must be a non-empty name without '/', got {name!r}")
    return Asset(f"{ASSET_SCHEME}://{kind}/{name}")


def features_asset(feature_view: str) -> Asset:
    """Fresh features of one feature view: ``mlops://features/<feature_view>``."""
    return _named("features", feature_view, "feature_view")


def model_asset(model_name: str) -> Asset:
    """A new champion of one registered model: ``mlops://models/<model_name>``."""
    return _named("models", model_name, "model_name")


def predictions_asset(model_name: str) -> Asset:
    """A new predictions partition of one model: ``mlops://predictions/<model_name>``."""
    return _named("predictions", model_name, "model_name")


def retrain_request_asset(model_name: str) -> Asset:
    """The retrain-request asset of one registered model: ``mlops://retrain-request/<name>``.

    Use it when several models are monitored and each training DAG should only be scheduled
    by requests for its own model.
    """
    return _named("retrain-request", model_name, "model_name")


def as_asset(value: Asset | str) -> Asset:
    """An ``Asset`` from an ``Asset`` or a URI string."""
    if isinstance(value, Asset):
        return value
    if isinstance(value, str) and value:
        return Asset(value)
    raise TypeError(f"expected an Asset or a URI string, got {value!r}")
