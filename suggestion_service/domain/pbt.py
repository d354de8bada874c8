"""What a population-based training segment is, as stored with its trial.

The ``pbt`` algorithm (``algorithms/pbt.py``) writes these facts under ``KEY`` in each
trial's suggestion metadata; the API shows them as ``Trial.pbt_segment`` and builds the
population (GetPopulation) from them. A retry copies its original's metadata, so it is the
same segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The key of a segment's facts in its trial's suggestion metadata.
KEY = "pbt"
# Decisions, as stored in the metadata and returned by GetPopulation.
START, CONTINUE, EXPLOIT, REDO = "start", "continue", "exploit", "redo"


@dataclass(frozen=True)
class Segment:
    """What a segment's trial is: the facts stored under ``KEY`` in its metadata."""

    member: int
    generation: int
    start_step: int
    end_step: int
    last: bool
    decision: str
    # The trial whose checkpoint this segment starts from (None: from scratch) and its member.
    parent_trial_id: int | None = None
    parent_member: int | None = None
    # Exploit and redo: the donor's value at the copied generation, and how each parameter
    # was explored ("x0.8", "x1.2", "resampled", "neighbour", "new": became active).
    donor_value: float | None = None
    explored: Mapping[str, str] | None = None

    def to_metadata(self) -> dict[str, Any]:
        facts = {"member": self.member, "generation": self.generation, "start_step": self.start_step,
                 "end_step": self.end_step, "last": self.last, "decision": self.decision}
        if self.parent_trial_id is not None:
            facts.update(parent_trial_id=self.parent_trial_id, parent_member=self.parent_member)
        if self.donor_value is not None:
            facts["donor_value"] = self.donor_value
        if self.explored is not None:
            facts["explored"] = dict(self.explored)
        return facts

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Segment | None:
        facts = metadata.get(KEY)
        if not isinstance(facts, Mapping):
            return None
        return cls(**{k: v for k, v in facts.items() if k in cls.__dataclass_fields__})
