"""Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall
Metric for Assessing Generative Models").

Each real feature gets a ball whose radius is the distance to its k-th nearest neighbour
among the other reals; the union of the balls estimates the manifold of real data.
Precision is the fraction of fakes inside at least one real ball (are the samples
realistic?); recall is the same with the roles swapped: the fraction of reals inside the
manifold of the fakes (does the generator cover the data?). Both lie in [0, 1]; k = 3 is
the paper's choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GankitError
from ._arrays import as_features, same_width

# Rows per distance block: a block is (rows, N) float64, so 2^23 entries = 64 MiB whatever
# N is (with the partition's copy and the boolean masks, under ~200 MiB at the peak);
# 10,000 x 10,000 runs as 12 blocks of 838 rows.
BLOCK_ENTRIES = 2 ** 23


def _sq_dists(x: np.ndarray, y: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (m, D), (n, D) -> (m, n), with y_sq = ||y||^2 (n,).

    ||x||^2 + ||y||^2 - 2 x.y turns the work into one matrix product. In float64 its
    rounding error is ~1e-16 ||x||^2, far below any gap between neighbour distances; in
    float32 (~1e-7 relative) it would be ~1e-4 for typical 2048-D features, enough to flip
    points near a ball's surface. Callers centre the data so the norms stay small.
    """
    d2 = x @ y.T
    # In place: one (m, n) array alive instead of three temporaries of that size.
    d2 *= -2.0
    d2 += (x * x).sum(axis=1)[:, None]
    d2 += y_sq[None, :]
    return np.maximum(d2, 0.0, out=d2)   # cancellation can leave -1e-16 for a point and itself


def _blocks(n_rows: int, n_cols: int):
    """Slices of about BLOCK_ENTRIES / n_cols rows covering range(n_rows)."""
    step = max(1, BLOCK_ENTRIES // max(n_cols, 1))
    return (slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step))


def knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    """(N, D) -> squared distance (N,) from each point to its k-th nearest other point."""
    x_sq = (x * x).sum(axis=1)
    radii = np.empty(len(x))
    for rows in _blocks(len(x), len(x)):
        d2 = _sq_dists(x[rows], x, x_sq)                           # (b, N)
        # The point itself is at distance 0 (set exactly, not left to rounding) and so
        # takes rank 0 of the sort; rank k is then the k-th neighbour excluding itself.
        # An exact duplicate is another point, and counts as a neighbour at distance 0.
        idx = np.arange(rows.start, rows.stop)
        d2[idx - rows.start, idx] = 0.0
        radii[rows] = np.partition(d2, k, axis=1)[:, k]
    return radii


def precision_recall(real_feats: Any, fake_feats: Any, k: int = 3) -> tuple[float, float]:
    """Real features (Nr, D) and fake features (Nf, D) -> (precision, recall) in [0, 1].

    Memory is bounded by blocks of BLOCK_ENTRIES distances (under ~200 MiB) whatever Nr and Nf;
    the fake-to-real distances are computed once and serve both directions.
    """
    real = as_features(real_feats, "real_feats", k + 1)
    fake = as_features(fake_feats, "fake_feats", k + 1)
    same_width(real, fake)
    if k < 1:
        raise GankitError(f"k must be at least 1, got {k}")
    # Distances do not change under a shift; centring keeps ||x||^2 small in _sq_dists.
    centre = real.mean(axis=0)
    real, fake = real - centre, fake - centre
    r_real, r_fake = knn_sq_radii(real, k), knn_sq_radii(fake, k)     # (Nr,), (Nf,)

    real_sq = (real * real).sum(axis=1)
    fake_in_real = np.zeros(len(fake), dtype=bool)     # precision: fake j in some real ball
    real_in_fake = np.zeros(len(real), dtype=bool)     # recall: real i in some fake ball
    for rows in _blocks(len(fake), len(real)):
        d2 = _sq_dists(fake[rows], real, real_sq)                  # (b, Nr)
        # Closed balls (<=), as in the paper: a point on another's k-NN sphere is inside.
        fake_in_real[rows] = (d2 <= r_real[None, :]).any(axis=1)
        real_in_fake |= (d2 <= r_fake[rows, None]).any(axis=0)
    return float(fake_in_real.mean()), float(real_in_fake.mean())
