"""Bad inputs of the services the operators talk to: an MLflow connection pointing at a port
nothing listens on, and one whose tracking URI has a misspelt scheme.

Every MLflow-using task must fail within seconds (not MLflow's minutes of HTTP retries) with
one error naming the store and the connection: ``MLflow at <uri> (connection <id>) is not
reachable: ...`` or ``... rejected the URI: ...``; nothing is created.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from tests.integration.bad_input import UNDER_TEST, BadInput, World

#: Seconds a case may take: its connection's retry budget plus the DAG run's own overhead.
TIMEOUT = 60.0
#: The retry budget of the dead-server connections (connection extra ``max_retry_seconds``).
RETRY_SECONDS = 5


def _free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Words(Sequence[str]):
    """The words a case expects, some known only once its ``setup`` ran (the free port)."""

    def __init__(self, *fixed: str) -> None:
        self.fixed = list(fixed)
        self.words = list(fixed)

    def add(self, word: str) -> None:
        """Expect ``word`` too (once: a second ``setup`` replaces the first one's word)."""
        self.words = [*self.fixed, word]

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self.words[index]

    def __len__(self) -> int:
        return len(self.words)

    def __iter__(self) -> Iterator[str]:
        return iter(self.words)


def _connection(conn_id: str, **fields: Any) -> None:
    """Define connection ``conn_id`` (type ``mlflow``) through ``AIRFLOW_CONN_<ID>``."""
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({"conn_type": "mlflow", **fields})


def _dead(conn_id: str, words: _Words, *, default_budget: bool = False) -> Callable[[World], None]:
    """A ``setup`` pointing ``conn_id`` at a closed local port (with basic-auth credentials,
    which the error must not show) and a retry budget of :data:`RETRY_SECONDS` (or the
    provider's default budget)."""

    def setup(world: World) -> None:
        port = _free_port()
        extra = {} if default_budget else {"max_retry_seconds": RETRY_SECONDS}
        _connection(
            conn_id, host="127.0.0.1", port=port, login="ops", password="s3cret", extra=extra
        )
        words.add(f"http://127.0.0.1:{port}")

    return setup


def _misspelt(conn_id: str, words: _Words) -> Callable[[World], None]:
    """A ``setup`` giving ``conn_id`` the tracking URI ``htp://...`` (a typo of http)."""

    def setup(world: World) -> None:
        uri = f"htp://127.0.0.1:{_free_port()}"
        _connection(conn_id, extra={"tracking_uri": uri})
        words.add(uri)

    return setup


def _task(operator: type, conn_id: str, **settings: Any) -> Any:
    """The ``under_test`` task: ``operator`` on connection ``conn_id``, without retries."""
    return operator(task_id=UNDER_TEST, retries=0, mlflow_conn_id=conn_id, **settings)


def _train(world: World, conn_id: str) -> Any:
    """A training (it fails before fitting: the store is checked first)."""
    from mlops_provider.operators.training import TrainModelOperator

    return _task(TrainModelOperator, conn_id, training_data=world.train_uri, target="churned")


def _promote(world: World, conn_id: str) -> Any:
    """A promotion of the world's champion run, as an evaluation that passed would ask."""
    from mlops_provider.operators.registry import PromoteModelOperator

    run_id = world.champion_run_id
    evaluation = {
        "passed": True,
        "registered_model_name": world.model,
        "alias": world.alias,
        "candidate": {"run_id": run_id, "model_uri": f"runs:/{run_id}/model"},
        "champion": {"version": world.champion_version},
    }
    return _task(
        PromoteModelOperator, conn_id, registered_model_name=world.model, evaluation=evaluation
    )


def _score(world: World, conn_id: str) -> Any:
    """Batch scoring with the world's champion (``churn@champion``)."""
    from mlops_provider.operators.scoring import BatchScoringOperator

    output = world.path("predictions")
    model = {"registered_model_name": world.model, "alias": world.alias}
    return _task(
        BatchScoringOperator, conn_id, input_data=world.score_uri, output_uri=output, **model
    )


def _sense(world: World, conn_id: str) -> Any:
    """A sensor waiting for the world's champion alias."""
    from mlops_provider.sensors.mlflow import ModelAliasSensor

    model = {"registered_model_name": world.model, "alias": world.alias}
    return _task(ModelAliasSensor, conn_id, poke_interval=1, timeout=TIMEOUT, **model)


def _case(
    name: str,
    build: Callable[[World, str], Any],
    *,
    misspelt: bool = False,
    default_budget: bool = False,
) -> BadInput:
    """Case ``mlflow-<name>``: the task ``build`` makes, against connection
    ``bad_input_<name>``: a dead server (with a short retry budget, or the default one), or
    a misspelt scheme."""
    conn_id = "bad_input_" + name.replace("-", "_")
    problem = "rejected the URI" if misspelt else "is not reachable"
    words = _Words("MLflow at", f"(connection {conn_id}) {problem}")
    return BadInput(
        id=f"mlflow-{name}",
        build=lambda w: build(w, conn_id),
        expect=words,
        setup=_misspelt(conn_id, words)
        if misspelt
        else _dead(conn_id, words, default_budget=default_budget),
        timeout=TIMEOUT,
    )


CASES = [
    _case("dead-train", _train),
    _case("dead-promote", _promote),
    _case("dead-score", _score, default_budget=True),
    _case("dead-alias-sensor", _sense),
    _case("misspelt-scheme-train", _train, misspelt=True),
]
