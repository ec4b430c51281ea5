"""Each model's default recipe, scored on the held-out split: 3 seeds, time to quality,
and a memorisation check.

    python benchmarks/recipes.py                            # every model, seeds 0 1 2
    python benchmarks/recipes.py --only dcgan cgan --seeds 0
    python benchmarks/recipes.py --data fashion-mnist --only dcgan cgan --out runs/recipes-fashion

Every run is plain `gankit train --model M --seed S` with the model's defaults (what a user
gets), plus --eval-every so that metrics.csv holds FID against training seconds (the same
FID `gankit eval` prints; its seconds include the evaluations, about 1 s each on the
offline digits). --workers runs train side by side on one thread each. Then:

- `gankit eval --checkpoint RUN --json` on each final checkpoint: mean +- std over seeds;
- time to quality: the best FID each run logged within 60 s and within 300 s, and a
  picture of FID against seconds (the seeds' mean, their range shaded);
- memorisation: each of 1,000 samples' pixel distance to its nearest training image, beside
  the held-out images' own distances to the training set. Samples much closer to the
  training images than held-out images are copies, not generations.

Writes OUT/recipes.json, benchmarks/results/recipes[-DATA].md and docs/time_to_quality[-DATA].png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EVALS_PER_RUN = 15
# The autoencoders as they stood before their recipes (the previous defaults, spelled out,
# and the step budgets an earlier table of docs/measurements/recipes.md used): for --before, which checks that
# the recipes' reconstructions are no worse.
BEFORE = {
    "ae": ["--steps", "3000", "--density", "1", "--batch-size", "32"],
    "vae": ["--steps", "3000", "--density", "0", "--latent-dim", "16", "--beta", "1",
            "--batch-size", "32"],
    "cvae": ["--steps", "3000", "--density", "0", "--batch-size", "32"],
}
WITHIN = (60, 300)
BUDGET_STEPS = 4500
# One change at a time from each recipe (--ablate): what each technique adds.
ABLATIONS = {
    "dcgan": [("without clusters", ("--clusters", "0")),
              ("20 clusters", ("--clusters", "20")),
              ("without ADA", ("--ada", "0")),
              ("hinge + spectral norm, Adam(2e-4, 0, 0.9) (the previous recipe's optimiser)",
               ("--loss", "hinge", "--spectral-norm", "--lr-g", "2e-4", "--lr-d", "2e-4",
                "--beta1", "0", "--beta2", "0.9")),
              ("RpGAN + R1 + R2 at 0.1, Adam(2e-4, 0, 0.99) (R3GAN's loss)",
               ("--loss", "rpgan", "--r1", "0.1", "--r2", "0.1", "--lr-g", "2e-4",
                "--lr-d", "2e-4", "--beta1", "0", "--beta2", "0.99"))],
}
SCORES = ("fid", "kid_mean", "precision", "recall", "class_entropy")


def default_length(model: str) -> tuple[int | None, str | None]:
    """(steps, budget) of the model's defaults: a budget leaves the steps to the run."""
    from gankit.api import make_config
    train = make_config(model).train
    return train.steps, train.budget


def gankit(*args: str, capture: bool = False) -> str:
    out = subprocess.run([sys.executable, "-m", "gankit", *args], check=True, cwd=ROOT,
                         capture_output=capture, text=True,
                         stdout=None if capture else subprocess.DEVNULL,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return out.stdout if capture else ""


def finished(run: Path) -> bool:
    """The run reached the step count it recorded (a budget's count, once known)."""
    done = run / "checkpoints" / "last.json"
    if not done.is_file():
        return False
    meta = json.loads(done.read_text())
    return meta.get("step") == meta["config"]["train"].get("steps")


def train_and_score(model: str, seed: int, data: str, out: Path, reuse: bool,
                    evals: int = EVALS_PER_RUN, flags: tuple[str, ...] = (),
                    name: str | None = None, sampling: dict | None = None) -> dict:
    run = out / (name or model) / f"seed{seed}"
    steps, budget = default_length(model)
    if "--steps" in flags:
        steps, budget = int(flags[flags.index("--steps") + 1]), None
    # A budget's count is known only once the run has timed itself: evaluate as if it held
    # BUDGET_STEPS steps (about what 4.5 minutes hold for a dcgan on one thread here).
    every = max(50, (steps or BUDGET_STEPS) // evals)
    if not (reuse and finished(run)):
        if run.exists():
            import shutil
            shutil.rmtree(run)
        gankit("train", "--model", model, "--data", data, "--seed", str(seed), "--out", str(run),
               "--eval-every", str(every), "--threads", "1", "--quiet", "--offline", *flags)
    result = json.loads(gankit("eval", "--checkpoint", str(run), "--json", "--offline",
                               *sampling_flags(own_sampling(model_class(model), sampling)),
                               capture=True))
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    curve = [(float(r["seconds"]), float(r["fid"])) for r in rows if r.get("fid")]
    steps = json.loads((run / "checkpoints" / "last.json").read_text())["step"]
    print(f"{name or model} seed {seed}: {steps} steps, {float(rows[-1]['seconds']):.0f} s, "
          f"FID {result['fid']:.2f} P {result['precision']:.3f} R {result['recall']:.3f}",
          flush=True)
    return {"model": name or model, "seed": seed, "steps": steps, "budget": budget,
            "seconds": float(rows[-1]["seconds"]), "curve": curve,
            **{k: result.get(k) for k in SCORES}}


def model_class(name: str):
    from gankit.models import get_model_class
    return get_model_class(name)


def parse_settings(pairs: list[str]) -> dict:
    """Sampling settings given as KEY=VALUE texts (--sampling; benchmarks' RUN@KEY=VALUE,...),
    valued as the API takes them: ["sample_steps=6", "solver=heun"] -> {"sample_steps": 6,
    "solver": "heun"}."""
    def value(text: str):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return {k: value(v) for k, v in (pair.split("=", 1) for pair in pairs if pair)}


def own_sampling(model, sampling: dict | None) -> dict:
    """The settings of `sampling` that `model` (a model class or a loaded model) has: a GAN
    has none, so one --sampling serves every model of a benchmark."""
    return {k: v for k, v in (sampling or {}).items() if k in model.sampling_settings}


def sampling_flags(sampling: dict) -> list[str]:
    """`gankit eval`'s flags for sampling settings: {"sample_steps": 6} -> --sample-steps 6."""
    return [a for k, v in sampling.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def memorisation(run: Path, data: str, n: int = 1000, sampling: dict | None = None) -> dict:
    """Median nearest-training-image distance (RMS over pixels in [0, 1]) of n samples and
    of the held-out images, and the share of samples nearer than 99% of held-out images."""
    import torch

    import gankit as gk
    from gankit.config import DataConfig
    from gankit.evaluate import draw
    from gankit.data.reference import reference_split
    train, held_out, _ = reference_split(DataConfig(data=data, offline=True))
    model = gk.load(run).set_sampling(**(sampling or {}))
    gen = torch.Generator().manual_seed(0)
    fakes = draw(lambda k: model.sample(k, generator=gen), n)

    def nearest(x: torch.Tensor) -> np.ndarray:
        t = train.images.flatten(1).float() / 255
        q = x[:n].flatten(1).float() / 255
        d = torch.cdist(q, t).min(1).values / math.sqrt(t.shape[1])
        return d.numpy()
    fake_d, real_d = nearest(fakes), nearest(held_out.images)
    return {"sample_median": float(np.median(fake_d)), "held_out_median": float(np.median(real_d)),
            "closer_than_1pct": float(np.mean(fake_d < np.quantile(real_d, 0.01)))}


def reconstruction_mse(run: Path, data: str) -> float:
    """Mean squared error (pixels in [0, 1]) of the held-out images' reconstructions."""
    import torch

    import gankit as gk
    from gankit.config import DataConfig
    from gankit.data import to_float
    from gankit.data.reference import reference_split
    _, held_out, _ = reference_split(DataConfig(data=data, offline=True))
    model = gk.load(run)
    x = to_float(held_out.images)
    y = held_out.labels if model.conditional else None
    with torch.no_grad():
        rec = model.reconstruct(x, y)
    return float(((rec - x) / 2).pow(2).mean())


def before(models: list[str], data: str, out: Path) -> list[str]:
    """Train each autoencoder as it stood (BEFORE) and compare with the recipe's seed 0."""
    lines = ["| model | settings | steps | FID | precision | recall | held-out reconstruction MSE |",
             "|---|---|---|---|---|---|---|"]
    for m in [m for m in models if m in BEFORE]:
        run = out / m / "before"
        if not (run / "checkpoints" / "last.safetensors").is_file():
            gankit("train", "--model", m, "--data", data, "--seed", "0", "--out", str(run),
                   "--threads", "1", "--quiet", "--offline", *BEFORE[m])
        for what, r in (("as it stood", run), ("recipe", out / m / "seed0")):
            e = json.loads(gankit("eval", "--checkpoint", str(r), "--json", "--offline", capture=True))
            steps = json.loads((r / "checkpoints" / "last.json").read_text())["step"]
            lines.append(f"| {m} | {what} | {steps:,} | {e['fid']:.2f} | {e['precision']:.3f} | "
                         f"{e['recall']:.3f} | {reconstruction_mse(r, data):.4f} |")
            print(lines[-1], flush=True)
    return lines


def fid_gridlines(draw, lo: float, hi: float, y, left: float, right: float, font,
                  label_dx: int = 40) -> None:
    """A log FID axis: lines at 1, 2 and 5 x 10^k between 10^lo and 10^hi, labelled at the
    left; y(value) is the pixel row."""
    for decade in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** decade
            if lo <= math.log10(v) <= hi:
                draw.line([(left, y(v)), (right, y(v))], fill="#eee")
                draw.text((left - label_dx, y(v) - 6), f"{v:g}", fill="black", font=font)


def plot(results: list[dict], floor: float, path: Path) -> None:
    """FID (log scale) against training seconds: each model's mean over seeds, the range
    of its seeds shaded, the real-data floor dashed."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    w, h, l, r, t, b = 900, 520, 70, 170, 30, 50
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img, "RGBA")
    models = list(dict.fromkeys(x["model"] for x in results))
    t_max = max(s for x in results for s, _ in x["curve"])
    fids = [f for x in results for _, f in x["curve"]] + [floor]
    lo, hi = math.log10(max(min(fids), 0.5)), math.log10(max(fids))
    X = lambda s: l + s / t_max * (w - l - r)                          # noqa: E731
    Y = lambda f: t + (hi - math.log10(max(f, 0.5))) / (hi - lo) * (h - t - b)   # noqa: E731
    draw.rectangle([l, t, w - r, h - b], outline="#888")
    fid_gridlines(draw, lo, hi, Y, l, w - r, font)
    for s in range(0, int(t_max) + 1, 60):
        draw.line([(X(s), h - b), (X(s), h - b + 4)], fill="black")
        draw.text((X(s) - 8, h - b + 8), f"{s}", fill="black", font=font)
    draw.text(((w - r) // 2 - 60, h - 20), "training seconds (2-core CPU, one thread)", fill="black", font=font)
    draw.text((l, 8), "FID (gankit classifier, held-out sample size), log scale", fill="black", font=font)
    draw.line([(l, Y(floor)), (w - r, Y(floor))], fill="#444", width=1)
    draw.text((w - r + 6, Y(floor) - 6), f"real data {floor:.2f}", fill="#444", font=font)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for k, model in enumerate(models):
        c = colours[k % len(colours)]
        runs = [x["curve"] for x in results if x["model"] == model]
        grid = np.linspace(max(run[0][0] for run in runs), min(run[-1][0] for run in runs), 40)
        ys = np.array([np.interp(grid, [s for s, _ in run], [f for _, f in run]) for run in runs])
        band = [(X(s), Y(v)) for s, v in zip(grid, ys.max(0))] + \
               [(X(s), Y(v)) for s, v in zip(grid[::-1], ys.min(0)[::-1])]
        rgb = tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
        draw.polygon(band, fill=rgb + (60,))
        draw.line([(X(s), Y(v)) for s, v in zip(grid, ys.mean(0))], fill=c, width=2)
        draw.text((w - r + 6, t + 16 * k), f"{model} ({len(runs)} seeds)", fill=c, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def mean_std(values: list[float], digits: int = 3) -> str:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return "-"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{digits}f}"


def best_within(curve: list[tuple[float, float]], seconds: float) -> float:
    inside = [f for s, f in curve if s <= seconds]
    return min(inside) if inside else math.nan


def ablate(args, out: Path) -> None:
    seed = args.seeds[0]
    jobs = [(m, label, flags) for m in args.only for label, flags in
            [("recipe", ())] + ABLATIONS.get(m, [])]
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda j: (j, train_and_score(
            j[0], seed, args.data, out, args.reuse, args.evals, j[2],
            name=j[0] if not j[2] else f"{j[0]}{'_'.join(j[2])}")), jobs))
    lines = [f"seed {seed}, {args.data}; each row changes one thing from the model's recipe", "",
             "| model | change | steps | train s | FID | precision | recall |", "|---|---|---|---|---|---|---|"]
    for (m, label, flags), r in results:
        lines.append(f"| {m} | {label} (`{' '.join(flags)}`) | {r['steps']:,} | {r['seconds']:.0f} | "
                     f"{r['fid']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} |")
    suffix = "" if args.data == "mnist" else f"-{args.data}"
    (ROOT / "benchmarks" / "results" / f"ablation{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    from gankit.models import MODELS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="runs/recipes")
    ap.add_argument("--reuse", action="store_true", help="score finished runs instead of training again")
    ap.add_argument("--evals", type=int, default=EVALS_PER_RUN, help="FID evaluations per run "
                    "(the curve's points; each costs a few seconds with 10,000 samples)")
    ap.add_argument("--tag", default="", help="results file suffix, e.g. -gans: "
                    "benchmarks/results/recipes[-DATA][TAG].md and docs/time_to_quality[-DATA][TAG].png")
    ap.add_argument("--ablate", action="store_true", help="train each of ABLATIONS' variants "
                    "of --only's recipes (first seed) beside the recipe; writes "
                    "benchmarks/results/ablation[-DATA].md")
    ap.add_argument("--before", action="store_true", help="only compare the autoencoders' "
                    "recipes (seed 0, already trained) with their settings as they stood")
    ap.add_argument("--sampling", nargs="+", default=[], metavar="KEY=VALUE",
                    help="score with these sampling settings instead of the ones each run "
                         "was trained with, e.g. sample_steps=6 after a default changed")
    args = ap.parse_args()
    sampling = parse_settings(args.sampling)

    out = Path(args.out)
    if args.before:
        print("\n".join(before(args.only, args.data, out)))
        return
    if args.ablate:
        ablate(args, out)
        return
    floor = json.loads(gankit("eval", "--reference", "--data", args.data, "--json", "--offline",
                              capture=True))
    jobs = [(m, s) for m in args.only for s in args.seeds]
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda job: train_and_score(*job, args.data, out, args.reuse,
                                                            args.evals, sampling=sampling), jobs))
    copies = {m: memorisation(out / m / f"seed{args.seeds[0]}", args.data,
                              sampling=own_sampling(model_class(m), sampling))
              for m in args.only}
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipes.json").write_text(json.dumps({"floor": floor, "runs": results,
                                                  "memorisation": copies}, indent=1))
    suffix = ("" if args.data == "mnist" else f"-{args.data}") + args.tag
    plot(results, floor["fid"], ROOT / "docs" / f"time_to_quality{suffix}.png")

    lines = [f"features: {floor['extractor']}", f"reference: {floor['reference']}",
             f"n_real {floor['n_real']:,}, n_fake {floor['n_fake']:,}; seeds {args.seeds}",
             *([f"sampled with {' '.join(args.sampling)} where a model has the setting"]
               if sampling else []), "",
             "| model | steps | train s | FID | KID | precision | recall | class entropy | "
             "best FID ≤ 60 s | best FID ≤ 300 s |", "|---|---|---|---|---|---|---|---|---|---|",
             f"| real data (held-out) | - | - | {floor['fid']:.3f} | {floor['kid_mean']:.4f} | "
             f"{floor['precision']:.3f} | {floor['recall']:.3f} | {floor['class_entropy']:.3f} | - | - |"]
    for m in args.only:
        rs = [r for r in results if r["model"] == m]
        cells = [mean_std([r[k] for r in rs], 4 if k == "kid_mean" else 3) for k in SCORES]
        within = [mean_std([best_within(r["curve"], s) for r in rs], 1) for s in WITHIN]
        steps = f"{np.mean([r['steps'] for r in rs]):,.0f}" + (f" ({rs[0]['budget']})"
                                                                if rs[0].get("budget") else "")
        lines.append(f"| {m} | {steps} | {np.mean([r['seconds'] for r in rs]):.0f} | "
                     + " | ".join(cells + within) + " |")
    lines += ["", "Memorisation (seed %d; RMS pixel distance to the nearest training image):" % args.seeds[0], "",
              "| model | samples' median | held-out median | samples nearer than 99% of held-out |",
              "|---|---|---|---|"]
    lines += [f"| {m} | {c['sample_median']:.3f} | {c['held_out_median']:.3f} | {c['closer_than_1pct']:.1%} |"
              for m, c in copies.items()]
    table = "\n".join(lines)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / f"recipes{suffix}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
