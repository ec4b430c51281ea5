"""The registered datasets and how a `--data` value becomes a dataset: a name, a CSV table
or a folder of images."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

import torch

from ..errors import GankitError, did_you_mean, option
from .image_data import ImageData

if TYPE_CHECKING:
    from ..config import DataConfig


# --- sources ----------------------------------------------------------------------------
# Each source module is imported only when used: reading MNIST must not import Pillow's
# plugins, and gankit.config stays free of gankit.data.

def _mnist(cfg: DataConfig) -> ImageData:
    from .mnist import load_mnist
    return load_mnist(cfg)


def _fashion_mnist(cfg: DataConfig) -> ImageData:
    from .mnist import load_fashion_mnist
    return load_fashion_mnist(cfg)


# name -> loader taking a DataConfig; a new source is one module and one line here
SOURCES: dict[str, Callable[[DataConfig], ImageData]] = {
    "mnist": _mnist,
    "fashion-mnist": _fashion_mnist,
}


def dataset_names() -> list[str]:
    return list(SOURCES)


def describe(name: str) -> str:
    """One line on where a registered dataset would be read from."""
    from .mnist import IDX_SOURCES, describe as describe_idx
    return describe_idx(name) if name in IDX_SOURCES else ""


def split_validation(data: ImageData, per_class: int) -> tuple[ImageData, ImageData]:
    """(training part, validation part): the last `per_class` images of each class (of an
    unlabelled set: the last `per_class` images) go to validation. The last ones, in the
    file's order, so that the split depends on nothing but the data and N."""
    if not isinstance(data, ImageData):
        if per_class > 0:
            raise GankitError(f"{option('validation')} holds out images per class; a table has "
                              f"none: drop {option('validation')}")
        return data, None
    if per_class <= 0:
        return data, data.subset(torch.zeros(len(data), dtype=torch.bool), " (validation)")
    held = torch.zeros(len(data), dtype=torch.bool)
    groups = ([torch.arange(len(data))] if data.labels is None else
              [torch.nonzero(data.labels == k).view(-1) for k in range(data.num_classes)])
    for members in groups:
        if len(members) <= per_class:
            raise GankitError(f"{option('validation', per_class)} would leave no training image "
                              f"of a class with {len(members)}: pass a smaller N")
        held[members[-per_class:]] = True
    train = data.subset(~held)
    train.held_out, train.trained_on_held_out = data.held_out, data.trained_on_held_out
    return train, data.subset(held, " (validation)")


def load_data(cfg: DataConfig) -> ImageData:
    """A registered dataset's training split, else a CSV table (for the imputers), else a
    folder of images less the ones evaluation holds out (data/split.py; all of them with
    cfg.hold_out False, or None: a run saved before folders held images out)."""
    if cfg.data in SOURCES:
        if cfg.hold_out is False:
            raise GankitError(f"{option('hold_out', False)} is for folders of images: "
                              f"{cfg.data} holds out its own test files, which training never "
                              f"reads; drop {option('hold_out', False)}")
        return SOURCES[cfg.data](cfg)
    path = os.path.expanduser(cfg.data)
    if path.lower().endswith(".csv"):
        from .table import load_table
        return load_table(path)
    if os.path.isdir(path):
        from .folder import load_folder
        from .split import hold_out
        return hold_out(load_folder(path, cfg.image_size, cfg.channels), not cfg.hold_out)
    if os.path.exists(path):
        raise GankitError(f"{cfg.data} is a file, not a folder of images: pass the folder "
                          f"or one of {', '.join(dataset_names())}")
    looks_like_path = os.sep in cfg.data or "/" in cfg.data or cfg.data.startswith((".", "~"))
    hint = " (no such folder)" if looks_like_path else did_you_mean(cfg.data, dataset_names())
    raise GankitError(f"unknown dataset {cfg.data!r}{hint}: use one of "
                      f"{', '.join(dataset_names())} or a folder of images")
