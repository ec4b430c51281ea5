"""gankit train: its flags come from the config dataclasses, the model's own included."""

from __future__ import annotations

import argparse
import sys

from ..config import DataConfig, TrainConfig
from .common import Parser, add_config_flags


def peek_model(argv: list[str]) -> str:
    """The model whose flags `train` should accept, before the real parse (which needs
    them): gankit.api.model_for decides, from --model, --resume's run or --config."""
    from ..api import model_for
    pre = Parser(prog="gankit " + argv[0], add_help=False)
    for flag in ("--model", "--config", "--out"):
        pre.add_argument(flag)
    pre.add_argument("--resume", action="store_true")
    known, _ = pre.parse_known_args(argv)
    return model_for(known.model, known.config, known.resume, known.out)


def add(sub, model: str | None) -> None:
    from ..api import train_defaults
    from ..models import DEFAULT, MODELS, get_model_class, model_name, registered
    tables = ", ".join(n for n in registered() if n not in MODELS)

    p = sub.add_parser("train", help="train a model; writes a run folder",
                       description="Train a model. Writes OUT/config.toml, metrics.csv, "
                       "samples/step_NNNNNN.png, loss.png and checkpoints/last.safetensors. "
                       "Ctrl-C saves a checkpoint; --resume continues from it.")
    p.set_defaults(run=run)
    p.add_argument("--model", default=argparse.SUPPRESS, choices=list(registered()),
                   help=f"which model to train (default: {DEFAULT}; see `gankit info`); "
                   f"{tables} learn from a CSV table (--data TABLE.csv; see gankit impute and "
                   "gankit synth)")
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file "
                   "with [model], [data] and [train] tables; flags override it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its "
                   "last checkpoint, with its saved config (--steps may change)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    model_cls = get_model_class(model if model in registered() else None)
    add_config_flags(p, DataConfig, "data")
    add_config_flags(p, TrainConfig, f"training (defaults: {model_name(model_cls)}'s)",
                     defaults=train_defaults(model_cls))
    add_config_flags(p, model_cls.Config, f"model ({model_name(model_cls)}; pick another with "
                     "--model NAME to see its flags)",
                     (model_cls.__doc__ or "").strip().splitlines()[0])


def run(args: argparse.Namespace) -> int:
    from ..api import make_config
    from ..training.trainer import train

    options = {k: v for k, v in vars(args).items()
               if k not in ("command", "run", "model", "config", "resume", "quiet")}
    cfg = make_config(getattr(args, "model", None), args.config, args.resume, **options)
    run = train(cfg, resume=args.resume, progress=not args.quiet)
    if run.rank != 0:   # under torchrun, rank 0 reports for the job
        return 128 + run.interrupted if run.interrupted else 0
    if run.interrupted:
        again = "gankit train" if run.world_size == 1 else "torchrun ... -m gankit train"
        print(f"stopped at step {run.step}: checkpoint saved in {run.out}/checkpoints; "
              f"continue with: {again} --resume --out {run.out}", file=sys.stderr)
        return 128 + run.interrupted
    last = run.metrics[-1] if run.metrics else {}
    summary = "  ".join(f"{k} {v:.3f}" for k, v in last.items() if k not in ("step", "seconds"))
    print(f"done: {run.step} steps in {run.out}  {summary}")
    if getattr(run.model, "generates_rows", False):
        print(f"synthesize: gankit synth TABLE.csv --out SYNTH.csv --checkpoint {run.out}")
    if getattr(run.model, "imputes", False):
        print(f"fill tables: gankit impute TABLE.csv --out FILLED.csv --checkpoint {run.out}")
    elif run.model.data_kind == "image":
        print(f"samples: {run.out}/samples/   sample more: gankit sample --checkpoint {run.out}")
    return 0
