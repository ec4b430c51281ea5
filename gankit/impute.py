"""Imputation: given some cells of a table, fill in the others ("given some features,
predict the rest", on tables).

The models are gain (a GAN) and miwae (a VAE), trained by the same loop as the image
models on a TableData (data/table.py), whose rows hold NaN where a cell is missing.

- fill(): a trained imputer's completions of scaled rows, single or multiple (filling.py);
- impute_csv(): `gankit impute`: a CSV in, the same CSV with its missing cells filled out;
- GAINImputer, MIWAEImputer: the scikit-learn imputer interface (fit, transform,
  fit_transform, missing_values, random_state, add_indicator) over numeric arrays.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from .data.table import Schema, TableData, read_csv, table_data, write_csv
from .errors import GankitError, option
from .filling import fill, imputer_names, trained_or_reused


def impute_csv(table: str, out: str, model: str | None = None, steps: int | None = None,
               seed: int = 0, multiple: int | None = None, checkpoint: str | None = None,
               run: str | None = None, progress: bool = True,
               **options: Any) -> dict[str, Any]:
    """`gankit impute`: fill the missing cells of the CSV `table` and write the result to
    `out` (with `multiple` K: K files, out's name with _1 ... _K). Trains `model` into the
    run folder `run` (default: filling.cached_run's, where an earlier call with the same table and
    settings left a trained run to reuse, or an interrupted one to finish) unless
    `checkpoint` names a trained one. Returns what was done."""
    from .models import DEFAULT_IMPUTER
    from .training import checkpoint as ckpt
    model = model or DEFAULT_IMPUTER
    header, rows = read_csv(table)
    if checkpoint is not None:
        from .api import load
        meta = ckpt.read_meta(checkpoint)
        if "table" not in meta:
            raise GankitError(f"{option('checkpoint', checkpoint)} is an image model "
                              f"({meta.get('model')}): give a run of gankit impute "
                              f"({imputer_names()})")
        data, missing = _read_table(table, header, rows, Schema.from_dict(meta["table"]))
        trained = load(checkpoint)
        model, run = meta.get("model", model), str(checkpoint)
    else:
        data, missing = _read_table(table, header, rows)
    reused = False
    if checkpoint is None:
        trained, run, reused = trained_or_reused(
            "impute", table, header, rows, data, model, steps, seed, options, run, progress)
    draws = [fill(trained, data.values, seed)] if multiple is None else fill(trained, data.values, seed, multiple)
    written = _write_filled(out, header, rows, data, draws, numbered=multiple is not None)
    return {"cells": missing, "rows": int(torch.isnan(data.values).any(1).sum()), "model": model,
            "run": run, "reused": reused, "written": written, "dropped": data.schema.dropped}


def _read_table(table: str, header, rows, schema: Schema | None = None) -> tuple[TableData, int]:
    """The table's data and its count of missing cells. Its warnings (a column without any
    value, left out) are held back until it has a cell to fill; else the error says it."""
    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        data = table_data(header, rows, table, schema)
    missing = int(torch.isnan(data.values).sum())
    if not missing:
        dropped = (f" (left out, having no value at all: {', '.join(data.schema.dropped)})"
                   if data.schema.dropped else "")
        raise GankitError(f"{table} has no missing cell in the columns the model fills"
                          f"{dropped}: nothing to impute (missing cells are empty, NA or NaN)")
    for w in held:
        warnings.warn(w.message, w.category, stacklevel=3)
    return data, missing


def _write_filled(out: str, header, rows, data, draws, numbered: bool) -> list[str]:
    """Each filled table as a CSV: `out`, or with several draws OUT_1.csv ... OUT_K.csv."""
    written = []
    for k, filled in enumerate(draws, start=1):
        path = str(Path(out).with_name(f"{Path(out).stem}_{k}{Path(out).suffix}")) if numbered else out
        write_csv(path, header, data.schema.decode(header, rows, filled))
        written.append(path)
    return written


def __getattr__(name: str):
    """GAINImputer and MIWAEImputer (gankit/sklearn_imputers.py), imported on first use:
    scikit-learn takes a second to import, which `gankit impute` does not need."""
    if name in ("GAINImputer", "MIWAEImputer"):
        from . import sklearn_imputers
        return getattr(sklearn_imputers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
