"""Rows as the table generators (CTGAN, TVAE; Xu et al. 2019) see them: one span of numbers
per column, and back.

- A numeric column (float, or int with many values) is its mode-specific normalisation
  (modes.py): alpha, one number in [-1, 1] (a generator's tanh), then a one-hot choice of
  its mode.
- A discrete column (a category, or an int with few values: table.py's `levels`) is a
  one-hot choice of its level.
- A column with missing cells gets one more choice, "missing", in its one-hot block (a
  numeric column's alpha is then 0): a generator learns each column's missing rate as it
  learns any other choice, and writes empty cells at that rate.

encode() takes table.py's scaled values (NaN where missing); decode() returns them, each
choice taken by argmax of its block, so a generator's softmax or Gumbel-softmax output
decodes as its one-hot encoding does. Schema.render writes the decoded values as cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .modes import Modes, fit_modes
from .table import Column, Schema, TableData


@dataclass
class Span:
    """Where a column's numbers lie in an encoded row: `kind` "alpha" (one number, tanh) or
    "choice" (a one-hot block of `width`)."""
    column: str
    kind: str
    start: int
    width: int


@dataclass
class ColumnCode:
    """How one column is encoded: its modes when numeric, whether it has a missing slot, and
    for a discrete column how many training rows took each choice (the missing slot last):
    CTGAN's conditional vector draws from them."""
    name: str
    modes: Modes | None       # None: discrete, one choice per level
    levels: int               # choices before the missing slot: modes or levels
    missing: bool
    counts: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "modes": self.modes and self.modes.to_dict(),
                "levels": self.levels, "missing": self.missing, "counts": self.counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ColumnCode":
        return cls(d["name"], d["modes"] and Modes.from_dict(d["modes"]), int(d["levels"]),
                   bool(d["missing"]), d.get("counts"))


def is_discrete(col: Column) -> bool:
    return col.kind == "category" or bool(col.levels)


def _level_index(col: Column, scaled: np.ndarray) -> np.ndarray:
    """A discrete column's scaled values -> the index of their level."""
    raw = col.snap(col.unscale(scaled))
    if col.kind == "category":
        return raw.astype(np.int64)
    return np.searchsorted(np.asarray(col.levels, dtype=np.float64), raw)


def _level_value(col: Column, index: np.ndarray) -> np.ndarray:
    """A level's index -> the column's scaled value."""
    raw = index if col.kind == "category" else np.asarray(col.levels, dtype=np.float64)[index]
    return col.scale(np.asarray(raw, dtype=np.float64))


class RowEncoding:
    """A table's columns (`schema`) as spans of numbers; fit() learns the modes."""

    def __init__(self, schema: Schema, codes: list[ColumnCode]):
        self.schema, self.codes = schema, codes
        self.spans: list[Span] = []
        start = 0
        for code in codes:
            if code.modes is not None:
                self.spans.append(Span(code.name, "alpha", start, 1))
                start += 1
            width = code.levels + code.missing
            self.spans.append(Span(code.name, "choice", start, width))
            start += width
        self.width = start

    @classmethod
    def fit(cls, schema: Schema, values: np.ndarray, seed: int = 0) -> "RowEncoding":
        """The encoding of a table's scaled `values` (N, schema.width; NaN = missing): each
        numeric column's modes fitted on its observed values (seeded)."""
        codes = []
        for j, col in enumerate(schema.columns):
            seen = values[:, j][~np.isnan(values[:, j])]
            missing = bool(len(seen) < len(values))
            if is_discrete(col):
                counts = np.bincount(_level_index(col, seen), minlength=len(col.levels))
                codes.append(ColumnCode(col.name, None, len(col.levels), missing,
                                        [*map(int, counts), *([len(values) - len(seen)]
                                                              if missing else [])]))
            else:
                # In the column's own units: the mixture's variance floor (1e-6) is then a
                # width of 0.001 of them, so a spike (capital gains of 0 in 92% of Adult's
                # rows) stays one; fitted on [0, 1]-scaled values it was 0.001 of the range,
                # $100, and the spike came back smeared over 0 to 400.
                modes = fit_modes(col.unscale(seen), seed=seed + j)
                codes.append(ColumnCode(col.name, modes, modes.count, missing))
        return cls(schema, codes)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "columns": [c.to_dict() for c in self.codes]}

    @property
    def choices(self) -> list[Span]:
        """Every one-hot block (a level, a mode, or the missing slot), in row order."""
        return [s for s in self.spans if s.kind == "choice"]

    @property
    def alphas(self) -> list[Span]:
        return [s for s in self.spans if s.kind == "alpha"]

    def discrete(self) -> list[tuple[int, Span, list[int]]]:
        """(schema column index, its block, its training counts) for each discrete column:
        the columns a conditional vector can fix."""
        blocks = iter(self.choices)
        return [(j, span, code.counts) for j, (code, span) in enumerate(zip(self.codes, blocks))
                if code.modes is None]

    def choice_of(self, column: str, cell: str | None) -> tuple[int, int]:
        """(schema column index, choice) that a cell of a discrete column is encoded as (None:
        a missing cell), or ValueError naming what the column takes instead."""
        names = [c.name for c in self.schema.columns]
        if column not in names:
            raise KeyError(column)
        j = names.index(column)
        col, code = self.schema.columns[j], self.codes[j]
        if code.modes is not None:
            raise TypeError(column)
        if cell is None:
            if not code.missing:
                raise ValueError(f"column {column!r} had no missing cell in the training table")
            return j, code.levels
        for k, level in enumerate(col.levels):
            if str(level) == cell:
                return j, k
        raise ValueError(f"{cell!r} is not a value of column {column!r} in the training table")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RowEncoding":
        return cls(Schema.from_dict(d["schema"]), [ColumnCode.from_dict(c) for c in d["columns"]])

    def encode(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Scaled values (N, schema.width; NaN = missing) -> encoded rows (N, width), float32;
        each numeric value's mode drawn from its posterior with `rng`."""
        out = np.zeros((len(values), self.width), dtype=np.float32)
        spans = iter(self.spans)
        for j, (col, code) in enumerate(zip(self.schema.columns, self.codes)):
            x = values[:, j]
            seen = ~np.isnan(x)
            choice = np.full(len(x), code.levels)          # the missing slot, where missing
            if code.modes is not None:
                alpha_span = next(spans)
                alpha, mode = code.modes.encode(col.unscale(x[seen]), rng)
                out[seen, alpha_span.start] = alpha
                choice[seen] = mode
            else:
                choice[seen] = _level_index(col, x[seen])
            span = next(spans)
            out[np.arange(len(x)), span.start + choice] = 1
        return out

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """Encoded rows (N, width) -> scaled values (N, schema.width), NaN where the choice is
        "missing"; each choice is its block's argmax."""
        rows = np.asarray(rows, dtype=np.float64)
        out = np.full((len(rows), self.schema.width), np.nan)
        spans = iter(self.spans)
        for j, (col, code) in enumerate(zip(self.schema.columns, self.codes)):
            alpha_span = next(spans) if code.modes is not None else None
            span = next(spans)
            choice = rows[:, span.start:span.start + span.width].argmax(axis=1)
            seen = choice < code.levels
            if code.modes is not None:
                out[seen, j] = col.scale(code.modes.decode(rows[seen, alpha_span.start],
                                                           choice[seen]))
            else:
                out[seen, j] = _level_value(col, choice[seen])
        return out


@dataclass
class EncodedTable(TableData):
    """A table as a table generator learns it: its rows encoded (`values`, float32 (N,
    width)), drawn by the training loop as ImageData's images are; `layout` is the encoding,
    which the model is built with and the checkpoint keeps."""
    kind: ClassVar[str] = "rows"
    layout: RowEncoding | None = None

    def describe(self) -> dict[str, Any]:
        """The schema, to read and write tables alike, and the encoding, to rebuild the model."""
        return {**super().describe(), "encoding": self.layout.to_dict()}


def encode_table(data: TableData, seed: int, saved: dict[str, Any] | None = None) -> EncodedTable:
    """`data`'s rows encoded: with the encoding `saved` in a checkpoint (a resumed run), else
    one fitted now (seeded). Each value's mode is drawn once, with `seed`, so a resumed run
    sees the rows its first part saw."""
    values = data.values.double().numpy()
    layout = (RowEncoding.from_dict(saved) if saved is not None
              else RowEncoding.fit(data.schema, values, seed))
    rows = layout.encode(values, np.random.default_rng(seed))
    return EncodedTable(torch.from_numpy(rows), layout.schema, data.name, layout=layout)
