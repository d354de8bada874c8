"""Hyperparameter importance for the study page, from completed trials alone.

A random forest (scikit-learn's ``RandomForestRegressor``) is fitted on the trials' parameters
-> objective values, and each parameter's importance is the forest's mean decrease in impurity
(the share of the objective's variance the splits on that parameter explain, averaged over the
trees), normalised so that the importances sum to 1. This is what Optuna's
``MeanDecreaseImpurityImportanceEvaluator`` computes; its default fANOVA evaluator fits the same
kind of forest and decomposes its variance instead.

Encoding: numbers (and booleans) are one column each; a categorical parameter is one-hot
encoded and its importance is the sum of its columns'. A conditional parameter a trial did not
have is a value below the parameter's range (numbers) or no category at all (categoricals), so
the forest can split on "absent". A parameter with a single value in the data explains nothing
and gets 0.

Pure: no I/O, no event loop; the gateway runs :func:`parameter_importance` in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_TRIALS = 5
N_ESTIMATORS = 64
MAX_DEPTH = 64


@dataclass
class Importance:
    """Importances by parameter (summing to 1, largest first), or why there are none."""

    importances: dict[str, float] = field(default_factory=dict)
    trials: int = 0
    # Set when nothing could be computed: too few trials, nothing varies, scikit-learn missing.
    message: str = ""
    method: str = "random forest, mean decrease in impurity"

    @property
    def ok(self) -> bool:
        return not self.message

    def to_json(self) -> dict[str, Any]:
        return {"importances": [{"param": name, "importance": value} for name, value in self.importances.items()],
                "trials": self.trials, "message": self.message, "method": self.method, "min_trials": MIN_TRIALS}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def _column_kind(values: Sequence[Any]) -> str:
    """"number" when every present value is a finite number or a bool, else "category"."""
    present = [v for v in values if v is not None]
    if all(_is_number(v) or isinstance(v, bool) for v in present):
        return "number"
    return "category"


def encode(params: Sequence[Mapping[str, Any]], names: Sequence[str]) -> tuple[list[list[float]], list[str]]:
    """The design matrix (rows: trials) and, for each of its columns, the parameter it encodes."""
    columns: list[list[float]] = []
    owners: list[str] = []
    for name in names:
        values = [row.get(name) for row in params]
        if _column_kind(values) == "number":
            numbers = [float(v) for v in values if v is not None]
            missing = (min(numbers) - 1.0 - abs(min(numbers))) if numbers else 0.0
            columns.append([missing if v is None else float(v) for v in values])
            owners.append(name)
        else:
            categories = sorted({repr(v) for v in values if v is not None})
            keys = [None if v is None else repr(v) for v in values]
            for category in categories:
                columns.append([1.0 if key == category else 0.0 for key in keys])
                owners.append(name)
    rows = [[column[i] for column in columns] for i in range(len(params))]
    return rows, owners


def parameter_importance(params: Sequence[Mapping[str, Any]], values: Sequence[float], *,
                         names: Sequence[str] | None = None, min_trials: int = MIN_TRIALS,
                         seed: int = 0) -> Importance:
    """Importances of ``names`` (default: every parameter seen) for ``values``.

    ``params[i]`` are trial i's parameter values by name (absent: the trial did not have the
    parameter) and ``values[i]`` its objective value; non-finite values are left out.
    """
    if len(params) != len(values):
        raise ValueError(f"{len(params)} parameter rows for {len(values)} values")
    kept = [(p, float(v)) for p, v in zip(params, values) if v is not None and math.isfinite(float(v))]
    if names is None:
        names = sorted({name for p, _ in kept for name in p})
    result = Importance(trials=len(kept))
    if len(kept) < min_trials:
        result.message = f"needs at least {min_trials} completed trials with an objective value ({len(kept)} so far)"
        return result
    if not names:
        result.message = "the study has no parameters"
        return result
    rows, owners = encode([p for p, _ in kept], names)
    varying = [i for i in range(len(owners)) if len({row[i] for row in rows}) > 1]
    scores = {name: 0.0 for name in names}
    objective = [v for _, v in kept]
    if not varying or len(set(objective)) < 2:
        result.importances = scores
        result.message = ("no parameter varies across the completed trials" if not varying
                          else "the objective has the same value in every completed trial")
        return result
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:
        result.message = "parameter importance needs scikit-learn (pip install scikit-learn)"
        return result
    forest = RandomForestRegressor(n_estimators=N_ESTIMATORS, max_depth=MAX_DEPTH, random_state=seed, n_jobs=1)
    forest.fit([[row[i] for i in varying] for row in rows], objective)
    for index, share in zip(varying, forest.feature_importances_):
        scores[owners[index]] += float(share)
    total = sum(scores.values())
    if total > 0:
        scores = {name: share / total for name, share in scores.items()}
    result.importances = dict(sorted(scores.items(), key=lambda item: (-item[1], item[0])))
    return result
