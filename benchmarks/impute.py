"""Imputation measured as the GAIN paper measures it, against the imputers people use.

    python benchmarks/impute.py [--datasets breast,spam,letter] [--corruptions 5]
                                [--settings split,same] [--out benchmarks/results/impute.csv]

Protocol (Yoon et al. 2018): 20% of cells missing completely at random; RMSE over the
missing cells after min-max scaling each column to [0, 1] with its observed values; 5
corruptions, mean ± std. Two settings: `split` fits on a random 80% of the rows and fills
the other 20% (scored there), `same` fills the table it was fitted on.

Data, offline: Breast Cancer Wisconsin (scikit-learn), Spambase (`spam` of the R package
kernlab, Debian's r-cran-kernlab) and Letter Recognition (`LetterRecognition` of mlbench,
Debian's r-cran-mlbench), both exported with Rscript on first use, without their labels.

Methods: mean, k-nearest neighbours (KNNImputer), MICE (IterativeImputer, its default
BayesianRidge) and MissForest (IterativeImputer with a random forest; --forest-trees and
--forest-iterations, below MissForest's 100 trees and 10 iterations to fit a 2-core
machine), and gankit's gain and miwae. GAIN's hint and alpha are chosen per dataset on a
validation split of the first corruption's training rows (--tune), never on the test rows.
Multiple imputation: for the first corruption of `split`, 20 draws per cell and the share
of true values inside the draws' 5-95% interval (coverage) with the interval's width.

Every run is one CSV row (appended as it ends); the summary prints as Markdown.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("GANKIT_CACHE", Path.home() / ".cache" / "gankit")) / "tables"
LABELS = {"spam": "type", "letter": "lettr"}
R_EXPORT = {"spam": 'library(kernlab); data(spam); write.csv(spam, "{out}", row.names=FALSE)',
            "letter": 'library(mlbench); data(LetterRecognition); '
                      'write.csv(LetterRecognition, "{out}", row.names=FALSE)'}


def exported(name: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows as text) of an R data set, exported with Rscript on first use."""
    path = CACHE / f"{name}.csv"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["Rscript", "-e", R_EXPORT[name].format(out=path)], check=True,
                           capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            raise SystemExit(f"{name}: needs Rscript with Debian's r-cran-kernlab and "
                             "r-cran-mlbench (apt-get install r-cran-kernlab r-cran-mlbench)")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def load(name: str) -> np.ndarray:
    """The data set's features, without its label column."""
    if name == "breast":
        from sklearn.datasets import load_breast_cancer
        return load_breast_cancer().data
    header, rows = exported(name)
    keep = [k for k, h in enumerate(header) if h != LABELS[name]]
    return np.array([[float(r[k]) for k in keep] for r in rows])


def corrupt(X: np.ndarray, seed: int, rate: float = 0.2):
    missing = np.random.default_rng(seed).random(X.shape) < rate
    Xm = X.copy()
    Xm[missing] = np.nan
    return Xm, missing


def rmse(filled, X, missing, lo, hi) -> float:
    span = np.where(hi > lo, hi - lo, 1.0)
    return float(np.sqrt((((filled - X) / span)[missing] ** 2).mean()))


def methods(args, seed: int, gain_options: dict) -> dict:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    from gankit.impute import GAINImputer, MIWAEImputer
    return {
        "mean": lambda: SimpleImputer(),
        "knn": lambda: KNNImputer(),
        "mice": lambda: IterativeImputer(random_state=seed),
        "missforest": lambda: IterativeImputer(
            RandomForestRegressor(n_estimators=args.forest_trees, n_jobs=1, random_state=seed),
            max_iter=args.forest_iterations, random_state=seed),
        "gain": lambda: GAINImputer(random_state=seed, options=gain_options),
        "miwae": lambda: MIWAEImputer(random_state=seed, steps=args.miwae_steps),
    }


def split(n: int, seed: int, part: float = 0.8):
    order = np.random.default_rng(1000 + seed).permutation(n)
    cut = int(part * n)
    return order[:cut], order[cut:]


def tune_gain(X: np.ndarray, name: str) -> tuple[dict, list]:
    """GAIN's hint and alpha by validation RMSE: on the first corruption's training rows,
    split again 80/20; the test rows are never looked at."""
    from gankit.impute import GAINImputer
    Xm, missing = corrupt(X, 0)
    train, _ = split(len(X), 0)
    fit, val = split(len(train), 99)
    fit, val = train[fit], train[val]
    lo, hi = np.nanmin(Xm, 0), np.nanmax(Xm, 0)
    tried = []
    for hint in ("code", "paper"):
        for alpha in (10.0, 100.0):
            options = {"hint": hint, "alpha": alpha}
            imputer = GAINImputer(random_state=0, options=options).fit(Xm[fit])
            score = rmse(imputer.transform(Xm[val]), X[val], missing[val], lo, hi)
            tried.append((score, options))
            print(f"  tune {name} gain {options}: validation RMSE {score:.4f}", flush=True)
    return min(tried, key=lambda t: t[0])[1], tried


def coverage(imputer_cls, options, X, Xm, missing, train, test, seed, lo, hi, draws=20):
    """Share of true missing values inside the 5-95% interval of `draws` imputations."""
    imputer = imputer_cls(random_state=seed, **options).fit(Xm[train])
    many = imputer.sample(Xm[test], draws)
    low, high = np.percentile(many, 5, axis=0), np.percentile(many, 95, axis=0)
    m = missing[test]
    truth = X[test]
    inside = (truth >= low) & (truth <= high)
    span = np.where(hi > lo, hi - lo, 1.0)
    return float(inside[m].mean()), float(((high - low) / span)[m].mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="breast,spam,letter")
    p.add_argument("--corruptions", type=int, default=5)
    p.add_argument("--start", type=int, default=0, help="first corruption (to share the "
                   "corruptions of one data set between processes)")
    p.add_argument("--settings", default="split,same")
    p.add_argument("--methods", default="mean,knn,mice,missforest,gain,miwae")
    p.add_argument("--forest-trees", type=int, default=20)
    p.add_argument("--forest-iterations", type=int, default=5)
    p.add_argument("--miwae-steps", type=int, default=5000)
    p.add_argument("--no-tune", action="store_true")
    p.add_argument("--out", default="benchmarks/results/impute.csv")
    p.add_argument("--merge", nargs="+", metavar="CSV", help="instead of running: merge the "
                   "CSVs of several processes into --out (a run repeated by two processes is "
                   "kept once) and print the summary")
    args = p.parse_args()
    if args.merge:
        merge(args.merge, Path(args.out))
        summarise(Path(args.out))
        return

    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)          # two of these side by side share a 2-core machine
    threadpool_limits(1)
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.is_file()
    sink = open(out, "a", newline="")
    writer = csv.writer(sink)
    if new:
        writer.writerow(["dataset", "rows", "columns", "setting", "corruption", "method", "rmse",
                         "fit_seconds", "fill_seconds", "options"])
    for name in args.datasets.split(","):
        X = load(name)
        print(f"{name}: {X.shape[0]} x {X.shape[1]}", flush=True)
        gain_options = {} if args.no_tune else tune_gain(X, name)[0]   # same in every process
        print(f"  gain options: {gain_options or 'defaults'}", flush=True)
        for seed in range(args.start, args.start + args.corruptions):
            Xm, missing = corrupt(X, seed)
            lo, hi = np.nanmin(Xm, 0), np.nanmax(Xm, 0)
            train, test = split(len(X), seed)
            for setting in args.settings.split(","):
                fit_rows, fill_rows = (train, test) if setting == "split" else (slice(None), slice(None))
                for method, make in methods(args, seed, gain_options).items():
                    if method not in args.methods.split(","):
                        continue
                    imputer = make()
                    t0 = time.perf_counter()
                    imputer.fit(Xm[fit_rows])
                    t1 = time.perf_counter()
                    filled = imputer.transform(Xm[fill_rows])
                    t2 = time.perf_counter()
                    score = rmse(filled, X[fill_rows], missing[fill_rows], lo, hi)
                    options = gain_options if method == "gain" else ""
                    writer.writerow([name, X.shape[0], X.shape[1], setting, seed, method,
                                     f"{score:.5f}", f"{t1 - t0:.2f}", f"{t2 - t1:.2f}", options])
                    sink.flush()
                    print(f"  {name} {setting} #{seed} {method:10s} RMSE {score:.4f}  fit "
                          f"{t1 - t0:.1f} s  fill {t2 - t1:.1f} s", flush=True)
            if seed == 0 and "split" in args.settings:
                from gankit.impute import GAINImputer, MIWAEImputer
                for method, cls, options in (("gain", GAINImputer, {"options": gain_options}),
                                             ("miwae", MIWAEImputer, {"steps": args.miwae_steps})):
                    if method not in args.methods.split(","):
                        continue
                    cov, width = coverage(cls, options, X, Xm, missing, train, test, seed, lo, hi)
                    writer.writerow([name, X.shape[0], X.shape[1], "split-coverage90", seed,
                                     method, f"{cov:.4f}", "", "", f"width {width:.4f}"])
                    sink.flush()
                    print(f"  {name} {method} 90% interval coverage {cov:.3f} (width {width:.3f})",
                          flush=True)
    sink.close()
    summarise(out)


def merge(paths: list[str], out: Path) -> None:
    seen, kept = set(), []
    for path in paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                key = (r["dataset"], r["setting"], r["corruption"], r["method"])
                if key not in seen:
                    seen.add(key)
                    kept.append(r)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)


def summarise(path: Path) -> None:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["setting"], r["method"]), []).append(r)
    print("| data | setting | method | RMSE (mean ± std) | runs | fit s | fill s |")
    print("|---|---|---|---|---|---|---|")
    for (name, setting, method), rs in sorted(groups.items()):
        scores = np.array([float(r["rmse"]) for r in rs])
        fit = np.mean([float(r["fit_seconds"] or 0) for r in rs])
        fill_s = np.mean([float(r["fill_seconds"] or 0) for r in rs])
        print(f"| {name} | {setting} | {method} | {scores.mean():.4f} ± {scores.std():.4f} | "
              f"{len(rs)} | {fit:.1f} | {fill_s:.1f} |")
    # the form of docs/measurements/imputation.md: a row per data set and method, the two settings side by side
    print("\n| data | method | split RMSE | same-table RMSE | fit s (split) |")
    print("|---|---|---|---|---|")
    order = ["mean", "knn", "mice", "missforest", "gain", "miwae"]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for method in order:
            cells = []
            for setting in ("split", "same"):
                rs = groups.get((name, setting, method), [])
                scores = np.array([float(r["rmse"]) for r in rs])
                cells.append(f"{scores.mean():.4f} ± {scores.std():.4f} ({len(rs)})" if len(rs) else "–")
            rs = groups.get((name, "split", method), [])
            fit = np.mean([float(r["fit_seconds"]) for r in rs]) if rs else float("nan")
            print(f"| {name} | {method} | {cells[0]} | {cells[1]} | {fit:.1f} |")


if __name__ == "__main__":
    main()
