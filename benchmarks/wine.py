"""The wine-quality classification data of the reference workflow (shared/seeds/000_*),
generated exactly as there (numpy only, seed 42), with its train/validation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
