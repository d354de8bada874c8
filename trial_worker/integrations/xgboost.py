"""Report every XGBoost boosting round, so a pruner can stop a trial inside ``fit``.

    model = XGBClassifier(n_estimators=300, eval_metric=f1_metric,
                          callbacks=[ReportCallback(ctx)])        # or ctx.xgboost_callback()
    model.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)

Each round's evaluation results become metrics named ``<data>_<metric>``: the scikit-learn
API's ``validation_0`` is called ``val`` (``validation_1`` is ``val_1``), ``xgb.train``'s
``evals`` names are kept. The report's step is the number of rounds trained (the unit of a
``boosting_rounds`` fidelity). When the pruner says stop, the callback raises
:class:`~trial_worker.exceptions.TrialPruned`, which ends ``fit`` and the trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import xgboost

from trial_worker.exceptions import TrialPruned


class Reporter(Protocol):
    """What the callback reports to: a :class:`~trial_worker.context.TrialContext`."""

    def report(self, step: int, /, **metrics: float) -> bool: ...


def f1_metric(y_true, y_score) -> float:
    """Binary F1 at a 0.5 threshold as an XGBoost ``eval_metric`` (reported as ``<data>_f1``)."""
    from sklearn.metrics import f1_score

    return f1_score(y_true, y_score > 0.5)


f1_metric.__name__ = "f1"

def data_prefix(name: str) -> str:
    if name == "validation_0":
        return "val"
    if name.startswith("validation_"):
        return "val_" + name.removeprefix("validation_")
    return name


class ReportCallback(xgboost.callback.TrainingCallback):
    def __init__(self, ctx: Reporter, *, names: Mapping[str, str] | None = None, report_every: int = 1):
        if report_every < 1:
            raise ValueError(f"report_every must be 1 or more, got {report_every}")
        super().__init__()
        self.ctx = ctx
        self.names = dict(names or {})
        self.report_every = report_every

    def after_iteration(self, model: object, epoch: int, evals_log: dict) -> bool:
        rounds = epoch + 1
        if rounds % self.report_every:
            return False
        metrics = {}
        for data, by_metric in evals_log.items():
            prefix = self.names.get(data) or data_prefix(data)
            for metric, history in by_metric.items():
                value = history[-1]
                metrics[f"{prefix}_{metric}"] = float(value[0] if isinstance(value, tuple) else value)
        if not metrics:
            raise ValueError("nothing to report: give fit() an eval_set (or xgb.train evals=...)")
        if self.ctx.report(rounds, **metrics):
            raise TrialPruned(f"stopped after {rounds} boosting rounds")
        return False
