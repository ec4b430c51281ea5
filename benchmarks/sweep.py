"""Search a model's training recipe by successive halving, scored on a validation split.

    python benchmarks/sweep.py --model dcgan                 # 5 CPU minutes per finalist
    python benchmarks/sweep.py --model vae --budget 120 --workers 2

Every candidate trains with `gankit train --validation 50`: the last 50 digits of each
class of the training split are kept out of training, and every score here compares 1,000
samples with those 500 digits (FID, precision, recall and class entropy from the dataset's
own classifier). The held-out split that docs/measurements/ reports on is never used here.

Rungs (successive halving, Jamieson & Talwalkar 2016): every candidate trains a short
screen of --screen steps, which also measures its speed; the best third (at least 2)
continues to half of --budget seconds of training, and the best two to the whole budget.
A run that continues resumes its checkpoint, so each rung only adds steps. --workers runs
train side by side, each on one thread (two single-thread runs use a 2-core machine
better than one run on two threads, and give each run the same speed).

Writes benchmarks/results/sweep-MODEL.csv (every candidate at every rung it reached: its
settings, steps, training seconds and scores) and prints the table; the winner's settings
are what the model's file should default to.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Candidate settings per model: flags of `gankit train`, on top of the model's current
# defaults. Each is a technique with published evidence (see docs/measurements/recipes.md for the sources); the
# first candidate is always "as the model stood" so that the sweep shows what changed.
EMA = 0.999   # a half-life of 693 steps: 22k images at batch 32
GAN_SPACE = [
    {},
    {"ema": EMA},
    {"ema": EMA, "augment": True},
    {"ema": EMA, "loss": "hinge", "spectral_norm": True, "beta1": 0.0, "beta2": 0.9},
    {"ema": EMA, "r1": 1.0, "beta1": 0.0, "beta2": 0.99},
    {"ema": EMA, "r1": 1.0, "beta1": 0.0, "beta2": 0.99, "augment": True},
    {"ema": EMA, "r1": 10.0, "beta1": 0.0, "beta2": 0.99},
    {"ema": EMA, "width": 64},
    {"ema": EMA, "batch_size": 64},
    {"ema": EMA, "lr_d": 4e-4, "lr_g": 1e-4},
    {"ema": EMA, "lr_d": 2e-4, "lr_g": 2e-4, "latent_dim": 64, "d_steps": 2},
    {"ema": EMA, "loss": "lsgan"},
]
# A second round around the first round's winner on dcgan (batch 64, EMA): larger
# batches, and what the first round could not judge at its short screen.
GAN_ROUND2 = [
    {"ema": EMA, "batch_size": 128},
    {"ema": EMA, "batch_size": 64, "augment": True},
    {"ema": EMA, "batch_size": 64, "lr_g": 4e-4, "lr_d": 4e-4},
    {"ema": EMA, "batch_size": 64, "loss": "hinge", "spectral_norm": True, "beta1": 0.0, "beta2": 0.9},
]
SPACES = {
    "dcgan": GAN_SPACE + GAN_ROUND2,
    "cgan": GAN_SPACE + [{"ema": EMA, "projection": True}] + GAN_ROUND2,
    "wgan-gp": [
        {},
        {"ema": EMA},
        {"ema": EMA, "d_steps": 2},
        {"ema": EMA, "lr_g": 2e-4, "lr_d": 2e-4},
        {"ema": EMA, "augment": True},
        {"ema": EMA, "width": 64},
    ],
}
AE_SPACE = [
    {},
    {"density": 10},
    {"density": 10, "latent_dim": 8},
    {"density": 10, "latent_dim": 32},
    {"density": 10, "width": 64},
    {"density": 10, "batch_size": 64},
    {"density": 10, "lr": 2e-3},
]
VAE_SPACE = AE_SPACE + [
    {"density": 10, "beta": 0.5},
    {"density": 10, "latent_dim": 32, "beta": 0.5},
]
SPACES.update({"ae": AE_SPACE, "vae": VAE_SPACE, "cvae": VAE_SPACE})

FIELDS = ["rung", "id", "settings", "steps", "train_s", "fid_val", "precision", "recall",
          "class_entropy"]


def flags(settings: dict) -> list[str]:
    out = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False:
            out.append("--no-" + key.replace("_", "-"))
        else:
            out += [flag, str(value)]
    return out


def train(run: Path, model: str, settings: dict, steps: int, data: str, validation: int,
          resume: bool) -> float:
    """Train (or continue) RUN to `steps`; returns its training seconds (metrics.csv)."""
    cmd = [sys.executable, "-m", "gankit", "train", "--out", str(run), "--steps", str(steps),
           "--threads", "1", "--quiet", "--offline"]
    if resume:
        cmd.append("--resume")
    else:
        cmd += ["--model", model, "--data", data, "--validation", str(validation),
                "--sample-every", "1000000", "--checkpoint-every", "1000000", *flags(settings)]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return float(rows[-1]["seconds"])


class Scorer:
    """Scores a run's samples against the validation split (built once)."""

    def __init__(self, data: str, validation: int, n: int):
        from gankit.config import DataConfig
        from gankit.data import load_data, split_validation
        from gankit.evaluate import get_extractor, reference_from
        cfg = DataConfig(data=data, offline=True)
        _, val = split_validation(load_data(cfg), validation)
        extractor = get_extractor("classifier", cfg, list(val.class_names), progress=False)
        self.ref = reference_from(extractor, val.images, f"validation split, {len(val):,} images")
        self.n = n

    def __call__(self, run: Path) -> dict:
        import torch

        import gankit
        from gankit.evaluate import draw, score
        model = gankit.load(run)
        gen = torch.Generator().manual_seed(0)
        r = score(self.ref, draw(lambda k: model.sample(k, generator=gen), self.n))
        return {"fid_val": r["fid"], "precision": r["precision"], "recall": r["recall"],
                "class_entropy": r.get("class_entropy", float("nan"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(SPACES))
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--budget", type=float, default=300, help="training seconds of a finalist")
    ap.add_argument("--screen", type=int, default=1500, help="steps of the first rung")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--validation", type=int, default=50, help="images per class held out")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--only", type=int, nargs="+", help="candidate ids to run (default: all)")
    ap.add_argument("--out", default="runs/sweep")
    ap.add_argument("--table", default=None, help="CSV to write (default: "
                    "benchmarks/results/sweep-MODEL[-DATA].csv)")
    args = ap.parse_args()

    space = SPACES[args.model]
    ids = args.only or list(range(len(space)))
    out = Path(args.out) / (args.model if args.data == "mnist" else f"{args.model}-{args.data}")
    suffix = "" if args.data == "mnist" else f"-{args.data}"
    table = Path(args.table or ROOT / "benchmarks" / "results" / f"sweep-{args.model}{suffix}.csv")
    table.parent.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(args.data, args.validation, args.samples)
    rows: list[dict] = []
    speed: dict[int, float] = {}   # seconds per step, from the screen

    def step(rung: int, i: int, steps: int) -> dict:
        run = out / f"c{i:02d}"
        if rung == 0 and run.exists():
            import shutil
            shutil.rmtree(run)
        seconds = train(run, args.model, space[i], steps, args.data, args.validation, rung > 0)
        speed.setdefault(i, seconds / steps)
        row = {"rung": rung, "id": i, "settings": json.dumps(space[i]), "steps": steps,
               "train_s": round(seconds, 1), **scorer(run)}
        print(f"rung {rung} c{i:02d} {steps:6d} steps {seconds:6.0f} s  FID {row['fid_val']:7.2f}  "
              f"P {row['precision']:.3f} R {row['recall']:.3f}  {space[i]}", flush=True)
        return row

    def write() -> None:
        with open(table, "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                        for r in rows)

    alive = ids
    budgets = [None, args.budget / 2, args.budget]
    keep = [max(2, math.ceil(len(ids) / 3)), 2]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        for rung, seconds in enumerate(budgets):
            jobs = [(i, args.screen if seconds is None else max(args.screen, round(seconds / speed[i])))
                    for i in alive]
            results = list(pool.map(lambda job: step(rung, *job), jobs))
            rows += results
            write()
            results.sort(key=lambda r: r["fid_val"])
            if rung < len(keep):
                alive = [r["id"] for r in results[:keep[rung]]]
    best = min((r for r in rows if r["rung"] == len(budgets) - 1), key=lambda r: r["fid_val"])
    print(f"\nsweep of {args.model}: {len(ids)} candidates, {time.perf_counter() - t0:.0f} s wall; "
          f"table in {table}")
    print(f"best: c{best['id']:02d} {best['settings']} at {best['steps']} steps "
          f"({best['train_s']:.0f} s): validation FID {best['fid_val']:.2f}")


if __name__ == "__main__":
    main()
