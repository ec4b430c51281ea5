"""Synthetic tables: a table generator (the registry's SYNTHESIZERS: CTGAN, TVAE) learns a
table's rows and samples new ones, with the table's columns, types and missing cells.

- synth_csv(): `gankit synth`: a CSV in, a synthetic CSV out; trains into a run folder that
  the same table and settings find again (filling.cached_run), or samples from a trained
  run (--checkpoint) without training;
- Synthesizer: the same in scikit-learn's manner, fit(table) and sample(n), on a pandas
  DataFrame or a CSV path.

A condition (`COLUMN=VALUE`) fixes a discrete column's value: a model that declares
`conditions_rows` (CTGAN's conditional vector) draws the rows with it exactly; for the
others, and for a second condition, rows are drawn until enough match (rejection).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.row_encoding import is_discrete
from .data.table import Schema, read_csv, table_data, write_csv, write_rows
from .errors import GankitError, did_you_mean, option
from .filling import trained_or_reused

MAX_DRAWS = 50   # rejection sampling gives up after this many times the rows asked for


def synth_csv(table: str, out: str, rows: int | None = None, model: str | None = None,
              steps: int | None = None, budget: str | None = None, seed: int = 0,
              conditions: list[str] | tuple[str, ...] = (), checkpoint: str | None = None,
              run: str | None = None, progress: bool = True, report: bool = True,
              **options: Any) -> dict[str, Any]:
    """`gankit synth`: learn the CSV `table` and write `rows` synthetic rows (default: as
    many as it has) to `out`. With `report`, a run trained now also gets report.json and
    report.html: the rows written judged against the table (gankit/synth_report.py), which
    `gankit serve` shows. Returns what was done."""
    from .models import DEFAULT_SYNTHESIZER
    header, cells = read_csv(table)
    if rows is not None and rows < 1:
        raise GankitError(f"{option('rows', rows)}: ask for at least 1 row")
    if checkpoint is not None:
        trained, schema = _trained_run(checkpoint, header, table)
        model, reused, trained_now = trained.run_config.model, False, False
        fixed = parse_conditions(conditions, schema)
    else:
        model = model or DEFAULT_SYNTHESIZER
        with warnings.catch_warnings(record=True) as held:
            warnings.simplefilter("always")
            data = table_data(header, cells, table)
        fixed = parse_conditions(conditions, data.schema)   # before minutes of training
        for w in held:
            warnings.warn(w.message, w.category, stacklevel=2)
        given = {**options, **({"budget": budget} if budget is not None else {})}
        trained, checkpoint, reused = trained_or_reused(
            "synth", table, header, cells, data, model, steps, seed, given, run, progress)
        schema, trained_now = data.schema, not reused
    values = draw(trained, rows or len(cells), fixed, seed)
    write_csv(out, header, schema.render(values))
    judged = None
    if report and trained_now and not fixed:   # conditioned rows are not the table's mix
        judged = _report(table, out, checkpoint, seed)
    return {"rows": len(values), "model": model, "run": str(checkpoint), "reused": reused,
            "written": out, "dropped": schema.dropped, "report": judged}


def _report(table: str, out: str, run: str, seed: int) -> dict[str, Any]:
    """The synthetic table `out` judged against `table`, written into the run folder."""
    from .report_pages import write_html
    from .synth_report import judge, write_json
    from .training.run_folder import RunPaths
    paths = RunPaths(run)
    judged = judge(table, out, seed=seed)
    write_json(judged, paths.report)
    write_html(judged, paths.report_page)
    return judged


def _trained_run(checkpoint: str, header: list[str], table: str):
    """(the table generator saved in `checkpoint`, its schema), refusing a run of another
    kind or one whose table had other columns."""
    from .api import load
    from .training import checkpoint as ckpt
    meta = ckpt.read_meta(checkpoint)
    if "encoding" not in meta:
        raise GankitError(f"{option('checkpoint', checkpoint)} is a run of {meta.get('model')}, "
                          f"not a table generator: give a run of gankit synth "
                          f"({_synthesizer_names()})")
    schema = Schema.from_dict(meta["table"])
    if header != schema.header:
        raise GankitError(f"{table} has columns {', '.join(header[:6])}{' ...' if len(header) > 6 else ''}, "
                          f"but {option('checkpoint', checkpoint)} learnt a table with "
                          f"{', '.join(schema.header[:6])}{' ...' if len(schema.header) > 6 else ''}: "
                          "give a table with the same header, or drop --checkpoint to train")
    return load(checkpoint), schema


def _synthesizer_names() -> str:
    from .models import names_that
    return names_that(lambda c: getattr(c, "generates_rows", False), tables=True)


def parse_conditions(conditions, schema: Schema) -> list[tuple[str, str | None]]:
    """`COLUMN=VALUE` texts (or a {column: value} dict) -> (column, cell; None for a missing
    cell, written COLUMN=), each checked against the table: a discrete column (a category
    or a whole-number column of at most 20 values) and one of its values."""
    items = (list(conditions.items()) if isinstance(conditions, dict)
             else [_split(c) for c in conditions])
    columns = {c.name: c for c in schema.columns}
    fixed, seen = [], set()
    for name, value in items:
        col = columns.get(name)
        if col is None:
            raise GankitError(f"{option('condition', f'{name}={value}')}: the table has no "
                              f"column {name!r}{did_you_mean(name, columns)}")
        if not is_discrete(col):
            raise GankitError(f"{option('condition', f'{name}={value}')}: {name!r} is a "
                              f"numeric column; a condition fixes a text column or a "
                              f"whole-number column with at most 20 values")
        if name in seen:
            raise GankitError(f"{option('condition')} names {name!r} twice: give one value")
        seen.add(name)
        cell = None if value is None or str(value).strip() == "" else str(value)
        levels = [str(v) for v in col.levels]
        if cell is not None and cell not in levels:
            raise GankitError(f"{option('condition', f'{name}={cell}')}: {cell!r} is not a "
                              f"value of {name!r} in the table{did_you_mean(cell, levels)} "
                              f"(it has {', '.join(levels[:8])}{' ...' if len(levels) > 8 else ''})")
        fixed.append((name, cell))
    return fixed


def _split(text: str) -> tuple[str, str]:
    if "=" not in str(text):
        raise GankitError(f"{option('condition', text)} is not COLUMN=VALUE: write e.g. "
                          "--condition sex=Female")
    name, value = str(text).split("=", 1)
    return name.strip(), value.strip()


def draw(model, n: int, fixed: list[tuple[str, str | None]], seed: int) -> np.ndarray:
    """n rows of scaled values (NaN = missing) from a table generator, each with the
    conditions `fixed`; the same seed gives the same rows."""
    layout = model.layout
    try:
        wanted = [layout.choice_of(name, cell) for name, cell in fixed]
    except ValueError as e:   # e.g. a missing cell asked of a column that had none
        raise GankitError(f"{option('condition')}: {e}") from None
    gen = torch.Generator().manual_seed(seed)
    exact = wanted[0] if wanted and model.conditions_rows else None
    rest = wanted[1:] if exact is not None else wanted
    if not rest:
        return model.sample_values(n, exact, gen)
    kept, drawn = [], 0
    batch = max(n, 1000)
    while sum(len(k) for k in kept) < n and drawn < MAX_DRAWS * n:
        rows = model.sample_rows(batch, exact, gen).cpu().numpy()
        drawn += batch
        keep = np.ones(len(rows), dtype=bool)
        for j, k in rest:
            span = layout.choices[j]
            keep &= rows[:, span.start:span.start + span.width].argmax(1) == k
        kept.append(rows[keep])
    got = np.concatenate(kept)
    if len(got) < n:
        how = ", ".join(f"{name}={cell or ''}" for name, cell in fixed)
        raise GankitError(f"only {len(got):,} of {drawn:,} rows drawn had {how}: too rare to "
                          f"draw {n:,} by chance; ask for fewer rows, fewer conditions, or use "
                          f"a model that conditions exactly ({_exact_names()}) with one")
    return layout.decode(got[:n])


def _exact_names() -> str:
    from .models import names_that
    return names_that(lambda c: getattr(c, "conditions_rows", False), tables=True)


class Synthesizer:
    """A table generator in scikit-learn's manner: `Synthesizer("ctgan").fit(df).sample(1000)`.

    `fit` takes a pandas DataFrame or a CSV path; `sample` returns a DataFrame (pandas
    needed). `steps`, `budget` ("5m"), `seed` and the model's settings (e.g. `pac=10`) are
    keywords; `run` is the run folder (default: one in gankit's cache, found again by the
    same table and settings)."""

    def __init__(self, model: str | None = None, steps: int | None = None,
                 budget: str | None = None, seed: int = 0, run: str | None = None,
                 progress: bool = False, **options: Any):
        self.model, self.steps, self.budget, self.seed = model, steps, budget, seed
        self.run, self.progress, self.options = run, progress, options
        self.model_ = self.schema_ = self.run_ = None

    def fit(self, table) -> Synthesizer:
        from .models import DEFAULT_SYNTHESIZER
        header, cells, where = _cells(table)
        data = table_data(header, cells, where)
        given = {**self.options, **({"budget": self.budget} if self.budget else {})}
        name = self.model or DEFAULT_SYNTHESIZER
        self.model_, self.run_, _ = trained_or_reused(
            "synth", where, header, cells, data, name, self.steps, self.seed, given,
            self.run, self.progress)
        self.schema_ = data.schema
        return self

    @classmethod
    def load(cls, run: str) -> Synthesizer:
        """A Synthesizer of a trained run (of gankit synth or Synthesizer.fit)."""
        from .api import load
        from .training import checkpoint as ckpt
        meta = ckpt.read_meta(run)
        if "encoding" not in meta:
            raise GankitError(f"{run} is a run of {meta.get('model')}, not a table generator")
        self = cls(meta["model"])
        self.model_, self.schema_, self.run_ = load(run), Schema.from_dict(meta["table"]), run
        return self

    def sample(self, n: int, conditions: dict[str, Any] | None = None, seed: int | None = None):
        """n synthetic rows as a DataFrame; `conditions` {column: value} fixes values."""
        try:
            import pandas as pd
        except ImportError:   # not a dependency of gankit: the command line needs none
            raise GankitError("Synthesizer.sample returns a pandas DataFrame: pip install "
                              "pandas, or write a CSV with gankit synth") from None
        if self.model_ is None:
            raise GankitError("this Synthesizer is not fitted: call fit(table) first")
        if n < 1:
            raise GankitError(f"n must be at least 1, got {n}")
        fixed = parse_conditions(conditions or {}, self.schema_)
        values = draw(self.model_, n, fixed, self.seed if seed is None else seed)
        text = io.StringIO()
        write_rows(text, self.schema_.header, self.schema_.render(values))
        return pd.read_csv(io.StringIO(text.getvalue()), keep_default_na=True)


def _cells(table) -> tuple[list[str], list[list[str]], str]:
    """(header, rows of text cells, a name) of a CSV path or a pandas DataFrame (a missing
    value, NaN or None, is an empty cell)."""
    if isinstance(table, (str, Path)):
        header, rows = read_csv(table)
        return header, rows, str(table)
    if not hasattr(table, "columns"):
        raise GankitError(f"fit() takes a pandas DataFrame or a CSV path, not {type(table).__name__}")
    import pandas as pd
    header = [str(c) for c in table.columns]
    rows = [["" if pd.isna(v) else str(v) for v in row]
            for row in table.itertuples(index=False, name=None)]
    if not rows:
        raise GankitError("the DataFrame has no rows")
    return header, rows, "dataframe"
