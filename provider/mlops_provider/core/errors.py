"""The one exception hierarchy of ``core``.

Every error that ``core`` raises on purpose derives from :class:`CoreError`; operators translate
exactly this base (and nothing broader) into the provider's Airflow exceptions
(:mod:`mlops_provider.exceptions`), so a programming error is never reported as bad input.

- :class:`InputError` (also a ``ValueError``): the input is wrong (a dataset, a column, a
  parameter value, a model URI, a suite). The message names what is wrong and what was expected.
- :class:`NotFoundError` (an ``InputError``): something named in the input does not exist (a
  registered model, an alias, a version, a run, a file).
- :class:`ServiceError` (also a ``RuntimeError``): a service the work needs (MLflow, S3, Feast's
  stores) refused or could not be reached; the input may be fine and a retry may succeed.
  :class:`MlflowUnreachableError` is the one error of an MLflow store that did not answer
  within its retry budget; :class:`MlflowUriError` (an ``InputError``) the one of a store URI
  MLflow cannot use (a misspelt scheme).

This module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CoreError",
    "InputError",
    "MlflowUnreachableError",
    "MlflowUriError",
    "NotFoundError",
    "ParameterError",
    "ServiceError",
    "did_you_mean",
]


class CoreError(Exception):
    """Base of every error ``core`` raises on purpose."""


class InputError(CoreError, ValueError):
    """The input is wrong; the message names it and what was expected."""


class NotFoundError(InputError):
    """Something the input names does not exist."""


class ParameterError(InputError):
    """A parameter value is invalid (wrong type, out of range, unparseable template output)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"parameter {name}: {problem}")
        self.name = name
        self.problem = problem


class ServiceError(CoreError, RuntimeError):
    """A service refused or could not be reached; the input may be fine."""


class MlflowUnreachableError(ServiceError):
    """An MLflow tracking or registry store did not answer within its retry budget:
    ``MLflow at <uri> (<source>) is not reachable: <cause>`` (the source names the
    connection; the URI never shows credentials)."""


class MlflowUriError(InputError):
    """MLflow cannot use a store URI (an unknown scheme such as ``htp://``): ``MLflow at
    <uri> (<source>) rejected the URI: <cause>``, raised before any call."""


def did_you_mean(name: str, choices: Iterable[str], *, limit: int = 3) -> str:
    """A hint naming the choices closest to a misspelt ``name``: ``"; did you mean 'churn'?"``
    (empty when none is close). Append it to a not-found message that also lists what exists."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=limit, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
