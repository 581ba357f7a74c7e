"""Asset URIs of the ML lifecycle: what each reference DAG produces and what schedules the next.

The DAGs and operators import these names so producer and consumer always agree on a URI::

    features (mlops_feature_pipeline) -> model (mlops_training_pipeline)
    model -> predictions (mlops_batch_scoring) -> monitoring -> retrain request -> training

Airflow normalizes a URI without a path (``mlops://retrain-request``) to one with a trailing
slash; an ``Asset`` built from the constant on both sides still matches. This module is light:
it imports nothing but ``airflow.sdk.Asset``.
"""

from __future__ import annotations

from airflow.sdk import Asset

__all__ = [
    "FEATURES_ASSET",
    "FEATURES_ASSET_URI",
    "MODEL_ASSET",
    "MODEL_ASSET_URI",
    "PREDICTIONS_ASSET",
    "PREDICTIONS_ASSET_URI",
    "RETRAIN_REQUEST_ASSET",
    "RETRAIN_REQUEST_ASSET_URI",
    "as_asset",
    "retrain_request_asset",
]

#: A retraining request (emitted by RetrainDecisionOperator / RetrainRequestOperator).
RETRAIN_REQUEST_ASSET_URI = "mlops://retrain-request"
#: Fresh features materialized by the feature pipeline.
FEATURES_ASSET_URI = "mlops://features/customer_activity"
#: A new champion model version promoted by the training pipeline.
MODEL_ASSET_URI = "mlops://models/churn"
#: A new predictions partition written by batch scoring.
PREDICTIONS_ASSET_URI = "mlops://predictions/churn"

RETRAIN_REQUEST_ASSET = Asset(RETRAIN_REQUEST_ASSET_URI)
FEATURES_ASSET = Asset(FEATURES_ASSET_URI)
MODEL_ASSET = Asset(MODEL_ASSET_URI)
PREDICTIONS_ASSET = Asset(PREDICTIONS_ASSET_URI)


def retrain_request_asset(model_name: str) -> Asset:
    """The retrain-request asset of one registered model: ``mlops://retrain-request/<name>``.

    Use it when several models are monitored and each training DAG should only be scheduled
    by requests for its own model.
    """
    if not model_name or "/" in model_name:
        raise ValueError(f"model_name must be a non-empty name without '/', got {model_name!r}")
    return Asset(f"{RETRAIN_REQUEST_ASSET_URI}/{model_name}")


def as_asset(value: Asset | str) -> Asset:
    """An ``Asset`` from an ``Asset`` or a URI string."""
    if isinstance(value, Asset):
        return value
    if isinstance(value, str) and value:
        return Asset(value)
    raise TypeError(f"expected an Asset or a URI string, got {value!r}")
