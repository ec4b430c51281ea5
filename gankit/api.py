"""The Python API, mirroring the CLI: `gankit.train(...)` and `gankit.load(path)`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from .training import checkpoint
from .training.run_folder import to_resume
from .config import DataConfig, RunConfig, TrainConfig, default_out, from_dict, read_toml
from .errors import GankitError, option
from .models import DEFAULT, GenerativeModel, build_model, get_model_class

TABLES = ("model", "data", "train")

# Flags that may differ from a run's saved config when it is resumed: they change how long
# or where it runs, not what it computes (--sync-bn does, but it exists only on GPUs and
# only under torchrun, and a run may move to a CPU or to a single process).
RESUMABLE = {"steps", "device", "threads", "keep", "sync_bn"}


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check_tables(tables: dict[str, Any], where: str) -> None:
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise GankitError(f"unknown table or key {', '.join(unknown)} at the top of {where}: "
                          "put settings under [model], [data] or [train]")
    for table in TABLES:
        if not isinstance(tables.get(table, {}), dict):
            raise GankitError(f"{table} in {where} must be a table: write [{table}]")


def config_from_tables(tables: dict[str, Any], where: str = "config",
                       saved: bool = False) -> RunConfig:
    """A RunConfig from [model] (with its registry `name`), [data] and [train] tables, as
    TOML files, checkpoints and config.toml hold them; missing keys take their defaults,
    unknown ones are refused.

    `saved`: the tables are a run's saved config, perhaps from an older gankit. A field it
    lacks then takes the value that reproduces the older behaviour (the field's
    "saved_default", in any of the three tables), not the new default, and the model's
    training defaults do not apply (a saved [train] table is complete)."""
    _check_tables(tables, where)
    model_values = dict(tables.get("model", {}))
    name = model_values.pop("name", None) or DEFAULT
    model_cls = get_model_class(name)

    def values(cls, table: str, defaults: dict[str, Any]) -> dict[str, Any]:
        if saved:
            defaults = {f.name: f.metadata["saved_default"] for f in dataclasses.fields(cls)
                        if "saved_default" in f.metadata}
        given = model_values if table == "model" else tables.get(table, {})
        if table == "train" and not saved:
            defaults = _length(defaults, given, where)
        if not saved:   # a switch given on turns off the defaults it replaces (--augment: ADA)
            for f in dataclasses.fields(cls):
                if given.get(f.name) and "turns_off" in f.metadata:
                    defaults = {**f.metadata["turns_off"], **defaults}
        return {**defaults, **given}
    return RunConfig(model=name,
                     model_cfg=from_dict(model_cls.Config, values(model_cls.Config, "model", {}),
                                         f"[model] of {where}"),
                     data=from_dict(DataConfig, values(DataConfig, "data", {}),
                                    f"[data] of {where}"),
                     train=from_dict(TrainConfig, values(TrainConfig, "train",
                                                         model_cls.train_defaults),
                                     f"[train] of {where}"))


def train_defaults(model_cls) -> dict[str, Any]:
    """A model's [train] defaults as a run gets them (a default budget leaves steps open)."""
    return _length(model_cls.train_defaults, {}, "")


def _length(defaults: dict[str, Any], given: dict[str, Any], where: str) -> dict[str, Any]:
    """The [train] defaults once the training length is settled: a given --steps replaces a
    default budget, a given --budget the default steps; both given is refused (a saved
    run's config holds both: the budget and the count it became)."""
    steps, budget = given.get("steps"), given.get("budget")
    if steps is not None and budget is not None:
        raise GankitError(f"{option('steps', steps)} and {option('budget', budget)} both set "
                          f"the training length (in {where}): keep one")
    if steps is not None:
        return {**defaults, "budget": None}
    if budget is not None or defaults.get("budget") is not None:
        return {**defaults, "steps": None}
    return defaults


def model_for(model: str | None = None, config_file: str | None = None, resume: bool = False,
              out: str | None = None) -> str:
    """The model a training call means: `model`, else (on --resume) the saved run's, else
    the config file's, else the default. `gankit train` asks it to offer that model's flags."""
    if model is not None:
        return model
    named = _config_file_tables(config_file)["model"].get("name") if config_file else None
    if resume:
        last = checkpoint.last_in(out or default_out(named or DEFAULT))
        if last.is_file():
            return checkpoint.read_meta(last).get("model") or named or DEFAULT
    return named or DEFAULT


def _config_file_tables(config_file: str) -> dict[str, dict[str, Any]]:
    tables = {"model": {}, "data": {}, "train": {}, **read_toml(config_file)}
    _check_tables(tables, config_file)
    return tables


def _resumed_tables(out: str, model: str | None, options: dict[str, Any]) -> dict[str, dict]:
    """The saved run's config tables, after checking that `options` do not contradict it."""
    saved = checkpoint.read_meta(to_resume(out))["config"]
    if model is not None and model != saved["model"]["name"]:
        raise GankitError(f"{option('model', model)} differs from the resumed run's model "
                          f"{saved['model']['name']}: drop it, or start a new run")
    flat = {k: v for table in saved.values() for k, v in table.items() if k != "name"}
    for key, value in options.items():
        if key not in RESUMABLE | {"out"} and key in flat and flat[key] != value:
            changeable = ", ".join(option(k) for k in sorted(RESUMABLE))
            raise GankitError(f"{option(key, value)} differs from the resumed run's "
                              f"{flat[key]!r}: only {changeable} may change on resume")
    tables = {t: dict(saved[t]) for t in TABLES}
    tables["train"]["out"] = str(out)
    # The thread count is chosen again (the trainer keeps the saved one where the run had been
    # given it, or where it is still the fastest): the machine may be busier than it was.
    tables["train"].pop("threads", None)
    return tables


def make_config(model: str | None = None, config_file: str | None = None,
                resume: bool = False, **options: Any) -> RunConfig:
    """Defaults < config file < options; on resume, the run's saved config < options."""
    tables = _config_file_tables(config_file) if config_file else {t: {} for t in TABLES}
    if resume:
        name = model or tables["model"].get("name") or DEFAULT
        out = options.get("out") or tables["train"].get("out") or default_out(name)
        tables = _resumed_tables(out, model, options)
    if model is not None:
        tables["model"] = {**tables["model"], "name": model}
    model_cls = get_model_class(tables["model"].get("name") or DEFAULT)
    owners = [("data", _fields(DataConfig)), ("train", _fields(TrainConfig)),
              ("model", _fields(model_cls.Config))]
    for key, value in options.items():
        table = next((t for t, names in owners if key in names), None)
        if table is None:
            valid = sorted(set().union(*(names for _, names in owners)))
            raise GankitError(f"unknown option {key!r}: valid options are {', '.join(valid)}")
        tables[table] = {**tables[table], key: value}
    return config_from_tables(tables, where=config_file or "options", saved=resume)


def train(model: str | None = None, data: str | None = None, *, config: str | None = None,
          resume: bool = False, progress: bool = True, **options: Any):
    """Train a model and return the Run (model, run folder, metrics).

    Any config field is a keyword: `gankit.train(model="gan", data="mnist", steps=2000,
    lr_d=1e-4, out="runs/try")`. Same names as the CLI flags, with underscores.
    """
    from .training.trainer import train as run_loop

    if data is not None:
        options["data"] = data
    cfg = make_config(model, config, resume, **options)
    return run_loop(cfg, resume=resume, progress=progress)


def run_spec(meta: dict[str, Any], where: str | Path) -> tuple[RunConfig, tuple[int, int, int], int]:
    """(run config, image shape, number of classes) from a checkpoint's metadata: enough to
    build its model, or to check a command's arguments before any weights load."""
    try:
        cfg = config_from_tables(meta["config"], where=str(where), saved=True)
        return cfg, tuple(meta["image_shape"]), int(meta["num_classes"])
    except (KeyError, TypeError, ValueError):
        raise GankitError(f"checkpoint {where} has incomplete metadata: it was not written by "
                          "gankit train, or was edited") from None


def load(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> GenerativeModel:
    """Rebuild a trained model from a checkpoint (file or run folder) alone.

    The model comes back in inference mode; `model.sample(16)` gives 16 images in [-1, 1].
    A run trained with --ema samples with the averaged weights, unless `ema=False`.
    """
    tensors, meta = checkpoint.load(path)
    cfg, shape, num_classes = run_spec(meta, path)
    layout = None
    if "encoding" in meta:   # a table generator: the rows' encoding it was trained on
        from .data.row_encoding import RowEncoding
        layout = RowEncoding.from_dict(meta["encoding"])
    model = build_model(cfg.model, cfg.model_cfg, shape, num_classes, layout)
    checkpoint.load_weights(model, tensors, path)
    averaged = checkpoint.prefixed(tensors, "ema.")
    if ema and averaged:
        model.sampler.load_state_dict(averaged)
    model.class_names = list(meta.get("class_names") or model.class_names)
    model.class_counts = list(meta.get("class_counts") or [])   # absent in older checkpoints
    model.run_config = cfg
    return model.to(device).eval()
