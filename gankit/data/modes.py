"""Mode-specific normalisation of a numeric column (CTGAN, Xu et al. 2019, section 4.2): the
representation the table generators (CTGAN, TVAE) learn a continuous column in.

A column's values are rarely one Gaussian: ages bunch, incomes have a spike at 0 and a long
tail. A variational Gaussian mixture (at most MAX_MODES modes; a Dirichlet-process prior
switches off those the column does not need, and modes under MIN_WEIGHT are dropped) finds
the column's modes. A value x is then written as two parts: a mode k, drawn from its
posterior p(k | x) rather than taken by argmax (the paper's choice: a value between two
modes is sometimes written in either), and its place in that mode,
alpha = (x - mu_k) / (4 sigma_k), clipped to [-1, 1]. A generator outputs alpha with tanh
and k as a one-hot vector, and decode() turns them back into x.

One departure from the paper: a value that many cells hold exactly (a capital gain of 0) is
a mode of its own, of no width, rather than a Gaussian the mixture must fit (fit_modes).

Fitting the mixture is what SDV users report as half the time of a fit. It runs here on at
most FIT_ROWS values of a column, drawn at random: the modes of a column do not need every
row to be found (benchmarks/modes.py measures the time and what the bound costs).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MAX_MODES = 10
MIN_WEIGHT = 0.005
FIT_ROWS = 5_000
# The Dirichlet-process prior's concentration: small, so that the fit spends modes only
# where the data asks for them (the paper's "at most 10 modes" is the ceiling, not a count).
CONCENTRATION = 1e-3
# Pruning modes takes the variational fit hundreds of iterations: on 5,000 values of a
# two-mode column it converged after about 500 to exactly 2 modes; stopped at 100 (sklearn's
# default) it kept 5, the two real ones split.
MAX_ITER = 1000
SPIKE_SHARE = 0.05  # a value in at least this share of a column's cells is a mode of its own
MAX_SPIKES = 3      # at most this many such values
SCALE = 4          # alpha = (x - mu) / (SCALE sigma): within [-1, 1] for 4 sigma either side
MIN_STD = 1e-6     # a mode of one repeated value (a spike at 0) still has a width to divide by


@dataclass
class Modes:
    """A column's kept modes: weights (summing to 1), means and standard deviations."""
    weights: list[float]
    means: list[float]
    stds: list[float]

    @property
    def count(self) -> int:
        return len(self.means)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Modes":
        return cls(list(map(float, d["weights"])), list(map(float, d["means"])),
                   list(map(float, d["stds"])))

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """p(k | x), (N, count): each mode's weight times its density at x, normalised."""
        mu, sd, w = (np.asarray(v)[None, :] for v in (self.means, self.stds, self.weights))
        log = np.log(w) - np.log(sd) - 0.5 * ((x[:, None] - mu) / sd) ** 2
        log -= log.max(axis=1, keepdims=True)
        p = np.exp(log)
        return p / p.sum(axis=1, keepdims=True)

    def encode(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(alpha (N,) in [-1, 1], mode (N,) int): each value's mode drawn from p(k | x) with
        `rng`, and its place in that mode."""
        x = np.asarray(x, dtype=np.float64)
        p = self.posterior(x)
        # Inverse-CDF draws, one uniform a value: the same rng state gives the same modes.
        mode = (p.cumsum(axis=1) < rng.random(len(x))[:, None]).sum(axis=1)
        mode = np.minimum(mode, self.count - 1)
        mu, sd = np.asarray(self.means)[mode], np.asarray(self.stds)[mode]
        return np.clip((x - mu) / (SCALE * sd), -1, 1), mode

    def decode(self, alpha: np.ndarray, mode: np.ndarray) -> np.ndarray:
        """Values from (alpha, mode), alpha clipped to [-1, 1] as encode() wrote it."""
        mode = np.asarray(mode, dtype=np.int64)
        mu, sd = np.asarray(self.means)[mode], np.asarray(self.stds)[mode]
        return np.clip(np.asarray(alpha, dtype=np.float64), -1, 1) * SCALE * sd + mu


def fit_modes(x: np.ndarray, seed: int = 0, max_rows: int | None = FIT_ROWS) -> Modes:
    """The modes of a column's observed values `x` (no NaN), fitted on at most `max_rows` of
    them drawn with `seed` (None: all): a mode of width MIN_STD for each value held by at
    least SPIKE_SHARE of them (at most MAX_SPIKES), and a variational Gaussian mixture with a
    Dirichlet-process prior for the rest, its modes under MIN_WEIGHT dropped."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("a column needs at least one observed value to fit its modes")
    rng = np.random.default_rng(seed)
    if max_rows is not None and len(x) > max_rows:
        x = rng.choice(x, max_rows, replace=False)
    distinct, counts = np.unique(x, return_counts=True)
    # A value held by many cells (a capital gain of 0 in 92% of Adult's rows, 40 hours a
    # week in 47%) is a point mass, not a Gaussian: it gets a mode of its own, of width
    # MIN_STD, and the mixture is fitted to the other values. In a fitted mode it took the
    # width of its neighbours (a std of 295 on 0 against values from 1,000 up), and
    # samples of it came back spread around 0.
    spikes = distinct[np.argsort(-counts)[:MAX_SPIKES]]
    spikes = spikes[np.isin(spikes, distinct[counts >= SPIKE_SHARE * len(x)])]
    rest = x[~np.isin(x, spikes)]
    share = 1 - len(rest) / len(x)
    modes = Modes([], [], [])
    for value in spikes:
        modes.weights.append(float(np.mean(x == value)))
        modes.means.append(float(value))
        modes.stds.append(MIN_STD)
    if len(rest):
        fitted = _mixture(rest, rng)
        modes.weights += [w * (1 - share) for w in fitted.weights]
        modes.means += fitted.means
        modes.stds += fitted.stds
    return modes


def _mixture(x: np.ndarray, rng: np.random.Generator) -> Modes:
    """The variational Gaussian mixture's modes of `x`, those under MIN_WEIGHT dropped."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    distinct = np.unique(x)
    if len(distinct) <= 1:          # a constant column: one mode, nothing to fit
        return Modes([1.0], [float(distinct[0])], [MIN_STD])
    mixture = BayesianGaussianMixture(
        n_components=min(MAX_MODES, len(distinct)),
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=CONCENTRATION, n_init=1, max_iter=MAX_ITER,
        random_state=int(rng.integers(2 ** 31)))
    with warnings.catch_warnings():
        # A fit that has not converged still gives usable modes: they are a coordinate
        # system the generator learns in, not an estimate reported to the user.
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.fit(x[:, None])
    keep = mixture.weights_ > MIN_WEIGHT
    weights = mixture.weights_[keep] / mixture.weights_[keep].sum()
    stds = np.maximum(np.sqrt(mixture.covariances_.reshape(-1)[keep]), MIN_STD)
    return Modes(weights.tolist(), mixture.means_.reshape(-1)[keep].tolist(), stds.tolist())
