"""Parameter importance: how much of an objective's variation each parameter explains.

fANOVA (Hutter, Hoos and Leyton-Brown, "An efficient approach for assessing hyperparameter
importance", ICML 2014), as Optuna's default ``FanovaImportanceEvaluator`` computes it, on a
random forest written here in numpy:

1. Each parameter is one feature. A float or int parameter is placed on the unit interval
   exactly as the GP encodes it (``gp.encoding.numeric_encoder``: log ranges in log space, a
   grid value at the centre of its cell), so the uniform measure on [0, 1] is the distribution
   random search samples from. A categorical parameter (bools included) is a set of
   categories, each weighing 1/k.
2. **Conditional parameters.** A parameter a trial does not have (its condition did not hold)
   is not a value of 0: "inactive" is a category of its own. For a number it is a point below
   the range (-1), for a categorical one more category. The inactive state weighs the share of
   the trials used in which the parameter was inactive; the active values share the rest as
   above. A tree can thus split "inactive" off from the active values, and the variance the
   parameter explains includes the difference between having it and not.
3. A forest of ``N_TREES`` regression trees, each grown on a bootstrap sample of the trials
   (seeded: the same study gives the same answer) down to one trial per leaf (Optuna's forest
   has 64 such trees; 32 keep a study of 1000 trials to a few seconds). Every split considers
   every feature; a number splits at a threshold halfway between two observed values, a
   categorical feature by the best subset (categories ordered by their mean objective in the
   node, Breiman's rule, which finds the best of all subsets for squared error). Equal gains
   go to the parameter declared first (a condition's parent before its children).
4. Each tree is a piecewise-constant function on boxes of the (product) domain. Its total
   variance under the measure above, and for each feature the variance of its marginal (the
   tree averaged over every other feature), are exact sums over the leaves. A parameter's
   importance in the tree is its marginal's share of the total variance (its main effect);
   the importances are averaged over the trees and normalised to sum to 1. Interactions are
   left out, as in Optuna.

A parameter that never varies across the trials is never split on and gets 0. When the
objective has one value in every trial (or no parameter varies) nothing is explained and
every importance is 0. The measure is a product over parameters, so like fANOVA it also
averages over combinations the space never produces (a child active although its parent's
value disables it, or inactive although it enables it); the tree predicts there what it learnt
from the nearest trials, so a child's effect is often shared with its parent, which decides
whether the child exists at all.

Pure: numpy only, no I/O. The service chooses the trials and the objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from suggestion_service.algorithms.gp.encoding import numeric_encoder
from tuning_types.space import CategoricalDomain, Parameter, SearchSpace, Value, same_value

# Fewer completed trials than this say nothing (the service refuses with FAILED_PRECONDITION).
MIN_TRIALS = 5
# At most this many trials are used: a seeded sample of them beyond (the cost grows about as
# n log n per tree).
MAX_TRIALS = 1000
N_TREES = 32
MAX_DEPTH = 64
MIN_LEAF = 1
INACTIVE = -1.0  # where an inactive number sits, below the active values' [0, 1]


@dataclass(frozen=True)
class Importance:
    """Importances by parameter, largest first (ties by name), and how many trials were used."""

    importances: dict[str, float]
    trials: int


@dataclass
class _Feature:
    parameter: Parameter
    categorical: bool
    # Categorical: the weight of each code (the choices, then "inactive"); numeric: unused.
    weights: np.ndarray
    inactive_share: float


def _category(domain: CategoricalDomain, value: Value) -> int | None:
    for index, choice in enumerate(domain.choices):
        if same_value(value, choice):
            return index
    return None


def _encode(space: SearchSpace, params: Sequence[Mapping[str, Value]]) -> tuple[np.ndarray, list[_Feature]]:
    """The design matrix (trials x non-fixed parameters) and each column's feature."""
    n = len(params)
    columns: list[np.ndarray] = []
    features: list[_Feature] = []
    for parameter in space:
        domain = parameter.domain
        if parameter.is_fixed:
            continue
        column = np.empty(n)
        if isinstance(domain, CategoricalDomain):
            k = len(domain.choices)
            for i, row in enumerate(params):
                code = _category(domain, row[parameter.name]) if parameter.name in row else None
                column[i] = k if code is None else code
            share = float(np.mean(column == k)) if n else 0.0
            weights = np.append(np.full(k, (1.0 - share) / k), share)
            features.append(_Feature(parameter, True, weights, share))
        else:
            encode = numeric_encoder(domain)
            for i, row in enumerate(params):
                value = row.get(parameter.name)
                column[i] = INACTIVE if value is None or isinstance(value, (str, bool)) else encode(value)
            share = float(np.mean(column == INACTIVE)) if n else 0.0
            features.append(_Feature(parameter, False, np.empty(0), share))
        columns.append(column)
    matrix = np.stack(columns, axis=1) if columns else np.empty((n, 0))
    return matrix, features


# --- one regression tree --------------------------------------------------------------------------


@dataclass
class _Leaf:
    value: float
    low: np.ndarray  # numeric features: the box is (low, high] along each
    high: np.ndarray
    sets: dict[int, np.ndarray]  # categorical features: the codes in the box (bool mask)


def _best_split(x: np.ndarray, y: np.ndarray, categorical: np.ndarray, codes: dict[int, int]
                ) -> tuple[int, np.ndarray, float] | None:
    """(feature, sort keys of the node's trials on it, key threshold) of the split that
    reduces the squared error most, or None when no split separates two distinct values."""
    m = len(y)
    keys = x.copy()
    for j in np.flatnonzero(categorical):
        # Breiman: order the categories by mean objective; the best subset split is a prefix.
        c = x[:, j].astype(np.int64)
        count = np.bincount(c, minlength=codes[j])
        mean = np.bincount(c, weights=y, minlength=codes[j]) / np.maximum(count, 1)
        mean[count == 0] = np.inf
        rank = np.empty(codes[j])
        rank[np.lexsort((np.arange(codes[j]), mean))] = np.arange(codes[j])
        keys[:, j] = rank[c]
    order = np.argsort(keys, axis=0, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=0)
    sums = np.cumsum(y[order], axis=0)[:-1]
    left = np.arange(1, m, dtype=float)[:, None]
    total = float(np.sum(y))
    right_sums = total - sums
    score = sums ** 2 / left + right_sums ** 2 / (m - left)
    valid = sorted_keys[:-1] < sorted_keys[1:]
    if MIN_LEAF > 1:
        valid[: MIN_LEAF - 1] = False
        valid[m - MIN_LEAF:] = False
    if not valid.any():
        return None
    score = np.where(valid, score, -np.inf)
    best = score.max(axis=0)
    top = float(best.max())
    if top <= total ** 2 / m + 1e-12 * max(1.0, total ** 2 / m):
        return None
    # Equal gains (a parent and a child whose "inactive" mirrors it) go to the feature declared
    # first, the parent: a condition's parent always comes before its children.
    feature = int(np.flatnonzero(best >= top - 1e-12 * max(1.0, abs(top)))[0])
    position = int(np.argmax(score[:, feature]))
    threshold = 0.5 * (sorted_keys[position, feature] + sorted_keys[position + 1, feature])
    return int(feature), keys[:, feature], float(threshold)


def _grow(x: np.ndarray, y: np.ndarray, features: list[_Feature]) -> list[_Leaf]:
    d = x.shape[1]
    categorical = np.array([f.categorical for f in features], dtype=bool)
    codes = {j: len(features[j].weights) for j in range(d) if categorical[j]}
    leaves: list[_Leaf] = []
    root = _Leaf(0.0, np.full(d, -np.inf), np.full(d, np.inf), {j: np.ones(k, dtype=bool) for j, k in codes.items()})
    stack = [(np.arange(len(y)), root, 0)]
    while stack:
        index, box, depth = stack.pop()
        node_y = y[index]
        split = None
        if depth < MAX_DEPTH and len(index) >= 2 * MIN_LEAF and np.ptp(node_y) > 0:
            split = _best_split(x[index], node_y, categorical, codes)
        if split is None:
            box.value = float(np.mean(node_y))
            leaves.append(box)
            continue
        j, keys, threshold = split
        goes_left = keys <= threshold
        left = _Leaf(0.0, box.low.copy(), box.high.copy(), {k: v.copy() for k, v in box.sets.items()})
        right = _Leaf(0.0, box.low.copy(), box.high.copy(), {k: v.copy() for k, v in box.sets.items()})
        if categorical[j]:
            c = x[index, j].astype(np.int64)
            seen = np.zeros(codes[j], dtype=bool)
            seen[c] = True
            left_codes = np.zeros(codes[j], dtype=bool)
            left_codes[c[goes_left]] = True
            # Categories of the box no trial of this node has go with the side that has more trials.
            unseen = box.sets[j] & ~seen
            if goes_left.sum() * 2 > len(c):
                left_codes |= unseen
            left.sets[j] = left_codes
            right.sets[j] = box.sets[j] & ~left_codes
        else:
            left.high[j] = right.low[j] = threshold
        stack.append((index[~goes_left], right, depth + 1))
        stack.append((index[goes_left], left, depth + 1))
    return leaves


# --- fANOVA on one tree ----------------------------------------------------------------------------


def _numeric_measure(low: np.ndarray, high: np.ndarray, inactive_share: float) -> np.ndarray:
    """Measure of the boxes (low, high] along a numeric feature."""
    active = np.clip(np.minimum(high, 1.0) - np.maximum(low, 0.0), 0.0, None)
    inactive = (low < INACTIVE) & (INACTIVE <= high)
    return (1.0 - inactive_share) * active + inactive_share * inactive


def _tree_shares(leaves: list[_Leaf], features: list[_Feature]) -> np.ndarray | None:
    """Each feature's main-effect share of the tree's variance; None for a constant tree."""
    d = len(features)
    values = np.array([leaf.value for leaf in leaves])
    low = np.array([leaf.low for leaf in leaves]).reshape(len(leaves), d)
    high = np.array([leaf.high for leaf in leaves]).reshape(len(leaves), d)
    sizes = np.empty((len(leaves), d))
    for j, feature in enumerate(features):
        if feature.categorical:
            sizes[:, j] = np.array([leaf.sets[j] for leaf in leaves], dtype=float) @ feature.weights
        else:
            sizes[:, j] = _numeric_measure(low[:, j], high[:, j], feature.inactive_share)
    weight = np.prod(sizes, axis=1)
    mean = float(weight @ values)
    variance = float(weight @ (values - mean) ** 2)
    if not variance > 1e-12 * max(1.0, mean * mean):
        return None
    shares = np.zeros(d)
    for j, feature in enumerate(features):
        # The tree averaged over every other feature: leaf l adds value * (its box's measure
        # along the others) wherever its box covers a point of feature j.
        with np.errstate(divide="ignore", invalid="ignore"):
            others = np.where(sizes[:, j] > 0, weight / sizes[:, j], 0.0)
        if feature.categorical:
            atoms = np.flatnonzero(feature.weights > 0)
            inside = np.array([leaf.sets[j][atoms] for leaf in leaves], dtype=float)
            measure = feature.weights[atoms]
        else:
            cuts = np.unique(np.concatenate([low[:, j], high[:, j], [0.0, 1.0]]))
            cuts = cuts[(cuts >= 0.0) & (cuts <= 1.0)]
            points = 0.5 * (cuts[:-1] + cuts[1:])
            measure = (1.0 - feature.inactive_share) * np.diff(cuts)
            if feature.inactive_share > 0:
                points = np.append(points, INACTIVE)
                measure = np.append(measure, feature.inactive_share)
            inside = ((low[:, j][:, None] < points[None, :]) & (points[None, :] <= high[:, j][:, None])).astype(float)
        marginal = (values * others) @ inside
        shares[j] = float(measure @ (marginal - mean) ** 2) / variance
    return shares


def parameter_importance(space: SearchSpace, params: Sequence[Mapping[str, Value]], values: Sequence[float], *,
                         seed: int = 0, n_trees: int = N_TREES, max_trials: int = MAX_TRIALS) -> Importance:
    """Importance of each non-fixed parameter of ``space`` for ``values``.

    ``params[i]`` are trial i's parameters (an absent one was inactive) and ``values[i]`` its
    objective value (finite). Beyond ``max_trials`` trials, a sample of them seeded by ``seed``
    is used. Returns every non-fixed parameter, largest importance first.
    """
    if len(params) != len(values):
        raise ValueError(f"{len(params)} parameter rows for {len(values)} values")
    rng = np.random.default_rng([seed % 2**63, 0x1A9])
    index = np.arange(len(values))
    if len(index) > max_trials:
        index = np.sort(rng.choice(len(index), size=max_trials, replace=False))
    y = np.asarray(values, dtype=float)[index]
    x, features = _encode(space, [params[i] for i in index])
    scores = np.zeros(len(features))
    if len(y) >= 2 and np.ptp(y) > 0 and features:
        used = 0
        total = np.zeros(len(features))
        for _ in range(n_trees):
            sample = rng.integers(0, len(y), size=len(y))
            shares = _tree_shares(_grow(x[sample], y[sample], features), features)
            if shares is not None:
                total += shares
                used += 1
        if used and total.sum() > 0:
            scores = total / total.sum()
    ranked = sorted(((float(s), f.parameter.name) for s, f in zip(scores, features)), key=lambda t: (-t[0], t[1]))
    return Importance({name: (0.0 if math.isclose(s, 0.0, abs_tol=1e-15) else s) for s, name in ranked}, len(y))
