"""The reference workflow's wine-quality classifier (shared/seeds/000_*): its synthetic data,
generated exactly as there (numpy only, seed 42), its splits, its seven XGBoost
hyperparameters, and a train function for workers:

    tuning worker --study wine --train trial_worker.examples.wine:train

The train function reports validation log-loss after every boosting round (so ASHA can stop
a trial inside ``fit``), logs the model, and returns the seed's five validation metrics.

The space is the seed's seven XGBoost hyperparameters plus the decision ``threshold``: the
study maximises F1, and F1 at the default 0.5 threshold leaves most of what tuning can gain
on the table. With 40% positives the F1-optimal threshold of a calibrated model is half the
best F1 (Lipton et al., 2014: about 0.39 here), and it moves validation and test F1 by ~2%,
where the seven boosting hyperparameters move them by less than the noise of a 3,060-sample
validation set (docs/BENCHMARKS.md, "The reference demo"). Log-loss, which the pruner judges
on, does not depend on the threshold, so pruning ranks the probabilities and the study picks
the threshold. The model a trial logs applies its threshold (a scikit-learn
``FixedThresholdClassifier`` around the fitted booster), so ``predict`` of a loaded champion
decides exactly as the trial was scored.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from trial_worker.tune import loguniform, randint, uniform

FEATURES = (
    "FIXED_ACIDITY", "VOLATILE_ACIDITY", "CITRIC_ACID", "RESIDUAL_SUGAR", "CHLORIDES", "FREE_SULFUR_DIOXIDE",
    "TOTAL_SULFUR_DIOXIDE", "DENSITY", "PH", "SULPHATES", "ALCOHOL",
)


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def generate(n_samples: int = 20000, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 11) and the binary QUALITY label, drawn in the seed's order."""
    rng = np.random.RandomState(seed)
    columns = [
        rng.normal(7.0, 1.5, n_samples), rng.gamma(2, 0.2, n_samples), rng.beta(2, 5, n_samples),
        rng.lognormal(1, 0.8, n_samples), rng.gamma(3, 0.02, n_samples), rng.normal(30, 15, n_samples),
        rng.normal(120, 40, n_samples), rng.normal(0.997, 0.003, n_samples), rng.normal(3.2, 0.3, n_samples),
        rng.gamma(4, 0.15, n_samples), rng.normal(10.5, 1.5, n_samples),
    ]
    x = np.column_stack(columns)

    def z(name: str) -> np.ndarray:
        column = x[:, FEATURES.index(name)]
        return (column - column.mean()) / column.std(ddof=1)  # pandas' std, as in the seed

    score = 0.3 * z("ALCOHOL") + 0.2 * z("CITRIC_ACID") - 0.25 * z("VOLATILE_ACIDITY") + 0.15 * z("SULPHATES")
    score = score + rng.normal(0, 0.3, n_samples)
    return x, (score > np.quantile(score, 0.6)).astype(int)


def split(n_samples: int = 5000, seed: int = 42) -> Split:
    """The seed's split without its held-out test part: 85% x 82% train, 85% x 18% validation."""
    from sklearn.model_selection import train_test_split

    x, y = generate(n_samples, seed)
    x_temp, _, y_temp, _ = train_test_split(x, y, test_size=0.15, random_state=42, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_temp, y_temp, test_size=0.18, random_state=42,
                                                      stratify=y_temp)
    return Split(x_train, y_train, x_val, y_val)


@dataclass(frozen=True)
class Dataset:
    """The seed's splits (70% train, 15% validation, 15% held-out test), standard-scaled as there."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def digest(self) -> str:
        """A content digest of the training and validation data (recorded as the runs' dataset input)."""
        hasher = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val):
            hasher.update(np.ascontiguousarray(array).tobytes())
        return hasher.hexdigest()[:16]


@functools.cache
def dataset(n_samples: int = 20000, seed: int = 42) -> Dataset:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = generate(n_samples, seed)
    x_temp, x_test, y_temp, y_test = train_test_split(x, y, test_size=0.15, random_state=42, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_temp, y_temp, test_size=0.18, random_state=42,
                                                      stratify=y_temp)
    scaler = StandardScaler().fit(x_train)
    return Dataset(scaler.transform(x_train), y_train, scaler.transform(x_val), y_val, scaler.transform(x_test),
                   y_test)


# The seed's search space and baseline, plus the decision threshold (the module docstring says why).
SEARCH_SPACE: dict[str, Any] = {
    "n_estimators": randint(50, 300),
    "max_depth": randint(3, 15),
    "learning_rate": loguniform(0.01, 0.3),
    "subsample": uniform(0.5, 1.0),
    "colsample_bytree": uniform(0.5, 1.0),
    "gamma": uniform(0.0, 0.5),
    "min_child_weight": randint(1, 10),
    "threshold": uniform(0.2, 0.6),
    "random_state": 42,
}
# The seed's baseline decides at 0.5, as XGBClassifier.predict does.
BASELINE_PARAMS: dict[str, Any] = {
    "n_estimators": 100, "max_depth": 6, "learning_rate": 0.1, "subsample": 0.8, "colsample_bytree": 0.8,
    "gamma": 0.1, "min_child_weight": 8, "threshold": 0.5, "random_state": 42,
}
DEFAULT_THRESHOLD = 0.5
# Rounds are the fidelity ASHA counts in (the demo's rungs: 100 and 300 rounds).
MAX_ROUNDS = 300


def fit(params: dict[str, Any], callbacks: list | None = None) -> Any:
    """The seed's XGBClassifier (one thread, since trials run side by side) trained on the training
    split, deciding at ``params["threshold"]`` (0.5 when absent, e.g. a study file without it)."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier
    from xgboost import XGBClassifier

    data = dataset()
    booster = {k: v for k, v in params.items() if k != "threshold"}
    model = XGBClassifier(**booster, n_jobs=1, tree_method="hist", eval_metric="logloss", callbacks=callbacks)
    # The validation set is watched only for the per-round reports.
    model.fit(data.x_train, data.y_train, eval_set=[(data.x_val, data.y_val)] if callbacks else None, verbose=False)
    model.set_params(callbacks=None)  # they hold the trial's connections: a saved model must not
    threshold = float(params.get("threshold", DEFAULT_THRESHOLD))
    return FixedThresholdClassifier(FrozenEstimator(model), threshold=threshold).fit(data.x_train, data.y_train)


def train(ctx) -> dict[str, float]:
    """One trial of the seed's ``train_function``: fit, report every round, log the model, score."""
    from trial_worker.integrations.sklearn import classification_metrics

    data = dataset()
    model = fit(ctx.params, callbacks=[ctx.xgboost_callback()])
    if ctx.run_id is not None:
        ctx.log_model(model)
    return classification_metrics(data.y_val, model.predict(data.x_val), model.predict_proba(data.x_val)[:, 1])
