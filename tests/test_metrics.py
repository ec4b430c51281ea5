"""Sample-quality metrics: golden values, cross-checks against independent implementations
(pytorch-fid, torch-fidelity) on the same features, and behaviour on real-vs-noise features."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from gankit import GankitError
from gankit.metrics import (class_entropy, class_histogram, collapse_alarm, feature_stats, fid,
                            frechet_distance, inception_score, kid, precision_recall)


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """numpy's OpenBLAS on one thread while these tests run.

    On a shared 2-core machine a second BLAS thread waits for a busy core at every small
    product: measured here, the file took 16 s with the default two threads under load and
    6 s with one. threadpoolctl comes with the `test` extra; without it, nothing changes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    # scipy (for pytorch-fid's sqrtm) loads its own OpenBLAS: load it first so the limit,
    # which applies to the libraries loaded at the time, covers it too.
    with contextlib.suppress(ImportError):
        importlib.import_module("scipy.linalg")
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def clusters(rng: np.random.Generator, n: int, centres: np.ndarray, sd: float = 1.0) -> np.ndarray:
    """n points (n, D) spread evenly over Gaussian clusters around centres (C, D)."""
    which = np.arange(n) % len(centres)
    return centres[which] + sd * rng.standard_normal((n, centres.shape[1]))


# --- FID: golden values ---------------------------------------------------------------------

def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((2000, 16))
    assert abs(fid(x, x)) < 1e-6


def test_frechet_distance_commuting_diagonal_covariances_hand_computed():
    # ||m1 - m2||^2 = 1 + 4 + 4 = 9; Tr S1 = Tr S2 = 1 + 4 + 9 = 14;
    # S1 S2 = diag(4, 4, 81), its root diag(2, 2, 9), trace 13; 9 + 14 + 14 - 2 * 13 = 11.
    # (Per axis (a - b)^2 + (s - t)^2: 1 + 1 + 0 for the spreads, 9 for the means.)
    d = frechet_distance([0, 0, 0], np.diag([1.0, 4, 9]), [1, 2, 2], np.diag([4.0, 1, 9]))
    assert d == pytest.approx(11.0, abs=1e-12)


def test_frechet_distance_one_dimension():
    # N(a, s^2) vs N(b, t^2): (a - b)^2 + (s - t)^2 = (1 - -2)^2 + (0.5 - 3)^2 = 9 + 6.25.
    assert frechet_distance([1.0], [[0.25]], [-2.0], [[9.0]]) == pytest.approx(15.25, abs=1e-12)


def test_frechet_distance_rotated_covariances_reduce_to_one_dimension_per_axis():
    # Same rotation Q for both: non-diagonal, but in Q's basis each axis is a 1-D case.
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((5, 5)))
    s, t = np.array([0.5, 1.0, 2.0, 3.0, 0.1]), np.array([1.0, 1.0, 0.5, 4.0, 0.2])
    mu1, mu2 = np.arange(5.0), np.arange(5.0)[::-1]
    expected = ((mu1 - mu2) ** 2).sum() + ((s - t) ** 2).sum()
    d = frechet_distance(mu1, q @ np.diag(s ** 2) @ q.T, mu2, q @ np.diag(t ** 2) @ q.T)
    assert d == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_non_commuting_two_dimensions():
    # For a 2x2 matrix M with non-negative eigenvalues, Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M))
    # (square (sqrt(l1) + sqrt(l2))^2 = l1 + l2 + 2 sqrt(l1 l2)): no eigendecomposition.
    s1, s2 = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[1.0, -0.3], [-0.3, 3.0]])
    tr_root = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = 0.5 ** 2 + np.trace(s1) + np.trace(s2) - 2 * tr_root
    assert frechet_distance([0.5, 0], s1, [0, 0], s2) == pytest.approx(expected, rel=1e-12)


def test_fid_of_a_shifted_sample_is_the_shift_squared_and_symmetric():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((20000, 8)), rng.standard_normal((20000, 8))
    shift = np.array([1.0, -1, 1, -1, 0, 0, 0, 0])              # ||shift||^2 = 4
    assert fid(a, b + shift) == pytest.approx(4.0, abs=0.05)
    assert fid(a, b + shift) == pytest.approx(fid(b + shift, a), rel=1e-10)


def test_fid_accepts_torch_tensors_and_stays_finite_on_singular_covariances():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) + 0.5   # rank 19 < 64
    d = fid(torch.from_numpy(a).float(), torch.from_numpy(b).float())
    assert np.isfinite(d) and d == pytest.approx(fid(a, b), rel=1e-5)


def test_feature_stats_is_the_unbiased_mean_and_covariance():
    x = np.array([[0.0, 1], [2, 1], [4, 4]])
    mu, sigma = feature_stats(x)
    assert np.allclose(mu, [2, 2]) and np.allclose(sigma, np.cov(x, rowvar=False))
    assert sigma[0, 0] == pytest.approx(4.0)        # (4 + 0 + 4) / (3 - 1)


def test_metrics_refuse_mismatched_feature_sets():
    with pytest.raises(GankitError, match="different dimensions"):
        fid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(GankitError, match="2-D"):
        kid(np.zeros(5), np.zeros(5))


# --- KID, IS, precision/recall, classes: golden values ----------------------------------------

def test_kid_of_a_set_with_itself_is_about_zero_and_of_shifted_sets_clearly_positive():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((1000, 16)), rng.standard_normal((1000, 16))
    # Subsets of one set share points, whose k(x, x) (about (1 + 1)^3 = 8 here) counts in
    # the cross term but not within a set: an offset of about -2 * 8 / 1000, not a bias of
    # the estimator for independent samples, which is what `b` is.
    assert abs(kid(a, a, subsets=20, subset_size=200)[0]) < 0.02
    same, same_std = kid(a, b, subsets=20, subset_size=200)
    apart, apart_std = kid(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 2 * same_std and apart > 1.0 and apart > 10 * apart_std
    assert kid(a, b + 1.0, subsets=20, subset_size=200) == (apart, apart_std)   # seeded


def test_inception_score_extremes():
    k = 10
    one_hot = np.eye(k)[np.arange(1000) % k]             # every split holds 10 of each class
    assert inception_score(one_hot)[0] == pytest.approx(k, rel=1e-12)
    assert inception_score(one_hot)[1] == pytest.approx(0.0, abs=1e-12)
    same = np.tile([0.7, 0.2, 0.1], (300, 1))
    assert inception_score(same, splits=3)[0] == pytest.approx(1.0, abs=1e-12)


def test_inception_score_refuses_logits():
    with pytest.raises(GankitError, match="softmax"):
        inception_score(np.random.default_rng(0).standard_normal((100, 10)))


def test_precision_recall_of_a_set_with_itself_and_of_far_apart_sets():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((500, 8))
    assert precision_recall(a, a) == (1.0, 1.0)
    assert precision_recall(a, a + 100.0) == (0.0, 0.0)


def test_precision_recall_when_the_fakes_cover_half_of_the_modes():
    rng = np.random.default_rng(6)
    # 4 modes 42 apart, spread 1, in 2-D: 500 points fill a mode's k-NN balls well (in
    # 16-D even the reals' own second half reaches only ~0.8 precision at this N).
    centres = 30.0 * np.eye(4, 2)
    real = clusters(rng, 2000, centres)
    fake = clusters(rng, 1000, centres[:2])
    precision, recall = precision_recall(real, fake)
    assert precision > 0.97 and 0.45 < recall <= 0.5


def test_precision_recall_in_blocks_matches_one_block(monkeypatch):
    rng = np.random.default_rng(7)
    real, fake = rng.standard_normal((300, 4)), rng.standard_normal((200, 4)) + 0.7
    whole = precision_recall(real, fake)
    # The package's function `precision_recall` hides the module of the same name.
    module = importlib.import_module("gankit.metrics.precision_recall")
    monkeypatch.setattr(module, "BLOCK_ENTRIES", 1000)            # blocks of ~3 rows
    assert precision_recall(real, fake) == whole and 0 < whole[0] < 1 and 0 < whole[1] < 1


def test_class_entropy_extremes():
    assert class_entropy(np.full(10, 7)) == pytest.approx(1.0)
    assert class_entropy([0, 0, 50, 0]) == 0.0


def test_class_histogram_from_probabilities_and_labels():
    probs = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    assert class_histogram(probs, 3).tolist() == [1, 2, 0]
    assert class_histogram(torch.tensor([2, 2, 0]), 3).tolist() == [1, 0, 2]
    with pytest.raises(GankitError, match="integers in"):
        class_histogram(np.array([0, 3]), 3)


def test_collapse_alarm_names_the_missing_classes_of_a_single_class_set():
    counts = class_histogram(np.full(1000, 3), 10)
    message = collapse_alarm(counts)
    assert message is not None and "missing classes: 0, 1, 2, 4, 5, 6, 7, 8, 9" in message
    named = collapse_alarm([500, 0, 500], class_names=["cat", "dog", "owl"])
    assert "missing classes: dog" in named


def test_collapse_alarm_names_a_rare_class_and_is_silent_for_a_fair_sample():
    fair = class_histogram(np.random.default_rng(8).integers(0, 10, 10_000), 10)
    assert collapse_alarm(fair) is None                  # each ~1,000 +- 30, threshold 250
    assert "rare classes" in collapse_alarm([1000] * 9 + [200]) and "9 (200)" in \
        collapse_alarm([1000] * 9 + [200])


# --- Cross-checks against independent implementations ---------------------------------------

# Both reference packages import torchvision when their modules load (for their image
# pipelines and Inception networks), though the two functions we compare with are plain
# numpy. torchvision is not installed here (its wheels are several GB, and gankit avoids it
# by design), so while those modules load we register stand-ins for exactly the torchvision
# names they touch at import time; nothing calls into them. Attribute names are classes
# the packages import or subclass at module level.
TORCHVISION_STAND_IN = {
    "torchvision": [],
    "torchvision.transforms": [],
    "torchvision.transforms.functional": [],
    "torchvision.datasets": ["CIFAR10", "CIFAR100", "STL10"],
    "torchvision.models": [],
    "torchvision.models.inception": ["InceptionA", "InceptionC", "InceptionE"],
}


@contextlib.contextmanager
def torchvision_stand_in():
    """Make `import torchvision...` succeed with empty stand-ins; undo everything after.

    The third-party modules imported meanwhile are dropped from sys.modules again (the
    functions taken from them keep their globals), so no later import anywhere in this
    process gets a package wired to the stand-in.
    """
    if importlib.util.find_spec("torchvision") is not None:    # the real one: use it
        yield
        return
    before = set(sys.modules)
    with pytest.MonkeyPatch.context() as mp:
        for name, classes in TORCHVISION_STAND_IN.items():
            module = types.ModuleType(name, "stand-in for tests/test_metrics.py")
            module.__path__ = []          # a package: unknown submodules fail with ImportError
            module.__version__ = "0.0"
            for cls in classes:
                setattr(module, cls, type(cls, (), {}))
            mp.setitem(sys.modules, name, module)
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
        try:
            yield
        finally:
            for name in set(sys.modules) - before:
                if name.split(".")[0] in ("torch_fidelity", "pytorch_fid"):
                    del sys.modules[name]


def reference(package: str, pip_name: str, module: str, function: str):
    """`function` of an installed reference package, or skip saying how to install it."""
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{pip_name} is not installed: `pip install --no-deps {pip_name}` "
                    "(as .ci/run does; with its dependencies it would pull torchvision)")
    with torchvision_stand_in():
        return getattr(importlib.import_module(module), function)


@pytest.fixture(scope="module")
def pytorch_fid_distance():
    pytest.importorskip("scipy", reason="pytorch-fid's Frechet distance needs scipy.linalg")
    return reference("pytorch_fid", "pytorch-fid==0.3.0", "pytorch_fid.fid_score",
                     "calculate_frechet_distance")


@pytest.fixture(scope="module")
def torch_fidelity_kid():
    return reference("torch_fidelity", "torch-fidelity==0.4.0", "torch_fidelity.metric_kid",
                     "kid_features_to_metric")


# N < D makes both covariances singular: rounding leaves their ~1e-16 "zero" eigenvalues
# uncertain and the square root turns that into ~1e-8 each, so both answers are uncertain
# at ~1e-8 relative there (40-digit arithmetic, mpmath, put gankit's the closer: 3e-7 off
# against pytorch-fid's 7e-7 on a value of 26.9).
@pytest.mark.parametrize("n, dim, rel", [(2000, 32, 1e-10), (300, 64, 1e-10), (100, 128, 1e-7)])
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_fid_matches_pytorch_fid(pytorch_fid_distance, n, dim, rel):
    rng = np.random.default_rng(9)
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)      # correlated, non-Gaussian features
    a = np.tanh(rng.standard_normal((n, dim)) @ mix)
    b = np.tanh(rng.standard_normal((n, dim)) @ mix * 1.3 + 0.1)
    stats_a, stats_b = feature_stats(a), feature_stats(b)
    ours = frechet_distance(*stats_a, *stats_b)
    theirs = pytorch_fid_distance(*stats_a, *stats_b)
    assert ours == pytest.approx(theirs, rel=rel)
    assert fid(a, b) == ours


@pytest.mark.parametrize("degree, gamma, coef0", [(3, None, 1), (2, 0.5, 0.25)])
def test_kid_matches_torch_fidelity(torch_fidelity_kid, degree, gamma, coef0):
    # torch-fidelity draws its subsets with np.random.RandomState, gankit with default_rng:
    # the draws differ, so compare where both are deterministic, subsets of the whole set
    # (a permutation of it; the unbiased MMD^2 does not depend on the order).
    rng = np.random.default_rng(10)
    n = 400
    a, b = rng.standard_normal((n, 24)), rng.standard_normal((n, 24)) * 1.2 + 0.2
    ours = kid(a, b, subsets=3, subset_size=n, degree=degree, gamma=gamma, coef0=coef0)
    theirs = torch_fidelity_kid(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=3,
                                kid_subset_size=n, kid_kernel="poly",
                                kid_kernel_poly_degree=degree, kid_kernel_poly_gamma=gamma,
                                kid_kernel_poly_coef0=coef0, verbose=False)
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-9)
    assert ours[1] == pytest.approx(theirs["kernel_inception_distance_std"], abs=1e-9)


# --- Behaviour: noise scores far worse than the real data against itself ----------------------

def test_noise_scores_far_worse_than_two_halves_of_the_real_set():
    rng = np.random.default_rng(11)
    centres = 4.0 * rng.standard_normal((6, 16))               # "real": 6 classes
    real = clusters(rng, 2000, centres, sd=0.7)
    half_a, half_b = real[:1000], real[1000:]                  # each ~167 per class
    # Noise with the real features' per-dimension mean and spread: only structure differs.
    noise = real.mean(0) + real.std(0) * rng.standard_normal((1000, 16))

    assert fid(half_a, noise) > 100 * fid(half_a, half_b)        # measured: 107 vs 0.10
    kid_halves, kid_noise = kid(half_a, half_b, 10, 500)[0], kid(half_a, noise, 10, 500)[0]
    assert kid_noise > 20 * abs(kid_halves)                       # 553 vs -8.8
    p_halves, r_halves = precision_recall(half_a, half_b)         # 0.80, 0.79 (16-D, 167 a class)
    p_noise, _ = precision_recall(half_a, noise)                  # 0.0
    assert p_halves > 0.7 and r_halves > 0.7 and p_noise < 0.05
    # Not asserted: the recall of the noise (0.87). Wide noise has wide k-NN balls that
    # cover the real clusters; recall measures coverage, and judging realism is precision's
    # job (Kynkaanniemi et al. 2019 read the two together).
