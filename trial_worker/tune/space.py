"""Search-space helpers in the style of Ray Tune and Snowflake's ``tune``:

    search_space = {
        "n_estimators": tune.randint(50, 300),        # 50 ... 299 (upper bound excluded, as in Ray)
        "learning_rate": tune.loguniform(0.01, 0.3),
        "subsample": tune.uniform(0.5, 1.0),
        "booster": tune.choice(["gbtree", "dart"]),
        "rate_drop": tune.uniform(0.0, 0.3, when={"booster": "dart"}),   # conditional
        "random_state": 42,                           # a fixed value
    }

The parameter classes of :mod:`trial_worker.space` (``Float``, ``Int``, ...) are accepted
as values too, for what the helpers do not cover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trial_worker.space import Categorical, Fixed, Float, Int
from tuning_types.space import Parameter, Value

When = Mapping[str, Value | Sequence[Value]] | None


@dataclass(frozen=True)
class Domain:
    """A sampling domain, named by the search-space key it is given under."""

    kind: str
    args: tuple
    log: bool = False
    step: float | int | None = None
    when: When = None

    def parameter(self, name: str) -> Parameter:
        when = dict(self.when) if self.when else None
        if self.kind == "float":
            low, high = self.args
            return Float(name, low, high, log=self.log, step=self.step, when=when)
        if self.kind == "int":
            low, high = self.args
            return Int(name, low, high, log=self.log, step=self.step, when=when)
        return Categorical(name, list(self.args[0]), when=when)


def uniform(low: float, high: float, *, when: When = None) -> Domain:
    """A float drawn uniformly from [low, high]."""
    return Domain("float", (low, high), when=when)


def quniform(low: float, high: float, q: float, *, when: When = None) -> Domain:
    """A float from [low, high] on a grid of step ``q``."""
    return Domain("float", (low, high), step=q, when=when)


def loguniform(low: float, high: float, *, when: When = None) -> Domain:
    """A float from [low, high], uniform in log space (learning rates, regularisation)."""
    return Domain("float", (low, high), log=True, when=when)


def _int_range(low: int, high: int, helper: str) -> tuple[int, int]:
    if high <= low:
        raise ValueError(f"{helper}({low}, {high}): the upper bound is excluded, so it must be above the lower")
    return int(low), int(high) - 1


def randint(low: int, high: int, *, when: When = None) -> Domain:
    """An integer from low (included) to high (excluded), as Ray Tune's and Snowflake's ``randint``."""
    return Domain("int", _int_range(low, high, "randint"), when=when)


def lograndint(low: int, high: int, *, when: When = None) -> Domain:
    """An integer from low (included) to high (excluded), uniform in log space."""
    return Domain("int", _int_range(low, high, "lograndint"), log=True, when=when)


def qrandint(low: int, high: int, q: int = 1, *, when: When = None) -> Domain:
    """An integer from low to high (both included, as Ray's ``qrandint``) on a grid of step ``q``."""
    return Domain("int", (int(low), int(high)), step=int(q), when=when)


def choice(options: Sequence[Value], *, when: When = None) -> Domain:
    """One of ``options`` (strings, numbers or booleans)."""
    if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
        raise ValueError(f"choice() takes a list of options, got {options!r:.60}")
    return Domain("categorical", (tuple(options),), when=when)


def to_parameters(space: Mapping[str, Any]) -> list[Parameter]:
    """The suggestion service's parameters for a search-space dict (see the module's docstring)."""
    parameters = []
    for name, value in space.items():
        if isinstance(value, Domain):
            parameters.append(value.parameter(name))
        elif isinstance(value, Parameter):
            if value.name != name:
                raise ValueError(f"search space key {name!r} holds a parameter named {value.name!r}")
            parameters.append(value)
        elif isinstance(value, (str, int, float, bool)):
            parameters.append(Fixed(name, value))
        else:
            raise ValueError(f"search space {name!r}: {type(value).__name__} is neither a domain "
                             "(uniform, loguniform, randint, choice, ...) nor a fixed str/int/float/bool")
    return parameters
