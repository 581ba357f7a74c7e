"""The lifecycle assets are named (no URI scheme), and former ``mlops://`` URIs still resolve."""

from __future__ import annotations

import pytest
from airflow.sdk import Asset

from mlops_provider.assets import (
    RETRAIN_REQUEST_ASSET,
    RETRAIN_REQUEST_ASSET_NAME,
    RETRAIN_REQUEST_ASSET_URI,
    as_asset,
    features_asset,
    model_asset,
    predictions_asset,
    retrain_request_asset,
)


def test_assets_are_names_whose_uri_is_the_name() -> None:
    built = {
        features_asset("orders"): "mlops.features.orders",
        model_asset("demand"): "mlops.models.demand",
        predictions_asset("demand"): "mlops.predictions.demand",
        retrain_request_asset("demand"): "mlops.retrain-request.demand",
        RETRAIN_REQUEST_ASSET: "mlops.retrain-request",
    }
    for asset, name in built.items():
        assert (asset.name, asset.uri) == (name, name)
        assert asset == Asset(name=name)
    assert RETRAIN_REQUEST_ASSET_NAME == RETRAIN_REQUEST_ASSET_URI == "mlops.retrain-request"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mlops://retrain-request", RETRAIN_REQUEST_ASSET),
        ("mlops://retrain-request/", RETRAIN_REQUEST_ASSET),
        ("mlops://retrain-request/churn", retrain_request_asset("churn")),
        ("mlops://models/churn", model_asset("churn")),
        ("mlops://features/customer_activity", features_asset("customer_activity")),
        ("mlops://predictions/churn/", predictions_asset("churn")),
    ],
)
def test_former_uris_resolve_to_the_named_assets(uri: str, expected: Asset) -> None:
    assert as_asset(uri) == expected


def test_as_asset_passes_assets_and_other_names_through() -> None:
    asset = Asset(name="mine")
    assert as_asset(asset) is asset
    assert as_asset("mlops.retrain-request.churn") == retrain_request_asset("churn")
    assert as_asset("s3://bucket/key").uri == "s3://bucket/key"


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("mlops://deployments/churn", ValueError, "kind must be one of"),
        ("mlops://models", ValueError, "names no model"),
        ("mlops://models/a/b", ValueError, "without '/'"),
        ("", TypeError, "expected an Asset"),
        (None, TypeError, "expected an Asset"),
    ],
)
def test_bad_values_are_named(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        as_asset(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a/b", "models:churn", None])
def test_names_that_are_not_plain_names_are_refused(name: object) -> None:
    for build in (features_asset, model_asset, predictions_asset, retrain_request_asset):
        with pytest.raises(ValueError, match="without '/' or ':'"):
            build(name)  # type: ignore[arg-type]
