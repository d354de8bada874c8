"""Feasibility for constrained GP-BO: one independent GP per constraint.

A trial is feasible when every constraint value is <= 0 (Optuna's convention). Following
Gardner et al. (2014), "Bayesian optimization with inequality constraints", and Optuna's
constrained GPSampler, each constraint ``c_k`` gets its own GP (same Matérn-5/2 model and
MAP fit as the objective, ``model.py``) on standardised values, and the probability of
feasibility of a point is the product over constraints of ``P(c_k(x) <= 0)`` under the
posterior:

    log PoF(x) = sum_k log Phi((t_k - mean_k(x)) / std_k(x))

with ``t_k`` the threshold 0 in the k-th GP's standardised units. The constrained
acquisition is ``log EI(x) + log PoF(x)`` (EI times PoF, in log space so neither underflows),
where EI's incumbent is the best *feasible* observation. While no observation is feasible,
there is no incumbent and the acquisition is ``log PoF(x)`` alone: find the feasible region
first. Everything here is pure numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from suggestion_service.algorithms.gp.model import GaussianProcess

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def violations(C: np.ndarray) -> np.ndarray:
    """Total violation per row of constraint values [n, K]: sum of the positive parts."""
    return np.maximum(C, 0.0).sum(axis=1)


def feasible_rows(C: np.ndarray) -> np.ndarray:
    """[n] bool: rows whose every constraint value is <= 0."""
    return np.all(C <= 0.0, axis=1)


@dataclass
class FeasibilityModel:
    """Independent posteriors of the constraints, and the log probability of feasibility."""

    gps: Sequence[GaussianProcess]
    thresholds: np.ndarray  # [K] the value 0 in each GP's standardised units

    @classmethod
    def fit(cls, X: np.ndarray, C: np.ndarray,
            hyperparameters: Callable[[np.ndarray, int], np.ndarray]) -> FeasibilityModel:
        """GPs on ``X`` [n, D] and constraint values ``C`` [n, K]; ``hyperparameters(y, k)`` gives
        the log hyperparameters of constraint k's GP from its standardised values y [n]."""
        gps, thresholds = [], []
        for k in range(C.shape[1]):
            c = C[:, k]
            center, scale = float(np.mean(c)), float(np.std(c))
            if not scale > 0.0:
                scale = max(abs(center), 1.0)
            y = (c - center) / scale
            gps.append(GaussianProcess(X, y, hyperparameters(y, k)))
            thresholds.append(-center / scale)
        return cls(gps, np.array(thresholds))

    def log_pof(self, X: np.ndarray) -> np.ndarray:
        """log P(every constraint <= 0) at each row of X [m, D]."""
        total = np.zeros(len(X))
        for gp, t in zip(self.gps, self.thresholds):
            mean, var = gp.predict(X)
            total += log_ndtr((t - mean) / np.sqrt(var))
        return total

    def log_pof_with_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """log PoF at one point x [D] and its gradient [D]."""
        value, grad = 0.0, np.zeros_like(x)
        for gp, t in zip(self.gps, self.thresholds):
            mean, var, dmean, dvar = gp.predict_with_grad(x)
            std = math.sqrt(var)
            z = (t - mean) / std
            log_cdf = float(log_ndtr(z))
            # d log Phi(z) / dz = phi(z) / Phi(z), evaluated in log space for tail safety.
            ratio = math.exp(-0.5 * z * z - _LOG_SQRT_2PI - log_cdf)
            dstd = dvar / (2.0 * std)
            dz = -dmean / std - (t - mean) * dstd / (std * std)
            value += log_cdf
            grad += ratio * dz
        return value, grad


__all__ = ["FeasibilityModel", "feasible_rows", "violations"]
