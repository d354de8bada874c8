"""The one interface every suggestion algorithm implements.

State rules (in the spirit of Vizier's Designer): an algorithm object holds no mutable
state between calls. Everything it may depend on arrives in :class:`SuggestContext`,
which the service rebuilds from the database on each ask, so a restart or another
replica produces the same answer. Determinism under a seed comes from
``SuggestContext.sequence``: the n-th configuration the algorithm proposes in a study
depends only on the seed, n and (for model-based algorithms) the history.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from suggestion_service.domain.trial import TrialState
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace, Value
from tuning_types.study import Fidelity, Objective, StudySpec

T = TypeVar("T")


@dataclass(frozen=True)
class TrialView:
    """What an algorithm sees of a past or pending trial."""

    number: int
    state: TrialState
    params: Mapping[str, Value]
    # Objective values in objective order; None unless the trial completed.
    values: tuple[float, ...] | None = None
    budget: float | None = None
    # The latest intermediate report: its step and objective values (None if none or partial).
    last_step: float | None = None
    last_values: tuple[float, ...] | None = None
    # Constraint values (<= 0: satisfied) in the study's declared order; None when the tell
    # carried none (always, in an unconstrained study).
    constraints: tuple[float, ...] | None = None
    # The trial's id (what a worker refers to, e.g. a checkpoint's source) and its stored
    # suggestion metadata (the algorithm's own facts about it; a retry keeps its original's).
    id: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        """False only for a trial with a constraint value above 0."""
        return self.constraints is None or all(c <= 0.0 for c in self.constraints)


@dataclass(frozen=True)
class PriorTask:
    """An earlier study the study learns from (``StudySpec.prior_studies``): its completed trials.

    ``trials`` are the prior's own, in its own space and objective direction; the algorithm
    keeps those that fall inside the study's space (``transfer.usable_trials``)."""

    study: str
    objective: Objective
    trials: tuple[TrialView, ...]


@dataclass(frozen=True)
class SuggestContext:
    space: SearchSpace
    objectives: tuple[Objective, ...]
    # Index of the first configuration to propose (how many the algorithm proposed before).
    sequence: int
    # Configurations leased or queued right now: propose something else.
    pending: Sequence[Mapping[str, Value]] = ()
    # Every trial so far, oldest first; only filled for algorithms with uses_history.
    history: Sequence[TrialView] = ()
    # The study's declared constraint names (spec.constraints); empty: unconstrained.
    constraints: tuple[str, ...] = ()
    # The prior studies' completed trials, in spec.prior_studies order; only filled for
    # algorithms with uses_priors.
    priors: tuple[PriorTask, ...] = ()
    # Wraps each costly stage, named "verb object" ("fit gp", "optimize acquisition"): the
    # service traces them; algorithms stay free of telemetry.
    stage: Callable[[str], AbstractContextManager] = lambda _name: nullcontext()


@dataclass(frozen=True)
class Suggestion:
    params: dict[str, Value]
    budget: float | None = None
    # Why this point: JSON-able facts stored with the trial (the producing algorithm, and
    # where relevant the predicted mean/std, the acquisition value, a fallback and its reason).
    metadata: dict[str, Any] = field(default_factory=dict)


# Settings types in the words of JSON and of a google.protobuf.Value, for users of any language.
SETTING_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _json(value: Any) -> str:
    """``value`` as JSON with its kind, e.g. '"5" (a string)'."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        kind = "an object"
    elif isinstance(value, (list, tuple)):
        kind = "a list"
    else:
        kind = _article(SETTING_TYPES.get(type(value), type(value).__name__))
    return f"{json.dumps(value, default=str)[:80]} ({kind})"


class Configurable:
    """A named component with typed settings (algorithms, pruners).

    Subclasses set ``name`` and may declare a frozen ``Settings`` dataclass whose field
    defaults fix each setting's type.
    """

    name: ClassVar[str]

    @dataclass(frozen=True)
    class Settings:
        pass

    @classmethod
    def settings_schema(cls) -> dict[str, tuple[type, Any]]:
        """Each setting's type and default, read from ``Settings`` (the one declaration).

        The docs and the proto comments list the same; a test keeps them equal.
        """
        defaults = cls.Settings()
        return {f.name: (type(getattr(defaults, f.name)), getattr(defaults, f.name)) for f in fields(cls.Settings)}

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], field: str = "spec.algorithm.settings") -> Settings:
        schema = cls.settings_schema()
        values = {}
        for key, value in raw.items():
            if key not in schema:
                allowed = ", ".join(f"{name} ({SETTING_TYPES[t]})" for name, (t, _) in schema.items()) or "none"
                raise InvalidArgument(f"{field}.{key}", f"unknown setting for {cls.name!r} (allowed: {allowed})")
            expected = schema[key][0]
            # A Struct carries every number as a double: an integral one is a fine integer.
            if expected is float and type(value) is int:
                value = float(value)
            if expected is int and type(value) is float and value.is_integer():
                value = int(value)
            if type(value) is not expected:
                raise InvalidArgument(f"{field}.{key}",
                                      f"must be {_article(SETTING_TYPES[expected])}, got {_json(value)}")
            values[key] = value
        settings = cls.Settings(**values)
        cls.check_settings(settings, field)
        return settings

    @classmethod
    def check_settings(cls, settings: Settings, field: str) -> None:
        """Raises InvalidArgument when the settings are inconsistent."""


class Algorithm(Configurable, abc.ABC):
    """A suggestion algorithm. See the module docstring for the state rules."""

    uses_history: ClassVar[bool] = False
    # True: a model of the history proposes (gp, tpe, bohb, auto), costly enough to be computed
    # outside the study's lock, in batches, in a model process (suggestion_service.model_work).
    # Its proposals must stay sound while other trials run and finish: it reads pending trials
    # from the history, and the service checks staleness before handing one out.
    model_based: ClassVar[bool] = False
    # Whether suggest() looks at SuggestContext.pending (the service skips a query if not).
    uses_pending: bool = False
    # True: suggest() may return fewer than asked while trials run, because what comes next
    # depends on their results (pbt); the service then answers WAIT, and the study is done
    # only when it returns nothing with nothing running. False: fewer means exhausted.
    waits_for_running: ClassVar[bool] = False
    # False: every trial must come from the algorithm (pbt's are segments it schedules), so
    # CreateTrial is refused.
    accepts_user_trials: ClassVar[bool] = True
    # True: suggest() learns from SuggestContext.priors (gp, tpe, auto); a study naming prior
    # studies must run such an algorithm.
    uses_priors: ClassVar[bool] = False

    @classmethod
    def check_space(cls, space: SearchSpace, field: str = "spec.parameters") -> None:
        """Raises InvalidArgument when the algorithm cannot search this space."""

    @classmethod
    def check_objectives(cls, objectives: Sequence[Objective], field: str = "spec.objectives") -> None:
        """Raises InvalidArgument when the algorithm cannot optimise these objectives."""

    @classmethod
    def check_fidelity(cls, fidelity: Fidelity | None, field: str = "spec.fidelity") -> None:
        """Raises InvalidArgument when the algorithm needs a fidelity the study lacks."""

    @classmethod
    def check_constraints(cls, constraints: Sequence[str], settings: Configurable.Settings,
                          field: str = "spec.constraints") -> None:
        """Raises InvalidArgument when the algorithm, so configured, cannot run a constrained study.

        Every algorithm accepts constraints: those that do not model them (random, grid...)
        simply propose as they would without, and the service still keeps infeasible trials
        out of the best trials."""

    @classmethod
    def check_spec(cls, spec: StudySpec, settings: Configurable.Settings) -> None:
        """Raises InvalidArgument when the rest of the spec (pruner, settings against the space)
        does not suit the algorithm; runs after the other checks."""

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], settings: Configurable.Settings, seed: int):
        self.space = space
        self.objectives = tuple(objectives)
        self.settings = settings
        self.seed = seed

    def capacity(self) -> int | None:
        """How many configurations the algorithm can ever propose; None when unbounded."""
        return None

    @abc.abstractmethod
    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        """Up to ``count`` new configurations; fewer only when the space is exhausted (or, with
        ``waits_for_running``, until running trials finish)."""


def lookup(registry: Mapping[str, T], name: str, field: str, kind: str) -> T:
    """``registry[name]``, or InvalidArgument on ``field`` listing the known names."""
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise InvalidArgument(field, f"unknown {kind} {name!r} (known: {known})") from None
