"""Mode-specific normalisation (gankit/data/modes.py): the modes a column has, values written
as (mode, alpha) and read back, the mode drawn from its posterior."""

import json

import numpy as np
import pytest

from gankit.data.modes import FIT_ROWS, MAX_MODES, MIN_WEIGHT, Modes, fit_modes


def two_modes(n: int, seed: int = 0) -> np.ndarray:
    """30% around -5 (sd 0.5), 70% around 5 (sd 1)."""
    rng = np.random.default_rng(seed)
    low = rng.random(n) < 0.3
    return np.where(low, rng.normal(-5, 0.5, n), rng.normal(5, 1, n))


def test_a_two_mode_column_gets_its_two_modes():
    modes = fit_modes(two_modes(4000))
    assert modes.count == 2
    order = np.argsort(modes.means)
    assert np.allclose(np.asarray(modes.means)[order], [-5, 5], atol=0.1)
    assert np.allclose(np.asarray(modes.stds)[order], [0.5, 1], atol=0.1)
    assert np.allclose(np.asarray(modes.weights)[order], [0.3, 0.7], atol=0.03)


def test_kept_modes_are_at_most_ten_above_the_weight_floor_and_sum_to_one():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(m, 0.3, 500) for m in range(15)])   # 15 bumps
    modes = fit_modes(x)
    assert 1 <= modes.count <= MAX_MODES
    assert min(modes.weights) > MIN_WEIGHT and abs(sum(modes.weights) - 1) < 1e-9


def test_values_come_back_from_their_mode_and_alpha():
    modes = fit_modes(two_modes(4000))
    x = two_modes(1000, seed=2)
    alpha, mode = modes.encode(x, np.random.default_rng(0))
    assert alpha.min() >= -1 and alpha.max() <= 1 and set(mode) <= set(range(modes.count))
    inside = np.abs(alpha) < 1                       # not clipped: exactly recovered
    assert inside.mean() > 0.99
    assert np.allclose(modes.decode(alpha, mode)[inside], x[inside])


def test_the_mode_is_drawn_from_its_posterior_not_taken_by_argmax():
    modes = Modes(weights=[0.5, 0.5], means=[-1.0, 1.0], stds=[1.0, 1.0])
    rng = np.random.default_rng(0)
    _, mode = modes.encode(np.zeros(4000), rng)           # halfway: either mode
    assert 0.45 < mode.mean() < 0.55
    x = np.full(4000, 0.5)                                # p(k=1 | 0.5) = 1 / (1 + e^-1)
    _, mode = modes.encode(x, rng)
    assert abs(mode.mean() - modes.posterior(x[:1])[0, 1]) < 0.03
    assert abs(modes.posterior(x[:1])[0, 1] - 1 / (1 + np.exp(-1))) < 1e-12
    _, mode = modes.encode(np.full(100, 6.0), rng)        # deep in a mode: that mode
    assert (mode == 1).all()


def test_the_same_generator_state_gives_the_same_encoding():
    modes = fit_modes(two_modes(2000))
    x = two_modes(500, seed=3)
    a = modes.encode(x, np.random.default_rng(7))
    b = modes.encode(x, np.random.default_rng(7))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_a_constant_column_is_one_narrow_mode():
    modes = fit_modes(np.full(100, 3.5))
    assert modes.count == 1
    alpha, mode = modes.encode(np.full(5, 3.5), np.random.default_rng(0))
    assert np.array_equal(alpha, np.zeros(5)) and np.array_equal(modes.decode(alpha, mode),
                                                                 np.full(5, 3.5))


def test_modes_travel_as_json():
    modes = fit_modes(two_modes(2000))
    again = Modes.from_dict(json.loads(json.dumps(modes.to_dict())))
    assert again == modes


def test_a_long_column_is_fitted_on_a_seeded_sample_that_finds_its_modes():
    """(benchmarks/modes.py compares with fitting every row: slower, and on this column it
    did not converge to two modes in MAX_ITER iterations.)"""
    x = two_modes(40_000, seed=4)
    assert len(x) > FIT_ROWS
    bounded = fit_modes(x, seed=0)
    assert bounded == fit_modes(x, seed=0)                     # the sample is seeded
    assert bounded.count == 2
    assert np.allclose(sorted(bounded.means), [-5, 5], atol=0.1)


def test_no_values_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one observed value"):
        fit_modes(np.array([]))
