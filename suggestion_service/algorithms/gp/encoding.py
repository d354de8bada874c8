"""Search space <-> features in the unit cube, the GP's input space.

Layout: one column per numeric (float or int) parameter and one column per choice of a
categorical parameter (one-hot); fixed parameters get no column (they never vary).

Numeric encodings are the exact inverses of ``Domain.from_unit``, so decoding a feature
with ``from_unit`` and encoding the result again lands on the same feature, and every
decoded value is on the domain's grid:

* continuous float: ``(v - low) / (high - low)``, taken in log space for log ranges;
* stepped float, linear int: the centre of the value's cell, ``(i + 0.5) / n`` for the
  i-th of n grid values (``from_unit`` maps the whole cell ``[i/n, (i+1)/n)`` to it);
* log int: the position of ``log v`` on ``[log(low - 0.5), log(high + 0.5)]``, the widened
  interval ``IntDomain.from_unit`` samples (rounding then gives each integer its cell);
* a degenerate range (``low == high``) encodes to 0.5.

The continuous polish moves a numeric column only within ``column_bounds``: from the
feature of the lowest value to that of the highest. For a grid parameter those are the
centres of the end cells, not 0 and 1: the half-cells beyond them hold no data, so the
GP's variance grows there and L-BFGS-B would slide into them, and every such point then
decodes to the bound itself (this put up to half of an integer's suggestions on its
bounds). Grid parameters and categoricals also take discrete steps, ``neighbours``.

Inactive conditional parameters (their condition does not hold) are encoded at a fixed
neutral value: ``NEUTRAL`` (0.5, the middle of the range) for a numeric column and all
zeros for a one-hot block. Two trials where a parameter is inactive in both therefore
agree on its columns, and the kernel sees them as "the same" there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tuning_types.space import (
    CategoricalDomain,
    FixedDomain,
    FloatDomain,
    IntDomain,
    Parameter,
    SearchSpace,
    Value,
)

NEUTRAL = 0.5
# Grid parameters with at most this many values have all of them tried as discrete moves.
_ALL_GRID = 16


def _grid_size(domain: FloatDomain | IntDomain) -> int | None:
    """Number of grid values of an integer or stepped float; None for a continuous float."""
    if isinstance(domain, FloatDomain):
        return domain.n_steps if domain.step is not None else None
    return (domain.high - domain.low) // (domain.step or 1) + 1


def _key(params: Mapping[str, Value]) -> tuple:
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


@dataclass(frozen=True)
class _Slot:
    parameter: Parameter
    column: int  # first feature column
    width: int  # 1 for numeric parameters, len(choices) for categoricals
    numeric: bool
    encode: Callable[[Value], float] | None  # numeric: value -> feature
    choice_index: dict[tuple[type, Value], int] | None  # categorical: (type, value) -> offset of its column


def numeric_encoder(domain: FloatDomain | IntDomain) -> Callable[[Value], float]:
    """``value -> feature`` for a float or int parameter, with the domain's constants computed once
    (an encoder runs on thousands of candidates per proposal). Parameter importance
    (``algorithms/importance.py``) measures parameters on the same scale."""
    if domain.high <= domain.low:
        return lambda v: NEUTRAL
    if isinstance(domain, FloatDomain) and domain.step is None:
        low = domain.low
        if domain.log:
            log_low = math.log(low)
            log_width = math.log(domain.high) - log_low
            return lambda v: min(max((math.log(max(float(v), low)) - log_low) / log_width, 0.0), 1.0)
        width = domain.high - low
        return lambda v: min(max((float(v) - low) / width, 0.0), 1.0)
    if isinstance(domain, IntDomain) and domain.log:
        low, lo = domain.low, math.log(domain.low - 0.5)
        log_width = math.log(domain.high + 0.5) - lo
        return lambda v: min(max((math.log(max(float(v), low)) - lo) / log_width, 0.0), 1.0)
    # A grid (stepped float, linear int): the centre of the value's cell.
    low, step, n = domain.low, domain.step or 1, _grid_size(domain)
    return lambda v: (min(max(round((float(v) - low) / step), 0), n - 1) + 0.5) / n


class Encoder:
    """Maps assignments of ``space`` to feature vectors of length ``dim`` and back."""

    def __init__(self, space: SearchSpace):
        self.space = space
        slots: list[_Slot] = []
        column = 0
        for parameter in space:
            domain = parameter.domain
            if isinstance(domain, FixedDomain):
                continue
            if isinstance(domain, CategoricalDomain):
                # Keyed by type too, as in domain.space.same_value: True is not the choice 1.
                index = {(type(choice), choice): k for k, choice in reversed(list(enumerate(domain.choices)))}
                slots.append(_Slot(parameter, column, len(domain.choices), False, None, index))
            else:
                slots.append(_Slot(parameter, column, 1, True, numeric_encoder(domain), None))
            column += slots[-1].width
        self.slots = tuple(slots)
        self.dim = column
        self._slot_by_name = {slot.parameter.name: slot for slot in slots}
        self._slot_by_column = {slot.column: slot for slot in slots}
        # Parameters other parameters' conditions depend on: moving them changes which
        # parameters are active, so the continuous polish leaves them alone.
        self._parents = {p.condition.parent for p in space if p.condition is not None}

    def encode(self, params: Mapping[str, Value]) -> np.ndarray:
        """Feature vector, shape (dim,). Missing (inactive) parameters get the neutral value."""
        x = np.zeros(self.dim)
        for slot in self.slots:
            name = slot.parameter.name
            if slot.numeric:
                x[slot.column] = slot.encode(params[name]) if name in params else NEUTRAL
            elif name in params:
                value = params[name]
                k = slot.choice_index.get((type(value), value))
                if k is None:
                    raise ValueError(f"{value!r} is not a choice of {name!r}")
                x[slot.column + k] = 1.0
        return x

    def encode_many(self, assignments: Sequence[Mapping[str, Value]]) -> np.ndarray:
        """Feature matrix, shape (len(assignments), dim)."""
        out = np.empty((len(assignments), self.dim))
        for i, params in enumerate(assignments):
            out[i] = self.encode(params)
        return out

    def decode(self, x: np.ndarray) -> dict[str, Value]:
        """The assignment a feature vector stands for: numeric columns through ``from_unit``
        (rounded onto steps and integers), one-hot blocks by their largest entry; inactive
        conditional parameters are left out."""
        assignment: dict[str, Value] = {}
        for parameter in self.space:
            if not self.space.active(parameter, assignment):
                continue
            domain = parameter.domain
            if isinstance(domain, FixedDomain):
                assignment[parameter.name] = domain.value
                continue
            slot = self._slot_by_name[parameter.name]
            if slot.numeric:
                assignment[parameter.name] = domain.from_unit(float(np.clip(x[slot.column], 0.0, 1.0)))
            else:
                block = x[slot.column: slot.column + slot.width]
                assignment[parameter.name] = domain.choices[int(np.argmax(block))]
        return assignment

    def free_columns(self, params: Mapping[str, Value]) -> list[int]:
        """Columns the continuous polish may move for this assignment: numeric parameters that
        are active, span a range and are nobody's condition parent."""
        return [
            slot.column for slot in self.slots
            if slot.numeric
            and slot.parameter.name in params
            and slot.parameter.name not in self._parents
            and slot.parameter.domain.high > slot.parameter.domain.low
        ]

    def column_bounds(self, columns: Sequence[int]) -> list[tuple[float, float]]:
        """Feature range of each numeric column: the encodings of its lowest and highest value."""
        out = []
        for column in columns:
            slot = self._slot_by_column[column]
            out.append((slot.encode(slot.parameter.domain.low), slot.encode(slot.parameter.domain.high)))
        return out

    def neighbours(self, params: Mapping[str, Value]) -> list[dict[str, Value]]:
        """Assignments one discrete move away from ``params``: another choice of one active
        categorical, or another grid value of one active integer or stepped float (every value
        when there are at most ``_ALL_GRID`` of them, else 1, 2, 4, ... cells up and down in
        feature space, so log-scaled grids step in log space). Switching a condition parent
        activates its other branch at neutral values, which the polish then moves."""
        x0 = self.encode(params)
        seen = {_key(params)}
        out: list[dict[str, Value]] = []

        def add(x: np.ndarray, name: str) -> None:
            # Decoding the whole vector settles which parameters are active; the others keep
            # their exact values (a decode round trip may move a float in its last bit).
            candidate = {k: (params[k] if k != name and k in params else v) for k, v in self.decode(x).items()}
            key = _key(candidate)
            if key not in seen:
                seen.add(key)
                out.append(candidate)

        for slot in self.slots:
            name, domain = slot.parameter.name, slot.parameter.domain
            if name not in params:
                continue
            if not slot.numeric:
                for k in range(slot.width):
                    if x0[slot.column + k] != 1.0:
                        x = x0.copy()
                        x[slot.column: slot.column + slot.width] = 0.0
                        x[slot.column + k] = 1.0
                        add(x, name)
                continue
            n = _grid_size(domain)
            if n is None or n < 2:
                continue
            if n <= _ALL_GRID:
                targets = [slot.encode(v) for v in domain.grid()]
            else:
                steps = 2.0 ** np.arange(math.ceil(math.log2(n)) + 1) / n
                targets = [min(max(x0[slot.column] + s, 0.0), 1.0) for s in (*steps, *-steps)]
            for target in targets:
                x = x0.copy()
                x[slot.column] = target
                add(x, name)
        return out

    def with_columns(self, params: Mapping[str, Value], x: np.ndarray, columns: Sequence[int]) -> dict[str, Value]:
        """``params`` with the parameters behind ``columns`` replaced by the decoded features."""
        out = dict(params)
        for column in columns:
            parameter = self._slot_by_column[column].parameter
            out[parameter.name] = parameter.domain.from_unit(float(np.clip(x[column], 0.0, 1.0)))
        return out
