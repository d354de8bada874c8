"""Trial workers and the user-facing Python API of the suite."""

from trial_worker.client import Study, SuggestionClient, Trial
from trial_worker.space import Categorical, Fixed, Float, Int

__all__ = ["Categorical", "Fixed", "Float", "Int", "Study", "SuggestionClient", "Trial"]
