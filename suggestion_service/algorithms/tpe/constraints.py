"""Constrained TPE, as Optuna's TPESampler does it with ``constraints_func``.

The split into "below" (good) and "above" (bad) trials ranks completed trials so that every
feasible trial (every constraint value <= 0) comes before every infeasible one: feasible
trials by their loss, infeasible ones by their total violation (the sum of the positive
constraint values). An infeasible trial therefore only enters the good group when fewer
feasible trials exist than the good group has room for, and then the least violating first,
which steers the search toward the feasible region before anything is feasible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def total_violation(constraints: Sequence[float] | None) -> float:
    """Sum of the positive constraint values; a trial without values counts as infinitely violating."""
    if constraints is None:
        return math.inf
    return float(sum(max(c, 0.0) for c in constraints))


def feasibility_ranks(losses: Sequence[float], constraints: Sequence[Sequence[float] | None]) -> np.ndarray:
    """Replaces each finite loss by its rank in (feasible by loss, then infeasible by violation).

    NaN losses (pending, bad or non-finite trials) stay NaN, so they never enter the good group.
    """
    losses = np.asarray(losses, dtype=float)
    violation = np.array([total_violation(c) for c in constraints], dtype=float)
    ranked = ~np.isnan(losses)
    infeasible = violation > 0.0
    # lexsort: the last key is the primary one.
    keys = (np.where(infeasible, violation, losses), infeasible)
    order = [i for i in np.lexsort(keys) if ranked[i]]
    ranks = np.full(len(losses), np.nan)
    ranks[order] = np.arange(len(order), dtype=float)
    return ranks


__all__ = ["feasibility_ranks", "total_violation"]
