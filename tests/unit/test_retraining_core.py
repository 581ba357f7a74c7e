"""Retraining policy core: each policy, combinations, cooldown, de-duplication, clock."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from include.simulator import ChurnSimulator
from mlops_provider.core.retraining import (
    DEFAULT_POLICY,
    ChampionInfo,
    RequestState,
    RetrainPolicy,
    RetrainPolicyError,
    count_new_labels,
    decide,
    evaluate_age,
    evaluate_data_volume,
    evaluate_drift,
    evaluate_performance,
    format_duration,
    is_request_open,
    parse_duration,
)

UTC = timezone.utc
NOW = datetime(2026, 2, 1, tzinfo=UTC)
CHAMPION = ChampionInfo.of(
    name="churn",
    version="3",
    promoted_at=datetime(2026, 1, 10, tzinfo=UTC),
    created_at=datetime(2026, 1, 9, tzinfo=UTC),
    training_data_end=datetime(2026, 1, 8, tzinfo=UTC),
)


def drift_result(dataset_drift: bool, drifted: tuple[str, ...] = (), n: int = 4) -> dict:
    names = ["tenure_months", "monthly_charges", "plan", "region"][:n]
    columns = {
        c: {
            "method": "ks",
            "score": 0.001 if c in drifted else 0.4,
            "threshold": 0.05,
            "drifted": c in drifted,
        }
        for c in names
    }
    return {
        "dataset_drift": dataset_drift,
        "drift_share": len(drifted) / n,
        "n_drifted": len(drifted),
        "n_columns": n,
        "drift_share_threshold": 0.5,
        "columns": columns,
        "reference": "models:/churn/3",
    }


def perf_result(status: str = "ok", auc: float = 0.78, base: float = 0.80, rows: int = 500) -> dict:
    return {
        "status": status,
        "primary_metric": "roc_auc",
        "labelled_rows": rows,
        "min_labels": 200,
        "model_version": "3",
        "metrics": {"roc_auc": auc, "log_loss": 0.4},
        "baseline": {"roc_auc": base, "log_loss": 0.35},
        "degradation": {
            "roc_auc": {"abs": base - auc, "rel": (base - auc) / base},
            "log_loss": {"abs": 0.05, "rel": 0.05 / 0.35},
        },
    }


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(days=14)),
        ("90m", timedelta(minutes=90)),
        ("P30D", timedelta(days=30)),
        ("PT12H", timedelta(hours=12)),
        (3, timedelta(days=3)),
        ("1.5", timedelta(days=1.5)),
        (timedelta(hours=1), timedelta(hours=1)),
        (None, None),
        ("", None),
    ],
)
def test_parse_duration(text, expected) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["soon", "7x", "-1d", -2, True, [1]])
def test_parse_duration_rejects(bad) -> None:
    with pytest.raises(RetrainPolicyError):
        parse_duration(bad, key="cooldown")


def test_format_duration_round_trips() -> None:
    for text in ("1d", "12h", "1d12h", "30m", "0s"):
        assert format_duration(parse_duration(text)) == text


def test_policy_sections() -> None:
    grouped = RetrainPolicy.from_dict(
        {
            "drift": {"dataset_drift": True, "critical_features": ["plan"]},
            "performance": {"metric": "roc_auc", "max_degradation": 0.1},
            "data_volume": {"min_new_labels": 500},
            "age": {"enabled": False, "max_model_age": "30d"},
            "cooldown": "P2D",
        }
    )
    assert grouped.critical_features == ("plan",) and grouped.max_degradation == 0.1
    assert grouped.min_new_labels == 500 and grouped.max_model_age is None
    assert grouped.cooldown == timedelta(days=2)
    off = RetrainPolicy.from_dict({"drift": {"enabled": False}, "performance": False})
    assert not evaluate_drift(off, drift_result(True, ("plan", "region"))).triggered
    assert not evaluate_performance(off, perf_result(auc=0.5)).triggered
    with pytest.raises(RetrainPolicyError, match="both at the top level and in section 'drift'"):
        RetrainPolicy.from_dict({"dataset_drift": False, "drift": {"dataset_drift": True}})
    with pytest.raises(RetrainPolicyError, match=r"unknown key\(s\) \['cooldown'\] in policy"):
        RetrainPolicy.from_dict({"age": {"cooldown": "1d"}})


def test_policy_defaults_and_validation() -> None:
    policy = RetrainPolicy.from_dict(None)
    assert policy.to_dict()["cooldown"] == "1d" and policy.max_degradation == 0.05
    assert set(policy.to_dict()) == set(DEFAULT_POLICY)
    assert RetrainPolicy.from_dict(json.dumps({"cooldown": "3d"})).cooldown == timedelta(days=3)
    assert RetrainPolicy.from_dict({"critical_features": "a, b"}).critical_features == ("a", "b")
    assert RetrainPolicy.from_dict({"deduplicate": "false"}).deduplicate is False
    with pytest.raises(RetrainPolicyError, match=r"unknown policy key\(s\) \['cooldwon'\]"):
        RetrainPolicy.from_dict({"cooldwon": "1d"})
    with pytest.raises(RetrainPolicyError, match="min_new_labels"):
        RetrainPolicy.from_dict({"min_new_labels": 0})
    with pytest.raises(RetrainPolicyError, match="max_degradation: expected a number"):
        RetrainPolicy.from_dict({"max_degradation": "a lot"})


# --------------------------------------------------------------------------- policies


def test_drift_policy() -> None:
    policy = RetrainPolicy.from_dict({})
    quiet = evaluate_drift(policy, drift_result(False, ("plan",)))
    assert quiet.evaluated and not quiet.triggered
    loud = evaluate_drift(policy, drift_result(True, ("plan", "region", "tenure_months")))
    assert loud.triggered
    assert loud.reasons[0].startswith("dataset drift: 3 of 4 columns drifted (share 0.75 >= 0.5)")
    off = evaluate_drift(
        RetrainPolicy.from_dict({"dataset_drift": False}), drift_result(True, ("plan",))
    )
    assert not off.triggered
    assert not evaluate_drift(policy, None).evaluated
    with pytest.raises(RetrainPolicyError, match="not a DriftDetectionOperator result"):
        evaluate_drift(policy, {"status": "ok"})


def test_critical_feature_drift_triggers_without_dataset_drift() -> None:
    policy = RetrainPolicy.from_dict({"critical_features": ["monthly_charges", "missing_col"]})
    ev = evaluate_drift(policy, [drift_result(False, ("monthly_charges",)), drift_result(False)])
    assert ev.triggered
    assert ev.reasons == ["critical feature drift: monthly_charges (ks 0.001)"]
    assert "missing_col" in (ev.note or "")


def test_performance_policy() -> None:
    policy = RetrainPolicy.from_dict({"min_metric": 0.7})
    assert not evaluate_performance(policy, perf_result(auc=0.78, base=0.80)).triggered
    dropped = evaluate_performance(policy, perf_result(auc=0.70, base=0.80))
    assert dropped.triggered
    assert (
        "degraded by 0.1000 (12.5%) from baseline 0.8000 > max_degradation 0.05"
        in dropped.reasons[0]
    )
    low = evaluate_performance(policy, perf_result(auc=0.65, base=0.66))
    assert low.reasons == ["performance: v3 roc_auc 0.6500 < min_metric 0.7"]
    rel = RetrainPolicy.from_dict({"max_degradation": None, "max_relative_degradation": 0.02})
    assert evaluate_performance(rel, perf_result(auc=0.78, base=0.80)).triggered
    loss = RetrainPolicy.from_dict({"metric": "log_loss", "max_metric": 0.3})
    assert (
        evaluate_performance(loss, perf_result())
        .reasons[0]
        .startswith("performance: v3 log_loss 0.4000 > max_metric 0.3")
    )


def test_insufficient_performance_data_never_triggers() -> None:
    policy = RetrainPolicy.from_dict({"min_metric": 0.99})
    ev = evaluate_performance(policy, perf_result("insufficient_data", auc=0.5, rows=12))
    assert ev.evaluated and not ev.triggered
    assert "insufficient data (12 labelled rows" in (ev.note or "")


def test_data_volume_policy() -> None:
    policy = RetrainPolicy.from_dict({"min_new_labels": 1000})
    assert not evaluate_data_volume(RetrainPolicy.from_dict({}), 5000, CHAMPION).evaluated
    assert not evaluate_data_volume(policy, None, CHAMPION).evaluated
    assert not evaluate_data_volume(policy, 999, CHAMPION).triggered
    ev = evaluate_data_volume(policy, 1000, CHAMPION)
    assert ev.triggered and ev.reasons == [
        "data volume: 1,000 new labelled rows since champion v3's training data "
        "(>= min_new_labels 1,000)"
    ]


def test_age_policy() -> None:
    policy = RetrainPolicy.from_dict({"max_model_age": "14d"})
    assert evaluate_age(policy, CHAMPION, CHAMPION.since + timedelta(days=14)).triggered is False
    ev = evaluate_age(policy, CHAMPION, NOW)  # 22 days after promotion
    assert ev.triggered and ev.reasons == [
        "age: champion v3 is 22.0 days old (> max_model_age 14d)"
    ]
    future = ChampionInfo.of("churn", "3", promoted_at=NOW + timedelta(days=1))
    skewed = evaluate_age(policy, future, NOW)
    assert not skewed.triggered and "different clocks" in (skewed.note or "")
    assert not evaluate_age(policy, None, NOW).evaluated


def test_policies_combine_their_reasons() -> None:
    policy = {"min_new_labels": 100, "max_model_age": "7d", "critical_features": ["plan"]}
    decision = decide(
        policy,
        drift=drift_result(True, ("plan", "region", "tenure_months")),
        performance=perf_result(auc=0.7),
        new_labels=150,
        champion=CHAMPION,
        now=NOW,
    )
    assert decision.retrain and decision.suppressed_by is None
    kinds = [r.split(":")[0] for r in decision.reasons]
    assert kinds == [
        "dataset drift",
        "critical feature drift",
        "performance",
        "data volume",
        "age",
    ]
    out = decision.to_dict()
    assert set(out["evaluations"]) == {"drift", "performance", "data_volume", "age"}
    assert all(e["triggered"] for e in out["evaluations"].values())
    json.dumps(out)


def test_nothing_triggered_is_no_retrain() -> None:
    decision = decide(
        {}, drift=drift_result(False), performance=perf_result(), champion=CHAMPION, now=NOW
    )
    assert (decision.retrain, decision.triggered, decision.reasons) == (False, False, [])
    assert decision.suppressed_by is None


# --------------------------------------------------------------------------- cooldown / dedupe


def _state(at: datetime, version: str | None = "3", request_id: str = "mon/1") -> RequestState:
    """A request made while CHAMPION (v3, promoted Jan 10) held the alias."""
    return RequestState(
        last_request_at=at,
        reasons=("x",),
        champion_version=version,
        request_id=request_id,
        champion_promoted_at=CHAMPION.promoted_at.isoformat() if version else None,
    )


def test_cooldown_suppresses_a_recent_request() -> None:
    policy = {"cooldown": "2d", "deduplicate": False}
    state = _state(NOW - timedelta(days=1))
    decision = decide(
        policy,
        drift=drift_result(True, ("plan", "region")),
        champion=CHAMPION,
        state=state,
        now=NOW,
    )
    assert decision.triggered and not decision.retrain
    assert decision.suppressed_by == "cooldown"
    assert "1.0 days ago" in (decision.suppression or "")
    later = decide(
        policy,
        drift=drift_result(True, ("plan", "region")),
        champion=CHAMPION,
        state=state,
        now=NOW + timedelta(days=1),
    )
    assert later.retrain


def test_open_request_is_deduplicated_until_a_new_promotion() -> None:
    policy = {"cooldown": "1d"}
    drift = drift_result(True, ("plan", "region"))
    state = _state(NOW - timedelta(days=3))
    decision = decide(policy, drift=drift, champion=CHAMPION, state=state, now=NOW)
    assert decision.suppressed_by == "open_request" and decision.request_open
    # A new champion promoted after the request closes it.
    new = ChampionInfo.of("churn", "4", promoted_at=NOW - timedelta(days=1))
    decision = decide(policy, drift=drift, champion=new, state=state, now=NOW)
    assert decision.retrain and not decision.request_open
    # Without de-duplication the open request does not suppress.
    assert decide(
        {"deduplicate": False}, drift=drift, champion=CHAMPION, state=state, now=NOW
    ).retrain


def test_open_request_state_derivation() -> None:
    at = NOW - timedelta(days=2)
    assert not is_request_open(None, CHAMPION)
    assert not is_request_open(RequestState(), CHAMPION)
    assert is_request_open(_state(at), CHAMPION)
    assert is_request_open(_state(at), None)  # no champion yet: waits for the first one
    assert not is_request_open(_state(at, version="2"), CHAMPION)  # champion changed
    # The same version promoted again after the request (e.g. a rollback and re-promotion).
    repromoted = ChampionInfo.of("churn", "3", promoted_at=NOW - timedelta(days=1))
    assert not is_request_open(_state(at), repromoted)
    # A state without the champion version falls back to the version's creation time.
    legacy = _state(at, version=None)
    assert is_request_open(legacy, ChampionInfo.of("churn", "3", created_at=at - timedelta(days=1)))
    assert not is_request_open(
        legacy, ChampionInfo.of("churn", "3", created_at=at + timedelta(hours=1))
    )
    # Requests expire, so a rejected retraining does not block requests forever.
    assert not is_request_open(_state(at), CHAMPION, now=NOW, expiry=timedelta(days=1))


def test_open_request_needs_no_common_clock() -> None:
    """The registry stamps promotions with wall-clock time, decisions use data intervals."""
    request_at = datetime(2026, 1, 10, tzinfo=UTC)  # a backfilled (logical) decision time
    wall_clock = ChampionInfo.of("churn", "3", promoted_at=datetime(2026, 11, 27, 13, tzinfo=UTC))
    state = RequestState(
        last_request_at=request_at,
        champion_version="3",
        request_id="mon/1",
        champion_promoted_at=wall_clock.promoted_at.isoformat(),
    )
    # Same champion, same promotion: still open although its promotion time is "later".
    assert is_request_open(state, wall_clock)
    repromoted = ChampionInfo.of("churn", "3", promoted_at=datetime(2026, 11, 28, tzinfo=UTC))
    assert not is_request_open(state, repromoted)


def test_request_marked_handled_is_closed_until_the_next_request() -> None:
    at = NOW - timedelta(days=2)
    handled = RequestState(
        last_request_at=at,
        champion_version="3",
        request_id="mon/1",
        handled_request_id="mon/1",
        handled_at=NOW - timedelta(days=1),
    )
    assert handled.handled and not is_request_open(handled, CHAMPION)
    decision = decide(
        {"cooldown": "1d"},
        drift=drift_result(True, ("plan", "region")),
        champion=CHAMPION,
        state=handled,
        now=NOW,
    )
    assert decision.retrain
    # A newer request is not covered by the old handling mark.
    newer = RequestState(
        last_request_at=at, champion_version="3", request_id="mon/2", handled_request_id="mon/1"
    )
    assert not newer.handled and is_request_open(newer, CHAMPION)


def test_expired_request_allows_a_new_one() -> None:
    state = _state(NOW - timedelta(days=20))
    decision = decide(
        {"request_expiry": "14d"},
        drift=drift_result(True, ("plan", "region")),
        champion=CHAMPION,
        state=state,
        now=NOW,
    )
    assert decision.retrain


def test_a_retry_of_the_same_request_is_not_suppressed_by_itself() -> None:
    state = _state(NOW, request_id="monitoring/2026-01-31T00:00:00+00:00")
    drift = drift_result(True, ("plan", "region"))
    retry = decide(
        {},
        drift=drift,
        champion=CHAMPION,
        state=state,
        now=NOW,
        request_id="monitoring/2026-01-31T00:00:00+00:00",
    )
    assert retry.retrain and retry.retry_of_request
    other = decide(
        {},
        drift=drift,
        champion=CHAMPION,
        state=state,
        now=NOW,
        request_id="monitoring/2026-02-01T00:00:00+00:00",
    )
    assert other.suppressed_by == "cooldown"


def test_clock_is_injectable() -> None:
    fixed = datetime(2026, 3, 1, tzinfo=UTC)
    decision = decide({"max_model_age": "30d"}, champion=CHAMPION, clock=lambda: fixed)
    assert decision.decided_at == fixed
    assert decision.retrain and decision.reasons[0].startswith("age: champion v3 is 50.0 days")


# --------------------------------------------------------------------------- new labels


def test_count_new_labels_from_simulator_partitions(tmp_path: Path) -> None:
    sim = ChurnSimulator(seed=2, n_customers=300, label_delay_days=2)
    start = date(2026, 1, 1)
    sim.write_range(tmp_path, start, date(2026, 1, 10))
    since = datetime(2026, 1, 4, tzinfo=UTC)
    until = datetime(2026, 1, 10, tzinfo=UTC)  # labels of events up to Jan 8 have arrived
    expected = sum(len(sim.labels(date(2026, 1, d))) for d in range(4, 9))
    got = count_new_labels(str(tmp_path / "labels"), since=since, until=until, target="churned")
    assert got == expected > 0
    assert (
        count_new_labels(str(tmp_path / "labels"), since=until, until=until, target="churned") == 0
    )
    with pytest.raises(RetrainPolicyError, match="does not exist"):
        count_new_labels(str(tmp_path / "nowhere"), since=since, until=until, target="churned")


def test_the_decision_records_what_retraining_bought() -> None:
    performance = {
        **perf_result(auc=0.79, base=0.80),
        "comparison": {
            "model_version": "3",
            "rows": 1234,
            "rows_digest": "ab" * 32,
            "days": ["2026-01-15", "2026-01-16"],
            "metrics": {"roc_auc": 0.79},
        },
        "counterfactuals": [
            {
                "version": "2",
                "role": "previous_champion",
                "metrics": {"roc_auc": 0.70},
                "rows": 1234,
                "rows_digest": "ab" * 32,
                "gain": {"roc_auc": 0.09},
            },
            {
                "version": "1",
                "role": "first_champion",
                "metrics": {"roc_auc": 0.62},
                "rows": 1234,
                "rows_digest": "ab" * 32,
                "gain": {"roc_auc": 0.17},
            },
        ],
    }
    decision = decide({"min_metric": 0.7}, performance=performance, now=NOW)
    assert not decision.retrain  # the gain is recorded, it is not a reason to retrain
    assert decision.gain == [
        "v3 over v2 (previous_champion): roc_auc +0.0900 on 1,234 matured rows of "
        "2026-01-15..2026-01-16",
        "v3 over v1 (first_champion): roc_auc +0.1700 on 1,234 matured rows of "
        "2026-01-15..2026-01-16",
    ]
    result = decision.to_result()
    assert result["retraining_gain"] == decision.gain
    detail = result["evaluations"]["performance"]["details"]["results"][0]
    assert detail["gain"]["first_champion"] == {"roc_auc": 0.17}
    assert detail["rows_digest"] == "ab" * 32
    assert decide({"min_metric": 0.7}, performance=perf_result(), now=NOW).gain == []
    same = dict(
        performance,
        counterfactuals=[
            {**performance["counterfactuals"][1], "role": "previous_champion"},
            performance["counterfactuals"][1],
        ],
    )
    assert decide({"min_metric": 0.7}, performance=same, now=NOW).gain == [
        "v3 over v1 (previous_champion, first_champion): roc_auc +0.1700 on 1,234 matured rows "
        "of 2026-01-15..2026-01-16"
    ]
