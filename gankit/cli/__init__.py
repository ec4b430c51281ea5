"""The `gankit` command: train, sample, interpolate, eval, inpaint, classify, impute, synth,
serve, info.

One module per subcommand (or pair of them), each with `add(subparsers)`, which defines its
flags and sets `run`, the function that does it; the flags several commands share are
defined once in common.py. Training flags are derived from the config dataclasses
(gankit/config.py and each model's Config), so a new config field is a new flag with its
help text, and nothing here changes.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .._version import __version__
from ..errors import GankitError, did_you_mean, speaking_cli
from . import classify, evaluate, generate, impute, inpaint, serve, synth, synth_report, train
from .common import Parser, peek_model


def build_parser(model: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; `train` (or `impute`) offers the flags of `model` (default:
    the default)."""
    parser = Parser(
        prog="gankit", description="Train, sample and inspect generative image models.")
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train.add(sub, model)
    generate.add(sub)
    evaluate.add(sub)
    classify.add(sub)
    inpaint.add(sub)
    impute.add(sub, model)
    synth_report.add(sub)
    synth.add(sub, model)
    serve.add(sub)
    sub.add_parser("info", help="list the models and datasets").set_defaults(run=info)
    return parser


def parse(parser: Parser, argv: list[str]) -> argparse.Namespace:
    """parse_args, but an unknown flag is refused by its subcommand's parser, which names
    the closest flag it has and its own --help."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = sub.choices[args.command]
        flags = [f for a in command._actions for f in a.option_strings]
        command.error(f"unrecognized argument(s) {' '.join(extra)}"
                      f"{did_you_mean(extra[0].split('=')[0], flags)}")
    return args


def info(args: argparse.Namespace) -> int:
    from ..data import dataset_names, describe
    from ..models import IMPUTERS, MODELS, SYNTHESIZERS

    for title, models in (("models:", MODELS), ("imputers (tables; gankit impute):", IMPUTERS),
                          ("table generators (gankit synth):", SYNTHESIZERS)):
        print(title)
        for name, cls in models.items():
            print(f"  {name:16s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    print("datasets:")
    for name in dataset_names():
        print(f"  {name:16s} {describe(name)}")
    print("  PATH             any folder of images (subfolders become labels)")
    print(f"  TABLE.csv        a CSV table (to fill: {', '.join(IMPUTERS)}; to synthesize: "
          f"{', '.join(SYNTHESIZERS)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Warnings (e.g. "offline: using the 5,000-digit MNIST subset") as one readable line.
    warnings.formatwarning = lambda msg, *args, **kw: f"gankit: warning: {msg}\n"
    try:
        with speaking_cli():   # messages name options as flags (--resume, not resume=True)
            peek = {"train": train.peek_model, "impute": peek_model, "synth": peek_model}
            model = peek[argv[0]](argv) if argv[:1] and argv[0] in peek else None
            args = parse(build_parser(model), argv)
            return args.run(args)
    except GankitError as e:
        from .common import report_error   # under torchrun: names the rank
        print(report_error(f"gankit: error: {e}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `gankit classify ... | head`: the reader has what it wanted
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no error at exit
        return 141            # 128 + SIGPIPE, as a shell reports a command cut off so
