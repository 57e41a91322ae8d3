"""Train the anomaly model of the industrial example: a logistic regression, in numpy.

Usage: python3 train.py > model.json

Healthy readings and faulty ones (overheating, a worn bearing) are drawn as readings.py
draws them, from a fixed seed; the features are scaled to zero mean and unit spread, and the
weights fitted by gradient descent. model.json beside this file is its output: the model the
Copier sends to every node.
"""

from __future__ import annotations

import json

import numpy as np

FEATURES = ("temperature_c", "vibration_mm_s", "current_a")
NORMAL = ((62.0, 1.5), (2.0, 0.3), (11.5, 0.5))


def samples(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    healthy = np.column_stack([rng.normal(m, s, 600) for m, s in NORMAL])
    hot = np.column_stack([rng.normal(m, s, 100) for m, s in NORMAL]) + [16.0, 0.0, 3.0]
    worn = np.column_stack([rng.normal(m, s, 100) for m, s in NORMAL])
    worn[:, 0] += 4.0
    worn[:, 1] *= 4.0
    x = np.vstack([healthy, hot, worn])
    y = np.concatenate([np.zeros(len(healthy)), np.ones(len(hot) + len(worn))])
    return x, y


def fit(x: np.ndarray, y: np.ndarray, steps: int = 3000, rate: float = 0.5) -> np.ndarray:
    z = np.column_stack([x, np.ones(len(x))])  # the last weight is the bias
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        w -= rate * z.T @ (p - y) / len(y)
    return w


def main() -> None:
    x, y = samples(np.random.default_rng(7))
    mean, std = x.mean(axis=0), x.std(axis=0)
    w = fit((x - mean) / std, y)
    model = {
        "name": "machine-health",
        "version": 1,
        "features": list(FEATURES),
        "mean": [round(float(v), 4) for v in mean],
        "std": [round(float(v), 4) for v in std],
        "weights": [round(float(v), 4) for v in w[:-1]],
        "bias": round(float(w[-1]), 4),
        "threshold": 0.5,
    }
    print(json.dumps(model, indent=2))


if __name__ == "__main__":
    main()
