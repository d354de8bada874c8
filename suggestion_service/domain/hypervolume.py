"""Exact hypervolume of a set of loss vectors (lower is better in every objective).

The hypervolume of points P with respect to a reference point r is the volume of the region
dominated by P and bounded by r: the union of the boxes [p, r] over p in P. Points that are not
strictly better than r in every objective add nothing and are dropped.

Algorithms (exact, no sampling):

* 2 objectives: a sweep over the front sorted by the first objective, O(n log n);
* 3 or more: slicing along the last objective (Hypervolume by Slicing Objectives, While et al.
  2006): between consecutive values of the last objective the dominated region is the
  (d-1)-dimensional hypervolume of the points already passed; O(n^2 log n) for 3 objectives,
  fine for the fronts of a tuning study (hundreds of points).
"""

from __future__ import annotations

import numpy as np


def pareto_mask(losses: np.ndarray) -> np.ndarray:
    """Rows that no other row dominates (duplicates of a non-dominated row are all kept).

    In lexicographic order a row can only be dominated by an earlier one, so one pass that
    compares each row with the front kept so far suffices: O(n * front size) time and memory
    linear in n (an all-pairs comparison would need n^2 memory, 200 MB at 10,000 trials);
    O(n log n) for two objectives.
    """
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    if losses.shape[1] == 2:
        # Distinct rows sorted by (x, y): a row is dominated exactly when an earlier one has y <= its y.
        unique, inverse = np.unique(losses, axis=0, return_inverse=True)
        earlier = np.minimum.accumulate(np.concatenate([[np.inf], unique[:-1, 1]]))
        return (unique[:, 1] < earlier)[inverse.reshape(-1)]
    order = np.lexsort(losses.T[::-1])
    front = np.empty_like(losses)
    size = 0
    for i in order:
        point = losses[i]
        kept = front[:size]
        if not np.any(np.all(kept <= point, axis=1) & np.any(kept < point, axis=1)):
            front[size] = point
            size += 1
            mask[i] = True
    return mask


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume of ``losses`` (n, d) bounded by ``reference`` (d,); 0.0 for no points."""
    reference = np.asarray(reference, dtype=float)
    losses = np.asarray(losses, dtype=float).reshape(-1, len(reference))
    if not np.all(np.isfinite(reference)):
        raise ValueError(f"the reference point must be finite, got {reference.tolist()}")
    losses = losses[np.all(np.isfinite(losses), axis=1) & np.all(losses < reference, axis=1)]
    if len(losses) == 0:
        return 0.0
    losses = np.unique(losses[pareto_mask(losses)], axis=0)
    return float(_hv(losses, reference))


def _hv(points: np.ndarray, reference: np.ndarray) -> float:
    d = points.shape[1]
    if d == 1:
        return float(reference[0] - points[:, 0].min())
    if d == 2:
        return _hv2(points, reference)
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    total = 0.0
    for i in range(len(points)):
        upper = points[i + 1, -1] if i + 1 < len(points) else reference[-1]
        height = upper - points[i, -1]
        if height > 0:
            total += height * _hv(_nondominated(points[: i + 1, :-1]), reference[:-1])
    return total


def _hv2(points: np.ndarray, reference: np.ndarray) -> float:
    # Sorted by x (then y), the running minimum of y gives the staircase of the front.
    order = np.lexsort((points[:, 1], points[:, 0]))
    x, y = points[order, 0], points[order, 1]
    best_y = np.minimum.accumulate(y)
    x_next = np.append(x[1:], reference[0])
    return float(np.sum((x_next - x) * (reference[1] - best_y)))


def _nondominated(points: np.ndarray) -> np.ndarray:
    return points[pareto_mask(points)] if len(points) > 1 else points


__all__ = ["hypervolume", "pareto_mask"]
