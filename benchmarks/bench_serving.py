"""Benchmark: the realtime service (``python -m mlops_provider.serving``) against
``mlflow models serve`` (and, for entity lookups, ``feast serve`` + ``mlflow models serve`` as two
hops), with the model's own in-process predict time as the physical limit.

Usage::

    python benchmarks/bench_serving.py             # 2000 single-row / 300 batch requests a cell
    python benchmarks/bench_serving.py --quick     # 600 / 100 (smoke run, ``make bench``)
    python benchmarks/bench_serving.py --skip-feast

What it does:

1. simulates three days of the demo's churn data (``include/simulator.py``) in a temporary
   ``MLOPS_HOME``, publishes them as feature partitions, applies the demo Feast repo and
   materializes its SQLite online store;
2. fits the demo's model (ColumnTransformer(StandardScaler + OneHotEncoder) +
   HistGradientBoostingClassifier) on the simulated rows and registers it as
   ``models:/bench_serving/1`` in a throw-away SQLite MLflow store (with the training run's
   Feast references, as the training operator records them);
3. starts each server in its own process on loopback: ours (``--model-uri models:/...1
   --poll-seconds 0 --feature-repo ...``), ``mlflow models serve -m models:/... --env-manager
   local`` (MLflow's FastAPI scoring server, 1 worker) and ``feast serve`` (Feast's feature
   server, 1 worker) in a copy of the repo with concrete paths;
4. for each cell (rows per request x concurrency) a load generator in a separate process
   (raw asyncio HTTP/1.1, keep-alive connections, requests pre-encoded, uvloop when present)
   warms up, then sends a fixed number of requests and records each latency; the rows rotate
   through the online rows of the simulated customers. Cells: 1 and 100 rows, concurrency 1
   and 16, for ``rows`` (ours: ``{"rows": [...]}``, MLflow: ``{"dataframe_split": ...}``) and
   ``entities`` (ours: ``{"entities": [{"customer_id": ...}]}``; the anchor: the client asks
   ``feast serve``'s ``/get-online-features`` and then ``mlflow models serve`` with the rows);
5. measures the limit in-process: ``predict_proba`` of the loaded pipeline on a pandas frame of
   the same rows (median of repeated calls), and Feast's ``get_online_features`` in-process;
6. prints throughput (requests/s and rows/s), p50/p99 latency per cell and the ratios, and
   exits 1 when a target is missed (with by how much): ours >= 3x ``mlflow models serve``'s
   throughput and a lower p99 for single-row requests at concurrency 16, and ours' 100-row
   throughput at concurrency 16 >= 1/2 of the in-process limit (1 / predict time).

Every server answers on the same machine as the load generator (2 cores here): the numbers
are the whole system's, which is what a caller sees. Client mode (``--client``) is internal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL_NAME = "bench_serving"
VIEW = "customer_activity"
DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]
SPEED_TARGET = 3.0
LIMIT_TARGET = 0.5
HGB_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"

for path in (ROOT, ROOT / "provider"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


# ----------------------------------------------------------------------------- setup
def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def prepare_features(home: Path) -> tuple[Any, list[dict[str, Any]]]:
    """Simulated days published and materialized into the demo repo's SQLite online store;
    ``(the store, the online rows of every customer found)``."""
    from include.simulator import ENTITY_COLUMN, FEATURE_COLUMNS, ChurnSimulator
    from mlops_provider.core import features as feat
    from mlops_provider.core.feast_config import make_feature_store

    sim = ChurnSimulator(seed=11, n_customers=2000, daily_active_fraction=0.5)
    lake = home / "data"
    for day in DAYS:
        raw = sim.write_day(lake, day)["raw"]
        feat.publish_partition(
            str(Path(raw).parent),
            str(lake / "features" / VIEW),
            day,
            entity_columns=["customer_id"],
        )
    fs = make_feature_store(str(ROOT / "include" / "feature_repo"))
    feat.apply_repo(fs)
    feat.materialize(fs, _utc(DAYS[0]), _utc(DAYS[-1]) + timedelta(days=1))
    ids = sorted({int(i) for d in DAYS for i in sim.activity(d)[ENTITY_COLUMN]})
    refs = [f"{VIEW}:{c}" for c in FEATURE_COLUMNS]
    values = fs.get_online_features(
        features=refs, entity_rows=[{ENTITY_COLUMN: i} for i in ids]
    ).to_dict()
    rows = []
    for i in range(len(ids)):
        row = {k: values[k][i] for k in [ENTITY_COLUMN, *FEATURE_COLUMNS]}
        if all(v is not None for v in row.values()):
            rows.append(row)
    return fs, rows


def fit_and_register(home: Path) -> tuple[str, Any]:
    """The demo's pipeline fit on simulated rows, registered as ``bench_serving`` v1 in a SQLite
    MLflow store under ``home``; ``(tracking URI, the fitted pipeline)``."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from include.simulator import (
        CATEGORICAL_FEATURES,
        ENTITY_COLUMN,
        FEATURE_COLUMNS,
        NUMERIC_FEATURES,
        ChurnSimulator,
    )
    from mlops_provider.core.mlflow_target import MlflowTarget, activated, make_client

    sim = ChurnSimulator(seed=3, n_customers=20_000, daily_active_fraction=0.5)
    days = [date(2026, 1, d) for d in range(1, 6)]
    X = pd.concat([sim.activity(d) for d in days], ignore_index=True)[FEATURE_COLUMNS]  # noqa: N806
    y = pd.concat([sim.labels(d) for d in days], ignore_index=True)["churned"]
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC_FEATURES),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES),
        ]
    )
    pipe = Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(random_state=0))])
    pipe.fit(X, y)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    target = MlflowTarget(uri)
    client = make_client(target)
    client.create_experiment("bench", artifact_location=(home / "artifacts").as_uri())
    with activated(target):
        mlflow.set_experiment("bench")
        with mlflow.start_run():
            mlflow.set_tag("mlops.entity_columns", json.dumps([ENTITY_COLUMN]))
            mlflow.set_tag(
                "mlops.feature_refs", json.dumps([f"{VIEW}:{c}" for c in FEATURE_COLUMNS])
            )
            info = mlflow.sklearn.log_model(
                pipe,
                name="model",
                signature=infer_signature(X, pipe.predict(X)),
                pip_requirements=["scikit-learn"],
                skops_trusted_types=[HGB_TREE],
            )
        mlflow.register_model(info.model_uri, MODEL_NAME)
    return uri, pipe


def concrete_repo(home: Path, target: Path) -> Path:
    """A copy of the demo Feast repo whose ``feature_store.yaml`` names concrete paths (for
    ``feast serve``, which does not expand ``${MLOPS_HOME}``)."""
    source = ROOT / "include" / "feature_repo"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    text = (source / "feature_store.yaml").read_text().replace("${MLOPS_HOME}", str(home))
    (target / "feature_store.yaml").write_text(text)
    return target


# ----------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    name: str, cmd: list[str], env: dict[str, str], cwd: Path, ready_path: str, log_dir: Path
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group and wait until ``ready_path`` answers 200."""
    import httpx

    log_file = (log_dir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited ({proc.returncode}):\n{tail}")
        try:
            if httpx.get(ready_path, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"{name} did not answer {ready_path} within 180 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# ----------------------------------------------------------------------------- client
def _request(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if length is not None:
        return status, await reader.readexactly(length)
    if not chunked:
        raise RuntimeError("response without content-length")
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return status, b"".join(parts)
        parts.append(data[:-2])


def _two_hop_body(answer: bytes, columns: list[str]) -> bytes:
    """Feast's ``/get-online-features`` answer -> an MLflow ``dataframe_split`` body."""
    data = json.loads(answer)
    names = data["metadata"]["feature_names"]
    values = {n: r["values"] for n, r in zip(names, data["results"])}
    rows = list(zip(*(values[c] for c in columns)))
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()


async def _connection(job: dict[str, Any], counter: list[int], latencies: list[float]) -> None:
    first = job["targets"][0]
    reader, writer = await asyncio.open_connection("127.0.0.1", first["port"])
    hop: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    if len(job["targets"]) == 2:
        hop = await asyncio.open_connection("127.0.0.1", job["targets"][1]["port"])
    bodies = job["bodies"]
    requests = [_request(first["port"], first["path"], b.encode()) for b in bodies]
    total = job["warmup"] + job["count"]
    while counter[0] < total:
        index = counter[0]
        counter[0] += 1
        started = time.perf_counter()
        status, answer = await _exchange(reader, writer, requests[index % len(requests)])
        if status == 200 and hop is not None:
            second = job["targets"][1]
            body = _two_hop_body(answer, job["columns"])
            status, answer = await _exchange(*hop, _request(second["port"], second["path"], body))
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {answer[:300]!r}")
        if index >= job["warmup"]:
            latencies.append(time.perf_counter() - started)
    writer.close()
    if hop is not None:
        hop[1].close()


async def _load(job: dict[str, Any]) -> dict[str, Any]:
    counter = [0]
    warm: list[float] = []
    # warm-up: every connection opened and used, the server's first calls paid
    await asyncio.gather(
        *(_connection({**job, "count": 0}, counter, warm) for _ in range(job["concurrency"]))
    )
    counter[0] = job["warmup"]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_connection(job, counter, latencies) for _ in range(job["concurrency"])))
    return {"seconds": time.perf_counter() - started, "latencies": latencies}


def run_client(job: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in a separate process (the load generator); its measurements."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--client", f.name],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _client_main(job_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_load(job))
    print(json.dumps(result))


# ----------------------------------------------------------------------------- limits
def predict_limits(pipe: Any, rows: list[dict[str, Any]], sizes: list[int]) -> dict[int, float]:
    """The in-process ``predict_proba`` time of a pandas frame of ``n`` rows (median)."""
    import pandas as pd

    from include.simulator import FEATURE_COLUMNS

    limits = {}
    for n in sizes:
        frames = [
            pd.DataFrame([rows[(i + j) % len(rows)] for j in range(n)])[FEATURE_COLUMNS]
            for i in range(0, 20 * n, n)
        ]
        times = []
        for repeat in range(max(50, 3000 // n)):
            frame = frames[repeat % len(frames)]
            started = time.perf_counter()
            pipe.predict_proba(frame)
            times.append(time.perf_counter() - started)
        limits[n] = statistics.median(times[10:])
    return limits


def lookup_limits(fs: Any, rows: list[dict[str, Any]], sizes: list[int]) -> dict[int, float]:
    """The in-process Feast ``get_online_features`` time of ``n`` entities (median)."""
    from include.simulator import FEATURE_COLUMNS

    refs = [f"{VIEW}:{c}" for c in FEATURE_COLUMNS]
    limits = {}
    for n in sizes:
        times = []
        for repeat in range(max(30, 600 // n)):
            ids = [{"customer_id": r["customer_id"]} for r in rows[repeat : repeat + n]]
            started = time.perf_counter()
            fs.get_online_features(features=refs, entity_rows=ids).to_dict()
            times.append(time.perf_counter() - started)
        limits[n] = statistics.median(times[5:])
    return limits


# ----------------------------------------------------------------------------- main
def bodies(rows: list[dict[str, Any]], n: int, kind: str, columns: list[str]) -> list[str]:
    """Request bodies of ``n`` rows each, rotating through ``rows``."""
    out = []
    for start in range(0, min(len(rows), 40 * n), n):
        chunk = [rows[(start + i) % len(rows)] for i in range(n)]
        ids = [r["customer_id"] for r in chunk]
        if kind == "ours_rows":
            body: Any = {"rows": chunk}
        elif kind == "ours_entities":
            body = {"entities": [{"customer_id": i} for i in ids]}
        elif kind == "mlflow_rows":
            body = {
                "dataframe_split": {
                    "columns": columns,
                    "data": [[r[c] for c in columns] for r in chunk],
                }
            }
        else:  # feast: the first hop of the two-hop anchor
            body = {"features": [f"{VIEW}:{c}" for c in columns], "entities": {"customer_id": ids}}
        out.append(json.dumps(body))
    return out


def measure_cell(
    system: str,
    targets: list[dict[str, Any]],
    body_list: list[str],
    n: int,
    concurrency: int,
    count: int,
    columns: list[str],
) -> dict[str, Any]:
    job = {
        "targets": targets,
        "bodies": body_list,
        "concurrency": concurrency,
        "count": count,
        "warmup": max(count // 10, 2 * concurrency),
        "columns": columns,
    }
    result = run_client(job)
    lat = sorted(result["latencies"])
    rps = len(lat) / result["seconds"]
    cell = {
        "system": system,
        "rows": n,
        "concurrency": concurrency,
        "requests": len(lat),
        "req_per_s": rps,
        "rows_per_s": rps * n,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "max_ms": 1000 * lat[-1],
    }
    print(
        f"  {system:22s} {n:>4} rows  c={concurrency:<3} {cell['req_per_s']:>8,.0f} req/s "
        f"{cell['rows_per_s']:>9,.0f} rows/s  p50 {cell['p50_ms']:7.2f} ms  "
        f"p99 {cell['p99_ms']:7.2f} ms  max {cell['max_ms']:7.1f} ms",
        flush=True,
    )
    return cell


def start_servers(
    stack: ExitStack, home: Path, uri: str, repo: Path, skip_feast: bool
) -> dict[str, int]:
    """Ours, ``mlflow models serve`` and (unless skipped) ``feast serve``; their ports."""
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": uri,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "provider"), str(ROOT)]),
    }
    bin_dir = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])  # mlflow execs uvicorn
    ports = {"ours": free_port(), "mlflow": free_port()}
    model_uri = f"models:/{MODEL_NAME}/1"
    commands = {
        "ours": (
            [
                sys.executable,
                "-m",
                "mlops_provider.serving",
                "--model-uri",
                model_uri,
                "--poll-seconds",
                "0",
                "--feature-repo",
                str(ROOT / "include" / "feature_repo"),
                "--port",
                str(ports["ours"]),
                "--log-level",
                "warning",
            ],
            "/readyz",
        ),
        "mlflow": (
            [
                str(bin_dir / "mlflow"),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--port",
                str(ports["mlflow"]),
                "--host",
                "127.0.0.1",
            ],
            "/ping",
        ),
    }
    if not skip_feast:
        ports["feast"] = free_port()
        commands["feast"] = (
            [
                str(bin_dir / "feast"),
                "serve",
                "-p",
                str(ports["feast"]),
                "--no-access-log",
                "--max-requests",
                "100000000",
            ],
            "/health",
        )
    # MLflow's server as tuned as ours: one OpenMP/BLAS thread per model call (information)
    ports["mlflow_1t"] = free_port()
    mlflow_cmd = commands["mlflow"][0]
    commands["mlflow_1t"] = (
        [*mlflow_cmd[:-4], "--port", str(ports["mlflow_1t"]), *mlflow_cmd[-2:]],
        "/ping",
    )
    for name, (cmd, ready) in commands.items():
        started = time.perf_counter()
        proc = start_server(
            name,
            cmd,
            {**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
            if name == "mlflow_1t"
            else env,
            repo if name == "feast" else ROOT,
            f"http://127.0.0.1:{ports[name]}{ready}",
            home,
        )
        stack.callback(stop_server, proc)
        print(f"  {name} ready on port {ports[name]} in {time.perf_counter() - started:.1f} s")
    return ports


def run_cells(
    ports: dict[str, int], rows: list[dict[str, Any]], counts: dict[int, int], skip_feast: bool
) -> list[dict[str, Any]]:
    from include.simulator import FEATURE_COLUMNS

    cols = list(FEATURE_COLUMNS)

    def target(name: str, path: str) -> dict[str, Any]:
        return {"port": ports[name], "path": path}

    systems = [
        ("ours rows", [target("ours", "/predict")], "ours_rows"),
        ("mlflow serve", [target("mlflow", "/invocations")], "mlflow_rows"),
        ("mlflow serve, 1 thread", [target("mlflow_1t", "/invocations")], "mlflow_rows"),
        ("ours entities", [target("ours", "/predict")], "ours_entities"),
    ]
    if not skip_feast:
        hops = [target("feast", "/get-online-features"), target("mlflow", "/invocations")]
        systems.append(("feast+mlflow two hops", hops, "feast"))
    cells = []
    for n, count in counts.items():
        for concurrency in (1, 16):
            for system, targets, kind in systems:
                body_list = bodies(rows, n, kind, cols)
                cells.append(measure_cell(system, targets, body_list, n, concurrency, count, cols))
    return cells


def check_targets(cells: list[dict[str, Any]], limits: dict[int, float]) -> bool:
    """Print the ratios; whether every target is met."""

    def cell(system: str, n: int, c: int) -> dict[str, Any]:
        return next(
            x for x in cells if (x["system"], x["rows"], x["concurrency"]) == (system, n, c)
        )

    ok = True
    ours, theirs = cell("ours rows", 1, 16), cell("mlflow serve", 1, 16)
    speed = ours["req_per_s"] / theirs["req_per_s"]
    met = speed >= SPEED_TARGET
    ok &= met
    print(
        f"  single row, c=16: {speed:.2f}x mlflow serve's throughput (target >= {SPEED_TARGET}x) "
        + ("ok" if met else f"MISSED by {SPEED_TARGET / speed:.2f}x")
    )
    met = ours["p99_ms"] < theirs["p99_ms"]
    ok &= met
    print(
        f"  single row, c=16: p99 {ours['p99_ms']:.2f} ms vs {theirs['p99_ms']:.2f} ms (target: "
        "below theirs) "
        + ("ok" if met else f"MISSED by {ours['p99_ms'] - theirs['p99_ms']:.2f} ms")
    )
    for n in limits:
        for c in (1, 16):
            x = cell("ours rows", n, c)
            share = x["req_per_s"] * limits[n]
            line = f"  {n} rows, c={c}: {share:.2f} of the in-process limit ({1 / limits[n]:,.0f} predicts/s)"
            if n == 100 and c == 16:
                met = share >= LIMIT_TARGET
                ok &= met
                line += f" (target >= {LIMIT_TARGET}) " + (
                    "ok" if met else f"MISSED by {LIMIT_TARGET / share:.2f}x"
                )
            print(line)
    for n in limits:
        for c in (1, 16):
            a, b = cell("ours rows", n, c), cell("mlflow serve", n, c)
            t = cell("mlflow serve, 1 thread", n, c)
            print(
                f"  {n} rows, c={c}: ours/mlflow throughput {a['req_per_s'] / b['req_per_s']:.2f}x "
                f"(vs mlflow with 1 thread: {a['req_per_s'] / t['req_per_s']:.2f}x)"
            )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="600 single-row / 100 batch requests")
    parser.add_argument("--requests", type=int, help="single-row requests per cell (default 2000)")
    parser.add_argument("--skip-feast", action="store_true", help="no feast serve two-hop anchor")
    parser.add_argument("--json", help="write the cells to this file")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        _client_main(args.client)
        return 0
    warnings.simplefilter("ignore")  # third-party deprecation noise while setting up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    single = args.requests or (600 if args.quick else 2000)
    counts = {1: single, 100: max(single * 3 // 20, 50)}
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serving-")))
        os.environ["MLOPS_HOME"] = str(home)
        started = time.perf_counter()
        fs, rows = prepare_features(home)
        uri, pipe = fit_and_register(home)
        repo = concrete_repo(home, home / "feature_repo")
        print(
            f"setup: {len(rows):,} online customers, model registered, in {time.perf_counter() - started:.0f} s; {os.cpu_count()} CPUs"
        )
        limits = predict_limits(pipe, rows, [1, 100])
        lookups = lookup_limits(fs, rows, [1, 100])
        for n in limits:
            print(
                f"  in-process limit, {n} rows: predict_proba {1000 * limits[n]:.3f} ms "
                f"({1 / limits[n]:,.0f}/s); Feast get_online_features {1000 * lookups[n]:.3f} ms"
            )
        ports = start_servers(stack, home, uri, repo, args.skip_feast)
        print(
            f"\ncells ({counts[1]} single-row, {counts[100]} 100-row requests each, after a warm-up)"
        )
        cells = run_cells(ports, rows, counts, args.skip_feast)
    print("\ntargets")
    ok = check_targets(cells, limits)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"cells": cells, "predict_seconds": limits, "lookup_seconds": lookups}, indent=1
            )
        )
    print("\nall targets met" if ok else "\nA TARGET WAS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
