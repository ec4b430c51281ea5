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
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        kw = dict(dest=f.name, default=argparse.SUPPRESS)
        if base_type(types[f.name]) is bool:
            # --flag / --no-flag: a model may default a switch to on (e.g. --augment).
            on = (defaults or {}).get(f.name, f.default)
            group.add_argument(flag, action=argparse.BooleanOptionalAction,
                               help=f"{help_text} (default: {'on' if on else 'off'})", **kw)
        else:
            value = (defaults or {}).get(f.name, f.default)
            default = "" if value is None else f" (default: {value})"
            tp = base_type(types[f.name])
            metavar = f.metadata.get("metavar") or {int: "N", float: "X"}.get(tp, f.name.upper())
            choices = f.metadata.get("choices")
            if choices:
                metavar = "{" + ",".join(choices) + "}"
            group.add_argument(flag, type=tp, metavar=metavar, choices=choices,
                               help=help_text + default, **kw)


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
    """The model of --checkpoint on the device of --device (its EMA weights unless --no-ema)."""
    from ..api import load
    return load(args.checkpoint, device=device or device_for(args),
                ema=not getattr(args, "no_ema", False))


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
