"""The subprocess of :meth:`MlopsEnvironment.run_dag`: run one DAG of a DAGs folder with
``dag.test()`` and write what it left as JSON.

``python -m mlops_provider.testing._runner REQUEST.json``, in an environment's
:meth:`~mlops_provider.testing.environment.MlopsEnvironment.environ`. The request names the DAG,
the DAGs folder, the logical date (ISO, or null: now), the ``conf``, the tasks to restrict the
run to (or null) and the result file. The result is the run's id, state, task states and
``return_value`` XComs, or ``{"error": "dag_not_found" | "unknown_tasks", ...}`` (exit code 2).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from mlops_provider.testing.environment import return_values, sync_dag, task_states

#: The exit code of a request naming a DAG or task that does not exist.
EXIT_NOT_FOUND = 2


def load_dag_bag(folder: Path) -> Any:
    """The DAGs of ``folder``, parsed as the DAG processor parses the ``dags-folder`` bundle
    (the folder importable, so DAG files import their shared modules)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


def _select(request: dict[str, Any], result: Path) -> Any:
    """The DAG to run (restricted to the requested tasks), or None after writing the error."""
    folder = Path(request["dags_folder"])
    bag = load_dag_bag(folder)
    dag = bag.dags.get(request["dag_id"])
    if dag is None:
        errors = {str(path): str(error) for path, error in bag.import_errors.items()}
        _write(result, {"error": "dag_not_found", "dag_ids": bag.dag_ids, "import_errors": errors})
        return None
    sync_dag(dag)
    tasks = request.get("tasks")
    if tasks is None:
        return dag
    missing = sorted(set(tasks) - set(dag.task_ids))
    if missing or not tasks:
        _write(result, {"error": "unknown_tasks", "missing": missing, "tasks": dag.task_ids})
        return None
    return dag.partial_subset(task_ids=list(tasks), include_upstream=False)


def run(request: dict[str, Any]) -> int:
    """Run the requested DAG and write its result file; the process's exit code."""
    result = Path(request["result"])
    dag = _select(request, result)
    if dag is None:
        return EXIT_NOT_FOUND
    for task in dag.tasks:
        task.retries = 0  # a failure shows at once, not after the retry delays
    kwargs: dict[str, Any] = {"run_conf": request.get("conf") or {}}
    if request.get("logical_date"):
        kwargs["logical_date"] = datetime.fromisoformat(request["logical_date"])
    dag_run = dag.test(**kwargs)
    logical_date = dag_run.logical_date
    _write(
        result,
        {
            "dag_id": dag_run.dag_id,
            "run_id": dag_run.run_id,
            "logical_date": logical_date.isoformat() if logical_date is not None else None,
            "state": str(dag_run.state),
            "task_states": task_states(dag_run),
            "xcoms": return_values(dag_run),
        },
    )
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` is ``[REQUEST.json]``."""
    if len(argv) != 1:
        print("usage: python -m mlops_provider.testing._runner REQUEST.json", file=sys.stderr)
        return 1
    return run(json.loads(Path(argv[0]).read_text()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
