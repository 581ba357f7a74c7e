"""The provider registers with Airflow and every module it lists exists."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_provider.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]


def test_provider_info_lists_importable_modules_and_classes() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-mlops"
    for kind in ("hooks", "operators", "sensors", "triggers"):
        modules = [m for entry in info[kind] for m in entry["python-modules"]]
        assert modules, kind
        for module in modules:
            importlib.import_module(module)
    for dotted in info["extra-links"] + [c["hook-class-name"] for c in info["connection-types"]]:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted
    conn_types = {c["connection-type"] for c in info["connection-types"]}
    assert conn_types == {"mlflow", "feast", "mlops_serving"}


def test_provider_info_lists_every_public_module() -> None:
    """A module added under hooks/, operators/, sensors/ or triggers/ is registered too."""
    info = get_provider_info()
    package = ROOT / "provider" / "mlops_provider"
    for kind in ("hooks", "operators", "sensors", "triggers"):
        listed = {m for entry in info[kind] for m in entry["python-modules"]}
        on_disk = {
            f"mlops_provider.{kind}.{path.stem}"
            for path in (package / kind).glob("*.py")
            if not path.stem.startswith("_")
        }
        assert listed == on_disk, kind


def test_entry_point_points_at_provider_info() -> None:
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="apache_airflow_provider") if "mlops" in ep.value]
    assert len(eps) == 1
    assert eps[0].load()() == get_provider_info()


def _airflow(*args: str) -> str:
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), *args, "--output", "json"],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return out.stdout


@pytest.mark.integration
def test_airflow_cli_lists_provider_and_connection_types() -> None:
    providers = json.loads(_airflow("providers", "list"))
    assert "airflow-provider-mlops" in {p["package_name"] for p in providers}
    hooks = json.loads(_airflow("providers", "hooks"))
    conn_types = {h["connection_type"]: h["class"] for h in hooks}
    assert conn_types["mlflow"] == "mlops_provider.hooks.mlflow.MlflowHook"
    assert conn_types["feast"] == "mlops_provider.hooks.feast.FeastHook"


def test_connection_fields_follow_airflows_form_schema() -> None:
    """The connection forms: every extra the hooks read has a field (the README names the
    ``token`` extra), the token is a password field (masked), the Feast YAML override a
    multi-line one; each field validates against Airflow's provider.yaml schema."""
    import json
    from pathlib import Path

    import airflow
    import jsonschema

    from mlops_provider.get_provider_info import get_provider_info
    from mlops_provider.hooks.feast import EXTRA_FIELDS as FEAST_EXTRAS
    from mlops_provider.hooks.mlflow import EXTRA_FIELDS as MLFLOW_EXTRAS

    schema = json.loads((Path(airflow.__file__).parent / "provider.yaml.schema.json").read_text())
    field_schema = schema["properties"]["connection-types"]["items"]["properties"]["conn-fields"]
    types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    for conn_type, extras in (("mlflow", MLFLOW_EXTRAS), ("feast", FEAST_EXTRAS)):
        fields = types[conn_type]["conn-fields"]
        jsonschema.validate(fields, field_schema)
        assert set(fields) == set(extras), conn_type
    assert types["mlflow"]["conn-fields"]["token"]["schema"]["format"] == "password"
    assert types["mlflow"]["conn-fields"]["insecure_tls"]["schema"]["type"][0] == "boolean"
    yaml_field = types["feast"]["conn-fields"]["feature_store_yaml"]["schema"]
    assert yaml_field["format"] == "multiline"

    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    token = widgets["extra__mlflow__token"]
    assert token.is_sensitive is True
