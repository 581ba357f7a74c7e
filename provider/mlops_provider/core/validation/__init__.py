"""Validate datasets with Great Expectations 1.x suites; summarise, report and quarantine.

The package reads along a validation:

- :mod:`.suite`: read and check a suite completely (JSON, expectation types, kwargs) and bind
  its ``$PARAMETER`` values, before any data is read (:class:`SuiteError`);
- :mod:`.outcome`: what GX found, as :class:`ValidationOutcome` (messages, summary, result);
- :mod:`.report`: the self-contained HTML report and the JSON result beside it;
- :mod:`.quarantine`: copy a failing dataset, never touching the original;
- :mod:`.run`: read the dataset (:mod:`mlops_provider.core.io`) and run GX on it
  (:func:`validate_dataset`, :func:`validate_frame`);
- :mod:`.check`: a validation task's work (:func:`check_dataset`: locations, validation,
  quarantine, result), what ``DataValidationOperator`` runs.

Each module imports only the ones listed before it, so there is no import cycle.
``dataset_name`` and ``partition_key`` live in :mod:`mlops_provider.core.io` and are re-exported.
"""

from __future__ import annotations

from mlops_provider.core.io import dataset_name, partition_key
from mlops_provider.core.validation.check import (
    ON_FAILURE_MODES,
    ValidationCheck,
    check_dataset,
    validation_report_location,
)
from mlops_provider.core.validation.outcome import (
    STATUSES,
    ExpectationOutcome,
    ValidationOutcome,
    result_json,
)
from mlops_provider.core.validation.quarantine import (
    QUARANTINE_DATA_DIR,
    QUARANTINE_RESULT_FILE,
    QuarantineError,
    default_quarantine_uri,
    quarantine,
)
from mlops_provider.core.validation.report import (
    REPORT_FILE,
    RESULT_FILE,
    render_validation_report,
    write_outcome,
    write_report,
)
from mlops_provider.core.validation.run import validate_dataset, validate_frame
from mlops_provider.core.validation.suite import (
    SuiteError,
    load_suite,
    prepare_parameters,
    read_suite,
    suite_parameter_names,
)

__all__ = [
    "ON_FAILURE_MODES",
    "QUARANTINE_DATA_DIR",
    "QUARANTINE_RESULT_FILE",
    "REPORT_FILE",
    "RESULT_FILE",
    "STATUSES",
    "ExpectationOutcome",
    "QuarantineError",
    "SuiteError",
    "ValidationCheck",
    "ValidationOutcome",
    "check_dataset",
    "dataset_name",
    "default_quarantine_uri",
    "load_suite",
    "partition_key",
    "prepare_parameters",
    "quarantine",
    "read_suite",
    "render_validation_report",
    "result_json",
    "suite_parameter_names",
    "validate_dataset",
    "validate_frame",
    "validation_report_location",
    "write_outcome",
    "write_report",
]
