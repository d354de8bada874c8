"""Study webhooks' events and what each delivery carries (the rest of webhooks is
tuning_common.webhooks, shared with the model registry)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import numpy as np

from suggestion_service.domain.ranking import objective_matrix
from suggestion_service.domain.trial import Trial
from tuning_common.webhooks import iso_time
from tuning_types.study import StudySpec


class WebhookEvent(enum.Enum):
    STUDY_COMPLETED = "STUDY_COMPLETED"
    BEST_IMPROVED = "BEST_IMPROVED"
    BUDGET_SPENT = "BUDGET_SPENT"
    # Made by TestStudyWebhook only; no webhook subscribes to it.
    TEST = "TEST"


class CompletedBecause(enum.Enum):
    """The ``reason`` of a STUDY_COMPLETED payload."""

    SET_STUDY_STATE = "SET_STUDY_STATE"
    BUDGET_SPENT = "BUDGET_SPENT"
    SPACE_EXHAUSTED = "SPACE_EXHAUSTED"


# A TestStudyWebhook delivery's payload: the fields of an event's, blank.
TEST_PAYLOAD: dict[str, Any] = {"study": "", "reason": "", "trial": None}


def improves(trial: Trial, earlier: Sequence[Trial], spec: StudySpec) -> bool:
    """Whether a trial that just completed improves the best (BEST_IMPROVED): it is feasible and
    no earlier completed feasible trial is at least as good in every objective. With one objective
    that is "strictly better than the best so far"; with several, the trial joins the Pareto front
    with values no member has, so the front changes."""
    if trial.feasible is False or any(trial.metric(o.metric) is None for o in spec.objectives):
        return False
    others = [t for t in earlier if t.id != trial.id and t.feasible is not False]
    if not others:
        return True
    losses = objective_matrix(others, spec.objectives)
    mine = objective_matrix([trial], spec.objectives)[0]
    return not bool(np.any(np.all(losses <= mine, axis=1)))


def trial_payload(trial: Trial, spec: StudySpec) -> dict[str, Any]:
    """A trial as a payload carries it: objective values by metric (an objective without a value
    is absent), every metric told, its parameters and times."""
    metrics = dict(trial.metrics)
    return {
        "number": trial.number,
        "state": trial.state.value,
        "values": {name: metrics[name] for name in spec.metric_names if name in metrics},
        "metrics": metrics,
        "params": dict(trial.params),
        "create_time": iso_time(trial.create_ms),
        "end_time": None if trial.end_ms is None else iso_time(trial.end_ms),
    }
