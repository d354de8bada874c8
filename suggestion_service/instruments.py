"""The suggestion service's metrics (OpenTelemetry instruments; no-ops unless telemetry is on).

Counts that describe the stored studies (trials by state, retries) are read from the
database when exported, so every replica reports the same exact totals. Events of one
replica (suggestion latency, pruning decisions, leases it reclaimed) are its own counters.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from tuning_common.telemetry import attributes, histogram, meter

log = logging.getLogger(__name__)

SUGGEST_DURATION = histogram(
    "tuning.suggest.duration", "s", "Time the study's algorithm took to propose new configurations, by algorithm")
PRUNING_DECISIONS = meter().create_counter(
    "tuning.pruning.decisions", unit="{decision}",
    description="Pruner verdicts on intermediate reports, by pruner and decision (stop or continue)")
LEASES_EXPIRED = meter().create_counter(
    "tuning.leases.expired", unit="{trial}",
    description="Trials whose lease expired (the worker went silent), reclaimed by this replica")


def observe_trials(census: Callable[[], tuple[dict[str, int], int]]) -> None:
    """Registers the gauges read from ``census()`` (trials by state, retries) at each export."""
    last: list = [-math.inf, None]  # when, what: both gauges of one export share one census

    def read() -> tuple[dict[str, int], int] | None:
        if time.monotonic() - last[0] > 1.0:
            try:
                last[1] = census()
            except Exception as error:  # a database hiccup must not break the export of other metrics
                log.info("trial census failed: %s", error)
                last[1] = None
            last[0] = time.monotonic()
        return last[1]

    def by_state(_options: CallbackOptions) -> Iterable[Observation]:
        counts = read()
        return [] if counts is None else [Observation(n, attributes(trial_state=state))
                                          for state, n in counts[0].items()]

    def retried(_options: CallbackOptions) -> Iterable[Observation]:
        counts = read()
        return [] if counts is None else [Observation(counts[1])]

    meter().create_observable_gauge("tuning.trials", [by_state], unit="{trial}",
                                    description="Trials of every study by state (from the database)")
    meter().create_observable_gauge("tuning.trials.retried", [retried], unit="{trial}",
                                    description="Trials created as retries of failed or expired ones (from the database)")
