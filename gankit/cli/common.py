"""What several subcommands share, defined once: flags, output-path checks, loading."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from ..config import base_type, field_types
from ..errors import GankitError, did_you_mean


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line: the problem, the closest valid name for a
    typo, and where the help is (not the whole usage block, which buries the error)."""

    def _check_value(self, action: argparse.Action, value) -> None:
        choices = action.choices
        if choices is not None and value not in choices:
            what = ("command" if isinstance(action, argparse._SubParsersAction)
                    else "/".join(action.option_strings) or action.dest)
            raise argparse.ArgumentError(None, f"unknown {what} {value!r}"
                                         f"{did_you_mean(value, choices)}: choose from "
                                         f"{', '.join(map(str, choices))}")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- flags ---------------------------------------------------------------------------------

def add_checkpoint(target, what: str = "", required: bool = True) -> None:
    """--checkpoint PATH; `what` says which models the command takes, or what it does."""
    target.add_argument("--checkpoint", required=required, metavar="PATH",
                        help=" ".join(["a run folder or a .safetensors checkpoint", what]).strip())


def add_label(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--label", metavar="CLASS", help=f"conditional models: {what}; a class "
                        "name (a folder's subfolder: --label three) or its index, 0-based in "
                        "the run's class order")


def peek_model(argv: list[str]) -> str | None:
    """The --model of a command line before the real parse, which needs it to offer that
    model's flags (impute, synth)."""
    pre = Parser(prog="gankit " + argv[0], add_help=False)
    pre.add_argument("--model")
    known, _ = pre.parse_known_args(argv)
    return known.model


def add_model_choice(parser: argparse.ArgumentParser, models: dict, default: str) -> None:
    """--model among `models` (a registry), each named with its docstring's first line."""
    parser.add_argument("--model", choices=list(models),
                        help="; ".join(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}"
                                       for name, cls in models.items())
                        + f" (default: {default})")


def add_model_settings(parser: argparse.ArgumentParser, models: dict, default: str,
                       model: str | None) -> None:
    """The settings of `model` (a registry's; another command's --model, such as
    `gankit train --model dcgan`, builds this parser too: then `default`'s) as flags."""
    name = model if model in models else default
    cls = models[name]
    add_config_flags(parser, cls.Config, f"model ({name}; --model NAME --help shows another's)",
                     (cls.__doc__ or "").strip().splitlines()[0])


def model_settings(args: argparse.Namespace, models: dict, default: str) -> tuple[str, dict]:
    """(the model asked for, its settings given as flags)."""
    model = args.model or default
    fields = {f.name for f in dataclasses.fields(models[model].Config)}
    return model, {k: v for k, v in vars(args).items() if k in fields}


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")


def add_seed(parser: argparse.ArgumentParser, what: str, default: int | None = None) -> None:
    shown = "random" if default is None else default
    parser.add_argument("--seed", type=int, default=default,
                        help=f"seed for {what} (default: {shown})")


def add_no_ema(parser: argparse.ArgumentParser, what: str = "use the last weights") -> None:
    parser.add_argument("--no-ema", action="store_true",
                        help=f"{what} even when the run kept an average (--ema)")


def add_json(parser: argparse.ArgumentParser, what: str = "instead of a table") -> None:
    parser.add_argument("--json", action="store_true", help=f"print one JSON object {what}")


def add_config_flags(parser: argparse.ArgumentParser, cls, title: str,
                     description: str | None = None, defaults: dict | None = None) -> None:
    """One flag per field of a config dataclass, with its help text and type: a new config
    field is a new flag, and nothing in the CLI changes. `defaults` replaces the shown
    default of some fields (a model's own training defaults)."""
    group = parser.add_argument_group(title, description)
    types = field_types(cls)
    for f in dataclasses.fields(cls):
        value = (defaults or {}).get(f.name, f.default)
        if base_type(types[f.name]) is bool:   # a model may default a switch to on (--augment)
            shown = "on" if value else "off"
        else:
            shown = None if value is None else value
        _add_field(group, f, base_type(types[f.name]), shown)


def _add_field(group, f: dataclasses.Field, tp: type, shown, note: str = "default") -> None:
    """The flag of one config field; `shown` is the default its help shows (None: none)."""
    flag = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help", "") + ("" if shown is None else f" ({note}: {shown})")
    kw = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
    if tp is bool:   # --flag / --no-flag
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        return
    metavar = f.metadata.get("metavar") or {int: "N", float: "X"}.get(tp, f.name.upper())
    choices = f.metadata.get("choices")
    if choices:
        metavar = "{" + ",".join(choices) + "}"
    group.add_argument(flag, type=tp, metavar=metavar, choices=choices, **kw)


def add_sampling_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per sampling setting of the models that have some; load_model applies those
    given to the checkpoint's model, which refuses one it lacks in one line."""
    from ..models import names_that, sampling_fields
    group = parser.add_argument_group(
        "sampling settings", "how a model that has them draws samples; by default as it was "
        "trained (its config.toml)")
    for name, (f, tp) in sampling_fields().items():
        models = names_that(lambda cls, n=name: n in cls.sampling_settings)
        _add_field(group, f, tp, models, note="models")


# --- checks and loading ---------------------------------------------------------------------

def check_output(path: str, flag: str, image: bool = False) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    target = Path(path)
    parent = target.resolve().parent
    if not parent.is_dir():
        raise GankitError(f"cannot write {path}: folder {parent} does not exist "
                          f"(create it or choose another {flag})")
    if target.is_dir():
        raise GankitError(f"cannot write {path}: it is a folder; give {flag} a file name")
    if image:
        from ..images import image_format
        image_format(path)


def check_not_input(source: str, *outputs: tuple[str, str | None]) -> None:
    """Refuse an output (flag, path) that would overwrite the input file."""
    for flag, out in outputs:
        if out and Path(out).resolve() == Path(source).resolve():
            raise GankitError(f"{flag} {out} would overwrite the input: choose another {flag}")


def device_for(args: argparse.Namespace):
    """The device of --device, with a fixed CPU thread count: MKL may otherwise pick fewer
    threads on a busy machine, and a different count rounds differently, so the same
    --seed could give other pixels."""
    from ..runtime import configure_threads, pick_device
    device = pick_device(args.device)
    configure_threads(None, device)
    return device


def load_model(args: argparse.Namespace, device=None):
    """The model of --checkpoint on the device of --device (its EMA weights unless --no-ema),
    with the sampling settings given as flags."""
    from ..api import load
    from ..models import sampling_fields
    model = load(args.checkpoint, device=device or device_for(args),
                 ema=not getattr(args, "no_ema", False))
    settings = {k: getattr(args, k) for k in sampling_fields() if hasattr(args, k)}
    return model.set_sampling(**settings) if settings else model


def report_error(line: str) -> str:
    """Under torchrun: mark an error line with the process's rank, and hand it to torchrun
    (TORCHELASTIC_ERROR_FILE) so its failure summary shows it instead of a pointer to
    the docs. Elsewhere the line is returned as it is."""
    rank = os.environ.get("RANK")
    if rank is None or int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return line
    line = line.replace("error: ", f"error: [rank {rank}] ", 1)
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        try:
            # torchrun's own format (torch.distributed.elastic ErrorHandler), with our line
            # where a traceback would go: its failure summary prints that field.
            info = {"py_callstack": line, "timestamp": str(int(time.time()))}
            Path(path).write_text(json.dumps({"message": {"message": line, "extraInfo": info}}))
        except OSError:
            pass
    return line
