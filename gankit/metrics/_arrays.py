"""Turn whatever the caller holds (numpy array, torch tensor, list) into float64 features.

Every metric here works on features already extracted, so that any extractor plugs in
(gankit's own classifier, an Inception network, raw pixels). float64 throughout: the
metrics subtract large, nearly equal sums (a trace of covariances, kernel means), where
float32's 7 digits are not enough.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import GankitError


def as_features(x: Any, name: str = "features", min_rows: int = 1) -> np.ndarray:
    """Array-like (N, D) -> float64 numpy array (N, D), checked: 2-D, finite, N >= min_rows."""
    if isinstance(x, torch.Tensor):
        # detach: features straight from a network may still carry grad; double() before
        # numpy() because numpy has no bfloat16.
        x = x.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise GankitError(f"{name} must be a 2-D array (N samples, D features), got shape "
                          f"{a.shape}; flatten each sample's features into one row")
    if a.shape[0] < min_rows:
        raise GankitError(f"{name} has {a.shape[0]} samples, this metric needs at least "
                          f"{min_rows}; generate or load more samples")
    if not np.isfinite(a).all():
        raise GankitError(f"{name} contains NaN or infinite values; check the feature "
                          "extractor and the images fed to it")
    return a


def same_width(a: np.ndarray, b: np.ndarray) -> None:
    """Both sets must come from the same extractor: same feature dimension D."""
    if a.shape[1] != b.shape[1]:
        raise GankitError(f"the two feature sets have different dimensions ({a.shape[1]} and "
                          f"{b.shape[1]}); extract both with the same feature extractor")
