"""The Python API, mirroring the CLI: `gankit.train(...)` and `gankit.load(path)`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from . import checkpoint
from .config import DataConfig, RunConfig, TrainConfig, read_toml
from .errors import GankitError
from .models import GenerativeModel, build_model, get_model_class

# Flags that may differ from a run's saved config when it is resumed: they change how long
# or where it runs, not what it computes (--sync-bn does, but it exists only on GPUs and
# only under torchrun, and a run may move to a CPU or to a single process).
RESUMABLE = {"steps", "device", "threads", "keep", "sync_bn"}


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _resumed_tables(out: str, model: str | None, options: dict[str, Any]) -> dict[str, dict]:
    """The saved run's config tables, after checking that `options` do not contradict it."""
    last = checkpoint.last_in(out)
    if not last.is_file():
        raise GankitError(f"nothing to resume in {out}: no checkpoints/last.safetensors "
                          "(drop --resume to start a new run)")
    saved = checkpoint.read_meta(last)["config"]
    if model is not None and model != saved["model"]["name"]:
        raise GankitError(f"--model {model} differs from the resumed run's model "
                          f"{saved['model']['name']}: drop it, or start a new run")
    flat = {k: v for table in saved.values() for k, v in table.items() if k != "name"}
    for key, value in options.items():
        if key not in RESUMABLE | {"out"} and key in flat and flat[key] != value:
            raise GankitError(f"--{key.replace('_', '-')} {value} differs from the resumed run's "
                              f"{flat[key]!r}: only --steps, --device, --threads, --keep and "
                              "--sync-bn may change on resume")
    tables = {t: dict(saved[t]) for t in ("model", "data", "train")}
    tables["train"]["out"] = str(out)
    return tables


def make_config(model: str | None = None, config_file: str | None = None,
                resume: bool = False, **options: Any) -> RunConfig:
    """Defaults < config file < options; on resume, the run's saved config < options."""
    tables: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}}
    if config_file:
        tables.update(read_toml(config_file))
        for name in ("model", "data", "train"):
            if not isinstance(tables[name], dict):
                raise GankitError(f"{name} in {config_file} must be a table: write [{name}]")
    if resume:
        out = options.get("out") or tables["train"].get("out") or TrainConfig.out
        tables = _resumed_tables(out, model, options)
    if model is not None:
        tables["model"] = {**tables["model"], "name": model}
    model_cls = get_model_class(tables["model"].get("name", "gan"))
    owners = [("data", _fields(DataConfig)), ("train", _fields(TrainConfig)),
              ("model", _fields(model_cls.Config))]
    for key, value in options.items():
        table = next((t for t, names in owners if key in names), None)
        if table is None:
            valid = sorted(set().union(*(names for _, names in owners)))
            raise GankitError(f"unknown option {key!r}: valid options are {', '.join(valid)}")
        tables[table] = {**tables[table], key: value}
    return RunConfig.from_tables(tables, where=config_file or "options")


def train(model: str | None = None, data: str | None = None, *, config: str | None = None,
          resume: bool = False, progress: bool = True, **options: Any):
    """Train a model and return the Run (model, run folder, metrics).

    Any config field is a keyword: `gankit.train(model="gan", data="mnist", steps=2000,
    lr_d=1e-4, out="runs/try")`. Same names as the CLI flags, with underscores.
    """
    from .trainer import train as run_loop

    if data is not None:
        options["data"] = data
    cfg = make_config(model, config, resume, **options)
    return run_loop(cfg, resume=resume, progress=progress)


def load(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> GenerativeModel:
    """Rebuild a trained model from a checkpoint (file or run folder) alone.

    The model comes back in inference mode; `model.sample(16)` gives 16 images in [-1, 1].
    A run trained with --ema samples with the averaged weights, unless `ema=False`.
    """
    from .trainer import load_weights

    tensors, meta = checkpoint.load(path)
    try:
        cfg = RunConfig.from_tables(meta["config"], where=str(path))
        model = build_model(meta["model"], cfg.model_cfg, tuple(meta["image_shape"]),
                            meta["num_classes"])
    except (KeyError, TypeError):
        raise GankitError(f"checkpoint {path} has incomplete metadata: it was not written by "
                          "gankit train, or was edited") from None
    load_weights(model, tensors, path)
    averaged = checkpoint.prefixed(tensors, "ema.")
    if ema and averaged:
        getattr(model, model.sampling_network).load_state_dict(averaged)
    model.class_names = meta.get("class_names", [])
    model.class_counts = meta.get("class_counts", [])   # absent in older checkpoints
    model.run_config = cfg
    return model.to(device).eval()
