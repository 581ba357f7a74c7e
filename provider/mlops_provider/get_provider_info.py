"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

_INTEGRATION = "MLOps"
_P = "mlops_provider"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider's configuration, hooks, operators, sensors, triggers, links and
    connections."""
    from mlops_provider import __version__

    return {
        "package-name": "airflow-provider-mlops",
        "name": "MLOps",
        "description": (
            "Operators and sensors for the whole machine-learning lifecycle: data validation "
            "(Great Expectations), features (Feast), training and registry (MLflow), batch "
            "scoring, drift, performance and training-serving skew monitoring, retraining."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://github.com/airflow-provider-mlops/airflow-provider-mlops",
                "tags": ["software"],
            }
        ],
        "config": {
            "mlops": {
                "description": "Settings of the MLOps provider and its reference DAGs. An "
                "MLOPS_<OPTION> environment variable (e.g. MLOPS_LAKE_URI) wins over the option; "
                "an empty option means its default.\n",
                "options": {
                    "lake_uri": _option(
                        "Base URI of the data lake the reference DAGs read and write: a local "
                        "directory or s3://bucket/prefix. Empty: the data_root directory.",
                        "s3://mlops-lake/lake",
                    ),
                    "reports_uri": _option(
                        "Where the reference DAGs write their HTML and JSON reports. Empty: "
                        "<lake_uri>/reports.",
                        "s3://mlops-lake/reports",
                    ),
                    "model_name": _option(
                        "Registered model the reference DAGs train, score and monitor. Empty: "
                        "the DAGs' own default.",
                        "demand_forecast",
                    ),
                    "mlflow_conn_id": _option(
                        "MLflow connection the reference DAGs use.",
                        "mlflow_prod",
                        default="mlflow_default",
                    ),
                    "feast_conn_id": _option(
                        "Feast connection the reference DAGs use.",
                        "feast_prod",
                        default="feast_default",
                    ),
                    "aws_conn_id": _option(
                        "AWS connection of s3:// lake URIs (unused for a local lake).",
                        "aws_lake",
                        default="aws_default",
                    ),
                    "feature_repo": _option(
                        "Feast feature repo used when no feast connection names one. Empty: "
                        "<project_root>/include/feature_repo.",
                        "/opt/airflow/include/feature_repo",
                    ),
                    "project_root": _option(
                        "Project whose include/ holds the Feast repo and the Great Expectations "
                        "suites. Empty: none for the provider; the directory above dags/ for the "
                        "reference DAGs.",
                        "/opt/airflow",
                    ),
                    "data_root": _option(
                        "Local data lake directory (also the default lake_uri). Empty: "
                        "$MLOPS_HOME/data, i.e. $AIRFLOW_HOME/mlops/data.",
                        "/var/lib/mlops/data",
                    ),
                    "metrics_token": {
                        **_option(
                            "Bearer token that GET /mlops/metrics (the monitoring metrics for "
                            "Prometheus) accepts. Empty: the endpoint needs an Airflow login, "
                            "like the reports.",
                            "a-long-random-string",
                        ),
                        "sensitive": True,
                    },
                    "versions_max_age_days": _option(
                        "Days a replaced dataset version stays readable in the lake's version "
                        "store (_versions beside the dataset) after it was replaced; none: no "
                        "age limit; 0: replaced content is not kept (docs/versioning.md).",
                        "90",
                        default="30",
                    ),
                    "mlflow_max_retry_seconds": _option(
                        "Seconds one MLflow request of the provider may keep retrying a "
                        "tracking server that does not answer (MLflow's own default is about 4 "
                        "minutes); the retries, their backoff and the request timeout are set "
                        "to fit. An mlflow connection's extra max_retry_seconds wins; "
                        "MLFLOW_HTTP_REQUEST_* variables set in the environment win over both.",
                        "10",
                        default="30",
                    ),
                    "versions_keep": _option(
                        "At most this many replaced versions are kept per dataset location, "
                        "newest first. Empty: no count limit; 0: none kept.",
                        "5",
                    ),
                },
            }
        },
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    f"{_P}.hooks.mlflow",
                    f"{_P}.hooks.feast",
                    f"{_P}.hooks.serving",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    f"{_P}.operators.validation",
                    f"{_P}.operators.feast",
                    f"{_P}.operators.training",
                    f"{_P}.operators.evaluation",
                    f"{_P}.operators.registry",
                    f"{_P}.operators.approval",
                    f"{_P}.operators.scoring",
                    f"{_P}.operators.monitoring",
                    f"{_P}.operators.retraining",
                    f"{_P}.operators.deployment",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [f"{_P}.sensors.mlflow", f"{_P}.sensors.feast"],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [f"{_P}.triggers.mlflow", f"{_P}.triggers.feast"],
            }
        ],
        "extra-links": [
            f"{_P}.links.mlflow.MlflowRunLink",
            f"{_P}.links.mlflow.MlflowModelVersionLink",
            f"{_P}.links.reports.ReportLink",
        ],
        "plugins": [
            {"name": "mlops", "plugin-class": f"{_P}.plugins.mlops.MlopsPlugin"},
        ],
        "connection-types": [
            {
                "hook-class-name": f"{_P}.hooks.mlflow.MlflowHook",
                "connection-type": "mlflow",
                "hook-name": "MLflow",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {
                        "host": "Tracking server host or URI",
                        "schema": "Scheme (http or https)",
                        "login": "Username (basic auth)",
                        "password": "Password or token",
                    },
                    "placeholders": {
                        "host": "mlflow.example.com, or a full URI like sqlite:////data/mlflow.db",
                        "port": "5000",
                        "schema": "http",
                        "login": "leave empty for token auth",
                        "password": "basic-auth password, or a bearer token if login is empty",
                    },
                },
                "conn-fields": {
                    "tracking_uri": {
                        "label": "Tracking URI",
                        "description": "Full tracking URI; overrides host/port/schema.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry URI if it differs from the tracking URI.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "artifact_location": {
                        "label": "Artifact location",
                        "description": "Artifact root for experiments this provider creates.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "ui_url": {
                        "label": "UI URL",
                        "description": "MLflow UI address for links, if browsers reach it "
                        "elsewhere than the tracking URI.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "token": {
                        "label": "Bearer token",
                        "description": "Sent as 'Authorization: Bearer'; or put the token in "
                        "the password field with the login empty.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "insecure_tls": {
                        "label": "Skip TLS verification",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "max_retry_seconds": {
                        "label": "Retry budget (seconds)",
                        "description": "How long one request may keep retrying a server that "
                        "does not answer (default: the [mlops] mlflow_max_retry_seconds "
                        "setting, 30).",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                },
            },
            {
                "hook-class-name": f"{_P}.hooks.feast.FeastHook",
                "connection-type": "feast",
                "hook-name": "Feast",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "password", "port"],
                    "relabeling": {},
                    "placeholders": {},
                },
                "conn-fields": {
                    "repo_path": {
                        "label": "Feature repo path",
                        "description": "Directory holding feature_store.yaml (without "
                        "a connection: $MLOPS_FEATURE_REPO, then "
                        "$MLOPS_PROJECT_ROOT/include/feature_repo).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "feature_store_yaml": {
                        "label": "feature_store.yaml overrides (YAML/JSON)",
                        "description": "Merged over the repo's feature_store.yaml, e.g. an "
                        "online_store block pointing at Redis.",
                        "schema": {"type": ["string", "null"], "format": "multiline"},
                    },
                },
            },
            {
                "hook-class-name": f"{_P}.hooks.serving.ServingHook",
                "connection-type": "mlops_serving",
                "hook-name": "MLOps serving app",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "extra"],
                    "relabeling": {
                        "host": "Service URL or host",
                        "schema": "Scheme (http or https)",
                        "password": "Admin token",
                    },
                    "placeholders": {
                        "host": "http://churn-serving:8000",
                        "password": "the service's MLOPS_SERVING_ADMIN_TOKEN",
                    },
                },
            },
        ],
    }


def _option(description: str, example: str, *, default: str = "") -> dict[str, Any]:
    """One string option of the provider's ``[mlops]`` configuration section."""
    return {
        "description": description + "\n",
        "version_added": "0.1.0",
        "type": "string",
        "example": example,
        "default": default,
    }


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """The ``ui-field-behaviour`` registered for one of the provider's connection types."""
    for conn in get_provider_info()["connection-types"]:
        if conn["connection-type"] == conn_type:
            return dict(conn["ui-field-behaviour"])
    return {}
