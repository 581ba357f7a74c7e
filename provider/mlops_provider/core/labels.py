"""Entity + label datasets for training and evaluation, from labels that have arrived.

Labels arrive late: the label of an event on day D lands in the labels partition of day
``D + delay``. As of a point in time, the usable examples are those whose label has arrived and
whose features were published (quarantined days have no features). The most recent labelled
event day(s) are kept apart for evaluation, so a candidate and the champion are compared on the
newest ground truth, and the days before form the training window.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from mlops_provider.core import io
from mlops_provider.core.errors import InputError
from mlops_provider.core.io import partition_days
from mlops_provider.core.params import as_list
from mlops_provider.core.times import to_utc

log = logging.getLogger(__name__)

__all__ = ["LabelWindow", "LabelWindowError", "build_label_window", "partition_days"]

_DAY = "__event_day__"


class LabelWindowError(InputError):
    """Too few labelled days, or label partitions without the named columns."""


@dataclass(frozen=True)
class LabelWindow:
    """The entity/label datasets written for one training run."""

    train_uri: str
    eval_uri: str
    train_days: list[str]
    eval_days: list[str]
    train_rows: int
    eval_rows: int

    def to_dict(self) -> dict[str, object]:
        return {
            "train_uri": self.train_uri,
            "eval_uri": self.eval_uri,
            "train_days": self.train_days,
            "eval_days": self.eval_days,
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
        }


def _arrived_labels(
    labels_uri: str, before: date, columns: list[str], conn_id: str | None
) -> pa.Table:
    """The label rows (``columns`` only) of every partition that arrived before ``before``."""
    tables = []
    for day, part in io.list_partitions(labels_uri, conn_id=conn_id).items():
        if day >= before:
            continue
        table = io.read_table(part, conn_id=conn_id)
        if not table.num_rows:
            continue
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise LabelWindowError(
                f"label partition {part} lacks column(s) {missing}; it has {table.column_names}"
            )
        tables.append(table.select(columns))
    if not tables:
        raise LabelWindowError(f"no labels have arrived under {labels_uri} before {before}")
    return pa.concat_tables(tables)


def _split_days(
    usable: list[date], *, window_days: int, eval_days: int
) -> tuple[list[date], list[date]]:
    """``(train days, held-out days)``: the newest ``eval_days`` are held out."""
    if len(usable) < eval_days + 1:
        raise LabelWindowError(
            f"need at least {eval_days + 1} labelled days with published features, found "
            f"{len(usable)} ({[d.isoformat() for d in usable]})"
        )
    return usable[:-eval_days][-window_days:], usable[-eval_days:]


def build_label_window(
    labels_uri: str,
    features_uri: str,
    output_uri: str,
    *,
    as_of: datetime,
    label_column: str,
    entity_columns: Sequence[str] | str,
    timestamp_column: str = "event_timestamp",
    window_days: int = 3,
    eval_days: int = 1,
    conn_id: str | None = None,
) -> LabelWindow:
    """Write ``train.parquet`` and ``eval.parquet`` (entity columns, event time, label).

    :param labels_uri: base of the labels partitions (``dt=`` = arrival day).
    :param features_uri: base of the published feature partitions (``dt=`` = event day).
    :param output_uri: directory for the two entity datasets (replaced on rerun).
    :param as_of: only labels that arrived before this instant's day are used.
    :param label_column: the label column.
    :param entity_columns: identifier column(s) of an example (the feature join keys).
    :param timestamp_column: event time of an example.
    :param window_days: number of labelled event days to train on.
    :param eval_days: number of most recent labelled event days held out for evaluation.
    :raises LabelWindowError: no labels arrived, a label column is missing, or fewer than
        ``eval_days + 1`` labelled days with published features exist.
    """
    when = to_utc(as_of, what="as_of")
    entities = as_list(entity_columns, "entity_columns") or []
    if not entities:
        raise LabelWindowError("entity_columns must name at least one identifier column")
    columns = [*entities, timestamp_column, label_column]
    labels = _arrived_labels(labels_uri, when.date(), columns, conn_id)
    event_day = pc.cast(pc.floor_temporal(labels[timestamp_column], unit="day"), pa.date32())
    labels = labels.append_column(_DAY, event_day)
    published = set(partition_days(features_uri, conn_id=conn_id))
    usable = sorted(d for d in {v.as_py() for v in pc.unique(labels[_DAY])} if d in published)
    try:
        train, held_out = _split_days(usable, window_days=window_days, eval_days=eval_days)
    except LabelWindowError as err:
        raise LabelWindowError(f"{err} before {when.date()}") from None

    def subset(days: list[date]) -> pa.Table:
        mask = pc.is_in(labels[_DAY], value_set=pa.array(days, pa.date32()))
        return labels.filter(mask).drop_columns([_DAY])

    train_table, eval_table = subset(train), subset(held_out)
    train_uri = io.join_uri(output_uri, "train.parquet")
    eval_uri = io.join_uri(output_uri, "eval.parquet")
    io.write_table(train_table, train_uri, conn_id=conn_id)
    io.write_table(eval_table, eval_uri, conn_id=conn_id)
    log.info(
        "Label window as of %s: train days %s (%d rows), evaluation days %s (%d rows)",
        when.isoformat(),
        [d.isoformat() for d in train],
        train_table.num_rows,
        [d.isoformat() for d in held_out],
        eval_table.num_rows,
    )
    return LabelWindow(
        train_uri=train_uri,
        eval_uri=eval_uri,
        train_days=[d.isoformat() for d in train],
        eval_days=[d.isoformat() for d in held_out],
        train_rows=train_table.num_rows,
        eval_rows=eval_table.num_rows,
    )
