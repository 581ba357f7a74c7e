"""What a validation found, in a form made for messages, reports and XCom (pure, no GX).

GX records expectations that cannot be evaluated (a missing column, a wrong type for a range
check) as failed with an exception. They become failed expectations here with a short observed
value such as ``column not found: monthly_charges``, so a data-structure problem shows up as a
validation failure and not as a crash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_provider.core.results import make_result
from mlops_provider.core.validation.suite import COLUMN_KWARGS, COLUMN_LIST_KWARGS, column_label
from mlops_provider.core.validation.suite import referenced_columns as _referenced_columns

__all__ = [
    "INDEX_META",
    "STATUSES",
    "ExpectationOutcome",
    "ValidationOutcome",
    "outcome_from_result",
    "outcomes_from_gx",
    "result_json",
]

#: Meta key that carries an expectation's position in the suite through GX.
INDEX_META = "suite_index"
#: The result's ``status`` words: every expectation held / failed and the task went on /
#: failed and the input was quarantined / failed and the task failed.
STATUSES = ("passed", "warned", "quarantined", "failed")
_NAMING_KWARGS = (*COLUMN_KWARGS, *COLUMN_LIST_KWARGS)
_TYPE_EXPECTATIONS = (
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_of_type",
)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict in a form made for messages, reports and XCom."""

    index: int
    expectation_type: str
    kwargs: dict[str, Any]
    success: bool
    observed: str
    unexpected_percent: float | None = None
    unexpected_count: int | None = None
    partial_unexpected: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def column(self) -> str | None:
        """The column(s) the expectation is about, comma-separated; None for table-level."""
        return column_label(self.kwargs)

    @property
    def short_name(self) -> str:
        """``expect_column_values_to_not_be_null(monthly_charges)`` style name."""
        col = self.column
        return f"{self.expectation_type}({col})" if col else self.expectation_type

    def describe(self) -> str:
        """One line: name, observed value and the expectation's kwargs."""
        shown = {k: v for k, v in self.kwargs.items() if k not in _NAMING_KWARGS}
        expected = f"; expected {_short(shown, 200)}" if shown else ""
        return f"{self.short_name}: observed {self.observed}{expected}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "expectation": self.short_name,
            "type": self.expectation_type,
            "column": self.column,
            "success": self.success,
            "observed": self.observed,
            "unexpected_percent": self.unexpected_percent,
            "unexpected_count": self.unexpected_count,
            "error": self.error,
            "kwargs": self.kwargs,
        }


@dataclass
class ValidationOutcome:
    """What a validation found, where its result and report are, and its XCom result."""

    dataset: str
    suite_name: str
    success: bool
    row_count: int
    columns: list[str]
    results: list[ExpectationOutcome]
    suite_parameters: dict[str, Any]
    null_share: dict[str, float]
    seconds: float
    result_uri: str | None = None
    report_uri: str | None = None
    quarantine_uri: str | None = None
    title: str | None = None
    gx_result: dict[str, Any] = field(default_factory=dict, repr=False)
    report_html: str = field(default="", repr=False)

    @property
    def evaluated_expectations(self) -> int:
        return len(self.results)

    @property
    def successful_expectations(self) -> int:
        return sum(1 for r in self.results if r.success)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def to_summary(self) -> dict[str, Any]:
        """The validation's own keys (the result's details; also saved in the JSON result)."""
        return {
            "success": self.success,
            "dataset": self.dataset,
            "suite": self.suite_name,
            "row_count": self.row_count,
            "evaluated_expectations": self.evaluated_expectations,
            "successful_expectations": self.successful_expectations,
            "failed_expectations": len(self.failed),
            "failed": [r.short_name for r in self.failed],
            "result_uri": self.result_uri,
            "report_uri": self.report_uri,
            "quarantine_uri": self.quarantine_uri,
        }

    def to_result(self, status: str) -> dict[str, Any]:
        """The operator's result (docs/results.md): the common keys, ``rows`` = rows validated,
        ``reasons`` = one line per failed expectation (and one saying so when the dataset had
        no rows), then :meth:`to_summary`'s keys."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        summary = self.to_summary()
        report_uri = summary.pop("report_uri")
        reasons = [r.describe() for r in self.failed]
        if self.row_count == 0:
            reasons.append(
                f"dataset {self.dataset} has 0 rows (allow_empty=True): expectations on its "
                "values hold on no data"
            )
        return make_result(
            status=status,
            passed=self.success,
            reasons=reasons,
            report_uri=report_uri,
            rows=self.row_count,
            **summary,
        )

    def failure_message(self, *, limit: int = 15) -> str:
        """Multi-line message listing the failed expectations (observed value, expectation) and
        where the full result is."""
        failed = self.failed
        lines = [
            f"dataset {self.dataset} failed {len(failed)} of {self.evaluated_expectations} "
            f"expectation(s) of suite '{self.suite_name}' ({self.row_count:,} rows):"
        ]
        lines += [f"  - {r.describe()}" for r in failed[:limit]]
        if len(failed) > limit:
            lines.append(f"  ... and {len(failed) - limit} more")
        if self.result_uri:
            lines.append(f"full result: {self.result_uri}")
        if self.report_uri:
            lines.append(f"report: {self.report_uri}")
        if self.quarantine_uri:
            lines.append(f"input copied to quarantine: {self.quarantine_uri}")
        return "\n".join(lines)


def result_json(outcome: ValidationOutcome) -> str:
    """The full GX result with the summary under ``meta.mlops.summary``, as JSON text."""
    payload = dict(outcome.gx_result)
    meta = dict(payload.get("meta") or {})
    meta["mlops"] = {**dict(meta.get("mlops") or {}), "summary": outcome.to_summary()}
    payload["meta"] = meta
    return json.dumps(payload, indent=1, default=str)


# ------------------------------------------------------------------------------------------
# From GX's result
# ------------------------------------------------------------------------------------------
def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    messages = []
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            msg = str(value.get("exception_message") or "").strip()
            if msg and msg not in messages:
                messages.append(msg)
    return "; ".join(messages) if messages else None


def _mismatched(result: Mapping[str, Any]) -> str | None:
    details = result.get("details") or {}
    mismatched = details.get("mismatched") if isinstance(details, Mapping) else None
    if not isinstance(mismatched, Mapping) or not mismatched:
        return None
    parts = []
    if mismatched.get("missing"):
        parts.append(f"missing columns {mismatched['missing']}")
    if mismatched.get("unexpected"):
        parts.append(f"unexpected columns {mismatched['unexpected']}")
    return "; ".join(parts)


def _unexpected(kind: str, result: Mapping[str, Any]) -> str:
    pct = float(result["unexpected_percent"])
    sample = result.get("partial_unexpected_list") or []
    if kind in _TYPE_EXPECTATIONS and sample:
        # Object columns are checked value by value: name the Python types found.
        found = sorted({type(v).__name__ for v in sample if v is not None})
        return f"{pct:.2f}% of values of type {found}, e.g. {_short(list(sample[:3]), 80)}"
    count = result.get("unexpected_count")
    total = result.get("element_count")
    text = f"{pct:.2f}% unexpected"
    if count is not None and total is not None:
        text += f" ({count} of {total} rows)"
    if sample:
        text += f", e.g. {_short(list(sample[:5]), 120)}"
    return text


def _observed(kind: str, result: Mapping[str, Any]) -> str:
    mismatched = _mismatched(result)
    if mismatched is not None:
        return mismatched
    if result.get("unexpected_percent") is not None:
        return _unexpected(kind, result)
    if "observed_value" in result:
        return _short(result["observed_value"])
    if result.get("element_count") == 0 or result.get("unexpected_count") == 0:
        return "no rows"
    return "n/a"


def outcome_from_result(
    item: Mapping[str, Any], index: int, columns: Sequence[str]
) -> ExpectationOutcome:
    """One expectation's outcome from its entry in GX's ``results``."""
    config = item.get("expectation_config") or {}
    kwargs = {k: v for k, v in dict(config.get("kwargs") or {}).items() if k != "batch_id"}
    result = dict(item.get("result") or {})
    error = _exception_message(item.get("exception_info"))
    success = bool(item.get("success"))
    if error is not None:
        missing = [c for c in _referenced_columns(kwargs) if c not in columns]
        if missing:
            observed = f"column not found: {', '.join(missing)}"
            error = f"column(s) {missing} not in the dataset; {error}"
        else:
            observed = f"error: {_short(error.splitlines()[0], 200)}"
        success = False
    else:
        observed = _observed(str(config.get("type")), result)
    pct = result.get("unexpected_percent")
    count = result.get("unexpected_count")
    return ExpectationOutcome(
        index=index,
        expectation_type=str(config.get("type")),
        kwargs=kwargs,
        success=success,
        observed=observed,
        unexpected_percent=float(pct)
        if isinstance(pct, (int, float)) and math.isfinite(pct)
        else None,
        unexpected_count=int(count) if isinstance(count, int) else None,
        partial_unexpected=list(result.get("partial_unexpected_list") or [])[:20],
        error=error,
    )


def outcomes_from_gx(
    gx_result: Mapping[str, Any], columns: Sequence[str]
) -> list[ExpectationOutcome]:
    """Every expectation's outcome, in suite order."""
    outcomes = []
    for position, item in enumerate(gx_result.get("results") or []):
        meta = (item.get("expectation_config") or {}).get("meta") or {}
        outcomes.append(outcome_from_result(item, int(meta.get(INDEX_META, position)), columns))
    return sorted(outcomes, key=lambda o: o.index)
