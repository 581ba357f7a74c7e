"""The production stack's docker-compose.yaml, checked without Docker.

Images cannot be pulled here, so the file itself is checked: it parses, every long-running
service has a healthcheck and every one-shot service is awaited with
``service_completed_successfully``, image tags are pinned, the Airflow, Python and MLflow
versions of the images are uv.lock's, every Airflow service uses the shared block, the worker
scales, and the connection settings agree with the native stack's (``make stack``,
``stack/stack.py``): same connection ids, conn types, fields and extra keys, same Feast overrides
shape, same buckets, same ``MLOPS_*`` variables. Where ``docker-compose`` (Debian's package) or
``docker compose`` is installed, its offline ``config`` validation runs too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
AIRFLOW_DOCKERFILE = ROOT / "Dockerfile"
MLFLOW_DOCKERFILE = ROOT / "docker" / "mlflow" / "Dockerfile"

EXPECTED_SERVICES = {
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "mlflow",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
    "mlops-serving",
    "prometheus",
    "grafana",
}
ONE_SHOT = {"minio-init", "airflow-init"}
CONNECTIONS = {
    "mlflow_default": "mlflow",
    "aws_default": "aws",
    "feast_default": "feast",
    "mlops_serving_default": "mlops_serving",
}
BUCKETS = {"mlops-lake", "mlops-mlflow"}
#: Variables shared by the Airflow processes of both stacks (names only; values differ by host).
SHARED_PREFIXES = ("MLOPS_", "AIRFLOW_CONN_", "FEAST_", "AWS_")
_DEFAULTED = re.compile(r"\$\{(\w+):?-([^}]*)\}")


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yaml is not a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def common() -> dict[str, Any]:
    return dict(compose()["x-airflow-common"])


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` with the defaults (what runs without an .env file)."""
    return _DEFAULTED.sub(lambda m: m.group(2), text)


@cache
def lock_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {pkg["name"]: pkg["version"] for pkg in lock["package"] if "version" in pkg}


def dockerfile_args(path: Path) -> dict[str, str]:
    """``ARG NAME=default`` of a Dockerfile (a later default must repeat an earlier one)."""
    args: dict[str, str] = {}
    for name, value in re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", path.read_text(), re.MULTILINE):
        assert args.setdefault(name, value) == value, f"{path.name}: ARG {name} defined twice"
    return args


def dockerfile_from(path: Path) -> list[str]:
    """The images a Dockerfile builds FROM, with its ARG defaults substituted."""
    args = dockerfile_args(path)
    images = re.findall(r"^FROM\s+(\S+)", path.read_text(), re.MULTILINE)
    return [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image) for image in images]


def airflow_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if name.startswith("airflow-")}


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment must be a mapping"
    return {key: interpolate(str(value)) for key, value in env.items()}


def connections(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    prefix = "AIRFLOW_CONN_"
    return {k[len(prefix) :].lower(): json.loads(v) for k, v in env.items() if k.startswith(prefix)}


def command_text(service: str) -> str:
    command = services()[service].get("command", "")
    return command if isinstance(command, str) else " ".join(map(str, command))


def mlflow_option(option: str) -> str:
    match = re.search(rf"--{option}[= ](\S+)", command_text("mlflow"))
    assert match, f"mlflow server has no --{option}"
    return match.group(1)


# ---------------------------------------------------------------- structure


def test_file_parses_and_has_the_topology() -> None:
    assert set(services()) == EXPECTED_SERVICES
    for name, svc in services().items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, svc in services().items():
        if name in ONE_SHOT:
            assert "healthcheck" not in svc and "restart" not in svc, f"{name} is one-shot"
            continue
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"{name}: no healthcheck"
        assert svc.get("restart") == "always", f"{name}: not restarted"


def test_depends_on_waits_for_health_or_completion() -> None:
    for name, svc in services().items():
        depends = svc.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must name conditions"
        for target, spec in depends.items():
            assert target in services(), f"{name} depends on unknown {target}"
            wanted = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert spec == {"condition": wanted}, f"{name} -> {target}: {spec}"


def test_airflow_services_use_the_common_block() -> None:
    block = common()
    assert set(airflow_services()) == {n for n in EXPECTED_SERVICES if n.startswith("airflow-")}
    for name, svc in airflow_services().items():
        assert svc["image"] == block["image"] and svc["build"] == block["build"], name
        assert svc["volumes"] == block["volumes"], name
        env = svc["environment"]
        assert {k: env.get(k) for k in block["environment"]} == block["environment"], name
        for target, spec in block["depends_on"].items():
            assert svc["depends_on"].get(target) == spec, f"{name} -> {target}"
        if name != "airflow-init":
            assert svc["user"] == block["user"], name
            assert svc["depends_on"].get("airflow-init") == {
                "condition": "service_completed_successfully"
            }, name


def test_airflow_init_migrates_and_creates_the_login() -> None:
    env = environment("airflow-init")
    assert env["_AIRFLOW_DB_MIGRATE"] == "true"
    assert env["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert env["_AIRFLOW_WWW_USER_USERNAME"] and env["_AIRFLOW_WWW_USER_PASSWORD"]
    assert "providers list" in command_text("airflow-init"), "init checks the provider"


def test_the_worker_scales() -> None:
    worker = services()["airflow-worker"]
    assert "container_name" not in worker, "a container_name prevents --scale airflow-worker=N"
    assert "ports" not in worker, "a published port prevents --scale airflow-worker=N"
    assert "celery worker" in command_text("airflow-worker")
    assert common()["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_mounted_and_copied_paths_exist() -> None:
    for name, svc in {"x-airflow-common": common(), **services()}.items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    for source in re.findall(
        r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", AIRFLOW_DOCKERFILE.read_text(), re.M
    ):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for kept in ("provider", "dags", "include", "pyproject.toml", "README.md"):
        assert kept not in ignored, f".dockerignore drops {kept}, which the image needs"


# ---------------------------------------------------------------- versions


def image_refs() -> list[str]:
    refs = [interpolate(str(svc["image"])) for svc in services().values() if "image" in svc]
    return refs + dockerfile_from(AIRFLOW_DOCKERFILE) + dockerfile_from(MLFLOW_DOCKERFILE)


def test_every_image_tag_is_pinned() -> None:
    for ref in image_refs():
        name, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "")
        assert name and tag, f"{ref}: no tag"
        assert tag != "latest" and not tag.startswith("latest"), f"{ref}: not pinned"
        assert re.search(r"\d", tag), f"{ref}: tag names no version"


def test_airflow_image_matches_uv_lock() -> None:
    airflow = lock_versions()["apache-airflow"]
    args = dockerfile_args(AIRFLOW_DOCKERFILE)
    assert args["AIRFLOW_VERSION"] == airflow
    assert args["PYTHON_VERSION"] == "3.11"
    assert dockerfile_from(AIRFLOW_DOCKERFILE) == [f"apache/airflow:{airflow}-python3.11"]
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in AIRFLOW_DOCKERFILE.read_text()
    build_args = common()["build"]["args"]
    assert build_args["AIRFLOW_VERSION"] == airflow and build_args["PYTHON_VERSION"] == "3.11"
    assert interpolate(common()["image"]).endswith(f":{airflow}")


def test_mlflow_and_feast_match_uv_lock() -> None:
    lock = lock_versions()
    airflow_args = dockerfile_args(AIRFLOW_DOCKERFILE)
    mlflow_args = dockerfile_args(MLFLOW_DOCKERFILE)
    assert airflow_args["MLFLOW_VERSION"] == mlflow_args["MLFLOW_VERSION"] == lock["mlflow"]
    assert airflow_args["FEAST_VERSION"] == lock["feast"]
    assert mlflow_args["PSYCOPG2_VERSION"] == lock["psycopg2-binary"]
    assert mlflow_args["BOTO3_VERSION"] == lock["boto3"]
    assert common()["build"]["args"]["MLFLOW_VERSION"] == lock["mlflow"]
    assert common()["build"]["args"]["FEAST_VERSION"] == lock["feast"]
    assert services()["mlflow"]["build"]["args"]["MLFLOW_VERSION"] == lock["mlflow"]
    assert interpolate(services()["mlflow"]["image"]).endswith(f":{lock['mlflow']}")


# ---------------------------------------------------------------- connections and wiring


def compose_environment() -> dict[str, str]:
    return {k: interpolate(str(v)) for k, v in common()["environment"].items()}


def host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.hostname or "", parts.port


def test_connections_point_at_the_services() -> None:
    conns = connections(compose_environment())
    assert {cid: c["conn_type"] for cid, c in conns.items()} == CONNECTIONS
    mlflow = conns["mlflow_default"]
    assert mlflow["host"] in services() and mlflow["schema"] == "http"
    assert str(mlflow["port"]) == mlflow_option("port")
    # links must open in a browser on the host: the published port, not the service name
    published = {p.split(":")[1]: p.split(":")[0] for p in services()["mlflow"]["ports"]}
    ui_host, ui_port = host_port(mlflow["extra"]["ui_url"])
    assert ui_host == "localhost" and str(ui_port) == published[mlflow_option("port")]
    aws = conns["aws_default"]
    assert host_port(aws["extra"]["endpoint_url"]) == ("minio", 9000)
    minio_env = environment("minio")
    assert (aws["login"], aws["password"]) == (
        minio_env["MINIO_ROOT_USER"],
        minio_env["MINIO_ROOT_PASSWORD"],
    )


def feast_overrides(env: dict[str, str]) -> dict[str, Any]:
    extra = connections(env)["feast_default"]["extra"]
    value = extra["feature_store_yaml"]
    parsed = yaml.safe_load(value) if isinstance(value, str) else value
    assert isinstance(parsed, dict), "feature_store_yaml must be a mapping"
    return parsed


def test_feast_connection_uses_redis_and_the_lake(tmp_path: Path, monkeypatch: Any) -> None:
    from mlops_provider.core.feast_config import load_repo_config

    extra = connections(compose_environment())["feast_default"]["extra"]
    mounts = dict(str(v).split(":")[1::-1] for v in common()["volumes"] if str(v).startswith("."))
    repo = Path(extra["repo_path"])
    source = next(
        ROOT / src / repo.relative_to(dst)
        for dst, src in mounts.items()
        if repo.is_relative_to(dst)
    )
    overrides = feast_overrides(compose_environment())
    assert overrides["online_store"]["type"] == "redis"
    assert host_port(overrides["online_store"]["connection_string"].split(",")[0])[0] == "redis"
    assert urlsplit(overrides["registry"]["path"]).netloc in BUCKETS
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    config = load_repo_config(source, overrides)  # Feast validates the merged configuration
    assert config.online_store.type == "redis"


def test_buckets_lake_and_artifacts() -> None:
    created = set(re.findall(r"mc mb (?:--\S+ )*\w+/([\w.-]+)", command_text("minio-init")))
    assert created == BUCKETS
    env = compose_environment()
    lake = urlsplit(env["MLOPS_LAKE_URI"])
    assert lake.scheme == "s3" and lake.netloc in BUCKETS
    artifacts = urlsplit(mlflow_option("artifacts-destination"))
    assert artifacts.scheme == "s3" and artifacts.netloc in BUCKETS - {lake.netloc}
    assert env["MLOPS_AWS_CONN_ID"] in CONNECTIONS
    assert host_port(env["MLOPS_FEATURES_S3_ENDPOINT"]) == ("minio", 9000)


def test_mlflow_server_uses_postgres_and_its_own_database() -> None:
    store = urlsplit(mlflow_option("backend-store-uri"))
    assert store.scheme.startswith("postgresql") and store.hostname == "postgres"
    database = store.path.lstrip("/")
    init_sql = "\n".join(p.read_text() for p in (ROOT / "docker" / "postgres").glob("*.sql"))
    assert re.search(rf"CREATE DATABASE {database}\b", init_sql)
    assert database != environment("postgres")["POSTGRES_DB"], "MLflow shares Airflow's DB"
    assert mlflow_option("allowed-hosts").split(",").count("mlflow:5000") == 1


# ---------------------------------------------------------------- serving and monitoring

PROMETHEUS = ROOT / "docker" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "mlops.json"
#: The serving app's metric families (the serving contract's /metrics).
SERVING_METRICS = {
    "mlops_serving_requests_total",
    "mlops_serving_request_duration_seconds",
    "mlops_serving_errors_total",
    "mlops_serving_feature_lookup_seconds",
    "mlops_serving_missing_features_total",
    "mlops_serving_model_info",
    "mlops_serving_predictions_total",
    "mlops_serving_prediction_probability",
    "mlops_serving_reloads_total",
}
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "histogram_quantile",
    "label_values",
    "le",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "topk",
    "bottomk",
    "abs",
    "clamp_min",
    "clamp_max",
    "time",
    "vector",
    "scalar",
    "delta",
    "deriv",
    "changes",
    "resets",
    "sort",
    "sort_desc",
}


def known_metric_names() -> set[str]:
    """Sample names the stack exports: the serving app's (histograms with their series) and the
    monitoring exporter's (:data:`mlops_provider.core.monitoring.export.METRICS`)."""
    from mlops_provider.core.monitoring.export import METRICS

    names = set(METRICS)
    for name in SERVING_METRICS:
        names.add(name)
        if not name.endswith("_total"):
            names.update(name + suffix for suffix in _HISTOGRAM_SUFFIXES)
    return names


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers outside label matchers, ``by (...)``
    groupings, strings and range selectors that are not PromQL functions or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"label_values\(([^,)]+),[^)]*\)", r"label_values(\1)", text)  # Grafana
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {n for n in names if n not in _PROMQL_WORDS and not n.startswith("$")}


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(str(query.get("query", "")))
    return exprs


def option(command: list[str], name: str) -> str:
    assert name in command, f"the serving app is started without {name}"
    return command[command.index(name) + 1]


def serving_command() -> list[str]:
    return [str(c) for c in services()["mlops-serving"]["command"]]


def test_the_serving_service_runs_the_serving_app() -> None:
    svc = services()["mlops-serving"]
    assert svc["image"] == common()["image"]
    env = svc["environment"]
    # the Airflow services' settings, plus the app's own MLOPS_SERVING_* and MLflow
    assert {k: env.get(k) for k in common()["environment"]} == common()["environment"]
    own = set(env) - set(common()["environment"])
    assert all(k.startswith("MLOPS_SERVING_") for k in own - {"MLFLOW_TRACKING_URI"}), own
    command = serving_command()
    assert command[:3] == ["python", "-m", "mlops_provider.serving"]
    assert option(command, "--port") == "8000"
    assert option(command, "--host") == "0.0.0.0"
    assert option(command, "--alias") == "champion"
    # only the deployment DAG moves the served version (after validating it)
    assert float(option(command, "--poll-seconds")) == 0
    test = " ".join(svc["healthcheck"]["test"])
    assert "localhost:8000/healthz" in test or "localhost:8000/readyz" in test
    assert {"mlflow", "redis", "minio"} <= set(svc["depends_on"])


def test_the_serving_app_uses_the_stores_of_the_airflow_services() -> None:
    env = environment("mlops-serving")
    airflow = compose_environment()
    command = serving_command()
    assert (
        option(command, "--feature-repo")
        == connections(airflow)["feast_default"]["extra"]["repo_path"]
    )
    assert json.loads(env["MLOPS_SERVING_FEATURE_STORE_OVERRIDES"]) == feast_overrides(airflow)
    assert env["MLOPS_SERVING_AWS_CONN_ID"] == airflow["MLOPS_AWS_CONN_ID"]
    log = option(command, "--prediction-log")
    assert log == f"{airflow['MLOPS_LAKE_URI']}/predictions-online/churn"
    tracking = urlsplit(env["MLFLOW_TRACKING_URI"])
    assert (tracking.hostname, str(tracking.port)) == ("mlflow", mlflow_option("port"))


def test_the_serving_connection_names_the_service_and_its_token() -> None:
    conn = connections(compose_environment())["mlops_serving_default"]
    assert host_port(conn["host"]) == ("mlops-serving", int(option(serving_command(), "--port")))
    assert conn["password"] == environment("mlops-serving")["MLOPS_SERVING_ADMIN_TOKEN"]
    assert "change-me" in conn["password"], "the default token must say it is a placeholder"


def test_prometheus_scrapes_serving_and_the_plugin() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {
        name: [t for sc in job["static_configs"] for t in sc["targets"]]
        for name, job in jobs.items()
    }
    serving, plugin = jobs["mlops-serving"], jobs["mlops-monitoring"]
    assert targets["mlops-serving"] == ["mlops-serving:8000"]
    assert serving.get("metrics_path", "/metrics") == "/metrics"
    assert targets["mlops-monitoring"] == ["airflow-apiserver:8080"]
    assert plugin["metrics_path"] == "/mlops/metrics"
    auth = plugin["authorization"]
    assert auth.get("type", "Bearer") == "Bearer" and auth["credentials_file"]
    # the ports scraped are the services' own
    assert "8000:8000" in services()["mlops-serving"]["ports"]
    assert "8080:8080" in services()["airflow-apiserver"]["ports"]
    # the token file is written from the token the Airflow services check
    prom = services()["prometheus"]
    assert auth["credentials_file"] in command_text("prometheus")
    assert "$$MLOPS_METRICS_TOKEN" in command_text("prometheus")
    assert (
        prom["environment"]["MLOPS_METRICS_TOKEN"] == common()["environment"]["MLOPS_METRICS_TOKEN"]
    )
    mounted = {str(v).split(":")[1] for v in prom["volumes"] if str(v).startswith(".")}
    assert "/etc/prometheus/prometheus.yml" in mounted


def test_grafana_provisioning_parses() -> None:
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and host_port(source["url"]) == ("prometheus", 9090)
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/mlops.yml").read_text())[
        "providers"
    ]
    mounts = dict(str(v).split(":")[:2] for v in services()["grafana"]["volumes"])
    assert mounts["./docker/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./docker/grafana/provisioning"] == "/etc/grafana/provisioning"
    board = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for word in ("version", "request rate", "p99", "errors", "drift", "auc", "retrain"):
        assert word in titles, word


def test_dashboard_queries_name_only_exported_metrics() -> None:
    known = known_metric_names()
    used: set[str] = set()
    for expr in dashboard_exprs():
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        used |= names
    assert used - known == set(), f"the dashboard queries metrics nobody exports: {used - known}"
    assert "mlops_serving_request_duration_seconds_bucket" in used  # p99 from the histogram


def test_the_metric_name_check_can_fail() -> None:
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(mlops_serving_latency_bucket{a="b"}[5m])))'
    ) == {"mlops_serving_latency_bucket"}
    assert "mlops_serving_latency_bucket" not in known_metric_names()
    assert promql_metric_names('max by (model) (mlops_drift_share{model=~"$model"})') == {
        "mlops_drift_share"
    }


# ---------------------------------------------------------------- the native stack


def shape(env: dict[str, str]) -> dict[str, Any]:
    """What both stacks must share: names, types and keys, not hosts, ports or secrets."""
    conns = connections(env)
    overrides = feast_overrides(env)
    return {
        "variables": sorted(k for k in env if k.startswith(SHARED_PREFIXES)),
        "connections": {
            cid: {
                "conn_type": conn["conn_type"],
                "fields": sorted(conn),
                "extra": sorted(conn.get("extra", {})),
            }
            for cid, conn in conns.items()
        },
        "feast": {
            "keys": sorted(overrides),
            "online_store": overrides["online_store"]["type"],
            "registry": overrides["registry"],
            "repo": Path(conns["feast_default"]["extra"]["repo_path"]).parts[-2:],
        },
        "lake": env["MLOPS_LAKE_URI"],
        "aws_conn_id": env["MLOPS_AWS_CONN_ID"],
        "executor": env["AIRFLOW__CORE__EXECUTOR"],
        "celery_config": env.get("AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"),
    }


def native_stack(tmp_path: Path, monkeypatch: Any) -> Any:
    try:
        from stack import stack
    except ModuleNotFoundError as err:
        if err.name not in ("stack", "stack.stack"):
            raise
        pytest.skip("stack/stack.py (the native stack of `make stack`) is not in this checkout")
    # the stack as `make stack` starts it: no overrides left by a system test in this session
    for name in list(os.environ):
        if name.startswith(("MLOPS_STACK_", "MLOPS_DEFERRABLE")) or name in stack.PASSED_THROUGH:
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_STACK_HOME", str(tmp_path / "stack"))
    return stack


def test_settings_match_the_native_stack(tmp_path: Path, monkeypatch: Any) -> None:
    stack = native_stack(tmp_path, monkeypatch)
    native = {k: str(v) for k, v in stack.stack_environment().items()}
    assert shape(compose_environment()) == shape(native)


def test_the_serving_app_matches_the_native_stack(tmp_path: Path, monkeypatch: Any) -> None:
    stack = native_stack(tmp_path, monkeypatch)
    settings = stack.Settings()
    native = next(s for s in stack.services(settings) if s.name == "mlops-serving")
    compose_own = set(environment("mlops-serving")) - set(compose_environment())
    assert set(native.env) | set(native.secrets) == compose_own
    flags = ("--model", "--alias", "--poll-seconds")
    assert [option(native.argv, f) for f in flags] == [option(serving_command(), f) for f in flags]
    assert native.argv[native.argv.index("-m") + 1] == "mlops_provider.serving"
    lake = stack.stack_environment(settings)["MLOPS_LAKE_URI"]
    assert option(native.argv, "--prediction-log") == f"{lake}/predictions-online/churn"
    repo = connections(stack.stack_environment(settings))["feast_default"]["extra"]["repo_path"]
    assert option(native.argv, "--feature-repo") == repo
    assert json.loads(native.env["MLOPS_SERVING_FEATURE_STORE_OVERRIDES"]) == stack.feast_overrides(
        settings
    )
    conn = stack.connections(settings)["mlops_serving_default"]
    assert conn["host"] == f"http://127.0.0.1:{option(native.argv, '--port')}"


def test_buckets_match_the_native_stack(tmp_path: Path, monkeypatch: Any) -> None:
    stack = native_stack(tmp_path, monkeypatch)
    settings = stack.Settings()
    assert {settings.lake_bucket, settings.mlflow_bucket} == BUCKETS
    artifacts = urlsplit(mlflow_option("artifacts-destination"))
    assert artifacts.netloc == settings.mlflow_bucket


# ---------------------------------------------------------------- docker compose itself


def compose_cli() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    pytest.skip("neither docker-compose nor the docker compose plugin is installed")


def test_docker_compose_validates_the_file() -> None:
    """Offline validation by Compose itself (schema, conditions, references, interpolation)."""
    command = [*compose_cli(), "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert set(rendered["services"]) == EXPECTED_SERVICES
    assert "container_name" not in rendered["services"]["airflow-worker"]


# ---------------------------------------------------------------- the README


def readme_production() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Production\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no Production section"
    return match.group(1)


def test_readme_production_section_matches_the_file() -> None:
    section = readme_production()
    for name in EXPECTED_SERVICES:
        short = name.removeprefix("airflow")
        assert f"`{name}`" in section or f"`{short}`" in section, f"README omits {name}"
    assert f"FROM {dockerfile_from(AIRFLOW_DOCKERFILE)[0]}" in section.replace("`", "")
    for bucket in BUCKETS:
        assert f"`{bucket}`" in section
    init = environment("airflow-init")
    login = f"`{init['_AIRFLOW_WWW_USER_USERNAME']}` / `{init['_AIRFLOW_WWW_USER_PASSWORD']}`"
    assert login in section
    published = {p.split(":")[0] for svc in services().values() for p in svc.get("ports", [])}
    for port in published - {"9000"}:
        assert f"http://localhost:{port}" in section, f"README omits port {port}"
    for variable in ("MLOPS_LAKE_URI", "MLOPS_AWS_CONN_ID", "MLOPS_PROJECT_ROOT", *CONNECTIONS):
        assert variable in section, f"README omits {variable}"
    for target in (
        "make stack",
        "make stack-demo",
        "make stack-status",
        "make stack-down",
        "--scale airflow-worker",
    ):
        assert target in section, f"README omits {target}"
