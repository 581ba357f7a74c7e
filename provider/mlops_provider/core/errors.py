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

This module imports nothing heavy.
"""

from __future__ import annotations

__all__ = ["CoreError", "InputError", "NotFoundError", "ParameterError", "ServiceError"]


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
