"""The feature extractor behind gankit's FID, KID and precision/recall: a small CNN that
gankit trains itself on the dataset's labelled training split.

Why not Inception: the FID authors advise features from a network trained on the domain
when the images are far from ImageNet's (Heusel et al. 2017, the TTUR repository's notes
on MNIST), and 28x28 gray digits upscaled to 299x299 RGB are far from it. The price is
that numbers are comparable only between runs that use the same extractor, so every
extractor carries its identity: the SHA-256 of its weights file, what it was trained on
and its held-out accuracy (`describe_extractor`). The optional Inception backend is in
`gankit.metrics.inception`.

Training is deterministic on the CPU for a given seed and thread count, and the resulting
file holds no timestamps, so the same seed gives the same file and the same hash.

Cache: `<cache>/classifiers/<dataset-key>-seed<seed>.safetensors`, where `<cache>` is
$GANKIT_CACHE, else platformdirs' user cache folder for gankit. A damaged or stale file is
retrained with a one-line warning.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checkpoint_file
from ..data import ImageData, to_float
from ..data.reference import reference
from ..errors import GankitError, first_line, option
from ..files import cache_folder
from ..progress import Progress, bar as progress_bar
from ..runtime import configure_threads, default_threads, evaluating

if TYPE_CHECKING:
    from ..config import DataConfig

EXTRACTOR = "gankit-classifier"
FEATURE_DIM = 128
BATCH_SIZE = 128
LR = 2e-3
EVAL_BATCH = 500


# --- the network ------------------------------------------------------------------------

def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Classifier(nn.Module):
    """conv32 - pool - conv64 - pool - conv128 - avgpool 3x3 - fc128 (the features) - fcK.

    Images are (C, H, W) in [-1, 1]. The 3x3 adaptive pool makes the same layers serve 28,
    32 and 64 pixel sides; above 32 the first conv has stride 2 so the later layers see at
    most 32x32 (keeps 64x64 training within minutes on a CPU). BatchNorm speeds training
    up; features are always taken in eval mode, so they do not depend on the batch.
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, h, w = image_shape
        self.image_shape = (c, h, w)
        self.num_classes = num_classes
        first_stride = 2 if max(h, w) > 32 else 1
        self.body = nn.Sequential(
            *_conv(c, 32, first_stride), nn.MaxPool2d(2),       # 28 -> 14
            *_conv(32, 64), nn.MaxPool2d(2),                    # 14 -> 7
            *_conv(64, 128), nn.AdaptiveAvgPool2d(3),           # 7 -> 3
            nn.Flatten(),
            nn.Linear(128 * 9, FEATURE_DIM), nn.ReLU(inplace=True))
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))                          # (N, K) logits

    @torch.no_grad()
    def features_and_probs(self, images: torch.Tensor, batch_size: int = EVAL_BATCH
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """(feats (N, 128) float32, probs (N, K) float32) on the CPU, in eval mode, batched.

        `images`: uint8 (N, C, H, W) in [0, 255] or float in [-1, 1], on any device.
        """
        if images.ndim == 3 and self.image_shape[0] == 1:
            images = images.unsqueeze(1)                       # (N, H, W) gray
        if tuple(images.shape[1:]) != self.image_shape:
            raise GankitError(f"images of shape {tuple(images.shape[1:])} given to a classifier "
                              f"trained on {self.image_shape}: evaluate against the dataset "
                              f"the model was trained on")
        device = next(self.parameters()).device
        feats, probs = [], []
        with evaluating(self):
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].to(device)
                x = to_float(x) if x.dtype == torch.uint8 else x.float()
                f = self.body(x)
                feats.append(f.float().cpu())
                probs.append(F.softmax(self.head(f).float(), dim=1).cpu())
        if not feats:
            return torch.zeros(0, FEATURE_DIM), torch.zeros(0, self.num_classes)
        return torch.cat(feats), torch.cat(probs)


# --- training ---------------------------------------------------------------------------

def default_epochs(n: int) -> int:
    """About 180,000 image presentations (3 passes over 60,000), at most 10 passes: more
    gained nothing on the held-out split (measured: docs/guide/evaluation.md)."""
    return max(3, min(10, math.ceil(180_000 / max(n, 1))))


def train_classifier(data: ImageData, held_out: ImageData | None, seed: int = 0,
                     epochs: int | None = None, batch_size: int = BATCH_SIZE,
                     threads: int | None = None, progress: Progress = True,
                     max_steps: int | None = None, trained_on: str | None = None
                     ) -> tuple[Classifier, dict[str, Any]]:
    """Train on `data` (labelled), measure accuracy on `held_out`; CPU, deterministic.

    Same seed and thread count -> bit-identical weights. `max_steps` cuts training short
    (tests). Returns the net (eval mode) and its info; info["sha256"] is None until the net
    is saved (`save_classifier`).
    """
    if data.labels is None or data.num_classes < 2:
        raise GankitError(f"{data.name or 'the data'} has no class labels: the classifier "
                          "features need a labelled dataset (a folder with one subfolder per "
                          f"class), or use {option('features', 'inception')}")
    epochs = epochs or default_epochs(len(data))
    steps_per_epoch = math.ceil(len(data) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    threads = threads or default_threads()
    previous_threads = torch.get_num_threads()
    configure_threads(threads, torch.device("cpu"))
    try:
        with torch.random.fork_rng(devices=[]):     # leave the caller's global RNG alone
            torch.manual_seed(seed)
            net = Classifier(data.shape, data.num_classes)
            _fit(net, data, total, batch_size, seed, progress)
        net.eval()
        accuracy = evaluate_accuracy(net, held_out) if held_out is not None and len(held_out) else None
    finally:
        torch.set_num_threads(previous_threads)
    info = {
        "extractor": EXTRACTOR,
        "dataset": data.name,
        "trained_on": trained_on or f"{data.name}, {len(data):,} images",
        "n_train": len(data),
        "n_test": len(held_out) if held_out is not None else 0,
        "test_accuracy": accuracy,
        "seed": seed,
        "sha256": None,
        "feature_dim": FEATURE_DIM,
        "num_classes": data.num_classes,
        "image_shape": list(data.shape),
        "gankit_version": _version(),
        "torch_version": torch.__version__,
        "threads": threads,
        "epochs": epochs,
        "steps": total,
        "batch_size": batch_size,
    }
    return net, info


def _fit(net: Classifier, data: ImageData, total: int, batch_size: int, seed: int,
         progress: Progress) -> None:
    """Adam with a cosine decay of the learning rate to 0 over `total` steps."""
    from ..models.base import adam
    optimizer = adam(net.parameters(), LR, (0.9, 0.999))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    shuffle = torch.Generator().manual_seed(seed)
    net.train()
    bar = progress_bar(progress, total=total, desc="classifier", unit="step", dynamic_ncols=True)
    step = 0
    try:
        while step < total:
            order = torch.randperm(len(data), generator=shuffle)
            for start in range(0, len(order), batch_size):
                if step == total:
                    break
                index = order[start:start + batch_size]
                logits = net(to_float(data.images[index]))
                loss = F.cross_entropy(logits, data.labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
    finally:
        bar.close()


@torch.no_grad()
def evaluate_accuracy(net: Classifier, data: ImageData) -> float:
    """Fraction of `data` whose most probable class is its label."""
    _, probs = net.features_and_probs(data.images)
    return (probs.argmax(1) == data.labels).float().mean().item()


# --- cache ------------------------------------------------------------------------------

def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The argument, else $GANKIT_CACHE, else platformdirs' user cache folder for gankit."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    return cache_folder("GANKIT_CACHE")


def load_or_train(data_cfg: DataConfig, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                  progress: Progress = True, epochs: int | None = None
                  ) -> tuple[Classifier, dict[str, Any]]:
    """The classifier for `data_cfg`'s dataset: from the cache, else trained and cached.

    info["cached"] says which; info["sha256"] is the SHA-256 of the cache file's bytes,
    recomputed on every load. A non-default `epochs` gets its own cache file; a cached file
    made for other data, another seed or another number of epochs is retrained.
    """
    ref = reference(data_cfg)
    wanted = epochs or default_epochs(len(ref.train))
    suffix = "" if wanted == default_epochs(len(ref.train)) else f"-epochs{wanted}"
    path = cache_root(cache_dir) / "classifiers" / f"{ref.key}-seed{seed}{suffix}.safetensors"
    fingerprint = data_fingerprint(ref.train, ref.held_out)
    if path.is_file():
        try:
            net, info = load_classifier(path)
            if info.get("data_sha256") != fingerprint:
                raise GankitError("it was trained on other images")
            if info.get("seed") != seed:
                raise GankitError(f"it was trained with seed {info.get('seed')}")
            if info.get("epochs") != wanted:   # e.g. written by a gankit with other defaults
                raise GankitError(f"it was trained for {info.get('epochs')} epochs, not {wanted}")
            return net, {**info, "cached": True}
        except GankitError as e:
            warnings.warn(f"classifier cache {path} is unusable ({e}); retraining it", stacklevel=2)
    if progress:
        print(f"training the feature classifier on {ref.trained_on} (once; cached in "
              f"{path.parent})", file=sys.stderr)
    start = time.perf_counter()
    net, info = train_classifier(ref.train, ref.held_out, seed=seed, epochs=wanted,
                                 progress=progress, trained_on=ref.trained_on)
    info.update(dataset_key=ref.key, held_out=ref.description, data_sha256=fingerprint)
    info["sha256"] = save_classifier(net, info, path)
    return net, {**info, "path": str(path), "cached": False,
                 "train_seconds": round(time.perf_counter() - start, 1)}


def data_fingerprint(*parts: ImageData) -> str:
    """SHA-256 over the images and labels: a cache entry is valid only for the same data."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.images.contiguous().numpy().tobytes())
        if part.labels is not None:
            h.update(part.labels.contiguous().numpy().tobytes())
    return h.hexdigest()


# Stored in the file: everything in info that is a property of the weights. Not stored:
# sha256 (a file cannot hold its own hash), path, cached, timings (the same seed must give
# the same bytes).
_STORED = ("extractor", "dataset", "dataset_key", "trained_on", "held_out", "n_train", "n_test",
           "test_accuracy", "seed", "feature_dim", "num_classes", "image_shape",
           "gankit_version", "torch_version", "threads", "epochs", "steps", "batch_size",
           "data_sha256")


def save_classifier(net: Classifier, info: dict[str, Any], path: str | os.PathLike) -> str:
    """Write `path` atomically (gankit.checkpoint_file: safetensors + JSON header, no pickle);
    returns the SHA-256 of the written file.

    The metadata also records `weights_sha256`, a hash of the tensors themselves, which
    `load_classifier` checks: the header parser catches truncation, this catches flipped
    bytes inside the weights.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    meta = {k: info.get(k) for k in _STORED}
    meta["weights_sha256"] = _weights_hash(tensors)
    checkpoint_file.save(path, tensors, meta)
    return file_sha256(path)


def load_classifier(path: str | os.PathLike) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild a saved classifier (eval mode); any damage is a GankitError."""
    path = Path(path)
    tensors, meta = checkpoint_file.read(path)
    if meta.get("extractor") != EXTRACTOR:
        raise GankitError(f"{path} is a gankit checkpoint but not a feature classifier")
    if _weights_hash(tensors) != meta.get("weights_sha256"):
        raise GankitError("its weights do not match their recorded hash")
    try:
        net = Classifier(tuple(meta["image_shape"]), int(meta["num_classes"]))
        net.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise GankitError(f"its tensors do not fit the classifier ({first_line(e)})") from None
    net.eval()
    return net, {**meta, "sha256": file_sha256(path), "path": str(path)}


def _weights_hash(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def describe_extractor(info: dict[str, Any]) -> str:
    """One line naming the extractor, e.g. 'gankit-classifier sha256 1a2b3c4d5e6f (mnist
    train split, 60,000 images; held-out accuracy 99.1%)'."""
    sha = (info.get("sha256") or "unsaved")[:12]
    parts = [info.get("trained_on") or info.get("dataset") or "?"]
    if info.get("test_accuracy") is not None:
        parts.append(f"held-out accuracy {100 * info['test_accuracy']:.1f}%")
    return f"{info.get('extractor', EXTRACTOR)} sha256 {sha} ({'; '.join(parts)})"


def _version() -> str:
    from .._version import __version__
    return __version__
