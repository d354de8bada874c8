"""Low-discrepancy search: scrambled Sobol or Halton points mapped onto the space."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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
        dims = max(len(self.space), 1)
        # The seed masked to 32 bits keeps scipy's generator happy across platforms.
        # Imported here: scipy.stats takes most of a second to import, which every CLI call would pay.
        from scipy.stats import qmc

        engine = {"sobol": qmc.Sobol, "halton": qmc.Halton}[self.settings.sequence](
            d=dims, scramble=self.settings.scramble, seed=self.seed & 0xFFFFFFFF
        )
        with warnings.catch_warnings():
            # Sobol warns about non-power-of-two prefixes; the balance loss is negligible here.
            warnings.simplefilter("ignore", UserWarning)
            if context.sequence:  # scipy's Sobol cannot fast-forward by zero
                engine.fast_forward(context.sequence)
            points = engine.random(count)
        return [Suggestion(self.space.from_unit(point)) for point in points]
