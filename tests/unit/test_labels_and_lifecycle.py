from __future__ import annotations

import ast
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from include.lifecycle_report import DayRecord, format_table, render_lifecycle_report
from include.simulator import ChurnSimulator
from mlops_provider.core import io
from mlops_provider.core.errors import CoreError
from mlops_provider.core.labels import LabelWindowError, build_label_window, partition_days

CHURN = {"label_column": "churned", "entity_columns": ["customer_id"]}


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    sim = ChurnSimulator(seed=3, n_customers=300, label_delay_days=2)
    for i in range(1, 9):
        sim.write_day(tmp_path, date(2026, 1, i))
    # features published for every day except the 3rd (quarantined)
    for i in range(1, 9):
        if i != 3:
            day = date(2026, 1, i)
            io.copy(str(tmp_path / "raw" / f"dt={day}"), str(tmp_path / "features" / f"dt={day}"))
    return tmp_path


def test_partition_days_lists_committed_partitions(lake: Path) -> None:
    days = partition_days(str(lake / "features"))
    assert date(2026, 1, 3) not in days and len(days) == 7
    assert partition_days(str(lake / "nothing")) == []


def test_window_uses_only_arrived_labels_with_features(lake: Path) -> None:
    as_of = datetime(2026, 1, 8, tzinfo=timezone.utc)  # labels of days 1..5 have arrived (<= Jan 7)
    window = build_label_window(
        str(lake / "labels"),
        str(lake / "features"),
        str(lake / "out"),
        as_of=as_of,
        window_days=2,
        **CHURN,
    )
    assert window.eval_days == ["2026-01-05"]
    assert window.train_days == ["2026-01-02", "2026-01-04"]  # day 3 has no features
    train = io.read_table(window.train_uri)
    evaluation = io.read_table(window.eval_uri)
    assert train.num_rows == window.train_rows > 0
    assert evaluation.num_rows == window.eval_rows > 0
    assert set(train.column_names) == {"customer_id", "event_timestamp", "churned"}
    eval_days = {ts.date() for ts in evaluation.column("event_timestamp").to_pylist()}
    assert eval_days == {date(2026, 1, 5)}


def test_window_refuses_when_too_few_labelled_days(lake: Path) -> None:
    with pytest.raises(LabelWindowError, match="need at least 2 labelled days"):
        build_label_window(
            str(lake / "labels"),
            str(lake / "features"),
            str(lake / "out"),
            as_of=datetime(2026, 1, 4, tzinfo=timezone.utc),
            **CHURN,
        )
    with pytest.raises(LabelWindowError, match="no labels have arrived"):
        build_label_window(
            str(lake / "labels"),
            str(lake / "features"),
            str(lake / "out"),
            as_of=datetime(2026, 1, 2, tzinfo=timezone.utc),
            **CHURN,
        )
    assert issubclass(LabelWindowError, CoreError) and issubclass(LabelWindowError, ValueError)


def test_window_names_the_domain_columns_it_is_given(lake: Path) -> None:
    """The provider has no domain default: label and entity columns are the caller's, and a
    column the labels lack is named."""
    as_of = datetime(2026, 1, 8, tzinfo=timezone.utc)
    args = (str(lake / "labels"), str(lake / "features"), str(lake / "out"))
    with pytest.raises(TypeError):
        build_label_window(*args, as_of=as_of)  # type: ignore[call-arg]
    with pytest.raises(LabelWindowError, match=r"lacks column\(s\) \['account_id'\]"):
        build_label_window(
            *args, as_of=as_of, label_column="churned", entity_columns=["account_id"]
        )
    window = build_label_window(
        *args, as_of=as_of, label_column="churned", entity_columns="customer_id"
    )
    assert set(io.read_table(window.eval_uri).column_names) == {
        "customer_id",
        "event_timestamp",
        "churned",
    }


def test_lifecycle_table_and_report() -> None:
    records = [
        DayRecord(day="2026-01-01", rows=600, validation="passed", champion_version=None),
        DayRecord(
            day="2026-01-02",
            drift_share=0.6,
            dataset_drift=True,
            roc_auc=0.71,
            baseline_roc_auc=0.8,
            champion_version="1",
            retrain_decision=True,
            decision_reasons=["dataset drift: 60% of columns drifted"],
        ),
    ]
    table = format_table(records)
    assert "2026-01-02" in table and "0.600" in table and "yes" in table
    html = render_lifecycle_report(records, facts={"champion": "1"})
    assert html.count("<img") == 1 and "dataset drift: 60% of columns drifted" in html


def test_retraining_gain_over_the_first_champion_on_the_same_rows() -> None:
    from include.lifecycle_report import retraining_gain

    def day(d: str, version: str, auc: float, never: float, rows: int) -> DayRecord:
        return DayRecord(
            day=d,
            roc_auc=auc,
            matured_version=version,
            first_champion_version="1",
            first_champion_roc_auc=never,
            compared_rows=rows,
            compared_days=[f"2026-01-{int(d[-2:]) - 3:02d}"],
        )

    records = [
        day("2026-01-10", "1", 0.70, 0.70, 600),  # the first champion itself: not a gain
        day("2026-01-16", "3", 0.80, 0.60, 600),
        day("2026-01-17", "3", 0.75, 0.65, 400),
        DayRecord(day="2026-01-18"),  # nothing matured
    ]
    measured = retraining_gain(records)
    assert measured is not None
    assert measured.rows == 1000 and measured.days == ["2026-01-13", "2026-01-14"]
    assert measured.gain == pytest.approx((0.2 * 600 + 0.1 * 400) / 1000)
    assert measured.sentence().startswith(
        "retraining bought +0.16 AUC over the first champion (v1) on 1,000 matured rows of "
        "2026-01-13..2026-01-14"
    )
    assert measured.per_version() == ("v3 +0.16 on 1,000 rows of 2026-01-13..2026-01-14")
    assert retraining_gain(records[:1]) is None
    html = render_lifecycle_report(records, extra_sections=[("Trace", "<p>trace of v3</p>")])
    assert "never retrained" in html and html.index("Per day") < html.index("trace of v3")


DOMAIN_WORDS = re.compile(r"churn|customer", re.IGNORECASE)
PROVIDER = Path(__file__).resolve().parents[2] / "provider" / "mlops_provider"


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def _domain_defaults(path: Path, root: Path = PROVIDER.parent) -> list[str]:
    """Parameter defaults and module-level constants of ``path`` naming the demo domain
    (docstrings and examples in them are not defaults)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    found += [f"{node.name}(... = {s!r})" for s in _strings(default)]
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            found += [
                f"{ast.unparse(node).split('=')[0].strip()} = {s!r}" for s in _strings(node.value)
            ]
    rel = path.relative_to(root)
    return [f"{rel}: {item}" for item in found if DOMAIN_WORDS.search(item.split(":", 1)[-1])]


def test_the_provider_has_no_demo_domain_defaults() -> None:
    """The churn demo lives in dags/ and include/: no provider default names its target,
    entity, feature view, model or assets, and its lifecycle report is not in the provider."""
    found = [item for path in sorted(PROVIDER.rglob("*.py")) for item in _domain_defaults(path)]
    assert found == []
    assert not (PROVIDER / "core" / "lifecycle.py").exists()
    import mlops_provider.assets as assets

    assert not any(DOMAIN_WORDS.search(str(getattr(assets, n))) for n in assets.__all__)


def test_domain_defaults_are_found(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('TARGET = "churned"\n\ndef f(x=("customer_id",)):\n    """churn"""\n')
    assert len(_domain_defaults(probe, tmp_path)) == 2


def test_each_demo_run_starts_from_scratch_in_its_own_home_only(tmp_path: Path) -> None:
    from include.demo import DEMO_MARKER, _start_fresh

    home = tmp_path / "airflow"
    _start_fresh(home)  # a new home: created and marked
    assert (home / DEMO_MARKER).exists()
    (home / "mlops" / "mlflow").mkdir(parents=True)
    (home / "airflow.db").write_text("state of the previous run")
    _start_fresh(home)  # the demo's own home: the previous run's state goes
    assert sorted(p.name for p in home.iterdir()) == [DEMO_MARKER]
    other = tmp_path / "someone-elses"
    other.mkdir()
    (other / "airflow.cfg").write_text("[core]\n")
    with pytest.raises(SystemExit, match="holds files the demo did not write"):
        _start_fresh(other)
    assert (other / "airflow.cfg").exists()  # nothing removed
