"""``python -m mlops_provider.serving``: serve a registered model over HTTP.

The admin token comes from ``MLOPS_SERVING_ADMIN_TOKEN`` only (never a flag: flags show in
process lists). Every other ``MLOPS_SERVING_*`` variable is read too; flags override them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from mlops_provider.serving.settings import ServingSettings


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    p = argparse.ArgumentParser(
        prog="python -m mlops_provider.serving",
        description="Serve a registered MLflow model with Feast online features over HTTP.",
    )
    p.add_argument(
        "--model", dest="model_name", help="registered model name (MLOPS_SERVING_MODEL_NAME)"
    )
    p.add_argument("--alias", help="alias to serve and poll (default champion)")
    p.add_argument("--model-uri", help="a concrete models:/<name>/<version> (pins; no alias poll)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--feature-repo", help="Feast feature repo for 'entities' requests")
    p.add_argument("--prediction-log", dest="prediction_log_uri", help="prediction log URI")
    p.add_argument("--log-sample-rate", type=float, help="share of requests logged (0..1)")
    p.add_argument(
        "--poll-seconds", dest="alias_poll_seconds", type=float, help="alias poll interval (0: off)"
    )
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default MLFLOW_TRACKING_URI / connection)"
    )
    p.add_argument("--max-rows", type=int, help="most rows per request (default 1000)")
    p.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve until interrupted; the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = {k: v for k, v in vars(args).items() if k not in ("host", "port", "log_level")}
    try:
        settings = ServingSettings.from_env(**options)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from mlops_provider.serving.server import run

    run(settings, args.host, args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
