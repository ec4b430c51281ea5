"""A trained conditional model as a classifier on the held-out digits: accuracy and cost per
image against the number of likelihood samples (a CVAE's importance samples, a flow's
Hutchinson probes), and the flow's ODE steps.

    python benchmarks/likelihood.py --run runs/recipes-flow/cflow/seed0 --samples 1 4
    python benchmarks/likelihood.py --run RUN --samples 1 --sample-steps 4 8 16 --solvers euler heun \
        --times 0.3 0.5 1

Every image is scored for every class (gankit.classify, common random numbers across the
classes); p(y) from the run's training class counts. --n held-out digits, a seeded subset
(default all 1,000; --skip leaves out the first digits of that order, e.g. those a setting
was chosen on). Seconds are wall time on --threads torch threads. Writes
benchmarks/results/likelihood[TAG].md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gankit  # noqa: E402
from gankit.classify import classify  # noqa: E402
from gankit.data.reference import reference_split  # noqa: E402
from gankit.models import model_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--samples", nargs="+", type=int, default=[1])
    ap.add_argument("--sample-steps", nargs="*", type=int, default=[],
                    help="a flow's ODE steps to try (default: the run's)")
    ap.add_argument("--solvers", nargs="*", default=[], help="a flow's solvers to try "
                    "(default: the run's)")
    ap.add_argument("--times", nargs="*", type=float, default=[], help="a flow's "
                    "likelihood_time values to try (default: the run's)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--skip", type=int, default=0, help="leave out the subset's first SKIP "
                    "digits (those a setting was chosen on) and score the next --n")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = gankit.load(args.run)
    _, held, description = reference_split(model.run_config.data)
    order = torch.randperm(len(held), generator=torch.Generator().manual_seed(0))
    order = order[args.skip:args.skip + args.n]
    images, labels = held.images[order], held.labels[order]
    rows = []
    grid = [(s, n, t) for s in args.solvers or [None] for n in args.sample_steps or [None]
            for t in args.times or [None]]
    for solver, steps, when in grid:
        settings = {k: v for k, v in (("solver", solver), ("sample_steps", steps),
                                      ("likelihood_time", when)) if v}
        with model.sampling_as(**settings):
            for k in args.samples:
                start = time.perf_counter()
                pred = classify(model, images, samples=k, seed=0)
                secs = time.perf_counter() - start
                acc = float((pred.labels == labels).float().mean())
                rows.append((model.likelihood_method(k), acc, secs / len(images)))
                print(rows[-1], flush=True)
    name = model_name(model)
    which = f" after the first {args.skip:,} of the seeded order" if args.skip else ""
    lines = [f"run: {args.run} ({name}); {len(images):,}{which} of {description}; "
             f"{args.threads} torch threads", "",
             "| log p(x|y) by | accuracy | seconds per image (all classes) |",
             "|---|---|---|"]
    lines += [f"| {method} | {100 * a:.1f}% | {t:.3f} |" for method, a, t in rows]
    out = ROOT / "benchmarks" / "results" / f"likelihood{args.tag}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
