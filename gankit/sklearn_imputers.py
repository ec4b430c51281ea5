"""scikit-learn imputers backed by gankit's table models: GAINImputer and MIWAEImputer
(importable from gankit.impute, which loads this module on first use).

fit trains the model through gankit's training loop into a run folder (a temporary one
unless `out` names it); transform fills every missing cell and returns every observed one
exactly. They are scikit-learn estimators: clone, Pipeline, GridSearchCV and scikit-learn's
estimator checks (tests/test_sklearn_estimators.py) work with them.
"""

from __future__ import annotations

import numbers
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .data.table import Column, Schema, TableData
from .errors import GankitError
from .filling import fill, train_table
from .models import model_name as registered_name
from .models.gain import GAIN
from .models.miwae import MIWAE

class _BadInput(GankitError, ValueError):
    """A mistake in X: a GankitError to gankit's callers, the ValueError that scikit-learn's
    conventions (and its estimator checks) expect."""


class _NotFitted(GankitError, NotFittedError):
    """transform before fit: a GankitError, and scikit-learn's NotFittedError."""


class _TableImputer(TransformerMixin, BaseEstimator):
    """fit / transform / fit_transform as scikit-learn's imputers have them, on numeric
    arrays (N, D); get_params, set_params and clone come from BaseEstimator. Columns
    entirely missing in fit are dropped from the output, with a warning, as SimpleImputer
    drops them."""

    model_name = ""

    def __init__(self, *, steps: int | None = None, missing_values: Any = np.nan,
                 random_state: int | np.random.RandomState | None = None,
                 add_indicator: bool = False, options: dict | None = None,
                 out: str | None = None, verbose: bool = False):
        self.steps = steps
        self.missing_values = missing_values
        self.random_state = random_state
        self.add_indicator = add_indicator
        self.options = options
        self.out = out
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True   # NaN is a missing cell, whatever missing_values is
        return tags

    def _input(self, X, fit: bool) -> np.ndarray:
        """X as float64, NaN in its missing cells, checked by scikit-learn: 2-D, numeric, no
        infinity; in transform, fitted and with as many features as in fit."""
        marker = self.missing_values
        if isinstance(marker, numbers.Real) and np.isinf(marker):   # validation refuses inf
            try:
                X = np.where(np.asarray(X, dtype=np.float64) == marker, np.nan, X)
            except (TypeError, ValueError):
                pass   # not numbers: validation says so below
        try:
            if not fit:
                check_is_fitted(self)
            X = validate_data(self, X, reset=fit, dtype=np.float64, ensure_all_finite="allow-nan")
        except NotFittedError as e:
            raise _NotFitted(str(e)) from None
        except ValueError as e:   # in one line: scikit-learn's may go on to print X
            line = str(e).splitlines()[0]
            if line.startswith("Expected 2D array"):
                line = (f"{line.rstrip(':')}. Reshape your data: X.reshape(1, -1) for one "
                        "row, X.reshape(-1, 1) for one column")
            raise _BadInput(line) from None
        if not (isinstance(self.missing_values, float) and np.isnan(self.missing_values)):
            X = np.where(X == self.missing_values, np.nan, X)   # a copy: X is the caller's
        return X

    def _seed(self) -> int:
        # an int is the training seed itself, as `gankit impute --seed` takes it
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def fit(self, X, y=None) -> _TableImputer:
        X = self._input(X, fit=True)
        observed = ~np.isnan(X)
        empty = ~observed.any(0)
        if empty.all():
            raise _BadInput("every column of X is entirely missing: there is nothing to learn")
        if empty.any():
            warnings.warn(f"skipping features without any observed values: {np.flatnonzero(empty)}",
                          stacklevel=2)
        self.keep_ = np.flatnonzero(~empty)
        self.indicator_features_ = np.flatnonzero((~observed).any(0))
        names = [f"x{k}" for k in self.keep_]
        columns = [Column(n, "float", float(np.nanmin(X[:, k])), float(np.nanmax(X[:, k])))
                   for n, k in zip(names, self.keep_)]
        self.schema_ = Schema(names, columns)
        self.seed_ = self._seed()
        data = TableData(self._scaled(X), self.schema_, name=f"array {X.shape[0]}x{X.shape[1]}")
        folder = self.out or tempfile.mkdtemp(prefix="gankit-impute-")
        try:
            self.model_ = train_table(self.model_name, data, str(Path(folder) / "run") if not self.out
                                 else self.out, self.steps, self.seed_, self.verbose,
                                 dict(self.options or {})).model
        finally:
            if not self.out:
                shutil.rmtree(folder, ignore_errors=True)
        return self

    def _scaled(self, X: np.ndarray) -> torch.Tensor:
        cols = X[:, self.keep_]
        scaled = np.stack([c.scale(cols[:, j]) for j, c in enumerate(self.schema_.columns)], 1)
        return torch.from_numpy(scaled).float()

    def _complete(self, X: np.ndarray, filled: np.ndarray) -> np.ndarray:
        kept = X[:, self.keep_]
        values = np.stack([c.unscale(filled[:, j]) for j, c in enumerate(self.schema_.columns)], 1)
        return np.where(np.isnan(kept), values, kept)        # observed cells exactly as given

    def transform(self, X) -> np.ndarray:
        X = self._input(X, fit=False)
        out = self._complete(X, fill(self.model_, self._scaled(X), self.seed_))
        if self.add_indicator:
            out = np.hstack([out, np.isnan(X[:, self.indicator_features_]).astype(np.float64)])
        return out

    def sample(self, X, k: int) -> np.ndarray:
        """k completions of X, (k, N, D): multiple imputation (GAIN: k draws of G's noise;
        MIWAE: sampling importance resampling)."""
        X = self._input(X, fit=False)
        draws = fill(self.model_, self._scaled(X), self.seed_, multiple=k)
        return np.stack([self._complete(X, d) for d in draws])


class GAINImputer(_TableImputer):
    """Fills missing values with GAIN (Yoon et al. 2018); `options` holds model settings
    such as {"alpha": 10, "hint": "paper"} (gankit impute --model gain --help)."""
    model_name = registered_name(GAIN)


class MIWAEImputer(_TableImputer):
    """Fills missing values with MIWAE (Mattei & Frellsen 2019): the conditional mean by
    self-normalised importance sampling; `options` as for GAINImputer."""
    model_name = registered_name(MIWAE)
