"""How a trial ends other than by returning: the exceptions a train function and the worker
raise. A module of its own, below the context and the integrations that raise them."""


class TrialPruned(Exception):  # noqa: N818 - the name users of Optuna know
    """Raised inside a train function to end the trial as pruned (stopped early)."""


class LeaseLost(Exception):  # noqa: N818
    """The trial is no longer this worker's (its lease expired, or the worker handed it back)."""
