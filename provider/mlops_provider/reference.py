"""The reference project shipped with the provider, and copying it into an Airflow project.

The wheel carries the reference DAGs (``dags/mlops_*.py``), the Great Expectations suites
(``include/expectations``), the Feast repo template (``include/feature_repo``), the CI templates
(``include/ci``) and the sample data of the CI checks (``include/sample_data``) as package data
under ``mlops_provider/reference_project/``; a source checkout has them at the top of the
repository. ``python -m mlops_provider init <dir>`` copies them into a user's Airflow project,
each file at the same path except those of :data:`PROJECT_PATHS` (the CI templates go where a
CI looks for them).

Only the standard library is imported here (this module runs in the CLI and may be imported by
anything that parses DAGs).
"""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

__all__ = [
    "EXECUTABLES",
    "PROJECT_FILES",
    "PROJECT_PATHS",
    "InitConflict",
    "InitResult",
    "init_project",
    "project_path",
    "reference_files",
    "reference_project",
]

PACKAGE_DATA_DIR = "reference_project"
"""Directory of the package data inside ``mlops_provider`` (see pyproject's force-include)."""

PROJECT_FILES = (
    "dags",
    "include/expectations",
    "include/feature_repo",
    "include/ci",
    "include/sample_data",
)
"""What ``init`` copies, relative to the reference project."""

PROJECT_PATHS = {
    "include/ci/github-workflow.yml": ".github/workflows/mlops-ci.yml",
    "include/ci/mlops-ci.sh": "ci/mlops-ci.sh",
    "include/ci/test_mlops_ci.py": "tests/test_mlops_ci.py",
}
"""Reference files written elsewhere in the target project (reference path: project path);
every other file keeps its path."""

EXECUTABLES = frozenset({"ci/mlops-ci.sh"})
"""Project paths written executable (mode 0755)."""

_SKIP_DIRS = {"__pycache__", "data"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".db"}


def reference_project() -> Path:
    """The directory holding the reference ``dags/`` and ``include/``.

    The installed package data (``mlops_provider/reference_project``), else, in a source
    checkout, the repository root (two levels above the package).

    :raises FileNotFoundError: neither exists (a broken installation).
    """
    packaged = Path(str(files("mlops_provider") / PACKAGE_DATA_DIR))
    if (packaged / "dags" / "mlops_common.py").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "dags" / "mlops_common.py").is_file():
        return checkout
    raise FileNotFoundError(
        f"the reference project is missing: neither {packaged} (package data of the wheel) "
        f"nor {checkout} (a source checkout) holds dags/mlops_common.py"
    )


def _wanted(relative: Path) -> bool:
    if any(part in _SKIP_DIRS or part.startswith(".") for part in relative.parts[:-1]):
        return False
    if relative.name.startswith(".") or relative.suffix in _SKIP_SUFFIXES:
        return False
    # dags/ of the reference project holds exactly the reference DAGs and their settings
    return not (relative.parts[0] == "dags" and not relative.name.startswith("mlops_"))


def project_path(reference: Path) -> Path:
    """Where ``init`` writes a reference file, relative to the target project.

    :param reference: a path of :func:`reference_files` (relative to the reference project).
    :return: its :data:`PROJECT_PATHS` destination, else the same path.
    """
    return Path(PROJECT_PATHS.get(reference.as_posix(), reference.as_posix()))


def _up_to_date(source: Path, destination: Path, rel: Path) -> bool:
    """``destination`` has ``source``'s content (and the executable bit of :data:`EXECUTABLES`)."""
    if not filecmp.cmp(source, destination, shallow=False):
        return False
    return rel.as_posix() not in EXECUTABLES or os.access(destination, os.X_OK)


def reference_files(root: Path | None = None) -> list[Path]:
    """The files ``init`` copies, relative to ``root`` (default: :func:`reference_project`)."""
    root = root or reference_project()
    out: list[Path] = []
    for entry in PROJECT_FILES:
        base = root / entry
        if not base.is_dir():
            raise FileNotFoundError(f"the reference project lacks {entry}/ (looked in {base})")
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and _wanted(relative):
                out.append(relative)
    return out


class InitConflict(Exception):
    """Files of the target project differ from the reference ones and ``force`` is off.

    :param conflicts: the differing files, relative to the target project.
    """

    def __init__(self, target: Path, conflicts: list[Path]) -> None:
        self.target = target
        self.conflicts = conflicts
        names = "\n".join(f"  {path}" for path in conflicts)
        super().__init__(
            f"{len(conflicts)} file(s) in {target} differ from the provider's reference "
            f"project; nothing was written. Rerun with --force to overwrite them:\n{names}"
        )


@dataclass
class InitResult:
    """What :func:`init_project` did, each path relative to the target project.

    :param written: files created or overwritten.
    :param unchanged: files already identical to the reference.
    """

    target: Path
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


def init_project(
    target: str | Path, *, force: bool = False, source: Path | None = None
) -> InitResult:
    """Copy the reference DAGs, include/ files and CI templates into the project ``target``.

    Each reference file goes to its :func:`project_path` (the GitHub Actions workflow to
    ``.github/workflows/mlops-ci.yml``, the CI script to ``ci/mlops-ci.sh``, made executable,
    the checks to ``tests/test_mlops_ci.py``). Nothing is written when a file exists with a
    different content and ``force`` is off, so a user's edits are never lost silently;
    identical files are left alone (idempotent).

    :param target: the Airflow project directory (created if missing); the DAGs go to its
        ``dags/``, the suites, the Feast repo and the sample data to its ``include/``.
    :param force: overwrite files that differ.
    :param source: the reference project (default: :func:`reference_project`).
    :return: the files written and those already up to date, relative to ``target``.
    :raises InitConflict: differing files exist and ``force`` is off.
    """
    root = Path(target).expanduser().resolve()
    source = source or reference_project()
    result = InitResult(target=root)
    plan = [(rel, project_path(rel)) for rel in reference_files(source)]
    conflicts = [
        dest
        for rel, dest in plan
        if (root / dest).exists() and not filecmp.cmp(source / rel, root / dest, shallow=False)
    ]
    if conflicts and not force:
        raise InitConflict(root, conflicts)
    for rel, dest in plan:
        destination = root / dest
        if destination.exists() and _up_to_date(source / rel, destination, dest):
            result.unchanged.append(dest)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, destination)
        if dest.as_posix() in EXECUTABLES:
            destination.chmod(0o755)
        result.written.append(dest)
    return result
