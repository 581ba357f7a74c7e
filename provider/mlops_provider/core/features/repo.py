"""Apply a feature repo's definitions the way ``feast apply`` does (Feast's own
``parse_repo`` and ``apply_total_with_repo_instance``)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.core.feast_config import FeastRepoError
from mlops_provider.core.logs import captured_output
from mlops_provider.core.results import make_result

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents

log = logging.getLogger(__name__)

__all__ = ["apply_repo", "store_for"]

_DUMMY_ENTITY = "__dummy"
_REPO_LOCK = threading.Lock()


def store_for(store_or_repo: FeatureStore | str | os.PathLike[str]) -> FeatureStore:
    """The ``FeatureStore`` given, or one for the repo path given."""
    from feast import FeatureStore

    if isinstance(store_or_repo, FeatureStore):
        return store_or_repo
    from mlops_provider.core.feast_config import make_feature_store

    return make_feature_store(store_or_repo)


@contextlib.contextmanager
def _definitions_importable(repo_path: Path) -> Iterator[None]:
    """Import the repo's definition files fresh, as ``feast apply`` does from the repo dir.

    Feast names each definition module by its path relative to the working directory, so
    this changes into the repo (process-wide; serialized by a lock and always restored) and
    puts the repo on ``sys.path``. The modules are dropped from ``sys.modules`` before and
    after, so every apply re-executes the definitions and picks up the current environment
    (data root, endpoints), and nothing stale stays behind.
    """
    from feast.repo_operations import get_repo_files, py_path_to_module

    with _REPO_LOCK:
        old_cwd = os.getcwd()
        old_bytecode = sys.dont_write_bytecode
        os.chdir(repo_path)
        sys.path.insert(0, str(repo_path))
        sys.dont_write_bytecode = True  # the repo may be read-only; keep it clean anyway
        modules: list[str] = []
        try:
            modules = [py_path_to_module(path) for path in get_repo_files(repo_path)]
            for name in modules:
                sys.modules.pop(name, None)
            yield
        finally:
            for name in modules:
                sys.modules.pop(name, None)
            with contextlib.suppress(ValueError):
                sys.path.remove(str(repo_path))
            sys.dont_write_bytecode = old_bytecode
            os.chdir(old_cwd)


def _parse(repo_path: Path, project: str) -> RepoContents:
    """The repo's definitions, checked: feature views exist, one project named as configured."""
    from feast.project import Project
    from feast.repo_operations import parse_repo

    if not repo_path.is_dir():
        raise FeastRepoError(f"Feast feature repo {repo_path} does not exist")
    with _definitions_importable(repo_path):
        try:
            repo = parse_repo(repo_path)
        except Exception as err:
            raise FeastRepoError(
                f"feature definitions in {repo_path} failed to import: {type(err).__name__}: {err}"
            ) from err
    if not repo.feature_views and not repo.on_demand_feature_views:
        raise FeastRepoError(
            f"Feast feature repo {repo_path} defines no feature views (no *.py definitions "
            "found); refusing to apply, as that would delete everything registered in project "
            f"{project!r}"
        )
    names = [p.name for p in repo.projects]
    if len(names) > 1:
        raise FeastRepoError(f"{repo_path} defines several projects {names}; Feast supports one")
    if names and names[0] != project:
        raise FeastRepoError(
            f"{repo_path} defines Project {names[0]!r} but feature_store.yaml says {project!r}"
        )
    if not names:
        repo.projects.append(Project(name=project, description=""))
    return repo


def _transition(value: Any) -> str:
    name = getattr(value, "name", str(value))
    return str(name).lower()


def _kind(value: Any) -> str:
    return str(getattr(value, "value", value))


def _changes(store: FeatureStore, repo: RepoContents) -> list[str]:
    """What applying ``repo`` changes, e.g. ``"create feature view customer_activity"``."""
    registry_diff, infra_diff, _ = store.plan(repo)
    changes = [
        f"{_transition(d.transition_type)} {_kind(d.feast_object_type)} {d.name}"
        for d in registry_diff.feast_object_diffs
        if _transition(d.transition_type) != "unchanged" and d.name != _DUMMY_ENTITY
    ]
    changes += [
        f"{_transition(d.transition_type)} {_kind(d.infra_object_type)} {d.name}"
        for d in infra_diff.infra_object_diffs
        if _transition(d.transition_type) != "unchanged"
    ]
    return changes


def apply_repo(store_or_repo: FeatureStore | str | os.PathLike[str]) -> dict[str, Any]:
    """Apply a feature repo's definitions to its registry and online store (``feast apply``).

    Definitions are parsed with Feast's ``parse_repo`` from every ``*.py`` file of the repo
    (honouring ``.feastignore``) and applied with ``apply_total_with_repo_instance``: objects
    missing from the repo are deleted, as with ``feast apply``. Idempotent: applying the same
    definitions twice reports ``changed: False``.

    :param store_or_repo: a ``FeatureStore`` (its ``repo_path`` holds the definitions) or a
        repo path.
    :returns: a result (docs/results.md) with status ``applied``, then ``project``,
        ``repo_path``, ``entities``, ``data_sources``, ``feature_views``,
        ``on_demand_feature_views``, ``feature_services``, ``changed``, ``changes``.
    :raises FeastRepoError: no definitions, definitions that fail to import, a project name
        that does not match ``feature_store.yaml``.
    """
    from feast.repo_operations import apply_total_with_repo_instance

    store = store_for(store_or_repo)
    repo_path = Path(store.repo_path).resolve()
    project = store.project
    started = time.perf_counter()
    repo = _parse(repo_path, project)
    changes = _changes(store, repo)
    with captured_output(log, "feast apply"):  # Feast prints every diff, protos included
        apply_total_with_repo_instance(
            store, project, store.registry, repo, skip_source_validation=False
        )
    log.info(
        "Applied Feast repo %s (project %s) in %.1f s: %s",
        repo_path,
        project,
        time.perf_counter() - started,
        "; ".join(changes) if changes else "no changes",
    )
    return make_result(
        status="applied",
        passed=True,
        project=project,
        repo_path=str(repo_path),
        entities=sorted(e.name for e in repo.entities if e.name != _DUMMY_ENTITY),
        data_sources=sorted(s.name for s in repo.data_sources),
        feature_views=sorted(v.name for v in repo.feature_views),
        on_demand_feature_views=sorted(v.name for v in repo.on_demand_feature_views),
        feature_services=sorted(s.name for s in repo.feature_services),
        changed=bool(changes),
        changes=changes,
    )
