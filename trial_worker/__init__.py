"""Trial workers and the user-facing Python API of the suite."""

from suggestion_service.domain.study import Fidelity
from trial_worker.client import Study, SuggestionClient, Trial
from trial_worker.space import Categorical, Fixed, Float, Int

__all__ = ["Categorical", "Fidelity", "Fixed", "Float", "Int", "Study", "SuggestionClient", "Trial"]
