"""A flow's sampling cost against its quality: FID, precision and recall against the ODE
solver's steps, images per second, and the GANs' one network pass beside it.

    python benchmarks/flow_sampling.py --run runs/recipes-flow/flow/seed0@sample_steps=6 \
        --gans runs/recipes/dcgan/seed0 runs/recipes/cgan/seed0 \
        runs/recipes-flow/cflow/seed0@sample_steps=6,guidance=1.25

For each solver and number of steps (1 to 64): 1,000 samples with seed 0 (what `gankit eval
--checkpoint RUN --sample-steps N --solver S` draws), scored on the held-out split, and the
seconds they took (sampling only, --threads torch threads). Then the run's own sampler
(its defaults) draws 10,000 images, timed, and so does each run of --gans (RUN@KEY=VALUE,...
samples a run with those sampling settings, e.g. a default that changed after it trained). Writes
benchmarks/results/flow_sampling.md and docs/flow_sampling.png.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gankit  # noqa: E402
from gankit.evaluate import draw, prepare, score  # noqa: E402
from gankit.models import model_name  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from recipes import fid_gridlines, parse_settings  # noqa: E402   (the same log FID axis)


def timed_draw(model, n: int) -> tuple[torch.Tensor, float]:
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    images = draw(lambda k: model.sample(k, generator=gen), n)
    return images, time.perf_counter() - start


def with_settings(spec: str):
    """The model of RUN or RUN@KEY=VALUE,...: a run sampling with those settings (today's
    defaults, for a run trained before they changed)."""
    run, _, settings = spec.partition("@")
    return gankit.load(run).set_sampling(**parse_settings(settings.split(",")))


def evaluations(solver: str, steps: int) -> int:
    """Network passes per image: Heun's last step, into the image, is an Euler step
    (flow.integrate)."""
    return 2 * steps - 1 if solver == "heun" else steps


def plot(points: list[dict], floor: float, path: Path) -> None:
    """FID (log) against network evaluations per image (log 2), one line per solver."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    w, h, l, r, t, b = 760, 440, 60, 150, 30, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    fids = [p["fid"] for p in points] + [floor]
    lo, hi = math.log10(max(min(fids), 0.5)), math.log10(max(fids))
    nfe_max = max(p["nfe"] for p in points)
    X = lambda n: l + math.log2(n) / math.log2(nfe_max) * (w - l - r)      # noqa: E731
    Y = lambda f: t + (hi - math.log10(max(f, 0.5))) / (hi - lo) * (h - t - b)   # noqa: E731
    d.rectangle([l, t, w - r, h - b], outline="#888")
    fid_gridlines(d, lo, hi, Y, l, w - r, font, label_dx=34)
    n = 1
    while n <= nfe_max:
        d.text((X(n) - 6, h - b + 8), str(n), fill="black", font=font)
        n *= 2
    d.text((l + 60, h - 22), "network evaluations per image (log scale)", fill="black", font=font)
    d.text((l, 8), "FID (gankit classifier, held-out size), log scale", fill="black", font=font)
    d.line([(l, Y(floor)), (w - r, Y(floor))], fill="#444")
    d.text((w - r + 6, Y(floor) - 6), f"real data {floor:.2f}", fill="#444", font=font)
    for k, (solver, colour) in enumerate((("euler", "#1f77b4"), ("heun", "#d62728"))):
        line = sorted((p["nfe"], p["fid"]) for p in points if p["solver"] == solver)
        if len(line) > 1:
            d.line([(X(n), Y(f)) for n, f in line], fill=colour, width=2)
        for n, f in line:
            d.ellipse([X(n) - 3, Y(f) - 3, X(n) + 3, Y(f) + 3], fill=colour)
        d.text((w - r + 6, t + 16 * k), solver, fill=colour, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a flow or cflow run folder, or "
                    "RUN@KEY=VALUE,... with sampling settings for its timed draw")
    ap.add_argument("--gans", nargs="*", default=[], help="other runs whose speed to show, "
                    "RUN or RUN@KEY=VALUE,... with sampling settings")
    ap.add_argument("--steps", default="1,2,4,6,8,16,32,64")
    ap.add_argument("--solvers", nargs="+", default=["euler", "heun"])
    ap.add_argument("--n", type=int, default=1000, help="samples scored per point")
    ap.add_argument("--speed-n", type=int, default=10_000, help="samples timed per model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="", help="results file suffix")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = with_settings(args.run)
    defaults = {k: getattr(model.cfg, k) for k in model.sampling_settings}
    ref = prepare(model.run_config.data, progress=False)
    floor = score(ref, ref.held_out.images)["fid"]
    points = []
    for solver in args.solvers:
        for steps in map(int, args.steps.split(",")):
            with model.sampling_as(solver=solver, sample_steps=steps):
                images, secs = timed_draw(model, args.n)
            s = score(ref, images)
            points.append({"solver": solver, "steps": steps, "nfe": evaluations(solver, steps),
                           "fid": s["fid"], "precision": s["precision"], "recall": s["recall"],
                           "per_s": args.n / secs})
            print(points[-1], flush=True)
    speeds = []
    for spec in [args.run, *args.gans]:
        m = with_settings(spec)
        _, secs = timed_draw(m, args.speed_n)
        speeds.append((f"{model_name(m)} ({spec})", secs))
        print(speeds[-1], flush=True)

    settings = ", ".join(f"{k} {v}" for k, v in defaults.items())
    lines = [f"run: {args.run} ({model_name(model)}; its sampler: {settings}); "
             f"{args.n:,} samples a point, seed 0, {args.threads} torch threads", "",
             f"floor (held-out digits): FID {floor:.2f}", "",
             "| solver | steps | network passes | FID | precision | recall | images/s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['solver']} | {p['steps']} | {p['nfe']} | {p['fid']:.2f} | "
              f"{p['precision']:.3f} | {p['recall']:.3f} | {p['per_s']:.1f} |" for p in points]
    lines += ["", f"| model | seconds for {args.speed_n:,} samples | images/s |", "|---|---|---|"]
    lines += [f"| {name} | {secs:.1f} | {args.speed_n / secs:.0f} |" for name, secs in speeds]
    out = ROOT / "benchmarks" / "results" / f"flow_sampling{args.tag}.md"
    out.write_text("\n".join(lines) + "\n")
    plot(points, floor, ROOT / "docs" / f"flow_sampling{args.tag}.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
