"""Apache Airflow provider for the machine-learning lifecycle.

Operators and sensors for data validation (Great Expectations), features (Feast), training,
evaluation and registry promotion (MLflow), batch scoring, drift and performance monitoring,
and retraining. Importing this package is cheap: no heavy library is imported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict:
    """Return the provider metadata Airflow's ProvidersManager reads (see get_provider_info.py)."""
    from mlops_provider.get_provider_info import get_provider_info as _info

    return _info()
