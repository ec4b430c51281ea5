"""The training loop, through the API: run folder, determinism, resume, sampling."""

import csv
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.training import checkpoint
from gankit.errors import GankitError

from helpers import tiny_run

TINY = tiny_run()   # gan on mnist


def weights(run_or_path):
    path = run_or_path.out if hasattr(run_or_path, "out") else run_or_path
    tensors, meta = checkpoint.load(path)
    return tensors, meta


@pytest.fixture(scope="module")
def run10(tmp_path_factory):
    """gankit.train(steps=10, **TINY), trained once for the tests that start from such a
    finished run: they read it, or copy it before they resume or retrain into it."""
    return gankit.train(out=tmp_path_factory.mktemp("trainer") / "r", steps=10, **TINY)


@pytest.fixture(scope="module")
def full30(tmp_path_factory):
    """The weights of an uninterrupted 30-step run (seed 1), for every resume to match."""
    return weights(gankit.train(out=tmp_path_factory.mktemp("trainer") / "full", steps=30,
                                seed=1, **TINY))[0]


def test_run_folder_has_everything(tmp_path):
    run = gankit.train(out=tmp_path / "run", steps=20, **TINY)
    out = tmp_path / "run"
    assert run.step == 20
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000010.png", "step_000020.png"]
    grid = Image.open(out / "samples" / "step_000020.png")
    assert grid.mode == "L" and grid.width >= 5 * 28
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    assert set(rows[0]) == {"step", "d_loss", "d_acc", "g_loss", "d_real", "d_fake", "seconds"}
    assert all(0 <= float(r["d_acc"]) <= 1 for r in rows)
    assert Image.open(out / "loss.png").size[0] > 100
    assert (out / "checkpoints" / "last.safetensors").is_file()
    assert (out / "checkpoints" / "last.json").is_file()
    toml = (out / "config.toml").read_text()
    assert 'name = "gan"' in toml and "steps = 20" in toml
    _, meta = weights(out)
    assert meta["step"] == 20 and meta["model"] == "gan" and meta["image_shape"] == [1, 28, 28]


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a, _ = weights(gankit.train(out=tmp_path / "a", steps=12, seed=3, **TINY))
    b, _ = weights(gankit.train(out=tmp_path / "b", steps=12, seed=3, **TINY))
    c, _ = weights(gankit.train(out=tmp_path / "c", steps=12, seed=4, **TINY))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("model.", "optim.")))
    assert not torch.equal(a["model.generator.net.0.weight"], c["model.generator.net.0.weight"])


@pytest.mark.parametrize("stop_at", [10, 15])
def test_resume_matches_an_uninterrupted_run(tmp_path, stop_at, full30):
    full = full30
    gankit.train(out=tmp_path / "part", steps=stop_at, seed=1, **TINY)
    run = gankit.train(out=tmp_path / "part", steps=30, resume=True, progress=False)
    assert run.step == 30
    part, _ = weights(run)
    for k in full:
        if k.startswith(("model.", "optim.", "rng.")):
            assert torch.equal(full[k], part[k]), k
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "part" / "metrics.csv"))]
    assert steps == list(range(5, 31, 5))


def test_resume_refuses_changed_settings_but_takes_new_steps(tmp_path, run10):
    shutil.copytree(run10.out, tmp_path / "r")       # gankit.train(steps=10, **TINY)
    with pytest.raises(GankitError, match="lr_d=0.001 differs"):
        gankit.train(out=tmp_path / "r", steps=20, resume=True, lr_d=1e-3, progress=False)
    assert gankit.train(out=tmp_path / "r", steps=15, resume=True, progress=False).step == 15


def test_existing_run_is_not_overwritten(tmp_path, run10):
    shutil.copytree(run10.out, tmp_path / "r")       # gankit.train(steps=10, **TINY)
    before = (tmp_path / "r" / "checkpoints" / "last.safetensors").read_bytes()
    with pytest.raises(GankitError, match="resume=True"):   # in the caller's words
        gankit.train(out=tmp_path / "r", steps=10, **TINY)
    assert (tmp_path / "r" / "checkpoints" / "last.safetensors").read_bytes() == before


def test_nothing_to_resume(tmp_path):
    with pytest.raises(GankitError, match="nothing to resume"):
        gankit.train(out=tmp_path / "none", steps=10, resume=True, progress=False)


def test_load_rebuilds_the_model_from_the_checkpoint_alone(run10):
    run = run10                           # gankit.train(steps=10, **TINY)
    model = gankit.load(run.out)          # the run folder
    same = gankit.load(run.out / "checkpoints" / "last.safetensors")
    z = run.model.latents(8, torch.Generator().manual_seed(0))
    x = model.sample(latents=z)
    assert x.shape == (8, 1, 28, 28) and -1 <= x.min() and x.max() <= 1
    assert torch.equal(x, same.sample(latents=z))
    assert torch.allclose(x, run.model.sample(latents=z))
    assert model.class_names == [str(i) for i in range(10)]


def test_unknown_option_and_bad_values(tmp_path):
    with pytest.raises(GankitError, match="unknown option 'stepz'"):
        gankit.train(out=tmp_path / "x", stepz=3)
    with pytest.raises(GankitError, match="batch_size"):
        gankit.train(out=tmp_path / "x", batch_size=0)
    with pytest.raises(GankitError, match="unknown model 'nope'.*gan"):
        gankit.train(model="nope", out=tmp_path / "x")
    with pytest.raises(GankitError, match="unknown dataset"):
        gankit.train(data="no-such-set", out=tmp_path / "x", steps=1, progress=False)


def test_out_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    with pytest.raises(GankitError, match="is a file"):
        gankit.train(out=f, steps=1, progress=False)
    assert f.read_text() == "keep me"


def test_config_file_sets_fields_and_flags_override(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[model]\nname = "gan"\nlr_d = 0.0001\n[train]\nsteps = 7\nbatch_size = 8\n')
    c = gankit.make_config(config_file=str(cfg), steps=9)
    assert (c.train.steps, c.train.batch_size, c.model_cfg.lr_d) == (9, 8, 1e-4)
    cfg.write_text('[train]\nstepz = 7\n')
    with pytest.raises(GankitError, match="stepz"):
        gankit.make_config(config_file=str(cfg))
    cfg.write_text('[train]\nsteps = "many"\n')
    with pytest.raises(GankitError, match="steps must be an integer"):
        gankit.make_config(config_file=str(cfg))


def test_tensorboard_events_when_installed(run10):
    pytest.importorskip("tensorboard")
    events = list((run10.out / "tensorboard").glob("events.out.tfevents.*"))   # steps=10
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run10.out / "tensorboard"))
    acc.Reload()
    assert {"d_loss", "d_acc", "g_loss"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("g_loss")] == [5, 10]


def test_config_file_with_a_key_where_a_table_belongs(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('train = 5\n')
    with pytest.raises(GankitError, match=r"must be a table: write \[train\]"):
        gankit.make_config(config_file=str(cfg))


def test_ema_is_saved_used_for_sampling_and_resumed(tmp_path):
    opts = {**TINY, "ema": 0.9, "seed": 2}
    full = gankit.train(out=tmp_path / "full", steps=20, **opts)
    tensors, _ = weights(full)
    raw = {k[len("model.generator."):]: v for k, v in tensors.items() if k.startswith("model.generator.")}
    avg = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
    assert avg.keys() == raw.keys()
    assert not torch.equal(avg["net.0.weight"], raw["net.0.weight"])
    z = full.model.latents(4, torch.Generator().manual_seed(0))
    averaged, last = gankit.load(tmp_path / "full"), gankit.load(tmp_path / "full", ema=False)
    assert torch.equal(last.generator.net[0].weight, raw["net.0.weight"])
    assert torch.equal(averaged.generator.net[0].weight, avg["net.0.weight"])
    assert not torch.equal(averaged.sample(latents=z), last.sample(latents=z))
    # resuming restores the average too: identical to the uninterrupted run
    gankit.train(out=tmp_path / "part", steps=10, **opts)
    part, _ = weights(gankit.train(out=tmp_path / "part", steps=20, resume=True, progress=False))
    assert all(torch.equal(tensors[k], part[k]) for k in tensors if k.startswith(("model.", "ema.")))


def test_the_code_density_is_fitted_saved_sampled_and_resumed(tmp_path):
    """An autoencoder's mixture is refitted before checkpoints and at the end, saved as
    tensors, used by gankit.load's samples, and a resumed run ends with the same fit."""
    opts = {**TINY, "model": "ae", "density": 2, "width": 8, "latent_dim": 4,
            "sample_every": 5, "checkpoint_every": 10}
    full = gankit.train(out=tmp_path / "full", steps=15, **opts)
    tensors, _ = weights(full)
    assert tensors["model.density.fitted_step"].item() == 15
    assert tensors["model.density.means"].shape == (1, 2, 4)   # (classes or 1, K, D)
    assert not torch.equal(tensors["model.density.means"], torch.zeros(1, 2, 4))
    loaded = gankit.load(tmp_path / "full")
    z = loaded.latents(3, torch.Generator().manual_seed(0))
    assert z.shape == (3, 5)   # 4 code dimensions and 1 to pick the component
    torch.testing.assert_close(loaded.sample(latents=z), full.model.sample(latents=z))
    gankit.train(out=tmp_path / "part", steps=10, **opts)
    part, _ = weights(gankit.train(out=tmp_path / "part", steps=15, resume=True, progress=False))
    assert all(torch.equal(tensors[k], part[k]) for k in tensors if k.startswith("model."))


def test_ema_update_rule():
    from gankit.training.ema import EMA
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, decay=0.75)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(4.0)
    ema.update(net, step=1000)   # 0.75 * start + 0.25 * (start + 4) = start + 1
    assert torch.allclose(ema.average.weight, start + 1)
    # Warm-up: after step 1 the decay is min(0.75, 2 / 11), so the average moves 9/11 of the way.
    ema.update(net, step=1)
    assert torch.allclose(ema.average.weight, start + 1 + 3 * 9 / 11)


def test_conditional_model_grids_have_a_row_per_class(tmp_path):
    out = tmp_path / "c"
    run = gankit.train(out=out, steps=4, **{**TINY, "model": "cgan", "sample_every": 4})
    picture = Image.open(out / "samples" / "step_000004.png")
    # 10 x 10 cells of 28 pixels with a 2-pixel border, drawn at twice the size
    assert picture.size == (2 * (10 * 30 + 2),) * 2
    assert run.sample(3, seed=0, labels=torch.tensor([1, 2, 3])).shape == (3, 1, 28, 28)


def test_conditional_model_on_unlabelled_folder_is_refused(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(folder / f"{i}.png")
    with pytest.raises(GankitError, match="needs labelled data"):
        gankit.train(out=tmp_path / "r", steps=2, **{**TINY, "model": "cgan", "data": str(folder)})
    assert not (tmp_path / "r").exists()


def diverging_copy(src, dst, lr=1e30):
    """A copy of run `src` whose saved config has an absurd learning rate, as if the run had
    been started with it: resuming it diverges within a few steps."""
    import shutil
    shutil.copytree(src, dst)
    last = dst / "checkpoints" / "last.safetensors"
    tensors, meta = checkpoint.load(last)
    meta["config"]["model"].update(lr_g=lr, lr_d=lr)
    for state in meta["optim"].values():   # Adam restores its learning rate from here
        for group in state["param_groups"]:
            group["lr"] = lr
    checkpoint.save(last, tensors, meta)
    return last


@pytest.mark.parametrize("caught_by", ["metrics", "weights"])
def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, caught_by):
    # metrics are checked at every log row, weights before every checkpoint is written:
    # log rarely and checkpoint often to have the weights check catch it first
    opts = TINY if caught_by == "metrics" else {**TINY, "log_every": 100, "checkpoint_every": 5}
    gankit.train(out=tmp_path / "good", steps=10, **opts)
    last = diverging_copy(tmp_path / "good", tmp_path / "bad")
    before = last.read_bytes()
    with pytest.raises(GankitError) as err:
        gankit.train(out=tmp_path / "bad", steps=60, resume=True, progress=False)
    message = str(err.value)
    assert "diverged at step" in message and "last good checkpoint (step 10)" in message
    assert ("weights" in message) == (caught_by == "weights")
    assert "lower lr_g/lr_d" in message and "\n" not in message
    assert last.read_bytes() == before            # the good checkpoint is untouched


@pytest.mark.slow
def test_keep_rotates_numbered_checkpoints(tmp_path):
    out = tmp_path / "k"
    gankit.train(out=out, steps=40, keep=2, **TINY)   # checkpoints at 10, 20, 30, 40
    names = sorted(p.name for p in (out / "checkpoints").glob("step_*"))
    assert names == ["step_000030.json", "step_000030.safetensors",
                     "step_000040.json", "step_000040.safetensors"]
    last, numbered = weights(out / "checkpoints" / "last.safetensors"), weights(out / "checkpoints" / "step_000040.safetensors")
    assert last[1]["step"] == numbered[1]["step"] == 40
    assert all(torch.equal(last[0][k], numbered[0][k]) for k in last[0])
    old, _ = weights(out / "checkpoints" / "step_000030.safetensors")
    assert not torch.equal(old["model.generator.net.0.weight"], last[0]["model.generator.net.0.weight"])
    # --keep may change on resume; the newest numbered checkpoint is never the one deleted
    gankit.train(out=out, steps=50, keep=1, resume=True, progress=False)
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*.safetensors")) == ["step_000050.safetensors"]


def test_d_wins_is_told_from_the_rows_only_when_it_lasts():
    from gankit.training.metrics_log import d_wins

    def rows(accs, every=50):
        return [{"step": every * (k + 1), "d_acc": a} for k, a in enumerate(accs)]
    assert d_wins(rows([0.99] * 20 + [0.85] * 40), 50) is None        # the usual start: settles
    assert d_wins(rows([0.85] * 60), 50) is None                      # the guide's gan
    assert d_wins(rows([0.99] * 30), 50) is None                      # only the start so far
    won = d_wins(rows([0.99] * 20 + [0.85] * 10 + [0.97] * 20), 50)   # 1,000 steps past 1,500
    assert won == pytest.approx(0.97)
    assert d_wins(rows([0.97] * 40 + [0.9]), 50) is None              # the streak just broke
    assert d_wins(rows([0.88] * 200), 50) is None                     # the guide's gan, late
    assert d_wins([{"step": 5000, "rec": 1.0}] * 50, 50) is None      # no discriminator


@pytest.mark.slow
def test_a_discriminator_that_keeps_winning_is_told_once_with_the_fix(tmp_path, capsys,
                                                                      monkeypatch):
    """G that cannot learn (a learning rate of 1e-9) leaves D right about every image: the
    run says so once, naming augmentation and D's learning rate in the caller's words."""
    from gankit.training import metrics_log, trainer
    monkeypatch.setattr(metrics_log, "D_WINS_STEPS", 100)   # the rule's length, shortened
    monkeypatch.setattr(trainer, "D_WINS_STEPS", 100)
    gankit.train(out=tmp_path / "run", steps=400, lr_g=1e-9, **{**TINY, "progress": True})
    err = capsys.readouterr().err
    assert err.count("it is winning") == 1, err
    line = next(l for l in err.splitlines() if "it is winning" in l)
    assert "for over 100 steps" in line and "augment=True (DiffAugment" in line
    assert "a lower lr_d than 0.0002" in line
