"""Which classes a generator produces, as judged by a classifier: a histogram of predicted
classes, its normalised entropy, and an alarm for mode collapse (classes the generator
has stopped producing).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..errors import GankitError

# A class is "rare" below this fraction of its fair share N/K. For a uniform sample the
# count of a class is Binomial(N, 1/K): N = 10,000 and K = 10 give 1,000 +- 30, and the
# threshold 250 is 25 standard deviations below, so a fair generator never trips it while
# a class that gets under a quarter of its due is clearly missing. The threshold is at
# least 4 standard deviations below the mean once N/K >= 28 (1 - 1/K): about 30 samples
# per class; with fewer, chance alone can set the alarm off (the message then says so).
MIN_SHARE = 0.25
MIN_PER_CLASS = 30


def class_histogram(probs_or_labels: Any, num_classes: int) -> np.ndarray:
    """Class probabilities or logits (N, K), or integer labels (N,) -> counts (K,) int64.

    For (N, K) input the predicted class is the argmax of each row.
    """
    if isinstance(probs_or_labels, torch.Tensor):
        probs_or_labels = probs_or_labels.detach().cpu().numpy()
    x = np.asarray(probs_or_labels)
    if x.ndim == 2:
        if x.shape[1] != num_classes:
            raise GankitError(f"predictions have {x.shape[1]} columns for {num_classes} "
                              "classes; pass one column per class")
        labels = x.argmax(axis=1)
    elif x.ndim == 1:
        if x.size and (not np.issubdtype(x.dtype, np.integer) or x.min() < 0
                       or x.max() >= num_classes):
            raise GankitError(f"labels must be integers in [0, {num_classes}); "
                              "pass class indices or an (N, K) array of probabilities")
        labels = x
    else:
        raise GankitError(f"expected probabilities (N, K) or labels (N,), got shape {x.shape}")
    return np.bincount(labels.astype(np.int64), minlength=num_classes)


def class_entropy(counts: Any) -> float:
    """Counts (K,) -> entropy of the class frequencies / log K, in [0, 1].

    1 when every class is equally frequent, 0 when a single class has all the samples.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or len(c) < 2 or (c < 0).any() or c.sum() == 0:
        raise GankitError("counts must be a 1-D array of K >= 2 non-negative counts, not all 0")
    p = c[c > 0] / c.sum()          # 0 log 0 = 0
    return float((p * np.log(1.0 / p)).sum() / np.log(len(c)))   # log(1/p): no -0.0


def collapse_alarm(counts: Any, class_names: Sequence[str] | None = None) -> str | None:
    """Counts (K,) -> a message naming missing and rare classes, or None if all is well.

    The rule: the alarm fires when any class has fewer than MIN_SHARE (a quarter) of its
    fair share N/K of the N samples. See MIN_SHARE for why a quarter.
    """
    c = np.asarray(counts, dtype=np.int64)
    entropy = class_entropy(c)     # also validates counts
    n, k = int(c.sum()), len(c)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise GankitError(f"{len(names)} class names for {k} classes")
    fair = n / k
    missing = [names[i] for i in range(k) if c[i] == 0]
    rare = [f"{names[i]} ({c[i]:,})" for i in range(k) if 0 < c[i] < MIN_SHARE * fair]
    if not missing and not rare:
        return None
    parts = []
    if missing:
        parts.append(f"missing classes: {', '.join(missing)}")
    if rare:
        parts.append(f"rare classes (under a quarter of the fair share {fair:,.0f}): "
                     + ", ".join(rare))
    parts.append(f"class entropy {entropy:.3f} of 1 over {n:,} samples")
    message = "mode collapse: " + "; ".join(parts)
    if fair < MIN_PER_CLASS:
        message += (f" (only {fair:.1f} samples per class: under {MIN_PER_CLASS}, chance "
                    "alone can cause this; score more samples)")
    return message
