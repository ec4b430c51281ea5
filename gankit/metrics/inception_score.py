"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs").

IS = exp(E_x KL(p(y|x) || p(y))), where p(y|x) is a classifier's softmax for sample x
and p(y) its average over the samples. High when each sample is classified confidently
(low entropy of p(y|x)) and the classes are used evenly (high entropy of p(y)). gankit
applies it to its own dataset classifier's probabilities rather than Inception's 1,000
ImageNet classes: an Inception-Score analogue, comparable only between runs scored by
the same classifier. The exponent is the mutual information between x and y, at most
H(y) <= log K, so with K classes the score lies in [1, K]: 1 when every sample gets the
same prediction, K when predictions are one-hot and spread evenly over the K classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GankitError
from ._arrays import as_features


def _score(p: np.ndarray) -> float:
    """Probabilities (n, K) -> exp(mean KL(p(y|x) || p(y))) of that group."""
    p_y = p.mean(axis=0, keepdims=True)                                 # (1, K)
    # 0 log 0 = 0; where p(y|x) > 0, p(y) > 0 too, since p(y) averages p(y|x).
    # Both logs are taken of 1 where p(y|x) = 0, so those terms are exactly 0, not nan.
    log_ratio = np.log(np.where(p > 0, p, 1.0)) - np.log(np.where(p > 0, p_y, 1.0))   # (n, K)
    return float(np.exp((p * log_ratio).sum(axis=1).mean()))


def inception_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """Class probabilities (N, K), rows summing to 1 -> (mean, std) of IS over `splits`.

    As in the original protocol, the samples are cut into `splits` consecutive groups
    (sizes differ by at most one), p(y) is taken per group, and the mean and std (ddof 0)
    of the group scores are reported. Splitting lowers the score slightly for small groups,
    so compare numbers with the same N and splits.
    """
    p = as_features(probs, "probs", 1)
    if not 1 <= splits <= len(p):
        raise GankitError(f"splits must be between 1 and the number of samples ({len(p)}), "
                          f"got {splits}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise GankitError("probs must be class probabilities (rows >= 0 summing to 1); "
                          "apply softmax to the classifier's logits first")
    scores = np.array([_score(part) for part in np.array_split(p, splits)])
    return float(scores.mean()), float(scores.std())
