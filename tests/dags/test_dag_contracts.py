"""Contracts between the tasks of the reference DAGs, checked on real runs.

Every reference DAG (features, training, batch scoring, monitoring) runs with ``dag.test()`` on
simulated data, in the order the lifecycle needs: five days of features, a first training run
(cold start, promoted), a second one on the same data (no improvement, rejected), two days of
scoring with the champion, a day of monitoring, and a quarantined day. Then:

(a) every provider operator's ``return_value`` has the common result shape (docs/results.md);
(b) every key a downstream reader takes from an upstream XCom exists with its documented type.
    The reads are derived from the source, never listed by hand: ``xcom_pull(...)['key']`` in
    templates, ``task.output['key']`` and whole ``task.output`` arguments, ``result['key']`` /
    ``result.get('key')`` in the DAGs' ``@task`` functions, and what the demo's per-day table
    reads (include/demo_lifecycle.py). Renaming a key, or reading one that does not exist,
    fails here instead of silently giving ``[]`` or a default.

Plus the DAG bugs these contracts let through: ``record_rejection`` always reported no reasons,
and the approval body read a ``summary`` key that does not exist.
"""

from __future__ import annotations

import ast
import importlib
import re
import runpy
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.demo_serving import DemoService
from include.simulator import SCENARIOS, ChurnSimulator
from mlops_provider.core.results import COMMON_KEYS, MODEL_KEYS, check_result

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
DEMO = ROOT / "include" / "demo_lifecycle.py"
DAG_IDS = (
    "mlops_feature_pipeline",
    "mlops_training_pipeline",
    "mlops_batch_scoring",
    "mlops_monitoring",
    "mlops_deployment",
)
DAYS = [date(2026, 1, d) for d in range(1, 7)]
BAD_DAY = DAYS[5]  # a null-column export: quarantined
AS_OF = datetime(2026, 1, 5, tzinfo=timezone.utc)  # labels of Jan 1-3 have arrived

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

#: States of a task that may have left a result (a quarantine fails after pushing its result;
#: RetrainDecisionOperator skips after pushing its "no_retrain" result).
FINISHED = ("success", "failed", "skipped")
#: A whole provider result (checked with ``check_result``).
RESULT = "result"
#: Documented types of the detail keys readers take (common keys come from core.results).
DETAIL_TYPES: dict[tuple[str, tuple[str, ...]], Any] = {
    # the DAGs' own @task results
    ("as_of", ()): dict,
    ("as_of", ("as_of",)): str,
    ("as_of", ("key",)): str,
    ("as_of", ("reasons",)): list,
    ("label_window", ("train_uri",)): str,
    ("label_window", ()): dict,
    ("label_window", ("eval_uri",)): str,
    ("training_lineage", ()): dict,
    ("resolve_champion", ("uri",)): str,
    ("input_rows", ()): int,
    ("earlier_predictions", ()): list,
    # provider operators' documented details
    ("training_set", ("feature_refs",)): list,
    ("score", ("output_uri",)): str,
    ("data_drift", ("drift_share",)): float,
    ("performance", ("metrics",)): dict,
    ("performance", ("metrics", "roc_auc")): float,
    ("performance", ("baseline",)): dict,
    ("performance", ("baseline", "roc_auc")): float,
    ("retrain_decision", ("retraining_gain",)): list,
    ("candidate", ("version",)): str,
    ("candidate", ("evaluation_data",)): str,
    ("validate_serving", ("version",)): str,
    ("deploy", ("version",)): str,
    ("validate_serving", ("latency_ms",)): dict,
    ("validate_serving", ("latency_ms", "p99")): float,
}


# ----------------------------------------------------------------------- reads from source


@dataclass(frozen=True)
class Read:
    """``reader`` takes ``path`` from the XCom ``xcom_key`` of upstream task ``task``."""

    reader: str
    task: str
    path: tuple[str, ...] = ()
    xcom_key: str = "return_value"


_PULL = re.compile(
    r"""xcom_pull\(\s*task_ids\s*=\s*['"]([\w.-]+)['"]\s*\)((?:\s*\[\s*['"][\w-]+['"]\s*\])*)"""
)
_KEY = re.compile(r"""\[\s*['"]([\w-]+)['"]\s*\]""")


def template_reads(source: str, reader: str) -> set[Read]:
    """``ti.xcom_pull(task_ids='t')['a']['b']`` anywhere in the source (Jinja templates)."""
    return {
        Read(reader, match[1], tuple(_KEY.findall(match[2]))) for match in _PULL.finditer(source)
    }


def _const(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def chain(node: ast.AST, helpers: Mapping[str, tuple[str, ...]]) -> tuple[str, tuple] | None:
    """``(root name, keys)`` of ``x["a"].get("b")``, ``(x.get("a") or {})["b"]`` or
    ``helper(x).get("b")`` (a helper returning ``x``'s ``helpers[name]``); else None."""
    keys: list[str] = []
    while True:
        if isinstance(node, ast.Subscript) and _const(node.slice) is not None:
            keys.append(str(_const(node.slice)))
            node = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and _const(node.args[0]) is not None
        ):
            keys.append(str(_const(node.args[0])))
            node = node.func.value
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            node = node.values[0]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in helpers or not node.args:
                return None
            keys += reversed(helpers[node.func.id])
            node = node.args[0]
        elif isinstance(node, ast.Name):
            return node.id, tuple(reversed(keys))
        else:
            return None


def chains_from(body: ast.AST, roots: Mapping[str, str], helpers: Mapping) -> set[tuple]:
    """``(task, keys)`` of every chain in ``body`` whose root name is in ``roots``."""
    out = set()
    for node in ast.walk(body):
        found = chain(node, helpers)
        if found and found[0] in roots and found[1]:
            out.add((roots[found[0]], found[1]))
    return out


def _upstream(arg: ast.AST, namespace: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(task_id, xcom key)`` an argument expression stands for: ``t.output``,
    ``t.output["k"]`` or a name bound to an XComArg."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    key = "return_value"
    if isinstance(arg, ast.Subscript) and _const(arg.slice) is not None:
        key, arg = str(_const(arg.slice)), arg.value
    if isinstance(arg, ast.Attribute) and arg.attr == "output" and isinstance(arg.value, ast.Name):
        task = namespace.get(arg.value.id)
        return (task.task_id, key) if task is not None else None
    if isinstance(arg, ast.Name) and isinstance(namespace.get(arg.id), PlainXComArg):
        return namespace[arg.id].operator.task_id, namespace[arg.id].key
    return None


def task_function_reads(tree: ast.Module, namespace: Mapping[str, Any], dag_id: str) -> set[Read]:
    """Reads of the DAG's ``@task`` functions: which upstream XCom each parameter receives
    (from the call sites), and which keys the body takes from it."""
    functions = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any("task" in ast.unparse(d) for d in node.decorator_list)
    }
    reads: set[Read] = set()
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
            continue
        function = functions.get(call.func.id)
        if function is None:
            continue
        params = [a.arg for a in function.args.args]
        bound = list(zip(params, call.args)) + [(k.arg, k.value) for k in call.keywords]
        roots = {}
        for param, arg in bound:
            upstream = _upstream(arg, namespace)
            if upstream is None:
                continue
            reader = f"{dag_id}.{function.name}"
            reads.add(Read(reader, upstream[0], (), upstream[1]))
            roots[param] = upstream[0]
        for task, keys in chains_from(function, roots, {}):
            reads.add(Read(f"{dag_id}.{function.name}", task, keys))
    return reads


def operator_argument_reads(dag: Any) -> set[Read]:
    """Whole XComs passed to operators (``evaluation=evaluate.output``) and XCom keys
    (``task.output["key"]``), found on the parsed DAG."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    reads = set()
    for task in dag.tasks:
        if getattr(task, "python_callable", None) is not None:
            continue  # @task functions: see task_function_reads
        for field in task.template_fields:
            value = getattr(task, field, None)
            for operator, key in XComArg.iter_xcom_references(value):
                reads.add(Read(f"{dag.dag_id}.{task.task_id}", operator.task_id, (), key))
    return reads


def _is_xcom_call(value: ast.expr) -> bool:
    """``xcom(run, "task")`` or ``run.xcom("task")`` (a RunView of include/demo_lifecycle.py)."""
    if not isinstance(value, ast.Call) or not value.args or not _const(value.args[-1]):
        return False
    if isinstance(value.func, ast.Attribute):
        return value.func.attr == "xcom" and len(value.args) == 1
    return ast.unparse(value.func) == "xcom" and len(value.args) == 2


def demo_reads() -> set[Read]:
    """What the demo reads from ``xcom(run, "task")`` values (its per-day table)."""
    tree = ast.parse(DEMO.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    helpers: dict[str, tuple[str, ...]] = {}
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.args.args:
            returned = [n.value for n in ast.walk(function) if isinstance(n, ast.Return)]
            found = chain(returned[0], {}) if returned and returned[0] else None
            if found and found[0] == function.args.args[0].arg:
                helpers[function.name] = found[1]
    reads = set()
    for function in functions:
        roots = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                value = node.value.values[0] if isinstance(node.value, ast.BoolOp) else node.value
                if _is_xcom_call(value):
                    roots[node.targets[0].id] = str(_const(value.args[-1]))
        for task, keys in chains_from(function, roots, helpers):
            reads.add(Read("demo", task, keys))
        for node in ast.walk(function):  # helper(var): the keys the helper reads
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
                arg = node.args[0]
                helper = next(
                    (f for f in tree.body if getattr(f, "name", "") == node.func.id), None
                )
                if isinstance(arg, ast.Name) and arg.id in roots and helper is not None:
                    param = {helper.args.args[0].arg: roots[arg.id]}
                    reads |= {Read("demo", t, k) for t, k in chains_from(helper, param, {})}
    return reads


def dag_reads(namespaces: Mapping[str, Mapping[str, Any]]) -> set[Read]:
    reads = set()
    for dag_id, namespace in namespaces.items():
        source = (DAGS / f"{dag_id}.py").read_text()
        reads |= template_reads(source, dag_id)
        reads |= task_function_reads(ast.parse(source), namespace, dag_id)
        reads |= operator_argument_reads(namespace["dag"])
    return reads


# ------------------------------------------------------------------------------ the runs


@dataclass
class Lifecycle:
    namespaces: dict[str, dict[str, Any]]
    runs: dict[str, list[Any]]
    named: dict[str, Any]
    sim: ChurnSimulator

    def dag(self, dag_id: str) -> Any:
        return self.namespaces[dag_id]["dag"]


def _load(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_LABEL_DELAY_DAYS", "1")
    monkeypatch.setenv("MLOPS_TASK_RETRIES", "0")
    # latency is the benchmark's business, not a contract (a busy machine); short windows
    monkeypatch.setenv("MLOPS_SERVING_MAX_P99_MS", "60000")
    monkeypatch.setenv("MLOPS_SERVING_VERIFY_SECONDS", "1")
    for name in ("MLOPS_LAKE_URI", "MLOPS_AWS_CONN_ID", "MLOPS_MODEL_NAME", "MLOPS_DATA_ROOT"):
        monkeypatch.delenv(name, raising=False)
    import mlops_common

    importlib.reload(mlops_common)
    return {dag_id: runpy.run_path(str(DAGS / f"{dag_id}.py")) for dag_id in DAG_IDS}


REVIEWER = {"id": "7", "name": "reviewer"}


@contextmanager
def answer_approval(option: str | None, comment: str = "") -> Iterator[None]:
    """Answer the training pipeline's approval step while ``dag.test()`` waits for it.

    ``dag.test()`` leaves a Human-in-the-loop task in ``awaiting_input`` until a response is
    recorded in the metadata DB. A thread waits for that task and records ``option`` as
    REVIEWER the way the API server's HITL response endpoint does (the response on the
    HITLDetail row, then ``handle_event_submit``); with ``option=None`` it lets the response
    deadline pass and runs the scheduler's timeout sweep, which applies the defaults.
    """
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.sdk import timezone
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy.orm import joinedload

    done = threading.Event()
    answered: list[str] = []
    errors: list[BaseException] = []

    def respond(session: Any, ti: Any) -> None:
        if option is None:
            ti.trigger_timeout = timezone.utcnow() - timedelta(seconds=1)
            session.flush()
            SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts(session=session)
            return
        detail = ti.hitl_detail
        detail.responded_by = REVIEWER
        detail.responded_at = timezone.utcnow()
        detail.chosen_options = [option]
        detail.params_input = {"comment": comment}
        session.add(detail)
        event = TriggerEvent(detail.as_resume_event_payload())
        handle_event_submit(event, task_instance=ti, session=session)

    def answer() -> None:
        while not done.wait(0.5):
            with create_session() as session:
                ti = (
                    session.query(TaskInstance)
                    .options(joinedload(TaskInstance.hitl_detail))
                    .filter_by(task_id="approve", state=TaskInstanceState.AWAITING_INPUT)
                    .one_or_none()
                )
                if ti is None or ti.hitl_detail is None:
                    continue
                try:
                    respond(session, ti)
                except BaseException as err:  # fail the task, or dag.test() waits forever
                    errors.append(err)
                    session.rollback()
                    ti.state = TaskInstanceState.FAILED
                    session.merge(ti)
                answered.append(ti.run_id)
                return

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)
    assert not errors, errors
    assert answered, "the approval step never waited for an answer"


def _run_lifecycle(
    life: Lifecycle, data_root: str, service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(dag_id: str, name: str | None = None, **kwargs: Any) -> Any:
        dag_run = run_dag(life.dag(dag_id), **kwargs)
        life.runs.setdefault(dag_id, []).append(dag_run)
        if name:
            life.named[name] = dag_run
        return dag_run

    for day in DAYS:
        life.sim.write_day(data_root, day)
    for day in DAYS[:5]:
        run("mlops_feature_pipeline", f"features {day}", day=day)
    service.start()  # no champion yet: it serves nothing until the deployment DAG reloads it
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SERVING_DEFAULT", service.connection())
    conf = {"as_of": AS_OF.isoformat()}
    # the first trainings: no champion yet, an explicit cold start
    approval = {**conf, "require_approval": True, "cold_start": True}
    # a passing (cold start) candidate, rejected by a reviewer, then by the response timeout
    with answer_approval("Reject", comment="wait for the incident review"):
        earlier = AS_OF - timedelta(hours=2)
        run("mlops_training_pipeline", "approval rejected", logical_date=earlier, conf=approval)
    with answer_approval(None):
        earlier = AS_OF - timedelta(hours=1)
        run("mlops_training_pipeline", "approval timed out", logical_date=earlier, conf=approval)
    with answer_approval("Approve"):
        run("mlops_training_pipeline", "promoted", logical_date=AS_OF, conf=approval)
    later = AS_OF + timedelta(hours=1)
    run("mlops_training_pipeline", "rejected", logical_date=later, conf=conf)
    # the champion reaches the running service (empty until then), which takes a day's traffic
    run("mlops_deployment", "deployment")
    customers = [int(c) for c in life.sim.activity(DAYS[4])["customer_id"]]
    service.burst(DAYS[4], customers, 60)
    for day in DAYS[3:5]:
        run("mlops_batch_scoring", f"scoring {day}", day=day)
    run("mlops_monitoring", "monitoring", day=DAYS[4])
    run("mlops_feature_pipeline", "quarantined", day=BAD_DAY)


@pytest.fixture(scope="module")
def lifecycle(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    monkeypatch = pytest.MonkeyPatch()
    sys.path.insert(0, str(DAGS))
    try:
        namespaces = _load(tmp_path_factory.mktemp("contracts") / "mlops", monkeypatch)
        import mlops_common

        sim = ChurnSimulator(
            seed=23,
            n_customers=1200,
            label_delay_days=1,
            scenarios=SCENARIOS["nulls"](BAD_DAY, BAD_DAY),
        )
        life = Lifecycle(namespaces, {}, {}, sim)
        service = DemoService(
            mlops_common.MODEL_NAME, mlops_common.FEATURE_REPO, mlops_common.ONLINE_PREDICTIONS_URI
        )
        try:
            _run_lifecycle(life, mlops_common.DATA_ROOT, service, monkeypatch)
        finally:
            service.stop()
        yield life
    finally:
        monkeypatch.undo()
        import mlops_common

        importlib.reload(mlops_common)
        sys.path.remove(str(DAGS))


# ------------------------------------------------------------------------------ checks


def _is_provider_operator(task: Any) -> bool:
    from airflow.sdk.bases.sensor import BaseSensorOperator

    return type(task).__module__.startswith("mlops_provider.") and not isinstance(
        task, BaseSensorOperator
    )


def _documented_type(read: Read, upstream: Any) -> Any:
    """The type a read must find, or None when nothing documents it."""
    if (read.task, read.path) in DETAIL_TYPES:
        return DETAIL_TYPES[(read.task, read.path)]
    if not _is_provider_operator(upstream):
        return None
    if read.path == ():
        return RESULT
    if len(read.path) == 1 and read.path[0] in COMMON_KEYS:
        return COMMON_KEYS[read.path[0]]
    if len(read.path) == 2 and read.path[0] == "model" and read.path[1] in MODEL_KEYS:
        return str if read.path[1] in ("uri", "run_id") else (str, type(None))
    return None


def _problem(value: Any, read: Read, expected: Any) -> str | None:
    for key in read.path:
        if not isinstance(value, Mapping) or key not in value:
            return f"{read.reader} reads {read.task}{list(read.path)}: {key!r} missing in {value!r}"
        value = value[key]
    if expected == RESULT:
        problems = check_result(value)
        return f"{read.reader} reads {read.task}: {problems}" if problems else None
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return f"{read.reader} reads {read.task}{list(read.path)} = {value!r}, not {expected}"
    return None


def _dag_of(life: Lifecycle, task_id: str) -> str:
    owners = [d for d in DAG_IDS if task_id in life.dag(d).task_ids]
    assert len(owners) == 1, (task_id, owners)
    return owners[0]


def _check_reads(life: Lifecycle, reads: set[Read]) -> tuple[list[str], set[Read]]:
    problems, checked = [], set()
    for read in sorted(reads, key=repr):
        dag_id = _dag_of(life, read.task)
        upstream = life.dag(dag_id).get_task(read.task)
        expected = _documented_type(read, upstream)
        if expected is None:
            problems.append(f"{read}: no documented type (add it to DETAIL_TYPES)")
            continue
        for dag_run in life.runs[dag_id]:
            state = task_states(dag_run).get(read.task)
            value = xcom(dag_run, read.task, key=read.xcom_key)
            if state not in FINISHED or (value is None and state != "success"):
                continue
            checked.add(read)
            problem = _problem(value, read, expected)
            if problem:
                problems.append(f"{problem} (run {dag_run.run_id})")
    return problems, checked


def test_every_run_went_the_expected_way(lifecycle: Lifecycle) -> None:
    named = {name: task_states(run) for name, run in lifecycle.named.items()}
    for name, states in named.items():
        if name in ("promoted", "rejected", "quarantined") or name.startswith("approval"):
            continue
        bad = {t: s for t, s in states.items() if s not in ("success", "skipped")}
        assert bad == {}, name
    assert named["promoted"]["approve"] == "success"
    assert named["promoted"]["promote"] == "success"
    assert named["promoted"]["record_rejection"] == "skipped"
    for name in ("approval rejected", "approval timed out"):
        states = named[name]
        assert states["evaluate"] == states["approve"] == "success", name
        assert states["promote"] == "skipped", name
        assert states["record_rejection"] == states["close_retrain_request"] == "success", name
    assert named["rejected"]["record_rejection"] == "success"
    assert named["rejected"]["promote"] == "skipped"
    assert named["rejected"]["close_retrain_request"] == "success"
    assert named["quarantined"]["validate_raw"] == "failed"
    assert named["monitoring"]["prediction_drift"] == "success"  # day 4 is its reference
    # the day's online traffic was checked for training-serving skew; the champion reached the
    # service (empty until then: nothing to roll back to)
    assert named["monitoring"]["training_serving_skew"] == "success"
    assert named["deployment"]["deploy"] == "success"
    deployed = xcom(lifecycle.named["deployment"], "deploy")
    assert deployed["status"] == "deployed" and deployed["previous_version"] is None


def test_every_provider_operator_returns_the_common_result(lifecycle: Lifecycle) -> None:
    problems, seen = {}, set()
    for dag_id, runs in lifecycle.runs.items():
        dag = lifecycle.dag(dag_id)
        for dag_run in runs:
            for task_id, state in task_states(dag_run).items():
                task = dag.get_task(task_id)
                if not _is_provider_operator(task) or state not in FINISHED:
                    continue
                value = xcom(dag_run, task_id)
                if value is None and state != "success":
                    continue
                seen.add(f"{dag_id}.{task_id}")
                found = check_result(value)
                if found:
                    problems[f"{dag_id}.{task_id} ({dag_run.run_id})"] = found
    assert problems == {}
    provider_tasks = {
        f"{dag_id}.{task.task_id}"
        for dag_id in DAG_IDS
        for task in lifecycle.dag(dag_id).tasks
        if _is_provider_operator(task)
    }
    # every provider operator of every DAG ran at least once
    assert provider_tasks == seen


def test_the_reads_are_derived_from_the_source(lifecycle: Lifecycle) -> None:
    reads = dag_reads(lifecycle.namespaces)
    expected = {
        Read("mlops_training_pipeline.record_rejection", "evaluate", ("reasons",)),
        Read("mlops_training_pipeline.gate", "evaluate", ("passed",)),
        Read("mlops_training_pipeline", "evaluate", ("reasons",)),  # the approval body
        Read("mlops_training_pipeline", "train", ("model", "uri")),
        Read("mlops_training_pipeline.promote", "evaluate"),
        Read("mlops_monitoring.retrain_decision", "data_drift"),
        Read("mlops_monitoring.retrain_decision", "performance"),
        Read("mlops_batch_scoring", "score", ("output_uri",)),
    }
    assert expected <= reads, expected - reads
    demo = demo_reads()
    assert {
        Read("demo", "validate_raw", ("rows",)),
        Read("demo", "score", ("model", "version")),
        Read("demo", "retrain_decision", ("status",)),
        Read("demo", "performance", ("metrics", "roc_auc")),
    } <= demo
    assert not any(r.task == "evaluate" and r.path == ("summary",) for r in reads)


def test_every_key_a_dag_reads_exists_with_its_documented_type(lifecycle: Lifecycle) -> None:
    reads = dag_reads(lifecycle.namespaces)
    problems, checked = _check_reads(lifecycle, reads)
    assert problems == []
    assert checked == reads, sorted(map(repr, reads - checked))  # every read was exercised


def test_every_key_the_demo_reads_exists_with_its_documented_type(lifecycle: Lifecycle) -> None:
    reads = demo_reads()
    problems, checked = _check_reads(lifecycle, reads)
    assert problems == []
    assert checked == reads, sorted(map(repr, reads - checked))


def test_record_rejection_carries_the_evaluation_reasons(lifecycle: Lifecycle) -> None:
    """The rejection record read ``reasons`` from a result that only had ``reason``: []."""
    run = lifecycle.named["rejected"]
    evaluation = xcom(run, "evaluate")
    rejection = xcom(run, "record_rejection")
    assert evaluation["status"] == "rejected" and evaluation["passed"] is False
    assert evaluation["reasons"] and all(isinstance(r, str) for r in evaluation["reasons"])
    assert rejection["reasons"] == evaluation["reasons"]
    assert rejection["status"] == "rejected" and check_result(rejection) == []
    assert rejection["model"] == evaluation["model"]
    assert rejection["as_of"] == AS_OF.isoformat()


def test_approval_answers_reach_the_rejection_record(lifecycle: Lifecycle) -> None:
    """A reviewer's Reject and an unanswered approval both record the rejection (with who or
    what decided) and close the retrain request; Approve promotes. Before, a Reject skipped
    the rejection record and the request's closing, so monitoring could not ask again."""
    by_reviewer = lifecycle.named["approval rejected"]
    answer = xcom(by_reviewer, "approve")
    assert check_result(answer) == [] and answer["status"] == "rejected"
    assert answer["responded_by"] == "reviewer" and answer["timed_out"] is False
    rejection = xcom(by_reviewer, "record_rejection")
    evaluation = xcom(by_reviewer, "evaluate")
    assert evaluation["passed"] is True and rejection["status"] == "rejected"
    assert rejection["reasons"][: len(evaluation["reasons"])] == evaluation["reasons"]
    assert "rejected by reviewer in the approval step" in rejection["reasons"]
    assert "comment: wait for the incident review" in rejection["reasons"]
    assert xcom(by_reviewer, "close_retrain_request") is not None

    timed_out = xcom(lifecycle.named["approval timed out"], "approve")
    assert timed_out["status"] == "rejected" and timed_out["timed_out"] is True
    assert timed_out["responded_by"] is None
    assert any(
        "timeout" in r
        for r in xcom(lifecycle.named["approval timed out"], "record_rejection")["reasons"]
    )

    approved = xcom(lifecycle.named["promoted"], "approve")
    assert approved["status"] == "approved" and approved["passed"] is True
    assert xcom(lifecycle.named["promoted"], "promote")["model"]["version"] == "1"


def test_approval_body_shows_the_evaluation(lifecycle: Lifecycle) -> None:
    """The body read a ``summary`` key that does not exist and always fell back to a default."""
    run = lifecycle.named["promoted"]
    dag = lifecycle.dag("mlops_training_pipeline")

    class TaskInstance:
        def xcom_pull(self, task_ids: str) -> Any:
            return xcom(run, task_ids)

    body = dag.get_template_env().from_string(dag.get_task("approve").body)
    text = str(body.render(ti=TaskInstance()))
    evaluation = xcom(run, "evaluate")
    assert evaluation["status"] == "accepted" and evaluation["reasons"]
    assert evaluation["model"]["uri"] in text and evaluation["status"] in text
    assert all(reason in text for reason in evaluation["reasons"])
    assert str(evaluation["report_uri"]) in text
    assert "see the evaluation report" not in text


def test_training_scoring_and_monitoring_agree_on_the_champion(lifecycle: Lifecycle) -> None:
    """The model trained and promoted is the one scoring uses and monitoring compares with."""
    promoted = lifecycle.named["promoted"]
    trained = xcom(promoted, "train")["model"]
    champion = xcom(promoted, "promote")["model"]
    assert champion["run_id"] == trained["run_id"] and champion["version"] == "1"
    rejected = xcom(lifecycle.named["rejected"], "evaluate")
    assert rejected["champion"]["version"] == "1"
    for day in DAYS[3:5]:
        scoring = lifecycle.named[f"scoring {day}"]
        scored = xcom(scoring, "score")
        assert scored["model"]["version"] == "1" and scored["model"]["run_id"] == trained["run_id"]
        assert scored["rows"] == xcom(scoring, "input_rows") == len(lifecycle.sim.activity(day))
        assert xcom(scoring, "validate_predictions")["rows"] == scored["rows"]
    monitoring = lifecycle.named["monitoring"]
    for task in ("data_drift", "performance", "retrain_decision"):
        model = xcom(monitoring, task)["model"]
        assert (model["name"], model["version"]) == ("churn", "1"), task


def test_quarantined_day_reports_why(lifecycle: Lifecycle) -> None:
    validation = xcom(lifecycle.named["quarantined"], "validate_raw")
    assert validation["status"] == "quarantined" and validation["passed"] is False
    assert validation["reasons"] and any("monthly_charges" in r for r in validation["reasons"])
    assert validation["rows"] == len(lifecycle.sim.activity(BAD_DAY))


def test_the_checks_can_fail() -> None:
    """A renamed key, a wrong type, a malformed result and the old approval body's ``summary``
    are all reported (no runs needed)."""
    read = Read("dag.record_rejection", "evaluate", ("reasons",))
    assert "missing" in str(_problem({"reason": "gate failed"}, read, list))
    assert "not <class 'list'>" in str(_problem({"reasons": "gate failed"}, read, list))
    assert _problem({"reasons": []}, read, list) is None
    assert _problem({"passed": True}, Read("dag.promote", "evaluate"), RESULT)
    old_body = "{{ ti.xcom_pull(task_ids='evaluate')['summary'] | default('see the report') }}"
    assert template_reads(old_body, "dag") == {Read("dag", "evaluate", ("summary",))}
    old_rejection = ast.parse('def f(result):\n    return result.get("reasons", [])\n')
    assert chains_from(old_rejection, {"result": "evaluate"}, {}) == {("evaluate", ("reasons",))}


def test_training_reads_what_a_retrain_request_carries() -> None:
    """mlops_monitoring -> mlops_training_pipeline: the keys the training DAG's ``as_of`` task
    reads from the retrain-request asset event's ``extra`` are in what RetrainDecisionOperator
    emits (core.retraining.request_extra), with their types."""
    from mlops_provider.core.retraining import request_extra

    tree = ast.parse((DAGS / "mlops_training_pipeline.py").read_text())
    as_of = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "as_of")
    reads = {keys for _, keys in chains_from(as_of, {"extra": "request"}, {})}
    assert reads == {("as_of",), ("reasons",)}
    extra = request_extra(
        registered_model_name="churn",
        reasons=["dataset drift: 8 of 15 columns drifted"],
        requested_at=AS_OF,
        request_id="mlops_monitoring/2026-01-04",
        champion_version="1",
        source="mlops_monitoring.retrain_decision",
    )
    types = {("as_of",): str, ("reasons",): list}
    for keys in reads:
        assert (
            _problem(extra, Read("mlops_training_pipeline.as_of", "request", keys), types[keys])
            is None
        )
    assert datetime.fromisoformat(extra["as_of"]) == AS_OF
