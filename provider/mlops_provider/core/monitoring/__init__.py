"""Monitoring of a deployed model, along the lifecycle's seams (Airflow-free):

- :mod:`.reference`: the reference model (any model URI), its training profile and what its
  training run recorded (label, entity columns);
- :mod:`.columns`: which columns a drift check compares;
- :mod:`.drift_check`: data, prediction and target drift (resolve -> compare -> publish; the
  statistics are :mod:`mlops_provider.core.drift`);
- :mod:`.performance_check`: predictions joined with late labels, metrics per day and per model
  version against each version's baseline (pure statistics, joins and evaluation days);
  :mod:`.performance_report` renders its page;
- :mod:`.export`: the latest results of every registered model as Prometheus metrics;
- :mod:`.skew`: training-serving skew: the features served online (the prediction log) against
  the offline features of the same entities at the same times (Feast historical retrieval);
- :mod:`.publish`: the one :func:`publish_monitoring_result` of every check (JSON + HTML report,
  MLflow monitoring run; a failure ends the run FAILED) and :func:`check_report_location`, the
  probe every check runs before reading any data.
"""

from __future__ import annotations

from mlops_provider.core.monitoring.columns import (
    DEFAULT_EXCLUDED_COLUMNS,
    DEFAULT_EXCLUDED_PATTERNS,
    ColumnPlan,
    excluded,
    plan_columns,
)
from mlops_provider.core.monitoring.drift_check import (
    DriftReference,
    compare_with_reference,
    detect_options,
    drift_result,
    resolve_drift_reference,
    run_drift_check,
)
from mlops_provider.core.monitoring.errors import MonitoringError
from mlops_provider.core.monitoring.export import (
    ExportSettings,
    MetricsExporter,
    MonitoringSnapshot,
    collect_snapshot,
    render_metrics,
)
from mlops_provider.core.monitoring.performance_check import (
    DAY_COLUMN,
    DEFAULT_MAX_DEGRADATION,
    DEFAULT_MIN_LABELS,
    LabelColumns,
    MetricPlan,
    PerformanceResult,
    VersionPerformance,
    evaluate_performance,
    evaluation_days,
    join_predictions_with_labels,
    limits,
    metric_plan,
    performance_result,
    read_labels,
    read_predictions,
    run_performance_check,
)
from mlops_provider.core.monitoring.publish import (
    DEFAULT_MONITORING_EXPERIMENT,
    MonitoringRun,
    check_report_location,
    publish_monitoring_result,
)
from mlops_provider.core.monitoring.reference import (
    ENTITY_COLUMNS_TAG,
    REFERENCE_PROFILE_ARTIFACT,
    TARGET_TAG,
    TrainingRecord,
    load_reference_profile,
    resolve_reference,
    training_record,
)
from mlops_provider.core.monitoring.skew import (
    DEFAULT_MAX_MISMATCH_RATE,
    DEFAULT_MAX_ROWS,
    DEFAULT_SKEW_ATOL,
    DEFAULT_SKEW_RTOL,
    FeatureSkew,
    SkewOptions,
    check_skew,
    compare_features,
    render_skew_report,
    sample_rows,
    skew_result,
    skew_verdict,
)
from mlops_provider.core.profile import DriftInputError

__all__ = [
    "DAY_COLUMN",
    "DEFAULT_EXCLUDED_COLUMNS",
    "DEFAULT_EXCLUDED_PATTERNS",
    "DEFAULT_MAX_DEGRADATION",
    "DEFAULT_MAX_MISMATCH_RATE",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_MIN_LABELS",
    "DEFAULT_MONITORING_EXPERIMENT",
    "DEFAULT_SKEW_ATOL",
    "DEFAULT_SKEW_RTOL",
    "ENTITY_COLUMNS_TAG",
    "REFERENCE_PROFILE_ARTIFACT",
    "TARGET_TAG",
    "ColumnPlan",
    "DriftInputError",
    "DriftReference",
    "ExportSettings",
    "FeatureSkew",
    "SkewOptions",
    "LabelColumns",
    "MetricPlan",
    "MetricsExporter",
    "MonitoringError",
    "MonitoringRun",
    "MonitoringSnapshot",
    "PerformanceResult",
    "TrainingRecord",
    "VersionPerformance",
    "check_report_location",
    "check_skew",
    "compare_features",
    "compare_with_reference",
    "detect_options",
    "collect_snapshot",
    "drift_result",
    "evaluate_performance",
    "evaluation_days",
    "excluded",
    "join_predictions_with_labels",
    "limits",
    "load_reference_profile",
    "metric_plan",
    "performance_result",
    "plan_columns",
    "publish_monitoring_result",
    "read_labels",
    "read_predictions",
    "render_metrics",
    "render_skew_report",
    "resolve_drift_reference",
    "resolve_reference",
    "run_drift_check",
    "run_performance_check",
    "sample_rows",
    "skew_result",
    "skew_verdict",
    "training_record",
]
