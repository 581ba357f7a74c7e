"""The provider's base operator: connections, hooks, the data interval, task identity, extra
links, renamed parameters and the translation of core errors into Airflow exceptions.

An operator of this provider is a thin shell (DESIGN.md): it subclasses
:class:`MlopsBaseOperator`, keeps its templated parameters as given in ``__init__`` and
implements :meth:`~MlopsBaseOperator.run`, which calls one function of ``core`` and returns the
result dict (docs/results.md). :meth:`~MlopsBaseOperator.execute` then

- runs it inside :func:`~mlops_provider.core.logs.library_logs` (MLflow's log lines at their
  own level in the task log, its environment chatter dropped),
- translates a :class:`~mlops_provider.core.errors.CoreError` (and only that: a programming
  error stays what it is) into the operator's :attr:`error_class`; an MLflow store that did
  not answer within its retry budget or a URI MLflow rejected keeps its one message
  (``MLflow at <uri> (connection <id>) is not reachable: <cause>``, see
  :func:`~mlops_provider.core.mlflow_target.bounded_calls`),
- persists the extra links the result names (report, MLflow run, model version),
- pushes the keys listed in :attr:`push_keys` under their own XCom key, so
  ``task.output["passed"]`` resolves,
- returns the result (XCom ``return_value``).

This module is light: it imports no heavy library (DAG files import operators).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import MlopsError, MlopsProviderDeprecationWarning

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.core.runs import RunIdentity
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.hooks.mlflow import MlflowHook

__all__ = [
    "AWS_CONN_ID",
    "FEAST_CONN_ID",
    "MLFLOW_CONN_ID",
    "MlopsBaseOperator",
    "data_interval",
    "pop_renamed",
    "run_identity",
]

#: The one default of each connection id (docs/vocabulary.md).
MLFLOW_CONN_ID = "mlflow_default"
FEAST_CONN_ID = "feast_default"
AWS_CONN_ID = "aws_default"


def _utc(value: Any) -> datetime | None:
    from mlops_provider.core.times import parse_time

    return parse_time(value) if isinstance(value, datetime) else None


def data_interval(context: Context) -> tuple[datetime, datetime | None]:
    """``(start, end)`` of the run's data interval as aware UTC datetimes; the start falls
    back to the logical date, then to the DAG run's ``run_after`` (a manual run without a
    logical date), then to now."""
    from mlops_provider.core.times import utcnow

    start = (
        _utc(context.get("data_interval_start"))
        or _utc(context.get("logical_date"))
        # a manual run without a logical date: its run_after stays the same across retries
        or _utc(getattr(context.get("dag_run"), "run_after", None))
    )
    return start or utcnow(), _utc(context.get("data_interval_end"))


def run_identity(context: Context) -> RunIdentity:
    """The task's identity: (dag_id, task_id, data interval, map_index), plus run and try."""
    from mlops_provider.core.runs import RunIdentity

    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    try_number = getattr(ti, "try_number", None)
    return RunIdentity(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        data_interval_start=_utc(context.get("data_interval_start")),
        data_interval_end=_utc(context.get("data_interval_end")),
        map_index=-1 if map_index is None else int(map_index),
        run_id=getattr(ti, "run_id", None),
        try_number=None if try_number is None else int(try_number),
    )


def pop_renamed(kwargs: dict[str, Any], renamed: Mapping[str, str], owner: str) -> dict[str, Any]:
    """Take deprecated parameter names out of ``kwargs`` (warning once for each).

    :param renamed: old name -> new name.
    :returns: new name -> value, for the old names that were given.
    """
    out: dict[str, Any] = {}
    for old, new in renamed.items():
        if old in kwargs:
            warnings.warn(
                f"{owner}: parameter {old!r} is deprecated and will be removed in the next "
                f"release; use {new!r}",
                MlopsProviderDeprecationWarning,
                stacklevel=3,
            )
            out[new] = kwargs.pop(old)
    return out


class MlopsBaseOperator(BaseOperator):
    """Base of the provider's operators (see the module docstring).

    Subclasses set :attr:`error_class` (the provider exception a core error becomes) and
    :attr:`push_keys`, and implement :meth:`run`. A subclass that uses MLflow or Feast has an
    ``mlflow_conn_id`` / ``feast_conn_id`` attribute; :attr:`mlflow_hook` and
    :attr:`feast_hook` are built from it on first use. ``aws_conn_id`` (default
    ``aws_default``) is the connection of ``s3://`` URIs.

    :raises MlopsError: (the subclass's :attr:`error_class`) for every core error.
    """

    error_class: ClassVar[type[MlopsError]] = MlopsError
    push_keys: ClassVar[tuple[str, ...]] = ()
    mlflow_conn_id: str | None = None
    feast_conn_id: str | None = None
    aws_conn_id: str | None = None

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        """The MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id or MLFLOW_CONN_ID)

    @property
    def hook(self) -> MlflowHook:
        """The MLflow hook (the name the operators have always used)."""
        return self.mlflow_hook

    @cached_property
    def feast_hook(self) -> FeastHook:
        """The Feast hook of ``feast_conn_id`` (and ``repo_path`` when the operator has one)."""
        from mlops_provider.hooks.feast import FeastHook

        repo_path = getattr(self, "repo_path", None) or None
        return FeastHook(self.feast_conn_id or FEAST_CONN_ID, repo_path=repo_path)

    def run(self, context: Context) -> dict[str, Any]:
        """Do the work: resolve parameters, call one ``core`` function, return the result."""
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        from mlops_provider.core.errors import CoreError
        from mlops_provider.core.logs import library_logs

        try:
            with library_logs():  # MLflow at its own level, its chatter dropped (core/logs.py)
                result = self.run(context)
        except CoreError as err:
            raise self.error_class(self._message(err)) from err
        self._mlops_result = result  # for get_openlineage_facets_on_complete (lineage.py)
        if isinstance(result, Mapping):
            self.persist_links(context, result)
            self.push_result_keys(context, result)
        return result

    def error_message(self, err: Exception) -> str:
        """The message of the Airflow exception a core error becomes."""
        return str(err)

    def _message(self, err: Exception) -> str:
        """:meth:`error_message`, except for MLflow's unreachable store and rejected URI: their
        one message (``MLflow at <uri> (connection <id>) ...``) is the same in every task."""
        from mlops_provider.core.errors import MlflowUnreachableError, MlflowUriError

        if isinstance(err, (MlflowUnreachableError, MlflowUriError)):
            return str(err)
        return self.error_message(err)

    # ------------------------------------------------------------------ context helpers

    @staticmethod
    def data_interval(context: Context) -> tuple[datetime, datetime | None]:
        """See :func:`data_interval`."""
        return data_interval(context)

    @staticmethod
    def identity(context: Context) -> RunIdentity:
        """See :func:`run_identity`."""
        return run_identity(context)

    def push_result_keys(self, context: Context, result: Mapping[str, Any]) -> None:
        """Push ``result[key]`` under XCom key ``key`` for each of :attr:`push_keys`."""
        ti = context["ti"]
        for key in self.push_keys:
            if key in result:
                ti.xcom_push(key=key, value=result[key])

    def persist_links(self, context: Context, result: Mapping[str, Any]) -> None:
        """Publish the links the result names, for the link classes this operator shows.

        Each link goes to XCom at once (the UI shows it while the task runs) and again, the same
        value under the same key, when the task finishes. The URLs lead to the provider's plugin
        on the API server (:mod:`mlops_provider.links.mlflow`, :mod:`mlops_provider.links.reports`).
        """
        from mlops_provider.links.mlflow import (
            MlflowModelVersionLink,
            MlflowRunLink,
            model_version_url,
            run_url,
        )
        from mlops_provider.links.reports import ReportLink, report_url

        kinds = {type(link) for link in self.operator_extra_links}
        if ReportLink in kinds and result.get("report_uri"):
            ReportLink.persist(context, report_url(str(result["report_uri"])))
        if not self.mlflow_conn_id:
            return
        run_id, experiment_id = result.get("mlflow_run_id"), result.get("mlflow_experiment_id")
        if MlflowRunLink in kinds and run_id:
            MlflowRunLink.persist(
                context,
                run_url(
                    str(run_id),
                    str(experiment_id) if experiment_id else None,
                    conn_id=self.mlflow_conn_id,
                ),
            )
        model = result.get("model") or {}
        if MlflowModelVersionLink in kinds and model.get("name") and model.get("version"):
            MlflowModelVersionLink.persist(
                context,
                model_version_url(model["name"], model["version"], conn_id=self.mlflow_conn_id),
            )
