"""Gaussian-process regression: Matérn-5/2 ARD kernel, MAP hyperparameters, posterior.

Notation (shapes in brackets; the objective is always *minimised* here):

    n           number of training points (observations, plus fantasies for pending trials)
    m           number of query points
    D           number of features (encoded dimensions, see ``encoding.py``)
    X           training inputs in the unit cube                                [n, D]
    y           training targets: warped, standardised losses (``warping.py``)   [n]
    x           query points                                                    [m, D] or [D]
    theta       log hyperparameters [log l_1 .. log l_D, log s2, log noise]      [D + 2]
    l           ARD length scales                                               [D]
    s2          signal variance, the prior variance of f(x)                     scalar
    noise       observation-noise variance                                      scalar
    r           scaled distance sqrt(sum_d (x_d - x'_d)^2 / l_d^2)              [m, n] or [n, n]
    k(r)        Matérn-5/2: s2 * (1 + sqrt5 r + 5/3 r^2) * exp(-sqrt5 r)
    K_ff        k(X, X), the noiseless kernel matrix                            [n, n]
    K_yy        K_ff + (noise + jitter) I, the covariance of y                  [n, n]
    L           lower Cholesky factor of K_yy                                   [n, n]
    alpha       K_yy^-1 y                                                       [n]
    k_xX        k(x, X)                                                         [m, n]
    mean, var   posterior mean and variance of the latent f(x) (no noise)       [m]

Hyperparameters are the MAP estimate: log marginal likelihood plus log-normal priors,
maximised with L-BFGS-B on analytic gradients, either from a few seeded starts
(``fit_hyperparameters``) or from an earlier fit of the same study (``refit_hyperparameters``:
with one more observation the optimum barely moves, so a short run from the old one finds it).

    l_d      ~ LogNormal(sqrt2 + log(D) / 2, 3)
                                          dimension-scaled prior of Hvarfner et al. (2024),
                                          "Vanilla BO performs great in high dimensions";
                                          a density on l_d itself (as in BoTorch), so its
                                          log includes -log l_d and its mode is
                                          exp(sqrt2 - 3) sqrt(D) ~ 0.2 sqrt(D), not the
                                          median exp(sqrt2) sqrt(D) ~ 4 sqrt(D)
    log s2   ~ N(0, 1)                     y is standardised, so s2 ~ 1
    log noise ~ N(-6, 2^2)                 pushes noise small (noise ~ 2.5e-3 of var(y))
                                          while letting noisy data raise it
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.linalg.lapack import dpotri, dpotrs
from scipy.optimize import minimize

SQRT5 = math.sqrt(5.0)
LOG_2PI = math.log(2.0 * math.pi)

# Bounds on the log hyperparameters (inputs live in [0, 1], y is standardised).
LOG_LENGTH_BOUNDS = (math.log(1e-2), math.log(1e3))
LOG_SIGNAL_BOUNDS = (math.log(5e-2), math.log(20.0))
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))
NOISE_PRIOR = (-6.0, 2.0)  # mean, std of log noise
SIGNAL_PRIOR = (0.0, 1.0)
# Relative jitter added to the diagonal when a Cholesky factorisation fails, tried in order.
_JITTERS = (0.0, 1e-8, 1e-6, 1e-4)
_FIT_MAXITER = 80
# Noise variance (relative to s2) of a fantasised observation: exact up to numerical safety.
_FANTASY_NOISE = 1e-6


class ModelError(ArithmeticError):
    """The GP could not be fitted or evaluated (ill-conditioned, non-finite)."""


def length_scale_prior(dim: int) -> tuple[float, float]:
    return math.sqrt(2.0) + 0.5 * math.log(max(dim, 1)), math.sqrt(3.0)


def _scaled_sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows of already-scaled a [m, D] and b [n, D]."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def matern52(r: np.ndarray, s2: float) -> np.ndarray:
    return s2 * (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-SQRT5 * r)


def _cholesky(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of K, escalating the diagonal jitter until it succeeds."""
    scale = float(np.mean(np.diag(K))) if K.size else 1.0
    for jitter in _JITTERS:
        try:
            A = K if jitter == 0.0 else K + jitter * scale * np.eye(len(K))
            return cholesky(A, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            continue
    raise ModelError("kernel matrix is not positive definite even with jitter")


def _log_prior(theta: np.ndarray, dim: int) -> tuple[float, np.ndarray]:
    """Log prior density (up to a constant) of theta and its gradient [D + 2]."""
    mu_l, sd_l = length_scale_prior(dim)
    means = np.concatenate([np.full(dim, mu_l), [SIGNAL_PRIOR[0], NOISE_PRIOR[0]]])
    sds = np.concatenate([np.full(dim, sd_l), [SIGNAL_PRIOR[1], NOISE_PRIOR[1]]])
    z = (theta - means) / sds
    grad = -z / sds
    # The length-scale prior is a log-normal density on l, not a normal density on log l:
    # the extra -log l moves the MAP's pull from the median (~10 in 6-D, which made the
    # unit cube look nearly linear along most axes, so the mean extrapolated to corners
    # and exploration stopped) to the mode (~0.5 in 6-D).
    grad[:dim] -= 1.0
    return -0.5 * float(z @ z) - float(theta[:dim].sum()), grad


def neg_log_posterior(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """-(log p(y | X, theta) + log p(theta)) and its gradient in theta, shape [D + 2]."""
    n, dim = X.shape
    length = np.exp(theta[:dim])
    s2, noise = math.exp(theta[dim]), math.exp(theta[dim + 1])
    Xs = X / length
    r = np.sqrt(_scaled_sq_dist(Xs, Xs))
    e = np.exp(-SQRT5 * r)
    K_ff = s2 * (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * e
    K_yy = K_ff + noise * np.eye(n)
    try:
        L = _cholesky(K_yy)
    except ModelError:
        return 1e20, np.zeros_like(theta)
    alpha = cho_solve((L, True), y, check_finite=False)
    lml = -0.5 * float(y @ alpha) - float(np.log(np.diag(L)).sum()) - 0.5 * n * LOG_2PI
    # d lml / d theta_j = 1/2 tr(W dK/d theta_j) with W = alpha alpha^T - K_yy^-1. The inverse
    # from the factor (LAPACK potri, lower triangle only) costs a third of solving L L^T Z = I.
    K_inv, info = dpotri(L, lower=1)
    if info != 0:
        return 1e20, np.zeros_like(theta)
    K_inv = np.tril(K_inv) + np.tril(K_inv, -1).T
    W = np.outer(alpha, alpha) - K_inv
    # dK_ff / d log l_d = M * (x_d - x'_d)^2 / l_d^2, M = 5/3 s2 (1 + sqrt5 r) e^(-sqrt5 r).
    G = W * ((5.0 / 3.0) * s2 * (1.0 + SQRT5 * r) * e)
    g = G.sum(1)
    grad_log_l = ((X * X * g[:, None]).sum(0) - (X * (G @ X)).sum(0)) / (length * length)
    grad = np.concatenate([grad_log_l, [0.5 * float((W * K_ff).sum()), 0.5 * noise * float(np.trace(W))]])
    prior, prior_grad = _log_prior(theta, dim)
    value = -(lml + prior)
    if not math.isfinite(value) or not np.all(np.isfinite(grad)):
        return 1e20, np.zeros_like(theta)
    return value, -(grad + prior_grad)


def _minimize(X: np.ndarray, y: np.ndarray, start: np.ndarray, maxiter: int):
    bounds = [LOG_LENGTH_BOUNDS] * X.shape[1] + [LOG_SIGNAL_BOUNDS, LOG_NOISE_BOUNDS]
    lower, upper = np.array(bounds).T
    return minimize(neg_log_posterior, np.clip(start, lower, upper), args=(X, y), jac=True, method="L-BFGS-B",
                    bounds=bounds, options={"maxiter": maxiter})


def fit_hyperparameters(X: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_restarts: int,
                        warm_start: np.ndarray | None = None) -> np.ndarray:
    """MAP log hyperparameters [D + 2]: the best of one start at the prior means, ``n_restarts``
    drawn from the priors and, if given, ``warm_start`` (an earlier fit's theta)."""
    dim = X.shape[1]
    mu_l, sd_l = length_scale_prior(dim)
    starts = [np.concatenate([np.full(dim, mu_l), [SIGNAL_PRIOR[0], math.log(1e-3)]])]
    for _ in range(n_restarts):
        draw = np.concatenate([
            rng.normal(mu_l, sd_l, dim),
            [rng.normal(*SIGNAL_PRIOR), rng.normal(*NOISE_PRIOR)],
        ])
        starts.append(draw)
    if warm_start is not None:
        starts.append(warm_start)
    best_theta, best_value = None, math.inf
    for start in starts:
        result = _minimize(X, y, start, _FIT_MAXITER)
        if math.isfinite(result.fun) and result.fun < best_value and np.all(np.isfinite(result.x)):
            best_theta, best_value = result.x, float(result.fun)
    if best_theta is None or best_value >= 1e19:
        raise ModelError("hyperparameter fit found no finite posterior")
    return best_theta


def refit_hyperparameters(X: np.ndarray, y: np.ndarray, warm_start: np.ndarray) -> np.ndarray | None:
    """MAP log hyperparameters [D + 2] from one L-BFGS-B run started at ``warm_start``; None when
    that run does not converge within the iterations a full fit gives each start, or ends
    non-finite: the warm start was then no longer near an optimum, and a full fit is due."""
    result = _minimize(X, y, warm_start, _FIT_MAXITER)
    if not (result.success and result.fun < 1e19 and np.all(np.isfinite(result.x))):
        return None
    return result.x


@dataclass(frozen=True)
class Cross:
    """A GP's cross-covariance with query points x [m, D], and its whitened form."""

    x: np.ndarray  # [m, D]
    k: np.ndarray  # [m, n] k(x, X)
    v: np.ndarray  # [n, m] L^-1 k(X, x)
    vv: np.ndarray  # [m] column sums of v * v: the variance the data explain


@dataclass
class GaussianProcess:
    """The posterior given training data and fixed hyperparameters.

    Rows flagged in ``exact`` are fantasies (Kriging believer): they are taken as noise-free
    values of f, so the latent variance collapses there even when the learned noise is large.
    """

    X: np.ndarray  # [n, D]
    y: np.ndarray  # [n]
    theta: np.ndarray  # [D + 2]
    exact: np.ndarray | None = None  # [n] bool, None = no fantasies
    factor: np.ndarray | None = None  # [n, n] L, when the caller has it already (with_fantasies)

    def __post_init__(self) -> None:
        dim = self.X.shape[1]
        self.length_scales = np.exp(self.theta[:dim])
        self.signal = math.exp(self.theta[dim])
        self.noise = math.exp(self.theta[dim + 1])
        self._Xs = self.X / self.length_scales
        if self.factor is None:
            noise = np.full(len(self.X), self.noise)
            if self.exact is not None:
                noise[self.exact] = _FANTASY_NOISE * self.signal
            K_yy = matern52(np.sqrt(_scaled_sq_dist(self._Xs, self._Xs)), self.signal) + np.diag(noise)
            self.factor = _cholesky(K_yy)
        self._L = self.factor
        self._alpha = cho_solve((self._L, True), self.y, check_finite=False)
        if not np.all(np.isfinite(self._alpha)):
            raise ModelError("posterior weights are not finite")

    def with_fantasies(self, X_new: np.ndarray, y_new: np.ndarray) -> GaussianProcess:
        """The same hyperparameters conditioned on extra noise-free observations (fantasies).

        The Cholesky factor grows by a block, [[L, 0], [B^T, L_new]] with B = L^-1 k(X, X_new)
        and L_new the factor of the fantasies' posterior covariance given X: O(n^2 k) for k
        fantasies instead of refactoring all n + k points, O((n + k)^3)."""
        if len(X_new) == 0:
            return self
        n, k = len(self.X), len(X_new)
        Xs_new = X_new / self.length_scales
        B = solve_triangular(self._L, matern52(np.sqrt(_scaled_sq_dist(self._Xs, Xs_new)), self.signal),
                             lower=True, check_finite=False)
        K_new = matern52(np.sqrt(_scaled_sq_dist(Xs_new, Xs_new)), self.signal)
        L = np.zeros((n + k, n + k), order="F")  # LAPACK's layout, as cholesky returns it: no copy per solve
        L[:n, :n] = self._L
        L[n:, :n] = B.T
        L[n:, n:] = _cholesky(K_new - B.T @ B + _FANTASY_NOISE * self.signal * np.eye(k))
        exact = np.zeros(n, dtype=bool) if self.exact is None else self.exact
        return GaussianProcess(np.vstack([self.X, X_new]), np.concatenate([self.y, y_new]), self.theta,
                               np.concatenate([exact, np.ones(k, dtype=bool)]), L)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean [m] and variance [m] of the latent f at x [m, D]."""
        return self.predict_at(self.cross(x))

    def cross(self, x: np.ndarray) -> Cross:
        """What predicting at x [m, D] costs O(m n^2) for, kept for this GP's fantasy extensions."""
        k_xX = matern52(np.sqrt(_scaled_sq_dist(x / self.length_scales, self._Xs)), self.signal)
        v = solve_triangular(self._L, k_xX.T, lower=True, check_finite=False)
        return Cross(x, k_xX, v, (v * v).sum(0))

    def predict_at(self, c: Cross) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean [m] and variance [m] at ``c.x``, where ``c`` is this GP's ``cross`` or that
        of the GP it extends (``with_fantasies``): then only the fantasies' rows are new, O(m n k)."""
        n0 = c.k.shape[1]
        mean = c.k @ self._alpha[:n0]
        vv = c.vv
        if n0 < len(self.X):
            k_new = matern52(np.sqrt(_scaled_sq_dist(c.x / self.length_scales, self._Xs[n0:])), self.signal)
            w = solve_triangular(self._L[n0:, n0:], k_new.T - self._L[n0:, :n0] @ c.v, lower=True,
                                 check_finite=False)
            mean = mean + k_new @ self._alpha[n0:]
            vv = vv + (w * w).sum(0)
        return mean, np.maximum(self.signal - vv, 1e-12 * self.signal)

    def predict_with_grad(self, x: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Mean, variance and their gradients [D] at one point x [D] (the acquisition polish's
        inner loop: LAPACK is called directly, and the [n, D] gradient of k is never formed)."""
        diff = x / self.length_scales - self._Xs  # [n, D], in length-scale units
        r = np.sqrt((diff * diff).sum(1))
        e = np.exp(-SQRT5 * r)
        k = self.signal * (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * e
        # dk/dx_d = c (x_d - X_d) / l_d^2 = c diff_d / l_d, with c = -5/3 s2 (1 + sqrt5 r) e^(-sqrt5 r).
        c = -(5.0 / 3.0) * self.signal * (1.0 + SQRT5 * r) * e
        mean = float(k @ self._alpha)
        Kinv_k, info = dpotrs(self._L, k, lower=1)
        if info != 0:
            raise ModelError("posterior solve failed")
        var = self.signal - float(k @ Kinv_k)
        floor = 1e-12 * self.signal
        dmean = (diff.T @ (c * self._alpha)) / self.length_scales
        dvar = -2.0 * (diff.T @ (c * Kinv_k)) / self.length_scales if var > floor else np.zeros_like(x)
        return mean, max(var, floor), dmean, dvar
