"""Frechet distance between two sets of features: FID (Heusel et al. 2017, "GANs Trained
by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium").

Each set is summarised by the Gaussian with its mean and covariance, and the distance is
the squared 2-Wasserstein distance between the two Gaussians:

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

Lower is better; 0 for identical statistics. The value depends on the feature extractor
and on the sample sizes (it is biased upward for small N), so compare numbers only when
both are the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GankitError
from ._arrays import as_features, same_width


def feature_stats(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) -> mean (D,) and unbiased covariance (D, D), float64.

    Unbiased (divides by N - 1) like the reference FID code's np.cov(rowvar=False), so
    that statistics cached by other tools can be mixed with these.
    """
    x = as_features(feats, min_rows=2)
    # atleast_2d: np.cov of a single feature column is a 0-d array.
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (D, D) via its eigendecomposition."""
    w, v = np.linalg.eigh(s)
    # Rounding leaves eigenvalues of a singular covariance (N <= D, or duplicated features)
    # at about -1e-15 * ||S||; they are 0, not imaginary.
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); mu (D,), sigma (D, D).

    Tr((S1 S2)^(1/2)) is computed without a general matrix square root: with R = S1^(1/2),
    S1 S2 = R (R S2) has the same eigenvalues as (R S2) R = R S2 R, which is symmetric
    PSD, and the trace of the principal square root is the sum of the square roots of the
    eigenvalues. So we need two symmetric eigendecompositions (np.linalg.eigh), whose
    eigenvalues are real by construction; the tiny negative ones that rounding leaves on a
    singular matrix are clipped to 0. scipy.linalg.sqrtm, as the reference code uses it,
    works on the non-symmetric product S1 S2 through a complex Schur form: on nearly
    singular covariances it returns complex values or non-finite entries, which that code
    papers over by dropping the imaginary part and retrying with eps * I added to both
    covariances (which changes the answer).
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise GankitError(f"statistics do not match: means {mu1.shape} and {mu2.shape}, "
                          f"covariances {s1.shape} and {s2.shape}; expected (D,) and (D, D) "
                          "from the same feature extractor")
    root1 = _psd_sqrt(s1)
    m = root1 @ s2 @ root1
    m = (m + m.T) / 2          # symmetric in exact arithmetic; make it so in floating point
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(m), 0.0, None)).sum()
    diff = mu1 - mu2
    # Not clipped at 0: for identical statistics rounding may give -1e-13, and hiding that
    # would also hide a real bug that made the value negative.
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid(feats_a: Any, feats_b: Any) -> float:
    """FID between two feature sets (Na, D) and (Nb, D); symmetric in its arguments."""
    a, b = as_features(feats_a, "feats_a", 2), as_features(feats_b, "feats_b", 2)
    same_width(a, b)
    return frechet_distance(*feature_stats(a), *feature_stats(b))
