"""The reference project shipped with the provider, and copying it into an Airflow project.

The wheel carries the reference DAGs (``dags/mlops_*.py``), the Great Expectations suites
(``include/expectations``) and the Feast repo template (``include/feature_repo``) as package
data under ``mlops_provider/reference_project/``; a source checkout has them at the top of the
repository. ``python -m mlops_provider init <dir>`` copies them into a user's Airflow project.

Only the standard library is imported here (this module runs in the CLI and may be imported by
anything that parses DAGs).
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

__all__ = [
    "PROJECT_FILES",
    "InitConflict",
    "InitResult",
    "init_project",
    "reference_files",
    "reference_project",
]

PACKAGE_DATA_DIR = "reference_project"
"""Directory of the package data inside ``mlops_provider`` (see pyproject's force-include)."""

PROJECT_FILES = ("dags", "include/expectations", "include/feature_repo")
"""What ``init`` copies, relative to the reference project and to the target project."""

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
    """Copy the reference DAGs and include/ files into the Airflow project ``target``.

    Nothing is written when a file exists with a different content and ``force`` is off, so a
    user's edits are never lost silently; identical files are left alone (idempotent).

    :param target: the Airflow project directory (created if missing); the DAGs go to its
        ``dags/``, the suites and the Feast repo to its ``include/``.
    :param force: overwrite files that differ.
    :param source: the reference project (default: :func:`reference_project`).
    :raises InitConflict: differing files exist and ``force`` is off.
    """
    root = Path(target).expanduser().resolve()
    source = source or reference_project()
    result = InitResult(target=root)
    plan = reference_files(source)
    conflicts = [
        rel
        for rel in plan
        if (root / rel).exists() and not filecmp.cmp(source / rel, root / rel, shallow=False)
    ]
    if conflicts and not force:
        raise InitConflict(root, conflicts)
    for rel in plan:
        destination = root / rel
        if destination.exists() and rel not in conflicts:
            result.unchanged.append(rel)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, destination)
        result.written.append(rel)
    return result
