"""gankit synth: learn a CSV table and write a synthetic one (the registry's SYNTHESIZERS)."""

from __future__ import annotations

import argparse

from .common import (add_device, add_model_choice, add_model_settings, check_not_input,
                     check_output, model_settings)


def add(sub, model: str | None = None) -> None:
    from ..models import DEFAULT_SYNTHESIZER, SYNTHESIZERS

    p = sub.add_parser("synth", help=f"learn a CSV table and write a synthetic one "
                       f"({', '.join(SYNTHESIZERS)})",
                       description="Read a CSV with a header (empty cells, NA and NaN are "
                       "missing), train a table generator on it (or use --checkpoint), and write "
                       "new rows with the same columns: whole numbers within their range, text "
                       "only from the table's own values, missing cells at each column's rate. "
                       "The run folder is kept in gankit's cache (or --run DIR) and printed: the "
                       "same table and settings reuse it, and --checkpoint RUN samples again "
                       "without training. The same seed gives the same file. Judge the result "
                       "with gankit synth-report.")
    p.set_defaults(run=run)
    p.add_argument("table", metavar="TABLE.csv", help="the table to learn")
    p.add_argument("--out", required=True, metavar="SYNTH.csv", help="where to write the rows")
    p.add_argument("--rows", type=int, metavar="N", help="rows to write (default: as many as "
                   "the table has)")
    add_model_choice(p, SYNTHESIZERS, DEFAULT_SYNTHESIZER)
    _add_training(p)
    p.add_argument("--condition", action="append", default=[], metavar="COLUMN=VALUE",
                   help="every row takes this value (a text column, or a whole-number column "
                   "of at most 20 values; COLUMN= is a missing cell); repeat for several. "
                   "Models with a conditional vector (ctgan) draw the first exactly, the "
                   "rest are kept from rows drawn")
    p.add_argument("--checkpoint", metavar="RUN", help="sample from this trained run instead "
                   "of training (a run folder of gankit synth; the table needs its header)")
    p.add_argument("--run", dest="run_dir", metavar="DIR", help="run folder to train into "
                   "(default: one in gankit's cache folder, which the same table and settings "
                   "reuse without training again)")
    p.add_argument("--no-report", dest="report", action="store_false", help="do not judge "
                   "the rows of a newly trained run against the table (by default its run folder "
                   "gets report.html and report.json, which gankit serve shows; gankit "
                   "synth-report judges with held-out rows)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device(p)
    add_model_settings(p, SYNTHESIZERS, DEFAULT_SYNTHESIZER, model)


def _add_training(p) -> None:
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, metavar="N", help="training steps (default: "
                        "the model's)")
    length.add_argument("--budget", metavar="TIME", help="train for this long instead: 90s, "
                        "5m, 1h (the step count that fits is recorded in the run)")
    p.add_argument("--batch-size", type=int, metavar="N", help="rows per training step "
                   "(default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and sampling "
                   "(default: 0)")


def run(args: argparse.Namespace) -> int:
    from ..errors import GankitError
    from ..models import DEFAULT_SYNTHESIZER, SYNTHESIZERS
    from ..synth import synth_csv

    if args.rows is not None and args.rows < 1:
        raise GankitError(f"--rows must be at least 1, got {args.rows}")
    if args.steps is not None and args.steps < 1:
        raise GankitError(f"--steps must be positive, got {args.steps}")
    check_not_input(args.table, ("--out", args.out))
    check_output(args.out, "--out")
    model, options = model_settings(args, SYNTHESIZERS, DEFAULT_SYNTHESIZER)
    if args.checkpoint and (options or args.steps or args.budget or args.model or args.batch_size):
        raise GankitError("--checkpoint samples from a trained run: drop --model, --steps, "
                          "--budget, --batch-size and model settings, or drop --checkpoint to "
                          "train a new one")
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise GankitError(f"--batch-size must be positive, got {args.batch_size}")
        options["batch_size"] = args.batch_size
    done = synth_csv(args.table, args.out, args.rows, model, args.steps, args.budget, args.seed,
                     args.condition, args.checkpoint, args.run_dir, progress=not args.quiet,
                     report=args.report, device=args.device, **options)
    dropped = (f"; column(s) {', '.join(done['dropped'])} had no value and stay empty"
               if done["dropped"] else "")
    how = "the run trained before on this table" if done["reused"] else "run"
    print(f"wrote {done['rows']:,} synthetic rows with {done['model']} to {done['written']} "
          f"({how}: {done['run']}){dropped}")
    if done["report"]:
        q = done["report"]["quality"]
        print(f"judged against the table: quality {q['score']:.3f} (column shapes "
              f"{q['column_shapes']:.3f}, pair trends {q['column_pair_trends']:.3f}); "
              f"{done['run']}/report.html has the pictures")
    return 0
