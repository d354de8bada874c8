"""The GP's use of prior studies: a prior mean fitted to the study's own data.

Each prior with usable trials (``algorithms/transfer.py``) gets a GP of its own on its
warped, standardised losses, in the study's encoding; its posterior mean m_p(x) predicts
"good here" in the prior's standardised units. The study's GP then models the residual

    y(x) = sum_p a_p m_p(x) + f(x),        f ~ the usual GP (constant pessimistic mean)

with the weights a_p >= 0 fitted on the study's own standardised values by ridge regression
toward 0 (``_SHRINKAGE`` pseudo-observations), and a_p = 0 while the prior's mean ranks the
study's trials no better than chance (Kendall's tau <= 0, from 5 trials on): with a handful
of trials the weights stay small,
a prior that ranks the study's trials well gets a weight near the slope between the two, and
an unrelated prior's weight falls to about 0 as the study's trials arrive, leaving the GP as it
would be without priors. Unlike a GP on the pooled data, a wrong prior cannot pull the fitted
function at the study's own observations, only its shape between and away from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from suggestion_service.algorithms import transfer
from suggestion_service.algorithms.gp.model import Cross, GaussianProcess

# Ridge penalty on the prior weights, in pseudo-observations: a prior whose mean spreads like
# the study's values and explains them perfectly gets n / (n + _SHRINKAGE) of its slope after n trials.
_SHRINKAGE = 5.0


@dataclass(frozen=True)
class PriorModel:
    """One prior's GP; ``mean`` is its posterior mean in the prior's standardised units."""

    study: str
    gp: GaussianProcess

    def mean(self, X: np.ndarray) -> np.ndarray:
        return self.gp.predict(X)[0]


def fit_weights(models: list[PriorModel], X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, list[float | None]]:
    """Non-negative ridge weights [k] of the priors' means at X [n, D] for the study's
    standardised values y [n], and each prior's relevance there (``transfer.relevance``).

    A prior whose ranking of the study's points does not agree (relevance 0) gets weight 0.
    The penalty is in the priors' own standardised units (their means vary by about 1 over
    their trials), not in their spread over the study's points: a prior nearly flat there got
    a large, noisy slope, harmless at those points and large everywhere else."""
    from scipy.optimize import nnls

    M = np.column_stack([m.mean(X) for m in models])
    relevances = [transfer.relevance(M[:, k], y) for k in range(len(models))]
    weights = np.zeros(len(models))
    use = [k for k, r in enumerate(relevances) if r != 0.0]
    if use:
        Mc = M[:, use] - M[:, use].mean(0)
        A = np.vstack([Mc, np.sqrt(_SHRINKAGE) * np.eye(len(use))])
        b = np.concatenate([y - y.mean(), np.zeros(len(use))])
        weights[use] = nnls(A, b)[0]
    return weights, relevances


def prior_shift(models: list[PriorModel], weights: np.ndarray, X: np.ndarray) -> np.ndarray:
    """sum_p a_p m_p(X) [n]."""
    total = np.zeros(len(X))
    for model, weight in zip(models, weights):
        if weight > 0:
            total += weight * model.mean(X)
    return total


@dataclass(frozen=True)
class _ShiftedCross:
    cross: Cross
    shift: np.ndarray  # the prior mean at cross.x


class PriorMeanGP:
    """A GP on residuals plus the weighted prior means: the interface of GaussianProcess that
    the acquisition uses (predictions, fantasies, the cached cross-covariance, the gradient)."""

    def __init__(self, residual: GaussianProcess, models: list[PriorModel], weights: np.ndarray):
        self.residual = residual
        self.length_scales = residual.length_scales
        self.models, self.weights = models, weights

    def shift(self, X: np.ndarray) -> np.ndarray:
        return prior_shift(self.models, self.weights, X)

    def with_fantasies(self, X_new: np.ndarray, y_new: np.ndarray) -> PriorMeanGP:
        out = PriorMeanGP.__new__(PriorMeanGP)
        out.residual = self.residual.with_fantasies(X_new, y_new - self.shift(X_new))
        out.length_scales, out.models, out.weights = self.length_scales, self.models, self.weights
        return out

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_at(self.cross(x))

    def cross(self, x: np.ndarray) -> _ShiftedCross:
        return _ShiftedCross(self.residual.cross(x), self.shift(x))

    def predict_at(self, c: _ShiftedCross) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.residual.predict_at(c.cross)
        return mean + c.shift, var

    def predict_with_grad(self, x: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        mean, var, dmean, dvar = self.residual.predict_with_grad(x)
        for model, weight in zip(self.models, self.weights):
            if weight <= 0:
                continue
            m, _, dm, _ = model.gp.predict_with_grad(x)
            mean, dmean = mean + weight * m, dmean + weight * dm
        return mean, var, dmean, dvar
