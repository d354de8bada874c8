"""Parameter importance (suggestion_service/algorithms/importance.py): fANOVA on a numpy forest."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion_service.algorithms.importance import _encode, parameter_importance
from tuning_types.space import (
    CategoricalDomain,
    Condition,
    FixedDomain,
    FloatDomain,
    IntDomain,
    Parameter,
    SearchSpace,
)

SPACE = SearchSpace((
    Parameter("x", FloatDomain(-1.0, 1.0)),
    Parameter("lr", FloatDomain(1e-5, 1.0, log=True)),
    Parameter("n", IntDomain(1, 10)),
    Parameter("kind", CategoricalDomain(("a", "b", "c"))),
    Parameter("y", FloatDomain(0.0, 1.0), Condition("kind", ("a",))),
    Parameter("noise", FloatDomain(0.0, 1.0)),
    Parameter("fixed", FixedDomain(3)),
))


def sample(n: int, seed: int = 0, space: SearchSpace = SPACE) -> list[dict]:
    """Configurations as random search draws them (conditional parameters absent when inactive)."""
    rng = np.random.default_rng(seed)
    return [space.from_unit(list(rng.random(len(space)))) for _ in range(n)]


def test_the_parameter_that_drives_the_objective_gets_the_largest_importance():
    params = sample(80)
    result = parameter_importance(SPACE, params, [p["x"] ** 2 for p in params], seed=1)
    assert result.trials == 80
    assert list(result.importances)[0] == "x" and result.importances["x"] > 0.9
    assert sum(result.importances.values()) == pytest.approx(1.0)
    # Every parameter but the fixed one, largest first.
    assert set(result.importances) == {"x", "lr", "n", "kind", "y", "noise"}
    assert list(result.importances.values()) == sorted(result.importances.values(), reverse=True)


def test_an_irrelevant_parameter_gets_almost_nothing():
    params = sample(120, seed=2)
    result = parameter_importance(SPACE, params, [3 * p["x"] + np.log10(p["lr"]) / 5 for p in params], seed=1)
    assert result.importances["noise"] < 0.02
    assert result.importances["n"] < 0.02


def test_the_shares_are_the_main_effects_variances():
    # f = x + 2z with x, z uniform: variances 1/12 and 4/12, so 0.2 and 0.8 (fANOVA is exact
    # for a function the trees can fit); a bool worth 1 against x: 0.25 vs 1/12, so 0.75.
    space = SearchSpace((Parameter("x", FloatDomain(0.0, 1.0)), Parameter("z", FloatDomain(0.0, 1.0)),
                         Parameter("c", CategoricalDomain((True, False)))))
    params = sample(300, seed=3, space=space)
    result = parameter_importance(space, params, [p["x"] + 2 * p["z"] for p in params])
    assert result.importances["z"] == pytest.approx(0.8, abs=0.03)
    assert result.importances["x"] == pytest.approx(0.2, abs=0.03)
    result = parameter_importance(space, params, [p["x"] + (1.0 if p["c"] else 0.0) for p in params])
    assert result.importances["c"] == pytest.approx(0.75, abs=0.03)
    assert result.importances["z"] < 0.01


def test_a_log_scaled_parameter_is_measured_in_log_space():
    # Linear in log10(lr): on the log scale lr is as important as a linear x of the same effect.
    space = SearchSpace((Parameter("lr", FloatDomain(1e-4, 1.0, log=True)), Parameter("x", FloatDomain(0.0, 1.0))))
    params = sample(300, seed=4, space=space)
    result = parameter_importance(space, params, [np.log10(p["lr"]) / 4 + p["x"] for p in params])
    assert result.importances["lr"] == pytest.approx(0.5, abs=0.05)


def test_categorical_and_integer_parameters():
    params = sample(120, seed=5)
    effect = {"a": 0.0, "b": 5.0, "c": -3.0}
    result = parameter_importance(SPACE, params, [effect[p["kind"]] + 0.01 * p["x"] for p in params])
    assert list(result.importances)[0] == "kind" and result.importances["kind"] > 0.9
    result = parameter_importance(SPACE, params, [(p["n"] - 5) ** 2 for p in params])
    assert list(result.importances)[0] == "n" and result.importances["n"] > 0.9


def test_an_inactive_parameter_is_its_own_category_not_a_zero():
    params = sample(200, seed=6)
    matrix, features = _encode(SPACE, params)
    column = [f.parameter.name for f in features].index("y")
    inactive = np.array(["y" not in p for p in params])
    assert inactive.any() and (~inactive).any()
    assert (matrix[inactive, column] == -1.0).all() and (matrix[~inactive, column] >= 0.0).all()
    assert features[column].inactive_share == pytest.approx(inactive.mean())
    # Only y's value matters, where y exists. The parent that decides whether y exists shares
    # the credit (the product measure also weighs kind "a" with y inactive, which never
    # happens: module docstring); parameters that do not matter get almost nothing.
    result = parameter_importance(SPACE, params, [p.get("y", 0.5) * 4 for p in params])
    assert result.importances["y"] > 0.3 and result.importances["y"] + result.importances["kind"] > 0.97
    assert max(result.importances[name] for name in ("x", "lr", "n", "noise")) < 0.01


def test_a_conditional_parameter_whose_absence_matters():
    # Having y at all (kind == "a") costs 1; its value adds nothing. The split between
    # inactive and active is the same as kind's "a" against the rest: it goes to the parent.
    params = sample(200, seed=7)
    result = parameter_importance(SPACE, params, [1.0 if "y" in p else 0.0 for p in params])
    assert list(result.importances)[0] == "kind" and result.importances["kind"] > 0.9


def test_the_result_is_deterministic_for_a_seed():
    params = sample(60, seed=8)
    values = [p["x"] + p["n"] / 10 for p in params]
    first = parameter_importance(SPACE, params, values, seed=11)
    assert first == parameter_importance(SPACE, params, values, seed=11)
    assert first.importances != parameter_importance(SPACE, params, values, seed=12).importances


def test_a_constant_objective_or_parameter_explains_nothing():
    params = sample(20, seed=9)
    result = parameter_importance(SPACE, params, [3.0] * 20)
    assert set(result.importances.values()) == {0.0} and result.trials == 20
    space = SearchSpace((Parameter("x", FloatDomain(0.0, 1.0)), Parameter("k", IntDomain(1, 5))))
    same_k = [{"x": float(i) / 20, "k": 2} for i in range(20)]
    result = parameter_importance(space, same_k, [p["x"] for p in same_k])
    assert result.importances == {"x": 1.0, "k": 0.0}


def test_large_studies_are_sampled():
    params = sample(300, seed=10)
    result = parameter_importance(SPACE, params, [p["x"] for p in params], max_trials=100, n_trees=8)
    assert result.trials == 100 and list(result.importances)[0] == "x"


def test_rows_and_values_must_match():
    with pytest.raises(ValueError):
        parameter_importance(SPACE, [{"x": 1.0}], [1.0, 2.0])
