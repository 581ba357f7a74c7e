"""Batch scoring: stream a dataset through one resolved model into an atomic partition.

The package reads like the flow of a scoring run:

- :mod:`~mlops_provider.core.scoring.model`: the model is resolved once by
  :func:`mlops_provider.core.models.resolve` (every URI form: ``models:/<name>/<version>``,
  ``models:/<name>@<alias>``, ``models:/m-<id>``, ``runs:/<run_id>/<path>``), loaded once
  (:func:`open_model`) and states its input contract (:func:`check_input_schema`);
- :mod:`~mlops_provider.core.scoring.batch`: the input is inspected without reading it
  (:func:`inspect_input`), streamed (:func:`stream_parquet`, :func:`historical_features` for
  Feast input) through the model (:func:`score_batches`) into an atomic partition;
  :func:`score` does all of it;
- :mod:`~mlops_provider.core.scoring.categories`: the categories the fitted encoders know
  (:func:`known_categories`) and the input values outside them, counted while scoring
  (:class:`UnseenCategories`);
- :mod:`~mlops_provider.core.scoring.sharding`: scale-out: :func:`list_shards`,
  :func:`plan_scoring`, :func:`shard_uri`, :func:`verify_scoring`.

Every prediction row carries ``model_name``, ``model_version`` and ``model_run_id``; results
carry ``model`` = :meth:`ModelVersion.to_dict`. Errors: model URI problems are
:class:`~mlops_provider.core.models.ModelUriError` /
:class:`~mlops_provider.core.models.ModelNotFoundError`, everything else
:class:`ScoringInputError`; all are ``InputError`` (a ``CoreError``), which the operators turn
into ``ScoringError``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from mlops_provider.core.models import ModelVersion, parse_model_uri, resolve
from mlops_provider.core.scoring.batch import (
    DEFAULT_BATCH_SIZE,
    MODEL_COLUMNS,
    RESERVED_COLUMNS,
    InputInfo,
    ScoringResult,
    historical_features,
    inspect_input,
    predict_table,
    score,
    score_batches,
    stream_parquet,
)
from mlops_provider.core.scoring.categories import UnseenCategories, known_categories
from mlops_provider.core.scoring.model import (
    InputColumn,
    LoadedModel,
    ScoringInputError,
    check_input_schema,
    feed_type,
    model_fields,
    open_model,
    requested_model_uri,
)
from mlops_provider.core.scoring.sharding import (
    SHARD_BY,
    SHARD_KEY,
    list_shards,
    plan_scoring,
    shard_name,
    shard_uri,
    verify_scoring,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MODEL_COLUMNS",
    "RESERVED_COLUMNS",
    "SHARD_BY",
    "SHARD_KEY",
    "InputColumn",
    "InputInfo",
    "LoadedModel",
    "ModelVersion",
    "ScoringInputError",
    "ScoringResult",
    "UnseenCategories",
    "check_input_schema",
    "feed_type",
    "historical_features",
    "inspect_input",
    "known_categories",
    "list_shards",
    "model_fields",
    "open_model",
    "parse_model_uri",
    "plan_scoring",
    "predict_table",
    "requested_model_uri",
    "resolve_model",
    "score",
    "score_batches",
    "shard_name",
    "shard_uri",
    "stream_parquet",
    "verify_scoring",
]


def resolve_model(model_uri: str, client: MlflowClient) -> ModelVersion:
    """Deprecated: use :func:`mlops_provider.core.models.resolve` (``resolve(client, uri)``)."""
    warnings.warn(
        "mlops_provider.core.scoring.resolve_model is deprecated; use "
        "mlops_provider.core.models.resolve(client, model_uri)",
        DeprecationWarning,
        stacklevel=2,
    )
    return resolve(client, model_uri)
