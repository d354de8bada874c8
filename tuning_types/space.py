"""The search space: typed parameter domains, conditions, and what a valid assignment is.

A parameter value is a Python ``float``, ``int``, ``str`` or ``bool``. Values keep their
type end to end (``True`` is never ``1``), so :func:`same_value` compares type and value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Union

from tuning_common.errors import InvalidArgument

Value = Union[float, int, str, bool]
Assignment = Mapping[str, Value]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
# Values closer than this (relative to the step) count as on a stepped grid.
_STEP_TOLERANCE = 1e-9


def check_name(field: str, name: str, what: str) -> None:
    if not name:
        raise InvalidArgument(field, f"{what} is required")
    if not NAME_PATTERN.match(name):
        raise InvalidArgument(
            field, f"{what} {name!r} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        )


def same_value(a: Value, b: Value) -> bool:
    return type(a) is type(b) and a == b


def config_key(params: Mapping[str, Value]) -> tuple:
    """A hashable identity for an assignment (types kept apart: True is not 1)."""
    return tuple(sorted((name, type(value).__name__, value) for name, value in params.items()))


def value_kind(value: Value) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string"}[type(value)]


def _validate_range(domain: FloatDomain | IntDomain, field: str) -> None:
    """What float and int ranges share: ordered ends, a positive log range, a positive step."""
    if domain.low > domain.high:
        raise InvalidArgument(f"{field}.low", f"low ({domain.low}) must not exceed high ({domain.high})")
    if domain.log and domain.low <= 0:
        raise InvalidArgument(f"{field}.low", f"a log-scale range must be positive, got low={domain.low}")
    if domain.step is not None:
        if domain.log:
            raise InvalidArgument(f"{field}.step", "a log-scale range cannot have a step")
        if not (math.isfinite(domain.step) and domain.step > 0):
            raise InvalidArgument(f"{field}.step", f"step must be positive, got {domain.step}")


@dataclass(frozen=True)
class FloatDomain:
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def validate(self, field: str) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise InvalidArgument(f"{field}.low", "low and high must be finite")
        _validate_range(self, field)

    @property
    def n_steps(self) -> int | None:
        if self.step is None:
            return None
        return int(math.floor((self.high - self.low) / self.step + _STEP_TOLERANCE)) + 1

    def from_unit(self, u: float) -> float:
        if self.step is not None:
            index = min(int(u * self.n_steps), self.n_steps - 1)
            return min(self.low + index * self.step, self.high)
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return min(max(value, self.low), self.high)

    def contains(self, value: Value) -> bool:
        if type(value) is not float or not (self.low <= value <= self.high):
            return False
        if self.step is None:
            return True
        k = (value - self.low) / self.step
        return abs(k - round(k)) <= 1e-6

    def grid(self) -> list[Value] | None:
        if self.step is None:
            return None
        return [min(self.low + i * self.step, self.high) for i in range(self.n_steps)]


@dataclass(frozen=True)
class IntDomain:
    low: int
    high: int
    log: bool = False
    step: int | None = None

    def validate(self, field: str) -> None:
        _validate_range(self, field)

    @property
    def _step(self) -> int:
        return self.step or 1

    def from_unit(self, u: float) -> int:
        if self.log:
            # Sample the widened interval in log space so both ends get their share.
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            value = int(round(math.exp(lo + u * (hi - lo))))
            return min(max(value, self.low), self.high)
        n = (self.high - self.low) // self._step + 1
        return self.low + min(int(u * n), n - 1) * self._step

    def contains(self, value: Value) -> bool:
        return (
            type(value) is int
            and self.low <= value <= self.high
            and (self.log or (value - self.low) % self._step == 0)
        )

    def grid(self) -> list[Value]:
        return list(range(self.low, self.high + 1, self._step))


@dataclass(frozen=True)
class CategoricalDomain:
    choices: tuple[Value, ...]

    def validate(self, field: str) -> None:
        if not self.choices:
            raise InvalidArgument(f"{field}.choices", "at least one choice is required")
        for i, choice in enumerate(self.choices):
            if type(choice) is float and not math.isfinite(choice):
                raise InvalidArgument(f"{field}.choices[{i}]", "choices must be finite")
            if any(same_value(choice, other) for other in self.choices[:i]):
                raise InvalidArgument(f"{field}.choices[{i}]", f"duplicate choice {choice!r}")

    def from_unit(self, u: float) -> Value:
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def contains(self, value: Value) -> bool:
        return any(same_value(value, choice) for choice in self.choices)

    def grid(self) -> list[Value]:
        return list(self.choices)


@dataclass(frozen=True)
class FixedDomain:
    value: Value

    def validate(self, field: str) -> None:
        if type(self.value) is float and not math.isfinite(self.value):
            raise InvalidArgument(f"{field}.value", "a fixed value must be finite")

    def from_unit(self, u: float) -> Value:
        return self.value

    def contains(self, value: Value) -> bool:
        return same_value(value, self.value)

    def grid(self) -> list[Value]:
        return [self.value]


Domain = Union[FloatDomain, IntDomain, CategoricalDomain, FixedDomain]

DOMAIN_FIELDS = {
    FloatDomain: "float_range",
    IntDomain: "int_range",
    CategoricalDomain: "categorical",
    FixedDomain: "fixed",
}


@dataclass(frozen=True)
class Condition:
    """The parameter is active only when ``parent`` took one of ``values``."""

    parent: str
    values: tuple[Value, ...]

    def holds(self, assignment: Assignment) -> bool:
        return self.parent in assignment and any(same_value(assignment[self.parent], v) for v in self.values)


@dataclass(frozen=True)
class Parameter:
    name: str
    domain: Domain
    condition: Condition | None = None

    @property
    def is_fixed(self) -> bool:
        return isinstance(self.domain, FixedDomain)


@dataclass(frozen=True)
class SearchSpace:
    parameters: tuple[Parameter, ...]

    def validate(self, field: str = "spec.parameters") -> None:
        seen: dict[str, Parameter] = {}
        for i, parameter in enumerate(self.parameters):
            path = f"{field}[{i}]"
            check_name(f"{path}.name", parameter.name, "parameter name")
            if parameter.name in seen:
                raise InvalidArgument(f"{path}.name", f"duplicate parameter name {parameter.name!r}")
            parameter.domain.validate(f"{path}.{DOMAIN_FIELDS[type(parameter.domain)]}")
            if parameter.condition is not None:
                self._validate_condition(f"{path}.condition", parameter.condition, seen)
            seen[parameter.name] = parameter

    @staticmethod
    def _validate_condition(path: str, condition: Condition, earlier: dict[str, Parameter]) -> None:
        parent = earlier.get(condition.parent)
        if parent is None:
            raise InvalidArgument(
                f"{path}.parent", f"parent {condition.parent!r} must be a parameter declared earlier in the space"
            )
        if isinstance(parent.domain, FloatDomain):
            raise InvalidArgument(f"{path}.parent", f"parent {condition.parent!r} must be categorical, int or fixed")
        if not condition.values:
            raise InvalidArgument(f"{path}.values", "at least one parent value is required")
        for j, value in enumerate(condition.values):
            if not parent.domain.contains(value):
                raise InvalidArgument(
                    f"{path}.values[{j}]", f"{value!r} is not a value parent {condition.parent!r} can take"
                )

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def active(self, parameter: Parameter, assignment: Assignment) -> bool:
        return parameter.condition is None or parameter.condition.holds(assignment)

    def from_unit(self, u: "list[float] | tuple[float, ...]") -> dict[str, Value]:
        """Maps a point of the unit cube (one coordinate per parameter) to an assignment.

        Inactive conditional parameters are left out; their coordinate is ignored.
        """
        assignment: dict[str, Value] = {}
        for parameter, coordinate in zip(self.parameters, u):
            if self.active(parameter, assignment):
                assignment[parameter.name] = parameter.domain.from_unit(float(coordinate))
        return assignment

    def complete(self, given: Assignment, field: str = "parameters") -> dict[str, Value]:
        """Checks a user-given assignment, filling in fixed values; returns it in space order."""
        unknown = sorted(set(given) - set(self.names))
        if unknown:
            raise InvalidArgument(f"{field}[{unknown[0]}]", f"{unknown[0]!r} is not a parameter of the study")
        assignment: dict[str, Value] = {}
        for parameter in self.parameters:
            path = f"{field}[{parameter.name}]"
            if not self.active(parameter, assignment):
                if parameter.name in given:
                    raise InvalidArgument(path, f"{parameter.name!r} is inactive: its condition on "
                                          f"{parameter.condition.parent!r} does not hold")
                continue
            if parameter.name not in given:
                if parameter.is_fixed:
                    assignment[parameter.name] = parameter.domain.value
                    continue
                raise InvalidArgument(path, "a value is required")
            value = given[parameter.name]
            if isinstance(parameter.domain, FloatDomain) and type(value) is int:
                value = float(value)
            if not parameter.domain.contains(value):
                raise InvalidArgument(path, f"{value!r} ({value_kind(value)}) is outside the parameter's domain")
            assignment[parameter.name] = value
        return assignment
