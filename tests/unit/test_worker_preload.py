"""The Celery worker preload (mlops_provider.worker): what it imports, and that only a worker
pays for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops_provider import worker

ROOT = Path(__file__).resolve().parents[2]


def test_module_list_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.delenv(worker.PRELOAD_ENV, raising=False)
    assert worker.preload_modules() == list(worker.PRELOAD_MODULES)
    monkeypatch.setenv(worker.PRELOAD_ENV, " json, csv ,")
    assert worker.preload_modules() == ["json", "csv"]
    for off in ("none", "", "false"):
        monkeypatch.setenv(worker.PRELOAD_ENV, off)
        assert worker.preload_modules() == []


def test_preload_imports_and_skips_what_is_not_installed(caplog: Any) -> None:
    timings = worker.preload(["colorsys", "mlops_no_such_module_xyz"])
    assert list(timings) == ["colorsys"] and timings["colorsys"] >= 0
    assert "colorsys" in sys.modules
    assert "mlops_no_such_module_xyz is not installed" in caplog.text


def test_a_broken_module_fails_the_worker_start(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "mlops_broken_mod.py").write_text("raise RuntimeError('broken install')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="broken install"):
        worker.preload(["mlops_broken_mod"])


def test_every_listed_module_exists() -> None:
    import importlib.util

    missing = [m for m in worker.PRELOAD_MODULES if importlib.util.find_spec(m) is None]
    assert not missing


def _fresh(code: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_celery_config_is_airflows_plus_the_hook_and_stays_light() -> None:
    """The scheduler reads the same configuration: reading it must import no heavy library;
    the worker_init signal (sent only by a starting worker) runs the preload."""
    result = _fresh(
        "import json, sys\n"
        "from mlops_provider import worker\n"
        "config = worker.CELERY_CONFIG\n"
        "from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG\n"
        "from celery import signals\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'mlflow', 'feast', 'great_expectations', 'sklearn', 'pandas'})\n"
        "same = config == DEFAULT_CELERY_CONFIG\n"
        "import os; os.environ['MLOPS_WORKER_PRELOAD'] = 'sklearn.linear_model'\n"
        "signals.worker_init.send(sender=None)\n"
        "print(json.dumps({'heavy': heavy, 'same': same, 'after': 'sklearn' in sys.modules}))\n"
    )
    assert result == {"heavy": [], "same": True, "after": True}


def test_skops_is_imported_without_airflow_deprecation_noise() -> None:
    """skops' import looks every scipy ufunc up in every loaded module; in an Airflow process that
    logged ~1,160 DeprecatedImportWarning lines in each task that loaded a model."""
    probe = (
        "import json, warnings\n"
        "import airflow.sdk, airflow.utils.timezone, airflow.utils.trigger_rule\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    {how}\n"
        "noise = [w for w in seen if str(w.message).startswith('The `airflow.')]\n"
        "print(json.dumps({{'noise': len(noise)}}))\n"
    )
    raw = _fresh(probe.format(how="import skops.io"))
    quiet = _fresh(
        probe.format(how="from mlops_provider.core.models import import_skops; import_skops()")
    )
    assert raw["noise"] > 100, "the probe no longer reproduces the noise"
    assert quiet["noise"] == 0
