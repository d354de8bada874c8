"""Transfer learning: what GP and TPE share of a study's priors (``SuggestContext.priors``).

A prior trial counts when it completed with a finite value and, restricted to the study's
parameters, is a valid assignment of the study's space (``SearchSpace.complete``: every active
parameter present, fixed ones filled in, every value inside the study's bounds and choices).
Parameters only the prior has are ignored; a trial with a value outside the study's domain is
dropped, not clipped (a clipped point would claim a measurement at the bound that was never
made). Each prior's values become losses in its own direction (lower is better).

How each algorithm then uses them is in its own module; both start the same way: the first
``WARM_CONFIGS`` proposals of the study are the priors' best configurations (interleaved
across priors, best first), *before* the algorithm's usual start-up points, all of which
follow (``startup_points``): a prior that does not fit costs those few trials and leaves the
study's own exploration as it would be without it. Both measure a prior's *relevance* on the
study's own completed trials from the Kendall rank correlation between the prior's model and
the observed losses (``relevance``), so a prior whose ranking does not agree fades out as the
study's trials arrive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from suggestion_service.algorithms.base import PriorTask
from suggestion_service.algorithms.quasi_random import low_discrepancy_points
from suggestion_service.domain.trial import TrialState
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace, Value, config_key
from tuning_types.study import Direction

# Proposals taken from the priors' best configurations at the start of a study. One: on the
# benchmark (docs/BENCHMARKS.md) a related prior's best alone reached the target regret, while
# each warm proposal of a misleading prior is a bad observation the study then has to model
# (three cost a GP on Branin 9 more trials to the target, one cost 2).
WARM_CONFIGS = 1
# Below this many completed trials of its own, a study cannot rank a prior: the prior gets
# the algorithm's fixed start-up weight.
MIN_RELEVANCE_TRIALS = 5
# Where a suggestion's metadata reports what the priors did (docs/ALGORITHMS.md).
PRIORS_KEY = "priors"
# Standard errors of Kendall's tau a prior's ranking must clear to count (about 95% one-sided).
_RELEVANCE_Z = 2.0
# Sobol index of the stand-ins for taken warm proposals (see startup_points).
_TAKEN_WARM = 2**20


@dataclass(frozen=True)
class UsablePrior:
    """A prior's trials that fall inside the study's space, and their losses."""

    study: str
    params: list[dict[str, Value]]
    losses: np.ndarray  # [n], lower is better
    # The objects the list was read from: a model fitted on it may be reused while they stay.
    source: tuple


def usable(space: SearchSpace, priors: Sequence[PriorTask]) -> list[UsablePrior]:
    """Each prior's trials that the study can use (see the module docstring), in ``priors`` order."""
    out = []
    for prior in priors:
        sign = -1.0 if prior.objective.direction is Direction.MAXIMIZE else 1.0
        params, losses = [], []
        for trial in prior.trials:
            if trial.state is not TrialState.COMPLETED or not trial.values or not math.isfinite(trial.values[0]):
                continue
            given = {name: value for name, value in trial.params.items() if name in space.names}
            try:
                params.append(space.complete(given))
            except InvalidArgument:
                continue
            losses.append(sign * float(trial.values[0]))
        out.append(UsablePrior(prior.study, params, np.array(losses, dtype=float), prior.trials))
    return out


def warm_configs(priors: Sequence[UsablePrior], taken: set) -> list[dict[str, Value]]:
    """Up to ``WARM_CONFIGS`` distinct configurations: each prior's best in turn, then each one's
    second best..., skipping the ``taken`` ones (by ``config_key``)."""
    orders = [np.argsort(p.losses, kind="stable") for p in priors]
    picked: list[dict[str, Value]] = []
    seen = set(taken)
    for rank in range(max((len(o) for o in orders), default=0)):
        for prior, order in zip(priors, orders):
            if rank < len(order) and len(picked) < WARM_CONFIGS:
                params = prior.params[order[rank]]
                if config_key(params) not in seen:
                    seen.add(config_key(params))
                    picked.append(params)
        if len(picked) == WARM_CONFIGS:
            break
    return picked


def relevance(predicted_loss: np.ndarray, losses: np.ndarray) -> float | None:
    """How well a prior's predicted losses at the study's trials rank their observed ``losses``:
    Kendall's tau less ``_RELEVANCE_Z`` standard errors under independence, clipped at 0 (a
    prior that ranks backwards is not trusted either); None with fewer than
    ``MIN_RELEVANCE_TRIALS`` trials.

    The margin matters: with 10 trials an unrelated prior's tau is often 0.2 or more by
    chance, and on the benchmark such priors steered TPE away from the optimum."""
    from scipy.stats import kendalltau

    n = len(losses)
    if n < MIN_RELEVANCE_TRIALS:
        return None
    tau = kendalltau(predicted_loss, losses).statistic
    standard_error = math.sqrt(2.0 * (2 * n + 5) / (9.0 * n * (n - 1)))
    return max(0.0, float(tau) - _RELEVANCE_Z * standard_error) if math.isfinite(tau) else 0.0


def startup_points(dims: int, seed: int, first: int, count: int, n_warm: int) -> np.ndarray:
    """Start-up points for proposals ``first .. first + count - 1`` [count, dims] when the
    first ``n_warm`` proposals are the priors' best: the study's Sobol stream shifted by
    ``n_warm``, so every one of its points still comes after them. Where a warm proposal was
    already taken (the configuration is in the study), its stand-in comes from far along the
    stream, where no other proposal draws."""
    if n_warm == 0:
        return low_discrepancy_points(dims, seed, first, count)
    return np.array([low_discrepancy_points(dims, seed, i - n_warm if i >= n_warm else _TAKEN_WARM + i, 1)[0]
                     for i in range(first, first + count)]).reshape(count, dims)


def report(priors: Sequence[UsablePrior], weights: Mapping[str, Mapping]) -> dict[str, dict]:
    """The metadata's ``PRIORS_KEY`` entry: per prior study, its usable trials and what the
    algorithm made of it (``weights[study]``); a prior without usable trials says it has no effect."""
    out = {}
    for prior in priors:
        entry = {"usable_trials": len(prior.params)}
        if not prior.params:
            entry["effect"] = "none: no completed trial of this prior falls inside the study's space"
        out[prior.study] = {**entry, **weights.get(prior.study, {})}
    return out
