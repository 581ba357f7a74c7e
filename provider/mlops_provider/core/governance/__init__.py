"""Governance: where a model and its predictions came from, and proof that it can be rebuilt.

- :mod:`.record`: the lineage document every training run records (``lineage/training.json``).
- :mod:`.reproduce`: :func:`reproduce` rebuilds and refits a model from that record and compares
  (:mod:`.rebuild` reads the recorded inputs again and rebuilds the training set through Feast).
"""

from __future__ import annotations

from mlops_provider.core.governance.record import (
    LINEAGE_ARTIFACT,
    LINEAGE_SCHEMA,
    DatasetRef,
    TrainingLineage,
    log_training_lineage,
    read_training_lineage,
)
from mlops_provider.core.governance.reproduce import (
    HOLDOUT_PREDICTIONS_PATH,
    ReproduceReport,
    reproduce,
)

__all__ = [
    "HOLDOUT_PREDICTIONS_PATH",
    "ReproduceReport",
    "reproduce",
    "LINEAGE_ARTIFACT",
    "LINEAGE_SCHEMA",
    "DatasetRef",
    "TrainingLineage",
    "log_training_lineage",
    "read_training_lineage",
]
