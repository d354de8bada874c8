"""Parzen estimators for TPE: per-parameter kernels and their weighted mixtures (numpy only).

See the package docstring for the method; this module is the numerical part of it.
"""

from __future__ import annotations

import math
from itertools import repeat
from operator import itemgetter

import numpy as np
from scipy.special import ndtr, ndtri

from tuning_types.space import CategoricalDomain, FloatDomain, IntDomain, Parameter

# Observations beyond the newest this many get linearly decreasing kernel weights (as Optuna).
_FLAT_WEIGHTS = 25
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# Floor for Gaussian masses: far-off kernels underflow, and log(0) would poison a logsumexp.
_TINY = 1e-300
# Log-sum-exp terms this far below their row's largest are dropped (see _logsumexp_rows).
_NEGLIGIBLE = -700.0

CONTINUOUS, DISCRETE, CATEGORICAL = 0, 1, 2


def _log_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a <= b, elementwise.

    Intervals on the right of 0 are mirrored to the left, where ndtr keeps its relative
    precision (1 - tiny would round to 1 and the difference to 0).
    """
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    return np.log(np.maximum(ndtr(hi) - ndtr(lo), _TINY))


def _log_mass_inside(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """_log_mass for lo <= 0 <= hi (a kernel's interval around its centre).

    Intervals reaching 9 sigma on both sides hold all the mass in double precision: exactly 0
    without the normal CDFs, and at 10,000 trials that is most kernels of the "above" mixture.
    """
    log_z = np.zeros(len(lo))
    partial = (lo > -9.0) | (hi < 9.0)
    log_z[partial] = _log_mass(lo[partial], hi[partial])
    return log_z


def _truncnorm_standard(u: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of a standard normal truncated to [a, b] from uniforms u (mirrored as above)."""
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    p_lo, p_hi = ndtr(lo), ndtr(hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = ndtri(p_lo + u * (p_hi - p_lo))
    z = np.where(flip, -z, z)
    return np.clip(np.nan_to_num(z, nan=0.0), a, b)


def _logsumexp_rows(acc: np.ndarray) -> np.ndarray:
    """Row-wise logsumexp that overwrites ``acc``.

    Terms below e^-700 of their row's largest are dropped: at most 1e-300 of a row's sum (which
    is at least 1), beyond double precision. numpy's vectorised exp handles a block of inputs
    that far down (most terms, with many observations) ~20x slower, so they never reach it.
    """
    top = acc.max(axis=1, keepdims=True)
    acc -= top
    negligible = acc < _NEGLIGIBLE
    np.maximum(acc, _NEGLIGIBLE, out=acc)
    np.exp(acc, out=acc)
    acc[negligible] = 0.0
    return np.log(acc.sum(axis=1)) + top[:, 0]


def ramp_weights(n: int) -> np.ndarray:
    if n <= _FLAT_WEIGHTS:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - _FLAT_WEIGHTS), np.ones(_FLAT_WEIGHTS)])


def _neighbour_kernels(centers: np.ndarray, lo: float, hi: float, min_sigma: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bandwidths by the neighbour rule, as distinct (mu, sigma) pairs and each kernel's pair index.

    A kernel's width is the larger gap to its neighbouring centre (the bounds count as neighbours,
    except that the outermost kernels use their inner gap: Optuna's consider_endpoints=False),
    clipped to [min_sigma, hi - lo]. Sorting once gives both the gaps and, for grid dimensions
    where many kernels share a centre, runs of equal (mu, sigma) to merge: log_pdf then computes
    the costly cell masses once per pair. Equal pairs that are not adjacent stay separate, which
    is harmless. The prior kernel (centre of the range, width hi - lo) is the last pair.
    """
    n = len(centers)
    order = np.argsort(centers)
    ordered = centers[order]
    padded = np.concatenate([[lo], ordered, [hi]])
    gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
    if n >= 2:
        gaps[0] = padded[2] - padded[1]
        gaps[-1] = padded[-2] - padded[-3]
    gaps = np.clip(gaps, min_sigma, hi - lo)
    starts = np.ones(n, dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]) | (gaps[1:] != gaps[:-1])
    pair_sorted = np.cumsum(starts) - 1
    kernel_of = np.empty(n + 1, dtype=np.intp)
    kernel_of[order] = pair_sorted
    n_pairs = int(pair_sorted[-1]) + 1 if n else 0
    kernel_of[n] = n_pairs
    mu = np.append(ordered[starts], 0.5 * (lo + hi))
    sigma = np.append(gaps[starts], hi - lo)
    return mu, sigma, kernel_of


class Dim:
    """One modelled parameter: how its values map to the "internal" coordinate and back.

    The internal coordinate is the kernel-space value for continuous floats, the grid count for
    discrete parameters (index from low, or the int itself on a log scale), the choice index for
    categoricals. NaN means "inactive / not usable in this trial".
    """

    def __init__(self, parameter: Parameter):
        self.parameter = parameter
        domain = parameter.domain
        self.log = False  # whether kernel space is the log of the grid count (discrete) or value (float)
        if isinstance(domain, CategoricalDomain):
            self.kind = CATEGORICAL
            self.n_choices = len(domain.choices)
            # True == 1 == 1.0 in Python but they are different choices here, so numeric choices
            # are keyed by type too; all-string choices (the common case) take the faster plain keys.
            self.typed = any(not isinstance(c, str) for c in domain.choices)
            self.index = {((type(c), c) if self.typed else c): i for i, c in enumerate(domain.choices)}
            return
        if isinstance(domain, FloatDomain) and domain.step is None:
            self.kind = CONTINUOUS
            self.log = domain.log
            self.lo, self.hi = (math.log(domain.low), math.log(domain.high)) if domain.log else (domain.low, domain.high)
            return
        self.kind = DISCRETE
        if isinstance(domain, IntDomain) and domain.log:
            self.log = True
            self.u_min, self.u_max = domain.low, domain.high
            self.origin, self.step = 0, 1
        else:
            step = domain.step if domain.step is not None else 1
            n = domain.n_steps if isinstance(domain, FloatDomain) else (domain.high - domain.low) // step + 1
            self.u_min, self.u_max = 0, n - 1
            self.origin, self.step = domain.low, step
        self.lo, self.hi = self._center(np.array([self.u_min - 0.5, self.u_max + 0.5]))

    @property
    def width(self) -> float:
        return self.hi - self.lo

    def _center(self, u):
        return np.log(u) if self.log else u

    def centers(self, x: np.ndarray) -> np.ndarray:
        """Kernel-space position of internal coordinates (numerical dims)."""
        return self._center(x) if self.kind == DISCRETE else x

    def cells(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kernel-space cell [lo, hi) of each grid count (discrete dims)."""
        return self._center(x - 0.5), self._center(x + 0.5)

    def from_kernel(self, z: np.ndarray) -> np.ndarray:
        """Internal coordinate of kernel-space samples: grid dims round to the nearest cell."""
        if self.kind == CONTINUOUS:
            return np.clip(z, self.lo, self.hi)
        u = np.rint(np.exp(z) if self.log else z)
        return np.clip(u, self.u_min, self.u_max)

    def column(self, rows: list[dict]) -> np.ndarray:
        """Internal coordinates of this parameter in each row of trial params (NaN where absent)."""
        name = self.parameter.name
        values = map(itemgetter(name), rows)
        try:
            # Present everywhere, numbers or plain-string choices: the common case, read without
            # an intermediate list (a third of the cost at 10,000 trials).
            if self.kind != CATEGORICAL:
                return self._from_raw(np.fromiter(values, dtype=float, count=len(rows)))
            if not self.typed:
                return np.fromiter(map(self.index.get, values, repeat(np.nan)), dtype=float, count=len(rows))
        except (KeyError, TypeError, ValueError):
            pass
        return self.encode([p.get(name) for p in rows])

    def encode(self, values: list) -> np.ndarray:
        """Internal coordinates of raw trial values (None where the parameter is absent)."""
        if self.kind == CATEGORICAL:
            index = self.index
            if self.typed:
                return np.array([index.get((type(v), v), np.nan) for v in values], dtype=float)
            # Only strings are keys, so anything else (None when absent) maps to None, i.e. NaN.
            return np.array(list(map(index.get, values)), dtype=float)
        try:
            raw = np.array(values, dtype=float)  # None (absent) becomes NaN
        except (TypeError, ValueError):
            # A stray non-numeric value: NaN rather than an error (slower, hence not the default).
            raw = np.array([v if type(v) in (float, int) else np.nan for v in values], dtype=float)
        return self._from_raw(raw)

    def _from_raw(self, raw: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.kind == CONTINUOUS:
                return np.clip(np.log(raw) if self.log else raw, self.lo, self.hi)
            u = raw if self.log else np.rint((raw - self.origin) / self.step)
            return np.clip(u, self.u_min, self.u_max)

    def decode(self, x: float):
        domain = self.parameter.domain
        if self.kind == CATEGORICAL:
            return domain.choices[int(x)]
        if self.kind == CONTINUOUS:
            value = math.exp(x) if self.log else float(x)
            return min(max(value, domain.low), domain.high)
        u = int(x)
        if isinstance(domain, IntDomain):
            return u if self.log else domain.low + u * self.step
        return min(domain.low + u * self.step, domain.high)


def is_constant(parameter: Parameter) -> bool:
    """Parameters with a single possible value are filled in, never modelled."""
    d = parameter.domain
    if isinstance(d, CategoricalDomain):
        return len(d.choices) == 1
    if isinstance(d, FloatDomain):
        return d.low == d.high or (d.step is not None and d.n_steps == 1)
    if isinstance(d, IntDomain):
        return d.low == d.high or (not d.log and (d.high - d.low) // (d.step or 1) == 0)
    return True  # FixedDomain


class Mixture:
    """A weighted mixture of product kernels over one group's dims (last kernel: the prior).

    log_pdf is the hot spot (candidates x kernels, kernels up to the whole history), so the
    kernel parameters are folded into a coefficient matrix: with x' = (x - lo) / range per
    continuous dim, each kernel's log weight + Gaussian log densities is a linear function of the
    features [1, x'^2, x', one-hot(choice)], i.e. one matrix product for all of those dims.
    (Scaling to [0, 1] keeps the expanded square free of cancellation: sigma' >= 0.01 by the clip.)
    Discrete dims need Gaussian masses of cells; they are tabulated per distinct kernel and gathered.
    """

    def __init__(self, dims: list[Dim], x: np.ndarray, weights: np.ndarray, prior_weight: float):
        n = x.shape[0]
        k = n + 1
        self.dims = dims
        w = np.append(weights, prior_weight)
        self.weights = w / w.sum()
        self.mu, self.sigma, self.log_p, self.log_z, self.kernel_of = {}, {}, {}, {}, {}
        rows = [np.log(self.weights)]  # coefficient rows, in the order _features lays out features
        for j, dim in enumerate(dims):
            if dim.kind == CATEGORICAL:
                p = np.full((k, dim.n_choices), prior_weight / k)
                p[np.arange(n), x[:, j].astype(int)] += 1.0
                p[n] = 1.0  # the prior kernel: uniform
                self.log_p[j] = np.log(p / p.sum(axis=1, keepdims=True))
                rows.extend(self.log_p[j].T)
                continue
            width = dim.width
            mu, sigma, kernel_of = _neighbour_kernels(dim.centers(x[:, j]), dim.lo, dim.hi,
                                                      width / min(100.0, n + 2.0))
            if dim.kind == DISCRETE:
                # Grid kernels share few distinct (mu, sigma) pairs: log_pdf works per pair.
                self.kernel_of[j] = kernel_of
            else:
                mu, sigma = mu[kernel_of], sigma[kernel_of]
            # Truncation to [lo, hi]: each kernel is renormalised by its mass inside.
            log_z = _log_mass_inside((dim.lo - mu) / sigma, (dim.hi - mu) / sigma)
            if dim.kind == DISCRETE:
                self.log_z[j] = log_z
            else:
                m, inv_var = (mu - dim.lo) / width, (width / sigma) ** 2
                rows[0] = rows[0] - 0.5 * m * m * inv_var - np.log(sigma) - _LOG_SQRT_2PI - log_z
                rows.extend([-0.5 * inv_var, m * inv_var])
            self.mu[j], self.sigma[j] = mu, sigma
        self.coef = np.array(rows)

    def _features(self, x: np.ndarray) -> np.ndarray:
        columns = [np.ones(len(x))]
        for j, dim in enumerate(self.dims):
            if dim.kind == CATEGORICAL:
                columns.extend((x[:, j] == c).astype(float) for c in range(dim.n_choices))
            elif dim.kind == CONTINUOUS:
                scaled = (x[:, j] - dim.lo) / dim.width
                columns.extend([scaled * scaled, scaled])
        return np.stack(columns, axis=1)

    def sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        kernel = rng.choice(len(self.weights), size=m, p=self.weights)
        out = np.empty((m, len(self.dims)))
        for j, dim in enumerate(self.dims):
            u = rng.random(m)
            if dim.kind == CATEGORICAL:
                cdf = np.cumsum(np.exp(self.log_p[j][kernel]), axis=1)
                out[:, j] = np.minimum((u[:, None] * cdf[:, -1:] > cdf).sum(axis=1), dim.n_choices - 1)
                continue
            pair = self.kernel_of[j][kernel] if dim.kind == DISCRETE else kernel
            mu, sigma = self.mu[j][pair], self.sigma[j][pair]
            z = _truncnorm_standard(u, (dim.lo - mu) / sigma, (dim.hi - mu) / sigma)
            out[:, j] = dim.from_kernel(mu + sigma * z)
        return out

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """log density (mass, for discrete dims) of each row of x (internal coordinates)."""
        acc = self._features(x) @ self.coef
        gathered = None
        for j, dim in enumerate(self.dims):
            if dim.kind == DISCRETE:
                mu, sigma = self.mu[j], self.sigma[j]
                cell_lo, cell_hi = dim.cells(x[:, j, None])
                table = _log_mass((cell_lo - mu) / sigma, (cell_hi - mu) / sigma) - self.log_z[j]
                gathered = np.take(table, self.kernel_of[j], axis=1, out=gathered)
                acc += gathered
        return _logsumexp_rows(acc)
