"""What every part of the feature store work shares: its error, its names, where the
published feature source lives."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

from mlops_provider.core import config, io
from mlops_provider.core.errors import InputError

__all__ = [
    "ENTITY_TIMESTAMP_COLUMN",
    "FEATURES_ROOT_ENV",
    "LAKE_URI_ENV",
    "PARTITION_KEY",
    "S3_ENDPOINT_ENV",
    "FeatureRequestError",
    "feature_source_uri",
    "features_root",
    "quiet_offline_store",
    "s3_endpoint_override",
]

#: Base URI of the published feature sources (default ``<data_root>/features``).
FEATURES_ROOT_ENV = "MLOPS_FEATURES_ROOT"
#: Base URI of the data lake shared with the reference DAGs (features live in ``features/``).
LAKE_URI_ENV = "MLOPS_LAKE_URI"
#: S3-compatible endpoint (e.g. MinIO) for ``s3://`` feature sources.
S3_ENDPOINT_ENV = "MLOPS_FEATURES_S3_ENDPOINT"
#: Name of the entity data timestamp column Feast joins on.
ENTITY_TIMESTAMP_COLUMN = "event_timestamp"
#: The partition key of published feature sources (``dt=YYYY-MM-DD``).
PARTITION_KEY = "dt"


class FeatureRequestError(InputError):
    """A request names something the feature store does not have, or is otherwise invalid."""


def features_root() -> str:
    """Base URI of the published feature sources: ``$MLOPS_FEATURES_ROOT``, else
    ``<lake_uri>/features`` (:func:`mlops_provider.core.config.lake_uri`, the data lake the
    reference DAGs write to; the embedded default is ``<data_root>/features``)."""
    if os.environ.get(FEATURES_ROOT_ENV):
        return os.environ[FEATURES_ROOT_ENV]
    return io.join_uri(config.lake_uri(), "features")


def feature_source_uri(name: str) -> str:
    """URI of one published feature source, e.g. ``<features_root>/customer_activity``."""
    return io.join_uri(features_root(), name)


def s3_endpoint_override() -> str | None:
    """Endpoint for ``s3://`` feature sources on S3-compatible storage, else ``None``.

    ``$MLOPS_FEATURES_S3_ENDPOINT``, then ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``;
    only used when the features root is on ``s3://``.
    """
    if not features_root().startswith("s3://"):
        return None
    for name in (S3_ENDPOINT_ENV, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


@contextlib.contextmanager
def quiet_offline_store() -> Iterator[None]:
    """Drop dask's deprecation warnings inside the block: Feast's file offline store computes
    with dask, whose ``FutureWarning`` about downcasting reaches every task log that reads it
    (materialization, point-in-time retrieval) and says nothing a reader can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"dask\.")
        yield
