"""The dashboard's parameter importance (a random forest's mean decrease in impurity)."""

from __future__ import annotations

import random

import pytest

from gateway.dashboard.importance import MIN_TRIALS, encode, parameter_importance


def sample(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"x": rng.uniform(-1, 1), "y": rng.uniform(-1, 1), "z": rng.randint(1, 10),
             "kind": rng.choice(["a", "b", "c"])} for _ in range(n)]


def test_an_objective_of_one_parameter_gives_it_most_of_the_importance():
    params = sample(60)
    result = parameter_importance(params, [p["x"] ** 2 for p in params])
    assert result.ok and result.trials == 60
    assert list(result.importances)[0] == "x" and result.importances["x"] > 0.8
    assert sum(result.importances.values()) == pytest.approx(1.0)
    assert set(result.importances) == {"x", "y", "z", "kind"}
    assert list(result.importances.values()) == sorted(result.importances.values(), reverse=True)


def test_a_categorical_parameter_is_one_hot_encoded_and_its_columns_summed():
    params = sample(60, seed=1)
    effect = {"a": 0.0, "b": 5.0, "c": -3.0}
    result = parameter_importance(params, [effect[p["kind"]] + 0.01 * p["y"] for p in params])
    assert list(result.importances)[0] == "kind" and result.importances["kind"] > 0.8
    rows, owners = encode(params, ["kind", "x"])
    assert owners == ["kind", "kind", "kind", "x"]
    assert all(sum(row[:3]) == 1.0 for row in rows)


def test_too_few_trials_give_a_message_not_numbers():
    params = sample(MIN_TRIALS - 1)
    result = parameter_importance(params, [p["x"] for p in params])
    assert not result.ok and result.importances == {}
    assert f"at least {MIN_TRIALS} completed trials" in result.message and f"{MIN_TRIALS - 1} so far" in result.message
    assert result.to_json()["min_trials"] == MIN_TRIALS


def test_non_finite_values_do_not_count():
    params = sample(MIN_TRIALS)
    values = [p["x"] for p in params]
    values[0] = float("nan")
    assert not parameter_importance(params, values).ok
    values[0] = 0.5
    assert parameter_importance(params, values).ok


def test_conditional_parameters_may_be_absent():
    params = sample(40, seed=2)
    for p in params[::2]:
        del p["y"], p["kind"]
    result = parameter_importance(params, [p.get("y", 2.0) for p in params], names=["x", "y", "kind"])
    assert result.ok and list(result.importances)[0] == "y"


def test_a_constant_objective_or_parameter_explains_nothing():
    params = [{"x": 1.0, "kind": "a"} for _ in range(10)]
    result = parameter_importance(params, list(range(10)))
    assert not result.ok and result.importances == {"kind": 0.0, "x": 0.0}
    params = sample(10)
    result = parameter_importance(params, [3.0] * 10)
    assert not result.ok and "same value" in result.message


def test_the_result_is_deterministic():
    params = sample(30, seed=3)
    values = [p["x"] + p["z"] for p in params]
    assert parameter_importance(params, values).importances == parameter_importance(params, values).importances


def test_rows_and_values_must_match():
    with pytest.raises(ValueError):
        parameter_importance([{"x": 1}], [1.0, 2.0])
