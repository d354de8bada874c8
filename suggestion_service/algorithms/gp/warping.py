"""Output warping: makes raw objective values safe to model with a stationary GP.

Values are first turned into losses (negated for a maximised objective), then
"half-rank" warped in the spirit of Vizier's HalfRankComponent: the better half (losses
at or below the median ``med``) is kept as is, linear, because that is where the
optimum's fine structure lives; the worse half is replaced by rank-based normal
quantiles, ``med + sigma * Phi^-1((rank - 0.5) / n)``, with ``sigma`` the better half's RMS
distance to the median. A diverging run that reports 1e9 therefore becomes just "the
worst so far", instead of squashing every other value into one point after
standardisation. Finally the warped values are standardised to mean 0, variance 1.

The warp is monotone, so the minimiser is unchanged; :meth:`OutputWarp.to_objective` maps
model predictions back to the objective's units (exactly in the linear half, by
interpolation between observed values in the rank half, clipped to the observed range).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata


class OutputWarp:
    def __init__(self, values: np.ndarray, maximize: bool):
        values = np.asarray(values, dtype=float)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError("objective values must be finite and non-empty")
        self.sign = -1.0 if maximize else 1.0
        loss = self.sign * values
        n = len(loss)
        self.median = float(np.median(loss))
        good = loss <= self.median
        sigma = float(np.sqrt(np.mean((loss[good] - self.median) ** 2)))
        if not sigma > 0.0:
            sigma = float(np.std(loss)) or 1.0
        warped = loss.copy()
        bad = ~good
        if bad.any():
            quantiles = (rankdata(loss) - 0.5) / n
            warped[bad] = self.median + sigma * ndtri(quantiles[bad])
        self.center = float(np.mean(warped))
        self.scale = float(np.std(warped)) or 1.0
        self.y = (warped - self.center) / self.scale
        # Anchors for inverting the rank half: (warped, loss), increasing.
        order = np.argsort(warped[bad], kind="stable")
        self._bad_warped = np.concatenate([[self.median], warped[bad][order]])
        self._bad_loss = np.concatenate([[self.median], loss[bad][order]])

    def _to_loss(self, y: np.ndarray) -> np.ndarray:
        w = self.center + self.scale * np.asarray(y, dtype=float)
        return np.where(w <= self.median, w, np.interp(w, self._bad_warped, self._bad_loss))

    def to_objective(self, mean: float, std: float) -> tuple[float, float]:
        """A standardised prediction (mean, std) in the objective's own units and direction.

        The std is a delta-method estimate: half the width of the mapped +-1 std interval.
        """
        lo, mid, hi = self._to_loss(np.array([mean - std, mean, mean + std]))
        return float(self.sign * mid), float(abs(hi - lo) / 2.0)
