"""Command line of the provider: ``python -m mlops_provider <command> ...``.

Commands:

- ``init <airflow-project-dir> [--force]``: copy the reference DAGs into ``<dir>/dags/``, the
  GX suites, the Feast repo template and the CI sample data into ``<dir>/include/`` and the CI
  templates into ``<dir>/ci/``, ``<dir>/.github/workflows/`` and ``<dir>/tests/``, then print the
  settings the DAGs need and how to run the CI checks.
- ``trace <predictions-uri> --row customer_id=123 --day 2026-01-10`` / ``trace --model churn/3``
  / ``trace --champion-at 2026-01-10T00:00 --model-name churn``: where a prediction or a model
  came from (docs/lineage.md); ``--json`` for the JSON document.

Each command is a function taking the parsed arguments and returning the exit status; a new
command adds a sub-parser in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

NEXT_STEPS = """\
Next steps:
  1. Point Airflow at the project (or copy its dags/ into your DAGs folder):
       AIRFLOW__CORE__DAGS_FOLDER={root}/dags
       MLOPS_PROJECT_ROOT={root}
     The DAGs find {root}/include by themselves; MLOPS_PROJECT_ROOT lets the provider's
     defaults (FeastHook() without a connection, relative suite paths) find it too.
  2. Where the data lake is (default: $AIRFLOW_HOME/mlops/data, a local directory):
       MLOPS_LAKE_URI=s3://<bucket>/<prefix>   (needs the aws_default connection)
  3. Connections (all optional; without them everything runs embedded on one machine):
       mlflow_default  MLflow tracking server and model registry (default: SQLite store
                       under $AIRFLOW_HOME/mlops/mlflow)
       feast_default   Feast repo path or feature_store.yaml overrides (default:
                       {root}/include/feature_repo)
       aws_default     S3 access for an s3:// data lake
  4. Run `airflow db migrate`, then start Airflow (or `airflow dags test mlops_feature_pipeline
     <date>` once a day of raw data is in <lake>/raw/dt=<date>/).
  5. CI (see the provider's docs/ci.md): ci/mlops-ci.sh runs ruff and the checks of
     tests/test_mlops_ci.py (DAG integrity, data, a small training run, a sample DAG run),
     one stage at a time; locally:
       cd {root} && ci/mlops-ci.sh          all stages, after `uv sync --frozen`
       PYTHON=$(command -v python) ci/mlops-ci.sh lint integrity   some, with that Python
     .github/workflows/mlops-ci.yml runs the same stages on GitHub Actions for every push and
     pull request and uploads the HTML reports; GitLab CI or Jenkins call the script. The
     install needs a pyproject.toml depending on airflow-provider-mlops (with pytest and ruff
     in its dev group) and its uv.lock.
"""


def _init(args: argparse.Namespace) -> int:
    from mlops_provider.reference import InitConflict, init_project, reference_project

    try:
        result = init_project(args.project, force=args.force)
    except InitConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Reference project: {reference_project()}")
    print(f"Airflow project:   {result.target}")
    for rel in result.written:
        print(f"  wrote      {rel}")
    for rel in result.unchanged:
        print(f"  unchanged  {rel}")
    print(f"{len(result.written)} file(s) written, {len(result.unchanged)} already up to date.\n")
    print(NEXT_STEPS.format(root=result.target))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    import contextlib
    import json
    import os

    from mlops_provider.core.errors import InputError
    from mlops_provider.core.governance import reproduce
    from mlops_provider.hooks.mlflow import MlflowHook

    # what the libraries log while it runs goes to stderr (Airflow's logging writes to the
    # stdout it found at start-up, so the descriptor is redirected): stdout holds the report
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            store = None
            if args.feast_conn_id:
                from mlops_provider.hooks.feast import FeastHook

                store = FeastHook(args.feast_conn_id).store
            hook = MlflowHook(args.mlflow_conn_id, tracking_uri=args.tracking_uri)
            report = reproduce(
                hook.target,
                args.model,
                conn_id=args.aws_conn_id,
                rebuild_training_set=not args.no_rebuild,
                store=store,
                tolerance=args.tolerance,
            )
    except InputError as exc:  # a malformed or unknown model, a run not trained here
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report.to_text())
    return 0 if report.reproduced else 1


def _trace(args: argparse.Namespace) -> int:
    """``trace``: print the lineage chain (readable, or JSON with ``--json``); what Airflow and
    MLflow log while it is read goes to stderr, so stdout holds the trace alone."""
    import contextlib
    import logging

    from mlops_provider.core.errors import InputError
    from mlops_provider.core.governance.trace import trace
    from mlops_provider.hooks.mlflow import MlflowHook

    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            found = trace(
                MlflowHook(args.mlflow_conn_id).client,
                predictions_uri=args.predictions_uri,
                row=args.row or None,
                day=args.day,
                model=args.model if args.champion_at is None else None,
                champion_at=args.champion_at,
                model_name=args.model_name or (args.model if args.champion_at else None),
                alias=args.alias,
                verify=not args.no_verify,
                conn_id=args.aws_conn_id,
            )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(found.to_json() if args.json else found.to_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m mlops_provider`` parser, one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="python -m mlops_provider",
        description="Tools of the Airflow MLOps provider.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser(
        "init",
        help="copy the reference DAGs, GX suites, Feast repo and CI templates into an "
        "Airflow project",
        description="Copy the reference DAGs into <project>/dags/, the GX suites, the Feast "
        "repo template and the CI sample data into <project>/include/, and the CI templates: "
        "ci/mlops-ci.sh, .github/workflows/mlops-ci.yml and tests/test_mlops_ci.py. Existing "
        "files that differ are not overwritten unless --force is given; identical files are "
        "left alone.",
    )
    init.add_argument("project", help="the Airflow project directory (created if missing)")
    init.add_argument("--force", action="store_true", help="overwrite files that differ")
    init.set_defaults(handler=_init)
    reproduce = commands.add_parser(
        "reproduce",
        help="rebuild and refit a model from its training records and compare",
        description="Read the training run's lineage, check that every recorded input still "
        "has its recorded digest, rebuild the training set through Feast, refit with the "
        "recorded configuration and seed, and compare metrics and holdout predictions. "
        "Exit status 0: reproduced; 1: inputs changed or mismatch; 2: bad model reference.",
    )
    reproduce.add_argument(
        "model", help="<name>/<version>, <name>@<alias>, a model URI or a training run id"
    )
    reproduce.add_argument("--json", action="store_true", help="print the report as JSON")
    reproduce.add_argument(
        "--no-rebuild", action="store_true", help="do not rebuild the training set through Feast"
    )
    reproduce.add_argument("--mlflow-conn-id", default="mlflow_default")
    reproduce.add_argument("--tracking-uri", default=None, help="overrides the connection")
    reproduce.add_argument("--feast-conn-id", default=None, help="default: the project's repo")
    reproduce.add_argument("--aws-conn-id", default=None, help="for an s3:// data lake")
    reproduce.add_argument("--tolerance", type=float, default=1e-9)
    reproduce.set_defaults(handler=_reproduce)

    trace = commands.add_parser(
        "trace",
        help="where a prediction or a model came from: model version, alias, training run, "
        "datasets with digests, windows, features, validations, trigger",
        description="Trace a prediction row (PREDICTIONS_URI --row KEY [--day D]), a model "
        "version (--model NAME/VERSION) or the alias holder at a time (--champion-at TIME "
        "--model-name NAME) back to the data and the trigger of its training "
        "(docs/lineage.md). Every link says where it was read from; links that were never "
        "recorded are reported as missing.",
    )
    trace.add_argument(
        "predictions_uri", nargs="?", help="predictions dataset or partition (dt=YYYY-MM-DD)"
    )
    trace.add_argument(
        "--row",
        action="append",
        help="the row key: customer_id=123, or dt=2026-01-10/customer_id=123 (repeatable)",
    )
    trace.add_argument("--day", help="the predictions partition day (YYYY-MM-DD)")
    trace.add_argument("--model", help="a model version: NAME/VERSION (e.g. churn/3)")
    trace.add_argument("--champion-at", help="trace the alias holder at this ISO time")
    trace.add_argument("--model-name", help="the registered model of --champion-at")
    trace.add_argument("--alias", default="champion", help="the alias of --champion-at")
    trace.add_argument("--json", action="store_true", help="print the JSON document")
    trace.add_argument(
        "--no-verify", action="store_true", help="do not re-read datasets to compare digests"
    )
    trace.add_argument("--mlflow-conn-id", default="mlflow_default", help="MLflow connection")
    trace.add_argument("--aws-conn-id", default=None, help="connection of s3:// datasets")
    trace.set_defaults(handler=_trace)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the command; returns its status."""
    import os

    args = build_parser().parse_args(argv)
    # the commands read small artifacts; MLflow's per-download progress bars would bury the output
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
