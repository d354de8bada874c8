"""Acquisition functions for minimisation, larger is better, with derivatives in (mean, std).

With ``z = (best - mean) / std`` (``best`` the lowest observed standardised loss):

* ``log_ei``: log expected improvement, ``log std + log h(z)`` with
  ``h(z) = phi(z) + z Phi(z)``, computed stably far into the tail (Ament et al. 2023,
  "Unexpected improvements to expected improvement"): plain EI underflows to 0 and gives
  the optimiser a flat landscape, log EI does not.
* ``pi``: log probability of improvement, ``log Phi(z)``.
* ``ucb``: the (negated) lower confidence bound, ``-(mean - sqrt(beta) std)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfcx, log_ndtr

ACQUISITIONS = ("log_ei", "ucb", "pi")

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_SQRT_PI_OVER_2 = 0.5 * math.log(math.pi / 2.0)
_SQRT2 = math.sqrt(2.0)
# Beyond this, h(z) ~ phi(z) / z^2 to double precision.
_TAIL = -1.0 / math.sqrt(np.finfo(float).eps)


def _log1mexp(a: np.ndarray) -> np.ndarray:
    """log(1 - exp(a)) for a < 0, accurate on both sides of -log 2."""
    a = np.minimum(a, -1e-300)
    return np.where(a > -math.log(2.0), np.log(-np.expm1(a)), np.log1p(-np.exp(a)))


def log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z Phi(z)), stable for every real z."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    direct = z > -1.0
    zd = z[direct]
    out[direct] = np.log(np.exp(-0.5 * zd * zd - _LOG_SQRT_2PI) + zd * np.exp(log_ndtr(zd)))
    mid = ~direct & (z > _TAIL)
    zm = z[mid]
    out[mid] = (-0.5 * zm * zm - _LOG_SQRT_2PI
                + _log1mexp(np.log(erfcx(-zm / _SQRT2) * np.abs(zm)) + _LOG_SQRT_PI_OVER_2))
    tail = ~direct & ~mid
    zt = z[tail]
    out[tail] = -0.5 * zt * zt - _LOG_SQRT_2PI - 2.0 * np.log(np.abs(zt))
    return out


def log_ei(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    return np.log(std) + log_h((best - mean) / std)


def evaluate(name: str, mean: np.ndarray, std: np.ndarray, best: float, beta: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Acquisition values and their partial derivatives in mean and std (all shaped like mean)."""
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    if name == "ucb":
        kappa = math.sqrt(beta)
        return -(mean - kappa * std), -np.ones_like(mean), np.full_like(std, kappa)
    z = (best - mean) / std
    log_phi = -0.5 * z * z - _LOG_SQRT_2PI
    if name == "log_ei":
        lh = log_h(z)
        ratio = np.exp(log_ndtr(z) - lh)  # d log h / dz = Phi(z) / h(z)
        return np.log(std) + lh, -ratio / std, 1.0 / std - ratio * z / std
    if name == "pi":
        lp = log_ndtr(z)
        ratio = np.exp(log_phi - lp)  # d log Phi / dz = phi(z) / Phi(z)
        return lp, -ratio / std, -ratio * z / std
    raise ValueError(f"unknown acquisition {name!r}")
