"""The study page's plots for multi-objective, constrained and conditional studies, in headless
Chromium against the real services and gateway.

Two studies are told by hand through the SuggestionClient (CreateTrial, then ask and tell), with
values chosen so that the Pareto set, the hypervolume after each trial and the infeasible trials
are known in advance (worked out in the comments below):

* ``mo3``: three objectives (loss and latency minimised, score maximised), a constraint
  (memory), a conditional parameter (rate_drop, active only when booster is dart);
* ``mo2``: two objectives (loss minimised, score maximised), for the 2-D hypervolume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.server import RunningGateway
from tests.conftest import gateway_suite
from tests.e2e.test_dashboard import browser, shots, visit  # noqa: F401 (fixtures)
from trial_worker import SuggestionClient
from trial_worker.space import Categorical, Float

pytestmark = pytest.mark.timeout(300)

# mo3's trials: (booster, rate_drop or None when inactive, lr), (loss, latency, score), memory.
# memory > 0 violates the constraint. In loss space (score negated) the feasible points are
#   0: (0, 8, -4)   1: (3, 3, -6)   2: (6, 0, -10)   3: (5, 5, -5)   5: (2, 6, -8)   6: (10, 10, 0)
# 3 is dominated by 1, 6 by every other; 4 would dominate 1 and 3 but is infeasible, so the
# Pareto set is {0, 1, 2, 5}.
MO3 = [
    (("gbtree", None, 0.01), (0.0, 8.0, 4.0), -1.0),
    (("dart", 0.1, 0.1), (3.0, 3.0, 6.0), -1.0),
    (("dart", 0.3, 0.5), (6.0, 0.0, 10.0), -2.0),
    (("gbtree", None, 0.05), (5.0, 5.0, 5.0), -1.0),
    (("dart", 0.2, 0.02), (1.0, 1.0, 9.0), 2.0),
    (("gbtree", None, 0.3), (2.0, 6.0, 8.0), 0.0),
    (("dart", 0.4, 0.005), (10.0, 10.0, 0.0), -1.0),
]
MO3_FRONT = [0, 1, 2, 5]
MO3_INFEASIBLE = [4]
MO3_INACTIVE = [0, 3, 5]  # gbtree: rate_drop inactive
# Reference point: each objective's worst feasible value moved out by 10% of its range (all
# three ranges are 10): loss 11, latency 11, score -1. Hypervolume after each feasible trial,
# by inclusion-exclusion of the boxes [p, r] (volumes 165, 448, 605, 216, 405, 1):
#   after 0: 165
#   after 1: 165 + 448 - 120 (the boxes' overlap [(3, 8, -4), r]) = 493
#   after 2: 493 + 605 - 75 - 280 + 75 = 818
#   after 3: 818 (dominated)
#   after 5: slicing along score: 2*55 + 2*75 + 2*84 + 5*90 = 878
#   after 6: 878 (dominated)
MO3_HYPERVOLUME = {0: 165.0, 1: 493.0, 2: 818.0, 3: 818.0, 5: 878.0, 6: 878.0}
MO3_REFERENCE = [11.0, 11.0, -1.0]

# mo2's trials: (loss, score). In loss space: (0, -2), (2, -6), (6, -10), (4, -4) dominated by
# the second, (10, 0) dominated by all. Reference point (11, score -1); the 2-D sweep gives
# 11*3 = 33, then + 9*4 = 69, then + 5*4 = 89.
MO2 = [(0.0, 2.0), (2.0, 6.0), (6.0, 10.0), (4.0, 4.0), (10.0, 0.0)]
MO2_FRONT = [0, 1, 2]
MO2_HYPERVOLUME = {0: 33.0, 1: 69.0, 2: 89.0, 3: 89.0, 4: 89.0}


@dataclass
class World:
    gateway: RunningGateway
    suggestion: str

    @property
    def url(self) -> str:
        return self.gateway.url


def _populate(address: str) -> None:
    with SuggestionClient(address) as client:
        study = client.create_study(
            "mo3", [Categorical("booster", ["gbtree", "dart"]), Float("rate_drop", 0.0, 0.5, when={"booster": ["dart"]}),
                    Float("lr", 1e-3, 1.0, log=True)],
            objectives={"loss": "minimize", "latency": "minimize", "score": "maximize"}, constraints=["memory"],
            algorithm="random", seed=1)
        for number, ((booster, rate_drop, lr), (loss, latency, score), memory) in enumerate(MO3):
            params = {"booster": booster, "lr": lr, **({} if rate_drop is None else {"rate_drop": rate_drop})}
            study.enqueue(params)
            trial = study.ask()
            assert trial.number == number and dict(trial.params) == params
            told = study.tell(trial, {"loss": loss, "latency": latency, "score": score}, constraints=[memory])
            assert told.feasible == (memory <= 0)
        # A pruned trial: in the table, in no plot of results.
        study.enqueue({"booster": "dart", "rate_drop": 0.25, "lr": 0.2})
        study.prune(study.ask())

        study = client.create_study("mo2", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize", "score": "maximize"},
                                    algorithm="random", seed=1)
        for number, (loss, score) in enumerate(MO2):
            study.enqueue({"x": number / 10})
            study.tell(study.ask(), {"loss": loss, "score": score})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with gateway_suite(tmp_path_factory.mktemp("dashboard-plots")) as suite:
        _populate(suite.suggestion.address)
        yield World(suite.gateway, suite.suggestion.address)
