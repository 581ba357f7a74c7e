"""Bad inputs of BatchScoringOperator."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.integration.bad_input import UNDER_TEST, BadInput, World

UNSEEN_INPUT = "score-unseen/dt=2026-01-09/rows.parquet"
UNREACHABLE_CONN = "scoring_s3_unreachable"


def _score(world: World, **kwargs: Any) -> Any:
    from mlops_provider.operators.scoring import BatchScoringOperator

    settings = {
        "model_uri": f"models:/{world.model}@{world.alias}",
        "input_data": world.score_uri,
        "output_uri": world.path("predictions/churn"),
        **kwargs,
    }
    return BatchScoringOperator(task_id=UNDER_TEST, retries=0, **settings)


def _unreachable_endpoint(world: World) -> None:
    """An aws connection with credentials whose endpoint nothing listens on."""
    from tests.conftest import free_port

    extra = {"endpoint_url": f"http://127.0.0.1:{free_port()}", "region_name": "us-east-1"}
    conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    os.environ[f"AIRFLOW_CONN_{UNREACHABLE_CONN.upper()}"] = json.dumps(conn)


def _unseen_categories(world: World) -> None:
    """A copy of the scoring input whose every ``plan`` is one the model never saw."""
    from mlops_provider.core import io

    frame = io.read_pandas(world.score_uri)
    frame["plan"] = "platinum"
    io.write_table(frame, world.path(UNSEEN_INPUT))


CASES = [
    BadInput(
        id="scoring-s3-endpoint-unreachable",
        setup=_unreachable_endpoint,
        build=lambda w: _score(
            w, output_uri="s3://lake-out/predictions", aws_conn_id=UNREACHABLE_CONN
        ),
        expect=["s3://lake-out/predictions", UNREACHABLE_CONN, "endpoint unreachable"],
        timeout=60,
    ),
    BadInput(
        id="scoring-s3-no-credentials",
        build=lambda w: _score(w, output_uri="s3://lake-out/predictions", aws_conn_id=None),
        expect=["s3://lake-out/predictions", "no credentials", "aws_conn_id"],
        timeout=60,
    ),
    BadInput(
        id="scoring-s3-default-connection-absent",
        build=lambda w: _score(w, output_uri="s3://lake-out/predictions"),
        expect=["s3://lake-out/predictions", "'aws_default'", "not defined"],
        timeout=60,
    ),
    BadInput(
        id="scoring-batch-size-garbage",
        build=lambda w: _score(w, batch_size="{{ 'lots' }}"),
        expect=["batch_size", "lots"],
        timeout=60,
    ),
    BadInput(
        id="scoring-unseen-categories-over-threshold",
        setup=_unseen_categories,
        build=lambda w: _score(w, input_data=w.path(UNSEEN_INPUT), max_unseen_share=0.05),
        expect=["max_unseen_share", "plan", "platinum", "100.0%"],
    ),
    BadInput(
        id="scoring-unseen-categories-reported",
        setup=_unseen_categories,
        build=lambda w: _score(w, input_data=w.path(UNSEEN_INPUT)),
        state="success",
        expect=["unseen", "plan", "platinum"],
        may_write=("predictions/",),
    ),
]
