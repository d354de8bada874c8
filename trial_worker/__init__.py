"""Trial workers and the user-facing Python API of the suite."""

from trial_worker.client import Study, SuggestionClient, Trial
from trial_worker.space import Categorical, Fixed, Float, Int
from tuning_types.study import Fidelity

__all__ = ["Categorical", "Fidelity", "Fixed", "Float", "Int", "Study", "SuggestionClient", "Trial"]
