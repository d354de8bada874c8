"""Suggestion algorithms: pure numpy/scipy code behind :class:`~.base.Algorithm`.

No gRPC, SQL or telemetry in this package: the service hands each algorithm a
:class:`~.base.SuggestContext` and stores what it proposes.
"""

from __future__ import annotations

from suggestion_service.algorithms.auto import Auto
from suggestion_service.algorithms.base import Algorithm, PriorTask, SuggestContext, Suggestion, TrialView, lookup
from suggestion_service.algorithms.bohb import BOHB
from suggestion_service.algorithms.gp import GaussianProcessBO
from suggestion_service.algorithms.grid import GridSearch
from suggestion_service.algorithms.pbt import PopulationBasedTraining
from suggestion_service.algorithms.pruners import Pruner, make_pruner, validate_pruner
from suggestion_service.algorithms.quasi_random import QuasiRandomSearch
from suggestion_service.algorithms.random_search import RandomSearch
from suggestion_service.algorithms.tpe import TPE
from tuning_common.errors import InvalidArgument
from tuning_types.study import StudySpec

ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls for cls in (RandomSearch, QuasiRandomSearch, GridSearch, TPE, BOHB, GaussianProcessBO, Auto,
                                 PopulationBasedTraining)
}


def algorithm_class(name: str) -> type[Algorithm]:
    return lookup(ALGORITHMS, name, "spec.algorithm.name", "algorithm")


def validate_algorithm(spec: StudySpec) -> None:
    cls = algorithm_class(spec.algorithm.name)
    settings = cls.parse_settings(spec.algorithm.settings)
    cls.check_space(spec.space)
    cls.check_objectives(spec.objectives)
    cls.check_fidelity(spec.fidelity)
    cls.check_constraints(spec.constraints, settings)
    cls.check_spec(spec, settings)
    if spec.prior_studies and not cls.uses_priors:
        users = ", ".join(name for name, c in ALGORITHMS.items() if c.uses_priors)
        raise InvalidArgument("spec.prior_studies", f"{cls.name!r} does not learn from prior studies (only {users} do)")
    validate_pruner(spec)


def make_algorithm(spec: StudySpec) -> Algorithm:
    cls = algorithm_class(spec.algorithm.name)
    return cls(spec.space, spec.objectives, cls.parse_settings(spec.algorithm.settings), seed=spec.seed)


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "PriorTask",
    "Pruner",
    "SuggestContext",
    "Suggestion",
    "TrialView",
    "make_algorithm",
    "make_pruner",
    "validate_algorithm",
]
