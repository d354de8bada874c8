"""Search-space builders for Python users: ``Float``, ``Int``, ``Categorical``, ``Fixed``.

    space = [
        Float("learning_rate", 1e-3, 0.3, log=True),
        Int("max_depth", 2, 10),
        Categorical("booster", ["gbtree", "dart"]),
        Float("rate_drop", 0.0, 0.5, when={"booster": ["dart"]}),
        Fixed("random_state", 42),
    ]

``when`` makes a parameter conditional on one earlier parameter taking given values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tuning_types.space import (
    CategoricalDomain,
    Condition,
    FixedDomain,
    FloatDomain,
    IntDomain,
    Parameter,
    Value,
)


def _condition(when: Mapping[str, Sequence[Value]] | None) -> Condition | None:
    if not when:
        return None
    if len(when) != 1:
        raise ValueError("`when` takes exactly one parent parameter, e.g. when={'booster': ['dart']}")
    [(parent, values)] = when.items()
    if isinstance(values, (str, int, float, bool)):
        values = [values]
    return Condition(parent, tuple(values))


def Float(name: str, low: float, high: float, *, log: bool = False, step: float | None = None,
          when: Mapping[str, Sequence[Value]] | None = None) -> Parameter:
    return Parameter(name, FloatDomain(float(low), float(high), log, None if step is None else float(step)),
                     _condition(when))


def Int(name: str, low: int, high: int, *, log: bool = False, step: int | None = None,
        when: Mapping[str, Sequence[Value]] | None = None) -> Parameter:
    return Parameter(name, IntDomain(int(low), int(high), log, step), _condition(when))


def Categorical(name: str, choices: Sequence[Value], *, when: Mapping[str, Sequence[Value]] | None = None) -> Parameter:
    return Parameter(name, CategoricalDomain(tuple(choices)), _condition(when))


def Fixed(name: str, value: Value, *, when: Mapping[str, Sequence[Value]] | None = None) -> Parameter:
    return Parameter(name, FixedDomain(value), _condition(when))
