"""Deterministic simulator of a subscription business that predicts customer churn.

The simulator is the data source of the demo and of the test suite. It models a fixed
population of customers (drawn once from the seed) who show up on some days; every
appearance is one *activity* row with the customer's current features. Each activity row
has a ground-truth churn label that is only known ``label_delay_days`` after the event.

Everything is a pure function of ``(seed, day)``: the same simulator settings produce the
same frame for a day no matter which other days were generated before, or in which order.

Scenarios inject the problems an ML platform has to catch:

* ``covariate_shift``: the feature distributions move (a promotion brings in new,
  low-engagement, basic-plan customers who open more support tickets), the label model
  stays the same.
* ``concept_shift``: the features stay, the relationship between features and churn changes
  (a competitor poaches heavy users and price-sensitive customers).
* ``nulls``, ``renamed_column``, ``wrong_dtype``: data-quality incidents in the raw export.
  Labels are always drawn from the clean features.

Command line::

    python -m include.simulator --root /tmp/lake --start 2026-01-01 --days 14 \\
        --scenario covariate_shift@2026-01-08
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL_FEATURES",
    "CATEGORY_LEVELS",
    "DATA_QUALITY_KINDS",
    "ENTITY_COLUMN",
    "FEATURE_COLUMNS",
    "LABEL_AVAILABLE_COLUMN",
    "LABEL_COLUMN",
    "NUMERIC_FEATURES",
    "SCENARIOS",
    "SCENARIO_KINDS",
    "TIMESTAMP_COLUMN",
    "ChurnSimulator",
    "Scenario",
    "ScenarioPreset",
    "main",
    "parse_scenario",
]

ENTITY_COLUMN = "customer_id"
TIMESTAMP_COLUMN = "event_timestamp"
LABEL_COLUMN = "churned"
LABEL_AVAILABLE_COLUMN = "label_available_at"

NUMERIC_FEATURES: list[str] = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "sessions_last_7d",
    "avg_session_minutes",
    "support_tickets_30d",
    "days_since_last_login",
    "payment_failures_90d",
    "discount_pct",
]
CATEGORICAL_FEATURES: list[str] = ["plan", "region", "payment_method", "device"]
FEATURE_COLUMNS: list[str] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

#: Allowed values of each categorical feature (in a stable order).
CATEGORY_LEVELS: dict[str, list[str]] = {
    "plan": ["basic", "standard", "premium"],
    "region": ["north", "south", "east", "west"],
    "payment_method": ["card", "paypal", "bank_transfer"],
    "device": ["mobile", "desktop", "tablet"],
}

_INT_FEATURES = frozenset(
    {
        "tenure_months",
        "sessions_last_7d",
        "support_tickets_30d",
        "days_since_last_login",
        "payment_failures_90d",
    }
)

DATA_QUALITY_KINDS: frozenset[str] = frozenset({"nulls", "renamed_column", "wrong_dtype"})
SCENARIO_KINDS: frozenset[str] = (
    frozenset({"covariate_shift", "concept_shift"}) | DATA_QUALITY_KINDS
)

_DEFAULT_COLUMN = {
    "nulls": "monthly_charges",
    "renamed_column": "monthly_charges",
    "wrong_dtype": "total_charges",
}
_DEFAULT_NULL_FRACTION = 0.5

_NS_PER_DAY = 86_400 * 1_000_000_000
_NS_PER_MS = 1_000_000
_DAYS_PER_MONTH = 30.4375
_POPULATION_STREAM = 0  # day.toordinal() >= 1, so this never collides with a day stream

# --- population ---------------------------------------------------------------------------
_PLAN_PROBS = [0.45, 0.35, 0.20]
_REGION_PROBS = [0.30, 0.25, 0.25, 0.20]
_PAYMENT_PROBS = [0.55, 0.25, 0.20]
_DEVICE_PROBS = [0.50, 0.35, 0.15]
_PLAN_PRICE = np.array([19.99, 39.99, 69.99])
_DISCOUNT_LEVELS = np.array([0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0])
_DISCOUNT_PROBS = [0.55, 0.10, 0.12, 0.08, 0.07, 0.05, 0.03]
_PAYMENT_FAILURE_RATE = np.array([0.15, 0.10, 0.35])  # card, paypal, bank_transfer (per 90d)
_PLAN_SESSION_FACTOR = np.array([0.85, 1.0, 1.25])

# --- label model: logit = intercept + sum(coef * term) ------------------------------------
# Terms are fixed transformations of the clean features (no data-dependent scaling), so the
# same features always give the same churn probability under the same regime.
_TERMS = (
    "tenure",  # (tenure_months - 20) / 18
    "new_customer",  # tenure_months < 4
    "charges",  # (monthly_charges - 38) / 18
    "sessions",  # (sessions_last_7d - 6) / 4.5
    "minutes",  # (avg_session_minutes - 22) / 12
    "tickets",  # support_tickets_30d
    "inactivity",  # log1p(days_since_last_login)
    "failures",  # payment_failures_90d
    "discount",  # discount_pct / 10
    "plan_basic",
    "plan_premium",
    "pay_paypal",
    "pay_bank_transfer",
    "device_mobile",
    "device_desktop",
    "region_south",
    "region_west",
)

_CLEAN_COEFS: dict[str, float] = {
    "intercept": -2.35,
    "tenure": -0.75,
    "new_customer": 0.9,
    "charges": 0.55,
    "sessions": -0.65,
    "minutes": -0.3,
    "tickets": 0.45,
    "inactivity": 0.45,
    "failures": 0.6,
    "discount": 0.05,
    "plan_basic": 0.3,
    "plan_premium": -0.35,
    "pay_paypal": 0.15,
    "pay_bank_transfer": -0.35,
    "device_mobile": 0.1,
    "device_desktop": -0.1,
    "region_south": 0.1,
    "region_west": 0.05,
}

# After a concept shift a competitor targets engaged and price-sensitive users: heavy users
# churn *more*, price matters much more, loyalty (tenure) protects much less, mobile users
# leave for the competitor's app, and discounts now retain.
_SHIFTED_COEFS: dict[str, float] = {
    "intercept": -2.2,
    "tenure": -0.25,
    "new_customer": 0.3,
    "charges": 1.0,
    "sessions": 0.25,
    "minutes": 0.1,
    "tickets": 0.45,
    "inactivity": 0.0,
    "failures": 0.6,
    "discount": -0.3,
    "plan_basic": 0.0,
    "plan_premium": 0.2,
    "pay_paypal": 0.15,
    "pay_bank_transfer": -0.35,
    "device_mobile": 0.8,
    "device_desktop": -0.4,
    "region_south": 0.1,
    "region_west": 0.05,
}


# ==========================================================================================
# Scenarios
# ==========================================================================================
@dataclass(frozen=True)
class Scenario:
    """A perturbation of the simulated data over a range of days.

    Attributes:
        name: Free label shown in logs and the CLI, e.g. ``"covariate_shift"``.
        kind: One of ``covariate_shift``, ``concept_shift``, ``nulls``, ``renamed_column``,
            ``wrong_dtype``.
        start: First affected day (inclusive).
        end: Last affected day (inclusive); ``None`` means the scenario never ends.
        strength: Scales the effect. For the shifts, ``0`` is no effect and ``1`` the
            nominal effect (larger values extrapolate); strengths of overlapping scenarios
            of the same kind add up. For ``nulls`` it multiplies ``null_fraction``. Ignored
            by ``renamed_column`` and ``wrong_dtype``.
        column: For the data-quality kinds, the affected column. Defaults:
            ``nulls`` -> ``monthly_charges``, ``renamed_column`` -> ``monthly_charges``,
            ``wrong_dtype`` -> ``total_charges``. Must be ``None`` for the shifts.
        params: Kind-specific options: ``null_fraction`` (nulls, default 0.5), ``new_name``
            (renamed_column, default: the column without its trailing ``s``, or with a
            ``_v2`` suffix), ``float_format`` (wrong_dtype, default ``"{:.2f}"`` for float
            columns).
    """

    name: str
    kind: str
    start: date
    end: date | None = None
    strength: float = 1.0
    column: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise ValueError(
                f"unknown scenario kind {self.kind!r}; expected one of {sorted(SCENARIO_KINDS)}"
            )
        if isinstance(self.start, dt.datetime) or not isinstance(self.start, date):
            raise TypeError(f"start must be a datetime.date, got {self.start!r}")
        if self.end is not None:
            if isinstance(self.end, dt.datetime) or not isinstance(self.end, date):
                raise TypeError(f"end must be a datetime.date or None, got {self.end!r}")
            if self.end < self.start:
                raise ValueError(f"end {self.end} is before start {self.start}")
        if not math.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"strength must be a finite number >= 0, got {self.strength}")
        params = dict(self.params)
        column = self.column
        if self.kind in DATA_QUALITY_KINDS:
            column = column or _DEFAULT_COLUMN[self.kind]
            if column not in FEATURE_COLUMNS:
                raise ValueError(f"column {column!r} is not a feature column")
            if self.kind == "wrong_dtype" and column not in NUMERIC_FEATURES:
                raise ValueError(f"wrong_dtype needs a numeric column, got {column!r}")
            if self.kind == "nulls":
                fraction = float(params.setdefault("null_fraction", _DEFAULT_NULL_FRACTION))
                if not 0.0 <= fraction <= 1.0:
                    raise ValueError(f"null_fraction must be in [0, 1], got {fraction}")
            if self.kind == "renamed_column":
                new_name = params.setdefault("new_name", _default_new_name(column))
                if not isinstance(new_name, str) or not new_name or new_name == column:
                    raise ValueError(f"new_name must be a new column name, got {new_name!r}")
        elif column is not None:
            raise ValueError(f"scenario kind {self.kind!r} does not take a column")
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "params", params)

    def active(self, day: date) -> bool:
        """Whether ``day`` lies inside ``[start, end]`` (``end`` ``None`` = open ended)."""
        return self.start <= day and (self.end is None or day <= self.end)

    def describe(self) -> str:
        """Short human-readable form, e.g. ``covariate_shift[2026-01-08..]``."""
        end = self.end.isoformat() if self.end else ""
        extra = f" x{self.strength:g}" if self.strength != 1.0 else ""
        col = f" {self.column}" if self.column else ""
        return f"{self.name}[{self.start.isoformat()}..{end}]{col}{extra}"


def _default_new_name(column: str) -> str:
    return column[:-1] if column.endswith("s") else f"{column}_v2"


class ScenarioPreset(Protocol):
    """A named scenario factory: ``SCENARIOS[name](start, end=None, strength=1.0)``."""

    def __call__(
        self, start: date, end: date | None = None, *, strength: float = 1.0
    ) -> list[Scenario]: ...


def _covariate_shift(
    start: date, end: date | None = None, *, strength: float = 1.0
) -> list[Scenario]:
    return [Scenario("covariate_shift", "covariate_shift", start, end, strength)]


def _concept_shift(
    start: date, end: date | None = None, *, strength: float = 1.0
) -> list[Scenario]:
    return [Scenario("concept_shift", "concept_shift", start, end, strength)]


def _covariate_and_concept_shift(
    start: date, end: date | None = None, *, strength: float = 1.0
) -> list[Scenario]:
    return _covariate_shift(start, end, strength=strength) + _concept_shift(
        start, end, strength=strength
    )


def _nulls(start: date, end: date | None = None, *, strength: float = 1.0) -> list[Scenario]:
    return [
        Scenario("nulls", "nulls", start, end, strength, "monthly_charges", {"null_fraction": 0.5})
    ]


def _renamed_column(
    start: date, end: date | None = None, *, strength: float = 1.0
) -> list[Scenario]:
    return [
        Scenario(
            "renamed_column",
            "renamed_column",
            start,
            end,
            strength,
            "monthly_charges",
            {"new_name": "monthly_charge"},
        )
    ]


def _wrong_dtype(start: date, end: date | None = None, *, strength: float = 1.0) -> list[Scenario]:
    return [Scenario("wrong_dtype", "wrong_dtype", start, end, strength, "total_charges")]


#: Named presets. Each returns a list of scenarios (a preset may combine several).
SCENARIOS: dict[str, ScenarioPreset] = {
    "covariate_shift": _covariate_shift,
    "concept_shift": _concept_shift,
    "covariate_and_concept_shift": _covariate_and_concept_shift,
    "nulls": _nulls,
    "renamed_column": _renamed_column,
    "wrong_dtype": _wrong_dtype,
}


def parse_scenario(spec: str) -> list[Scenario]:
    """Parse ``NAME@START[:END][*STRENGTH]`` into the scenarios of preset ``NAME``.

    Examples: ``covariate_shift@2026-01-08``, ``nulls@2026-01-10:2026-01-10``,
    ``concept_shift@2026-01-08*0.5``.
    """
    text = spec.strip()
    strength = 1.0
    if "*" in text:
        text, _, strength_text = text.rpartition("*")
        strength = float(strength_text)
    name, sep, when = text.partition("@")
    if not sep or not when:
        raise ValueError(f"scenario spec {spec!r} must look like NAME@YYYY-MM-DD[:YYYY-MM-DD]")
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; presets: {sorted(SCENARIOS)}")
    start_text, _, end_text = when.partition(":")
    start = date.fromisoformat(start_text)
    end = date.fromisoformat(end_text) if end_text else None
    return SCENARIOS[name](start, end, strength=strength)


# ==========================================================================================
# Simulator
# ==========================================================================================
@dataclass(frozen=True)
class _Population:
    customer_id: np.ndarray
    plan: np.ndarray  # level index into CATEGORY_LEVELS["plan"]
    region: np.ndarray
    payment_method: np.ndarray
    device: np.ndarray
    tenure_at_start: np.ndarray  # months at start_date
    price_factor: np.ndarray
    discount_pct: np.ndarray
    session_rate: np.ndarray  # expected sessions per 7 days
    minutes_mean: np.ndarray
    ticket_rate: np.ndarray  # expected tickets per 30 days
    failure_rate: np.ndarray  # expected payment failures per 90 days


@dataclass(frozen=True)
class _Day:
    """One simulated day before data-quality corruption."""

    clean: pd.DataFrame
    churn_probability: np.ndarray
    churned: np.ndarray


class ChurnSimulator:
    """Deterministic generator of daily activity and delayed churn labels.

    Args:
        seed: Non-negative seed; the whole simulation is a function of it.
        n_customers: Size of the customer population.
        start_date: First day of the business; days before it have no data.
        daily_active_fraction: Expected share of customers active on a day.
        label_delay_days: Days between an activity row and the arrival of its label.
        scenarios: Perturbations applied on the days they are active.
    """

    def __init__(
        self,
        *,
        seed: int = 42,
        n_customers: int = 5000,
        start_date: date = date(2026, 1, 1),
        daily_active_fraction: float = 0.3,
        label_delay_days: int = 7,
        scenarios: Sequence[Scenario] = (),
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if n_customers < 1:
            raise ValueError(f"n_customers must be >= 1, got {n_customers}")
        if not 0.0 < daily_active_fraction <= 1.0:
            raise ValueError(
                f"daily_active_fraction must be in (0, 1], got {daily_active_fraction}"
            )
        if label_delay_days < 0:
            raise ValueError(f"label_delay_days must be >= 0, got {label_delay_days}")
        for scenario in scenarios:
            if not isinstance(scenario, Scenario):
                raise TypeError(f"expected Scenario, got {scenario!r}")
        self.seed = int(seed)
        self.n_customers = int(n_customers)
        self.start_date = _as_date(start_date)
        self.daily_active_fraction = float(daily_active_fraction)
        self.label_delay_days = int(label_delay_days)
        self.scenarios: tuple[Scenario, ...] = tuple(scenarios)
        self._population = self._make_population()

    def __repr__(self) -> str:
        return (
            f"ChurnSimulator(seed={self.seed}, n_customers={self.n_customers}, "
            f"start_date={self.start_date.isoformat()}, "
            f"daily_active_fraction={self.daily_active_fraction}, "
            f"label_delay_days={self.label_delay_days}, "
            f"scenarios={[s.describe() for s in self.scenarios]})"
        )

    # -- public API ------------------------------------------------------------------------
    def active_scenarios(self, day: date) -> list[Scenario]:
        """The scenarios in effect on ``day``, in the order they were given."""
        day = _as_date(day)
        return [s for s in self.scenarios if s.active(day)]

    def activity(self, day: date) -> pd.DataFrame:
        """Activity rows of ``day``: one row per active customer, with all features.

        Columns: ``customer_id`` (int64), ``event_timestamp`` (datetime64[ns, UTC], inside the
        day), then ``FEATURE_COLUMNS`` (categoricals as plain ``str``/object). Rows are sorted
        by ``customer_id``. Active data-quality scenarios are applied to this output.
        """
        day = self._check_day(day)
        frame = self._simulate(day).clean.copy()
        dq_scenarios = [s for s in self.active_scenarios(day) if s.kind in DATA_QUALITY_KINDS]
        if dq_scenarios:
            rng = np.random.default_rng(self._day_seed(day).spawn(4)[3])
            renamed: dict[str, str] = {}
            for scenario in dq_scenarios:
                frame = _apply_data_quality(frame, scenario, rng, renamed)
        return frame

    def labels(self, day: date) -> pd.DataFrame:
        """Ground truth for the activity rows of ``day`` (same rows, same order).

        Columns: ``customer_id``, ``event_timestamp``, ``churned`` (int64, 0/1) and
        ``label_available_at`` (midnight UTC of ``day + label_delay_days``).
        """
        day = self._check_day(day)
        sim = self._simulate(day)
        available = pd.Timestamp(day + dt.timedelta(days=self.label_delay_days), tz="UTC")
        frame = sim.clean[[ENTITY_COLUMN, TIMESTAMP_COLUMN]].copy()
        frame[LABEL_COLUMN] = sim.churned.astype(np.int64)
        frame[LABEL_AVAILABLE_COLUMN] = pd.Series(available, index=frame.index).astype(
            "datetime64[ns, UTC]"
        )
        return frame

    def labelled(self, first: date, days: int) -> pd.DataFrame:
        """A training-style table: the activity of ``days`` days from ``first`` joined with
        its ``churned`` label (one row per customer and day)."""
        keys = [ENTITY_COLUMN, TIMESTAMP_COLUMN]
        frames = [
            self.activity(day).merge(self.labels(day)[[*keys, LABEL_COLUMN]], on=keys)
            for day in self.days(first, _as_date(first) + dt.timedelta(days=days - 1))
        ]
        return pd.concat(frames, ignore_index=True)

    def churn_probability(self, day: date) -> pd.Series:
        """True churn probability of each activity row of ``day`` (diagnostics, tests)."""
        day = self._check_day(day)
        sim = self._simulate(day)
        return pd.Series(
            sim.churn_probability,
            index=sim.clean[ENTITY_COLUMN].to_numpy(),
            name="churn_probability",
        ).rename_axis(ENTITY_COLUMN)

    def labels_available_on(self, day: date) -> pd.DataFrame:
        """Labels that arrive on ``day``: those of activity day ``day - label_delay_days``.

        Returns an empty frame with the label schema when that activity day precedes
        ``start_date``.
        """
        source = _as_date(day) - dt.timedelta(days=self.label_delay_days)
        if source < self.start_date:
            return _empty_labels()
        return self.labels(source)

    @staticmethod
    def days(start: date, end: date) -> list[date]:
        """All days from ``start`` to ``end`` inclusive (empty when ``end < start``)."""
        start, end = _as_date(start), _as_date(end)
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

    def write_day(self, root: str | os.PathLike[str], day: date) -> dict[str, str]:
        """Write the raw and label partitions of ``day`` under ``root``.

        Files: ``<root>/raw/dt=YYYY-MM-DD/activity.parquet`` (activity of ``day``) and
        ``<root>/labels/dt=YYYY-MM-DD/labels.parquet`` (labels arriving on ``day``; possibly
        empty, always with the schema). Each file is written to a temporary file in its
        directory and moved into place, so readers never see a partial file and reruns
        replace the previous output.

        Returns:
            ``{"raw": <activity path>, "labels": <labels path>}``.
        """
        day = self._check_day(day)
        partition = f"dt={day.isoformat()}"
        base = Path(os.fspath(root))
        raw_path = base / "raw" / partition / "activity.parquet"
        labels_path = base / "labels" / partition / "labels.parquet"
        _write_parquet_atomic(self.activity(day), raw_path)
        _write_parquet_atomic(self.labels_available_on(day), labels_path)
        return {"raw": str(raw_path), "labels": str(labels_path)}

    def write_range(
        self, root: str | os.PathLike[str], start: date, end: date
    ) -> list[dict[str, str]]:
        """``write_day`` for every day from ``start`` to ``end`` inclusive."""
        return [self.write_day(root, day) for day in self.days(start, end)]

    # -- internals -------------------------------------------------------------------------
    def _check_day(self, day: date) -> date:
        day = _as_date(day)
        if day < self.start_date:
            raise ValueError(
                f"{day} is before the simulation start_date {self.start_date}: no activity"
            )
        return day

    def _day_seed(self, day: date) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.seed, day.toordinal()])

    def _make_population(self) -> _Population:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _POPULATION_STREAM]))
        n = self.n_customers
        plan = rng.choice(3, size=n, p=_PLAN_PROBS)
        region = rng.choice(4, size=n, p=_REGION_PROBS)
        payment = rng.choice(3, size=n, p=_PAYMENT_PROBS)
        device = rng.choice(3, size=n, p=_DEVICE_PROBS)
        tenure = np.minimum(np.floor(rng.gamma(1.3, 16.0, size=n)), 72.0)
        price_factor = rng.lognormal(0.0, 0.08, size=n)
        discount = rng.choice(_DISCOUNT_LEVELS, size=n, p=_DISCOUNT_PROBS)
        device_factor = np.array([0.9, 1.15, 1.0])[device]
        session_rate = np.minimum(
            np.exp(rng.normal(np.log(6.0), 0.55, size=n))
            * _PLAN_SESSION_FACTOR[plan]
            * device_factor,
            35.0,
        )
        minutes_mean = (
            np.exp(rng.normal(np.log(22.0), 0.4, size=n)) * np.array([0.8, 1.3, 1.1])[device]
        )
        ticket_rate = np.exp(rng.normal(np.log(0.35), 0.8, size=n))
        failure_rate = _PAYMENT_FAILURE_RATE[payment] * rng.lognormal(0.0, 0.6, size=n)
        return _Population(
            customer_id=np.arange(100_001, 100_001 + n, dtype=np.int64),
            plan=plan,
            region=region,
            payment_method=payment,
            device=device,
            tenure_at_start=tenure,
            price_factor=price_factor,
            discount_pct=discount,
            session_rate=session_rate,
            minutes_mean=minutes_mean,
            ticket_rate=ticket_rate,
            failure_rate=failure_rate,
        )

    def _strength(self, day: date, kind: str) -> float:
        return float(sum(s.strength for s in self.scenarios if s.kind == kind and s.active(day)))

    def _simulate(self, day: date) -> _Day:
        """Generate the clean activity of ``day`` and its labels.

        Independent random streams are spawned from ``(seed, day)`` for the selection of
        active customers, their daily features, and the labels, so a concept shift changes
        labels only and never the features.
        """
        select_ss, feature_ss, label_ss, _dq_ss = self._day_seed(day).spawn(4)
        pop = self._population
        cov = self._strength(day, "covariate_shift")
        concept = self._strength(day, "concept_shift")
        months_elapsed = math.floor((day - self.start_date).days / _DAYS_PER_MONTH)
        tenure_all = pop.tenure_at_start + months_elapsed

        # Which customers are active: weighted sampling without replacement (Efraimidis-
        # Spirakis keys). A covariate shift favours new, basic-plan customers.
        rng = np.random.default_rng(select_ss)
        n = self.n_customers
        k = int(rng.binomial(n, self.daily_active_fraction))
        log_weight = cov * (-tenure_all / 20.0 + 0.9 * (pop.plan == 0) - 0.9 * (pop.plan == 2))
        keys = np.log(rng.random(n)) * np.exp(-(log_weight - log_weight.max()))
        idx = np.sort(np.argpartition(-keys, k - 1)[:k]) if 0 < k < n else np.arange(n)[:k]

        # Daily features of the active customers.
        rng = np.random.default_rng(feature_ss)
        m = idx.size
        engagement = max(0.05, 1.0 - 0.35 * cov)
        plan = pop.plan[idx]
        tenure = tenure_all[idx].astype(np.int64)
        discount = pop.discount_pct[idx]
        monthly = np.round(
            _PLAN_PRICE[plan] * pop.price_factor[idx] * (1.0 - discount / 100.0),
            2,
        )
        total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.92, 1.03, size=m), 2)
        rate = pop.session_rate[idx] * engagement
        sessions = rng.poisson(rate).astype(np.int64)
        minutes = np.where(
            sessions > 0,
            np.round(pop.minutes_mean[idx] * rng.lognormal(0.0, 0.25, size=m) * engagement, 1),
            0.0,
        )
        login_p = 1.0 - np.exp(-rate / 7.0)
        days_since = np.minimum(rng.geometric(np.clip(login_p, 0.01, 1.0)) - 1, 90).astype(np.int64)
        tickets = rng.poisson(pop.ticket_rate[idx] * (1.0 + 0.5 * cov)).astype(np.int64)
        failures = rng.poisson(pop.failure_rate[idx]).astype(np.int64)
        offsets_ms = rng.integers(0, _NS_PER_DAY // _NS_PER_MS, size=m)
        day_ns = pd.Timestamp(day, tz="UTC").value
        timestamps = pd.DatetimeIndex(day_ns + offsets_ms * _NS_PER_MS, tz="UTC")

        levels = {col: np.array(vals, dtype=object) for col, vals in CATEGORY_LEVELS.items()}
        clean = pd.DataFrame(
            {
                ENTITY_COLUMN: pop.customer_id[idx],
                TIMESTAMP_COLUMN: timestamps,
                "tenure_months": tenure,
                "monthly_charges": monthly.astype(np.float64),
                "total_charges": total.astype(np.float64),
                "sessions_last_7d": sessions,
                "avg_session_minutes": minutes.astype(np.float64),
                "support_tickets_30d": tickets,
                "days_since_last_login": days_since,
                "payment_failures_90d": failures,
                "discount_pct": discount.astype(np.float64),
                "plan": levels["plan"][plan],
                "region": levels["region"][pop.region[idx]],
                "payment_method": levels["payment_method"][pop.payment_method[idx]],
                "device": levels["device"][pop.device[idx]],
            }
        )
        clean = clean.astype({TIMESTAMP_COLUMN: "datetime64[ns, UTC]"})

        # Labels from the clean features.
        terms = _label_terms(clean)
        logit = (1.0 - concept) * _logit(terms, _CLEAN_COEFS) + concept * _logit(
            terms, _SHIFTED_COEFS
        )
        probability = 1.0 / (1.0 + np.exp(-logit))
        rng = np.random.default_rng(label_ss)
        churned = (rng.random(m) < probability).astype(np.int64)
        return _Day(clean=clean, churn_probability=probability, churned=churned)


# ==========================================================================================
# Helpers
# ==========================================================================================
def _as_date(value: date) -> date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise TypeError(f"expected a datetime.date, got {value!r}")


def _label_terms(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    def num(col: str) -> np.ndarray:
        return frame[col].to_numpy(dtype=np.float64)

    def cat(col: str, value: str) -> np.ndarray:
        return np.asarray(frame[col].to_numpy() == value, dtype=np.float64)

    tenure = num("tenure_months")
    return {
        "tenure": (tenure - 20.0) / 18.0,
        "new_customer": (tenure < 4).astype(np.float64),
        "charges": (num("monthly_charges") - 38.0) / 18.0,
        "sessions": (num("sessions_last_7d") - 6.0) / 4.5,
        "minutes": (num("avg_session_minutes") - 22.0) / 12.0,
        "tickets": num("support_tickets_30d"),
        "inactivity": np.log1p(num("days_since_last_login")),
        "failures": num("payment_failures_90d"),
        "discount": num("discount_pct") / 10.0,
        "plan_basic": cat("plan", "basic"),
        "plan_premium": cat("plan", "premium"),
        "pay_paypal": cat("payment_method", "paypal"),
        "pay_bank_transfer": cat("payment_method", "bank_transfer"),
        "device_mobile": cat("device", "mobile"),
        "device_desktop": cat("device", "desktop"),
        "region_south": cat("region", "south"),
        "region_west": cat("region", "west"),
    }


def _logit(terms: Mapping[str, np.ndarray], coefs: Mapping[str, float]) -> np.ndarray:
    n = len(next(iter(terms.values())))
    out = np.full(n, coefs["intercept"], dtype=np.float64)
    for name in _TERMS:
        out += coefs[name] * terms[name]
    return out


def _apply_data_quality(
    frame: pd.DataFrame,
    scenario: Scenario,
    rng: np.random.Generator,
    renamed: dict[str, str],
) -> pd.DataFrame:
    """Apply one data-quality scenario; ``renamed`` maps original to current column names
    so that scenarios still find their column after an earlier rename on the same day."""
    assert scenario.column is not None  # set by Scenario.__post_init__ for data-quality kinds
    column = renamed.get(scenario.column, scenario.column)
    if column not in frame.columns:
        raise ValueError(
            f"scenario {scenario.describe()} targets column {column!r}, which is not in the "
            f"frame (columns: {list(frame.columns)})"
        )
    if scenario.kind == "nulls":
        fraction = min(1.0, float(scenario.params["null_fraction"]) * scenario.strength)
        mask = rng.random(len(frame)) < fraction
        series = frame[column]
        if series.dtype == object:
            frame[column] = series.where(~mask, None)
        else:
            frame[column] = series.astype(np.float64).where(~mask, np.nan)
    elif scenario.kind == "renamed_column":
        new_name = str(scenario.params["new_name"])
        if new_name in frame.columns:
            raise ValueError(f"scenario {scenario.describe()}: column {new_name!r} exists")
        frame = frame.rename(columns={column: new_name})
        renamed[scenario.column] = new_name
    elif scenario.kind == "wrong_dtype":
        series = frame[column]
        values: list[str | None]
        if pd.api.types.is_integer_dtype(series.dtype):
            fmt = str(scenario.params.get("int_format", "{:d}"))
            values = [fmt.format(int(v)) for v in series.to_numpy()]
        else:
            fmt = str(scenario.params.get("float_format", "{:.2f}"))
            values = [None if pd.isna(v) else fmt.format(float(v)) for v in series.to_numpy()]
        frame[column] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def _empty_labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            ENTITY_COLUMN: pd.Series([], dtype="int64"),
            TIMESTAMP_COLUMN: pd.Series([], dtype="datetime64[ns, UTC]"),
            LABEL_COLUMN: pd.Series([], dtype="int64"),
            LABEL_AVAILABLE_COLUMN: pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )


def _write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Object columns always hold strings (or None): give them a string type even when the
    # frame is empty or all-null, so the file schema does not depend on the data.
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    for i, name in enumerate(frame.columns):
        if frame[name].dtype == object:
            schema = schema.set(i, pa.field(name, pa.string()))
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ==========================================================================================
# CLI
# ==========================================================================================
def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m include.simulator",
        description="Write simulated churn activity and late labels as daily parquet partitions.",
    )
    parser.add_argument("--root", required=True, help="output directory (raw/ and labels/)")
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=14, help="number of days (default 14)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--customers", type=int, default=5000, help="population size")
    parser.add_argument("--active-fraction", type=float, default=0.3)
    parser.add_argument("--label-delay", type=int, default=7, help="label delay in days")
    parser.add_argument(
        "--simulation-start",
        type=date.fromisoformat,
        default=None,
        help="first day of the business (default: --start)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME@START[:END][*STRENGTH]",
        help=f"inject a preset, repeatable; presets: {', '.join(SCENARIOS)}",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m include.simulator``."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be >= 1")
    try:
        scenarios = [s for spec in args.scenario for s in parse_scenario(spec)]
    except ValueError as exc:
        parser.error(str(exc))
    sim = ChurnSimulator(
        seed=args.seed,
        n_customers=args.customers,
        start_date=args.simulation_start or args.start,
        daily_active_fraction=args.active_fraction,
        label_delay_days=args.label_delay,
        scenarios=scenarios,
    )
    end = args.start + dt.timedelta(days=args.days - 1)
    for day in sim.days(args.start, end):
        paths = sim.write_day(args.root, day)
        labels = sim.labels(day)
        arrived = len(sim.labels_available_on(day))
        active = ", ".join(s.describe() for s in sim.active_scenarios(day)) or "-"
        print(
            f"{day.isoformat()} rows={len(labels)} churn_rate={labels[LABEL_COLUMN].mean():.3f} "
            f"labels_arrived={arrived} scenarios={active} raw={paths['raw']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
