"""`gankit eval` and `--eval-every` as a user runs them, on a real (briefly trained) classifier."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from conftest import gankit_cli
from gankit import checkpoint
from gankit.config import DataConfig
from gankit.metrics.classifier import load_or_train, reference_split
from test_cli import one_line_error


@pytest.fixture(scope="module", autouse=True)
def quick_classifier():
    """The default mnist (offline) classifier, trained once per test session into the
    session's cache (about a minute on 2 cores): the tests use exactly what users get."""
    _, info = load_or_train(DataConfig(data="mnist"), progress=False)
    assert info["path"].startswith(os.environ["GANKIT_CACHE"])   # never the user's cache
    return info


def eval_json(*args):
    r = gankit_cli("eval", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def floor():
    return eval_json("--reference")


@pytest.fixture(scope="module")
def held_out():
    _, held, _ = reference_split(DataConfig(data="mnist"))
    return held


def test_reference_floor(floor, quick_classifier):
    assert floor["n_real"] == 4000 and floor["n_fake"] == 1000
    assert quick_classifier["sha256"][:12] in floor["extractor"]
    assert "held-out accuracy" in floor["extractor"]
    assert floor["fid"] < 20 and floor["class_entropy"] > 0.95 and floor["alarm"] is None
    assert floor["precision"] > 0.5 and floor["recall"] > 0.5
    assert 5 < floor["is_mean"] <= 10


def test_noise_scores_far_worse_than_real_data(floor, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (1000, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "noise.npy", noise)
    r = eval_json("--images", tmp_path / "noise.npy")
    assert r["n_fake"] == 1000
    assert r["fid"] > 10 * floor["fid"] and r["kid_mean"] > 10 * max(floor["kid_mean"], 1e-3)
    assert r["precision"] < floor["precision"] / 2


def test_single_class_set_raises_the_alarm(held_out, tmp_path):
    ones = held_out.images[held_out.labels == 1][:, 0].numpy()
    np.save(tmp_path / "ones.npy", ones)
    r = gankit_cli("eval", "--images", tmp_path / "ones.npy")
    assert r.returncode == 0, r.stderr
    assert "ALARM" in r.stdout and "class entropy" in r.stdout
    data = eval_json("--images", tmp_path / "ones.npy")
    assert data["class_entropy"] < 0.2 and data["alarm"]


def test_a_folder_of_images(held_out, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(60):
        Image.fromarray(held_out.images[i * 16, 0].numpy()).save(folder / f"{i}.png")
    r = eval_json("--images", folder)
    assert r["n_fake"] == 60 and r["fid"] >= 0


def test_in_training_fid_is_what_gankit_eval_reports(tmp_path):
    out = tmp_path / "run"
    run = gankit.train("gan", "mnist", out=out, steps=30, batch_size=16, log_every=5,
                       sample_every=30, checkpoint_every=30, eval_every=15, device="cpu",
                       progress=False)
    rows = [r for r in run.metrics if "fid" in r]
    assert [r["step"] for r in rows] == [15, 30]
    assert all(0 <= r["class_entropy"] <= 1 for r in rows)
    scored = eval_json("--checkpoint", out)
    assert scored["fid"] == pytest.approx(rows[-1]["fid"], rel=1e-9)
    best = checkpoint.read_meta(out / "checkpoints" / "best.safetensors")
    assert best["best_fid"] == min(r["fid"] for r in rows)
    assert best["evaluation"]["extractor"] == scored["extractor"]
    assert (best["evaluation"]["n_real"], best["evaluation"]["n_fake"]) == (4000, 1000)
    assert best["step"] == min(rows, key=lambda r: r["fid"])["step"]
    # resume keeps evaluating and remembers the best score so far
    run = gankit.train(out=out, steps=45, resume=True, progress=False)
    assert [r["step"] for r in run.metrics if "fid" in r] == [15, 30, 45]
    meta = checkpoint.read_meta(out / "checkpoints" / "last.safetensors")
    assert meta["best_fid"] == min(r["fid"] for r in run.metrics if "fid" in r)


def test_user_mistakes_are_one_line(tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((4, 28, 28)))
    np.save(tmp_path / "rgb.npy", np.zeros((4, 32, 32, 3), np.uint8))
    one_line_error(gankit_cli("eval", "--images", tmp_path / "float.npy"), "float64", "uint8")
    one_line_error(gankit_cli("eval", "--images", tmp_path / "rgb.npy"), "(3, 32, 32)", "--data")
    one_line_error(gankit_cli("eval", "--images", tmp_path / "nothing.npy"), "does not exist")
    one_line_error(gankit_cli("eval", "--reference", "--n", "1"), "--n must be at least 2")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    one_line_error(gankit_cli("eval", "--images", tmp_path / "junk.npy"), "not a readable .npy")
    r = gankit_cli("eval")
    assert r.returncode == 2 and "one of the arguments" in r.stderr


def test_inception_without_its_weights_is_one_line():
    r = gankit_cli("eval", "--reference", "--features", "inception")
    if r.returncode == 0:
        pytest.skip("torch-fidelity and its Inception weights are installed here")
    one_line_error(r, "inception")


def test_evaluating_during_training_does_not_change_the_training(tmp_path):
    opts = dict(steps=20, batch_size=16, log_every=5, sample_every=20, checkpoint_every=20,
                device="cpu", progress=False)
    gankit.train("dcgan", "mnist", out=tmp_path / "plain", **opts)
    gankit.train("dcgan", "mnist", out=tmp_path / "scored", eval_every=10, **opts)
    a, _ = checkpoint.load(tmp_path / "plain")
    b, _ = checkpoint.load(tmp_path / "scored")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("model.", "optim.")))
