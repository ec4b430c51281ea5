"""Judging a synthetic table against the real table it imitates (issue 27).

`judge(real, synthetic, holdout=None, target=None, seed=0)` returns everything as a plain
dict (JSON as it is); `summary` is its few lines for a terminal (report_pages.py draws its
pictures and writes its HTML page). It asks four questions:

- column shapes: does each column hold the same values as often? 1 - the two-sample
  Kolmogorov-Smirnov statistic for a numeric column (KSComplement), 1 - the total
  variation distance of the level frequencies for a categorical one (TVComplement).
- column pair trends: does each pair of columns relate the same way? 1 - |r_real - r_synth|/2
  of Pearson's r for two numeric columns (CorrelationSimilarity), 1 - the total variation
  distance of the pair's contingency table otherwise (ContingencySimilarity).
  The quality score is the mean of the two means, as SDMetrics' QualityReport's.
- machine-learning efficacy: does a model trained on the synthetic rows predict held-out
  real rows as well as one trained on the real rows? scikit-learn's logistic (or linear)
  regression, a depth-15 decision tree and HistGradientBoosting, seeded; F1 of the real
  table's rarer class for a two-class target (SDGym's Adult protocol: '>50K'), macro F1
  for more classes, R2 for a numeric one; the ratio synthetic / real of their mean.
- privacy: are the synthetic rows closer to the training rows than to real rows the
  generator never saw? The distance to the closest record (DCR) is SDMetrics': the mean
  over the columns of |x - y| / (the real column's range), at most 1, for numbers (1 when
  one cell is missing, 0 when both are), and 0 or 1 for categories.

The first two are SDMetrics 0.32's definitions (QualityReport; MIT), recomputed with numpy
so that the report needs neither SDMetrics nor pandas; tests/test_synth_report.py checks
the numbers against SDMetrics itself. As there, a missing cell is left out of its
column's shape and of a correlation (which uses the rows where both cells are observed),
and is a value of its own in a contingency table; a numeric column in a mixed pair is cut
into np.histogram_bin_edges' 10 equal bins of each table's own range (so a column shifted
as a whole keeps its pair scores: its shape shows the shift) and np.digitize's codes, in
which the maximum shares the 11th with missing cells. Column types come from the real
table (data/table.py): category columns and int columns of at most 20 values are
categorical, the rest numeric.

SDMetrics 0.32's QualityReport averages only the pairs associated in the real table
(|r| > 0.5, Cramer's V > 0.3) into its trends score; that mean is here too
(quality's `trends_associated` and `sdmetrics_score`), but the headline
`column_pair_trends` averages every pair (SDMetrics' ColumnPairTrends with no threshold),
as the tabular-synthesis papers' "trend" scores (TabDDPM, TabSyn) do: a generator that
breaks a weak relation is not excused. Two small differences from SDMetrics: its
TVComplement adds 1e-6 to the real count of a level only the synthetic table has (it moves
a score by about 1e-6 / rows; left out here), and its ContingencySimilarity draws an
unseeded sample of 50,000 rows from a larger table, where this uses every row.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data.table import Schema, number_cell, infer_schema, is_missing, read_csv
from .errors import GankitError, did_you_mean, option

TABLES = ("real", "synthetic", "holdout")
CORRELATION_THRESHOLD = 0.5    # SDMetrics' QualityReport: pairs that count in its trends
ASSOCIATION_THRESHOLD = 0.3
PRIVACY_ROWS = 5000            # synthetic rows whose nearest real rows are searched
HISTOGRAM_BINS = 30            # the pictures' numeric marginals
TOP_LEVELS = 10                # the pictures' categorical marginals: the rest is "other"


@dataclass
class _Column:
    """One column of the three tables, parsed once: a numeric column as float64 with NaN
    where missing, a categorical one as codes into `levels` (-1 where missing)."""
    name: str
    categorical: bool
    values: dict[str, np.ndarray]     # table name -> values or codes
    levels: list[str]                 # categorical: the real table's levels, then others
    known: int = 0                    # how many of `levels` the real table has
    whole: bool = False               # levels are numbers (a few-valued int column)


# --- reading --------------------------------------------------------------------------

def _read(source: Any, name: str) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, what to call it in a message) of a CSV path, a (header, rows) pair
    or a pandas DataFrame (its cells as to_csv writes them: NaN as an empty cell)."""
    if isinstance(source, (str, os.PathLike)):
        flag = "" if name in ("real", "synthetic") else option(name)
        header, rows = read_csv(source, flag)
        return header, rows, f"{flag} {source}".strip()
    if isinstance(source, tuple) and len(source) == 2:
        header, rows = list(source[0]), [list(r) for r in source[1]]
    elif hasattr(source, "to_csv"):
        table = [r for r in csv.reader(io.StringIO(source.to_csv(index=False))) if r]
        header, rows = (table[0], table[1:]) if table else ([], [])
    else:
        raise TypeError(f"{name}: expected a CSV path, (header, rows) or a DataFrame, "
                        f"got {type(source).__name__}")
    if not rows:
        raise GankitError(f"the {name} table has no rows")
    return header, rows, f"the {name} table"


def _aligned(real_header: list[str], header: list[str], rows: list[list[str]],
             where: str) -> list[list[str]]:
    """`rows` with their cells in the real table's column order; other columns refused."""
    if header == real_header:
        return rows
    missing = [h for h in real_header if h not in header]
    extra = [h for h in header if h not in real_header]
    if missing or extra:
        what = "; ".join(filter(None, [missing and f"lacks {', '.join(missing[:5])}",
                                       extra and f"has {', '.join(extra[:5])}, which the "
                                                 "real table has not"]))
        raise GankitError(f"{where} {what}: give it the real table's columns (the same "
                          "names, in any order)")
    order = [header.index(h) for h in real_header]
    return [[row[k] for k in order] for row in rows]


def _columns(schema: Schema, tables: dict[str, tuple[list[list[str]], str]]) -> list[_Column]:
    index = {h: k for k, h in enumerate(schema.header)}
    out = []
    for col in schema.columns:
        k = index[col.name]
        if col.kind == "category" or col.levels:
            out.append(_categorical(col.name, col.levels, col.kind == "int", k, tables))
        else:
            out.append(_Column(col.name, False, {t: _numbers(rows, k, col.name, where)
                                                 for t, (rows, where) in tables.items()}, []))
    return out


def _numbers(rows: list[list[str]], k: int, name: str, where: str) -> np.ndarray:
    return np.array([math.nan if is_missing(row[k]) else number_cell(row[k], where, i, name)
                     for i, row in enumerate(rows)], dtype=np.float64)


def _categorical(name: str, real_levels: list, whole: bool, k: int,
                 tables: dict[str, tuple[list[list[str]], str]]) -> _Column:
    """Codes of a category column (by its text) or a few-valued int column (by its value:
    127 and 127.0 are one level). A level the real table lacks gets a code of its own."""
    codes = {(float(v) if whole else v): i for i, v in enumerate(real_levels)}
    levels = [str(v) for v in real_levels]
    values = {}
    for t, (rows, where) in tables.items():
        out = np.full(len(rows), -1, dtype=np.int64)
        for i, row in enumerate(rows):
            cell = row[k]
            if is_missing(cell):
                continue
            key = number_cell(cell, where, i, name) if whole else cell
            if key not in codes:
                codes[key] = len(levels)
                levels.append(f"{key:g}" if whole else cell)
            out[i] = codes[key]
        values[t] = out
    return _Column(name, True, values, levels, len(real_levels), whole)


# --- column shapes --------------------------------------------------------------------

def ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    """1 - the largest gap between the two empirical CDFs, of the observed values (rounded
    to 14 decimals, as SDMetrics does); NaN when either has none."""
    a = np.sort(np.round(real[~np.isnan(real)], 14))
    b = np.sort(np.round(synthetic[~np.isnan(synthetic)], 14))
    if not len(a) or not len(b):
        return math.nan
    at = np.concatenate([a, b])
    gap = np.abs(np.searchsorted(a, at, "right") / len(a) - np.searchsorted(b, at, "right") / len(b))
    return 1.0 - float(gap.max())


def tv_complement(real: np.ndarray, synthetic: np.ndarray, k: int) -> float:
    """1 - the total variation distance of the frequencies of codes 0..k-1 (missing, -1,
    left out); NaN when either table has no observed cell."""
    a, b = real[real >= 0], synthetic[synthetic >= 0]
    if not len(a) or not len(b):
        return math.nan
    p, q = np.bincount(a, minlength=k) / len(a), np.bincount(b, minlength=k) / len(b)
    return 1.0 - 0.5 * float(np.abs(p - q).sum())


def _shape(col: _Column) -> dict[str, Any]:
    real, synth = col.values["real"], col.values["synthetic"]
    if col.categorical:
        metric, score = "TVComplement", tv_complement(real, synth, len(col.levels))
    else:
        metric, score = "KSComplement", ks_complement(real, synth)
    missing = {t: float(np.mean(_is_missing(col, t))) for t in ("real", "synthetic")}
    return {"column": col.name, "kind": "categorical" if col.categorical else "numeric",
            "metric": metric, "score": score, "missing": missing, "marginal": _marginal(col)}


def _is_missing(col: _Column, table: str) -> np.ndarray:
    x = col.values[table]
    return x < 0 if col.categorical else np.isnan(x)


def _marginal(col: _Column) -> dict[str, Any]:
    """What the picture draws: shares of the observed cells per histogram bin (numeric,
    bins shared by both tables) or per level (the TOP_LEVELS commonest, then "other";
    numbers in their order when they all fit)."""
    real, synth = (col.values[t][~_is_missing(col, t)] for t in ("real", "synthetic"))
    if not col.categorical:
        both = np.concatenate([real, synth])
        edges = np.histogram_bin_edges(both, HISTOGRAM_BINS) if len(both) else np.array([0, 1.0])
        shares = [np.histogram(x, edges)[0] / max(len(x), 1) for x in (real, synth)]
        return {"edges": edges.tolist(), "real": shares[0].tolist(), "synthetic": shares[1].tolist()}
    k = len(col.levels)
    p, q = (np.bincount(x, minlength=k) / max(len(x), 1) for x in (real, synth))
    if col.whole and k <= TOP_LEVELS + 1:
        top = np.argsort([float(v) for v in col.levels], kind="stable")
    else:
        top = np.argsort(-(p + q), kind="stable")[:TOP_LEVELS]
    rest = np.setdiff1d(np.arange(k), top)
    levels = [col.levels[i] for i in top] + (["(other)"] if len(rest) else [])
    return {"levels": levels, "real": [*p[top].tolist(), *([p[rest].sum()] if len(rest) else [])],
            "synthetic": [*q[top].tolist(), *([q[rest].sum()] if len(rest) else [])]}


# --- column pair trends ---------------------------------------------------------------

def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r over the rows where both are observed; NaN for a constant column."""
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 2:
        return math.nan
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    scale = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float(np.clip((x * y).sum() / scale, -1, 1)) if scale > 0 else math.nan


def _discrete(col: _Column, table: str) -> np.ndarray:
    """Codes for a contingency table: a category's with missing as one more level; a
    number's bin as QualityReport cuts it (see the module's docstring)."""
    x = col.values[table]
    if col.categorical:
        return np.where(x >= 0, x, len(col.levels))
    return np.digitize(x, np.histogram_bin_edges(x[~np.isnan(x)]))


def _pair_counts(a: np.ndarray, b: np.ndarray, kb: int) -> tuple[np.ndarray, np.ndarray]:
    """The observed (a, b) combinations as keys a * kb + b, and how often each occurs."""
    return np.unique(a.astype(np.int64) * kb + b, return_counts=True)


def cramers_v(keys: np.ndarray, counts: np.ndarray, kb: int) -> float:
    """Cramer's V (no continuity correction, as scipy's association) of the contingency
    table of the observed rows and columns only; NaN when it has a single row or column.
    chi2 = n (sum O^2 / (R C) - 1) needs only the non-zero cells, so two columns of many
    levels never make a dense table."""
    _, rows = np.unique(keys // kb, return_inverse=True)
    _, cols = np.unique(keys % kb, return_inverse=True)
    r_sum, c_sum = np.bincount(rows, counts), np.bincount(cols, counts)
    k = min(len(r_sum), len(c_sum)) - 1
    if k < 1:
        return math.nan
    n = counts.sum()
    chi2 = n * (float((counts ** 2 / (r_sum[rows] * c_sum[cols])).sum()) - 1)
    return math.sqrt(max(chi2, 0.0) / n / k)


def _contingency(a: _Column, b: _Column) -> tuple[float, float, float]:
    """(ContingencySimilarity, Cramer's V of the real table, of the synthetic table)."""
    ra, rb, sa, sb = (_discrete(c, t) for t in ("real", "synthetic") for c in (a, b))
    kb = int(max(rb.max(), sb.max())) + 1
    (rk, rc), (sk, sc) = _pair_counts(ra, rb, kb), _pair_counts(sa, sb, kb)
    keys = np.union1d(rk, sk)
    p, q = np.zeros(len(keys)), np.zeros(len(keys))
    p[np.searchsorted(keys, rk)] = rc / len(ra)
    q[np.searchsorted(keys, sk)] = sc / len(sa)
    return 1.0 - 0.5 * float(np.abs(p - q).sum()), cramers_v(rk, rc, kb), cramers_v(sk, sc, kb)


def _pair(a: _Column, b: _Column) -> dict[str, Any]:
    """One pair's score, with the association of the two columns in each table (Pearson's
    r for two numeric columns, Cramer's V otherwise), and whether it is associated in the
    real table, which makes SDMetrics count it."""
    if not a.categorical and not b.categorical:
        r, s = (pearson(a.values[t], b.values[t]) for t in ("real", "synthetic"))
        metric, score = "CorrelationSimilarity", 1 - abs(r - s) / 2
        associated = abs(r) > CORRELATION_THRESHOLD
    else:
        metric = "ContingencySimilarity"
        score, r, s = _contingency(a, b)
        associated = r > ASSOCIATION_THRESHOLD
    return {"columns": [a.name, b.name], "metric": metric, "score": score,
            "real": r, "synthetic": s, "associated": bool(associated)}


def _pairs(columns: list[_Column]) -> list[dict[str, Any]]:
    return [_pair(a, b) for i, a in enumerate(columns) for b in columns[i + 1:]]


def _mean(values) -> float:
    """The mean of the defined values (NaN when none), as pandas' Series.mean."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


# --- machine-learning efficacy --------------------------------------------------------

def _design(columns: list[_Column]) -> dict[str, np.ndarray]:
    """Features per table, fitted on the real one and applied to all alike: a number
    standardised by the real mean and spread, a missing one filled with the real median
    (plus a 0/1 column where the real table has missing cells); a category one-hot over the
    real levels plus missing, so a level the real table lacks is all zeros."""
    blocks: dict[str, list[np.ndarray]] = {t: [] for t in columns[0].values}
    for col in columns:
        real = col.values["real"]
        if col.categorical:
            for t, x in col.values.items():
                keep = x < col.known                     # a real level, or missing
                onehot = np.zeros((len(x), col.known + 1))
                onehot[np.flatnonzero(keep), np.where(x < 0, col.known, x)[keep]] = 1
                blocks[t].append(onehot)
            continue
        seen = real[~np.isnan(real)]
        mean, std, median = seen.mean(), seen.std() or 1.0, np.median(seen)
        for t, x in col.values.items():
            blocks[t].append(((np.where(np.isnan(x), median, x) - mean) / std)[:, None])
            if np.isnan(real).any():
                blocks[t].append(np.isnan(x)[:, None].astype(np.float64))
    return {t: np.hstack(b) for t, b in blocks.items()}


def _models(task: str, seed: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
    if task == "regression":
        return {"linear regression": LinearRegression(),
                "decision tree (depth 15)": DecisionTreeRegressor(max_depth=15, random_state=seed),
                "gradient boosting": HistGradientBoostingRegressor(random_state=seed)}
    return {"logistic regression": LogisticRegression(max_iter=1000),
            "decision tree (depth 15)": DecisionTreeClassifier(max_depth=15, random_state=seed),
            "gradient boosting": HistGradientBoostingClassifier(random_state=seed)}


def _scorer(target: _Column) -> tuple[str, Any, dict[str, Any]]:
    """(metric name, score(y_true, y_pred), what to say of it) for the target column."""
    from sklearn.metrics import f1_score, r2_score
    if not target.categorical:
        return "R2", r2_score, {}
    y = target.values["real"]
    counts = np.bincount(y[y >= 0], minlength=target.known)
    classes = np.flatnonzero(counts)
    if len(classes) < 2:
        raise GankitError(f"column {target.name!r} holds one value in the real table: there "
                          f"is nothing to predict; choose another {option('target')}")
    if len(classes) > 2:
        return "macro F1", lambda t, p: f1_score(t, p, labels=classes, average="macro",
                                                 zero_division=0), {}
    positive = int(classes[np.argmin(counts[classes])])   # the rarer class, as SDGym's Adult F1
    return ("F1", lambda t, p: f1_score(t == positive, p == positive, zero_division=0),
            {"positive": target.levels[positive]})


def _fit_predict(model, x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """The model's predictions; a training set of one class predicts it everywhere
    (a classifier cannot be fitted on one class)."""
    if y.dtype.kind == "i" and len(np.unique(y)) < 2:
        return np.full(len(x_test), y[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # lbfgs's ConvergenceWarning: scored all the same
        return model.fit(x, y).predict(x_test)


def _efficacy(columns: list[_Column], target: str, seed: int = 0) -> dict[str, Any]:
    """Train on the synthetic rows, test on the held-out real rows, against training on
    the real rows; per model and on average, and the ratio synthetic / real."""
    y_col = next(c for c in columns if c.name == target)
    features = [c for c in columns if c is not y_col]
    if not features:
        raise GankitError(f"{option('target')} {target}: the table has no other column to "
                          "predict it from")
    metric, score, about = _scorer(y_col)
    x, task = _design(features), "classification" if y_col.categorical else "regression"
    labelled = {t: ~_is_missing(y_col, t) for t in TABLES}
    for t in TABLES:
        if not labelled[t].any():
            raise GankitError(f"the {t} table has no value in column {target!r}: nothing to "
                              f"{'test on' if t == 'holdout' else 'learn from'}")
    unknown = sorted({y_col.levels[c] for c in y_col.values["holdout"] if c >= y_col.known}
                     if y_col.categorical else [])
    if unknown:   # Adult's test file writes '>50K.' where its training file has '>50K'
        warnings.warn(f"column {target!r} of the held-out rows has values the real table lacks "
                      f"({', '.join(map(repr, unknown[:5]))}): no model can predict them; write "
                      "them as the real table does", stacklevel=3)
    y_test, x_test = y_col.values["holdout"][labelled["holdout"]], x["holdout"][labelled["holdout"]]
    results = {}
    for name, model in _models(task, seed).items():
        got = {t: float(score(y_test, _fit_predict(model, x[t][labelled[t]],
                                                   y_col.values[t][labelled[t]], x_test)))
               for t in ("real", "synthetic")}
        results[name] = {**got, "ratio": _ratio(got["synthetic"], got["real"])}
    real, synth = _mean(r["real"] for r in results.values()), _mean(r["synthetic"] for r in results.values())
    return {"target": target, "task": task, "metric": metric, **about, "models": results,
            "real": real, "synthetic": synth, "ratio": _ratio(synth, real),
            "rows": {t: int(labelled[t].sum()) for t in TABLES}}


def _ratio(synthetic: float, real: float) -> float | None:
    """synthetic / real; None where real is not above 0 (an R2 can be), where it says nothing."""
    return synthetic / real if real > 0 else None


# --- privacy: distance to the closest record ------------------------------------------

@dataclass
class _Rows:
    """Rows in the space of the distance: see `_distances`."""
    numbers: Any        # (p, n) float32 tensor, scaled by the real table's range
    missing: Any        # (p, n) bool tensor
    onehot: Any         # (n, q) float32 tensor, a 1 per narrow categorical column
    codes: Any          # (r, n) int64 tensor, the codes of the wide categorical columns


WIDE = 128   # a categorical column of more levels is compared by code, not one-hot


def _rows(columns: list[_Column], table: str, index: np.ndarray) -> _Rows:
    import torch
    numbers, missing, onehot, codes = [], [], [], []
    for col in columns:
        x = col.values[table][index]
        if not col.categorical:
            real = col.values["real"]
            low, span = np.nanmin(real), np.nanmax(real) - np.nanmin(real)
            # A constant real column: any other value is at distance 1, as SDMetrics has it.
            numbers.append(np.nan_to_num((x - low) * (1 / span if span > 0 else 1e12)))
            missing.append(np.isnan(x))
        elif len(col.levels) + 1 > WIDE:
            codes.append(x)
        else:
            block = np.zeros((len(x), len(col.levels) + 1), dtype=np.float32)
            block[np.arange(len(x)), np.where(x < 0, len(col.levels), x)] = 1
            onehot.append(block)
    n = len(index)
    return _Rows(torch.tensor(np.array(numbers, dtype=np.float32).reshape(-1, n)),
                 torch.tensor(np.array(missing, dtype=bool).reshape(-1, n)),
                 torch.tensor(np.hstack(onehot) if onehot else np.zeros((n, 0), np.float32)),
                 torch.tensor(np.array(codes, dtype=np.int64).reshape(-1, n)))


def _distances(a: _Rows, b: _Rows, subsets: list[np.ndarray | None], columns: int,
              block: int = 2 ** 22) -> list[np.ndarray]:
    """For each row of `a`, the distance to its nearest row of `b` (of each subset of b's
    rows; None: all of them). The distance is SDMetrics' DCR distance, the mean over the
    columns of: |x - y| / the real table's range, at most 1, for a number (1 where one of
    the cells is missing, 0 where both are); 0 or 1 for a category (missing is a level).
    Computed in blocks of `block` pairs; a narrow categorical column's mismatches all at
    once as (number of them) - onehot_a @ onehot_b.T."""
    import torch
    n = b.onehot.shape[0]
    width = a.onehot.shape[1]
    narrow = int(b.onehot[:1].sum()) if n else 0
    gaps = [bool(a.missing[j].any() or b.missing[j].any()) for j in range(len(a.numbers))]
    step = max(1, block // max(n, 1))
    out: list[list[np.ndarray]] = [[] for _ in subsets]
    for start in range(0, a.onehot.shape[0], step):
        s = slice(start, start + step)
        d = torch.full((a.onehot[s].shape[0], n), float(narrow))
        if width:
            d.addmm_(a.onehot[s], b.onehot.T, alpha=-1)
        for j, gap in enumerate(gaps):
            t = (a.numbers[j, s, None] - b.numbers[j, None, :]).abs_().clamp_max_(1)
            if gap:
                ma, mb = a.missing[j, s, None], b.missing[j, None, :]
                t.masked_fill_(ma ^ mb, 1).masked_fill_(ma & mb, 0)
            d += t
        for j in range(len(a.codes)):
            d += a.codes[j, s, None] != b.codes[j, None, :]
        for k, subset in enumerate(subsets):
            part = d if subset is None else d[:, torch.from_numpy(subset)]
            out[k].append((part.min(1).values / columns).numpy())
    return [np.concatenate(o) if o else np.zeros(0) for o in out]


def _privacy(columns: list[_Column], holdout: bool, seed: int = 0,
            rows: int = PRIVACY_ROWS) -> dict[str, Any]:
    """Distances of (a seeded sample of at most `rows`) synthetic rows to the closest real
    row, and with a holdout the share of them closer to the training rows than to the
    held-out ones (ties count half). That share is 0.5 for rows drawn like fresh real rows
    only when both sets are equally large: the larger is subsampled (seeded) to the
    smaller's size for it."""
    rng = np.random.default_rng(seed)
    n = {t: len(columns[0].values[t]) for t in columns[0].values}
    synth = _sample(rng, n["synthetic"], rows)
    a, real = _rows(columns, "synthetic", synth), _rows(columns, "real", np.arange(n["real"]))
    out: dict[str, Any] = {"synthetic_rows": len(synth), "closer_to_training": None}
    if not holdout:
        (to_real,) = _distances(a, real, [None], len(columns))
        return {**out, "dcr_to_training": _spread(to_real),
                "exact_copies": float(np.mean(to_real == 0))}
    size = min(n["real"], n["holdout"])
    real_part, held_part = (_subset(rng, n[t], size) for t in ("real", "holdout"))
    held = _rows(columns, "holdout", np.arange(n["holdout"]))
    to_real, to_real_part = _distances(a, real, [None, real_part], len(columns))
    to_held, to_held_part = _distances(a, held, [None, held_part], len(columns))
    fresh = _rows(columns, "holdout", _sample(rng, n["holdout"], rows))
    (fresh_to_real,) = _distances(fresh, real, [None], len(columns))
    return {**out, "dcr_to_training": _spread(to_real), "exact_copies": float(np.mean(to_real == 0)),
            "dcr_to_holdout": _spread(to_held), "holdout_dcr_to_training": _spread(fresh_to_real),
            "closer_to_training": _closer(to_real_part, to_held_part), "reference_rows": size,
            # Every row of both sets: a row drawn like the real ones has its nearest neighbour
            # among the training rows with probability n_real / (n_real + n_holdout), by
            # symmetry; a copy of any training row is closer to them. Sharper than the
            # subsampled share, in which a copy of a row left out of the sample looks fresh.
            "closer_to_training_all_rows": _closer(to_real, to_held),
            "expected_all_rows": n["real"] / (n["real"] + n["holdout"])}


def _subset(rng: np.random.Generator, n: int, k: int) -> np.ndarray | None:
    """k of range(n), or None (all of them) when n <= k."""
    return None if n <= k else _sample(rng, n, k)


def _closer(to_training: np.ndarray, to_holdout: np.ndarray) -> float:
    """The share of rows closer to the training rows than to the held-out ones; ties half."""
    return float(np.mean(to_training < to_holdout) + 0.5 * np.mean(to_training == to_holdout))


def _sample(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """k of range(n) in increasing order, or all of them when n <= k."""
    return np.arange(n) if n <= k else np.sort(rng.choice(n, k, replace=False))


def _spread(d: np.ndarray) -> dict[str, float]:
    return {"median": float(np.median(d)), "p5": float(np.percentile(d, 5))}


# --- the report -----------------------------------------------------------------------

def judge(real: Any, synthetic: Any, holdout: Any = None, target: str | None = None,
          seed: int = 0, privacy_rows: int = PRIVACY_ROWS) -> dict[str, Any]:
    """The whole report as a plain dict. Tables are CSV paths, (header, rows) pairs or
    pandas DataFrames; `synthetic` and `holdout` need the real table's columns. `target`
    (a column; needs `holdout`) adds the machine-learning efficacy; `holdout` (real rows
    the generator never saw) adds the privacy share. Everything random is seeded by `seed`."""
    if target is not None and holdout is None:
        raise GankitError(f"{option('target')} asks for the machine-learning efficacy, which "
                          "tests on real rows the generator never saw: give them too "
                          f"({option('holdout', 'HOLDOUT')})")
    header, real_rows, real_where = _read(real, "real")
    if target is not None and target not in header:
        raise GankitError(f"{option('target')} {target}: the real table has no such column"
                          f"{did_you_mean(target, header)}; it has {', '.join(header[:12])}")
    tables = {"real": (real_rows, real_where)}
    for name, source in (("synthetic", synthetic), ("holdout", holdout)):
        if source is not None:
            h, rows, where = _read(source, name)
            tables[name] = (_aligned(header, h, rows, where), where)
    with warnings.catch_warnings():   # its warning speaks of a model; the report names them
        warnings.simplefilter("ignore")
        schema = infer_schema(header, real_rows, real_where)
    if target in schema.dropped:
        raise GankitError(f"{option('target')} {target}: the column has no value in the real "
                          "table: there is nothing to predict")
    columns = _columns(schema, tables)
    shapes, pairs = [_shape(c) for c in columns], _pairs(columns)
    quality = _quality(shapes, pairs)
    report = {
        "rows": {t: len(rows) for t, (rows, _) in tables.items()},
        "columns": [{"name": c.name, "kind": "categorical" if c.categorical else "numeric"}
                    for c in columns],
        "left_out": list(schema.dropped), "seed": seed, "quality": quality,
        "column_shapes": shapes, "column_pair_trends": pairs,
        "efficacy": None if target is None else _efficacy(columns, target, seed),
        "privacy": _privacy(columns, holdout is not None, seed, privacy_rows)}
    return _plain(report)


def _quality(shapes: list[dict], pairs: list[dict]) -> dict[str, float]:
    shape = _mean(s["score"] for s in shapes)
    trends = _mean(p["score"] for p in pairs)
    associated = _mean(p["score"] for p in pairs if p["associated"])
    return {"score": _mean([shape, trends]), "column_shapes": shape, "column_pair_trends": trends,
            "trends_associated": associated, "sdmetrics_score": _mean([shape, associated])}


def _plain(x: Any) -> Any:
    """JSON's own types: numpy numbers as Python's, NaN as None (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def worst(report: dict[str, Any], k: int = 3) -> tuple[list[dict], list[dict]]:
    """The k lowest-scoring columns and pairs, worst first."""
    def low(items):
        return sorted((i for i in items if i["score"] is not None), key=lambda i: i["score"])[:k]
    return low(report["column_shapes"]), low(report["column_pair_trends"])


def summary(report: dict[str, Any]) -> str:
    """A few lines for a terminal: the scores, the worst columns and pairs."""
    q = report["quality"]
    lines = [f"quality {_f(q['score'])} (column shapes {_f(q['column_shapes'])}, column pair "
             f"trends {_f(q['column_pair_trends'])}; SDMetrics' QualityReport, associated "
             f"pairs only: {_f(q['sdmetrics_score'])})"]
    cols, pairs = worst(report)
    lines.append("worst columns: " + ", ".join(
        f"{c['column']} {_f(c['score'], 2)} ({c['metric'][:2]})" for c in cols))
    if pairs:
        lines.append("worst pairs: " + ", ".join(
            f"{a} x {b} {_f(p['score'], 2)}" for p in pairs for a, b in [p["columns"]]))
    e = report["efficacy"]
    if e:
        what = e["metric"] + (f" of {e['positive']!r}" if "positive" in e else "")
        lines.append(f"efficacy ({e['target']}, {what}, mean of {len(e['models'])} models): "
                     f"synthetic {_f(e['synthetic'])} / real {_f(e['real'])} = {_f(e['ratio'], 2)}")
    p = report["privacy"]
    dcr = p["dcr_to_training"]
    if p["closer_to_training"] is not None:
        lines.append(f"privacy: {100 * p['closer_to_training']:.1f}% of synthetic rows closer to "
                     "training rows than to held-out ones (50% = no copying; over all rows of "
                     f"both {100 * p['closer_to_training_all_rows']:.1f}% against "
                     f"{100 * p['expected_all_rows']:.1f}%)")
    lines.append(f"distance to the closest training row: median {_f(dcr['median'])}, 5th "
                 f"percentile {_f(dcr['p5'])}; {100 * p['exact_copies']:.1f}% exact copies")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str | Path) -> None:
    import json

    from .files import atomic_write
    text = json.dumps(report, indent=1, allow_nan=False)
    with atomic_write(path, fix=f"choose another {option('json')}") as f:
        f.write((text + "\n").encode())
