"""Constrained TPE, as Optuna's TPESampler does it with ``constraints_func``.

The split into "below" (good) and "above" (bad) trials (``multi_objective.select_below``)
puts every feasible trial (every constraint value <= 0) before every infeasible one: feasible
trials by their loss (or fronts, with several objectives), infeasible ones by their total
violation (the sum of the positive constraint values). An infeasible trial therefore only
enters the good group when fewer feasible trials exist than the good group has room for, and
then the least violating first, which steers the search toward the feasible region before anything is feasible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def total_violation(constraints: Sequence[float] | None) -> float:
    """Sum of the positive constraint values; a trial without values counts as infinitely violating."""
    if constraints is None:
        return math.inf
    return float(sum(max(c, 0.0) for c in constraints))


__all__ = ["total_violation"]
