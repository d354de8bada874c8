"""Study webhooks' events and what each delivery carries (the rest of webhooks is
tuning_common.webhooks, shared with the model registry)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import numpy as np

from suggestion_service.domain.ranking import loss_signs
from suggestion_service.domain.trial import Metrics, Trial, is_feasible
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


def improves(trial: Trial, earlier: Sequence[tuple[Metrics, tuple[float, ...] | None]], spec: StudySpec) -> bool:
    """Whether a trial that just completed improves the best (BEST_IMPROVED), given the (metrics,
    constraint values) of the study's other completed trials: it is feasible and no other feasible
    one is at least as good in every objective. With one objective that is "strictly better than
    the best so far"; with several, the trial joins the Pareto front with values no member has, so
    the front changes."""
    names = spec.metric_names
    if trial.feasible is False or any(trial.metric(name) is None for name in names):
        return False
    rows = []
    for metrics, constraints in earlier:
        values = dict(metrics)
        if (constraints is None or is_feasible(constraints)) and all(name in values for name in names):
            rows.append([values[name] for name in names])
    if not rows:
        return True
    signs = loss_signs(spec.objectives)
    mine = np.array([trial.metric(name) for name in names]) * signs
    return not bool(np.any(np.all(np.array(rows) * signs <= mine, axis=1)))


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
