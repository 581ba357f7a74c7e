"""Realtime deployment operators: validate a model in the serving app, deploy it to a service.

Thin shells over :mod:`mlops_provider.core.deployment` (docs/deployment.md): templated
parameters are coerced with :mod:`mlops_provider.core.params`, one core function does the work
and returns the result (docs/results.md); core errors become
:class:`~mlops_provider.exceptions.DeploymentError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import DeploymentError
from mlops_provider.links.mlflow import MlflowModelVersionLink
from mlops_provider.operators._base import AWS_CONN_ID, MLFLOW_CONN_ID, MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.serving import ServingHook

__all__ = ["DeployModelOperator", "ValidateServingOperator"]

SERVING_CONN_ID = "mlops_serving_default"


class ValidateServingOperator(MlopsBaseOperator):
    """Load a model version in the serving app and check it before it takes traffic.

    Like TFX's InfraValidator: the app (``python -m mlops_provider.serving``) is started on a
    free loopback port for the concrete version, the evaluation sample is sent through
    ``POST /predict`` and every answer must equal what batch scoring computes for the same rows
    (labels exactly, probabilities within ``tolerance``); then ``latency_requests`` single-row
    requests are timed and their p99 must be under ``max_p99_latency_ms``. The app is stopped
    afterwards; nothing is deployed.

    :param registered_model_name: registered model (templated).
    :param model_uri: the version to validate, any model URI (``models:/<name>/<v>``,
        ``models:/<name>@<alias>`` ...); default ``models:/<name>@<alias>`` (templated).
    :param alias: alias to validate when no ``model_uri`` is given (default ``champion``)
        (templated).
    :param evaluation_data: dataset URI of evaluation rows (the model's input columns, plus
        the entity columns) (templated).
    :param max_rows: rows drawn from it (seeded, default 1000).
    :param batch_rows: rows per request of the comparison (default 100).
    :param latency_requests: single-row requests timed (default 200).
    :param max_p99_latency_ms: budget of their p99 in milliseconds (default 250).
    :param tolerance: relative tolerance of probabilities (default 1e-9).
    :param startup_timeout: seconds the app may take to become ready (default 180).
    :param fail_on_invalid: raise when the check fails (default True); else return the result
        with ``passed`` False.
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``) (templated).
    :param aws_conn_id: connection of ``s3://`` evaluation data (templated).

    XCom (return value, docs/results.md): ``status`` ``valid``/``invalid``, ``passed``,
    ``reasons``, ``model`` (the concrete version), ``rows`` compared; then ``mismatches``,
    ``mismatch_examples``, ``latency_ms`` (``p50``, ``p95``, ``p99``, ``max``),
    ``max_p99_latency_ms``, ``latency_requests``, ``startup_seconds``, ``served_version``.
    ``version`` is also pushed under its own key.

    :raises DeploymentError: the check failed (with the numbers), the app did not start (with
        its log), the sample does not fit the model, or the model does not exist.
    """

    error_class = DeploymentError
    push_keys = ("version",)
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#d9f2e6"
    template_fields: Sequence[str] = (
        "registered_model_name",
        "model_uri",
        "alias",
        "evaluation_data",
        "mlflow_conn_id",
        "aws_conn_id",
    )

    def __init__(
        self,
        *,
        registered_model_name: str | None = None,
        evaluation_data: str,
        model_uri: str | None = None,
        alias: str | None = None,
        max_rows: int = 1000,
        batch_rows: int = 100,
        latency_requests: int = 200,
        max_p99_latency_ms: float = 250.0,
        tolerance: float = 1e-9,
        startup_timeout: float = 180.0,
        fail_on_invalid: bool = True,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        aws_conn_id: str | None = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.model_uri = model_uri
        self.alias = alias
        self.evaluation_data = evaluation_data
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self.latency_requests = latency_requests
        self.max_p99_latency_ms = max_p99_latency_ms
        self.tolerance = tolerance
        self.startup_timeout = startup_timeout
        self.fail_on_invalid = fail_on_invalid
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import deployment, io, models, params
        from mlops_provider.core.scoring import requested_model_uri

        uri = requested_model_uri(
            params.as_str(self.model_uri, "model_uri"),
            params.as_str(self.registered_model_name, "registered_model_name"),
            params.as_str(self.alias, "alias"),
        )
        evaluation_data = params.required(
            params.as_uri(self.evaluation_data, "evaluation_data"), "evaluation_data", "a URI"
        )
        max_rows = params.as_int(self.max_rows, "max_rows", minimum=1) or 1000
        client = self.mlflow_hook.client
        model = models.resolve(client, uri)
        record = models.training_record(client, model.run_id)
        sample = deployment.sample_rows(
            io.read_table(evaluation_data, conn_id=self.aws_conn_id, require_rows=True), max_rows
        )
        self.log.info(
            "validating %s in the serving app on %d rows of %s",
            model.describe(),
            sample.num_rows,
            evaluation_data,
        )
        validation = deployment.validate_serving(
            model,
            self.mlflow_hook.target,
            sample,
            entity_columns=record.entity_columns or (),
            batch_rows=params.as_int(self.batch_rows, "batch_rows", minimum=1) or 100,
            latency_requests=params.as_int(self.latency_requests, "latency_requests", minimum=0)
            or 0,
            max_p99_latency_ms=params.as_float(
                self.max_p99_latency_ms, "max_p99_latency_ms", minimum=0
            )
            or 250.0,
            startup_timeout=params.as_float(self.startup_timeout, "startup_timeout", minimum=1)
            or 180.0,
            tolerance=params.as_float(self.tolerance, "tolerance", minimum=0) or 0.0,
        )
        result = validation.to_result()
        result["version"] = model.version
        if not validation.passed:
            message = "; ".join(validation.reasons)
            if params.as_bool(self.fail_on_invalid, "fail_on_invalid", default=True):
                raise DeploymentError(f"{model.describe()} failed serving validation: {message}")
            self.log.warning("%s failed serving validation: %s", model.describe(), message)
        else:
            self.log.info("%s", result["reasons"][0])
        return result


class DeployModelOperator(MlopsBaseOperator):
    """Point a running serving app at a model version, verify it, roll back if it fails.

    Asks the service (connection ``serving_conn_id``) to load ``version`` through
    ``POST /admin/reload`` (the service loads before it swaps, so a model that does not load is
    refused and nothing changes), waits until ``/readyz`` reports it, then watches it for
    ``verify_seconds``: readiness and the ``/predict`` error rate (5xx answers, from
    ``/metrics``). On a failure the service is reloaded with what it served before and the task
    fails with the numbers. ``mode``: ``replace`` (the primary), ``canary`` (``canary_share`` of
    the traffic, reported as variant ``canary`` in ``/metrics``; made the primary after a
    healthy window when ``promote_canary``) or ``shadow`` (answers logged, not returned). A
    rerun for a version the service already serves does nothing (``unchanged``).

    :param registered_model_name: registered model; the service must serve this model
        (templated).
    :param version: version to deploy (a number, or the XCom of ValidateServingOperator)
        (templated).
    :param mode: ``replace``, ``canary`` or ``shadow`` (templated).
    :param canary_share: share of requests the canary answers (default 0.1).
    :param promote_canary: make a healthy canary the primary (default True).
    :param verify_seconds: verification window in seconds (default 60; 0: readiness only).
    :param max_error_rate: highest share of 5xx answers in the window (default 0.01).
    :param min_requests: fewest requests the window must see (default 0).
    :param ready_timeout: seconds the service may take to report the version (default 120).
    :param serving_conn_id: connection of the service (conn type ``mlops_serving``, default
        ``mlops_serving_default``: URL in host, admin token in password) (templated).
    :param serving_url: overrides the connection's URL (templated).

    XCom (return value, docs/results.md): ``status`` ``deployed``/``canary``/``shadow``/
    ``unchanged``, ``passed`` True, ``model`` {name, version}; then ``service_url``, ``mode``,
    ``version``, ``previous_version``, ``window`` (``seconds``, ``requests``, ``errors``,
    ``error_rate``, ``max_error_rate``) and ``state`` (the service's final ``/readyz``).
    ``version`` and ``previous_version`` are also pushed under their own keys.

    :raises DeploymentError: the service refused the version (nothing changed), or it failed
        readiness or the error-rate check (rolled back; the message says to what), or the
        service serves another model or cannot be reached.
    """

    error_class = DeploymentError
    push_keys = ("version", "previous_version")
    ui_color = "#d9f2e6"
    template_fields: Sequence[str] = (
        "registered_model_name",
        "version",
        "mode",
        "serving_conn_id",
        "serving_url",
    )

    def __init__(
        self,
        *,
        registered_model_name: str,
        version: str | int,
        mode: str = "replace",
        canary_share: float = 0.1,
        promote_canary: bool = True,
        verify_seconds: float = 60.0,
        max_error_rate: float = 0.01,
        min_requests: int = 0,
        ready_timeout: float = 120.0,
        poll_seconds: float = 2.0,
        serving_conn_id: str = SERVING_CONN_ID,
        serving_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.version = version
        self.mode = mode
        self.canary_share = canary_share
        self.promote_canary = promote_canary
        self.verify_seconds = verify_seconds
        self.max_error_rate = max_error_rate
        self.min_requests = min_requests
        self.ready_timeout = ready_timeout
        self.poll_seconds = poll_seconds
        self.serving_conn_id = serving_conn_id
        self.serving_url = serving_url

    @cached_property
    def serving_hook(self) -> ServingHook:
        from mlops_provider.core import params
        from mlops_provider.hooks.serving import ServingHook

        return ServingHook(
            self.serving_conn_id or SERVING_CONN_ID,
            url=params.as_str(self.serving_url, "serving_url"),
        )

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import deployment, params

        name = params.required(
            params.as_str(self.registered_model_name, "registered_model_name"),
            "registered_model_name",
            "a registered model name",
        )
        version = params.required(params.as_str(self.version, "version"), "version", "a version")
        try:
            client = self.serving_hook.client()
        except ValueError as err:
            raise DeploymentError(str(err)) from err
        with client:
            rollout = deployment.deploy(
                client,
                model_name=name,
                version=version,
                mode=params.as_str(self.mode, "mode", default="replace") or "replace",
                canary_share=params.as_float(self.canary_share, "canary_share", default=0.1) or 0.1,
                promote_canary=bool(
                    params.as_bool(self.promote_canary, "promote_canary", default=True)
                ),
                ready_timeout=params.as_float(self.ready_timeout, "ready_timeout", minimum=0)
                or 0.0,
                verify_seconds=params.as_float(self.verify_seconds, "verify_seconds", minimum=0)
                or 0.0,
                max_error_rate=params.as_float(
                    self.max_error_rate, "max_error_rate", default=0.01, minimum=0, maximum=1
                )
                or 0.0,
                min_requests=params.as_int(self.min_requests, "min_requests", minimum=0) or 0,
                poll_seconds=params.as_float(self.poll_seconds, "poll_seconds", minimum=0.05)
                or 2.0,
            )
        self.log.info("%s: %s", rollout.status, "; ".join(rollout.reasons))
        return rollout.to_result()
