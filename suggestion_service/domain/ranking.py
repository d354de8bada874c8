"""Best trials: the optimum for one objective, the Pareto set and its hypervolume for several.

Reference point of a multi-objective study, per objective: the spec's
``Objective.reference_point`` when given (fixed for the study's lifetime, so the hypervolume
only ever grows); otherwise the worst value among the trials ranked (completed and feasible)
plus 10% of their range (of the worst value's magnitude when all are equal, 1 when that is 0
too). The derived point moves outward when a new trial widens the range, so hypervolumes of a
study without a given reference point are comparable only at a fixed set of trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from suggestion_service.domain.hypervolume import hypervolume, pareto_mask
from suggestion_service.domain.trial import Trial
from tuning_types.study import Direction, Objective

# Share of the observed range the derived reference point lies beyond the worst value.
REFERENCE_MARGIN = 0.1


@dataclass(frozen=True)
class BestTrials:
    trials: list[Trial]
    # Several objectives only (None otherwise, and before any trial is ranked).
    hypervolume: float | None = None
    # In the objectives' own units, in objective order; empty when hypervolume is None.
    reference_point: tuple[float, ...] = ()


def loss_signs(objectives: Sequence[Objective]) -> np.ndarray:
    """Per objective, what turns its values into losses (lower is better)."""
    return np.array([1.0 if o.direction is Direction.MINIMIZE else -1.0 for o in objectives])


def objective_matrix(trials: Sequence[Trial], objectives: Sequence[Objective]) -> np.ndarray:
    """Values as a (n_trials, n_objectives) array, signs flipped so that lower is better."""
    values = np.array([[t.metric(o.metric) for o in objectives] for t in trials], dtype=float)
    return values.reshape(len(trials), len(objectives)) * loss_signs(objectives)


def reference_point(losses: np.ndarray, objectives: Sequence[Objective]) -> np.ndarray:
    """The reference point in loss space (lower is better) for ranked trials' ``losses``."""
    worst, best = losses.max(axis=0), losses.min(axis=0)
    margin = REFERENCE_MARGIN * (worst - best)
    margin = np.where(margin > 0, margin, REFERENCE_MARGIN * np.abs(worst))
    reference = worst + np.where(margin > 0, margin, 1.0)
    signs = loss_signs(objectives)
    for k, objective in enumerate(objectives):
        if objective.reference_point is not None:
            reference[k] = signs[k] * objective.reference_point
    return reference


def best_trials(trials: Sequence[Trial], objectives: Sequence[Objective]) -> BestTrials:
    """Completed trials that no other completed trial dominates, by trial number.

    With one objective that is the single best trial (the earliest one on ties); with several,
    also the front's hypervolume against the reference point (see the module docstring).
    """
    if not trials:
        return BestTrials([])
    losses = objective_matrix(trials, objectives)
    if len(objectives) == 1:
        return BestTrials([trials[int(np.argmin(losses[:, 0]))]])
    front = pareto_mask(losses)
    reference = reference_point(losses, objectives)
    return BestTrials(
        sorted((t for t, keep in zip(trials, front) if keep), key=lambda t: t.number),
        hypervolume(losses[front], reference),
        tuple(float(r) for r in reference * loss_signs(objectives)),
    )
