"""Infra validation: load a model in the serving app, query it, compare with batch scoring.

Like TFX's InfraValidator, a model is checked in the binary that will serve it before it takes
traffic: :func:`serving_process` starts ``python -m mlops_provider.serving`` for one concrete
version on a free loopback port; :func:`validate_serving` sends an evaluation sample through
``/predict``, checks that every answer equals what batch scoring computes for the same rows
(:func:`mlops_provider.core.scoring.predict_table`), then measures single-row latency and checks
its p99 against a budget.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.core.deployment.client import ServingClient, ServingUnavailable
from mlops_provider.core.errors import ParameterError, ServiceError
from mlops_provider.core.results import make_result

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops_provider.core.mlflow_target import MlflowTarget
    from mlops_provider.core.models import ModelVersion

log = logging.getLogger(__name__)

__all__ = [
    "ServingStartError",
    "ServingValidation",
    "free_port",
    "mlflow_environment",
    "serving_process",
    "validate_serving",
]

#: Single-row requests sent before the timed ones (connection set-up, first-call costs).
WARMUP_REQUESTS = 10
#: Variables of the parent that would point the child at another model, store or token.
_CHILD_DROPPED = ("MLOPS_SERVING_", "MLFLOW_TRACKING_", "MLFLOW_REGISTRY_URI")


class ServingStartError(ServiceError):
    """The serving app did not start or did not become ready; the message holds its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def mlflow_environment(target: MlflowTarget) -> dict[str, str]:
    """The MLflow variables a child process needs to reach ``target`` (given to that child
    only, never set in this process)."""
    from mlops_provider.core.mlflow_target import _auth

    env = {
        "MLFLOW_TRACKING_URI": target.tracking_uri,
        # the retry budget as this process resolved it (the child need not read Airflow's
        # configuration for it)
        "MLOPS_MLFLOW_MAX_RETRY_SECONDS": str(target.retry_seconds),
    }
    if target.registry_uri:
        env["MLFLOW_REGISTRY_URI"] = target.registry_uri
    auth = _auth(target)
    if "token" in auth:
        env["MLFLOW_TRACKING_TOKEN"] = auth["token"]
    if "username" in auth:
        env["MLFLOW_TRACKING_USERNAME"] = auth["username"]
        env["MLFLOW_TRACKING_PASSWORD"] = auth["password"]
    if target.insecure_tls:
        env["MLFLOW_TRACKING_INSECURE_TLS"] = "true"
    return env


def _tail(path: str, chars: int = 2500) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-chars:]
    except OSError:
        return ""


@contextlib.contextmanager
def serving_process(
    model: ModelVersion,
    target: MlflowTarget,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout: float = 180.0,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run the serving app for ``model`` (pinned: no alias polling) and yield its URL once it is
    ready; stop it afterwards.

    :raises ServingStartError: it exited or was not ready within ``startup_timeout`` seconds.
    """
    if not model.name or not model.version:
        raise ParameterError("model", f"{model.describe()} is not a registered version")
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CHILD_DROPPED)}
    env.update(mlflow_environment(target))
    cmd = [
        sys.executable,
        "-m",
        "mlops_provider.serving",
        "--model",
        model.name,
        "--model-uri",
        f"models:/{model.name}/{model.version}",
        "--host",
        host,
        "--port",
        str(port),
        "--poll-seconds",
        "0",
        *extra_args,
    ]
    with tempfile.NamedTemporaryFile("w+", prefix="mlops-serving-", suffix=".log") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.info("started the serving app for %s on %s (pid %s)", model.describe(), url, proc.pid)
        try:
            _wait_ready(proc, url, started, startup_timeout, out.name)
            log.info("serving app ready in %.1f s", time.monotonic() - started)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _wait_ready(proc: Any, url: str, started: float, timeout: float, log_path: str) -> None:
    body: dict[str, Any] = {}
    with ServingClient(url, timeout=5) as client:
        while True:
            if proc.poll() is not None:
                raise ServingStartError(
                    f"the serving app exited with code {proc.returncode} before it was ready; "
                    f"its log:\n{_tail(log_path)}"
                )
            with contextlib.suppress(ServingUnavailable):
                ready, body = client.ready()
                if ready:
                    return
            if time.monotonic() - started > timeout:
                raise ServingStartError(
                    f"the serving app at {url} was not ready after {timeout:.0f} s "
                    f"(last /readyz: {body or 'no answer'}); its log:\n{_tail(log_path)}"
                )
            time.sleep(0.25)


@dataclass
class ServingValidation:
    """What :func:`validate_serving` found; :meth:`to_result` is the operator's result."""

    model: ModelVersion
    rows: int
    mismatches: int
    examples: list[dict[str, Any]]
    latency_ms: dict[str, float]
    max_p99_latency_ms: float
    latency_requests: int
    startup_seconds: float
    served_version: str | None
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_result(self) -> dict[str, Any]:
        """``status`` ``valid``/``invalid``; ``rows`` compared; then ``mismatches``,
        ``mismatch_examples``, ``latency_ms`` (p50/p95/p99/max of single-row requests),
        ``max_p99_latency_ms``, ``latency_requests``, ``startup_seconds``, ``served_version``."""
        return make_result(
            status="valid" if self.passed else "invalid",
            passed=self.passed,
            reasons=self.reasons
            or [
                f"{self.rows:,} rows served exactly as batch scoring computes them; single-row "
                f"p99 {self.latency_ms.get('p99', 0):.1f} ms within "
                f"{self.max_p99_latency_ms:g} ms"
            ],
            model=self.model,
            rows=self.rows,
            mismatches=self.mismatches,
            mismatch_examples=self.examples,
            latency_ms=self.latency_ms,
            max_p99_latency_ms=self.max_p99_latency_ms,
            latency_requests=self.latency_requests,
            startup_seconds=round(self.startup_seconds, 2),
            served_version=self.served_version,
        )


def _json_rows(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    for row in rows:
        for key, value in row.items():
            if hasattr(value, "isoformat"):
                row[key] = value.isoformat()
    return rows


def _same(expected: Any, served: Any, tolerance: float) -> bool:
    if isinstance(expected, float) or isinstance(served, float):
        if expected is None or served is None:
            return expected is served
        return abs(float(expected) - float(served)) <= tolerance * max(1.0, abs(float(expected)))
    return bool(expected == served)


def _compare(
    expected: pa.Table,
    served: list[Mapping[str, Any]],
    columns: Sequence[str],
    keys: Sequence[str],
    tolerance: float,
    first: int,
) -> tuple[int, list[dict[str, Any]]]:
    mismatches = 0
    examples: list[dict[str, Any]] = []
    want = expected.select(list(dict.fromkeys([*keys, *columns]))).to_pylist()
    if len(served) != len(want):
        raise ServingUnavailable(
            f"the serving app answered {len(served)} predictions for {len(want)} rows"
        )
    for index, (row, got) in enumerate(zip(want, served, strict=True)):
        bad = {c: (row[c], got.get(c)) for c in columns if not _same(row[c], got.get(c), tolerance)}
        if bad:
            mismatches += 1
            if len(examples) < 10:
                ids = {k: row.get(k) for k in keys}
                examples.append(
                    {
                        "row": first + index,
                        **ids,
                        **{f"{c}_batch": v[0] for c, v in bad.items()},
                        **{f"{c}_served": v[1] for c, v in bad.items()},
                    }
                )
    return mismatches, examples


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {}
    arr = np.asarray(values) * 1000.0
    return {
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p95": round(float(np.percentile(arr, 95)), 3),
        "p99": round(float(np.percentile(arr, 99)), 3),
        "max": round(float(arr.max()), 3),
    }


def _expected(
    model: ModelVersion, target: MlflowTarget, sample: pa.Table, entity_columns: Sequence[str]
) -> tuple[pa.Table, pa.Table, list[str], list[str]]:
    """``(sample, batch predictions, compared columns, key columns)``: the sample cut to the
    keys and the model's inputs, and what batch scoring computes for it."""
    from mlops_provider.core.scoring import open_model, predict_table

    keys = [c for c in entity_columns if c in sample.column_names]
    with open_model(model, target) as loaded:
        features = [c.name for c in loaded.inputs if c.name in sample.column_names]
        sample = sample.select(list(dict.fromkeys([*keys, *features])))
        expected = predict_table(loaded, sample, keep_columns=keys)
        return sample, expected, ["prediction", *loaded.probability_columns], keys


def _compare_served(
    client: ServingClient,
    sample: pa.Table,
    expected: pa.Table,
    columns: list[str],
    keys: list[str],
    batch_rows: int,
    tolerance: float,
) -> tuple[int, list[dict[str, Any]]]:
    """Send the sample in requests of ``batch_rows``; ``(mismatching rows, examples)``."""
    mismatches = 0
    examples: list[dict[str, Any]] = []
    for first in range(0, sample.num_rows, batch_rows):
        body = client.predict(_json_rows(sample.slice(first, batch_rows)))
        bad, shown = _compare(
            expected.slice(first, batch_rows),
            body.get("predictions") or [],
            columns,
            keys,
            tolerance,
            first,
        )
        mismatches += bad
        examples.extend(shown[: 10 - len(examples)])
    return mismatches, examples


def _time_single_rows(client: ServingClient, sample: pa.Table, requests: int) -> list[float]:
    """Seconds of ``requests`` sequential single-row requests (cycling through the sample)."""
    rows = _json_rows(sample.slice(0, min(sample.num_rows, max(requests, 1))))
    for i in range(min(requests, WARMUP_REQUESTS)):  # first calls pay one-off costs: untimed
        client.predict([rows[i % len(rows)]])
    timings = []
    for i in range(requests):
        started = time.perf_counter()
        client.predict([rows[i % len(rows)]])
        timings.append(time.perf_counter() - started)
    return timings


def validate_serving(
    model: ModelVersion,
    target: MlflowTarget,
    sample: pa.Table,
    *,
    entity_columns: Sequence[str] = (),
    batch_rows: int = 100,
    latency_requests: int = 200,
    max_p99_latency_ms: float = 250.0,
    startup_timeout: float = 180.0,
    tolerance: float = 1e-9,
    url: str | None = None,
) -> ServingValidation:
    """Serve ``model`` in the serving app and check it answers like batch scoring, fast enough.

    :param sample: evaluation rows (the model's input columns, plus ``entity_columns``).
    :param batch_rows: rows per ``/predict`` request for the comparison.
    :param latency_requests: single-row requests timed after the comparison.
    :param max_p99_latency_ms: budget for their p99 (client-side, loopback).
    :param tolerance: relative tolerance of probabilities (labels must be equal).
    :param url: validate an app that is already running (tests); default: start one.
    :raises ServingStartError: the app did not start.
    :raises ScoringInputError: the sample does not fit the model.
    :raises ServingUnavailable: the app failed a request (its message says why).
    """
    if sample.num_rows == 0:
        raise ParameterError("evaluation_data", "the evaluation sample has no rows")
    if batch_rows < 1 or latency_requests < 0:
        raise ParameterError("batch_rows", "needs batch_rows >= 1 and latency_requests >= 0")
    sample, expected, compared, keys = _expected(model, target, sample, entity_columns)
    started = time.monotonic()
    launcher = (
        contextlib.nullcontext(url)
        if url
        else serving_process(model, target, startup_timeout=startup_timeout)
    )
    reasons: list[str] = []
    with launcher as base, ServingClient(str(base)) as client:
        startup = time.monotonic() - started
        _, state = client.ready()
        served_version = str((state.get("model") or {}).get("version"))
        if served_version != str(model.version):
            reasons.append(
                f"the serving app serves version {served_version}, expected {model.version}"
            )
        mismatches, examples = _compare_served(
            client, sample, expected, compared, keys, batch_rows, tolerance
        )
        latency = _percentiles(_time_single_rows(client, sample, latency_requests))
    if mismatches:
        reasons.append(
            f"{mismatches:,} of {sample.num_rows:,} rows served differently from batch "
            f"scoring (first: {examples[0]})"
        )
    if latency and latency["p99"] > max_p99_latency_ms:
        reasons.append(
            f"single-row p99 latency {latency['p99']:.1f} ms over the budget of "
            f"{max_p99_latency_ms:g} ms (p50 {latency['p50']:.1f} ms, {latency_requests} requests)"
        )
    log.info(
        "serving validation of %s: %d rows compared, %d mismatches, latency %s",
        model.describe(),
        sample.num_rows,
        mismatches,
        latency,
    )
    return ServingValidation(
        model=model,
        rows=sample.num_rows,
        mismatches=mismatches,
        examples=examples,
        latency_ms=latency,
        max_p99_latency_ms=max_p99_latency_ms,
        latency_requests=latency_requests,
        startup_seconds=startup,
        served_version=served_version,
        reasons=reasons,
    )


def sample_rows(table: pa.Table, max_rows: int, seed: int = 0) -> pa.Table:
    """At most ``max_rows`` rows of ``table``, drawn without replacement (seeded), in order."""
    import numpy as np
    import pyarrow as pa

    if table.num_rows <= max_rows:
        return table
    picked = np.sort(np.random.default_rng(seed).choice(table.num_rows, max_rows, replace=False))
    return table.take(pa.array(picked))
