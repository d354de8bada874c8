"""Tree-structured Parzen Estimator (TPE), single- or multi-objective (MOTPE), multivariate by default.

Notation
--------
    y          the loss of a completed trial: its objective values, each negated when maximising
    n          observations the model sees: completed trials, bad ones (PRUNED, INFEASIBLE) and,
               with ``constant_liar``, pending ones (ACTIVE, QUEUED, earlier proposals of this batch)
    n_below    min(ceil(gamma * n), max_below_trials), at most the number of completed trials
    B, A       "below": the n_below best completed trials (lowest y; with several objectives, by
               non-domination fronts and hypervolume, see ``multi_objective.py``); "above": every
               other observation
    l(x), g(x) Parzen densities fitted to B and to A: a weighted mixture of one kernel per
               observation plus one broad prior kernel (weight ``prior_weight``)
    acq(x)     log l(x) - log g(x); maximising l/g maximises expected improvement (Bergstra et al. 2011)

Each suggestion draws ``n_ei_candidates`` points from l and keeps the one with the largest acq.

Kernels, per parameter kind (all live in a "kernel space"; ``x`` below is the value there):

* float without step: a Gaussian truncated to [low, high], in log space for log scales;
* int, or float with a step: the same Gaussian over the grid widened by half a cell at each end,
  and the probability of a grid value is the Gaussian mass of its cell (a discretised kernel;
  samples are rounded to the grid, so sampling and density agree). Log-scale ints use cells
  [log(v - 0.5), log(v + 0.5)], the same cells ``IntDomain.from_unit`` uses;
* categorical: observation i puts mass 1 + prior_weight / K on its own choice and
  prior_weight / K on each choice (K kernels), normalised; the prior kernel is uniform.

Bandwidths follow Optuna 4.x/5.x in both modes: each kernel's width is the larger distance to
a neighbouring centre in its dimension, clipped to [range / min(100, n + 2), range] (the "magic
clip", which keeps a few observations from collapsing the model onto a point). Multivariate and
univariate differ only in what is modelled jointly. (The older Scott-like rule for multivariate,
one width 0.2 * n^(-1/(d + 4)) * range, lost to it on our sample-efficiency benchmark.) Kernels of older observations get a
linear ramp of weights once there are more than 25 (recent trials matter more).

Conditional spaces: parameters with the same condition (or none) form a group, modelled
jointly; a trial where a group is inactive does not inform it, and a group is sampled only
when its condition holds in the assignment built so far (parents come first in the space).
With ``multivariate=False`` every parameter is its own group.

History handling (what each trial state means to the model):

* COMPLETED with a finite value: an observation ranked by y (NaN counts as bad);
* PRUNED, INFEASIBLE: bad observations, always in A (stopped or refused for looking bad);
* ACTIVE, QUEUED: with ``constant_liar``, bad observations too, so parallel workers spread out;
* FAILED, STALE: ignored; a crash or a lost worker says nothing about the objective.

Constrained studies (``constraints.py``): the below set is chosen among the feasible
completed trials, completed with infeasible ones by increasing total violation only when too
few trials are feasible (Optuna's constrained TPE), so infeasible trials land in A otherwise.

Multi-objective studies (MOTPE, Optuna's split): see ``multi_objective.py``. The kernels of B
then weigh 1 each (no ramp: a front has no "recent is better" order), as in Optuna; a completed
trial with a non-finite value in any objective counts as bad.

The first ``n_startup_trials`` completions are awaited with scrambled Sobol points indexed by
``context.sequence``, exactly like ``quasi_random``. Everything below is vectorised over
observations: one suggestion costs a few (candidates x observations) array passes per parameter.

Prior studies (transfer learning, ``algorithms/transfer.py``): the first proposals are the
priors' best configurations, followed by the usual start-up points (the start-up then waits
for as many more completions). Each prior's usable trials then join the model as extra
kernels, split into its own below/above sets by its own gamma rule, each weighing

    w_p = relevance_p / (1 + n / _PRIOR_DECAY)        (n: the study's completed trials)

where relevance_p is ``transfer.relevance`` (Kendall's tau less its standard error, clipped
at 0) between the prior's own acquisition, log l_p(x) - log g_p(x), at the study's completed
trials and their losses, or ``_START_RELEVANCE`` while the study has fewer than 5 (only with
n_startup_trials < 5). The start-up points stay Sobol points: drawing them from a prior's
model left the study without its own spread of observations, and when the prior's best basin
was a local one (a prior study that itself got stuck) the study never left it. A prior's
weight fades as the study's own trials accumulate and is 0 while its ranking does not agree
with them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from suggestion_service.algorithms import transfer
from suggestion_service.algorithms.base import Algorithm, PriorTask, SuggestContext, Suggestion, TrialView
from suggestion_service.algorithms.quasi_random import low_discrepancy_points
from suggestion_service.algorithms.tpe.constraints import total_violation
from suggestion_service.algorithms.tpe.multi_objective import select_below
from suggestion_service.algorithms.tpe.parzen import Dim, Mixture, is_constant, ramp_weights
from suggestion_service.domain.trial import TrialState
from tuning_common.errors import InvalidArgument
from tuning_types.space import Parameter, SearchSpace, config_key
from tuning_types.study import Direction

__all__ = ["TPE"]

_BAD_STATES = (TrialState.PRUNED, TrialState.INFEASIBLE)
_PENDING_STATES = (TrialState.ACTIVE, TrialState.QUEUED)
# When a proposal repeats a running configuration (small discrete spaces, where l(x) can put
# nearly all its mass on one point): redraws from the model, then uniform draws, then accept it.
_MODEL_REDRAWS = 4
_UNIFORM_REDRAWS = 32
# Transfer learning (see the module docstring): a prior's relevance before the study can
# measure it, and the number of the study's completed trials at which its weight halves.
_START_RELEVANCE = 0.5
_PRIOR_DECAY = 25.0


@dataclass
class _Group:
    """Parameters active together (same condition): ``dims`` are modelled, ``constants`` filled in."""

    parameters: list[Parameter]
    dims: list[Dim]
    constants: list[Parameter]
    # Columns of ``dims`` in the observation matrix.
    columns: list[int]


@dataclass
class _Rows:
    """What :meth:`TPE._read` read of a history (and keeps for the next call)."""

    history: Sequence[TrialView]
    used_before: np.ndarray  # [len(history) + 1]: how many of the first i trials are rows
    trials: list[TrialView]  # the rows' trials
    x: np.ndarray  # [rows, dims] encoded parameters
    losses: np.ndarray  # [rows, objectives]
    violation: np.ndarray | None  # [rows] total constraint violation (constrained studies)
    running: list[tuple[int, TrialView]]  # the history's running and queued trials, by position


@dataclass
class _Prior:
    """A prior study's usable trials as model rows, and its own l/g model (its relevance)."""

    study: str
    x: np.ndarray  # [n, dims]
    below: np.ndarray  # [n] bool: its own best
    models: list  # per group: (l, g) Mixtures of its rows, or None

    def log_ratio(self, groups: list[_Group], x: np.ndarray) -> np.ndarray:
        """The prior's log l(x) - log g(x) at rows x [m, dims], summed over the groups active in each row."""
        total = np.zeros(len(x))
        for group, parts in zip(groups, self.models):
            if parts is None:
                continue
            xg = x[:, group.columns]
            active = ~np.isnan(xg).any(axis=1)
            if active.any():
                total[active] += parts[0].log_pdf(xg[active]) - parts[1].log_pdf(xg[active])
        return total


class TPE(Algorithm):
    """Tree-structured Parzen Estimator; see the module docstring for the method."""

    name = "tpe"
    uses_history = True
    model_based = True
    uses_priors = True

    @dataclass(frozen=True)
    class Settings:
        # Completed trials to wait for before modelling; until then, scrambled Sobol points.
        n_startup_trials: int = 10
        # Joint kernels per group of co-active parameters; False: one independent model per parameter.
        multivariate: bool = True
        # Points drawn from l(x) per suggestion; more exploits harder, fewer explores.
        n_ei_candidates: int = 24
        # Fraction of observations in the "below" (good) set ...
        gamma: float = 0.1
        # ... capped at this many trials (Optuna's min(ceil(0.1 n), 25)).
        max_below_trials: int = 25
        # Weight of the broad prior kernel in each mixture (observations weigh about 1 each).
        prior_weight: float = 1.0
        # Pending trials (and earlier proposals of a batch) count as bad observations.
        constant_liar: bool = True

    @classmethod
    def check_settings(cls, settings, field):
        s = settings
        checks = [
            ("n_startup_trials", 0 <= s.n_startup_trials <= 100_000, "must be between 0 and 100000"),
            ("n_ei_candidates", 1 <= s.n_ei_candidates <= 10_000, "must be between 1 and 10000"),
            ("gamma", math.isfinite(s.gamma) and 0 < s.gamma <= 1, "must be in (0, 1]"),
            ("max_below_trials", s.max_below_trials >= 1, "must be at least 1"),
            ("prior_weight", math.isfinite(s.prior_weight) and s.prior_weight > 0, "must be positive"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise InvalidArgument(f"{field}.{name}", f"{message}, got {getattr(s, name)!r}")

    def __init__(self, space: SearchSpace, objectives, settings: Settings, seed: int):
        super().__init__(space, objectives, settings, seed)
        self._signs = np.array([-1.0 if o.direction == Direction.MAXIMIZE else 1.0 for o in self.objectives])
        self._dims = [Dim(p) for p in space if not is_constant(p)]
        self._groups = self._make_groups()
        empty = np.empty((0, len(self._dims)))
        self._last_read = _Rows((), np.zeros(1, dtype=int), [], empty, np.empty((0, len(self.objectives))), None, [])
        # The priors of the last call and their rows (a pure function of those very objects).
        self._prior_cache: tuple[tuple[PriorTask, ...], list[_Prior], list[transfer.UsablePrior]] = ((), [], [])

    def _make_groups(self) -> list[_Group]:
        dim_of = {d.parameter.name: d for d in self._dims}
        groups: dict[object, _Group] = {}
        for i, parameter in enumerate(self.space):
            if not self.settings.multivariate:
                key = i
            elif parameter.condition is None:
                key = None
            else:
                c = parameter.condition
                key = (c.parent, frozenset((type(v), v) for v in c.values))
            group = groups.setdefault(key, _Group([], [], [], []))
            group.parameters.append(parameter)
            if parameter.name in dim_of:
                group.dims.append(dim_of[parameter.name])
                group.columns.append(self._dims.index(dim_of[parameter.name]))
            else:
                group.constants.append(parameter)
        # Insertion order = order of each group's first parameter, so parents are sampled first.
        return list(groups.values())

    # -- suggest ---------------------------------------------------------------------------

    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        if count <= 0:
            return []
        priors, usable = self._priors(context.priors) if context.priors else ([], [])
        warm = transfer.warm_configs(usable, set())
        needed = max(self.settings.n_startup_trials, 1) + len(warm)
        completed = 0
        for trial in context.history:
            completed += trial.state == TrialState.COMPLETED and bool(trial.values)
            if completed >= needed:
                with context.stage("sample tpe"):
                    return self._model(context, count, priors, usable)
        return self._startup(context, count, usable, warm)

    def _metadata(self, phase: str, **extra) -> dict:
        return {"algorithm": self.name, "seed": self.seed, "phase": phase, **extra}

    def _startup(self, context: SuggestContext, count: int, usable: list[transfer.UsablePrior] = (),
                 warm: list = ()) -> list[Suggestion]:
        if not usable:
            points = low_discrepancy_points(len(self.space), self.seed, context.sequence, count)
            return [Suggestion(self.space.from_unit(p), metadata=self._metadata("startup")) for p in points]
        points = transfer.startup_points(len(self.space), self.seed, context.sequence, count, len(warm))
        extra = {transfer.PRIORS_KEY: transfer.report(usable, {})}
        taken = {config_key(p) for p in context.pending} | {config_key(t.params) for t in context.history}
        proposals = self._warm(context, usable, warm, taken, count, {})
        return [w or Suggestion(self.space.from_unit(p), metadata=self._metadata("startup", **extra))
                for w, p in zip(proposals, points)]

    # -- priors (transfer learning) ------------------------------------------------------------

    def _priors(self, tasks: tuple[PriorTask, ...]) -> tuple[list[_Prior], list[transfer.UsablePrior]]:
        """The priors with usable trials as model rows, and every prior's usable trials."""
        cached, priors, usable = self._prior_cache
        if len(cached) == len(tasks) and all(map(operator.is_, cached, tasks)):
            return priors, usable
        usable = transfer.usable(self.space, tasks)
        priors = []
        for prior in usable:
            if not prior.params:
                continue
            x = np.empty((len(prior.params), len(self._dims)))
            for j, dim in enumerate(self._dims):
                x[:, j] = dim.column(prior.params)
            n_below = min(math.ceil(self.settings.gamma * len(x)), self.settings.max_below_trials)
            below = select_below(prior.losses[:, None], None, n_below)
            models = []
            for group in self._groups:
                xg = x[:, group.columns]
                active = ~np.isnan(xg).any(axis=1)
                models.append(None if not group.dims else [
                    Mixture(group.dims, xg[active & mask], np.ones(int((active & mask).sum())),
                            self.settings.prior_weight) for mask in (below, ~below)])
            priors.append(_Prior(prior.study, x, below, models))
        self._prior_cache = (tasks, priors, usable)
        return priors, usable

    def _prior_weights(self, priors: list[_Prior], x: np.ndarray, loss: np.ndarray) -> tuple[list[float], dict]:
        """Each prior's kernel weight given the study's completed rows (x, loss), and the facts
        the metadata reports."""
        done = ~np.isnan(loss).any(axis=1)
        n = int(done.sum())
        weights, facts = [], {}
        for prior in priors:
            measured = transfer.relevance(-prior.log_ratio(self._groups, x[done]), loss[done, 0])
            relevance = _START_RELEVANCE if measured is None else measured
            weight = relevance / (1.0 + n / _PRIOR_DECAY)
            weights.append(weight)
            facts[prior.study] = {"weight": weight, "relevance": measured}
        return weights, facts

    def _warm(self, context: SuggestContext, usable: list[transfer.UsablePrior], warm: list, taken: set,
              count: int, facts: dict) -> list[Suggestion | None]:
        """The priors' best configurations ``warm`` for the proposals of this call that are among
        the study's first ``len(warm)`` (None where another proposal is due)."""
        out = []
        for j in range(count):
            index = context.sequence + j
            if index < len(warm) and config_key(warm[index]) not in taken:
                out.append(Suggestion(dict(warm[index]), metadata=self._metadata(
                    "prior_best", **{transfer.PRIORS_KEY: transfer.report(usable, facts)})))
            else:
                out.append(None)
        return out

    def _model(self, context: SuggestContext, count: int, priors: list[_Prior] = (),
               usable: list[transfer.UsablePrior] = ()) -> list[Suggestion]:
        s = self.settings
        # Rows of the model: completed trials, bad ones, pending ones (with the liar); then room
        # for this batch's own proposals, which join as pending as they are made.
        # Comprehensions rather than one loop with branches: this is the part that scales with
        # the history in pure Python (states compare by identity, tuples avoid Enum hashing).
        used = (TrialState.COMPLETED, *_BAD_STATES, *(_PENDING_STATES if s.constant_liar else ()))
        read = self._read(context.history, used, bool(context.constraints))
        trials, x_hist, losses, violation = read.trials, read.x, read.losses, read.violation
        n_obj = losses.shape[1]
        # Configurations running now: a proposal repeating one is redrawn (see _propose).
        taken = {config_key(p) for p in context.pending}
        taken.update(config_key(t.params) for _, t in read.running)
        n_hist = len(trials)
        x = np.full((n_hist + count, len(self._dims)), np.nan)
        x[:n_hist] = x_hist
        loss = np.full((n_hist + count, n_obj), np.nan)
        loss[:n_hist] = losses
        if violation is not None:
            violation = np.append(violation, np.full(count, np.inf))
        n_completed = int(np.sum(~np.isnan(loss).any(axis=1)))
        prior_rows, extra = [], {}
        if usable:
            weights, facts = self._prior_weights(priors, x_hist, losses)
            prior_rows = [(p, w) for p, w in zip(priors, weights) if w > 0]
            extra = {transfer.PRIORS_KEY: transfer.report(usable, facts)}
            # Still due only when trials users created completed before the first proposal.
            warm = self._warm(context, usable, transfer.warm_configs(usable, set()),
                              taken | {config_key(t.params) for t in trials}, count, facts)
        else:
            warm = [None] * count

        suggestions = []
        for i in range(count):
            if warm[i] is not None:
                suggestions.append(warm[i])
                params = warm[i].params
                taken.add(config_key(params))
            else:
                n_rows = n_hist + i if s.constant_liar else n_hist
                rng = np.random.default_rng([self.seed or 0, context.sequence + i])
                rows_violation = None if violation is None else violation[:n_rows]
                params, score = self._propose(x[:n_rows], loss[:n_rows], rows_violation, n_completed, rng, taken,
                                              prior_rows)
                taken.add(config_key(params))
                if score is None:
                    metadata = self._metadata("model", log_l_over_g=None,
                                              fallback="uniform: the model only proposed running configurations", **extra)
                else:
                    metadata = self._metadata("model", log_l_over_g=score, **extra)
                suggestions.append(Suggestion(params, metadata=metadata))
            for j, dim in enumerate(self._dims):
                if dim.parameter.name in params:
                    x[n_hist + i, j] = dim.encode([params[dim.parameter.name]])[0]
        return suggestions

    def _read(self, history: Sequence[TrialView], used: tuple[TrialState, ...], constrained: bool) -> _Rows:
        """The model's rows: the trials of ``history`` in a ``used`` state, encoded.

        Rows of the longest prefix of ``history`` made of the very objects the previous call
        read are reused: in a model process (suggestion_service.model_work) the finished
        trials stay the same objects from one ask of a study to the next, so only the newest
        trials are read (at 10,000 trials, reading them all was a third of a suggestion). Trial
        views are immutable and a row depends on its trial alone, so this never changes an
        answer; the cache is the only thing an instance keeps between calls."""
        known = self._last_read
        same = list(map(operator.is_, known.history, history))
        h = same.index(False) if False in same else len(same)
        k = int(known.used_before[h])  # rows among the first h trials
        new = [t for t in history[h:] if t.state in used]
        rows = [t.params for t in new]
        x_new = np.empty((len(new), len(self._dims)))
        for j, dim in enumerate(self._dims):
            x_new[:, j] = dim.column(rows)
        violation = None
        if constrained:
            fresh = np.array([total_violation(t.constraints) for t in new], dtype=float)
            violation = fresh if known.violation is None else np.concatenate((known.violation[:k], fresh))
        read = _Rows(
            history=history,
            used_before=np.concatenate((known.used_before[:h + 1],
                                        k + np.cumsum([t.state in used for t in history[h:]], dtype=int))),
            trials=known.trials[:k] + new,
            x=np.concatenate((known.x[:k], x_new)),
            losses=np.concatenate((known.losses[:k], self._losses(new))),
            violation=violation,
            running=[(i, t) for i, t in known.running if i < h]
            + [(h + i, t) for i, t in enumerate(history[h:]) if t.state in _PENDING_STATES],
        )
        self._last_read = read
        return read

    def _losses(self, trials) -> np.ndarray:
        """(trials, objectives): y of each completed trial (lower is better), NaN for the others."""
        done, n_obj = TrialState.COMPLETED, len(self._signs)
        if n_obj == 1:  # the common case, twice as fast as the general one
            values = [t.values[0] if t.state is done and t.values else math.nan for t in trials]
        else:
            # A flat list of floats converts several times faster than a list of tuples.
            missing = (math.nan,) * n_obj
            values = [v for t in trials for v in (t.values[:n_obj] if t.state is done and t.values else missing)]
        losses = np.array(values, dtype=float).reshape(len(trials), n_obj) * self._signs
        if n_obj > 1:
            losses[~np.isfinite(losses).all(axis=1)] = np.nan
        return losses

    def _propose(self, x, loss, violation, n_completed, rng, taken, prior_rows=()) -> tuple[dict, float | None]:
        s = self.settings
        n_below = min(math.ceil(s.gamma * len(loss)), s.max_below_trials, n_completed)
        # NaN losses (bad and pending rows) never enter the below set.
        below = select_below(loss, violation, n_below)
        multi_objective = loss.shape[1] > 1

        models = []
        for group in self._groups:
            if not group.dims:
                models.append(None)
                continue
            xg = x[:, group.columns]
            active = ~np.isnan(xg).any(axis=1)
            # Row order is trial order, which the ramp weights rely on.
            parts = []
            for is_below, mask in ((True, active & below), (False, active & ~below)):
                obs = xg[mask]
                weights = np.ones(len(obs)) if is_below and multi_objective else ramp_weights(len(obs))
                for prior, weight in prior_rows:
                    rows = prior.x[prior.below == is_below][:, group.columns]
                    rows = rows[~np.isnan(rows).any(axis=1)]
                    obs = np.concatenate((obs, rows))
                    weights = np.concatenate((weights, np.full(len(rows), weight)))
                parts.append(Mixture(group.dims, obs, weights, s.prior_weight))
            models.append(parts)

        for _ in range(_MODEL_REDRAWS):
            params, score = self._draw(models, rng)
            if config_key(params) not in taken:
                return params, score
        for _ in range(_UNIFORM_REDRAWS):
            uniform = self.space.from_unit(rng.random(len(self.space)))
            if config_key(uniform) not in taken:
                return uniform, None
        return params, score  # (nearly) everything is running: a repeat is the best we can do

    def _draw(self, models, rng) -> tuple[dict, float]:
        assignment: dict = {}
        total = 0.0
        for group, parts in zip(self._groups, models):
            if not self.space.active(group.parameters[0], assignment):
                continue
            for parameter in group.constants:
                assignment[parameter.name] = parameter.domain.from_unit(0.5)
            if parts is None:
                continue
            below, above = parts
            candidates = below.sample(rng, self.settings.n_ei_candidates)
            acq = below.log_pdf(candidates) - above.log_pdf(candidates)
            best = int(np.argmax(acq))
            total += float(acq[best])
            for j, dim in enumerate(group.dims):
                assignment[dim.parameter.name] = dim.decode(candidates[best, j])
        # Space order, like SearchSpace.complete returns it.
        return {p.name: assignment[p.name] for p in self.space if p.name in assignment}, total
