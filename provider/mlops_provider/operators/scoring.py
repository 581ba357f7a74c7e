"""Batch scoring operators: stream-score a dataset with a registered model, and the sharded
(scale-out) pattern: plan shards, score them as mapped tasks, verify the day.

The operators are thin shells over :mod:`mlops_provider.core.scoring`: templated parameters are
coerced with :mod:`mlops_provider.core.params`, one core function does the work and returns the
result (docs/results.md); core errors become :class:`~mlops_provider.exceptions.ScoringError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import ScoringError
from mlops_provider.links.mlflow import MlflowModelVersionLink
from mlops_provider.operators._base import (
    AWS_CONN_ID,
    FEAST_CONN_ID,
    MLFLOW_CONN_ID,
    MlopsBaseOperator,
    data_interval,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "BatchScoringOperator",
    "PlanScoringShardsOperator",
    "ScoringError",
    "VerifyScoringOperator",
]

_MODEL_KEYS = (
    "model_uri",
    "requested_model_uri",
    "model_name",
    "model_version",
    "model_run_id",
)


def _interval(context: Context) -> tuple[datetime, datetime]:
    """``(start, end)`` of the run's data interval (``_base.data_interval``); the end defaults
    to the start."""
    start, end = data_interval(context)
    return start, end or start


def _model_uri(op: BatchScoringOperator | PlanScoringShardsOperator) -> str:
    from mlops_provider.core import params, scoring

    return scoring.requested_model_uri(
        params.as_str(op.model_uri, "model_uri"),
        params.as_str(op.registered_model_name, "registered_model_name"),
        params.as_str(op.alias, "alias"),
    )


class BatchScoringOperator(MlopsBaseOperator):
    """Stream-score a dataset (or Feast features) with a registered model into an atomic,
    interval-keyed parquet partition.

    The model URI is resolved ONCE when the task starts (``core.models.resolve``; every form is
    accepted: ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/m-<id>``,
    ``runs:/<run_id>/<path>``): an alias becomes a concrete version, ``models:/<name>/<version>``
    is loaded (native scikit-learn flavor when the model has it, pyfunc otherwise) and that
    version is recorded in every output row, in the parquet metadata, in the task log and in
    XCom; moving the alias during the run changes nothing. The input is checked against the
    model's signature before anything is scored, read as a stream of record batches (memory
    bounded by ``batch_size``), and written to ``<output_uri>/dt=<data_interval_start date>``:
    a rerun replaces the partition, a failure leaves no partial partition visible. Progress
    (rows, rows/s, ETA) is logged.

    When the task is mapped (``.partial(...).expand(input_data=plan.output)``) or
    ``shard`` is set, the rows go to ``<output_uri>/dt=<date>/shard=<nnnnn>`` instead (the map
    index by default), so each shard commits independently, a rerun of one shard replaces only
    that shard and the day stays readable as one dataset; see
    :class:`PlanScoringShardsOperator` and :class:`VerifyScoringOperator`.

    Output columns: ``entity_columns``, ``passthrough_columns``, ``prediction``, then for
    classifiers ``probability`` (binary: probability of ``classes_[1]``, the positive class) or
    one ``probability_<class>`` column per class (multiclass), then ``model_name``,
    ``model_version``, ``model_run_id`` and ``scored_at`` (UTC, one value per run).

    :param model_uri: any model URI (see above). (templated)
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
        (default: the columns the model's training run recorded, tag ``mlops.entity_columns``;
        ``[]`` for none; a single name is accepted). (templated)
    :param passthrough_columns: other input columns copied to the output (e.g.
        ``["event_timestamp"]``). (templated)
    :param feature_columns: the model's input columns when the model has no signature
        (default: the signature, else ``feature_names_in_``). (templated)
    :param batch_size: rows per prediction call (default 131072, at least 1). (templated)
    :param max_unseen_share: categories the model never saw in training (values of a
        categorical column outside its fitted encoder's ``categories_``; missing values are not
        counted) are always counted per column and reported (log warning, XCom
        ``unseen_categories`` and ``reasons``); with this share (0..1), a column where more of
        the rows have one fails the task before the output is committed. Default ``None``:
        report only. (templated)
    :param input_format: ``parquet`` or ``csv`` when the file names do not say. (templated)
    :param shard: shard name/number; default: the map index when the task is mapped.
        (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param feast_conn_id: Feast connection for ``feast_entity_data`` (default ``feast_default``).
        (templated)
    :param aws_conn_id: connection for ``s3://`` input/output (default ``aws_default``; unused
        for local paths). (templated)

    XCom (return value, docs/results.md): ``status`` ``scored``; ``passed`` True; ``reasons``
    (says so when the input had no rows); ``model`` ``{name, version, run_id, uri[, alias]}`` of
    the version that scored (``uri`` concrete); ``rows`` scored; ``mlflow_run_id`` and
    ``report_uri`` None. Then ``output_uri`` (the partition written), ``empty``,
    ``requested_model_uri``, ``flavor``, ``scored_at``, ``rows_per_second``, ``seconds``,
    ``stream_seconds``, ``input_data``, ``files``, ``unseen_categories`` (``{column: {count,
    share, examples, known}}`` of the columns with categories the model never saw), ``shard``,
    ``data_interval_start``.

    Deprecated keys (kept for one release): ``model_uri`` (use ``model["uri"]``),
    ``model_name`` (``model["name"]``), ``model_version`` (``model["version"]``),
    ``model_run_id`` (``model["run_id"]``), ``model_alias`` (``model["alias"]``).

    :raises ScoringError: malformed model URI, unknown model/version/run or alias, input
        missing, unreadable (the file is named), without a required column or with a mistyped
        one (named with the expected and actual type), entity columns missing, output location
        not writable (checked before anything is scored: a local directory's writability; for
        ``s3://``, a probe object written and deleted, the error naming the URI, the connection
        and whether there are no credentials, the endpoint is unreachable, access is denied or
        the bucket does not exist), unseen categories above ``max_unseen_share``, an invalid
        parameter (named), or the model failing on a batch. Raised before any output where
        possible; never leaves a partial partition.
    """

    error_class = ScoringError
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
        "max_unseen_share",
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
        max_unseen_share: float | None = None,
        input_format: str | None = None,
        shard: str | int | None = None,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        feast_conn_id: str = FEAST_CONN_ID,
        aws_conn_id: str | None = AWS_CONN_ID,
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
        self.max_unseen_share = max_unseen_share
        self.input_format = input_format
        self.shard = shard
        self.mlflow_conn_id = mlflow_conn_id
        self.feast_conn_id = feast_conn_id
        self.aws_conn_id = aws_conn_id

    def _shard(self, context: Context) -> str | None:
        from mlops_provider.core import params

        shard = params.as_str(None if self.shard is None else str(self.shard), "shard")
        if shard is not None:
            return shard
        map_index = getattr(context["ti"], "map_index", -1)
        return str(map_index) if map_index is not None and map_index >= 0 else None

    def _feast(self, as_of: datetime) -> dict[str, Any]:
        """The Feast arguments of ``score`` (the store only when Feast is the one input)."""
        from mlops_provider.core import params

        entity_data = params.as_uri(self.feast_entity_data, "feast_entity_data")
        if not entity_data:
            return {}
        if params.as_uri(
            self.input_data, "input_data"
        ):  # both inputs: core refuses before any work
            return {"feast_entity_data": entity_data}
        return {
            "feast_store": self.feast_hook.store,
            "feast_entity_data": entity_data,
            "feature_service": params.as_str(self.feature_service, "feature_service"),
            "features": params.as_names(self.features, "features"),
            "as_of": as_of,
        }

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import io, params, scoring

        start, end = _interval(context)
        shard = self._shard(context)
        output = io.partition_uri(
            params.required(
                params.as_uri(self.output_uri, "output_uri"), "output_uri", "a dataset URI"
            ),
            start,
        )
        if shard is not None:
            output = scoring.shard_uri(output, shard)
        result = scoring.score(
            _model_uri(self),
            target=self.hook.target,
            client=self.hook.client,
            output_uri=output,
            input_data=params.as_uri(self.input_data, "input_data"),
            **self._feast(end),
            entity_columns=params.as_names(self.entity_columns, "entity_columns"),
            passthrough_columns=params.as_names(self.passthrough_columns, "passthrough_columns")
            or [],
            feature_columns=params.as_names(self.feature_columns, "feature_columns"),
            batch_size=params.as_int(
                self.batch_size, "batch_size", default=scoring.DEFAULT_BATCH_SIZE, minimum=1
            )
            or scoring.DEFAULT_BATCH_SIZE,
            max_unseen_share=params.as_float(
                self.max_unseen_share, "max_unseen_share", minimum=0, maximum=1
            ),
            conn_id=self.aws_conn_id or None,
            input_format=params.as_str(self.input_format, "input_format"),
            metadata={"data_interval_start": start.isoformat(), "shard": shard or ""},
        )
        return result.to_result(shard=shard, data_interval_start=start.isoformat())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the scored dataset (or the Feast entity data) and
        the model version that scored as inputs; the predictions partition as the output, with
        its schema, rows and files written."""
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        return (
            Lineage.of(self)
            .dataset(result.get("input_data"), rows=result.get("rows"))
            .model(result.get("model"))
            .dataset(
                result.get("output_uri"),
                output=True,
                rows=result.get("rows"),
                files=len(result.get("files") or []) or None,
            )
            .build()
        )


class PlanScoringShardsOperator(MlopsBaseOperator):
    """Plan a sharded scoring run: list the input's shards, resolve the model ONCE, count rows.

    The return value is the list of shard URIs, to expand a mapped
    :class:`BatchScoringOperator` over (``.expand(input_data=plan.output)``: Airflow maps only
    over a return value). Pass the shards the concrete model URI
    (``.partial(model_uri=plan.output["model_uri"])``, ``models:/<name>/<version>``) so shards
    scored at different times can never disagree on the version, even if the alias moves
    meanwhile. ``expected_rows``, ``model_version`` and ``shard_count`` feed
    :class:`VerifyScoringOperator`. Every form of model URI is accepted (see
    :class:`BatchScoringOperator`); a model that is not registered (``runs:/``,
    ``models:/m-<id>``) has no ``model_version`` to pass on.

    With ``output_uri``, the day partition is prepared for rescoring: its ``_SUCCESS`` marker is
    removed and shard directories beyond the new shard count (an earlier plan had more) are
    deleted, so a rerun of the whole DAG run replaces the day.

    :param input_data: dataset URI to shard (a directory of files or of partitions, or one
        file). (templated)
    :param model_uri: model URI to resolve. (templated)
    :param registered_model_name: instead of ``model_uri``. (templated)
    :param alias: alias used with ``registered_model_name`` (default ``champion``). (templated)
    :param output_uri: base URI of the predictions (optional, see above). (templated)
    :param shard_by: ``auto`` (partition directories if the input has them, else files),
        ``file`` or ``partition``. (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param aws_conn_id: connection for ``s3://`` URIs (default ``aws_default``). (templated)

    XCom: the return value is the list of shard URIs (unchanged). The result
    (docs/results.md) is the XCom ``result`` (``plan.output["result"]``): ``status``
    ``planned``; ``passed`` True; ``reasons`` []; ``model`` ``{name, version, run_id, uri[,
    alias]}`` of the version to score with; ``rows`` = the input's rows; then ``shards``,
    ``shard_count``, ``shard_rows``, ``expected_rows``, ``requested_model_uri``. These keys are
    also pushed under their own XCom key: ``shards``, ``model``, ``model_uri``,
    ``requested_model_uri``, ``model_name``, ``model_version``, ``model_run_id``,
    ``expected_rows``, ``shard_count``, ``shard_rows``.

    Deprecated keys (kept for one release): ``model_name``, ``model_version``,
    ``model_run_id``, ``model_alias`` (use ``model``); ``model_uri`` stays the concrete URI to
    pass to the shards.

    :raises ScoringError: input missing or empty, unreadable file, malformed model URI, unknown
        model or alias, invalid ``shard_by``.
    """

    error_class = ScoringError
    push_keys = (
        "shards",
        "model",
        *_MODEL_KEYS,
        "expected_rows",
        "shard_count",
        "shard_rows",
    )
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
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        aws_conn_id: str | None = AWS_CONN_ID,
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

    def execute(self, context: Context) -> list[str]:
        """Plan (see :meth:`run`), push the result as XCom ``result``, return the shards."""
        result = super().execute(context)
        context["ti"].xcom_push(key="result", value=result)
        return list(result["shards"])

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import io, params, scoring

        start, _ = _interval(context)
        output = params.as_uri(self.output_uri, "output_uri")
        return scoring.plan_scoring(
            params.required(
                params.as_uri(self.input_data, "input_data"), "input_data", "a dataset URI"
            ),
            _model_uri(self),
            client=self.hook.client,
            by=params.as_str(self.shard_by, "shard_by", default="auto") or "auto",
            conn_id=self.aws_conn_id or None,
            output_partition=io.partition_uri(output, start) if output else None,
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the input to shard (rows) and the model version
        the shards are to score with."""
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        return (
            Lineage.of(self)
            .dataset(self.input_data, rows=result.get("rows"))
            .model(result.get("model"))
            .build()
        )


def _expected_shards(value: Any) -> int | list[str] | None:
    """A shard count (``3``, ``"3"``) or shard names (a list, JSON list, ``"a,b"``)."""
    from mlops_provider.core import params

    text = value.strip() if isinstance(value, str) else None
    if (text is not None and text.isdigit()) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    ):
        return params.as_int(value, "expected_shards", minimum=0)
    names = params.as_list(value, "expected_shards")
    return None if names is None else [str(n) for n in names]


class VerifyScoringOperator(MlopsBaseOperator):
    """Verify a day's scoring output and commit it: the final step of sharded scoring.

    Checks ``<output_uri>/dt=<data interval start>``: every shard is committed, the rows in
    its files equal the rows it reported, the total equals ``expected_rows`` (the input's rows,
    from :class:`PlanScoringShardsOperator`), all shards used the same model name and version
    (and ``expected_model_version`` if given), and the shards are exactly ``expected_shards``.
    On success a ``_SUCCESS`` marker with the result is written at the day partition, so
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

    XCom (return value, docs/results.md): ``status`` ``verified``; ``passed`` True;
    ``reasons`` []; ``model`` ``{name, version, run_id, uri}`` of the version found in the
    output; ``rows`` found; then ``output_uri`` (the day partition), ``shards`` (count, 0 for
    a plain partition), ``shard_rows``, ``verified_at``.

    Deprecated keys (kept for one release): ``model_name``, ``model_version``,
    ``model_run_id`` (use ``model``).

    :raises ScoringError: listing every failed check (missing/uncommitted/unexpected shard,
        row count mismatch, model version disagreement), or an invalid parameter (named).
    """

    error_class = ScoringError
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
        aws_conn_id: str | None = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_uri = output_uri
        self.expected_rows = expected_rows
        self.expected_model_version = expected_model_version
        self.expected_model_name = expected_model_name
        self.expected_shards = expected_shards
        self.aws_conn_id = aws_conn_id

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import io, params, scoring
        from mlops_provider.core.errors import ParameterError

        start, _ = _interval(context)
        expected_rows = params.as_int(self.expected_rows, "expected_rows", minimum=0)
        if expected_rows is None:
            raise ParameterError("expected_rows", "the number of input rows is required")
        version = params.as_int(self.expected_model_version, "expected_model_version", minimum=1)
        return scoring.verify_scoring(
            io.partition_uri(
                params.required(
                    params.as_uri(self.output_uri, "output_uri"), "output_uri", "a dataset URI"
                ),
                start,
            ),
            expected_rows,
            expected_model_version=None if version is None else str(version),
            expected_model_name=params.as_str(self.expected_model_name, "expected_model_name"),
            expected_shards=_expected_shards(self.expected_shards),
            conn_id=self.aws_conn_id or None,
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the verified day partition, with the rows found,
        as the input (the operator has no MLflow connection to name the model by)."""
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        return Lineage.of(self).dataset(result.get("output_uri"), rows=result.get("rows")).build()
