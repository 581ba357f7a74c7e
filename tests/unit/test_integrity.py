"""mlops_provider.testing.integrity: each check fails on a DAG folder with that problem, with a
message naming it, and passes a clean folder (and the reference DAGs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree

import pytest

from mlops_provider.testing.integrity import (
    CHECKS,
    IntegrityFinding,
    IntegrityReport,
    check_dag_integrity,
    load_dagbag,
)

ROOT = Path(__file__).resolve().parents[2]

HEADER = """\
from datetime import datetime, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
"""

#: One problem per file (each DAG otherwise sets owner and retries).
BAD = {
    "heavy_dag.py": """
import pandas

with DAG("heavy", schedule=None, start_date=START, default_args={"owner": "ml", "retries": 1}):
    BashOperator(task_id="t", bash_command="echo hi")
""",
    "slow_dag.py": """
import time

time.sleep(0.5)

with DAG("slow", schedule=None, start_date=START, default_args={"owner": "ml", "retries": 1}):
    BashOperator(task_id="t", bash_command="echo hi")
""",
    "no_owner_dag.py": """
with DAG("no_owner", schedule=None, start_date=START, default_args={"retries": 1}):
    BashOperator(task_id="extract", bash_command="echo hi")
    BashOperator(task_id="load", bash_command="echo hi", owner="data-team")
""",
    "no_retries_dag.py": """
with DAG("no_retries", schedule=None, start_date=START, default_args={"owner": "ml"}):
    BashOperator(task_id="fragile", bash_command="echo hi")
    BashOperator(task_id="sturdy", bash_command="echo hi", retries=3)
""",
    "syntax_error_dag.py": """
with DAG("broken", schedule=None start_date=START):
    pass
""",
    "import_error_dag.py": """
import no_such_module_for_this_dag

with DAG("missing_import", schedule=None, start_date=START):
    pass
""",
    "cycle_dag.py": """
with DAG("cyclic", schedule=None, start_date=START, default_args={"owner": "ml", "retries": 1}):
    a = BashOperator(task_id="a", bash_command="echo a")
    b = BashOperator(task_id="b", bash_command="echo b")
    a >> b >> a
""",
    "bad_template_dag.py": """
with DAG("bad_templates", schedule="@daily", start_date=START, catchup=False,
         default_args={"owner": "ml", "retries": 1}):
    BashOperator(task_id="undefined", bash_command="echo {{ undefined_thing }}")
    BashOperator(task_id="filter", bash_command="echo {{ ds | nosuchfilter }}")
    BashOperator(task_id="syntax", bash_command="echo {{ ds ")
    BashOperator(task_id="macro", bash_command="echo {{ macros.no_such_macro(ds) }}")
    BashOperator(task_id="pull", bash_command="echo {{ ti.xcom_pull(task_ids='nope')['x'] }}")
    BashOperator(task_id="env", bash_command="echo ok", env={"DAY": "{{ dss }}"})
    BashOperator.partial(task_id="mapped").expand(bash_command=["echo {{ ds | nosuchfilter }}"])
""",
}

#: Everything the checks accept: a helper module of the folder, templates using XCom
#: subscripts, filters, macros, params, Variables and user macros, a task that sets retries=0
#: under default_args' retries, TaskFlow tasks passing XComs, mapped tasks, and a manual DAG
#: whose required param a run's conf gives.
CLEAN = {
    "on_demand_dag.py": """
from airflow.sdk import Param

with DAG("on_demand", schedule=None, start_date=START, params={"who": Param(type="string")},
         default_args={"owner": "ml", "retries": 1}):
    BashOperator(task_id="greet", bash_command="echo {{ params.who }}")
""",
    "common.py": """
OWNER = "data-team"
DAY = "{{ data_interval_start | ds }}"
""",
    "clean_dag.py": """
from airflow.sdk import CronDataIntervalTimetable, Param
from common import DAY, OWNER

with DAG(
    "clean",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START,
    catchup=False,
    default_args={"owner": OWNER, "retries": 2},
    params={"limit": Param(10, type="integer"), "note": Param(None, type=["null", "string"])},
    user_defined_macros={"shout": lambda s: str(s).upper()},
):
    @task
    def plan() -> dict:
        return {"eval_uri": "s3://x"}

    @task
    def use(value: dict, n: int) -> None:
        print(value, n)

    planned = plan()
    pull = BashOperator(
        task_id="pull",
        bash_command="echo {{ ti.xcom_pull(task_ids='plan')['eval_uri'] }} " + DAY,
        env={"NEXT": "{{ macros.ds_add(ds, 1) }}", "V": "{{ var.value.region }}"},
        retries=0,
    )
    loop = BashOperator(
        task_id="loop",
        bash_command="{% for r in ti.xcom_pull(task_ids='plan')['reasons'] %}{{ r }}{% endfor %}"
        "{{ params.limit }} {{ shout(ds_nodash) }} {{ data_interval_end | ts }}",
        env={
            "JSON": "{{ ti.xcom_pull(task_ids='plan') | tojson }}",
            "PATH": "{{ ti.xcom_pull(task_ids='plan') + '/x' }}",
            "NAME": "{{ ti.xcom_pull(task_ids='plan').split('/')[-1] | upper }}",
            "CONN": "{{ conn.warehouse.host }}:{{ var.json.settings['port'] }}",
        },
    )
    planned >> [pull, loop]
    use(planned, 3)
    use.expand(value=[{"a": 1}], n=[1, 2])
    BashOperator.partial(task_id="mapped").expand(bash_command=["echo {{ ds }}", "echo 2"])
""",
}


def _folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    for name, body in files.items():
        text = textwrap.dedent(body)
        (root / name).write_text(text if name == "common.py" else HEADER + text)
    return root


@pytest.fixture(scope="module")
def bad_report(tmp_path_factory: pytest.TempPathFactory) -> IntegrityReport:
    folder = _folder(tmp_path_factory.mktemp("bad") / "dags", BAD)
    return check_dag_integrity(folder, runs=2)


@pytest.fixture(scope="module")
def clean_report(tmp_path_factory: pytest.TempPathFactory) -> IntegrityReport:
    folder = _folder(tmp_path_factory.mktemp("clean") / "dags", CLEAN)
    return check_dag_integrity(folder, runs=2)


def _found(report: IntegrityReport, check: str, file: str) -> list[IntegrityFinding]:
    return [f for f in report.findings if f.check == check and f.file == file]


def test_a_dag_importing_pandas_fails_heavy_import(bad_report: IntegrityReport) -> None:
    (finding,) = _found(bad_report, "heavy_import", "heavy_dag.py")
    assert finding.dag_id == "heavy"
    assert "heavy_dag.py" in finding.message and "pandas" in finding.message
    assert "import it inside the task callable" in finding.message
    facts = {f.file: f for f in bad_report.files}
    assert "pandas" in facts["heavy_dag.py"].forbidden_imports
    assert facts["slow_dag.py"].forbidden_imports == []


def test_a_slow_dag_file_fails_the_parse_budget(bad_report: IntegrityReport) -> None:
    (finding,) = _found(bad_report, "parse_time", "slow_dag.py")
    seconds = {f.file: f.parse_seconds for f in bad_report.files}
    assert seconds["slow_dag.py"] is not None and seconds["slow_dag.py"] >= 0.45
    assert "slow_dag.py" in finding.message
    assert f"{seconds['slow_dag.py']:.3f} s" in finding.message
    assert "budget of 0.300 s" in finding.message
    assert _found(bad_report, "parse_time", "no_owner_dag.py") == []


def test_tasks_with_the_default_owner_fail(bad_report: IntegrityReport) -> None:
    (finding,) = _found(bad_report, "owner", "no_owner_dag.py")
    assert finding.dag_id == "no_owner" and finding.task_id == "extract"
    assert "'no_owner'" in finding.message and "extract" in finding.message
    assert "load" not in finding.message  # it sets its owner
    assert "default_args" in finding.message


def test_a_dag_without_retries_fails(bad_report: IntegrityReport) -> None:
    (finding,) = _found(bad_report, "retries", "no_retries_dag.py")
    assert finding.dag_id == "no_retries" and finding.task_id == "fragile"
    assert "'no_retries'" in finding.message and "fragile" in finding.message
    assert "sturdy" not in finding.message
    assert not [f for f in bad_report.findings if f.check == "retries" and f.dag_id != "no_retries"]


def test_syntax_and_import_errors_fail_naming_file_and_error(bad_report: IntegrityReport) -> None:
    (syntax,) = _found(bad_report, "import_error", "syntax_error_dag.py")
    assert "syntax_error_dag.py" in syntax.message and "SyntaxError" in syntax.message
    assert "(at syntax_error_dag.py, line " in syntax.message
    (missing,) = _found(bad_report, "import_error", "import_error_dag.py")
    assert "import_error_dag.py" in missing.message
    assert "No module named 'no_such_module_for_this_dag'" in missing.message


def test_a_cycle_is_reported_as_a_cycle(bad_report: IntegrityReport) -> None:
    (finding,) = _found(bad_report, "cycle", "cycle_dag.py")
    assert finding.dag_id == "cyclic" and finding.task_id in ("a", "b")
    assert "cycle" in finding.message and "'cyclic'" in finding.message
    assert _found(bad_report, "import_error", "cycle_dag.py") == []


def test_bad_templates_fail_naming_task_field_and_error(bad_report: IntegrityReport) -> None:
    found = {f.task_id: f for f in _found(bad_report, "template", "bad_template_dag.py")}
    assert set(found) == {"undefined", "filter", "syntax", "macro", "pull", "env", "mapped"}
    assert "'undefined_thing' is undefined" in found["undefined"].message
    assert "nosuchfilter" in found["filter"].message
    assert "TemplateSyntaxError" in found["syntax"].message
    assert "no_such_macro" in found["macro"].message
    assert "has no task 'nope'" in found["pull"].message
    assert "field 'env'" in found["env"].message and "'dss' is undefined" in found["env"].message
    assert "field 'bash_command'" in found["mapped"].message
    assert "nosuchfilter" in found["mapped"].message
    for task_id, finding in found.items():
        assert f"task {task_id!r}" in finding.message and "'bad_templates'" in finding.message
        assert "bad_template_dag.py" in finding.message
    assert "field 'bash_command'" in found["undefined"].message
    assert "{{ undefined_thing }}" in found["undefined"].message  # the template itself


def test_the_report_names_every_problem(bad_report: IntegrityReport) -> None:
    assert not bad_report.ok
    text = bad_report.format()
    for finding in bad_report.findings:
        assert finding.message in text and f"[{finding.check}]" in text
    with pytest.raises(AssertionError) as raised:
        bad_report.assert_ok()
    assert str(raised.value) == text
    assert {f.check for f in bad_report.findings} == set(CHECKS) - {"no_dags"}
    data = bad_report.to_dict()
    assert data["ok"] is False and len(data["findings"]) == len(bad_report.findings)


def test_a_clean_folder_passes(clean_report: IntegrityReport) -> None:
    clean_report.assert_ok()
    assert clean_report.ok and "all checks passed" in clean_report.format()
    dag, _ = sorted(clean_report.dags, key=lambda d: d.dag_id)
    assert dag.dag_id == "clean" and dag.file == "clean_dag.py" and dag.task_count == 6
    # the first scheduled run of a daily DAG: its data interval is the day
    assert dag.logical_date == "2026-01-01T00:00:00+00:00"
    assert dag.data_interval == ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00")
    facts, _ = clean_report.files  # common.py defines no DAG: it is not timed on its own
    assert facts.file == "clean_dag.py" and facts.dag_ids == ["clean"]
    assert facts.parse_seconds is not None and facts.forbidden_imports == []
    assert clean_report.baseline_seconds is not None and clean_report.baseline_seconds > 0


def test_checks_can_be_relaxed(tmp_path: Path) -> None:
    lax = """
with DAG("lax", schedule=None, start_date=START):
    BashOperator(task_id="t", bash_command="echo {{ ds }}")
"""
    folder = _folder(tmp_path / "dags", {"lax_dag.py": lax})
    strict = check_dag_integrity(folder, runs=1)
    assert {f.check for f in strict.findings} == {"owner", "retries"}
    check_dag_integrity(folder, runs=1, require_owner=False, require_retries=False).assert_ok()


def test_the_sample_date_sets_the_rendered_run(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "dags", CLEAN)
    when = datetime(2026, 3, 7, tzinfo=timezone.utc)
    report = check_dag_integrity(folder, runs=1, sample_date=when, parse_budget=5)
    dags = {d.dag_id: d for d in report.dags}
    assert dags["clean"].data_interval[0] == "2026-03-07T00:00:00+00:00"
    assert dags["on_demand"].logical_date == "2026-03-07T00:00:00+00:00"


def test_the_html_report_plots_parse_time_against_the_budget(
    bad_report: IntegrityReport, tmp_path: Path
) -> None:
    path = bad_report.write_html(tmp_path / "out" / "integrity.html")
    html = path.read_text()
    (svg,) = re.findall(r"<svg.*?</svg>", html, re.S)
    ElementTree.fromstring(svg)  # well-formed
    assert "slow_dag.py" in svg and "budget 0.3 s" in svg
    assert "FAILED" in html
    for finding in bad_report.findings:
        assert finding.file in html


def test_the_reference_dags_pass() -> None:
    report = check_dag_integrity(ROOT / "dags")
    report.assert_ok()
    assert {d.dag_id for d in report.dags} >= {"mlops_training_pipeline", "mlops_batch_scoring"}


def test_load_dagbag_parses_in_process_with_the_folder_importable() -> None:
    bag = load_dagbag(ROOT / "dags")
    assert bag.import_errors == {} and "mlops_training_pipeline" in bag.dags


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no DAGs folder"):
        check_dag_integrity(tmp_path / "nope")


def test_a_folder_without_dags_fails(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("VALUE = 1\n")
    report = check_dag_integrity(tmp_path, runs=1)
    assert [f.check for f in report.findings] == ["no_dags"]
    with pytest.raises(AssertionError, match="no DAG in"):
        report.assert_ok()


def test_the_module_imports_only_the_standard_library() -> None:
    """Importing it costs a CI's pytest process (or a DAG file) nothing: no Airflow, no
    provider module beyond the package, nothing outside the standard library."""
    code = (
        "import sys, json\n"
        "import mlops_provider.testing\n"
        "before = set(sys.modules)\n"
        "import mlops_provider.testing.integrity\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    added = json.loads(out.stdout.strip().splitlines()[-1])
    assert "mlops_provider.testing.integrity" in added
    others = [m for m in added if m != "mlops_provider.testing.integrity"]
    assert [m for m in others if m.split(".")[0] not in sys.stdlib_module_names] == []
