"""Entity + label datasets for training and evaluation, from labels that have arrived.

Labels arrive late: the label of an event on day D lands in the labels partition of day
``D + delay``. As of a point in time, the usable examples are those whose label has arrived and
whose features were published (quarantined days have no features). The most recent labelled
event day(s) are kept apart for evaluation, so a candidate and the champion are compared on the
newest ground truth, and the days before form the training window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from mlops_provider.core import io

log = logging.getLogger(__name__)

__all__ = ["LabelWindow", "partition_days", "build_label_window"]


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


def partition_days(base_uri: str, *, key: str = "dt", conn_id: str | None = None) -> list[date]:
    """Days of the committed ``<key>=YYYY-MM-DD`` partitions under ``base_uri``, sorted."""
    loc = io.resolve(base_uri, conn_id=conn_id)
    if not loc.fs.exists(loc.path):
        return []
    days = []
    for entry in loc.fs.ls(loc.path, detail=False):
        name = str(entry).rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(f"{key}="):
            try:
                days.append(date.fromisoformat(name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(days)


def build_label_window(
    labels_uri: str,
    features_uri: str,
    output_uri: str,
    *,
    as_of: datetime,
    window_days: int = 3,
    eval_days: int = 1,
    label_column: str = "churned",
    conn_id: str | None = None,
) -> LabelWindow:
    """Write ``train.parquet`` and ``eval.parquet`` (customer_id, event_timestamp, label).

    :param labels_uri: base of the labels partitions (``dt=`` = arrival day).
    :param features_uri: base of the published feature partitions (``dt=`` = event day).
    :param output_uri: directory for the two entity datasets (replaced on rerun).
    :param as_of: only labels that arrived before this instant are used.
    :param window_days: number of labelled event days to train on.
    :param eval_days: number of most recent labelled event days held out for evaluation.
    :raises ValueError: when fewer than ``eval_days + 1`` labelled, published days exist.
    """
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    arrived = [d for d in partition_days(labels_uri, conn_id=conn_id) if d < as_of.date()]
    published = set(partition_days(features_uri, conn_id=conn_id))
    tables = []
    for day in arrived:
        part = io.partition_uri(labels_uri, day)
        table = io.read_table(part, conn_id=conn_id)
        if table.num_rows:
            tables.append(table.select(["customer_id", "event_timestamp", label_column]))
    if not tables:
        raise ValueError(f"no labels have arrived under {labels_uri} before {as_of.isoformat()}")
    labels = pa.concat_tables(tables)
    event_day = pc.cast(pc.floor_temporal(labels["event_timestamp"], unit="day"), pa.date32())
    labels = labels.append_column("event_day", event_day)
    usable = sorted(
        d for d in {v.as_py() for v in pc.unique(labels["event_day"])} if d in published
    )
    if len(usable) < eval_days + 1:
        raise ValueError(
            f"need at least {eval_days + 1} labelled days with published features before "
            f"{as_of.date()}, found {len(usable)} ({[d.isoformat() for d in usable]})"
        )
    held_out = usable[-eval_days:]
    train = usable[:-eval_days][-window_days:]

    def subset(days: list[date]) -> pa.Table:
        mask = pc.is_in(labels["event_day"], value_set=pa.array(days, pa.date32()))
        return labels.filter(mask).drop_columns(["event_day"])

    train_table, eval_table = subset(train), subset(held_out)
    train_uri = io.join_uri(output_uri, "train.parquet")
    eval_uri = io.join_uri(output_uri, "eval.parquet")
    io.write_table(train_table, train_uri, conn_id=conn_id)
    io.write_table(eval_table, eval_uri, conn_id=conn_id)
    log.info(
        "Label window as of %s: train days %s (%d rows), evaluation days %s (%d rows)",
        as_of.isoformat(),
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
