"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs").

KID is the squared maximum mean discrepancy (MMD^2) between the two feature
distributions under the polynomial kernel k(x, y) = (gamma x.y + coef0)^degree, with
the paper's defaults degree 3, gamma 1/D, coef0 1. Unlike FID it assumes no Gaussian
shape and its estimator is unbiased, so values from different sample sizes compare; it
is estimated on random subsets to bound the kernel matrices and to give a spread. Values
slightly below 0 are the unbiased estimator's noise around 0: the sets look alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GankitError
from ._arrays import as_features, same_width


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float,
                      coef0: float) -> np.ndarray:
    """(m, D), (n, D) -> kernel matrix (m, n)."""
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 from kernel matrices (m, m), (n, n), (m, n) (Gretton et al. 2012, eq. 3).

    Within a set the pairs i = j are left out (k(x, x) is not a draw of k(x, x') for
    independent x, x'); across sets every pair counts, since x_i and y_j are independent.
    """
    m, n = k_xx.shape[0], k_yy.shape[0]
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


def kid(feats_a: Any, feats_b: Any, subsets: int = 100, subset_size: int = 1000,
        degree: int = 3, gamma: float | None = None, coef0: float = 1,
        seed: int = 0) -> tuple[float, float]:
    """KID between feature sets (Na, D) and (Nb, D) -> (mean, std) over `subsets` estimates.

    Each estimate draws subset_size rows of each set without replacement (subset_size is
    capped at min(Na, Nb)); the same seed gives the same draws and so the same numbers.
    std is the spread of the subset estimates (ddof 0, as torch-fidelity reports it), not
    the standard error of the mean.
    """
    a, b = as_features(feats_a, "feats_a", 2), as_features(feats_b, "feats_b", 2)
    same_width(a, b)
    if subsets < 1 or subset_size < 2:
        raise GankitError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and "
                          f"{subset_size}")
    m = min(subset_size, len(a), len(b))
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    rng = np.random.default_rng(seed)
    estimates = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]    # (m, D)
        y = b[rng.choice(len(b), m, replace=False)]    # (m, D)
        estimates[i] = mmd2_unbiased(polynomial_kernel(x, x, degree, gamma, coef0),
                                     polynomial_kernel(y, y, degree, gamma, coef0),
                                     polynomial_kernel(x, y, degree, gamma, coef0))
    return float(estimates.mean()), float(estimates.std())
