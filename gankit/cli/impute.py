"""gankit impute: fill the missing cells of a CSV table with an imputer (the registry's
IMPUTERS: a GAN and a VAE)."""

from __future__ import annotations

import argparse

from .common import (add_device, add_model_choice, add_model_settings, check_not_input,
                     check_output, model_settings)


def add(sub, model: str | None = None) -> None:
    from ..models import DEFAULT_IMPUTER, IMPUTERS

    p = sub.add_parser("impute", help=f"fill the missing cells of a CSV table "
                       f"({', '.join(IMPUTERS)})",
                       description="Read a CSV with a header (empty cells, NA and NaN are "
                       "missing), train an imputer on it (or use --checkpoint), and write the "
                       "table with every missing cell filled and every other cell exactly as "
                       "it was. Whole-number and text columns get valid values of their column. "
                       "The run folder is kept in gankit's cache (or --run DIR) and printed: "
                       "the same table and settings reuse it, and --checkpoint RUN fills later "
                       "tables with the same header without training again.")
    p.set_defaults(run=run)
    p.add_argument("table", metavar="TABLE.csv", help="the table to fill")
    p.add_argument("--out", required=True, metavar="FILLED.csv", help="where to write it")
    add_model_choice(p, IMPUTERS, DEFAULT_IMPUTER)
    p.add_argument("--steps", type=int, metavar="N", help="training steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and filling (default: 0)")
    p.add_argument("--multiple", type=int, metavar="K", help="write K draws instead of one "
                   "filled table: FILLED_1.csv ... FILLED_K.csv (multiple imputation)")
    p.add_argument("--checkpoint", metavar="RUN", help="fill with this trained run instead of "
                   "training (a run folder of gankit impute; the table needs its header)")
    p.add_argument("--run", dest="run_dir", metavar="DIR", help="run folder to train into "
                   "(default: one in gankit's cache folder, named after the table, which the "
                   "same table and settings reuse without training again)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device(p)
    add_model_settings(p, IMPUTERS, DEFAULT_IMPUTER, model)


def run(args: argparse.Namespace) -> int:
    from ..errors import GankitError
    from ..impute import impute_csv
    from ..models import DEFAULT_IMPUTER, IMPUTERS

    if args.multiple is not None and args.multiple < 1:
        raise GankitError(f"--multiple must be at least 1, got {args.multiple}")
    if args.steps is not None and args.steps < 1:
        raise GankitError(f"--steps must be positive, got {args.steps}")
    check_not_input(args.table, ("--out", args.out))
    check_output(args.out, "--out")
    model, options = model_settings(args, IMPUTERS, DEFAULT_IMPUTER)
    if args.checkpoint and (options or args.steps or args.model):
        raise GankitError("--checkpoint fills with a trained run: drop --model, --steps and "
                          "model settings, or drop --checkpoint to train a new one")
    done = impute_csv(args.table, args.out, model, args.steps, args.seed, args.multiple,
                      args.checkpoint, args.run_dir, progress=not args.quiet, device=args.device,
                      **options)
    dropped = (f"; column(s) {', '.join(done['dropped'])} had no value and stay empty"
               if done["dropped"] else "")
    how = "the run trained before on this table" if done["reused"] else "run"
    print(f"filled {done['cells']:,} cells in {done['rows']:,} rows with {done['model']} "
          f"({how}: {done['run']}){dropped}: wrote {', '.join(done['written'])}")
    return 0
