"""The Tuner API's search-space helpers, down to the suggestion service's parameters."""

from __future__ import annotations

import pytest

from trial_worker import Float, tune
from trial_worker.tune.space import to_parameters
from tuning_types.space import (
    CategoricalDomain,
    Condition,
    FixedDomain,
    FloatDomain,
    IntDomain,
    SearchSpace,
)


def test_helpers_map_to_domains():
    params = {p.name: p for p in to_parameters({
        "lr": tune.loguniform(1e-3, 0.3),
        "subsample": tune.uniform(0.5, 1.0),
        "alpha": tune.quniform(0.0, 1.0, 0.25),
        "n_estimators": tune.randint(50, 300),
        "width": tune.lograndint(8, 513),
        "batch": tune.qrandint(16, 128, 16),
        "booster": tune.choice(["gbtree", "dart"]),
        "rate_drop": tune.uniform(0.0, 0.3, when={"booster": "dart"}),
        "random_state": 42,
        "objective": "binary:logistic",
        "x": Float("x", -1, 1),
    })}
    assert params["lr"].domain == FloatDomain(1e-3, 0.3, True, None)
    assert params["subsample"].domain == FloatDomain(0.5, 1.0, False, None)
    assert params["alpha"].domain == FloatDomain(0.0, 1.0, False, 0.25)
    # randint excludes its upper bound, as Ray Tune's and Snowflake's do.
    assert params["n_estimators"].domain == IntDomain(50, 299, False, None)
    assert params["width"].domain == IntDomain(8, 512, True, None)
    assert params["batch"].domain == IntDomain(16, 128, False, 16)
    assert params["booster"].domain == CategoricalDomain(("gbtree", "dart"))
    assert params["rate_drop"].condition == Condition("booster", ("dart",))
    assert params["random_state"].domain == FixedDomain(42)
    assert params["objective"].domain == FixedDomain("binary:logistic")
    assert params["x"].domain == FloatDomain(-1.0, 1.0, False, None)
    SearchSpace(tuple(params.values())).validate()


@pytest.mark.parametrize("space, message", [
    ({"c": [1, 2, 3]}, "neither a domain"),
    ({"c": None}, "neither a domain"),
    ({"x": Float("y", 0, 1)}, "holds a parameter named 'y'"),
])
def test_bad_search_spaces_say_what_is_wrong(space, message):
    with pytest.raises(ValueError, match=message):
        to_parameters(space)


def test_domains_check_their_arguments():
    with pytest.raises(ValueError, match="takes a list"):
        tune.choice("abc")
    with pytest.raises(ValueError, match="upper bound is excluded"):
        tune.randint(5, 5)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "maximize"}, "mode must be 'max' or 'min'"),
    ({"num_trials": 0}, "num_trials"),
    ({"max_concurrent_trials": 0}, "max_concurrent_trials"),
    ({"pruner": "asha"}, "needs a fidelity"),
])
def test_tuner_config_is_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tune.TunerConfig(metric="loss", **kwargs).validate()
