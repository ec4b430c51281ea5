"""`gankit eval` and `--eval-every` as a user runs them, on a real (briefly trained) classifier."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.training import checkpoint
from gankit.config import DataConfig
from gankit.metrics.feature_network import load_or_train
from gankit.data.reference import reference_split

from helpers import gankit_cli, one_line_error, tiny_flags, tiny_run


@pytest.fixture(scope="module")
def quick_classifier():
    """The default mnist (offline) classifier, trained once per test session into the
    session's cache (about a minute on 2 cores): the tests use exactly what users get.
    Asked for by every test that scores with it (the commands they run find it there)."""
    _, info = load_or_train(DataConfig(data="mnist"), progress=False)
    assert info["path"].startswith(os.environ["GANKIT_CACHE"])   # never the user's cache
    return info


def eval_json(*args):
    r = gankit_cli("eval", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def floor(quick_classifier):
    return eval_json("--reference")


@pytest.fixture(scope="module")
def held_out():
    _, held, _ = reference_split(DataConfig(data="mnist"))
    return held


@pytest.mark.slow
def test_reference_floor(floor, quick_classifier):
    assert floor["n_real"] == 4000 and floor["n_fake"] == 1000
    assert quick_classifier["sha256"][:12] in floor["extractor"]
    assert "held-out accuracy" in floor["extractor"]
    assert floor["fid"] < 20 and floor["class_entropy"] > 0.95 and floor["alarm"] is None
    assert floor["precision"] > 0.5 and floor["recall"] > 0.5
    assert 5 < floor["is_mean"] <= 10


@pytest.mark.slow
def test_noise_scores_far_worse_than_real_data(floor, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (1000, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "noise.npy", noise)
    r = eval_json("--images", tmp_path / "noise.npy")
    assert r["n_fake"] == 1000
    assert r["fid"] > 10 * floor["fid"] and r["kid_mean"] > 10 * max(floor["kid_mean"], 1e-3)
    assert r["precision"] < floor["precision"] / 2


@pytest.mark.slow
def test_single_class_set_raises_the_alarm(held_out, tmp_path, quick_classifier):
    ones = held_out.images[held_out.labels == 1][:, 0].numpy()
    np.save(tmp_path / "ones.npy", ones)
    r = gankit_cli("eval", "--images", tmp_path / "ones.npy")
    assert r.returncode == 0, r.stderr
    assert "ALARM" in r.stdout and "class entropy" in r.stdout
    data = eval_json("--images", tmp_path / "ones.npy")
    assert data["class_entropy"] < 0.2 and data["alarm"]


@pytest.mark.slow
def test_a_folder_of_images(held_out, tmp_path, quick_classifier):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(60):
        Image.fromarray(held_out.images[i * 16, 0].numpy()).save(folder / f"{i}.png")
    r = eval_json("--images", folder)
    assert r["n_fake"] == 60 and r["fid"] >= 0


@pytest.mark.slow
def test_in_training_fid_is_what_gankit_eval_reports(tmp_path, quick_classifier):
    out = tmp_path / "run"
    run = gankit.train("gan", "mnist", out=out, **tiny_run(steps=30, sample_every=30,
                                                            checkpoint_every=30, eval_every=15))
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


@pytest.mark.slow
def test_user_mistakes_are_one_line(tmp_path, quick_classifier):
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


@pytest.mark.slow
def test_evaluating_during_training_does_not_change_the_training(tmp_path, quick_classifier):
    opts = tiny_run(steps=20, sample_every=20, checkpoint_every=20)
    gankit.train("dcgan", "mnist", out=tmp_path / "plain", **opts)
    gankit.train("dcgan", "mnist", out=tmp_path / "scored", eval_every=10, **opts)
    a, _ = checkpoint.load(tmp_path / "plain")
    b, _ = checkpoint.load(tmp_path / "scored")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("model.", "optim.")))


@pytest.mark.slow
def test_gankit_eval_keeps_its_result_in_the_run_and_the_page_shows_it(tmp_path,
                                                                      quick_classifier):
    """`gankit eval --checkpoint RUN` writes RUN/eval.json (atomically: no temporary left),
    naming the checkpoint, its step, the classifier and the sample sizes; the page's runs
    table and run page then show that FID instead of a dash."""
    from gankit.serve import runs
    out = tmp_path / "run"
    gankit.train("gan", "mnist", out=out, **tiny_run(steps=10))
    assert runs.summary(tmp_path, out)["fid"] is None
    r = gankit_cli("eval", "--checkpoint", out, "--n", "200", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert f"kept in {out / 'eval.json'}" in r.stderr
    saved = json.loads((out / "eval.json").read_text())
    assert saved["checkpoint"] == "last.safetensors" and saved["step"] == 10
    assert (saved["n_fake"], saved["n_real"], saved["seed"], saved["features"]) == (
        200, 4000, 3, "classifier")
    assert saved["extractor"].startswith("gankit-classifier sha256 ")
    assert f"{saved['fid']:.3f}" in r.stdout
    assert not list(out.glob("*.tmp"))
    shown = runs.summary(tmp_path, out)
    assert shown["fid"] == saved["fid"] and "gankit eval of last.safetensors" in shown["fid_from"]
    detail = runs.detail(tmp_path, out)
    assert detail["fid"] == saved["fid"] and f"{saved['fid']:.3f}" in detail["evaluation"]


def _labelled_folder(root, per_class=60):
    rng = np.random.default_rng(0)
    for k, name in enumerate(("dark", "light")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 128, (28, 28)) + 127 * k
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


@pytest.mark.slow
def test_a_folder_run_never_trains_on_what_evaluation_holds_out(tmp_path):
    """Training on a folder leaves out the images that `gankit eval`, `--eval-every` and the
    page hold out, and records which (held_out.txt, the checkpoint); `--no-hold-out` trains
    on all of them, and every evaluation then says its numbers are not held out."""
    from starlette.testclient import TestClient

    from gankit.data.folder import load_folder
    from gankit.serve.app import create_app
    imgs = _labelled_folder(tmp_path / "imgs")
    runs = tmp_path / "runs"
    r = gankit_cli("train", "--model", "cgan", "--data", imgs, "--out", runs / "held",
                   *tiny_flags(steps=4, batch_size=8, eval_every=4))
    assert r.returncode == 0, r.stderr
    meta = checkpoint.read_meta(runs / "held" / "checkpoints" / "last.safetensors")
    listed = (runs / "held" / "held_out.txt").read_text().splitlines()
    assert listed[0].startswith("# the ") and "training never saw them" in listed[0]
    held = listed[1:]
    assert 10 <= len(held) <= 40 and all((imgs / f).is_file() for f in held)
    assert meta["held_out"]["images"] == len(held) and not meta["held_out"]["trained_on_them"]
    assert sum(meta["class_counts"]) == 120 - len(held)            # trained on the rest only
    assert meta["evaluation"]["n_fake"] == len(held)               # --eval-every: the same split
    everything = load_folder(imgs)
    held_pixels = {everything.images[everything.files.index(f)].numpy().tobytes() for f in held}
    scored = eval_json("--checkpoint", runs / "held", "--seed", "1")
    assert scored["held_out"] is True and scored["n_fake"] == len(held)
    assert f"vs the {len(held)} held out" in scored["reference"]
    with TestClient(create_app(runs, "127.0.0.1", 8000), base_url="http://127.0.0.1:8000") as c:
        page = c.get("/api/heldout", params={"run": "held"}).json()
    assert page["count"] == len(held)
    train, held_out, _ = reference_split(gankit.load(runs / "held").run_config.data)
    assert {im.numpy().tobytes() for im in held_out.images} == held_pixels
    assert not held_pixels & {im.numpy().tobytes() for im in train.images}

    r = gankit_cli("train", "--model", "cgan", "--data", imgs, "--out", runs / "all",
                   *tiny_flags(steps=4, batch_size=8, hold_out=False))
    assert r.returncode == 0, r.stderr
    meta = checkpoint.read_meta(runs / "all" / "checkpoints" / "last.safetensors")
    assert sum(meta["class_counts"]) == 120 and meta["held_out"]["trained_on_them"]
    assert "saw them too" in (runs / "all" / "held_out.txt").read_text().splitlines()[0]
    r = gankit_cli("eval", "--checkpoint", runs / "all")
    assert r.returncode == 0, r.stderr
    assert "NOT HELD OUT" in r.stdout
    assert eval_json("--checkpoint", runs / "all")["held_out"] is False
    one_line_error(gankit_cli("train", "--no-hold-out", "--out", tmp_path / "m", "--steps", "1"),
                   "--no-hold-out is for folders of images")
