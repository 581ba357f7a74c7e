"""The provider's ``[mlops]`` configuration section: declared in ``get_provider_info()``, valid
for Airflow, read through Airflow's configuration, with ``MLOPS_*`` variables still winning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_provider.core import config
from mlops_provider.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no MLOPS_* variable and no AIRFLOW__MLOPS__* variable."""
    for option, env in config.OPTIONS.items():
        monkeypatch.delenv(env, raising=False)
        monkeypatch.delenv(f"AIRFLOW__MLOPS__{option.upper()}", raising=False)


def _declared() -> dict[str, dict[str, object]]:
    return get_provider_info()["config"]["mlops"]["options"]


def test_the_declared_section_validates_against_airflows_schema() -> None:
    import airflow
    import jsonschema

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    # the schema's option definition spells additionalProperties wrongly: check the keys here
    allowed = set(schema["definitions"]["option"]["properties"])
    for option in info["config"]["mlops"]["options"].values():
        assert set(option) <= allowed
        assert option["description"] and option["version_added"] and option["example"]


def test_the_probe_can_fail() -> None:
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    info["config"] = {"mlops": {"options": {"lake_uri": {"type": "path"}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(info, schema)


def test_declared_options_are_the_ones_core_reads() -> None:
    assert set(_declared()) == set(config.OPTIONS)
    assert set(config.OPTIONS) >= {
        "lake_uri",
        "reports_uri",
        "model_name",
        "mlflow_conn_id",
        "feast_conn_id",
        "aws_conn_id",
        "feature_repo",
        "project_root",
        "data_root",
    }
    assert all(env == f"MLOPS_{opt.upper()}" for opt, env in config.OPTIONS.items())


def test_declared_defaults_are_the_code_defaults() -> None:
    declared = {name: option["default"] for name, option in _declared().items()}
    assert declared["mlflow_conn_id"] == config.mlflow_conn_id() == "mlflow_default"
    assert declared["feast_conn_id"] == config.feast_conn_id() == "feast_default"
    assert declared["aws_conn_id"] == config.aws_conn_id() == "aws_default"
    computed = {"lake_uri", "reports_uri", "model_name", "feature_repo", "project_root"}
    assert all(declared[name] == "" for name in computed | {"data_root"})
    assert config.lake_uri() == str(config.data_root())
    assert config.reports_uri() == f"{config.lake_uri()}/reports"
    assert config.model_name("fallback") == "fallback"
    assert config.project_root() is None or os.environ.get("MLOPS_PROJECT_ROOT") is None


@pytest.mark.parametrize("option", sorted(config.OPTIONS))
def test_airflow_configuration_reaches_core_and_mlops_env_wins(
    option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # unset: the declared default (Airflow's provider defaults), an empty one counting as unset
    assert config.setting(option) == (_declared()[option]["default"] or None)
    monkeypatch.setenv(f"AIRFLOW__MLOPS__{option.upper()}", f"/from/airflow/{option}")
    assert config.setting(option) == f"/from/airflow/{option}"
    monkeypatch.setenv(config.OPTIONS[option], f"/from/mlops/{option}")
    assert config.setting(option) == f"/from/mlops/{option}"
    monkeypatch.setenv(config.OPTIONS[option], "  ")  # blank: unset
    assert config.setting(option) == f"/from/airflow/{option}"


def test_the_helpers_read_the_section(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", str(tmp_path / "data"))
    assert config.data_root() == tmp_path / "data"
    assert config.lake_uri() == str(tmp_path / "data")
    monkeypatch.setenv("AIRFLOW__MLOPS__LAKE_URI", "s3://lake/prefix/")
    assert config.lake_uri() == "s3://lake/prefix"
    assert config.reports_uri() == "s3://lake/prefix/reports"
    monkeypatch.setenv("AIRFLOW__MLOPS__REPORTS_URI", "s3://reports")
    assert config.reports_uri() == "s3://reports"
    monkeypatch.setenv("AIRFLOW__MLOPS__MODEL_NAME", "demand")
    assert config.model_name("fallback") == "demand"
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_CONN_ID", "mlflow_prod")
    monkeypatch.setenv("AIRFLOW__MLOPS__FEAST_CONN_ID", "feast_prod")
    monkeypatch.setenv("AIRFLOW__MLOPS__AWS_CONN_ID", "aws_lake")
    assert (config.mlflow_conn_id(), config.feast_conn_id(), config.aws_conn_id()) == (
        "mlflow_prod",
        "feast_prod",
        "aws_lake",
    )
    monkeypatch.setenv("AIRFLOW__MLOPS__PROJECT_ROOT", str(tmp_path))
    assert config.project_root() == tmp_path
    assert config.default_feature_repo() == tmp_path / "include" / "feature_repo"
    monkeypatch.setenv("AIRFLOW__MLOPS__FEATURE_REPO", str(tmp_path / "repo"))
    assert config.default_feature_repo() == tmp_path / "repo"


def test_unknown_option_is_named() -> None:
    with pytest.raises(ValueError, match="unknown \\[mlops\\] option 'lake'"):
        config.setting("lake")


def test_airflow_cfg_and_provider_defaults_in_a_fresh_airflow(tmp_path: Path) -> None:
    """In a fresh interpreter with its own airflow.cfg: Airflow knows the declared section
    (its defaults come from this provider's metadata), and the file's values reach core."""
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "airflow.cfg").write_text(
        "[mlops]\nlake_uri = s3://cfg-lake/base\nmodel_name = from_cfg\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLOPS_", "AIRFLOW__MLOPS__", "AIRFLOW_CONFIG"))
    }
    env.update(AIRFLOW_HOME=str(home), AIRFLOW_CONFIG=str(home / "airflow.cfg"))
    code = (
        "import json\n"
        "from airflow.configuration import conf\n"
        "from mlops_provider.core import config\n"
        "print(json.dumps({\n"
        "    'declared': conf.get('mlops', 'mlflow_conn_id'),\n"
        "    'description': conf.configuration_description.get('mlops', {}).get('description'),\n"
        "    'lake_uri': config.lake_uri(),\n"
        "    'reports_uri': config.reports_uri(),\n"
        "    'model_name': config.model_name('fallback'),\n"
        "}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["declared"] == "mlflow_default"
    assert seen["description"] == get_provider_info()["config"]["mlops"]["description"]
    assert seen["lake_uri"] == "s3://cfg-lake/base"
    assert seen["reports_uri"] == "s3://cfg-lake/base/reports"
    assert seen["model_name"] == "from_cfg"
