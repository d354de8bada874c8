"""The suggestion service's metrics (OpenTelemetry instruments; no-ops unless telemetry is on).

Counts that describe the stored studies (trials by state, retries) are read from the
database when exported, so every replica reports the same exact totals. Events of one
replica (suggestion latency, pruning decisions, leases it reclaimed) are its own counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from tuning_common.telemetry import attributes, histogram, meter

log = logging.getLogger(__name__)

SUGGEST_DURATION = histogram(
    "tuning.suggest.duration", "s", "Time the study's algorithm took to propose new configurations, by algorithm")
STALE_PROPOSALS = meter().create_counter(
    "tuning.suggest.stale", unit="{ask}",
    description="Asks whose model-based proposals, computed outside the study's lock, went stale before the "
                "commit (the study had moved on too far), by algorithm; each computed again")
PRUNING_DECISIONS = meter().create_counter(
    "tuning.pruning.decisions", unit="{decision}",
    description="Pruner verdicts on intermediate reports, by pruner and decision (stop or continue)")
LEASES_EXPIRED = meter().create_counter(
    "tuning.leases.expired", unit="{trial}",
    description="Trials whose lease expired (the worker went silent), reclaimed by this replica")


def observe_trials(census: Callable[[], tuple[dict[str, int], int]], on: Meter | None = None) -> None:
    """Registers the gauges read from ``census()`` (trials by state, retries) at each export,
    on the suite's meter or ``on``."""
    # Both gauges of one export share one census: the first gauge read takes it and leaves it
    # for the other. A census kept across exports would make the final export at shutdown
    # report the counts of a moment before the last trials finished.
    left: list[tuple[float, tuple[dict[str, int], int] | None]] = []

    def read() -> tuple[dict[str, int], int] | None:
        if left and time.monotonic() - left[0][0] < 1.0:
            return left.pop()[1]
        left.clear()
        try:
            counts = census()
        except Exception as error:  # a database hiccup must not break the export of other metrics
            log.info("trial census failed: %s", error)
            counts = None
        left.append((time.monotonic(), counts))
        return counts

    def by_state(_options: CallbackOptions) -> Iterable[Observation]:
        counts = read()
        return [] if counts is None else [Observation(n, attributes(trial_state=state))
                                          for state, n in counts[0].items()]

    def retried(_options: CallbackOptions) -> Iterable[Observation]:
        counts = read()
        return [] if counts is None else [Observation(counts[1])]

    on = on or meter()
    on.create_observable_gauge("tuning.trials", [by_state], unit="{trial}",
                               description="Trials of every study by state (from the database)")
    on.create_observable_gauge("tuning.trials.retried", [retried], unit="{trial}",
                               description="Trials created as retries of failed or expired ones (from the database)")
