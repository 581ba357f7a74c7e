"""OpenLineage for the provider's operators: dataset and model names, and the facets they carry.

Every operator that reads or writes a dataset or a model implements
``get_openlineage_facets_on_complete(task_instance)`` (the method the OpenLineage provider's
``DefaultExtractor`` calls when a task finishes). The method is thin: it names its inputs and
outputs from the result dict the operator returned (docs/results.md; kept on the operator as
``_mlops_result`` by ``MlopsBaseOperator.execute``) and from its rendered parameters, with a
:class:`Lineage`, whose :meth:`~Lineage.build` returns the provider's ``OperatorLineage``.

Naming (https://openlineage.io/docs/spec/naming, docs/openlineage.md):

- a dataset URI as the provider's ``core.io`` uses it: ``s3://bucket/key`` -> namespace
  ``s3://bucket``, name ``key``; another remote URI ``scheme://authority/path`` -> namespace
  ``scheme://authority``, name ``path``; a local path or ``file://`` URI -> namespace ``file``,
  name the absolute path. A hive-partitioned directory keeps its partition segments
  (``.../predictions/dt=2026-01-12``), and carries a ``symlinks`` facet naming the unpartitioned
  dataset (``.../predictions``) so that a consumer can group the days;
- an MLflow model: namespace from the model registry / tracking URI (:func:`mlflow_namespace`:
  ``mlflow://host:port`` for a tracking server, ``mlflow+sqlite:///abs/path/mlflow.db`` for a
  database store ...), name ``models/<name>/versions/<version>`` for a registered version,
  ``logged-models/<model id>`` for a logged model that is not registered (what training
  produces), ``runs/<run id>/artifacts/<path>`` for a ``runs:/`` URI.

This module is light: OpenLineage and the data libraries are imported inside functions, so the
provider works without the OpenLineage provider installed (the method is then never called).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

__all__ = [
    "Lineage",
    "add_feature_views",
    "dataset_naming",
    "mlflow_namespace",
    "model_naming",
    "operator_result",
    "unpartitioned",
]

log = logging.getLogger(__name__)

#: ``datasetType`` of model datasets (OpenLineage ``DatasetTypeDatasetFacet``).
MODEL_TYPE = "MODEL"
#: ``source`` of the tags this module puts on model datasets.
TAG_SOURCE = "MLFLOW"


def operator_result(operator: Any) -> dict[str, Any]:
    """The result dict the operator's ``execute`` kept (empty before ``execute`` ran)."""
    result = getattr(operator, "_mlops_result", None)
    return dict(result) if isinstance(result, Mapping) else {}


# --------------------------------------------------------------------------------- naming


def _strip_slashes(path: str) -> str:
    return path.rstrip("/") or "/"


def dataset_naming(uri: str | os.PathLike[str]) -> tuple[str, str]:
    """``(namespace, name)`` of a dataset URI (see the module docstring).

    >>> dataset_naming("s3://lake/features/dt=2026-01-05/")
    ('s3://lake', 'features/dt=2026-01-05')
    >>> dataset_naming("/data/raw/x.parquet")
    ('file', '/data/raw/x.parquet')
    """
    text = os.fspath(uri)
    if "://" not in text or text.lower().startswith("file://"):
        path = text.split("://", 1)[1] if "://" in text else text
        return "file", _strip_slashes(os.path.abspath(os.path.expanduser(path)))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    authority = parts.hostname or parts.netloc.rsplit("@", 1)[-1]
    if parts.port is not None and scheme not in ("s3", "s3a", "gs", "gcs", "abfs", "wasb"):
        authority = f"{authority}:{parts.port}"
    scheme = "s3" if scheme in ("s3a", "s3n") else scheme
    return f"{scheme}://{authority}", parts.path.strip("/") or "/"


def _is_partition(segment: str) -> bool:
    return "=" in segment and not segment.startswith("=")


def unpartitioned(uri: str) -> str | None:
    """The URI without its trailing hive partition segments (and a data file under them), or
    None when it has no partition segment: ``.../predictions/dt=2026-01-12/shard=00001`` ->
    ``.../predictions``."""
    text = os.fspath(uri).rstrip("/")
    head, _, tail = text.rpartition("/")
    if head and not _is_partition(tail) and "." in tail and _is_partition(head.rpartition("/")[2]):
        text = head  # a file inside a partition
    base = text
    while True:
        head, _, tail = base.rpartition("/")
        if not head or not _is_partition(tail):
            break
        base = head
    return None if base == text else base


def mlflow_namespace(store_uri: str | None) -> str:
    """The OpenLineage namespace of an MLflow tracking / registry store URI.

    - ``http(s)://host[:port][/prefix]`` -> ``mlflow://host:port[/prefix]`` (the default port of
      the scheme is written out);
    - a database store ``<dialect>[+driver]://[user@]host[:port]/db`` ->
      ``mlflow+<dialect>://host:port/db``; ``sqlite:///path`` -> ``mlflow+sqlite://<absolute
      path>``;
    - a file store (a path or ``file://``) -> ``mlflow+file://<absolute path>``;
    - no URI -> ``mlflow``.

    Credentials are never part of the namespace.
    """
    if not store_uri:
        return "mlflow"
    text = str(store_uri)
    if "://" not in text or text.lower().startswith("file:"):
        path = text.split(":", 1)[1].lstrip("/") if text.lower().startswith("file:") else text
        path = "/" + path if text.lower().startswith("file:") else path
        return f"mlflow+file://{os.path.abspath(os.path.expanduser(path))}"
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        port = parts.port or (443 if scheme == "https" else 80)
        prefix = parts.path.rstrip("/")
        return f"mlflow://{parts.hostname}:{port}{prefix}"
    dialect = scheme.split("+", 1)[0]
    if dialect == "sqlite":
        path = text.split(":///", 1)[1] if ":///" in text else ""
        path = path.split("?", 1)[0]
        return f"mlflow+sqlite://{os.path.abspath(path) if path else ':memory:'}"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"mlflow+{dialect}://{host}{parts.path.rstrip('/')}"


def model_naming(model: Mapping[str, Any], store_uri: str | None) -> tuple[str, str] | None:
    """``(namespace, name)`` of a model of a result (``{"name", "version", "run_id", "uri"}``),
    or None when it names no model (see the module docstring)."""
    namespace = mlflow_namespace(store_uri)
    name, version = model.get("name"), model.get("version")
    if name and version is not None:
        return namespace, f"models/{name}/versions/{version}"
    uri = str(model.get("uri") or model.get("model_uri") or "")
    if uri.startswith("models:/m-"):
        return namespace, f"logged-models/{uri[len('models:/') :].strip('/')}"
    if uri.startswith("runs:/"):
        run_id, _, path = uri[len("runs:/") :].strip("/").partition("/")
        return namespace, f"runs/{run_id}/artifacts/{path or 'model'}"
    if uri.startswith("models:/"):  # an unresolved name/version or name@alias
        return namespace, "models/" + uri[len("models:/") :].strip("/").replace("@", "/aliases/")
    if model.get("model_id"):
        return namespace, f"logged-models/{model['model_id']}"
    return None


# --------------------------------------------------------------------------------- builder


@dataclass
class _Spec:
    """One input or output before it becomes an OpenLineage dataset."""

    namespace: str
    name: str
    uri: str | None = None
    rows: int | None = None
    files: int | None = None
    size: int | None = None
    schema: list[tuple[str, str]] | None = None
    model: Mapping[str, Any] | None = None
    assertions: list[dict[str, Any]] = field(default_factory=list)
    null_counts: dict[str, int] | None = None
    description: str | None = None


def _schema_of(uri: str, conn_id: str | None) -> list[tuple[str, str]] | None:
    """``[(column, type)]`` of the dataset at ``uri`` from its file footers; None when it
    cannot be read (lineage never fails a task)."""
    try:
        from mlops_provider.core import io

        schema = io.open_dataset(uri, conn_id=conn_id).schema
    except Exception as err:  # any storage or format error: no schema facet
        log.debug("OpenLineage: no schema for %s: %s", uri, err)
        return None
    return [(f.name, str(f.type)) for f in schema]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Lineage:
    """The inputs and outputs of one task, built into an ``OperatorLineage``.

    :param conn_id: connection for reading the schema of ``s3://`` datasets (the operator's
        ``aws_conn_id``).
    :param mlflow_uri: the MLflow store URI models are named after (:func:`mlflow_namespace`).
    :param read_schemas: read each dataset's column names and types from its file footers.
    """

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        mlflow_uri: str | None = None,
        read_schemas: bool = True,
    ) -> None:
        self.conn_id = conn_id
        self._mlflow_uri = mlflow_uri
        self._operator: Any = None
        self.read_schemas = read_schemas
        self.inputs: list[_Spec] = []
        self.outputs: list[_Spec] = []

    @classmethod
    def of(cls, operator: Any) -> Lineage:
        """A builder with the operator's storage connection and MLflow store (resolved when
        the first model is added, so a task without models looks up no connection)."""
        lineage = cls(conn_id=getattr(operator, "aws_conn_id", None))
        lineage._operator = operator
        return lineage

    @property
    def mlflow_uri(self) -> str | None:
        """The MLflow store URI models are named after."""
        if self._mlflow_uri is None and self._operator is not None:
            self._mlflow_uri = _mlflow_uri(self._operator)
            self._operator = None
        return self._mlflow_uri

    # ------------------------------------------------------------------ declaring

    def dataset(
        self,
        uri: Any,
        *,
        output: bool = False,
        rows: Any = None,
        files: Any = None,
        assertions: Iterable[Mapping[str, Any]] = (),
        null_counts: Mapping[str, int] | None = None,
    ) -> Lineage:
        """Add the dataset at ``uri`` (a path or URI string; nothing is added for an empty
        value) as an input, or an output with ``output=True``.

        :param rows: rows read (input statistics) or written (output statistics).
        :param files: files written (outputs).
        :param assertions: data quality assertions on the dataset: dicts with the keys of
            OpenLineage's ``Assertion`` (``assertion``, ``success``, ``column``, ``name``,
            ``expected``, ``actual``, ``severity``, ``description``).
        :param null_counts: null values per column (data quality metrics of an input).
        """
        if not isinstance(uri, (str, os.PathLike)) or not os.fspath(uri).strip():
            return self
        text = os.fspath(uri)
        namespace, name = dataset_naming(text)
        spec = _Spec(
            namespace,
            name,
            uri=text,
            rows=_as_int(rows),
            files=_as_int(files),
            assertions=[dict(a) for a in assertions],
            null_counts=dict(null_counts) if null_counts is not None else None,
        )
        (self.outputs if output else self.inputs).append(spec)
        return self

    def datasets(self, uris: Any, *, output: bool = False, rows: Any = None) -> Lineage:
        """Add one URI or a list of URIs; ``rows`` is kept only for a single URI (it is the
        total of the list otherwise)."""
        listed = [uris] if isinstance(uris, (str, os.PathLike)) else list(uris or [])
        for uri in listed:
            self.dataset(uri, output=output, rows=rows if len(listed) == 1 else None)
        return self

    def model(
        self,
        model: Mapping[str, Any] | None,
        *,
        output: bool = False,
        assertions: Iterable[Mapping[str, Any]] = (),
        description: str | None = None,
    ) -> Lineage:
        """Add an MLflow model (a result's ``model`` dict: ``name``, ``version``, ``run_id``,
        ``uri``, optionally ``alias`` / ``model_id``); nothing for None or an unnamed model."""
        if not isinstance(model, Mapping):
            return self
        naming = model_naming(model, self.mlflow_uri)
        if naming is None:
            return self
        spec = _Spec(
            *naming,
            model=dict(model),
            assertions=[dict(a) for a in assertions],
            description=description,
        )
        (self.outputs if output else self.inputs).append(spec)
        return self

    def feature_view(
        self,
        project: str,
        view: str,
        *,
        output: bool = False,
        rows: Any = None,
        schema: Sequence[tuple[str, str]] | None = None,
    ) -> Lineage:
        """Add a Feast feature view as served by the feature store: namespace
        ``feast://<project>``, name the view."""
        spec = _Spec(
            f"feast://{project}",
            str(view),
            rows=_as_int(rows),
            schema=list(schema) if schema else None,
            description=f"Feast feature view {view} of project {project}",
        )
        (self.outputs if output else self.inputs).append(spec)
        return self

    # ------------------------------------------------------------------ building

    def build(self) -> OperatorLineage:
        """The ``OperatorLineage`` of the declared inputs and outputs (duplicates merged)."""
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset, OutputDataset

        inputs = [
            InputDataset(
                namespace=s.namespace,
                name=s.name,
                facets=self._facets(s),
                inputFacets=self._input_facets(s),
            )
            for s in _unique(self.inputs)
        ]
        outputs = [
            OutputDataset(
                namespace=s.namespace,
                name=s.name,
                facets=self._facets(s),
                outputFacets=self._output_facets(s),
            )
            for s in _unique(self.outputs)
        ]
        return OperatorLineage(inputs=inputs, outputs=outputs)

    def _facets(self, spec: _Spec) -> dict[str, Any]:
        from openlineage.client.facet_v2 import (
            dataset_type_dataset,
            dataset_version_dataset,
            documentation_dataset,
            schema_dataset,
            symlinks_dataset,
            tags_dataset,
        )

        facets: dict[str, Any] = {}
        if spec.model is not None:
            model = spec.model
            facets["datasetType"] = dataset_type_dataset.DatasetTypeDatasetFacet(
                datasetType=MODEL_TYPE,
                subType="MLFLOW_MODEL_VERSION" if model.get("version") else "MLFLOW_LOGGED_MODEL",
            )
            version = model.get("version") or model.get("model_id") or _logged_id(model)
            if version:
                facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion=str(version)
                )
            tags = {
                "mlflow.registered_model": model.get("name"),
                "mlflow.model_version": model.get("version"),
                "mlflow.run_id": model.get("run_id"),
                "mlflow.model_uri": model.get("uri") or model.get("model_uri"),
                "mlflow.alias": model.get("alias"),
            }
            facets["tags"] = tags_dataset.TagsDatasetFacet(
                tags=[
                    tags_dataset.TagsDatasetFacetFields(key=k, value=str(v), source=TAG_SOURCE)
                    for k, v in tags.items()
                    if v not in (None, "")
                ]
            )
            facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
                description=spec.description or _model_description(model)
            )
            return facets
        schema = spec.schema
        if schema is None and spec.uri is not None and self.read_schemas:
            schema = _schema_of(spec.uri, self.conn_id)
        if schema:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in schema]
            )
        if spec.description:
            facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
                description=spec.description
            )
        if spec.uri is not None:
            base = unpartitioned(spec.uri)
            if base is not None:
                namespace, name = dataset_naming(base)
                facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(
                    identifiers=[
                        symlinks_dataset.Identifier(
                            namespace=namespace, name=name, type="PARTITIONED_DATASET"
                        )
                    ]
                )
        return facets

    @staticmethod
    def _assertions(spec: _Spec) -> dict[str, Any]:
        from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq

        if not spec.assertions:
            return {}
        fields = {a.name for a in dq.Assertion.__attrs_attrs__}
        assertions = [
            dq.Assertion(**{k: _text(k, v) for k, v in a.items() if k in fields and v is not None})
            for a in spec.assertions
        ]
        return {"dataQualityAssertions": dq.DataQualityAssertionsDatasetFacet(assertions)}

    def _input_facets(self, spec: _Spec) -> dict[str, Any]:
        from openlineage.client.facet_v2 import (
            data_quality_metrics_input_dataset as dqm,
        )
        from openlineage.client.facet_v2 import (
            input_statistics_input_dataset,
        )

        facets = self._assertions(spec)
        if spec.rows is not None:
            facets["inputStatistics"] = (
                input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                    rowCount=spec.rows, fileCount=spec.files
                )
            )
        if spec.null_counts is not None:
            facets["dataQualityMetrics"] = dqm.DataQualityMetricsInputDatasetFacet(
                columnMetrics={
                    c: dqm.ColumnMetrics(nullCount=int(n)) for c, n in spec.null_counts.items()
                },
                rowCount=spec.rows,
            )
        return facets

    def _output_facets(self, spec: _Spec) -> dict[str, Any]:
        from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

        facets = self._assertions(spec)
        if spec.rows is not None or spec.files is not None:
            facets["outputStatistics"] = stats.OutputStatisticsOutputDatasetFacet(
                rowCount=spec.rows, fileCount=spec.files
            )
        return facets


def _text(key: str, value: Any) -> Any:
    """Assertion fields are strings but for ``success`` (bool) and ``params`` (dict)."""
    if key == "success":
        return bool(value)
    if key == "params":
        return dict(value)
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def _unique(specs: Sequence[_Spec]) -> list[_Spec]:
    seen: dict[tuple[str, str], _Spec] = {}
    for spec in specs:
        seen.setdefault((spec.namespace, spec.name), spec)
    return list(seen.values())


def _logged_id(model: Mapping[str, Any]) -> str | None:
    uri = str(model.get("uri") or "")
    return uri[len("models:/") :] if uri.startswith("models:/m-") else None


def _model_description(model: Mapping[str, Any]) -> str:
    uri = model.get("uri") or model.get("model_uri")
    if model.get("name") and model.get("version") is not None:
        text = f"MLflow model {model['name']} version {model['version']}"
    else:
        text = "MLflow logged model" + (f" {_logged_id(model)}" if _logged_id(model) else "")
    if model.get("alias"):
        text += f" (@{model['alias']})"
    if model.get("run_id"):
        text += f", run {model['run_id']}"
    return text + (f": {uri}" if uri else "")


def _mlflow_uri(operator: Any) -> str | None:
    """The registry URI of the operator's MLflow connection (the result's ``tracking_uri``
    when the connection cannot be resolved)."""
    if getattr(operator, "mlflow_conn_id", None):
        try:
            return str(operator.mlflow_hook.target.effective_registry_uri)
        except Exception as err:  # an unresolvable connection: no namespace
            log.debug("OpenLineage: no MLflow store for %s: %s", operator, err)
    uri = operator_result(operator).get("tracking_uri")
    return str(uri) if uri else None


def feature_view_sources(store: Any, names: Iterable[str]) -> dict[str, str]:
    """``{view: offline source path}`` of the named Feast feature views that read a file
    source (unknown views and other sources are left out)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            view = store.get_feature_view(name)
        except Exception:  # an on-demand view or a removed one
            continue
        path = getattr(getattr(view, "batch_source", None), "path", None)
        if path:
            out[name] = str(path)
    return out


def feature_view_schema(store: Any, name: str) -> list[tuple[str, str]] | None:
    """``[(column, type)]`` of a Feast feature view: its entity join keys, then its features."""
    try:
        view = store.get_feature_view(name)
    except Exception:  # an on-demand view or a removed one
        return None
    columns = [(str(c.name), str(c.dtype)) for c in getattr(view, "entity_columns", []) or []]
    return columns + [(str(f.name), str(f.dtype)) for f in view.features]


def add_feature_views(
    lineage: Lineage,
    store: Any,
    project: str,
    views: Iterable[str],
    *,
    sources: bool = True,
    served: bool = False,
    rows_by_view: Mapping[str, Mapping[str, Any]] | None = None,
) -> Lineage:
    """Add Feast feature views to ``lineage``: with ``sources``, their offline file sources as
    inputs (rows: ``rows_by_view[view]["source_rows"]``); with ``served``, the views as served
    by the store as outputs (``feast://<project>``, the view's schema; rows:
    ``rows_by_view[view]["rows_written"]``)."""
    names = list(dict.fromkeys(views))
    counts = rows_by_view or {}
    if sources:
        for name, path in feature_view_sources(store, names).items():
            lineage.dataset(path, rows=(counts.get(name) or {}).get("source_rows"))
    if served:
        for name in names:
            lineage.feature_view(
                project,
                name,
                output=True,
                rows=(counts.get(name) or {}).get("rows_written"),
                schema=feature_view_schema(store, name),
            )
    return lineage


def join(base: str, *parts: str) -> str:
    """``base/part/...`` (the same as ``core.io.join_uri``, without importing core.io)."""
    out = str(base).rstrip("/")
    for part in parts:
        out = posixpath.join(out, str(part).strip("/"))
    return out
