"""Precision against recall at sampling time: the truncation trick and discriminator
rejection sampling, on one trained run.

    python benchmarks/truncation.py --run runs/recipes/dcgan/seed0

Each point is `gankit eval --checkpoint RUN --truncation PSI` (PSI from 0.5 to 1.0) or
`--reject P` (percentiles 50, 80, 95): the held-out split, 1,000 samples, seed 0. Writes
benchmarks/results/truncation.md and docs/truncation.png.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PSIS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
PERCENTILES = (50, 80, 95)


def evaluate(run: str, *flags: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "gankit", "eval", "--checkpoint", run, "--json",
                          "--offline", *flags], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout)


def plot(points: list[tuple[str, str, dict]], floor: dict, path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    w, h, l, r, t, b = 660, 460, 70, 100, 30, 50
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    ps = [p["precision"] for _, _, p in points] + [floor["precision"]]
    rs = [p["recall"] for _, _, p in points] + [floor["recall"]]
    x0, x1 = min(rs) - 0.03, max(rs) + 0.03
    y0, y1 = min(ps) - 0.03, max(ps) + 0.03
    X = lambda v: l + (v - x0) / (x1 - x0) * (w - l - r)    # noqa: E731
    Y = lambda v: h - b - (v - y0) / (y1 - y0) * (h - t - b)  # noqa: E731
    draw.rectangle([l, t, w - r, h - b], outline="#888")
    for k in range(math.ceil(x0 * 20), math.floor(x1 * 20) + 1):   # ticks every 0.05
        draw.line([(X(k / 20), h - b), (X(k / 20), h - b + 4)], fill="black")
        draw.text((X(k / 20) - 12, h - b + 6), f"{k / 20:.2f}", fill="black", font=font)
    for k in range(math.ceil(y0 * 100), math.floor(y1 * 100) + 1):  # and 0.01
        draw.line([(l - 4, Y(k / 100)), (l, Y(k / 100))], fill="black")
        draw.text((l - 40, Y(k / 100) - 6), f"{k / 100:.2f}", fill="black", font=font)
    draw.text(((w - r) // 2 - 20, h - 22), "recall", fill="black", font=font)
    draw.text((l, 10), "precision (gankit classifier features, held-out split)", fill="black", font=font)
    colours = {"truncation": "#1f77b4", "rejection": "#d62728"}
    for kind in colours:
        pts = [(X(p["recall"]), Y(p["precision"]), label) for k, label, p in points if k == kind]
        if len(pts) > 1:
            draw.line([(x, y) for x, y, _ in pts], fill=colours[kind], width=2)
        for x, y, label in pts:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colours[kind])
            draw.text((x + 5, y - 12), label, fill=colours[kind], font=font)
    fx, fy = X(floor["recall"]), Y(floor["precision"])
    draw.rectangle([fx - 3, fy - 3, fx + 3, fy + 3], fill="#444")
    draw.text((fx + 5, fy + 2), "real held-out", fill="#444", font=font)
    draw.text((w - r - 200, t + 6), "truncation psi", fill=colours["truncation"], font=font)
    draw.text((w - r - 200, t + 20), "rejection sampling, percentile", fill=colours["rejection"], font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/recipes/dcgan/seed0")
    args = ap.parse_args()
    import tomllib
    data = tomllib.loads((Path(args.run) / "config.toml").read_text())["data"]["data"]
    floor = json.loads(subprocess.run([sys.executable, "-m", "gankit", "eval", "--reference", "--json",
                                       "--offline", "--data", data],
                                      check=True, capture_output=True, text=True, cwd=ROOT).stdout)
    points = []
    for psi in PSIS:
        points.append(("truncation", f"{psi:g}", evaluate(args.run, "--truncation", str(psi))))
    for pct in PERCENTILES:
        points.append(("rejection", f"{pct}", evaluate(args.run, "--reject", str(pct))))
    lines = [f"run {args.run}; floor (real held-out): FID {floor['fid']:.2f}, precision "
             f"{floor['precision']:.3f}, recall {floor['recall']:.3f}", "",
             "| sampling | FID | precision | recall | class entropy |", "|---|---|---|---|---|"]
    for kind, label, p in points:
        what = f"truncation {label}" if kind == "truncation" else f"rejection, percentile {label}"
        lines.append(f"| {what} | {p['fid']:.2f} | {p['precision']:.3f} | {p['recall']:.3f} | "
                     f"{p['class_entropy']:.3f} |")
    table = "\n".join(lines)
    (ROOT / "benchmarks" / "results" / "truncation.md").write_text(table + "\n")
    plot(points, floor, ROOT / "docs" / "truncation.png")
    print(table)


if __name__ == "__main__":
    main()
