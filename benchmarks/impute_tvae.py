"""TVAE as an imputer, screened on breast the way benchmarks/impute.py's *same table* setting
measures the others: 20% of cells missing completely at random, the model trained on the
corrupted table and filling it, RMSE over the missing cells after min-max scaling.

    python benchmarks/impute_tvae.py [--steps 3000 10000] [--corruptions 2]

One thread; each corruption's mask comes from a seeded generator of its own. A screen: the
other imputers' numbers on this setting are in docs/measurements/imputation.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", nargs="+", type=int, default=[3000, 10000])
    ap.add_argument("--corruptions", type=int, default=2)
    args = ap.parse_args()
    from sklearn.datasets import load_breast_cancer

    from gankit.data.table import table_data
    from gankit.filling import fill, train_table
    torch.set_num_threads(1)
    X = load_breast_cancer().data
    header = [f"c{j}" for j in range(X.shape[1])]
    for steps in args.steps:
        scores = []
        for c in range(args.corruptions):
            missing = np.random.default_rng(c).random(X.shape) < 0.2
            cells = [["" if missing[i, j] else repr(float(X[i, j])) for j in range(X.shape[1])]
                     for i in range(len(X))]
            data = table_data(header, cells, "breast")
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as run:
                trained = train_table("tvae", data, run, steps, 0, False, {"batch_size": 128})
                filled = fill(trained.model, data.values, 0)
            observed = np.where(missing, np.nan, X)
            lo, hi = np.nanmin(observed, 0), np.nanmax(observed, 0)
            scores.append(float(np.sqrt((((filled - (X - lo) / (hi - lo)))[missing] ** 2).mean())))
            print(f"tvae {steps} steps, corruption {c}: RMSE {scores[-1]:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        print(f"tvae {steps} steps: {np.mean(scores):.4f} ± {np.std(scores):.4f} "
              f"({len(scores)} corruptions)")


if __name__ == "__main__":
    main()
