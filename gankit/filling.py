"""What `gankit impute`, `gankit synth` and the scikit-learn imputers share: training a
model of a table (through the one training loop), in a run folder that the same table and
settings find again, and filling missing cells."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.table import TableData
from .errors import GankitError, option

CHUNK = 4096   # rows per pass through the model


def imputer_names() -> str:
    from .models import names_that
    return names_that(lambda c: getattr(c, "imputes", False), tables=True)


@torch.no_grad()
def fill(model, values: torch.Tensor, seed: int = 0, multiple: int | None = None) -> np.ndarray:
    """Completions of `values` (scaled rows, NaN = missing): (N, D), or (multiple, N, D)
    draws. Observed cells come back as they went in; the same seed gives the same cells."""
    if not getattr(model, "imputes", False):
        raise GankitError(f"this checkpoint is not an imputer: fill tables with a run of "
                          f"{imputer_names()} (gankit impute TABLE.csv --out FILLED.csv)")
    gen = torch.Generator().manual_seed(seed)
    parts = []
    model.eval()
    for start in range(0, len(values), CHUNK):
        x = values[start:start + CHUNK].to(model.device)
        out = model.impute(x, gen) if multiple is None else model.impute_draws(x, multiple, gen)
        parts.append(out.double().cpu())
    filled = torch.cat(parts, dim=-2).numpy()
    observed = ~np.isnan(values.numpy())
    return np.where(observed, values.numpy().astype(np.float64), filled)


def train_table(model: str, data: TableData, out: str, steps: int | None, seed: int,
                  progress: bool, options: dict[str, Any], resume: bool = False):
    """Train the table model `model` (an imputer or a table generator) on `data` into the
    run folder `out` (or finish the run there); returns the Run."""
    from .api import make_config
    from .training.trainer import train
    given = {k: v for k, v in {"steps": steps, **options}.items() if v is not None}
    if not resume:   # a resumed run keeps its saved name of the table, wherever it lies now
        given["data"] = data.name or "table"
    cfg = make_config(model, resume=resume, seed=seed, out=out, **given)
    return train(cfg, resume=resume, progress=progress, data=data)


def cached_run(table: str, header: list[str], rows: list[list[str]], model: str,
               steps: int | None, seed: int, options: dict[str, Any], use: str = "impute") -> Path:
    """The run folder `gankit impute` (or `synth`, `use`) trains into when given none: in
    the cache ($GANKIT_CACHE, else the user cache folder) under `use`/, named after the
    table and the model, with a digest of everything the training depends on (the cells,
    steps, seed, model settings). The same table and settings find the same folder, so
    using a table again costs no training; another table or setting gets a folder of its own."""
    from .files import cache_folder
    h = hashlib.sha256(json.dumps([header, rows, model, steps, seed, sorted(options.items())],
                                  default=str).encode())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(table).stem)[:40] or "table"
    return cache_folder("GANKIT_CACHE") / use / f"{stem}-{model}-{h.hexdigest()[:12]}"


def trained_or_reused(use: str, table: str, header, rows, data: TableData, model: str,
                      steps: int | None, seed: int, options: dict[str, Any], run: str | None,
                      progress: bool):
    """(trained model, its run folder, whether it was reused): the run in `run` (default:
    cached_run's) trained on `data`, or found there finished by an earlier call with the
    same table and settings; an interrupted one is finished."""
    from .api import load
    from .training import checkpoint as ckpt
    if run is not None and ckpt.last_in(run).is_file():
        raise GankitError(f"run folder {run} already holds a run: use it with "
                          f"{option('checkpoint', run)}, or choose another {option('run')}")
    run = str(run or cached_run(table, header, rows, model, steps, seed, options, use))
    last = ckpt.last_in(run)
    meta = ckpt.read_meta(last) if last.is_file() else None
    steps_done = meta and meta["config"]["train"].get("steps")
    if meta is not None and steps_done is not None and meta["step"] >= steps_done:
        return load(run), run, True
    return (train_table(model, data, run, steps, seed, progress, options,
                          resume=meta is not None).model, run, False)
