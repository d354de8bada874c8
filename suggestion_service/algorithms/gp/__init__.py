"""Gaussian-process Bayesian optimisation (GP-BO) for one objective (several: ParEGO, ``multi_objective.py``).

How a call to :meth:`GaussianProcessBO.suggest` proceeds:

1. **Start-up.** Proposal number ``i`` (``context.sequence + j``) is a scrambled Sobol point
   (the same stream as ``quasi_random``, indexed by ``i``) while ``i < n_startup_trials``,
   and also while fewer than two trials have completed. ``n_startup_trials = 0`` (the
   default) means ``max(10, 2 * number of non-fixed parameters)``.
2. **Data.** Completed trials with a finite value are encoded (``encoding.py``) and their
   values warped and standardised (``warping.py``). If there are more than
   ``max_observations``, the training set keeps the better half of that cap by value plus
   a spread of the rest chosen by greedy farthest-point selection in feature space.
3. **Model.** A Matérn-5/2 ARD GP with a constant prior mean at the worst observed value
   (``_prior_mean``), whose hyperparameters are the MAP estimate
   (``model.py``), fitted once per call on at most ``_FIT_POINTS`` of the training points
   (the best and a spread, as above): the cubic cost of the many likelihood evaluations
   then stays bounded, while the posterior itself uses the whole training set.
   **Warm start**: every model proposal stores its fitted hyperparameters in its metadata
   (``KERNEL_KEY``), and the history hands them back. The next fit is a single L-BFGS-B
   run from the most recent stored ones (one more observation barely moves the optimum);
   a full fit from every start (the warm one among them) runs instead when the last full
   one is ``_full_fit_interval`` proposals old, when no compatible stored fit exists, and,
   per GP, when the warm run does not converge. All of it is read from the context, so a
   restart or another replica computes the same fit.
4. **Pending trials and batches (Kriging believer).** Each ACTIVE/QUEUED trial in the
   history, each entry of ``context.pending`` and each earlier proposal of this batch is
   added to the GP at its believed value, the current posterior mean. The mean is
   unchanged, but the variance there collapses, so the acquisition looks elsewhere and
   parallel workers get distinct points. Exact repeats of those points are also excluded,
   and so are repeats of completed trials while any other candidate remains: with the
   small learned noise, the posterior variance left at an observed point gives it a
   positive EI, and where every improving direction costs probability of feasibility
   (an optimum on a constraint's edge) or the space is small and discrete, that spurious
   EI won and the incumbent was proposed again and again (half of 100 trials on the
   pressure-vessel benchmark, benchmarks/constrained.py).
5. **Acquisition** (``acquisition.py``; log EI by default) is scored on
   ``n_candidates`` scrambled Sobol points plus perturbations of the best observed points.
   Local searches then start from the best few distinct candidates and from the best
   observed points. Each alternates (a) L-BFGS-B on the continuous relaxation of the
   active numeric parameters (condition parents stay put), in length-scale units and
   within each column's ``Encoder.column_bounds``, decoded back onto the grid, with
   (b) the best discrete move (``Encoder.neighbours``: switch one categorical, step one
   integer or stepped float), until neither improves. Without (b) a run whose early
   points favoured the wrong category never left it.

**Constraints** (``constraints.py``): in a study that declares constraints, each one gets its
own GP on the same inputs, and the acquisition becomes log EI (or log PI) plus the log
probability of feasibility, with the best *feasible* observation as the incumbent; while
none is feasible, the log probability of feasibility alone. The local candidates perturb the
best feasible points, then the least violating ones. ``ucb`` is refused with constraints.

**Prior studies** (transfer learning, ``algorithms/transfer.py``): the first proposal is the
priors' best configuration, before the start-up points; the model then adds each prior's GP
mean, weighted by a ridge fit on the study's own values (``prior_mean.py``).

If the fit or the acquisition optimisation fails (a singular matrix, non-finite
values), the proposal falls back to the quasi-random point of its index and its
metadata says so: ``{"fallback": "quasi_random", "reason": ...}``.

Everything random derives from ``(seed, context.sequence)``: an identical context gives
an identical answer.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from suggestion_service.algorithms import transfer
from suggestion_service.algorithms.base import Algorithm, PriorTask, SuggestContext, Suggestion
from suggestion_service.algorithms.gp import acquisition, multi_objective
from suggestion_service.algorithms.gp.constraints import FeasibilityModel, feasible_rows, violations
from suggestion_service.algorithms.gp.encoding import Encoder
from suggestion_service.algorithms.gp.model import (
    Cross,
    GaussianProcess,
    ModelError,
    fit_hyperparameters,
    refit_hyperparameters,
)
from suggestion_service.algorithms.gp.prior_mean import PriorMeanGP, PriorModel, fit_weights, prior_shift
from suggestion_service.algorithms.gp.warping import OutputWarp
from suggestion_service.domain.trial import TrialState
from tuning_common.errors import InvalidArgument
from tuning_types.space import Value, config_key
from tuning_types.study import Direction

# The model needs at least this many completed trials; before that proposals stay quasi-random.
_MIN_OBSERVATIONS = 2
# Hyperparameters are fitted on at most this many training points (see the module docstring).
_FIT_POINTS = 200
# A full hyperparameter fit (every start) at least every this many proposals, and more often
# early on: every tenth of the study's length so far (at proposal 40, every 4th), while each
# new observation still reshapes the likelihood and a full fit is cheap; warm starts between.
_FULL_FIT_EVERY = 10
# Where a model proposal's metadata keeps its fit (documented in docs/ALGORITHMS.md).
KERNEL_KEY = "kernel"
# Local searches per proposal: from the best distinct candidates and from the best observed
# points; rounds of polish + discrete move each may take; L-BFGS-B iterations per polish.
_SEARCH_STARTS = 8
_INCUMBENT_STARTS = 2
_SEARCH_ROUNDS = 4
_POLISH_MAXITER = 200
# Extra candidates: Gaussian perturbations (std _LOCAL_STD in feature units) of the best points.
_LOCAL_BEST = 5
_LOCAL_FRACTION = 0.1
_LOCAL_STD = 0.05
# Failures that send a proposal to the quasi-random fallback.
_FAILURES = (ModelError, ArithmeticError, ValueError, np.linalg.LinAlgError)


@dataclass
class _Data:
    """What the history says, encoded: observations and points still being evaluated."""

    X: np.ndarray  # [n, D] completed trials
    values: np.ndarray  # [n] their objective values, as reported
    params: list[Mapping[str, Value]]  # [n]
    pending: list[Mapping[str, Value]]  # running or queued configurations
    C: np.ndarray | None = None  # [n, K] constraint values of the completed trials; None: unconstrained
    warm: _WarmStart | None = None  # the most recent stored fit that suits this space and study


@dataclass(frozen=True)
class _WarmStart:
    """A fit stored under ``KERNEL_KEY`` by an earlier proposal of the study."""

    theta: np.ndarray  # the objective GP's log hyperparameters [D + 2]
    constraint_thetas: list[np.ndarray]  # each constraint GP's
    full_fit_index: int  # the proposal index of the last scheduled full fit

    @classmethod
    def parse(cls, facts: Any, dim: int, n_constraints: int) -> _WarmStart | None:
        """The stored fit, or None when it does not fit this encoding (another dimension, another
        number of constraints) or is malformed."""
        try:
            thetas = [_theta(facts)] + [_theta(k) for k in facts.get("constraints", ())]
            index = facts["full_fit_index"]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        # An integral double is a fine index (a Struct carries every number as one).
        if type(index) not in (int, float) or not float(index).is_integer():
            return None
        if len(thetas) != 1 + n_constraints or any(len(t) != dim + 2 for t in thetas):
            return None
        return cls(thetas[0], thetas[1:], int(index))


def _theta(facts: Mapping[str, Any]) -> np.ndarray:
    """Log hyperparameters from their stored form (natural units); ValueError unless all positive and finite."""
    values = np.array([*facts["length_scales"], facts["signal_variance"], facts["noise_variance"]], dtype=float)
    if not (values.ndim == 1 and np.all(np.isfinite(values)) and np.all(values > 0)):
        raise ValueError("not positive and finite")
    return np.log(values)


def _kernel_facts(gp: GaussianProcess) -> dict[str, Any]:
    return {"length_scales": [float(v) for v in gp.length_scales], "signal_variance": gp.signal,
            "noise_variance": gp.noise}


class GaussianProcessBO(Algorithm):
    """GP-BO: Matérn-5/2 ARD GP, MAP hyperparameters, log EI (or UCB/PI), Kriging believer."""

    name = "gp"
    uses_history = True
    model_based = True
    uses_priors = True

    @dataclass(frozen=True)
    class Settings:
        # "log_ei" (log expected improvement), "ucb" (confidence bound) or "pi" (log probability of improvement).
        acquisition: str = "log_ei"
        # UCB exploration weight: mean - sqrt(ucb_beta) * std is minimised.
        ucb_beta: float = 4.0
        # Quasi-random proposals before the model takes over; 0 = max(10, 2 * non-fixed parameters).
        n_startup_trials: int = 0
        # Sobol candidates scored per proposal before polishing.
        n_candidates: int = 2048
        # Most completed trials the GP is conditioned on (the best half of the cap plus a spread).
        max_observations: int = 300
        # Random restarts of the hyperparameter fit, besides the start at the prior means.
        n_restarts: int = 2

    @classmethod
    def check_settings(cls, settings, field):
        if settings.acquisition not in acquisition.ACQUISITIONS:
            raise InvalidArgument(f"{field}.acquisition",
                                  f"must be one of {', '.join(acquisition.ACQUISITIONS)}, got {settings.acquisition!r}")
        if not (math.isfinite(settings.ucb_beta) and settings.ucb_beta > 0):
            raise InvalidArgument(f"{field}.ucb_beta", f"must be positive and finite, got {settings.ucb_beta}")
        if not 0 <= settings.n_startup_trials <= 10_000:
            raise InvalidArgument(f"{field}.n_startup_trials",
                                  f"must be between 0 (automatic) and 10000, got {settings.n_startup_trials}")
        if not 16 <= settings.n_candidates <= 100_000:
            raise InvalidArgument(f"{field}.n_candidates",
                                  f"must be between 16 and 100000, got {settings.n_candidates}")
        if not 10 <= settings.max_observations <= 5_000:
            raise InvalidArgument(f"{field}.max_observations",
                                  f"must be between 10 and 5000, got {settings.max_observations}")
        if not 0 <= settings.n_restarts <= 20:
            raise InvalidArgument(f"{field}.n_restarts", f"must be between 0 and 20, got {settings.n_restarts}")

    @classmethod
    def check_constraints(cls, constraints, settings, field="spec.constraints"):
        # A confidence bound has no scale on which a probability of feasibility could weigh it.
        if constraints and settings.acquisition == "ucb":
            raise InvalidArgument("spec.algorithm.settings.acquisition",
                                  "'ucb' cannot weigh constraints; use 'log_ei' or 'pi' in a constrained study")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder = Encoder(self.space)
        # The priors of the last call and what was derived from them (usable trials, their GPs):
        # a pure function of those very objects, so reusing it never changes an answer.
        self._prior_cache: tuple[tuple[PriorTask, ...], list[transfer.UsablePrior], dict] = ((), [], {})

    @property
    def n_startup_trials(self) -> int:
        if self.settings.n_startup_trials > 0:
            return self.settings.n_startup_trials
        return max(10, 2 * len(self.encoder.slots))

    # -- the public entry point -------------------------------------------------------------

    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        if len(self.objectives) > 1:  # ParEGO: this GP on a random scalarisation per suggestion
            single = type(self)(self.space, (multi_objective.SCALARISED,), self.settings, self.seed)
            return multi_objective.suggest(single, self.objectives, self.seed, context, count)
        # Separate streams for the fit and the acquisition search: a warm fit draws no restarts,
        # and the candidates then stay those a full fit would have been followed by.
        fit_rng, search_rng = np.random.default_rng([self.seed, context.sequence]).spawn(2)
        data = self._read_history(context)
        base = {"algorithm": self.name, "seed": self.seed}
        priors = self._usable_priors(context.priors)
        warm = transfer.warm_configs(priors, set()) if priors else []
        sobol_points = transfer.startup_points(len(self.space), self.seed, context.sequence, count, len(warm))
        prior_facts: dict[str, dict] = {}
        if priors:
            base[transfer.PRIORS_KEY] = transfer.report(priors, prior_facts)
        suggestions: list[Suggestion] = []
        state: _ModelState | None = None
        pool: _Candidates | None = None
        failure: str | None = None
        for j in range(count):
            index = context.sequence + j
            if (index < self.n_startup_trials + len(warm) or len(data.values) < _MIN_OBSERVATIONS
                    or self.encoder.dim == 0):
                if index < len(warm) and not self._taken(warm[index], data, suggestions):
                    suggestions.append(Suggestion(dict(warm[index]), metadata={**base, "phase": "prior_best"}))
                    continue
                params = self.space.from_unit(sobol_points[j])
                suggestions.append(Suggestion(params, metadata={**base, "phase": "startup"}))
                continue
            if state is None and failure is None:
                try:
                    with context.stage("fit gp"):
                        models = self._prior_models(priors, prior_facts) if priors else []
                        state = self._fit(data, fit_rng, index, models, prior_facts)
                        if priors:
                            base[transfer.PRIORS_KEY] = transfer.report(priors, prior_facts)
                except _FAILURES as error:
                    failure = f"model fit failed: {type(error).__name__}: {error}"
            if failure is None:
                try:
                    believed = data.pending + [s.params for s in suggestions]
                    with context.stage("optimize acquisition"):
                        # Candidates are drawn once per call: a batch's proposals differ by
                        # their fantasies, and encoding the candidates is a large part of the cost.
                        if pool is None:
                            pool = _Candidates.of(self._candidates(state, search_rng), self.encoder, state)
                        suggestions.append(self._propose(state, pool, believed, base))
                    continue
                except _FAILURES as error:
                    reason = f"acquisition failed: {type(error).__name__}: {error}"
            else:
                reason = failure
            params = self.space.from_unit(sobol_points[j])
            suggestions.append(Suggestion(params, metadata={
                **base, "phase": "model", "fallback": "quasi_random", "reason": reason[:500]}))
        return suggestions

    # -- priors (transfer learning; gp/prior_mean.py) ------------------------------------------

    def _usable_priors(self, priors: tuple[PriorTask, ...]) -> list[transfer.UsablePrior]:
        cached, usable, _ = self._prior_cache
        if len(cached) != len(priors) or not all(map(operator.is_, cached, priors)):
            usable = transfer.usable(self.space, priors)
            self._prior_cache = (priors, usable, {})
        return usable

    def _prior_models(self, priors: list[transfer.UsablePrior], facts: dict[str, dict]) -> list[PriorModel]:
        """Each prior's GP (fitted once per set of priors, with a stream of its own), and the
        priors that have none in ``facts``."""
        fitted = self._prior_cache[2]
        models = []
        for k, prior in enumerate(priors):
            if prior.study not in fitted:
                fitted[prior.study] = self._fit_prior(prior, np.random.default_rng([self.seed, 1, k]))
            model = fitted[prior.study]
            if isinstance(model, str):
                facts[prior.study] = {"weight": 0.0, "reason": model}
            else:
                models.append(model)
        return models

    def _fit_prior(self, prior: transfer.UsablePrior, rng: np.random.Generator) -> PriorModel | str:
        if len(prior.losses) < _MIN_OBSERVATIONS:
            return f"fewer than {_MIN_OBSERVATIONS} usable trials"
        try:
            X = self.encoder.encode_many(prior.params)
            # A zero (average) mean, not the study GP's pessimistic one: where the prior has no
            # trials it should say nothing, and a constant "bad" there made a prior that shares
            # only its sampling pattern with the study look relevant.
            y = OutputWarp(prior.losses, maximize=False).y
            rows = _select(X, y, _FIT_POINTS)
            theta = fit_hyperparameters(X[rows], y[rows], rng, self.settings.n_restarts)
            return PriorModel(prior.study, GaussianProcess(X[rows], y[rows], theta))
        except _FAILURES as error:
            return f"prior model fit failed: {type(error).__name__}: {error}"[:300]

    def _taken(self, params: Mapping[str, Value], data: _Data, suggestions: list[Suggestion]) -> bool:
        key = config_key(params)
        return any(config_key(p) == key for p in [*data.params, *data.pending, *(s.params for s in suggestions)])

    # -- data ---------------------------------------------------------------------------------

    def _read_history(self, context: SuggestContext) -> _Data:
        rows, values, params, pending, constraint_rows = [], [], [], [], []
        n_constraints = len(context.constraints)
        for trial in context.history:
            try:
                if trial.state is TrialState.COMPLETED:
                    value = float(trial.values[0]) if trial.values else math.nan
                    if n_constraints and (trial.constraints is None or len(trial.constraints) != n_constraints):
                        continue  # a constrained study's tell always carries them; nothing to learn otherwise
                    if math.isfinite(value):
                        rows.append(self.encoder.encode(trial.params))
                        values.append(value)
                        params.append(trial.params)
                        if n_constraints:
                            constraint_rows.append(trial.constraints)
                elif trial.state in (TrialState.ACTIVE, TrialState.QUEUED):
                    self.encoder.encode(trial.params)  # skips what cannot be encoded
                    pending.append(trial.params)
            except (KeyError, ValueError, TypeError):
                continue  # a trial from an older space version: ignore rather than fail
        known = {config_key(p) for p in pending}
        for extra in context.pending:
            if config_key(extra) not in known:
                known.add(config_key(extra))
                pending.append(extra)
        X = np.array(rows) if rows else np.zeros((0, self.encoder.dim))
        C = np.array(constraint_rows, dtype=float).reshape(len(rows), n_constraints) if n_constraints else None
        stored = (_WarmStart.parse(t.metadata[KERNEL_KEY], self.encoder.dim, n_constraints)
                  for t in reversed(context.history) if KERNEL_KEY in t.metadata)
        return _Data(X, np.array(values, dtype=float), params, pending, C, next(filter(None, stored), None))

    # -- model --------------------------------------------------------------------------------

    def _fit(self, data: _Data, rng: np.random.Generator, index: int, prior_models: Sequence[PriorModel] = (),
             prior_facts: dict[str, dict] | None = None) -> _ModelState:
        """The models for proposal ``index`` on: a warm start from ``data.warm`` or a full fit
        (see the module docstring, step 3). With ``prior_models``, the GP models the residual
        after their weighted means (gp/prior_mean.py); their weights go to ``prior_facts``."""
        maximize = self.objectives[0].direction is Direction.MAXIMIZE
        warp = OutputWarp(data.values, maximize)
        keep = _select(data.X, warp.y, self.settings.max_observations)
        target = warp.y
        weights = None
        if prior_models:
            weights, relevances = fit_weights(list(prior_models), data.X[keep], warp.y[keep])
            target = warp.y - prior_shift(list(prior_models), weights, data.X)
            for model, weight, relevance in zip(prior_models, weights, relevances):
                prior_facts[model.study] = {"weight": float(weight), "relevance": relevance}
        offset = _prior_mean(target)
        X, y = data.X[keep], target[keep] - offset
        fit_rows = _select(X, y, _FIT_POINTS)
        warm = data.warm
        stored = None if warm is None else [warm.theta, *warm.constraint_thetas]
        scheduled = warm is None or not 0 <= index - warm.full_fit_index < _full_fit_interval(warm.full_fit_index)
        full_fit_index = index if scheduled else warm.full_fit_index

        def fit(y_fit: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
            """Model k's (0: the objective, then each constraint) log hyperparameters, and whether
            they come from the warm start alone."""
            if not scheduled:
                theta = refit_hyperparameters(X[fit_rows], y_fit, stored[k])
                if theta is not None:
                    return theta, True
            # A full fit starts from the stored fit too, so it never ends worse than that start's optimum.
            return fit_hyperparameters(X[fit_rows], y_fit, rng, self.settings.n_restarts,
                                       None if stored is None else stored[k]), False

        theta, warm_started = fit(y[fit_rows], 0)
        gp = GaussianProcess(X, y, theta)
        kernel = {**_kernel_facts(gp), "fit": "warm" if warm_started else "full", "full_fit_index": full_fit_index}
        if weights is not None:
            gp = PriorMeanGP(gp, list(prior_models), weights)
        observed = frozenset(config_key(p) for p in data.params)
        if data.C is None:
            best_rows = np.argsort(warp.y, kind="stable")[:_LOCAL_BEST]
            return _ModelState(gp, warp, float(warp.y.min()) - offset, [data.params[i] for i in best_rows],
                               len(keep), offset, observed, kernel)
        feasibility = FeasibilityModel.fit(X, data.C[keep], lambda c, k: fit(c[fit_rows], 1 + k)[0])
        kernel["constraints"] = [_kernel_facts(g) for g in feasibility.gps]
        feasible = feasible_rows(data.C)
        best = float(warp.y[feasible].min()) - offset if feasible.any() else None
        # Feasible points by value first, then infeasible ones by how little they violate.
        best_rows = np.lexsort((np.where(feasible, warp.y, violations(data.C)), ~feasible))[:_LOCAL_BEST]
        return _ModelState(gp, warp, best, [data.params[i] for i in best_rows], len(keep), offset, observed,
                           kernel, feasibility)

    # -- acquisition ---------------------------------------------------------------------------

    def _propose(self, state: _ModelState, pool: _Candidates, believed: Sequence[Mapping[str, Value]],
                 base: dict) -> Suggestion:
        name, beta = self.settings.acquisition, self.settings.ucb_beta
        gp, best = state.gp, state.best
        if believed:
            # Kriging believer: each pending point is an observation at the posterior mean. The
            # fantasies count as data, so they may also become the incumbent.
            X_b = self.encoder.encode_many(believed)
            y_b = state.gp.predict(X_b)[0]
            gp = gp.with_fantasies(X_b, y_b)
            # A fantasy may be infeasible, so in a constrained study it never becomes the incumbent.
            if state.feasibility is None:
                best = min(best, float(y_b.min()))
        taken = {config_key(p) for p in believed} | state.observed
        feasibility = state.feasibility

        def acquire(mean: np.ndarray, var: np.ndarray, log_pof: np.ndarray | None) -> np.ndarray:
            if best is None:  # nothing feasible yet: look for the feasible region
                return log_pof
            value = acquisition.evaluate(name, mean, np.sqrt(var), best, beta)[0]
            return value if log_pof is None else value + log_pof

        def score(X: np.ndarray) -> np.ndarray:
            return acquire(*gp.predict(X), None if feasibility is None else feasibility.log_pof(X))

        candidates, X_c = pool.params, pool.X
        # The pool's cross-covariance with the observations is the same for every proposal of
        # the call: only the fantasies' part is computed here.
        unmasked = acquire(*gp.predict_at(pool.cross), pool.log_pof)
        values = unmasked.copy()
        values[[key in taken for key in pool.keys]] = -np.inf
        if not np.any(np.isfinite(values)):
            # Every candidate repeats a pending or completed point: repeat a completed one
            # rather than one that is running (or proposed earlier in this batch).
            running = {config_key(p) for p in believed}
            values = unmasked.copy()
            values[[key in running for key in pool.keys]] = -np.inf
        if not np.any(np.isfinite(values)):  # every candidate is running
            values = unmasked
        if not np.any(np.isfinite(values)):
            raise ModelError("acquisition is not finite at any candidate")

        best_params, best_value = candidates[int(np.argmax(values))], float(np.max(values))
        # Local searches start from the best candidates and from the best observed points
        # (the incumbent's neighbourhood is where log EI's fine maximum usually is, and a
        # Sobol candidate rarely lands close enough for the polish to find it).
        starts = [candidates[i] for i in _top_distinct(X_c, values, _SEARCH_STARTS)]
        starts += [dict(p) for p in state.best_params[:_INCUMBENT_STARTS]]
        for start in starts:
            params, value = self._local_search(gp, start, best, score, taken, feasibility)
            if value > best_value:
                best_params, best_value = params, value

        x_best = self.encoder.encode(best_params)[None, :]
        mean, var = state.gp.predict(x_best)
        predicted_mean, predicted_std = state.warp.to_objective(float(mean[0]) + state.offset,
                                                                float(math.sqrt(var[0])))
        extra = {}
        if feasibility is not None:
            extra = {"acquisition": "log_pof" if best is None else f"{name}+log_pof",
                     "probability_of_feasibility": float(np.exp(feasibility.log_pof(x_best)[0]))}
        return Suggestion(dict(best_params), metadata={
            **base, "phase": "model",
            "predicted_mean": predicted_mean, "predicted_std": predicted_std,
            "acquisition": name, "acquisition_value": best_value,
            "n_observations": state.n_train, "n_pending": len(believed), **extra,
            KERNEL_KEY: state.kernel,
        })

    def _candidates(self, state: _ModelState, rng: np.random.Generator) -> list[dict[str, Value]]:
        """Scrambled Sobol points of the space, plus perturbations of the best observed points."""
        from scipy.stats import qmc

        n_local = int(self.settings.n_candidates * _LOCAL_FRACTION)
        engine = qmc.Sobol(d=len(self.space), scramble=True, seed=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            U = engine.random(self.settings.n_candidates - n_local)
        candidates = [self.space.from_unit(u) for u in U]
        for k in range(n_local):
            params = state.best_params[k % len(state.best_params)]
            x = self.encoder.encode(params)
            columns = self.encoder.free_columns(params)
            if not columns:
                # Nothing numeric to perturb (a purely categorical space, or only condition
                # parents are numeric): a random discrete neighbour is the local candidate.
                moves = self.encoder.neighbours(params)
                if moves:
                    candidates.append(moves[int(rng.integers(len(moves)))])
                continue
            # Reflected at the column bounds: clipping would put every step that crosses a
            # bound exactly on it, and near a bound that is a large share of the candidates.
            lo, hi = np.array(self.encoder.column_bounds(columns)).T
            x[columns] = _reflect(x[columns] + rng.normal(0.0, _LOCAL_STD, len(columns)), lo, hi)
            candidates.append(self.encoder.with_columns(params, x, columns))
        return candidates

    def _local_search(self, gp: GaussianProcess, params: Mapping[str, Value], best: float | None, score,
                      taken: set, feasibility: FeasibilityModel | None = None) -> tuple[dict[str, Value], float]:
        """Alternate the continuous polish with the best discrete move (a category switch, an
        integer step) until neither improves; the best assignment not ``taken`` and its value."""
        params = dict(params)
        value = float(score(self.encoder.encode(params)[None, :])[0])
        if config_key(params) in taken:
            value = -math.inf
        for _ in range(_SEARCH_ROUNDS):
            polished = self._polish(gp, params, best, feasibility)
            if polished is not None and config_key(polished) not in taken:
                polished_value = float(score(self.encoder.encode(polished)[None, :])[0])
                if polished_value > value:
                    params, value = polished, polished_value
            moves = [m for m in self.encoder.neighbours(params) if config_key(m) not in taken]
            if not moves:
                break
            move_values = score(self.encoder.encode_many(moves))
            k = int(np.argmax(move_values))
            if not move_values[k] > value:
                break
            params, value = moves[k], float(move_values[k])
        return params, value

    def _polish(self, gp: GaussianProcess, params: Mapping[str, Value], best: float | None,
                feasibility: FeasibilityModel | None = None) -> dict[str, Value] | None:
        """L-BFGS-B on the active numeric features of one start; the result decoded onto the grid.

        It works in units of the length scales (z = x / l): the acquisition is then about
        equally curved along every axis, so L-BFGS-B converges in far fewer iterations when
        the length scales differ by orders of magnitude (as Optuna's GPSampler does)."""
        from scipy.optimize import minimize

        columns = self.encoder.free_columns(params)
        if not columns:
            return None
        name, beta = self.settings.acquisition, self.settings.ucb_beta
        x0 = self.encoder.encode(params)
        x = x0.copy()
        scale = gp.length_scales[columns]

        def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
            x[columns] = z * scale
            total, grad = 0.0, np.zeros_like(x)
            if best is not None:
                mean, var, dmean, dvar = gp.predict_with_grad(x)
                std = math.sqrt(var)
                value, d_mean, d_std = acquisition.evaluate(name, np.array([mean]), np.array([std]), best, beta)
                total, grad = float(value[0]), d_mean[0] * dmean + d_std[0] * dvar / (2.0 * std)
            if feasibility is not None:
                log_pof, d_log_pof = feasibility.log_pof_with_grad(x)
                total, grad = total + log_pof, grad + d_log_pof
            if not (math.isfinite(total) and np.all(np.isfinite(grad))):
                return 1e10, np.zeros(len(columns))
            return -total, -grad[columns] * scale

        bounds = np.array(self.encoder.column_bounds(columns)) / scale[:, None]
        z0 = np.clip(x0[columns] / scale, bounds[:, 0], bounds[:, 1])
        result = minimize(negative, z0, jac=True, method="L-BFGS-B", bounds=[tuple(b) for b in bounds],
                          options={"maxiter": _POLISH_MAXITER})
        x_final = x0.copy()
        x_final[columns] = np.clip(result.x * scale, 0.0, 1.0)
        return self.encoder.with_columns(params, x_final, columns)


@dataclass
class _ModelState:
    gp: GaussianProcess  # conditioned on the observations only
    warp: OutputWarp
    best: float | None  # lowest standardised loss observed (feasible only); None: none feasible yet
    best_params: list[Mapping[str, Value]]  # the best few observed configurations
    n_train: int
    offset: float  # the GP's constant prior mean, in standardised units: it models y - offset
    observed: frozenset  # config_key of every completed configuration: not proposed again
    kernel: dict[str, Any]  # the fit, as stored under KERNEL_KEY: the next call's warm start
    feasibility: FeasibilityModel | None = None  # the constraints' model, in a constrained study


@dataclass(frozen=True)
class _Candidates:
    """The configurations the acquisition is scored on first, and what scoring them again for
    another proposal of the same call can reuse."""

    params: list[dict[str, Value]]
    X: np.ndarray  # [m, D]
    keys: list[tuple]  # config_key of each
    cross: Cross  # the objective GP's, before fantasies
    log_pof: np.ndarray | None  # [m] log probability of feasibility; None: unconstrained

    @classmethod
    def of(cls, params: list[dict[str, Value]], encoder: Encoder, state: _ModelState) -> _Candidates:
        X = encoder.encode_many(params)
        log_pof = None if state.feasibility is None else state.feasibility.log_pof(X)
        return cls(params, X, [config_key(p) for p in params], state.gp.cross(X), log_pof)


def _full_fit_interval(full_fit_index: int) -> int:
    """Proposals from a full fit (at ``full_fit_index``) to the next one."""
    return min(max(full_fit_index // 10, 1), _FULL_FIT_EVERY)


def _prior_mean(y: np.ndarray) -> float:
    """The GP's constant prior mean: the worst (largest) standardised loss observed.

    With the usual zero mean (the average observation), a region far from every point is
    predicted "average, with the full prior variance", and once the incumbent's
    neighbourhood is exploited log EI prefers the farthest such region: the corners of the
    box. On the ``mixed`` benchmark that put every numeric parameter on a bound at once,
    up to a third of the time. A pessimistic mean (De Ath, Fieldsend & Everson 2020, "What
    do you mean? The role of the mean function in Bayesian optimisation") makes the
    unexplored only as promising as its variance, which cut those suggestions and, on
    Hartmann6, converged the runs that find the global basin much faster.
    """
    return float(y.max())


def _select(X: np.ndarray, y: np.ndarray, cap: int) -> np.ndarray:
    """Row indices: all rows if there are at most ``cap``; otherwise the ``cap // 2`` lowest
    ``y`` plus greedy farthest-point picks among the rest (deterministic)."""
    n = len(y)
    if n <= cap:
        return np.arange(n)
    order = np.argsort(y, kind="stable")
    chosen = list(order[: cap // 2])
    rest = order[cap // 2:]
    X_rest = X[rest]
    # Distance of each remaining row to the chosen set.
    nearest = np.sqrt(np.maximum(_sq_dist(X_rest, X[chosen]), 0.0)).min(1)
    taken = np.zeros(len(rest), dtype=bool)
    for _ in range(cap - len(chosen)):
        k = int(np.argmax(np.where(taken, -1.0, nearest)))
        taken[k] = True
        chosen.append(rest[k])
        d = np.sqrt(((X_rest - X_rest[k]) ** 2).sum(1))
        nearest = np.minimum(nearest, d)
    return np.sort(np.array(chosen))


def _reflect(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """x folded back into [lo, hi] at the bounds, like a ball bouncing off the walls."""
    width = np.maximum(hi - lo, 1e-12)
    t = np.mod(x - lo, 2.0 * width)
    return lo + width - np.abs(t - width)


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T


def _top_distinct(X: np.ndarray, values: np.ndarray, k: int) -> list[int]:
    """Indices of up to k highest finite values with pairwise-distinct feature rows."""
    picked: list[int] = []
    for i in np.argsort(-values, kind="stable"):
        if not np.isfinite(values[i]) or len(picked) == k:
            break
        if all(np.any(X[i] != X[j]) for j in picked):
            picked.append(int(i))
    return picked


__all__ = ["GaussianProcessBO"]
