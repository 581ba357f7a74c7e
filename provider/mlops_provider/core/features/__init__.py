"""Feature store work behind the Feast operators: publish, apply, materialize, training sets.

Everything here is Airflow-free and takes a Feast ``FeatureStore`` (see
:func:`mlops_provider.core.feast_config.make_feature_store`):

- :mod:`.common`: :class:`FeatureRequestError`, names, and where the feature source lives
  (:func:`feature_source_uri`, :func:`s3_endpoint_override`);
- :mod:`.publish`: :func:`publish_partition` copies a validated raw partition into the feature
  source (``<features_root>/dt=YYYY-MM-DD/``), atomically; :func:`published_days` lists what is
  there (:func:`mlops_provider.core.io.partition_days`);
- :mod:`.repo`: :func:`apply_repo` applies a feature repo's Python definitions the way
  ``feast apply`` does;
- :mod:`.registry`: feature references, services and :func:`freshness` (how far a feature view
  has been materialized);
- :mod:`.materialization`: :func:`materialize` loads a window into the online store in chunks,
  refusing future ends; :func:`materialization_window` is a task's window (given, else its data
  interval; a point interval is refused with the fix);
- :mod:`.training_set`: :func:`build_training_set` / :func:`create_training_dataset` run
  point-in-time joins and return exactly one row per entity row.

The work functions return the provider's result (docs/results.md). Errors in what the caller
asked for raise :class:`FeatureRequestError`; a missing or broken repo raises
:class:`~mlops_provider.core.feast_config.FeastRepoError` (both ``InputError``). Times are read
with :func:`mlops_provider.core.times.to_utc` (re-exported as ``to_utc``).
"""

from __future__ import annotations

from mlops_provider.core.feast_config import FeastRepoError
from mlops_provider.core.features.common import (
    ENTITY_TIMESTAMP_COLUMN,
    FEATURES_ROOT_ENV,
    LAKE_URI_ENV,
    S3_ENDPOINT_ENV,
    FeatureRequestError,
    feature_source_uri,
    features_root,
    s3_endpoint_override,
)
from mlops_provider.core.features.materialization import materialization_window, materialize
from mlops_provider.core.features.publish import publish_partition, published_days
from mlops_provider.core.features.registry import (
    check_feature_refs,
    freshness,
    resolve_feature_refs,
)
from mlops_provider.core.features.repo import apply_repo
from mlops_provider.core.features.training_set import (
    build_training_set,
    create_training_dataset,
)
from mlops_provider.core.times import to_utc

__all__ = [
    "ENTITY_TIMESTAMP_COLUMN",
    "FEATURES_ROOT_ENV",
    "LAKE_URI_ENV",
    "S3_ENDPOINT_ENV",
    "FeastRepoError",
    "FeatureRequestError",
    "apply_repo",
    "build_training_set",
    "check_feature_refs",
    "create_training_dataset",
    "feature_source_uri",
    "features_root",
    "freshness",
    "materialization_window",
    "materialize",
    "publish_partition",
    "published_days",
    "resolve_feature_refs",
    "s3_endpoint_override",
    "to_utc",
]
