"""Best trials: the optimum for one objective, the Pareto set for several."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from suggestion_service.domain.study import Direction, Objective
from suggestion_service.domain.trial import Trial


def objective_matrix(trials: Sequence[Trial], objectives: Sequence[Objective]) -> np.ndarray:
    """Values as a (n_trials, n_objectives) array, signs flipped so that lower is better."""
    signs = np.array([1.0 if o.direction is Direction.MINIMIZE else -1.0 for o in objectives])
    values = np.array([[t.metric(o.metric) for o in objectives] for t in trials], dtype=float)
    return values.reshape(len(trials), len(objectives)) * signs


def best_trials(trials: Sequence[Trial], objectives: Sequence[Objective]) -> list[Trial]:
    """Completed trials that no other completed trial dominates, by trial number.

    With one objective that is the single best trial (the earliest one on ties).
    """
    if not trials:
        return []
    losses = objective_matrix(trials, objectives)
    if len(objectives) == 1:
        return [trials[int(np.argmin(losses[:, 0]))]]
    # i is dominated if some j is no worse everywhere and strictly better somewhere.
    no_worse = np.all(losses[:, None, :] <= losses[None, :, :], axis=2)
    better = np.any(losses[:, None, :] < losses[None, :, :], axis=2)
    dominated = np.any(no_worse & better, axis=0)
    return sorted((t for t, d in zip(trials, dominated) if not d), key=lambda t: t.number)
