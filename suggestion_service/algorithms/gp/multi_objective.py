"""Multi-objective GP as ParEGO (Knowles 2006): a random scalarisation per suggestion, log EI on it.

For each suggestion, every completed trial's objective values (negated where maximised) are
normalised per objective by the current Pareto front's range (its ideal and nadir point; 0 to 1
across the front, above 1 for dominated trials beyond its nadir), and combined with weights ``w`` drawn uniformly from the simplex (seeded by the study seed and the sequence
position) into the augmented Chebyshev scalarisation

    s(x) = max_k w_k z_k(x) + rho * sum_k w_k z_k(x),    rho = 0.05,

whose minimisers over all weights cover the whole Pareto front, concave parts included. The
single-objective GP (same kernel, fit, acquisition optimiser, constraint model) then minimises
``s`` with log EI; pending trials and earlier proposals of the batch are Kriging-believer
fantasies of ``s``, as for one objective. Different weights per suggestion spread a study, and
a batch, along the front.

This is a first step rather than expected hypervolume improvement: one GP on a scalarisation
instead of one GP per objective, so the model never sees the objectives' joint shape. A
completed trial with a non-finite value in any objective is left out of the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from suggestion_service.algorithms.base import Algorithm, SuggestContext, Suggestion
from suggestion_service.domain.hypervolume import pareto_mask
from suggestion_service.domain.trial import TrialState
from tuning_types.study import Direction, Objective

# Weight of the linear term: small, so that the Chebyshev term shapes the scalarisation, but
# positive, so that weakly dominated points score worse than the points dominating them.
RHO = 0.05
# The objective the single-objective GP sees.
SCALARISED = Objective("parego_scalarisation", Direction.MINIMIZE)
# Separates the weights' random stream from the GP's own (seeded by seed and sequence alone).
_WEIGHT_STREAM = 0x9A2E60


def scalarise(losses: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Augmented Chebyshev values of ``losses`` (n, m; lower is better), normalised per objective.

    By the front's range, not all trials': one far-off dominated trial (a diverged run, a random
    start-up point) would otherwise squash the front into a sliver of [0, 1] in that objective, so
    that almost every weight vector aimed at the same end of the front (on ZDT3 after 100 trials,
    f2 spans about 11 over all trials and 1.8 on the front). Where the front is one value wide in
    an objective, the range over all trials stands in.
    """
    low = losses.min(axis=0)
    high = losses[pareto_mask(losses)].max(axis=0)
    high = np.where(high > low, high, losses.max(axis=0))
    z = (losses - low) / np.where(high > low, high - low, 1.0)
    weighted = z * weights
    return weighted.max(axis=1) + RHO * weighted.sum(axis=1)


def suggest(single: Algorithm, objectives: Sequence[Objective], seed: int, context: SuggestContext,
            count: int) -> list[Suggestion]:
    """``count`` suggestions from ``single``, a GP built for :data:`SCALARISED`, one weight vector each."""
    signs = np.array([-1.0 if o.direction is Direction.MAXIMIZE else 1.0 for o in objectives])
    rows = [i for i, t in enumerate(context.history)
            if t.state is TrialState.COMPLETED and t.values and np.all(np.isfinite(t.values[:len(signs)]))]
    losses = np.array([context.history[i].values[:len(signs)] for i in rows], dtype=float).reshape(-1, len(signs))
    losses *= signs
    suggestions: list[Suggestion] = []
    for j in range(count):
        rng = np.random.default_rng([seed or 0, context.sequence + j, _WEIGHT_STREAM])
        weights = rng.dirichlet(np.ones(len(signs)))
        values = dict(zip(rows, scalarise(losses, weights))) if rows else {}
        # Completed trials outside ``rows`` (a non-finite value) get NaN, which the GP leaves out.
        history = tuple(replace(t, values=None if t.values is None else (float(values.get(i, np.nan)),),
                                last_values=None)
                        for i, t in enumerate(context.history))
        scalar_context = replace(context, objectives=(SCALARISED,), sequence=context.sequence + j, history=history,
                                 pending=(*context.pending, *(s.params for s in suggestions)))
        [suggestion] = single.suggest(scalar_context, 1)
        if suggestion.metadata.get("phase") == "model" and "fallback" not in suggestion.metadata:
            metadata = dict(suggestion.metadata)
            # The model predicts the scalarisation, not any one objective.
            metadata["predicted_scalarisation_mean"] = metadata.pop("predicted_mean")
            metadata["predicted_scalarisation_std"] = metadata.pop("predicted_std")
            metadata.update(scalarisation="parego", parego_weights=[float(w) for w in weights])
            suggestion = replace(suggestion, metadata=metadata)
        suggestions.append(suggestion)
    return suggestions


__all__ = ["RHO", "SCALARISED", "scalarise", "suggest"]
