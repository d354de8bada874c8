"""Exhaustive grid search over a finite space, in a fixed or seeded-shuffled order."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from suggestion_service.algorithms.base import Algorithm, SuggestContext, Suggestion
from tuning_common.errors import InvalidArgument
from tuning_types.space import FloatDomain, SearchSpace, Value

MAX_GRID_POINTS = 1_000_000


def grid_size(space: SearchSpace) -> int:
    return len(_enumerate(space, limit=MAX_GRID_POINTS + 1))


def _enumerate(space: SearchSpace, limit: int) -> list[dict[str, Value]]:
    """Every assignment, respecting conditions (inactive parameters don't multiply the grid)."""
    points: list[dict[str, Value]] = [{}]
    for parameter in space:
        expanded = []
        for point in points:
            if not space.active(parameter, point):
                expanded.append(point)
                continue
            for value in parameter.domain.grid():
                expanded.append({**point, parameter.name: value})
                if len(expanded) >= limit:
                    return expanded
        points = expanded
    return points


class GridSearch(Algorithm):
    name = "grid"

    @dataclass(frozen=True)
    class Settings:
        shuffle: bool = False

    @classmethod
    def check_space(cls, space: SearchSpace, field: str = "spec.parameters") -> None:
        for i, parameter in enumerate(space):
            if isinstance(parameter.domain, FloatDomain) and parameter.domain.step is None:
                raise InvalidArgument(
                    f"{field}[{i}].float_range.step",
                    f"grid search needs a finite space: give float parameter {parameter.name!r} a step",
                )
        size = grid_size(space)
        if size > MAX_GRID_POINTS:
            raise InvalidArgument(field, f"the grid has more than {MAX_GRID_POINTS:,} points")

    @cached_property
    def _points(self) -> list[dict[str, Value]]:
        points = _enumerate(self.space, limit=MAX_GRID_POINTS + 1)
        if self.settings.shuffle:
            order = np.random.default_rng(self.seed).permutation(len(points))
            points = [points[i] for i in order]
        return points

    def capacity(self) -> int:
        return len(self._points)

    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        return [Suggestion(dict(p)) for p in self._points[context.sequence : context.sequence + count]]
