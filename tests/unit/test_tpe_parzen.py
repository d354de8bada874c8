"""TPE's Parzen estimator against plain formulas: its shortcuts (terms dropped from the
log-sum-exp, saturated normalisers, fast column reads) must not change what it computes."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

from suggestion_service.algorithms.tpe.parzen import Dim, Mixture, ramp_weights
from trial_worker.space import Categorical, Float, Int


def test_log_pdf_of_many_narrow_kernels_equals_the_plain_mixture():
    # 2,000 observations in 2-D: kernels at the 0.01 clip, most terms far below each row's largest.
    dims = [Dim(Float("x", 0.0, 1.0)), Dim(Int("n", 1, 50))]
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.random(2000), rng.integers(0, 50, 2000)]).astype(float)
    weights = ramp_weights(len(x))
    mixture = Mixture(dims, x, weights, 1.0)
    candidates = mixture.sample(rng, 24)

    w = np.append(weights, 1.0)
    w /= w.sum()
    mu_x, sd_x = mixture.mu[0], mixture.sigma[0]
    z_x = norm.cdf((1 - mu_x) / sd_x) - norm.cdf(-mu_x / sd_x)
    pair = mixture.kernel_of[1]
    mu_n, sd_n = mixture.mu[1][pair], mixture.sigma[1][pair]
    z_n = norm.cdf((dims[1].hi - mu_n) / sd_n) - norm.cdf((dims[1].lo - mu_n) / sd_n)
    with np.errstate(divide="ignore"):  # far-off cells have mass 0 here (the mixture floors it)
        terms = (np.log(w) + norm.logpdf(candidates[:, :1], mu_x, sd_x) - np.log(z_x)
                 + np.log(norm.cdf((candidates[:, 1:] + 0.5 - mu_n) / sd_n) - norm.cdf((candidates[:, 1:] - 0.5 - mu_n) / sd_n))
                 - np.log(z_n))
    np.testing.assert_allclose(mixture.log_pdf(candidates), logsumexp(terms, axis=1), rtol=1e-9)


def test_column_reads_absent_and_odd_values_as_encode_does():
    rows = [{"x": 0.5, "c": "a", "t": True}, {"x": None, "c": 3}, {"c": "b", "t": 1}, {"x": "oops", "t": 1.0}]
    for parameter in (Float("x", 0.1, 1.0, log=True), Categorical("c", ["a", "b"]),
                      Categorical("t", [True, 1, 1.0])):
        dim = Dim(parameter)
        expected = dim.encode([row.get(parameter.name) for row in rows])
        np.testing.assert_array_equal(dim.column(rows), expected)
        # And the fast path (present everywhere) agrees with it too.
        present = [row for row in rows if parameter.name in row and row[parameter.name] is not None]
        np.testing.assert_array_equal(dim.column(present), dim.encode([row[parameter.name] for row in present]))
