"""What `gankit impute` and the scikit-learn imputers share: training an imputer on a
table's rows (through the one training loop) and filling their missing cells."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .data.table import TableData
from .errors import GankitError

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


def train_imputer(model: str, data: TableData, out: str, steps: int | None, seed: int,
           progress: bool, options: dict[str, Any], resume: bool = False):
    from .api import make_config
    from .training.trainer import train
    given = {k: v for k, v in {"steps": steps, **options}.items() if v is not None}
    if not resume:   # a resumed run keeps its saved name of the table, wherever it lies now
        given["data"] = data.name or "table"
    cfg = make_config(model, resume=resume, seed=seed, out=out, **given)
    return train(cfg, resume=resume, progress=progress, data=data)
