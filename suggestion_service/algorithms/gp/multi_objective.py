"""Multi-objective GP as ParEGO (Knowles 2006): a random scalarisation per suggestion, log EI on it.

For each suggestion, every completed trial's objective values (negated where maximised) are
normalised to [0, 1] by the observed minimum and maximum of each objective, and combined with
weights ``w`` drawn uniformly from the simplex (seeded by the study seed and the sequence
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
from suggestion_service.domain.study import Direction, Objective
from suggestion_service.domain.trial import TrialState

# Weight of the linear term: small, so that the Chebyshev term shapes the scalarisation, but
# positive, so that weakly dominated points score worse than the points dominating them.
RHO = 0.05
# The objective the single-objective GP sees.
SCALARISED = Objective("parego_scalarisation", Direction.MINIMIZE)
# Separates the weights' random stream from the GP's own (seeded by seed and sequence alone).
_WEIGHT_STREAM = 0x9A2E60


def scalarise(losses: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Augmented Chebyshev values of ``losses`` (n, m; lower is better), normalised per objective."""
    low, high = losses.min(axis=0), losses.max(axis=0)
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
