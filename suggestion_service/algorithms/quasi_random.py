"""Low-discrepancy search: scrambled Sobol or Halton points mapped onto the space."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from suggestion_service.algorithms.base import Algorithm, SuggestContext, Suggestion
from tuning_common.errors import InvalidArgument

_SEQUENCES = ("sobol", "halton")


class QuasiRandomSearch(Algorithm):
    name = "quasi_random"

    @dataclass(frozen=True)
    class Settings:
        sequence: str = "sobol"
        scramble: bool = True

    @classmethod
    def check_settings(cls, settings, field):
        if settings.sequence not in _SEQUENCES:
            raise InvalidArgument(f"{field}.sequence", f"must be 'sobol' or 'halton', got {settings.sequence!r}")

    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        points = low_discrepancy_points(len(self.space), self.seed, context.sequence, count,
                                        self.settings.sequence, self.settings.scramble)
        return [Suggestion(self.space.from_unit(point)) for point in points]


def low_discrepancy_points(dims: int, seed: int, start: int, count: int, sequence: str = "sobol",
                           scramble: bool = True) -> np.ndarray:
    """Points ``start .. start + count - 1`` of a study's sequence in the unit cube, (count, dims).

    The start-up of the model-based algorithms uses this same stream, so their first
    proposals are exactly quasi_random's.
    """
    # Imported here: scipy.stats takes most of a second to import, which every CLI call would pay.
    from scipy.stats import qmc

    # The seed masked to 32 bits keeps scipy's generator happy across platforms.
    engine = {"sobol": qmc.Sobol, "halton": qmc.Halton}[sequence](
        d=max(dims, 1), scramble=scramble, seed=(seed or 0) & 0xFFFFFFFF
    )
    with warnings.catch_warnings():
        # Sobol warns about non-power-of-two prefixes; the balance loss is negligible here.
        warnings.simplefilter("ignore", UserWarning)
        if start:  # scipy's Sobol cannot fast-forward by zero
            engine.fast_forward(start)
        return engine.random(count)
