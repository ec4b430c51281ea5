"""scikit-learn's own estimator checks on GAINImputer and MIWAEImputer (clone, get_params
and set_params, input validation, n_features_in_, pickling, fit idempotence, pipelines),
and what those checks leave out: their data has no missing cell, so they never see a fill,
and they do not ask that errors be GankitErrors in one line. Each fit trains through
gankit's real training loop for a few steps."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from gankit.errors import GankitError
from gankit.impute import GAINImputer, MIWAEImputer

STEPS = 2   # the checks test the interface, not the quality of the fills


# Every check applies and passes: none is listed as an expected failure.
@parametrize_with_checks([GAINImputer(steps=STEPS), MIWAEImputer(steps=STEPS)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def holed():
    X = np.random.default_rng(0).normal(size=(30, 4))
    X[np.random.default_rng(1).random(X.shape) < 0.25] = np.nan
    return X


@pytest.mark.parametrize("cls", [GAINImputer, MIWAEImputer])
def test_fills_repeat_after_refit_clone_and_pickle(holed, cls):
    imputer = cls(steps=STEPS, random_state=3).fit(holed)
    filled = imputer.transform(holed)
    assert not np.isnan(filled).any()
    assert np.array_equal(filled[~np.isnan(holed)], holed[~np.isnan(holed)])
    for again in (clone(imputer).fit(holed), pickle.loads(pickle.dumps(imputer))):
        assert np.array_equal(again.transform(holed), filled)


def test_mistakes_are_one_line_gankit_errors_of_the_type_sklearn_expects(holed):
    unfitted = GAINImputer(steps=STEPS)
    with pytest.raises(GankitError, match="not fitted") as e:
        unfitted.transform(holed)
    assert isinstance(e.value, NotFittedError)
    fitted = GAINImputer(steps=STEPS, random_state=0).fit(holed)
    inf = holed.copy()
    inf[0, 0] = np.inf
    for call, X, words in ((fitted.transform, holed[0], "Reshape your data"),
                           (fitted.transform, holed[:, :2], "expecting 4 features"),
                           (fitted.transform, inf, "infinity"),
                           (unfitted.fit, np.full((5, 2), np.nan), "entirely missing"),
                           (unfitted.fit, np.empty((0, 3)), "0 sample")):
        with pytest.raises(GankitError, match=words) as e:
            call(X)
        assert isinstance(e.value, ValueError) and "\n" not in str(e.value), str(e.value)


def test_infinity_can_mark_the_missing_cells():
    """missing_values=np.inf, as SimpleImputer takes it: the marked cells are filled and the
    others come back exactly; without it an infinity is refused."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    X[rng.random(X.shape) < 0.2] = np.inf
    filled = GAINImputer(steps=2, random_state=0, missing_values=np.inf).fit_transform(X)
    assert np.isfinite(filled).all()
    assert np.array_equal(filled[np.isfinite(X)], X[np.isfinite(X)])
    with pytest.raises(GankitError, match="infinity"):
        GAINImputer(steps=2).fit(X)
