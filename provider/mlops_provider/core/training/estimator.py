"""The estimator (from a dotted path, a factory or an instance) and the logged Pipeline.

The logged model is the whole Pipeline, so scoring takes the raw feature columns exactly as
they are in the training data (training-serving parity)::

    Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", [SimpleImputer(numeric_imputation)] + [StandardScaler()], numeric),
            ("categorical", [missing -> one sentinel, SimpleImputer(...), OneHotEncoder(
                handle_unknown="ignore")], categorical),
        ])),
        ("estimator", <the estimator>),
    ])

Only scikit-learn classes are used in the preprocessing, so loading the model needs nothing
from this provider. Missing categorical values may be ``None`` or ``NaN``; both are mapped to one
sentinel first (scikit-learn's imputer sees only one kind of missing value at a time).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_provider.core.training.config import MISSING_CATEGORY, TrainingInputError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["ESTIMATOR_FORMS", "build_pipeline", "resolve_estimator"]


def _import_path(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise TrainingInputError(
            f"estimator {path!r} is not a dotted path like 'sklearn.linear_model.LogisticRegression'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise TrainingInputError(
            f"estimator {path!r}: module {module_name!r} cannot be imported ({err})"
        ) from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TrainingInputError(
            f"estimator {path!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


ESTIMATOR_FORMS = (
    "an estimator is a class with fit and predict (a dotted path such as "
    "'sklearn.linear_model.LogisticRegression'), a factory function returning one, or an "
    "unfitted estimator instance"
)


def _describe(obj: Any) -> str:
    """What ``obj`` is, for a message (``function posixpath.join``, ``float 3.14``)."""
    if inspect.isclass(obj):
        return f"class {_qualname(obj)}"
    if inspect.ismodule(obj):
        return f"module {obj.__name__}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"function {_qualname(obj)}"
    text = repr(obj)
    return f"{type(obj).__name__} {text if len(text) <= 80 else text[:77] + '...'}"


def _not_estimator(label: str, spec: Any, what: str) -> TrainingInputError:
    """``estimator <spec> is not an estimator: it is <what>; <what an estimator is>``."""
    named = label or repr(spec)
    return TrainingInputError(
        f"estimator {named!r} is not an estimator: it is {what}; {ESTIMATOR_FORMS}"
    )


def _missing_arguments(factory: Any, params: Mapping[str, Any]) -> list[str]:
    """Required arguments of ``factory`` that ``params`` does not give."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return []
    return [
        name
        for name, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and name not in params
    ]


def _check_params(factory: Any, params: Mapping[str, Any], label: str) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    unknown = sorted(set(params) - set(signature.parameters))
    if unknown:
        valid = sorted(n for n in signature.parameters if n != "self")
        raise TrainingInputError(
            f"estimator {label} does not accept parameter(s) {unknown}; valid: {valid}"
        )


def _has_fit_predict(obj: Any) -> bool:
    return hasattr(obj, "fit") and hasattr(obj, "predict")


def _lacks(obj: Any) -> str:
    """``which has no predict`` (or ``fit``, or ``fit/predict``)."""
    missing = [name for name in ("fit", "predict") if not hasattr(obj, name)]
    return f"which has no {'/'.join(missing)}"


def _is_instance(obj: Any) -> bool:
    return hasattr(obj, "fit") and not inspect.isclass(obj)


def _build(spec: Any, factory: Any, params: dict[str, Any], label: str) -> Any:
    """Clone an estimator instance or call a class/factory with ``params``.

    :raises TrainingInputError: ``factory`` is not an estimator (a class without fit/predict,
        a function needing arguments ``params`` does not give, a value that is not callable).
    """
    from sklearn.base import clone

    if _is_instance(factory):
        if not hasattr(factory, "predict"):
            raise _not_estimator(label, spec, f"{_describe(factory)}, {_lacks(factory)}")
        estimator = clone(factory)
        if params:
            estimator.set_params(**params)
        return estimator
    if inspect.isclass(factory) and not _has_fit_predict(factory):
        raise _not_estimator(label, spec, f"{_describe(factory)}, {_lacks(factory)}")
    if not callable(factory):
        raise _not_estimator(label, spec, _describe(factory))
    missing = _missing_arguments(factory, params)
    if missing and not inspect.isclass(factory):  # not a factory of estimators
        raise _not_estimator(
            label,
            spec,
            f"{_describe(factory)}, which needs argument(s) {missing} that estimator_params "
            "does not give",
        )
    _check_params(factory, params, label)
    return factory(**params)


def _validate(estimator: Any, label: str) -> None:
    if not _has_fit_predict(estimator):
        raise _not_estimator(
            label,
            estimator,
            f"a factory returning {_describe(estimator)}, {_lacks(estimator)}",
        )
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate):  # scikit-learn's own parameter constraints, before any fitting
        try:
            validate()
        except (TypeError, ValueError) as err:
            raise TrainingInputError(f"estimator {label}: {err}") from err


def resolve_estimator(spec: Any, params: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """Build the (unfitted) estimator; return it and its dotted path for the records.

    :param spec: a dotted path, a class, a factory or an unfitted estimator instance.
    :param params: keyword arguments of the class / factory (``set_params`` of an instance);
        a mapping or its JSON / literal text.
    :raises TrainingInputError: unknown path, not an estimator (naming ``spec``, what it is
        and what an estimator is), invalid parameters.
    """
    from mlops_provider.core.errors import ParameterError
    from mlops_provider.core.params import as_mapping

    try:
        params = as_mapping(params, "estimator_params") or {}
    except ParameterError as err:
        raise TrainingInputError(str(err)) from None
    if isinstance(spec, str):
        factory, label = _import_path(spec.strip()), spec.strip()
    elif _is_instance(spec):
        factory, label = spec, _qualname(type(spec))
    else:
        factory, label = spec, _qualname(spec) if callable(spec) else ""
    try:
        estimator = _build(spec, factory, params, label)
    except TrainingInputError:
        raise
    except (TypeError, ValueError) as err:
        raise TrainingInputError(f"estimator {label}: invalid parameters {params}: {err}") from err
    _validate(estimator, label)
    return estimator, label


def _numeric_steps(numeric_imputation: str | float | None, scale_numeric: bool) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = []
    if isinstance(numeric_imputation, str):
        steps.append(("impute", SimpleImputer(strategy=numeric_imputation)))
    elif numeric_imputation is not None:
        fill = float(numeric_imputation)
        steps.append(("impute", SimpleImputer(strategy="constant", fill_value=fill)))
    if scale_numeric:
        steps.append(("scale", StandardScaler()))
    return Pipeline(steps) if steps else "passthrough"


def _categorical_steps(categorical_imputation: str | None) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    marker = {"strategy": "constant", "fill_value": MISSING_CATEGORY}
    steps: list[tuple[str, Any]] = [
        # NaN and None both mean "missing"; the imputer handles one marker at a time.
        ("nan_to_marker", SimpleImputer(missing_values=np.nan, **marker)),
        ("none_to_marker", SimpleImputer(missing_values=None, **marker)),
    ]
    if categorical_imputation == "most_frequent":
        steps.append(
            ("impute", SimpleImputer(missing_values=MISSING_CATEGORY, strategy="most_frequent"))
        )
    steps.append(("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
    return Pipeline(steps)


def build_pipeline(
    estimator: Any,
    numeric_columns: Sequence[str],
    categorical_columns: Sequence[str],
    *,
    numeric_imputation: str | float | None = "median",
    categorical_imputation: str | None = "most_frequent",
    scale_numeric: bool = True,
) -> Pipeline:
    """The full model: ColumnTransformer preprocessing + the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    transformers = []
    if numeric_columns:
        numeric = _numeric_steps(numeric_imputation, scale_numeric)
        transformers.append(("numeric", numeric, list(numeric_columns)))
    if categorical_columns:
        categorical = _categorical_steps(categorical_imputation)
        transformers.append(("categorical", categorical, list(categorical_columns)))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])
