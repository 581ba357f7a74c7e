"""``python -m mlops_provider init``: copies the reference project, never overwrites a user's
changes without --force, and is idempotent."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from mlops_provider.reference import project_path, reference_files, reference_project

ROOT = Path(__file__).resolve().parents[2]


def _init(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_provider", "init", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_source_checkout_is_the_reference_project() -> None:
    assert reference_project() == ROOT
    files = {rel.as_posix() for rel in reference_files()}
    assert {
        "dags/mlops_common.py",
        "dags/mlops_feature_pipeline.py",
        "dags/mlops_training_pipeline.py",
        "dags/mlops_batch_scoring.py",
        "dags/mlops_monitoring.py",
        "include/expectations/churn_raw.json",
        "include/feature_repo/feature_store.yaml",
        "include/feature_repo/churn_features.py",
        "include/ci/github-workflow.yml",
        "include/ci/mlops-ci.sh",
        "include/ci/test_mlops_ci.py",
        "include/sample_data/README.md",
    } <= files
    assert not [f for f in files if "__pycache__" in f or f.startswith("include/feature_repo/data")]


def test_init_copies_then_is_idempotent_and_refuses_to_overwrite(tmp_path: Path) -> None:
    project = tmp_path / "project"
    expected = reference_files()

    first = _init(str(project))
    assert first.returncode == 0, first.stderr
    for rel in expected:
        assert (project / project_path(rel)).read_bytes() == (ROOT / rel).read_bytes()
        assert f"wrote      {project_path(rel)}" in first.stdout
    assert f"MLOPS_PROJECT_ROOT={project}" in first.stdout
    assert "MLOPS_LAKE_URI" in first.stdout
    for conn in ("mlflow_default", "feast_default", "aws_default"):
        assert conn in first.stdout

    again = _init(str(project))
    assert again.returncode == 0, again.stderr
    assert f"0 file(s) written, {len(expected)} already up to date" in again.stdout

    # a user's edit is kept and named; nothing else is written either (all or nothing)
    edited = project / "dags" / "mlops_common.py"
    edited.write_text(edited.read_text() + "\n# my change\n")
    deleted = project / "include" / "expectations" / "churn_raw.json"
    deleted.unlink()
    refused = _init(str(project))
    assert refused.returncode == 1
    assert "dags/mlops_common.py" in refused.stderr and "--force" in refused.stderr
    assert edited.read_text().endswith("# my change\n")
    assert not deleted.exists()

    forced = _init(str(project), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "wrote      dags/mlops_common.py" in forced.stdout
    assert "wrote      include/expectations/churn_raw.json" in forced.stdout
    assert edited.read_bytes() == (ROOT / "dags" / "mlops_common.py").read_bytes()
    assert (
        deleted.read_bytes() == (ROOT / "include" / "expectations" / "churn_raw.json").read_bytes()
    )


def test_ci_templates_go_where_ci_finds_them() -> None:
    assert project_path(Path("include/ci/github-workflow.yml")) == Path(
        ".github/workflows/mlops-ci.yml"
    )
    assert project_path(Path("include/ci/mlops-ci.sh")) == Path("ci/mlops-ci.sh")
    assert project_path(Path("include/ci/test_mlops_ci.py")) == Path("tests/test_mlops_ci.py")
    for same in ("dags/mlops_common.py", "include/sample_data/README.md"):
        assert project_path(Path(same)) == Path(same)


def test_init_writes_the_ci_templates_and_keeps_an_edited_workflow(tmp_path: Path) -> None:
    project = tmp_path / "project"
    workflow = project / ".github" / "workflows" / "mlops-ci.yml"
    script = project / "ci" / "mlops-ci.sh"

    first = _init(str(project))
    assert first.returncode == 0, first.stderr
    assert workflow.read_bytes() == (ROOT / "include/ci/github-workflow.yml").read_bytes()
    assert script.read_bytes() == (ROOT / "include/ci/mlops-ci.sh").read_bytes()
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    tests = project / "tests" / "test_mlops_ci.py"
    assert tests.read_bytes() == (ROOT / "include/ci/test_mlops_ci.py").read_bytes()
    assert (project / "include" / "sample_data" / "README.md").is_file()
    assert not (project / "include" / "ci").exists()  # the templates live at their CI paths
    for path in (".github/workflows/mlops-ci.yml", "ci/mlops-ci.sh", "tests/test_mlops_ci.py"):
        assert f"wrote      {path}" in first.stdout
    for words in ("ci/mlops-ci.sh", ".github/workflows/mlops-ci.yml", "docs/ci.md"):
        assert words in first.stdout  # the CI step of the next steps

    # identical content but no longer executable: rewritten (no conflict), mode restored
    script.chmod(0o644)
    again = _init(str(project))
    assert again.returncode == 0, again.stderr
    assert "wrote      ci/mlops-ci.sh" in again.stdout and "1 file(s) written" in again.stdout
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert "unchanged  .github/workflows/mlops-ci.yml" in again.stdout

    workflow.write_text(workflow.read_text().replace("ubuntu-latest", "self-hosted"))
    refused = _init(str(project))
    assert refused.returncode == 1
    assert ".github/workflows/mlops-ci.yml" in refused.stderr and "--force" in refused.stderr
    assert "self-hosted" in workflow.read_text()

    forced = _init(str(project), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "wrote      .github/workflows/mlops-ci.yml" in forced.stdout
    assert workflow.read_bytes() == (ROOT / "include/ci/github-workflow.yml").read_bytes()


def test_unknown_command_and_missing_argument_are_usage_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlops_provider"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "init" in done.stderr and "trace" in done.stderr
    assert "reproduce" in done.stderr
    assert _init().returncode == 2
