"""Type safety of training inputs: numbers stored as text, mixed columns, too many categories,
rendered template values of the configuration, and estimators that are not estimators.

Pure (no MLflow, no Airflow): everything here fails in ``prepare_training`` or earlier.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core.errors import ParameterError
from mlops_provider.core.params import as_choice, as_choice_or_number, as_number
from mlops_provider.core.training import (
    TrainingConfig,
    TrainingInputError,
    prepare_training,
    resolve_estimator,
    select_features,
    train_model,
)
from mlops_provider.core.training.features import coerce_numeric

FAST = {
    "estimator": "sklearn.linear_model.LogisticRegression",
    "estimator_params": {"max_iter": 300},
}
ROWS = 400


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    spend = rng.uniform(0, 2000, ROWS).round(2)
    return pd.DataFrame(
        {
            "spend": spend,
            "tenure": rng.integers(0, 70, ROWS),
            "plan": rng.choice(["basic", "pro"], ROWS),
            "churned": (spend + rng.normal(0, 400, ROWS) > 1000).astype(int),
        }
    )


def _config(**kwargs: object) -> TrainingConfig:
    return TrainingConfig(target="churned", **{**FAST, **kwargs})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- text columns


def test_dollar_strings_are_an_error_naming_the_column_and_values(base: pd.DataFrame) -> None:
    data = base.assign(spend=[f"${v:,.2f}" for v in base["spend"]])
    with pytest.raises(TrainingInputError) as caught:
        prepare_training(data, _config())
    message = str(caught.value)
    assert "'spend' holds numbers stored as text with symbols" in message
    assert re.search(r"\('\$[\d,]+\.\d\d' \(\d+ rows?\), ", message), message
    assert f"{data['spend'].nunique()} distinct values" in message
    assert "currency sign" in message


def test_plain_number_strings_point_to_numeric_or_categorical_columns(
    base: pd.DataFrame,
) -> None:
    data = base.assign(tenure=base["tenure"].astype(str))
    with pytest.raises(TrainingInputError, match=r"'tenure' holds numbers stored as text \("):
        select_features(data, _config())
    with pytest.raises(TrainingInputError, match=r"numeric_columns.*categorical_columns"):
        select_features(data, _config())
    # codes: declared categorical, they stay categories
    codes = select_features(data, _config(categorical_columns=["tenure"]))
    assert codes.categorical_columns == ["tenure", "plan"] and "tenure" not in codes.numeric_columns


def test_numbers_with_some_unknown_strings_name_the_text_values(base: pd.DataFrame) -> None:
    tenure = base["tenure"].astype(str).where(base.index % 25 != 0, "unknown")
    unknown = int((tenure == "unknown").sum())
    with pytest.raises(TrainingInputError) as caught:
        select_features(base.assign(tenure=tenure), _config())
    message = str(caught.value)
    assert "'tenure' mixes numbers and text" in message
    assert f"{ROWS - unknown} value(s) are numbers" in message
    assert f"'unknown' ({unknown} rows)" in message and "numeric_columns" in message


def test_python_numbers_mixed_with_text_are_an_error(base: pd.DataFrame) -> None:
    mixed = pd.Series([i if i % 2 else "n/a" for i in range(ROWS)], dtype=object)
    with pytest.raises(TrainingInputError, match=r"'code' mixes numbers and text.*'n/a'"):
        select_features(base.assign(code=mixed), _config())


def test_decimal_objects_are_numbers_to_declare(base: pd.DataFrame) -> None:
    money = pd.Series([Decimal(str(v)) for v in base["spend"]], dtype=object)
    data = base.assign(spend=money)
    with pytest.raises(TrainingInputError, match="'spend' holds numbers stored as objects"):
        select_features(data, _config())
    prepared = prepare_training(data, _config(numeric_columns=["spend"]))
    assert prepared.x_train["spend"].dtype == np.float64


def test_a_few_numeric_levels_in_a_text_column_stay_categories(base: pd.DataFrame) -> None:
    sizes = [("S", "M", "L", "10")[i % 4] for i in range(ROWS)]
    sel = select_features(base.assign(size=sizes), _config())
    assert "size" in sel.categorical_columns


def test_several_problems_are_reported_together(base: pd.DataFrame) -> None:
    data = base.assign(tenure=base["tenure"].astype(str), code=[f"c{i}" for i in range(ROWS)])
    with pytest.raises(TrainingInputError) as caught:
        select_features(data, _config())
    assert "'tenure'" in str(caught.value) and "'code' has 400 distinct values" in str(caught.value)


# --------------------------------------------------------------------------- numeric_columns


def test_numeric_columns_convert_text_and_the_model_takes_numbers(base: pd.DataFrame) -> None:
    text = base["spend"].map(lambda v: f"{v:.2f}").astype(object)
    text.iloc[:3] = ["", " ", None]  # empty text and None are missing values
    fitted = train_model(base.assign(spend=text), _config(numeric_columns="spend"))
    prepared = fitted.prepared
    assert "spend" in prepared.features.numeric_columns
    assert prepared.data["spend"].dtype == np.float64
    assert prepared.data["spend"].iloc[:3].isna().all()
    assert prepared.data["spend"].iloc[3] == pytest.approx(base["spend"].iloc[3])
    assert fitted.metrics["roc_auc"] > 0.7


def test_numeric_columns_convert_the_validation_data_too(base: pd.DataFrame) -> None:
    text = base.assign(tenure=base["tenure"].astype(str))
    prepared = prepare_training(
        text.iloc[:300], _config(numeric_columns=["tenure"]), validation=text.iloc[300:]
    )
    assert prepared.x_holdout["tenure"].dtype == np.float64
    bad = text.iloc[300:].assign(tenure="many")
    with pytest.raises(TrainingInputError, match="numeric_columns of the validation data"):
        prepare_training(text.iloc[:300], _config(numeric_columns=["tenure"]), validation=bad)


def test_numeric_columns_name_the_values_that_do_not_convert(base: pd.DataFrame) -> None:
    tenure = base["tenure"].astype(str).where(base.index % 50 != 0, "unknown")
    tenure = tenure.where(base.index % 50 != 1, "$3")
    with pytest.raises(TrainingInputError) as caught:
        prepare_training(base.assign(tenure=tenure), _config(numeric_columns=["tenure"]))
    message = str(caught.value)
    assert message.startswith("numeric_columns of the training data: 'tenure': 16 value(s)")
    assert "'unknown' (8 rows)" in message and "'$3' (8 rows)" in message


def test_numeric_columns_that_do_not_exist_or_conflict(base: pd.DataFrame) -> None:
    with pytest.raises(TrainingInputError, match=r"'tenur' is not in the training data.*'tenure'"):
        coerce_numeric(base, ["tenur"])
    with pytest.raises(TrainingInputError, match=r"\['plan'\] are in both numeric_columns"):
        _config(numeric_columns=["plan"], categorical_columns=["plan"])
    with pytest.raises(TrainingInputError, match="target 'churned' is listed in numeric_columns"):
        _config(numeric_columns=["churned"])
    with pytest.raises(TrainingInputError, match=r"numeric_columns \['spend'\] are not feature"):
        select_features(base, _config(numeric_columns=["spend"], feature_columns=["plan"]))


def test_numeric_columns_of_a_numeric_type_are_left_alone(base: pd.DataFrame) -> None:
    assert coerce_numeric(base, ["spend", "tenure"]) is base


# --------------------------------------------------------------------------- max_categories


def test_too_many_categories_name_the_column_its_levels_and_the_fixes(base: pd.DataFrame) -> None:
    data = base.assign(coupon=[f"code-{i % 150}" for i in range(ROWS)])
    with pytest.raises(TrainingInputError) as caught:
        select_features(data, _config())
    message = str(caught.value)
    assert "'coupon' has 150 distinct values (more than max_categories=100" in message
    for fix in ("feature_columns", "entity_columns", "numeric_columns", "raise max_categories"):
        assert fix in message
    assert "coupon" in select_features(data, _config(max_categories=150)).categorical_columns
    assert "coupon" in select_features(data, _config(max_categories=None)).categorical_columns
    forced = base.assign(tenure=base["tenure"])  # 70 levels, numeric but forced categorical
    with pytest.raises(TrainingInputError, match="'tenure' has 70 distinct values"):
        select_features(forced, _config(categorical_columns=["tenure"], max_categories=20))


# --------------------------------------------------------------------------- configuration


def test_config_parses_rendered_template_text() -> None:
    config = TrainingConfig(
        target="churned",
        estimator_params='{"max_iter": 300}',  # type: ignore[arg-type]
        feature_columns="plan, tenure",  # type: ignore[arg-type]
        numeric_columns="['tenure']",  # type: ignore[arg-type]
        numeric_imputation="None",
        scale_numeric="false",  # type: ignore[arg-type]
        test_size="100",
        random_state="7",  # type: ignore[arg-type]
        max_categories="50",  # type: ignore[arg-type]
    )
    assert config.estimator_params == {"max_iter": 300}
    assert config.feature_columns == ["plan", "tenure"]
    assert config.numeric_columns == ["tenure"]
    assert config.numeric_imputation is None and config.scale_numeric is False
    assert (config.test_size, config.random_state, config.max_categories) == (100, 7, 50)
    assert TrainingConfig(target="y", test_size="0.25").test_size == 0.25
    assert TrainingConfig(target="y", numeric_imputation="0").numeric_imputation == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("test_size", "a fifth", "parameter test_size: expected a fraction or a row count, got"),
        ("test_size", "20%", "parameter test_size: .*'20%'"),
        ("estimator_params", "max_iter=300", "parameter estimator_params: .*'max_iter=300'"),
        ("numeric_imputation", "avg", r"parameter numeric_imputation: expected one of \["),
        ("categorical_imputation", "mostfrequent", "did you mean 'most_frequent'"),
        ("random_state", "seed", "parameter random_state: .*'seed'"),
        ("max_categories", "0", "parameter max_categories: must be >= 1"),
        ("scale_numeric", "maybe", "parameter scale_numeric: .*'maybe'"),
    ],
)
def test_config_values_that_do_not_parse_name_the_parameter(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(TrainingInputError, match=message):
        TrainingConfig(target="churned", **{field: value})  # type: ignore[arg-type]


def test_params_numbers_choices_and_both() -> None:
    assert as_number("100", "n") == 100 and isinstance(as_number("100", "n"), int)
    assert as_number("0.2", "n") == 0.2 and as_number(np.int64(3), "n") == 3
    assert as_number(" ", "n", default=0.5) == 0.5
    for bad in ("abc", "nan", "inf", True, [1]):
        with pytest.raises(ParameterError, match="parameter n: expected a number"):
            as_number(bad, "n")
    with pytest.raises(ParameterError, match="must be <= 1"):
        as_number("2", "n", maximum=1)
    assert as_choice(" mean ", "c", ["mean", "median"]) == "mean"
    with pytest.raises(ParameterError, match="did you mean 'median'"):
        as_choice("medain", "c", ["mean", "median"])
    assert as_choice_or_number("mean", "c", ["mean"]) == "mean"
    assert as_choice_or_number("1.5", "c", ["mean"]) == 1.5
    assert as_choice_or_number("null", "c", ["mean"], default="x") == "x"
    with pytest.raises(ParameterError, match=r"expected one of \['mean'\] or a number"):
        as_choice_or_number("[1]", "c", ["mean"])
    assert math.isclose(as_choice_or_number(2, "c", ["mean"]) or 0, 2)


# --------------------------------------------------------------------------- estimators


def _not_a_model() -> dict:
    return {}


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        ("os.path.join", {"max_iter": 300}, r"'os.path.join' is not an estimator: it is function"),
        ("math.pi", {}, "'math.pi' is not an estimator: it is float 3.14"),
        ("sklearn.preprocessing.StandardScaler", {}, "StandardScaler, which has no predict"),
        ("collections.OrderedDict", {}, "which has no fit/predict"),
        (_not_a_model, {}, "a factory returning dict"),
        (42, {}, "'42' is not an estimator: it is int 42"),
    ],
)
def test_something_that_is_not_an_estimator_says_so(
    spec: object, params: dict, message: str
) -> None:
    with pytest.raises(TrainingInputError, match=message) as caught:
        resolve_estimator(spec, params)
    assert "a class with fit and predict" in str(caught.value)
    assert "a factory function returning one" in str(caught.value)


def test_estimator_params_text_is_parsed_or_named() -> None:
    estimator, _ = resolve_estimator("sklearn.linear_model.LogisticRegression", '{"C": 0.5}')
    assert estimator.C == 0.5
    with pytest.raises(TrainingInputError, match=r"parameter estimator_params: .*'max_iter=300'"):
        resolve_estimator("sklearn.linear_model.LogisticRegression", "max_iter=300")  # type: ignore[arg-type]
