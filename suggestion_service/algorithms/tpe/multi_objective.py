"""The good/bad split of TPE's history, for one objective or several (MOTPE), with constraints.

One objective: the ``n_below`` completed trials with the lowest loss.

Several objectives (MOTPE, as Optuna's TPESampler splits them): completed trials are sorted into
non-domination fronts (front 0: no trial dominates them; front k: only trials of fronts < k do),
whole fronts fill the good group in order, and the first front that does not fit whole is
tie-broken by greedy hypervolume subset selection: repeatedly take the trial that adds the most
hypervolume to those already taken from that front, against that front's reference point
``max(1.1 * worst, 0.9 * worst)`` per objective (0 replaced by a tiny positive number). Greedy
selection is within 1 - 1/e of the best subset (hypervolume is submodular). Two objectives
evaluate every candidate's gain at once per round; more use lazy evaluation (gains only
shrink, so a fresh gain that still tops the stale ones is the greedy pick).

Constraints (Optuna's constrained TPE, in both cases): the feasible trials are split as above;
when they cannot fill the good group, the infeasible ones complete it by increasing total
violation, so nothing infeasible is "good" while enough feasible trials exist.
"""

from __future__ import annotations

import heapq

import numpy as np

from suggestion_service.domain.hypervolume import hypervolume, pareto_mask

_EPS = 1e-12


def select_below(losses: np.ndarray, violation: np.ndarray | None, n_below: int) -> np.ndarray:
    """The good group as a boolean mask over rows of ``losses`` (n, n_objectives).

    Rows with any NaN (pending, bad or non-finite trials) are never good. ``violation`` is the
    total constraint violation per row (0: feasible), None for an unconstrained study.
    """
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    below = np.zeros(n, dtype=bool)
    ranked = ~np.isnan(losses).any(axis=1)
    feasible = ranked if violation is None else ranked & (violation <= 0.0)
    candidates = np.flatnonzero(feasible)
    if n_below <= 0:
        return below
    if len(candidates) <= n_below:
        below[candidates] = True
        infeasible = np.flatnonzero(ranked & ~feasible)
        rest = infeasible[np.argsort(violation[infeasible], kind="stable")] if len(infeasible) else infeasible
        below[rest[: n_below - len(candidates)]] = True
        return below
    below[candidates[_best_subset(losses[candidates], n_below)]] = True
    return below


def _best_subset(losses: np.ndarray, n_below: int) -> np.ndarray:
    """Indices into ``losses`` (all finite, more rows than ``n_below``) of the good group."""
    if losses.shape[1] == 1:
        # The stable sort of just the values up to the n_below-th smallest: the same pick (ties
        # to the earlier trial), without sorting the whole history.
        loss = losses[:, 0]
        kth = np.partition(loss, n_below - 1)[n_below - 1]
        best = np.flatnonzero(loss <= kth)
        return best[np.argsort(loss[best], kind="stable")[:n_below]]
    remaining = np.arange(len(losses))
    chosen: list[int] = []
    while len(chosen) + len(remaining) > n_below:
        front = pareto_mask(losses[remaining])
        if len(chosen) + int(front.sum()) > n_below:
            tied = remaining[front]
            picks = _hypervolume_subset(losses[tied], n_below - len(chosen))
            return np.array(chosen + tied[picks].tolist(), dtype=int)
        chosen.extend(remaining[front].tolist())
        remaining = remaining[~front]
    return np.array(chosen + remaining.tolist(), dtype=int)


def reference_point(losses: np.ndarray) -> np.ndarray:
    """Optuna's reference for a front: 10% beyond its worst value per objective, on either side of 0."""
    worst = np.max(losses, axis=0)
    reference = np.maximum(1.1 * worst, 0.9 * worst)
    reference[reference == 0.0] = _EPS
    return reference


def _hypervolume_subset(losses: np.ndarray, size: int) -> list[int]:
    """Greedy hypervolume subset selection of ``size`` rows of one front (lazy greedy)."""
    unique, first = np.unique(losses, axis=0, return_index=True)
    if len(unique) <= size:
        # Every distinct point, then duplicates in row order to fill up.
        taken = set(first.tolist())
        extra = [i for i in range(len(losses)) if i not in taken][: size - len(taken)]
        return sorted(taken) + extra
    order = np.sort(first)  # row order, so ties go to the earlier trial
    points = losses[order]
    reference = reference_point(points)
    boxes = np.prod(reference - points, axis=1)
    if points.shape[1] == 2:
        return order[_greedy_2d(points, boxes, reference, size)].tolist()
    # Max-heap of upper bounds on each point's contribution; contributions only shrink as the
    # selection grows, so a point whose fresh contribution still tops the heap is the greedy pick.
    heap = [(-float(b), i, -1) for i, b in enumerate(boxes)]
    heapq.heapify(heap)
    selected: list[int] = []
    while len(selected) < size:
        bound, i, stamp = heapq.heappop(heap)
        if stamp == len(selected):
            selected.append(i)
            continue
        gain = boxes[i] - _covered(points[i], points[selected], reference) if selected else boxes[i]
        heapq.heappush(heap, (-float(gain), i, len(selected)))
    return order[selected].tolist()


def _greedy_2d(points: np.ndarray, boxes: np.ndarray, reference: np.ndarray, size: int) -> list[int]:
    """Plain greedy for two objectives, every candidate's contribution at once per round."""
    selected: list[int] = []
    gains = boxes.copy()
    for _ in range(size):
        if selected:
            # Covered part of each candidate's box: the 2-D hypervolume of the selected points
            # clipped to the box, as one sweep per row (rows sorted by the first objective).
            clipped = np.maximum(points[selected][None, :, :], points[:, None, :])
            by_x = np.argsort(clipped[:, :, 0], axis=1, kind="stable")
            x = np.take_along_axis(clipped[:, :, 0], by_x, axis=1)
            y = np.minimum.accumulate(np.take_along_axis(clipped[:, :, 1], by_x, axis=1), axis=1)
            x_next = np.concatenate([x[:, 1:], np.full((len(x), 1), reference[0])], axis=1)
            gains = boxes - np.sum((x_next - x) * (reference[1] - y), axis=1)
        gains[selected] = -np.inf
        selected.append(int(np.argmax(gains)))
    return selected


def _covered(point: np.ndarray, selected: np.ndarray, reference: np.ndarray) -> float:
    """Volume of the box [point, reference] already dominated by ``selected``."""
    return hypervolume(np.maximum(selected, point), reference)


__all__ = ["reference_point", "select_below"]
