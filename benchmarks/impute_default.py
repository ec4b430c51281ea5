"""Which imputer should `gankit impute` use by default? Candidates measured on the GAIN
paper's protocol (benchmarks/impute.py: 20% MCAR cells, RMSE over the missing cells after
min-max scaling, the same corruptions and 80/20 row splits), `split` setting only, with a
validation measurement drawn from the training rows alone.

    python benchmarks/impute_default.py run --datasets breast --corruptions 2 \\
        --candidates "missforest;gain@10000/30000;miwae@5000/20000/50000;miwae[likelihood=gaussian]@5000/20000" \\
        [--start 0] [--val-share 0.15] [--out benchmarks/results/impute-default.csv]
    python benchmarks/impute_default.py report --ensembles "gain@10000+miwae@20000" \\
        --pools "gain@10000,miwae@20000,gain@10000+miwae@20000" [--md benchmarks/results/impute-default.md]

A candidate is MODEL[key=value,...]@S1/S2/...: a gankit imputer (gain, miwae) with model
options, trained to S1 steps, scored, trained on (resumed) to S2, scored, and so on; each
stage is a candidate of its own, labelled MODEL[...]@S. `missforest` and `mice` are
benchmarks/impute.py's (20 trees, 5 rounds for the forest).

For every corruption and candidate, two fits:

- test: fit on the 80% training rows, fill the 20% test rows, RMSE over their missing
  cells (exactly benchmarks/impute.py's `split` number);
- val: a further --val-share of the training rows' *observed* cells is masked, the
  candidate is fitted on what remains and fills it; RMSE over those masked cells, against
  their known values. The test rows are not looked at.

`report` adds ensembles (A+B: the mean of the candidates' fills, val and test alike) and
per-table choices: from a pool of candidates the one with the lowest val RMSE is taken,
and its test fit is the result (the refit on the whole training table). The choice's fit
time is the val fits of the pool (stages of one run counted once) plus the winner's test
fit. Fills are kept under --fills (npz) so that ensembles can be formed afterwards.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from impute import corrupt, load, rmse, split  # noqa: E402  (benchmarks/impute.py)

FIELDS = ["dataset", "corruption", "candidate", "part", "rmse", "fit_seconds",
          "fill_seconds", "train_loss", "loss_name"]
SPEC = re.compile(r"^(?P<model>[a-z]+)(\[(?P<opts>[^\]]*)\])?(@(?P<stages>[0-9/]+))?(#(?P<fill>[0-9]+))?$")


def parse(spec: str):
    """MODEL[k=v,...]@S1/S2#IS -> (model, options, stages, impute_samples or None)."""
    m = SPEC.match(spec.strip())
    if not m:
        raise SystemExit(f"bad candidate {spec!r}: MODEL[key=value,...]@S1/S2/...")
    options = {}
    for kv in filter(None, (m["opts"] or "").split(",")):
        k, v = kv.split("=")
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                pass
        options[k] = v
    stages = [int(s) for s in m["stages"].split("/")] if m["stages"] else [None]
    return m["model"], options, stages, (int(m["fill"]) if m["fill"] else None)


def label(model, options, stage, fill_samples=None) -> str:
    opts = f"[{','.join(f'{k}={v}' for k, v in options.items())}]" if options else ""
    return (f"{model}{opts}" + (f"@{stage}" if stage else "")
            + (f"#{fill_samples}" if fill_samples else ""))


def validation_mask(observed: np.ndarray, seed: int, share: float) -> np.ndarray:
    """A further `share` of the observed cells, masked for validation (rows never emptied
    is not needed: the imputers take rows with every cell missing)."""
    return (np.random.default_rng(5000 + seed).random(observed.shape) < share) & observed


def tail_loss(folder: Path, name: str, upto: int, window: int = 1000) -> float:
    """Mean of the logged training metric `name` over the last `window` steps up to `upto`."""
    path = folder / "metrics.csv"
    if not path.is_file():
        hits = list(folder.rglob("metrics.csv"))
        if not hits:
            return float("nan")
        path = hits[0]
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f)
                if upto - window < int(r["step"]) <= upto and r.get(name, "") != ""]
    return float(np.mean([float(r[name]) for r in rows])) if rows else float("nan")


def run_gankit(model, options, stages, fill_samples, fit_X, fill_X, seed, workdir):
    """Yield (stage, fill of fill_X, cumulative fit seconds, fill seconds, train loss)."""
    from gankit.filling import train_table
    from gankit.impute import GAINImputer, MIWAEImputer
    from gankit.data.table import TableData
    cls = {"gain": GAINImputer, "miwae": MIWAEImputer}[model]
    loss_name = {"gain": "mse", "miwae": "loss"}[model]
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    shutil.rmtree(folder)
    options = dict(options)
    seed = seed + 100 * int(options.pop("seed", 0))   # seed=k: another training seed
    imputer = cls(random_state=seed, options=dict(options), steps=stages[0], out=str(folder))
    t0 = time.perf_counter()
    imputer.fit(fit_X)
    fit_s = time.perf_counter() - t0
    for k, stage in enumerate(stages):
        if k:
            data = TableData(imputer._scaled(imputer._input(fit_X, fit=False)), imputer.schema_,
                             name="resumed")
            t0 = time.perf_counter()
            imputer.model_ = train_table(imputer.model_name, data, str(folder), stage, seed,
                                           False, dict(options), resume=True).model
            fit_s += time.perf_counter() - t0
        if fill_samples:
            imputer.model_.cfg = dataclasses.replace(imputer.model_.cfg, impute_samples=fill_samples)
        t0 = time.perf_counter()
        filled = imputer.transform(fill_X)
        yield stage, filled, fit_s, time.perf_counter() - t0, tail_loss(folder, loss_name, stage or 10**9), loss_name
    shutil.rmtree(folder, ignore_errors=True)


def run_sklearn(model, seed, fit_X, fill_X, trees, rounds):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer
    from sklearn.impute import SimpleImputer
    imputer = (SimpleImputer() if model == "mean" else
               IterativeImputer(random_state=seed) if model == "mice" else IterativeImputer(
        RandomForestRegressor(n_estimators=trees, n_jobs=1, random_state=seed),
        max_iter=rounds, random_state=seed))
    t0 = time.perf_counter()
    imputer.fit(fit_X)
    t1 = time.perf_counter()
    filled = imputer.transform(fill_X)
    yield None, filled, t1 - t0, time.perf_counter() - t1, float("nan"), ""


def setup(name, seed, val_share, X=None):
    X = load(name) if X is None else X
    Xm, missing = corrupt(X, seed)
    lo, hi = np.nanmin(Xm, 0), np.nanmax(Xm, 0)
    train, test = split(len(X), seed)
    vmask = validation_mask(~missing[train], seed, val_share)
    Xv = Xm[train].copy()
    Xv[vmask] = np.nan
    inner, held = split(len(train), 100 + seed)          # valrows: rows of the training rows
    return dict(X=X, Xm=Xm, missing=missing, lo=lo, hi=hi, train=train, test=test, vmask=vmask,
                Xv=Xv, inner=train[inner], held=train[held])


def fit_fill(s, part):
    """(rows to fit on, rows to fill) of a part."""
    if part == "test":
        return s["Xm"][s["train"]], s["Xm"][s["test"]]
    if part == "valrows":
        return s["Xm"][s["inner"]], s["Xm"][s["held"]]
    return s["Xv"], s["Xv"]


def score(s, part, filled):
    if part == "test":
        return rmse(filled, s["X"][s["test"]], s["missing"][s["test"]], s["lo"], s["hi"])
    if part == "valrows":
        return rmse(filled, s["X"][s["held"]], s["missing"][s["held"]], s["lo"], s["hi"])
    return rmse(filled, s["X"][s["train"]], s["vmask"], s["lo"], s["hi"])


def run(args) -> None:
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)
    threadpool_limits(1)
    warnings.simplefilter("ignore")
    out, fills = Path(args.out), Path(args.fills)
    fills.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="impute-default-"))
    new = not out.is_file()
    sink = open(out, "a", newline="")
    writer = csv.DictWriter(sink, FIELDS)
    if new:
        writer.writeheader()
    no_val = set(args.no_val.split(",")) if args.no_val else set()
    for name in args.datasets.split(","):
        X = load(name)
        for seed in range(args.start, args.start + args.corruptions):
            s = setup(name, seed, args.val_share, X)
            for spec in filter(None, args.candidates.split(";")):
                model, options, stages, fill_samples = parse(spec)
                parts = ["test"] if (model in no_val or args.test_only) else args.parts.split(",")
                for part in parts:
                    fit_X, fill_X = fit_fill(s, part)
                    runs = (run_sklearn(model, seed, fit_X, fill_X, args.forest_trees, args.forest_iterations)
                            if model in ("missforest", "mice", "mean") else
                            run_gankit(model, options, stages, fill_samples, fit_X, fill_X, seed, workdir))
                    for stage, filled, fit_s, fill_s, loss, loss_name in runs:
                        lab = label(model, options, stage, fill_samples)
                        r = score(s, part, filled)
                        np.save(fills / f"{name}-{seed}-{part}-{lab}.npy", filled)
                        writer.writerow(dict(dataset=name, corruption=seed, candidate=lab, part=part,
                                             rmse=f"{r:.5f}", fit_seconds=f"{fit_s:.1f}",
                                             fill_seconds=f"{fill_s:.1f}",
                                             train_loss=f"{loss:.5f}" if loss == loss else "",
                                             loss_name=loss_name))
                        sink.flush()
                        print(f"{name} #{seed} {part:4s} {lab:40s} RMSE {r:.4f} fit {fit_s:6.1f} s "
                              f"fill {fill_s:5.1f} s loss {loss:.4f}", flush=True)
    sink.close()
    shutil.rmtree(workdir, ignore_errors=True)


# --- report ------------------------------------------------------------------------------

def base_of(lab: str) -> str:
    """The run a staged label belongs to (its stages share one training run)."""
    return re.sub(r"@[0-9]+", "", lab.split("#")[0])


def report(args) -> None:
    with open(args.out, newline="") as f:
        rows = list(csv.DictReader(f))
    res: dict = {}   # (dataset, seed, label, part) -> (rmse, fit s)
    for r in rows:
        res[(r["dataset"], int(r["corruption"]), r["candidate"], r["part"])] = (
            float(r["rmse"]), float(r["fit_seconds"]), r["train_loss"])
    setups: dict = {}
    fills = Path(args.fills)
    for ens in filter(None, (args.ensembles or "").split(";")):
        members = ens.split("+")
        for (name, seed) in sorted({(k[0], k[1]) for k in res}):
            for part in ("val", "valrows", "test"):
                if not all((name, seed, m, part) in res for m in members):
                    continue
                if (name, seed) not in setups:
                    setups[(name, seed)] = setup(name, seed, args.val_share)
                avg = np.mean([np.load(fills / f"{name}-{seed}-{part}-{m}.npy") for m in members], 0)
                fit = sum(res[(name, seed, m, part)][1] for m in members)
                res[(name, seed, ens, part)] = (score(setups[(name, seed)], part, avg), fit, "")
    lines = []
    say = lines.append
    pools = [p.split(",") for p in filter(None, (args.pools or "").split(";"))]
    for name in dict.fromkeys(k[0] for k in res):
        seeds_mf = {k[1] for k in res if k[0] == name and k[2] == "missforest" and k[3] == "test"}
        cands = list(dict.fromkeys(k[2] for k in res if k[0] == name and k[3] == "test"))
        say(f"\n### {name} (split; ratio = candidate / MissForest on the same corruptions)\n")
        say("| candidate | test RMSE (mean ± std) | n | ratio to MissForest | val RMSE (cells) | val RMSE (rows) | fit s | train loss (last 1k steps) |")
        say("|---|---|---|---|---|---|---|---|")
        for c in cands:
            seeds = sorted(k[1] for k in res if k[0] == name and k[2] == c and k[3] == "test")
            t = np.array([res[(name, q, c, "test")][0] for q in seeds])
            fit = np.mean([res[(name, q, c, "test")][1] for q in seeds])
            common = [q for q in seeds if q in seeds_mf]
            ratio = (np.mean([res[(name, q, c, "test")][0] for q in common])
                     / np.mean([res[(name, q, "missforest", "test")][0] for q in common])) if common else float("nan")
            def val(part):
                v = [res[(name, q, c, part)][0] for q in seeds if (name, q, c, part) in res]
                return f"{np.mean(v):.4f} ({len(v)})" if v else "–"
            losses = [float(res[(name, q, c, "test")][2]) for q in seeds if res[(name, q, c, "test")][2]]
            say(f"| {c} | {t.mean():.4f} ± {t.std():.4f} | {len(t)} | {ratio:.3f} ({len(common)}) | "
                f"{val('val')} | {val('valrows')} | {fit:.1f} | "
                + (f"{np.mean(losses):.4f} |" if losses else "– |"))
        for pool in pools:
            seeds = sorted(q for q in {k[1] for k in res if k[0] == name}
                           if all((name, q, c, p) in res for c in pool for p in (args.choose_by, "test")))
            if not seeds:
                continue
            say(f"\nPer-table choice on {name} by {args.choose_by} from {{{', '.join(pool)}}}:\n")
            say("| corruption | chosen (lowest val RMSE) | its test RMSE | best on test | best test RMSE | MissForest | fit s |")
            say("|---|---|---|---|---|---|---|")
            got, mf, hits, fits = [], [], 0, []
            for q in seeds:
                chosen = min(pool, key=lambda c: res[(name, q, c, args.choose_by)][0])
                best = min(pool, key=lambda c: res[(name, q, c, "test")][0])
                # val fits: each training run once (its longest stage), members of ensembles alike
                runs: dict = {}
                for c in pool:
                    for m in c.split("+"):
                        runs[base_of(m)] = max(runs.get(base_of(m), 0), res[(name, q, m, args.choose_by)][1])
                fit = sum(runs.values()) + res[(name, q, chosen, "test")][1]
                got.append(res[(name, q, chosen, "test")][0])
                m_f = res.get((name, q, "missforest", "test"), (float("nan"),))[0]
                mf.append(m_f)
                hits += chosen == best
                fits.append(fit)
                say(f"| {q} | {chosen} | {got[-1]:.4f} | {best} | {res[(name, q, best, 'test')][0]:.4f} | "
                    f"{m_f:.4f} | {fit:.0f} |")
            say(f"\nEnd to end: {np.mean(got):.4f} ± {np.std(got):.4f} over {len(seeds)}, ratio to "
                f"MissForest {np.mean(got) / np.mean(mf):.3f}; picked the test-best {hits}/{len(seeds)}; "
                f"fit {np.mean(fits):.0f} s.")
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["run", "report"])
    p.add_argument("--datasets", default="breast,spam")
    p.add_argument("--corruptions", type=int, default=2)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--candidates", default="missforest;gain@10000;miwae@5000/20000")
    p.add_argument("--no-val", default="missforest,mice,mean", help="models fitted for test only")
    p.add_argument("--test-only", action="store_true", help="no val fits at all")
    p.add_argument("--parts", default="val,test", help="val (masked observed cells of the "
                   "training rows), valrows (fit on 80%% of the training rows, fill the rest), test")
    p.add_argument("--val-share", type=float, default=0.15)
    p.add_argument("--choose-by", default="val", help="the part the per-table choice uses")
    p.add_argument("--forest-trees", type=int, default=20)
    p.add_argument("--forest-iterations", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/impute-default.csv")
    p.add_argument("--fills", default="/tmp/impute-default-fills")
    p.add_argument("--ensembles", help="A+B;C+D")
    p.add_argument("--pools", help="A,B,C;D,E")
    p.add_argument("--md", help="write the report here too")
    args = p.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
