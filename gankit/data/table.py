"""Tables: a CSV with a header, its missing cells NaN, every column scaled to [0, 1].

The sibling of ImageData for the imputers (gain, miwae), drawn by the same training loop:
batches are rows of a resident float tensor in which NaN marks a missing cell, so the
model sees which cells it must learn to fill.

Each column is one of three kinds, inferred from its observed cells:

- float     numbers; filled cells are written with as many decimals as the column has;
- int       whole numbers, however written (pandas writes 127.0 for an int column with
            missing cells); filled cells are rounded and written as the column's cells are,
            and a column with at most FEW distinct values is treated as categorical:
            snapped to the nearest value it holds;
- category  text; coded 0..K-1 in sorted order, and a filled cell is the category of the
            nearest code. (The GAIN authors' code handles categorical columns the same way:
            as numbers, rounded back.)

Every column is min-max scaled with its observed values, as the GAIN paper's RMSE protocol
scales it. A column with no observed cell cannot be learnt: it is left out of the model and
written back as it was, with a warning naming it.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import GankitError

MISSING = {"", "na", "nan"}   # compared stripped and lower-cased: "", NA, NaN, nan
FEW = 20                      # an int column with at most this many values is categorical
MAX_CELLS = 50_000_000        # rows x columns a table may have (float32: 200 MB in memory)
MAX_COLUMNS = 10_000


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


@dataclass
class Column:
    name: str
    kind: str                                  # float, int or category
    low: float = 0.0                           # observed minimum (of the codes, for a category)
    high: float = 1.0                          # observed maximum
    levels: list = field(default_factory=list)  # a category's names; a few-valued int's values
    decimals: int = 0                          # how a filled number is written

    def scale(self, x: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        return (x - self.low) / span if span > 0 else x - self.low

    def unscale(self, x: np.ndarray) -> np.ndarray:
        return x * (self.high - self.low) + self.low

    def snap(self, raw: np.ndarray) -> np.ndarray:
        """Unscaled model outputs -> valid values of the column (codes for a category)."""
        if self.kind == "category":
            return np.clip(np.rint(raw), 0, len(self.levels) - 1)
        if self.levels:   # a few-valued int: the nearest value it holds
            levels = np.asarray(self.levels, dtype=np.float64)
            return levels[np.abs(raw[:, None] - levels[None, :]).argmin(1)]
        if self.kind == "int":
            return np.clip(np.rint(raw), self.low, self.high)
        return raw

    def text(self, value: float) -> str:
        if self.kind == "category":
            return str(self.levels[int(value)])
        if self.kind == "int" and not self.decimals:
            return str(int(value))
        return f"{value:.{self.decimals}f}" if self.decimals else repr(round(float(value), 6))


@dataclass
class Schema:
    """What was learnt of a table's columns: enough to encode a new table the same way and
    to write filled cells as valid values. Saved in the checkpoint's metadata as JSON."""
    header: list[str]
    columns: list[Column]          # one per modelled column (the header minus empty ones)
    dropped: list[str] = field(default_factory=list)   # entirely missing when learnt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Schema":
        return cls(list(d["header"]), [Column(**c) for c in d["columns"]], list(d.get("dropped", [])))

    @property
    def width(self) -> int:
        return len(self.columns)

    def encode(self, header: list[str], rows: list[list[str]], where: str) -> np.ndarray:
        """Cells -> float64 (N, width), scaled, NaN where missing. `header` must be the
        learnt one; a text cell in a numeric column or an unknown category is refused."""
        if header != self.header:
            raise GankitError(f"{where} has columns {_names(header)}, but the model learnt "
                              f"{_names(self.header)}: give a table with the same header")
        index = {h: i for i, h in enumerate(header)}
        out = np.full((len(rows), self.width), np.nan)
        for j, col in enumerate(self.columns):
            k = index[col.name]
            codes = {name: c for c, name in enumerate(col.levels)} if col.kind == "category" else None
            for i, row in enumerate(rows):
                cell = row[k]
                if is_missing(cell):
                    continue
                if codes is not None:
                    if cell not in codes:
                        raise GankitError(f"{where}, row {i + 2}, column {col.name!r}: category "
                                          f"{cell!r} was not in the table the model learnt "
                                          f"({_names(col.levels)})")
                    out[i, j] = codes[cell]
                else:
                    out[i, j] = number_cell(cell, where, i, col.name)
            out[:, j] = col.scale(out[:, j])
        return out

    def decode(self, header: list[str], rows: list[list[str]], filled: np.ndarray) -> list[list[str]]:
        """The rows with every missing cell of a modelled column replaced by its filled
        value (scaled, (N, width)); every other cell is returned exactly as read."""
        index = {h: i for i, h in enumerate(header)}
        out = [list(r) for r in rows]
        for j, col in enumerate(self.columns):
            k = index[col.name]
            values = col.snap(col.unscale(filled[:, j]))
            for i, row in enumerate(out):
                if is_missing(row[k]):
                    row[k] = col.text(values[i])
        return out

    def render(self, values: np.ndarray) -> list[list[str]]:
        """Whole rows of cells from scaled values (N, width), NaN written as an empty cell,
        every other value as a valid value of its column; a column left out when learnt
        (entirely missing) is empty."""
        cells = {col.name: [("" if np.isnan(v) else col.text(r))
                            for v, r in zip(values[:, j], col.snap(col.unscale(
                                np.nan_to_num(values[:, j]))))]
                 for j, col in enumerate(self.columns)}
        return [[cells[name][i] if name in cells else "" for name in self.header]
                for i in range(len(values))]


def _names(names: list) -> str:
    shown = ", ".join(map(str, names[:6]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > 6 else "")


def number_cell(cell: str, where: str, row: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise GankitError(f"{where}, row {row + 2}, column {column!r}: {cell!r} is not a number, "
                          "but the column is numeric: fix the cell, or leave it empty if it "
                          "is missing") from None
    if not math.isfinite(value):
        raise GankitError(f"{where}, row {row + 2}, column {column!r}: {cell!r} is not a finite "
                          "number: leave the cell empty if it is missing")
    return value


# --- reading and writing ---------------------------------------------------------------

def read_csv(path: str | Path, flag: str = "") -> tuple[list[str], list[list[str]]]:
    """(header, rows of cells as text). Refuses what cannot be a table in one line, naming
    the file (after the option that gave it, `flag`, when there is one)."""
    where = f"{flag} {path}" if flag else str(path)
    try:
        size = Path(path).stat().st_size
        if size > 4 * MAX_CELLS:   # at least a byte and a comma a cell, twice over
            raise GankitError(f"{where} is {size / 2**20:,.0f} MiB, over gankit's limit of "
                              f"{MAX_CELLS:,} cells for a table in memory: impute it in parts")
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise GankitError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise GankitError(f"{where} is a folder: give a CSV file") from None
    except UnicodeDecodeError:
        raise GankitError(f"{where} is not UTF-8 text: save it as a UTF-8 CSV") from None
    except OSError as e:
        raise GankitError(f"cannot read {where} ({e.strerror})") from None
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise GankitError(f"{where} is not a valid CSV ({e})") from None
    table = [r for r in table if r]   # blank lines
    if not table:
        raise GankitError(f"{where} is empty: give a CSV with a header row and data rows")
    header, rows = table[0], table[1:]
    if not rows:
        raise GankitError(f"{where} has a header but no rows")
    if len(header) > MAX_COLUMNS or len(header) * len(rows) > MAX_CELLS:
        raise GankitError(f"{where} has {len(rows):,} rows x {len(header):,} columns, over "
                          f"gankit's limit of {MAX_COLUMNS:,} columns and {MAX_CELLS:,} cells: "
                          "impute it in parts")
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise GankitError(f"{where}: column name(s) {_names(twice)} appear more than once: "
                          "give every column its own name")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise GankitError(f"{where}, row {i + 2}: {len(row)} cells where the header has "
                              f"{len(header)}: every row needs one cell per column (leave "
                              "missing ones empty)")
    return header, rows


def write_csv(path: str | Path, header: list[str], rows: list[list[str]]) -> None:
    from ..files import atomic_write
    with atomic_write(path, "w", fix="choose another --out") as f:
        write_rows(f, header, rows)


def write_rows(f, header: list[str], rows: list[list[str]]) -> None:
    """The header and rows as CSV into the text file `f`."""
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


# --- learning a schema -----------------------------------------------------------------

def infer_schema(header: list[str], rows: list[list[str]], where: str) -> Schema:
    columns, dropped = [], []
    for k, name in enumerate(header):
        seen = {i: row[k] for i, row in enumerate(rows) if not is_missing(row[k])}
        if not seen:
            dropped.append(name)
            continue
        columns.append(_column(name, seen, where))
    if dropped:
        warnings.warn(f"{where}: column(s) {_names(dropped)} have no value at all: nothing can "
                      "be learnt about them, so they are left out of the model and written "
                      "back empty", stacklevel=2)
    if not columns:
        raise GankitError(f"{where} has no observed cell: there is nothing to learn from")
    return Schema(list(header), columns, dropped)


def _column(name: str, observed: dict[int, str], where: str) -> Column:
    """The column `name` from its observed cells, by row index (0: the first data row)."""
    cells = list(observed.values())
    parsed = [parse_number(c) for c in cells]
    text = [(i, c) for (i, c), v in zip(observed.items(), parsed) if v is None]
    if text and len(text) < len(cells) / 2:
        # Mostly numbers: a typo, not a column of categories (which would have a level per
        # number and fill cells with numbers read as text).
        row, cell = text[0]
        raise GankitError(f"{where}, row {row + 2}, column {name!r}: {cell!r} is not a number, "
                          f"but {len(cells) - len(text)} of the column's {len(cells)} cells are: "
                          "fix it, or leave the cell empty if it is missing")
    numeric = not text
    values = np.array(parsed if numeric else [], dtype=np.float64)
    if not numeric:
        levels = sorted(set(cells))
        return Column(name, "category", 0.0, float(len(levels) - 1), levels)
    low, high = float(values.min()), float(values.max())
    # Decimals as written; a fill is written alike (an int column pandas wrote as 127.0,
    # because it had missing cells, gets fills such as 96.0).
    decimals = max((len(c.strip().split(".", 1)[1]) for c in cells
                    if "." in c and "e" not in c.lower()), default=None)
    if np.all(values == np.round(values)):   # whole numbers, however they are written
        distinct = sorted({int(v) for v in values})
        return Column(name, "int", low, high, distinct if len(distinct) <= FEW else [],
                      min(decimals or 0, 12))
    return Column(name, "float", low, high, [], min(6 if decimals is None else decimals, 12))


def parse_number(cell: str) -> float | None:
    """A finite number, or None for text, an empty cell, NaN and infinities."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class TableData:
    """A table as the trainer draws it: rows of `values` (float32, scaled, NaN = missing)."""
    kind: ClassVar[str] = "table"
    values: torch.Tensor
    schema: Schema
    name: str = ""
    labels: None = None
    class_names: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def shape(self) -> tuple[int]:
        return (self.values.shape[1],)

    @property
    def num_classes(self) -> int:
        return 0

    @property
    def samples(self) -> torch.Tensor:
        return self.values

    @staticmethod
    def prepare(batch: torch.Tensor) -> torch.Tensor:
        return batch

    def describe(self) -> dict[str, Any]:
        """What a checkpoint keeps of the data: the schema, to fill new tables alike."""
        return {"table": self.schema.to_dict()}


def table_data(header: list[str], rows: list[list[str]], where: str,
               schema: Schema | None = None) -> TableData:
    """A TableData of the cells, with `schema` (learnt from them when None)."""
    schema = schema or infer_schema(header, rows, where)
    values = torch.from_numpy(schema.encode(header, rows, where)).float()
    return TableData(values, schema, name=str(where))


def load_table(path: str) -> TableData:
    header, rows = read_csv(path, "--data")
    return table_data(header, rows, path)
