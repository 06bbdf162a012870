"""The reference for our class SVMs' solver: liblinear's L2-regularised hinge-loss dual solver
(`-s 3`, the one R-CNN calls), through scikit-learn's LinearSVC, on seeded overlapping data,
with R-CNN's positive weight 2 and a bias feature of 10. Writes tests/fixtures/svm/liblinear.json.

    .venv-ref/bin/python scripts/make_svm_fixture.py
"""

import json
import pathlib

import numpy as np
import sklearn
from sklearn.svm import LinearSVC

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/svm"


def main():
    rng = np.random.default_rng(12)
    n, d = 300, 5
    y = np.where(np.arange(n) % 3 == 0, 1, -1)
    x = rng.normal(size=(n, d)) + 0.8 * y[:, None] * np.array([1.0, 0.5, 0.0, -0.3, 0.2])
    x = x.astype(np.float32)
    c, positive_weight, bias_feature = 0.1, 2.0, 10.0
    svc = LinearSVC(
        loss="hinge",
        dual=True,
        C=c,
        class_weight={1: positive_weight, -1: 1.0},
        fit_intercept=True,
        intercept_scaling=bias_feature,
        tol=1e-10,
        max_iter=10_000_000,
    )
    svc.fit(x.astype(np.float64), y)
    w = svc.coef_[0]
    b = float(svc.intercept_[0])
    wb = b / bias_feature
    margins = x.astype(np.float64) @ w + b
    cost = np.where(y == 1, c * positive_weight, c)
    objective = 0.5 * (w @ w + wb * wb) + float(np.sum(cost * np.maximum(0, 1 - y * margins)))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "liblinear.json").write_text(
        json.dumps(
            {
                "made_by": f"scikit-learn {sklearn.__version__} LinearSVC(loss='hinge', dual=True), "
                "liblinear -s 3; scripts/make_svm_fixture.py",
                "c": c,
                "positive_weight": positive_weight,
                "bias_feature": bias_feature,
                "x": x.tolist(),
                "y": y.tolist(),
                "w": w.tolist(),
                "b": b,
                "objective": objective,
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
