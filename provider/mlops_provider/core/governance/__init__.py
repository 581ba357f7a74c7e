"""Governance: where a model and its predictions came from, and proof that it can be rebuilt.

- :mod:`.record`: the lineage document every training run records (``lineage/training.json``).
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

__all__ = [
    "LINEAGE_ARTIFACT",
    "LINEAGE_SCHEMA",
    "DatasetRef",
    "TrainingLineage",
    "log_training_lineage",
    "read_training_lineage",
]
