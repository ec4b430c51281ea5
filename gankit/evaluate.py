"""Evaluation takes a sampler, not a model: images in, numbers out.

Features of generated images (from gankit's own classifier trained on the dataset, or
optionally Inception) are compared with those of the dataset's training split: FID, KID,
an Inception-Score analogue, precision/recall, and the predicted-class histogram with its
entropy as a mode-collapse alarm. Every result names its extractor and sample sizes,
because numbers from different extractors or sizes are not comparable.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .config import DataConfig
from .data import ImageData, to_uint8
from .errors import GankitError, option
from .files import npy_images
from .metrics import (class_entropy, class_histogram, collapse_alarm, feature_stats,
                      frechet_distance, inception_score, kid, precision_recall)
from .progress import Progress, bar as progress_bar

FEATURES = ("classifier", "inception")
SAMPLE_BATCH = 500


@dataclass
class Extractor:
    """images uint8 (N, C, H, W) -> (features (N, D), class probabilities (N, K) or None)."""
    describe: str
    fn: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray | None]]
    image_shape: tuple[int, int, int] | None   # None: takes any size (Inception resizes)
    class_names: list[str]
    # KID's polynomial kernel (x.y / d + 1)^3 was set for Inception features (Binkowski et
    # al. 2018), whose x.y / d is below 1. The classifier's 128-d ReLU features have norms
    # near 46, so x.y / d is near 16, the kernel near 5,000, and KID's noise swamps it
    # (real vs real: 3.8 +- 4.2). Scaling both sets by one constant, fixed by the
    # reference so its features have unit mean square per dimension, keeps the kernel's
    # intended range; Inception features are left as published.
    rescale_for_kid: bool = False


@dataclass
class Reference:
    """The real side, extracted once: the training split's features and statistics."""
    extractor: Extractor
    feats: np.ndarray
    stats: tuple[np.ndarray, np.ndarray]
    held_out: ImageData
    description: str

    @property
    def kid_scale(self) -> float:
        if not self.extractor.rescale_for_kid:
            return 1.0
        return float(1 / np.sqrt(np.mean(np.sum(self.feats.astype(np.float64) ** 2, 1)) / self.feats.shape[1]))


def get_extractor(kind: str, data_cfg: DataConfig, class_names: list[str],
                  device: str | torch.device = "cpu", progress: Progress = True) -> Extractor:
    if kind == "inception":
        from .metrics.inception import inception_extractor
        fn = inception_extractor(device)
        return Extractor("torch-fidelity InceptionV3 (pool3, 2048-d; ImageNet weights)",
                         lambda x: tuple(None if a is None else np.asarray(a) for a in fn(x)),
                         None, [])
    if kind != "classifier":
        raise GankitError(f"unknown {option('features')} {kind!r}: use {' or '.join(FEATURES)}")
    from .metrics.feature_network import describe_extractor, load_or_train
    net, info = load_or_train(data_cfg, progress=progress)
    net = net.to(device)

    def extract(images):
        feats, probs = net.features_and_probs(images)
        return feats.numpy(), probs.numpy()
    return Extractor(describe_extractor(info), extract, tuple(net.image_shape), class_names,
                     rescale_for_kid=True)


def check_shape(images: tuple[int, ...], reference: tuple[int, ...]) -> None:
    """Images of the reference data's (C, H, W), or one line naming both."""
    if tuple(images) != tuple(reference):
        raise GankitError(f"images are {tuple(images)} (C, H, W) but the reference data is "
                          f"{tuple(reference)}: evaluate against the dataset the images "
                          f"imitate ({option('data')})")


def prepare(data_cfg: DataConfig, features: str = "classifier", device: str | torch.device = "cpu",
            progress: Progress = True, max_real: int | None = None, seed: int = 0,
            images_shape: tuple[int, ...] | None = None) -> Reference:
    """The extractor (trained and cached on first use) and the training split's features.

    `max_real` caps the real images (a seeded subset): Inception on 60,000 images is hours
    on a CPU, while gankit's classifier takes seconds. `images_shape`: the (C, H, W) of the
    images to be scored, refused before a first use trains the classifier for nothing.
    """
    from .data.reference import reference_split
    train, held_out, description = reference_split(data_cfg)
    if images_shape is not None and features == "classifier":
        check_shape(images_shape, tuple(train.images.shape[1:]))
    # Building (or training) the extractor draws from torch's global RNG (layer init); a
    # training run that evaluates must take the same steps as one that does not.
    with torch.random.fork_rng(devices=[]):
        extractor = get_extractor(features, data_cfg, list(train.class_names), device, progress)
    images = train.images
    if max_real is not None and len(images) > max_real:
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:max_real]
        images = images[keep]
        description += f" (a seeded {max_real:,} of them)"
    feats, _ = extractor.fn(images)
    return Reference(extractor, feats, feature_stats(feats), held_out, description)


def reference_from(extractor: Extractor, images: torch.Tensor, description: str,
                   held_out: ImageData | None = None) -> Reference:
    """A Reference whose real side is `images` (uint8), e.g. a validation split."""
    feats, _ = extractor.fn(images)
    empty = ImageData(images[:0])
    return Reference(extractor, feats, feature_stats(feats), held_out or empty, description)


def score(ref: Reference, images: torch.Tensor, seed: int = 0, full: bool = True) -> dict[str, Any]:
    """Scores of `images` (uint8 (N, C, H, W), or float in [-1, 1]) against `ref`.

    `full=False` computes only FID and the class entropy (the in-training numbers).
    """
    ex = ref.extractor
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    if ex.image_shape is not None:
        check_shape(tuple(images.shape[1:]), ex.image_shape)
    # A seeded shuffle: the IS analogue scores consecutive groups, and a held-out split or
    # a per-class grid comes sorted by class.
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    feats, probs = ex.fn(images[order])
    out: dict[str, Any] = {"fid": frechet_distance(*feature_stats(feats), *ref.stats)}
    if probs is not None:
        counts = class_histogram(probs, probs.shape[1])
        out["class_entropy"] = class_entropy(counts)
        out["class_counts"] = counts.tolist()
        out["alarm"] = collapse_alarm(counts, ex.class_names or None)
    if not full:
        return out
    n = len(feats)
    c = ref.kid_scale
    out["kid_mean"], out["kid_std"] = kid(ref.feats * c, feats * c,
                                          subset_size=min(1000, n, len(ref.feats)), seed=seed)
    if probs is not None:
        out["is_mean"], out["is_std"] = inception_score(probs, splits=min(10, n))
        out["is_max"] = probs.shape[1]
    # Precision and recall compare equal numbers (as Kynkaanniemi et al. do): a seeded
    # subset of the real features the size of the fake set.
    rng = np.random.default_rng(seed)
    real = ref.feats[rng.permutation(len(ref.feats))[:n]] if len(ref.feats) > n else ref.feats
    out["precision"], out["recall"] = precision_recall(real, feats, k=3)
    out.update(n_real=len(ref.feats), n_fake=n, n_real_pr=len(real),
               extractor=ex.describe, reference=ref.description,
               held_out=not ref.held_out.trained_on_held_out)
    return out


def read_images(path: str, ref: Reference) -> torch.Tensor:
    """A folder (resized to the reference's size) or a .npy of uint8 images, as (N, C, H, W)."""
    from .data.folder import load_folder

    shape = ref.extractor.image_shape or tuple(ref.held_out.images.shape[1:])
    if Path(path).is_dir():
        return load_folder(path, image_size=shape[1], channels=shape[0]).images
    return npy_images(path)


def draw(sample: Callable[[int], torch.Tensor], n: int, progress: Progress = False) -> torch.Tensor:
    """n images from `sample(k) -> images` (float in [-1, 1] or uint8), in batches, as uint8."""
    parts, done = [], 0
    with progress_bar(progress, total=n, desc="sampling", unit="img") as bar:
        while done < n:
            k = min(SAMPLE_BATCH, n - done)
            x = sample(k)
            parts.append((x if x.dtype == torch.uint8 else to_uint8(x)).cpu())
            done += k
            bar.update(k)
    return torch.cat(parts)


def score_model(model, ref: Reference, n: int | None = None, seed: int = 0,
                progress: Progress = False, truncation: float = 1.0,
                reject: float | None = None) -> dict[str, Any]:
    """Scores of n samples of `model` (default: as many as the held-out split, so they
    compare with the reference floor), drawn with `seed` (and `truncation`, and
    discriminator rejection sampling at percentile `reject`)."""
    gen = torch.Generator().manual_seed(seed)
    sample = lambda k: model.sample(k, generator=gen, truncation=truncation)   # noqa: E731
    if reject is not None:
        from .rejection import rejection_sampler
        sample = rejection_sampler(model, gen, reject, truncation=truncation)
    images = draw(sample, n or len(ref.held_out), progress)
    with progress_bar(progress, total=1, desc="scoring", unit="step") as bar:
        result = score(ref, images, seed=seed)
        bar.update(1)
    return result


class InTraining:
    """FID and class entropy of a model's samples, for `--eval-every`.

    Draws exactly what `gankit eval --checkpoint` draws (seed 0, the same batches), so the
    FID in metrics.csv is the one `gankit eval` reports for that step's weights. Sampling
    uses its own generator: evaluating does not move the training run's RNG.
    """

    def __init__(self, data_cfg: DataConfig, n: int | None, device, progress: bool = True):
        self.ref = prepare(data_cfg, "classifier", device, progress)
        self.n = n or len(self.ref.held_out)

    def describe(self) -> dict[str, Any]:
        return {"extractor": self.ref.extractor.describe, "reference": self.ref.description,
                "n_real": len(self.ref.feats), "n_fake": self.n}

    def __call__(self, model) -> dict[str, float]:
        gen = torch.Generator().manual_seed(0)
        images = draw(lambda k: model.sample(k, generator=gen), self.n)
        result = score(self.ref, images, full=False)
        return {k: result[k] for k in ("fid", "class_entropy") if k in result}


def save_result(checkpoint: str | Path, result: dict[str, Any], **settings: Any) -> Path | None:
    """Keep an evaluation of a run's checkpoint in its run folder, as RUN/eval.json (written
    atomically): which checkpoint and step, the settings (`features`, `seed`, `ema`), and the
    result, whose `extractor`, `n_real` and `n_fake` say what its numbers mean. The page's
    FID column reads it. Returns the file, or None for a checkpoint outside a run folder."""
    from .training import checkpoint as ckpt
    from .training.run_folder import RunPaths
    from .files import write_bytes
    file = ckpt.resolve(checkpoint)
    paths = RunPaths(file.parent.parent)
    if file.parent != paths.checkpoints:
        return None
    record = {"checkpoint": file.name, "step": ckpt.read_meta(file).get("step"), **settings,
              "when": time.strftime("%Y-%m-%d %H:%M:%S"), **finite(result)}
    path = paths.evaluation
    write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
    return path


def format_table(result: dict[str, Any], title: str) -> str:
    """The human table `gankit eval` prints."""
    lines = [title, f"features:  {result['extractor']}",
             f"reference: {result['reference']}",
             f"n_real {result['n_real']:,}  n_fake {result['n_fake']:,}"
             f"  (precision/recall on {result['n_real_pr']:,} real)", ""]
    rows = [("FID", f"{result['fid']:.3f}", "lower is better; 0 = same feature statistics"),
            ("KID", f"{result['kid_mean']:.5f} +- {result['kid_std']:.5f}", "lower is better")]
    if "is_mean" in result:
        rows.append(("IS (classifier)", f"{result['is_mean']:.3f} +- {result['is_std']:.3f}",
                     f"higher is better; at most {result['is_max']}"))
    rows += [("precision", f"{result['precision']:.3f}", "fakes that look real (fidelity)"),
             ("recall", f"{result['recall']:.3f}", "reals the fakes cover (diversity)")]
    if "class_entropy" in result:
        rows.append(("class entropy", f"{result['class_entropy']:.3f}",
                     "1 = every class equally often; low = mode collapse"))
    width = max(len(r[1]) for r in rows)
    lines += [f"{name:16s} {value:>{width}s}   {note}" for name, value, note in rows]
    if "class_counts" in result:
        lines.append("classes: " + "  ".join(f"{k}:{c}" for k, c in enumerate(result["class_counts"])))
    if result.get("alarm"):
        lines.append(f"ALARM: {result['alarm']}")
    if result.get("held_out") is False:
        lines.append("NOT HELD OUT: the model trained on the held-out images too "
                     "(--no-hold-out), so these numbers cannot tell memorising from learning")
    return "\n".join(lines)


def finite(value: Any) -> Any:
    """JSON-safe copy (NaN and inf as None), through nested dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
