"""The demo's realtime service: the serving app in this process, simulated traffic, per-day stats.

``make demo`` starts the service (``mlops_provider.serving``) once the first champion exists:
entity requests (features from the Feast online store the feature pipeline materializes),
every prediction logged to ``<lake>/predictions-online/<model>`` under the simulated day, a
reload token for the deployment DAG. Each simulated day gets a burst of traffic (single rows
and batches, several clients at once); while the deployment DAG swaps the champion a background
client keeps sending requests, and the demo counts the failed ones (there should be none).
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from datetime import time as dtime
from typing import Any

import numpy as np


@dataclass
class DayTraffic:
    """What the service did for one simulated day's traffic."""

    requests: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, status: int, seconds: float, version: str | None) -> None:
        with self._lock:
            self._add(status, seconds, version)

    def _add(self, status: int, seconds: float, version: str | None) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status != 200:
            self.failed += 1
        else:
            self.latencies.append(seconds)
            if version and (not self.versions or self.versions[-1] != version):
                self.versions.append(version)

    def fill(self, record: Any) -> None:
        """Copy the day's numbers into a lifecycle ``DayRecord``."""
        record.service_requests = (record.service_requests or 0) + self.requests
        record.service_errors = (record.service_errors or 0) + self.failed
        if self.latencies:
            ms = np.asarray(self.latencies) * 1000
            record.service_p50_ms = round(float(np.percentile(ms, 50)), 2)
            record.service_p99_ms = round(float(np.percentile(ms, 99)), 2)
        if self.versions:
            before = record.served_versions.split("->") if record.served_versions else []
            merged = before + [v for v in self.versions if not before or v != before[-1]]
            record.served_versions = "->".join(dict.fromkeys(merged))


class DemoService:
    """The serving app for the demo, its simulated clock and its traffic."""

    def __init__(self, model_name: str, feature_repo: str, log_uri: str) -> None:
        self.model_name = model_name
        self.feature_repo = feature_repo
        self.log_uri = log_uri
        self.token = secrets.token_urlsafe(16)
        self.now = datetime.now(timezone.utc)
        self._handle: Any = None

    def clock(self) -> datetime:
        """The simulated time (prediction log rows are stamped with it)."""
        return self.now

    def start(self) -> str:
        from mlops_provider.hooks.mlflow import MlflowHook
        from mlops_provider.serving import ServingSettings, serve_in_thread

        settings = ServingSettings(
            model_name=self.model_name,
            alias="champion",
            tracking_uri=MlflowHook().target.tracking_uri,
            feature_repo=self.feature_repo,
            prediction_log_uri=self.log_uri,
            log_flush_seconds=3600,
            admin_token=self.token,
            alias_poll_seconds=0,
            clock=self.clock,
        )
        self._handle = serve_in_thread(settings)
        return str(self._handle.url)

    @property
    def url(self) -> str:
        return str(self._handle.url)

    def connection(self) -> str:
        """The ``mlops_serving`` connection of this service, as an ``AIRFLOW_CONN_*`` value."""
        import json

        return json.dumps({"conn_type": "mlops_serving", "host": self.url, "password": self.token})

    def flush_log(self) -> None:
        """Write the buffered prediction log rows now."""
        self._handle.state.prediction_log.flush()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None

    def _send(self, client: Any, customers: list[int], stats: DayTraffic, size: int) -> None:
        entities = [{"customer_id": int(c)} for c in random.sample(customers, size)]
        started = time.perf_counter()
        try:
            response = client.post("/predict", json={"entities": entities})
            status = response.status_code
            version = response.json()["model"]["version"] if status == 200 else None
        except Exception:  # a refused connection is a failed request too
            status, version = 599, None
        stats.add(status, time.perf_counter() - started, version)

    def burst(self, day: Any, customers: list[int], requests: int, clients: int = 4) -> DayTraffic:
        """``requests`` requests for ``day`` from ``clients`` concurrent clients (one in five
        a batch of 20 customers), logged under that day; the log is flushed afterwards."""
        import httpx

        # the end of the day: the online store holds the day's materialized features, which is
        # what the offline store returns as of then (the skew check compares the two)
        self.now = datetime.combine(day, dtime(23, 59, 59, 999999), timezone.utc)
        stats = DayTraffic()
        per_client = max(1, requests // clients)

        def client_loop(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=self.url, timeout=30) as client:
                for _ in range(per_client):
                    self._send(client, customers, stats, 20 if rng.random() < 0.2 else 1)

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.flush_log()
        return stats

    @contextmanager
    def background(self, customers: list[int]) -> Iterator[DayTraffic]:
        """Single-row requests in a loop while the block runs (e.g. during a deployment)."""
        import httpx

        stats = DayTraffic()
        stop = threading.Event()

        def loop() -> None:
            with httpx.Client(base_url=self.url, timeout=30) as client:
                while not stop.is_set():
                    self._send(client, customers, stats, 1)
                    time.sleep(0.02)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield stats
        finally:
            stop.set()
            thread.join(30)
