"""Uniform random search (log-uniform on log scales), reproducible under a seed."""

from __future__ import annotations

import numpy as np

from suggestion_service.algorithms.base import Algorithm, SuggestContext, Suggestion
from tuning_types.space import FloatDomain, config_key

# Redraws before accepting a configuration identical to a pending one (small finite spaces).
_MAX_REDRAWS = 16


class RandomSearch(Algorithm):
    name = "random"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Repeats are only likely in a fully discrete space; a continuous one never repeats.
        self.uses_pending = all(
            not isinstance(p.domain, FloatDomain) or p.domain.step is not None for p in self.space
        )

    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        taken = {config_key(p) for p in context.pending}
        suggestions = []
        for index in range(context.sequence, context.sequence + count):
            # One stream per (seed, index): the n-th proposal never depends on concurrency.
            rng = np.random.default_rng([self.seed, index])
            for _ in range(_MAX_REDRAWS):
                params = self.space.from_unit(rng.random(len(self.space)))
                if config_key(params) not in taken:
                    break
            taken.add(config_key(params))
            suggestions.append(Suggestion(params))
        return suggestions
