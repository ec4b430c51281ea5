"""Typed configuration: one dataclass per concern.

The CLI flags and the `--config run.toml` tables are derived from these dataclasses, so a
field added here is a flag and a TOML key at once. Values are validated on construction and
an invalid one raises GankitError naming the field. A model declares its own config
dataclass (subclassing ModelConfig) and sees only that.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from .errors import GankitError, option
from .files import atomic_write

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _help(text: str, **kw) -> dict:
    return {"help": text, **kw}


def positive(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and not value > 0:
            raise GankitError(f"{name} must be positive, got {value!r}: pass a value > 0")


def finite_positive(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise GankitError(f"{name} must be a finite number > 0, got {value!r}")


def unit_interval(cfg, *names: str) -> None:
    """Each named field in [0, 1) (Adam's betas)."""
    for name in names:
        value = getattr(cfg, name)
        if not (math.isfinite(value) and 0 <= value < 1):
            raise GankitError(f"{name} must be in [0, 1), got {value!r}")


def finite_nonnegative(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value >= 0):
            raise GankitError(f"{name} must be a finite number >= 0, got {value!r}")


def one_of(cfg, name: str, options: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in options:
        raise GankitError(f"{name} must be one of {', '.join(options)}, got {value!r}")


PRECISIONS = ("fp32", "bf16", "auto")
BUDGET_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(text: str) -> float:
    """'90s', '5m', '1.5h' (or a bare number of seconds) -> seconds; GankitError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text).lower())
    seconds = float(m.group(1)) * BUDGET_UNITS[m.group(2) or "s"] if m else math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise GankitError(f"{option('budget', text)} is not a time: write e.g. 90s, 5m or 1h "
                          "(a number of seconds, minutes or hours, above 0)")
    return seconds


def default_of(cls, name: str, value: Any):
    """A field of a subclass that keeps `cls`'s field `name` (help text and all) but with
    another default: how a model states its own recipe for a shared option."""
    return field(default=value, metadata=cls.__dataclass_fields__[name].metadata)


@dataclass
class DataConfig:
    data: str = field(default="mnist", metadata=_help(
        "dataset name (see `gankit info`) or a folder of images; subfolders become labels"))
    data_dir: str | None = field(default=None, metadata=_help(
        "where dataset files are found and downloaded to (default: $GANKIT_DATA, "
        "else the user cache folder)"))
    image_size: int | None = field(default=None, metadata=_help(
        "resize and centre-crop folder images to this size (default 28)"))
    channels: int | None = field(default=None, metadata=_help(
        "folder images: 1 for gray, 3 for RGB (default: 1 when every image is gray, else 3)"))
    offline: bool = field(default=False, metadata=_help(
        "never touch the network (also GANKIT_OFFLINE=1)"))
    hold_out: bool | None = field(default=True, metadata=_help(
        "folders of images: keep the images evaluation holds out (about a fifth, chosen by a "
        "hash of each image's pixels) out of training; --no-hold-out trains on every image, "
        "and every evaluation then says its numbers are not held out (mnist and "
        "fashion-mnist hold out their own test files)", saved_default=None))
    validation: int = field(default=0, metadata=_help(
        "keep the last N images of each class (of an unlabelled folder: N in all) out of "
        "training, as a validation split for choosing settings (benchmarks/sweep.py); the "
        "held-out split that `gankit eval` reports on stays untouched; 0 trains on all"))

    def __post_init__(self):
        positive(self, "image_size")
        if self.validation < 0:
            raise GankitError(f"validation must be >= 0, got {self.validation}")
        if self.channels not in (None, 1, 3):
            raise GankitError(f"channels must be 1 or 3, got {self.channels!r}")
        if not self.data:
            raise GankitError("data is empty: name a dataset (see `gankit info`) or a folder")


@dataclass
class TrainConfig:
    steps: int | None = field(default=30_000, metadata=_help(
        "training iterations (the original's 'epochs' are iterations: 30,000 x batch 32 "
        "is about 16 passes over MNIST); replaces the model's --budget"))
    budget: str | None = field(default=None, metadata=_help(
        "train for this long instead of a number of steps: 90s, 5m, 1h; the first steps are "
        "timed, and the step count that fits is recorded in config.toml (so the run can be "
        "repeated with --steps, and --resume finishes it); grids, checkpoints and "
        "evaluations take their time on top", metavar="TIME"))
    batch_size: int = field(default=32, metadata=_help(
        "images per iteration, per process: under `torchrun --nproc-per-node K` every "
        "process draws this many, so a step sees K times as many (the global batch)"))
    seed: int = field(default=0, metadata=_help("random seed; CPU runs with the same seed are identical"))
    out: str | None = field(default=None, metadata=_help(
        "run folder: config, metrics, samples, checkpoints (default: runs/MODEL)"))
    sample_every: int = field(default=200, metadata=_help("write a 5x5 sample grid every N steps"))
    checkpoint_every: int = field(default=1000, metadata=_help("save checkpoints/last every N steps (and at the end)"))
    keep: int = field(default=0, metadata=_help(
        "also keep the N newest checkpoints as checkpoints/step_NNNNNN.safetensors (0: only last)"))
    log_every: int = field(default=50, metadata=_help("average the losses and write a metrics.csv row every N steps"))
    device: str = field(default="auto", metadata=_help("auto, cpu, cuda, cuda:N or mps"))
    threads: int | None = field(default=None, metadata=_help(
        "CPU threads for torch (default: the cores other processes leave free when training "
        "starts, up to 8; GANKIT_THREADS sets a fixed default; the count used is saved in "
        "config.toml; docs/guide/training.md#threads)"))
    eval_every: int | None = field(default=None, metadata=_help(
        "every N steps score FID and the class entropy of generated samples (metrics.csv and "
        "the bar) and keep checkpoints/best by FID; the first use trains the dataset's "
        "feature classifier (minutes, once; cached)"))
    eval_samples: int | None = field(default=None, metadata=_help(
        "samples per evaluation (default: the held-out split's size, as `gankit eval` uses, "
        "so the numbers match)"))
    ema: float = field(default=0.0, metadata=_help(
        "keep an exponential moving average of the generator's (decoder's) weights with "
        "this decay, e.g. 0.999; sample grids and `gankit sample` use it; 0 turns it off"))
    cuda_graphs: bool = field(default=True, metadata=_help(
        "on a CUDA GPU, record the training step once as a CUDA graph and replay it: one "
        "launch a step instead of hundreds, the same results; a step that cannot be "
        "recorded runs eagerly (say so once); no effect on CPU"))
    precision: str = field(default="fp32", metadata=_help(
        "fp32, or bf16: autocast the step's products and convolutions to bfloat16 "
        "(weights, optimizer state and losses stay float32); faster on GPUs and CPUs "
        "with bf16 units, not the same rounding; auto: bf16 where the device has them, "
        "else fp32", choices=PRECISIONS))
    sync_bn: bool = field(default=False, metadata=_help(
        "under torchrun on GPUs: BatchNorm normalises with the statistics of the global "
        "batch (torch.nn.SyncBatchNorm) instead of each process's own; no effect in a "
        "single process; not available on CPU"))

    def __post_init__(self):
        positive(self, "steps", "batch_size", "sample_every", "checkpoint_every", "log_every",
                  "threads", "eval_every")
        if self.budget is not None:
            parse_budget(self.budget)
        elif self.steps is None:
            raise GankitError(f"no training length: pass {option('steps', 'N')} or "
                              f"{option('budget', '5m')}")
        if self.keep < 0:
            raise GankitError(f"keep must be >= 0, got {self.keep}")
        if self.eval_samples is not None and self.eval_samples < 2:
            raise GankitError(f"eval_samples must be at least 2, got {self.eval_samples}")
        if not (math.isfinite(self.ema) and 0 <= self.ema < 1):
            raise GankitError(f"ema must be in [0, 1), got {self.ema!r}: "
                              f"e.g. {option('ema', 0.999)}")
        if self.seed < 0:
            raise GankitError(f"seed must be >= 0, got {self.seed}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or dev.startswith("cuda:")):
            raise GankitError(f"device must be auto, cpu, cuda, cuda:N or mps, got {dev!r}")
        one_of(self, "precision", PRECISIONS)
        if self.out == "":
            raise GankitError(f"out is empty: name a run folder, e.g. {option('out', 'runs/try')}")


@dataclass
class ModelConfig:
    """Base of every model's config; a model subclasses it with its own fields."""


# --- conversion to and from plain dicts (TOML, JSON, CLI) ------------------------------

def field_types(cls) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def base_type(tp) -> type:
    """`int | None` -> int; the scalar type a field's value is parsed as."""
    args = [a for a in getattr(tp, "__args__", ()) if a is not type(None)]
    return args[0] if args else tp


def coerce(cls, name: str, value: Any) -> Any:
    """Check (and for floats widen) one value read from TOML or JSON against its field type."""
    tp = field_types(cls)[name]
    if value is None:
        if type(None) in getattr(tp, "__args__", ()):
            return None
        raise GankitError(f"{name} cannot be empty")
    want = base_type(tp)
    if want is str and isinstance(value, os.PathLike):   # API users pass Paths for folders
        return os.fspath(value)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is bool and not isinstance(value, bool):
        raise GankitError(f"{name} must be true or false, got {value!r}")
    if want is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise GankitError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, want):
        raise GankitError(f"{name} must be of type {want.__name__}, got {value!r}")
    return value


def from_dict(cls, values: dict[str, Any], where: str = "config"):
    """Build `cls` from a dict, rejecting unknown keys and wrong types with a named error."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise GankitError(f"unknown key(s) {', '.join(unknown)} in {where}; "
                          f"valid keys: {', '.join(sorted(known))}")
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()})


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise GankitError(f"config file {path} does not exist") from None
    except OSError as e:   # a folder, no permission
        raise GankitError(f"cannot read config file {path} ({e.strerror or e}): "
                          "pass a readable .toml file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise GankitError(f"config file {path} is not valid TOML: {e}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {v!r} to TOML")


def write_toml(path: str, tables: dict[str, dict[str, Any]], comment: str = "") -> None:
    """Write tables of scalars (None values are left out: TOML has no null), after an
    optional comment (one '# ' line per line of it)."""
    lines = [f"# {line}" for line in comment.splitlines()]
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines))


def default_out(model: str) -> str:
    """The run folder of a run that names none."""
    return f"runs/{model}"


@dataclass
class RunConfig:
    """Everything a training run is made of; written to the run folder as config.toml.

    Built from tables (a TOML file, a checkpoint, keyword options) by gankit.api, which
    knows the model registry; this module does not import the models, whose configs
    import it."""
    model: str                 # a registry name
    model_cfg: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.train.out is None:
            self.train = dataclasses.replace(self.train, out=default_out(self.model))

    def to_tables(self) -> dict[str, dict[str, Any]]:
        return {"model": {"name": self.model, **to_dict(self.model_cfg)},
                "data": to_dict(self.data), "train": to_dict(self.train)}
