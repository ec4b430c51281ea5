"""Datasets: every source returns the same in-memory ImageData.

Images stay uint8 (N, C, H, W) in memory (on the training device when it fits); the trainer
draws batches by index and scales them to [-1, 1] per batch, so there are no DataLoader
worker processes and no per-image Python on the hot path.
"""

from __future__ import annotations

from .image_data import ImageData, to_float, to_uint8
from .sources import SOURCES, dataset_names, describe, load_data, split_validation

__all__ = ["ImageData", "to_float", "to_uint8", "SOURCES", "dataset_names", "describe",
           "load_data", "split_validation"]
