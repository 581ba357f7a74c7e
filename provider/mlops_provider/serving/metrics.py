"""Prometheus metrics of one service instance (a per-app ``CollectorRegistry``)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["ServingMetrics"]

_VALUE_CLASS_LOCK = threading.Lock()

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def _in_process(metric_class: Any) -> Any:
    """``metric_class`` whose values live in this process's memory, always.

    Importing Feast sets ``PROMETHEUS_MULTIPROC_DIR`` (for its Gunicorn feature server); a
    ``prometheus_client`` imported after that stores every value in per-process files keyed by
    metric name and labels, so two apps in one process (tests, a demo) would share and
    accumulate counts. Our metrics belong to one app: their values are created as plain
    in-memory values whatever the environment says.
    """

    class InProcess(metric_class):  # type: ignore[misc,valid-type]
        def _metric_init(self) -> None:
            from prometheus_client import values

            with _VALUE_CLASS_LOCK:
                saved = values.ValueClass
                values.ValueClass = values.MutexValue
                try:
                    super()._metric_init()
                finally:
                    values.ValueClass = saved

    InProcess.__name__ = metric_class.__name__
    return InProcess


class ServingMetrics:
    """The service's metrics, registered in their own ``CollectorRegistry`` (two apps in one
    process never share counts). Names and labels are the serving contract's."""

    def __init__(self) -> None:
        import prometheus_client as prom
        from prometheus_client import CollectorRegistry

        Counter = _in_process(prom.Counter)  # noqa: N806 - classes
        Gauge = _in_process(prom.Gauge)  # noqa: N806
        Histogram = _in_process(prom.Histogram)  # noqa: N806

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlops_serving_requests_total", "HTTP requests", ["route", "status"], registry=r
        )
        self.duration = Histogram(
            "mlops_serving_request_duration_seconds",
            "Request duration",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "mlops_serving_errors_total", "Failed requests by kind", ["route", "kind"], registry=r
        )
        self.feature_lookup = Histogram(
            "mlops_serving_feature_lookup_seconds",
            "Feast online lookup duration",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.missing_features = Counter(
            "mlops_serving_missing_features_total",
            "Missing online feature values",
            ["feature"],
            registry=r,
        )
        self.model_info = Gauge(
            "mlops_serving_model_info",
            "The models served (1 per variant)",
            ["model", "version", "run_id", "alias", "variant"],
            registry=r,
        )
        self.predictions = Counter(
            "mlops_serving_predictions_total",
            "Predicted rows",
            ["model", "version", "variant", "prediction"],
            registry=r,
        )
        self.probability = Histogram(
            "mlops_serving_prediction_probability",
            "Predicted probability (binary classifiers: of the positive class)",
            ["model", "version", "variant"],
            buckets=_PROBABILITY_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "mlops_serving_reloads_total", "Model reloads", ["outcome"], registry=r
        )

    def served(self, variants: Sequence[tuple[str, Any]]) -> None:
        """Set ``mlops_serving_model_info`` to the ``(variant, ModelVersion)`` pairs served."""
        import warnings

        with warnings.catch_warnings():
            # our values are in-process (see _in_process): clearing works whatever the warning
            warnings.filterwarnings("ignore", message="Clearing labels", category=UserWarning)
            self.model_info.clear()
        for variant, model in variants:
            self.model_info.labels(
                model=model.name or "",
                version=model.version or "",
                run_id=model.run_id or "",
                alias=model.alias or "",
                variant=variant,
            ).set(1)

    def predicted(
        self,
        model: Any,
        variant: str,
        predictions: Sequence[Any],
        probabilities: Sequence[float] | None,
    ) -> None:
        """Count the predictions of one call (and observe binary probabilities)."""
        name, version = model.name or "", model.version or ""
        counts: dict[str, int] = {}
        for p in predictions:
            key = str(p)
            counts[key] = counts.get(key, 0) + 1
        for key, n in counts.items():
            self.predictions.labels(name, version, variant, key).inc(n)
        if probabilities:
            hist = self.probability.labels(name, version, variant)
            for value in probabilities:
                hist.observe(value)

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
