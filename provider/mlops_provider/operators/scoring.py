"""Batch scoring operators: stream-score a dataset with a registered model, and the sharded
(scale-out) pattern: plan shards, score them as mapped tasks, verify the day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import ScoringError
from mlops_provider.links.mlflow import MlflowModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook

__all__ = ["BatchScoringOperator", "PlanScoringShardsOperator", "VerifyScoringOperator"]


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)


def _interval(context: Context) -> tuple[datetime, datetime]:
    """``(start, end)`` of the run's data interval; runs without one use the logical date or
    the time the run was created, so a manual run still gets a partition."""
    dag_run = context.get("dag_run")
    start = (
        _utc(context.get("data_interval_start"))
        or _utc(context.get("logical_date"))
        or _utc(getattr(dag_run, "run_after", None))
        or datetime.now(timezone.utc)
    )
    end = _utc(context.get("data_interval_end")) or start
    return start, end


def _model_uri(model_uri: str | None, registered_model_name: str | None, alias: str) -> str:
    if model_uri:
        return str(model_uri)
    if registered_model_name:
        return f"models:/{registered_model_name}@{alias or 'champion'}"
    raise ScoringError("pass model_uri, or registered_model_name (+ alias, default champion)")


def _str_list(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ScoringError(f"{name} must be a list of column names, got {value!r}")


class BatchScoringOperator(BaseOperator):
    """Stream-score a dataset (or Feast features) with a registered model into an atomic,
    interval-keyed parquet partition.

    The model URI is resolved ONCE when the task starts: an alias becomes a concrete version,
    ``models:/<name>/<version>`` is loaded (native scikit-learn flavor when the model has it,
    pyfunc otherwise) and that version is recorded in every output row, in the parquet
    metadata, in the task log and in XCom; moving the alias during the run changes nothing.
    The input is checked against the model's signature before anything is scored, read as a
    stream of record batches (memory bounded by ``batch_size``), and written to
    ``<output_uri>/dt=<data_interval_start date>``: a rerun replaces the partition, a failure
    leaves no partial partition visible. Progress (rows, rows/s, ETA) is logged.

    When the task is mapped (``.partial(...).expand(input_data=...)``) or ``shard`` is set,
    the rows go to ``<output_uri>/dt=<date>/shard=<nnnnn>`` instead (the map index by default),
    so each shard commits independently, a rerun of one shard replaces only that shard and the
    day stays readable as one dataset; see :class:`PlanScoringShardsOperator` and
    :class:`VerifyScoringOperator`.

    Output columns: ``entity_columns``, ``passthrough_columns``, ``prediction``, then for
    classifiers ``probability`` (binary: probability of ``classes_[1]``, the positive class) or
    one ``probability_<class>`` column per class (multiclass), then ``model_name``,
    ``model_version``, ``model_run_id`` and ``scored_at`` (UTC, one value per run).

    :param model_uri: ``models:/<name>@<alias>``, ``models:/<name>/<version>``,
        ``runs:/<run_id>/<path>`` or ``models:/<model_id>``. (templated)
    :param registered_model_name: instead of ``model_uri``: scores ``models:/<name>@<alias>``.
        (templated)
    :param alias: alias used with ``registered_model_name`` (default ``champion``). (templated)
    :param input_data: dataset URI to score: a parquet file, a (hive-partitioned) directory of
        parquet files, or CSV. (templated)
    :param feast_entity_data: instead of ``input_data``: a dataset URI of entities (e.g.
        ``customer_id`` [+ ``event_timestamp``]) whose features are retrieved point-in-time from
        Feast; rows without ``event_timestamp`` are scored as of the end of the data interval.
        (templated)
    :param feature_service: Feast feature service to retrieve (e.g. ``churn_model``). (templated)
    :param features: Feast feature references (``view:feature``) instead of a service.
        (templated)
    :param output_uri: base URI of the predictions; the partition ``dt=<date>`` is added.
        (templated)
    :param entity_columns: id columns copied to every output row; they must be in the input
        (default ``["customer_id"]``; ``[]`` for none). (templated)
    :param passthrough_columns: other input columns copied to the output (e.g.
        ``["event_timestamp"]``). (templated)
    :param feature_columns: the model's input columns when the model has no signature
        (default: the signature, else ``feature_names_in_``). (templated)
    :param batch_size: rows per prediction call (default 131072). (templated)
    :param input_format: ``parquet`` or ``csv`` when the file names do not say. (templated)
    :param shard: shard name/number; default: the map index when the task is mapped.
        (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param feast_conn_id: Feast connection for ``feast_entity_data`` (default ``feast_default``).
        (templated)
    :param aws_conn_id: connection for ``s3://`` input/output (default ``aws_default``; unused
        for local paths). (templated)

    XCom (return value): ``output_uri`` (the partition written), ``rows``, ``empty``,
    ``model_uri`` (concrete), ``requested_model_uri``, ``model_name``, ``model_version``,
    ``model_run_id``, ``model_alias``, ``flavor``, ``scored_at``, ``rows_per_second``,
    ``seconds``, ``input_data``, ``files``, ``shard``, ``data_interval_start``.

    :raises ScoringError: malformed model URI, unknown model/version/run or alias, input
        missing, unreadable (the file is named), without a required column or with a mistyped
        one (named with the expected and actual type), entity columns missing, output location
        not writable, or the model failing on a batch. Raised before any output where possible;
        never leaves a partial partition.
    """

    template_fields: Sequence[str] = (
        "model_uri",
        "registered_model_name",
        "alias",
        "input_data",
        "feast_entity_data",
        "feature_service",
        "features",
        "output_uri",
        "entity_columns",
        "passthrough_columns",
        "feature_columns",
        "batch_size",
        "input_format",
        "shard",
        "mlflow_conn_id",
        "feast_conn_id",
        "aws_conn_id",
    )
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        output_uri: str,
        model_uri: str | None = None,
        registered_model_name: str | None = None,
        alias: str = "champion",
        input_data: str | None = None,
        feast_entity_data: str | None = None,
        feature_service: str | None = None,
        features: list[str] | None = None,
        entity_columns: list[str] | None = None,
        passthrough_columns: list[str] | None = None,
        feature_columns: list[str] | None = None,
        batch_size: int | None = None,
        input_format: str | None = None,
        shard: str | int | None = None,
        mlflow_conn_id: str = "mlflow_default",
        feast_conn_id: str = "feast_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_uri = output_uri
        self.model_uri = model_uri
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.input_data = input_data
        self.feast_entity_data = feast_entity_data
        self.feature_service = feature_service
        self.features = features
        self.entity_columns = entity_columns
        self.passthrough_columns = passthrough_columns
        self.feature_columns = feature_columns
        self.batch_size = batch_size
        self.input_format = input_format
        self.shard = shard
        self.mlflow_conn_id = mlflow_conn_id
        self.feast_conn_id = feast_conn_id
        self.aws_conn_id = aws_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _shard(self, context: Context) -> str | None:
        if self.shard is not None and str(self.shard) != "":
            return str(self.shard)
        map_index = getattr(context["ti"], "map_index", -1)
        return str(map_index) if map_index is not None and map_index >= 0 else None

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import io, scoring
        from mlops_provider.links.mlflow import model_version_url

        if bool(self.input_data) == bool(self.feast_entity_data):
            raise ScoringError("pass exactly one of input_data or feast_entity_data")
        model_uri = _model_uri(self.model_uri, self.registered_model_name, self.alias)
        start, end = _interval(context)
        shard = self._shard(context)
        try:
            output = io.partition_uri(str(self.output_uri), start)
            if shard is not None:
                output = scoring.shard_uri(output, shard)
            feast: dict[str, Any] = {}
            if self.feast_entity_data:
                from mlops_provider.hooks.feast import FeastHook

                feast = {
                    "feast_store": FeastHook(feast_conn_id=self.feast_conn_id).store,
                    "feast_entity_data": str(self.feast_entity_data),
                    "feature_service": self.feature_service or None,
                    "features": _str_list(self.features, "features"),
                    "as_of": end,
                }
            entity = _str_list(self.entity_columns, "entity_columns")
            result = scoring.score(
                model_uri,
                target=self.hook.target,
                client=self.hook.client,
                output_uri=output,
                input_data=str(self.input_data) if self.input_data else None,
                entity_columns=entity,
                passthrough_columns=_str_list(self.passthrough_columns, "passthrough_columns")
                or [],
                feature_columns=_str_list(self.feature_columns, "feature_columns"),
                batch_size=int(self.batch_size or scoring.DEFAULT_BATCH_SIZE),
                conn_id=self.aws_conn_id or None,
                input_format=self.input_format or None,
                scored_at=datetime.now(timezone.utc),
                metadata={"data_interval_start": start.isoformat(), "shard": shard or ""},
                **feast,
            )
        except scoring.ScoringInputError as err:
            raise ScoringError(str(err)) from err
        if result.model.name and result.model.version:
            MlflowModelVersionLink.persist(
                context,
                model_version_url(
                    self.hook.target.tracking_uri, result.model.name, result.model.version
                ),
            )
        return {
            **result.to_xcom(),
            "shard": shard,
            "data_interval_start": start.isoformat(),
        }


class PlanScoringShardsOperator(BaseOperator):
    """Plan a sharded scoring run: list the input's shards, resolve the model ONCE, count rows.

    The return value is the list of shard URIs, to expand a mapped
    :class:`BatchScoringOperator` over (``.expand(input_data=plan.output)``). The concrete model
    URI (``models:/<name>/<version>``) is pushed as XCom ``model_uri``: pass it to every shard
    (``.partial(model_uri=plan.output["model_uri"])``) so shards scored at different times can
    never disagree on the version, even if the alias moves meanwhile. ``expected_rows`` and
    ``shard_count`` feed :class:`VerifyScoringOperator`.

    With ``output_uri``, the day partition is prepared for rescoring: its ``_SUCCESS`` marker is
    removed and shard directories beyond the new shard count (an earlier plan had more) are
    deleted, so a rerun of the whole DAG run replaces the day.

    :param input_data: dataset URI to shard (a directory of files or of partitions, or one
        file). (templated)
    :param model_uri: model URI to resolve (see :class:`BatchScoringOperator`). (templated)
    :param registered_model_name: instead of ``model_uri``. (templated)
    :param alias: alias used with ``registered_model_name`` (default ``champion``). (templated)
    :param output_uri: base URI of the predictions (optional, see above). (templated)
    :param shard_by: ``auto`` (partition directories if the input has them, else files),
        ``file`` or ``partition``. (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param aws_conn_id: connection for ``s3://`` URIs (default ``aws_default``). (templated)

    XCom: return value = list of shard URIs; keys ``model_uri``, ``requested_model_uri``,
    ``model_name``, ``model_version``, ``model_run_id``, ``expected_rows``, ``shard_count``,
    ``shard_rows``.

    :raises ScoringError: input missing or empty, unreadable file, malformed model URI, unknown
        model or alias.
    """

    template_fields: Sequence[str] = (
        "input_data",
        "model_uri",
        "registered_model_name",
        "alias",
        "output_uri",
        "shard_by",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        input_data: str,
        model_uri: str | None = None,
        registered_model_name: str | None = None,
        alias: str = "champion",
        output_uri: str | None = None,
        shard_by: str = "auto",
        mlflow_conn_id: str = "mlflow_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_data = input_data
        self.model_uri = model_uri
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.output_uri = output_uri
        self.shard_by = shard_by
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Context) -> list[str]:
        from mlops_provider.core import io, scoring

        if self.shard_by not in ("auto", "file", "partition"):
            raise ScoringError(f"shard_by must be auto, file or partition, got {self.shard_by!r}")
        model_uri = _model_uri(self.model_uri, self.registered_model_name, self.alias)
        start, _ = _interval(context)
        try:
            plan = scoring.plan_scoring(
                str(self.input_data),
                model_uri,
                client=self.hook.client,
                by=self.shard_by,  # type: ignore[arg-type]
                conn_id=self.aws_conn_id or None,
                output_partition=(
                    io.partition_uri(str(self.output_uri), start) if self.output_uri else None
                ),
            )
        except scoring.ScoringInputError as err:
            raise ScoringError(str(err)) from err
        ti = context["ti"]
        for key in (
            "model_uri",
            "requested_model_uri",
            "model_name",
            "model_version",
            "model_run_id",
            "expected_rows",
            "shard_count",
            "shard_rows",
        ):
            ti.xcom_push(key=key, value=plan[key])
        return list(plan["shards"])


class VerifyScoringOperator(BaseOperator):
    """Verify a day's scoring output and commit it: the final step of sharded scoring.

    Checks ``<output_uri>/dt=<data interval start>``: every shard is committed, the rows in
    its files equal the rows it reported, the total equals ``expected_rows`` (the input's rows,
    from :class:`PlanScoringShardsOperator`), all shards used the same model name and version
    (and ``expected_model_version`` if given), and the shards are exactly ``expected_shards``.
    On success a ``_SUCCESS`` marker with the totals is written at the day partition, so
    readers that honour markers see the day only once every shard is in. Works on a plain
    (unsharded) partition too.

    :param output_uri: base URI of the predictions. (templated)
    :param expected_rows: rows the input had (e.g. ``plan.output["expected_rows"]``).
        (templated)
    :param expected_model_version: version every shard must have used. (templated)
    :param expected_model_name: registered model name every shard must have used. (templated)
    :param expected_shards: number of shards (names ``00000``...) or list of shard names.
        (templated)
    :param aws_conn_id: connection for ``s3://`` URIs (default ``aws_default``). (templated)

    XCom (return value): ``output_uri``, ``rows``, ``shards``, ``shard_rows``, ``model_name``,
    ``model_version``, ``model_run_id``, ``verified_at``.

    :raises ScoringError: listing every failed check (missing/uncommitted/unexpected shard,
        row count mismatch, model version disagreement).
    """

    template_fields: Sequence[str] = (
        "output_uri",
        "expected_rows",
        "expected_model_version",
        "expected_model_name",
        "expected_shards",
        "aws_conn_id",
    )
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        output_uri: str,
        expected_rows: int | str,
        expected_model_version: str | int | None = None,
        expected_model_name: str | None = None,
        expected_shards: int | str | list[str] | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_uri = output_uri
        self.expected_rows = expected_rows
        self.expected_model_version = expected_model_version
        self.expected_model_name = expected_model_name
        self.expected_shards = expected_shards
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import io, scoring

        start, _ = _interval(context)
        shards: Any = self.expected_shards
        if isinstance(shards, str):
            shards = int(shards) if shards.strip().isdigit() else [shards]
        if shards == "" or shards is None:
            shards = None
        try:
            expected_rows = int(self.expected_rows)
        except (TypeError, ValueError):
            raise ScoringError(
                f"expected_rows must be an integer, got {self.expected_rows!r}"
            ) from None
        try:
            return scoring.verify_scoring(
                io.partition_uri(str(self.output_uri), start),
                expected_rows,
                expected_model_version=self.expected_model_version or None,
                expected_model_name=self.expected_model_name or None,
                expected_shards=shards,
                conn_id=self.aws_conn_id or None,
            )
        except scoring.ScoringInputError as err:
            raise ScoringError(str(err)) from err
