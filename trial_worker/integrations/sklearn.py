"""scikit-learn helpers: the seed's classification metrics, and fit-and-score for a trial.

    def train(ctx):
        model = RandomForestClassifier(**ctx.params)
        return fit_and_score(ctx, model, x_train, y_train, x_val, y_val)   # val_f1, val_accuracy, ...

Estimators with ``partial_fit`` (SGDClassifier, MLPClassifier, ...) are trained one epoch at a
time when ``epochs`` is given (or the trial has a budget), reporting after each so a pruner
can stop them early.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from trial_worker.exceptions import TrialPruned

if TYPE_CHECKING:  # the context hands itself in; importing it here would loop (it offers these helpers)
    from trial_worker.context import TrialContext

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def classification_metrics(y_true: Any, y_pred: Any, y_score: Any = None, *, prefix: str = "val") -> dict[str, float]:
    """Accuracy, precision, recall and F1 (binary), and ROC AUC when scores are given."""
    from sklearn import metrics

    values = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred, zero_division=0),
        "recall": metrics.recall_score(y_true, y_pred, zero_division=0),
        "f1": metrics.f1_score(y_true, y_pred, zero_division=0),
    }
    if y_score is not None:
        values["roc_auc"] = metrics.roc_auc_score(y_true, y_score)
    return {f"{prefix}_{name}": float(value) for name, value in values.items()}


def _scores(estimator: Any, x: Any, y: Any, scoring: Sequence[str] | None, prefix: str) -> dict[str, float]:
    if scoring is None:
        y_score = estimator.predict_proba(x)[:, 1] if hasattr(estimator, "predict_proba") else None
        return classification_metrics(y, estimator.predict(x), y_score, prefix=prefix)
    from sklearn.metrics import get_scorer

    return {f"{prefix}_{name}": float(get_scorer(name)(estimator, x, y)) for name in scoring}


def fit_and_score(ctx: TrialContext, estimator: Any, x_train: Any, y_train: Any, x_val: Any, y_val: Any, *,
                  scoring: Sequence[str] | None = None, epochs: int | None = None, log_model: bool = True,
                  prefix: str = "val") -> dict[str, float]:
    """Fits ``estimator``, scores it on the validation data, logs the model; returns the scores.

    ``scoring`` names scikit-learn scorers (default: :data:`CLASSIFICATION_METRICS` of a
    binary classifier). With ``epochs`` (default: the trial's budget, when the estimator
    has ``partial_fit``) it reports the scores after every epoch and stops when pruned.
    """
    if epochs is None and ctx.budget is not None and hasattr(estimator, "partial_fit"):
        epochs = int(ctx.budget)
    if epochs is None:
        estimator.fit(x_train, y_train)
        scores = _scores(estimator, x_val, y_val, scoring, prefix)
    else:
        if not hasattr(estimator, "partial_fit"):
            raise TypeError(f"{type(estimator).__name__} has no partial_fit: it cannot be trained epoch by epoch")
        from sklearn.base import is_classifier

        # partial_fit must see every class on its first call, even if a batch lacks one.
        classes = np.unique(y_train) if is_classifier(estimator) else None
        for epoch in range(1, epochs + 1):
            if classes is not None:
                estimator.partial_fit(x_train, y_train, classes=classes)
            else:
                estimator.partial_fit(x_train, y_train)
            scores = _scores(estimator, x_val, y_val, scoring, prefix)
            if ctx.report(epoch, **scores):
                raise TrialPruned(f"stopped after {epoch} epochs")
    if log_model and ctx.run_id is not None:
        ctx.log_model(estimator)
    return scores
