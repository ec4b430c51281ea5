"""CPU threads: the load probe, the training default and its record,
GANKIT_THREADS, and determinism on more than one thread."""

import multiprocessing as mp
import os
import time
import tomllib

import pytest
import torch

import gankit
from gankit import checkpoint, cpu
from conftest import FAST, gankit_cli

TINY = dict(model="gan", data="mnist", batch_size=16, log_every=5, sample_every=10,
            checkpoint_every=10, device="cpu", progress=False)


def spin():
    while True:
        pass


@pytest.fixture
def neighbour():
    """Another process holding one core at 100%, as on a shared machine."""
    proc = mp.get_context("spawn").Process(target=spin, daemon=True)
    proc.start()
    time.sleep(0.5)
    yield proc
    proc.terminate()
    proc.join()


@pytest.mark.parametrize("cores, busy, threads", [
    (2, 0.0, 2), (2, 0.2, 2), (2, 0.3, 1), (2, 1.0, 1), (2, 1.9, 1), (2, 3.0, 1),
    (4, 1.0, 3), (4, 0.1, 4), (16, 0.0, 8), (16, 9.5, 6), (1, 0.0, 1)])
def test_training_takes_the_cores_others_leave_free(cores, busy, threads):
    assert cpu.threads_for(cores, busy) == threads


def test_the_probe_sees_a_busy_neighbour_and_training_leaves_it_its_core(monkeypatch, neighbour):
    monkeypatch.delenv("GANKIT_THREADS")
    assert cpu.others_busy(0.5) >= 0.7
    threads, busy = cpu.training_threads()
    assert busy >= 0.7 and threads <= max(1, cpu.available_cores() - 1)


def test_the_probe_leaves_out_this_process_own_work():
    """A thread of this process keeping a core busy is not counted as another process's
    load."""
    import threading
    stop = threading.Event()

    def work():
        while not stop.is_set():
            pass
    t = threading.Thread(target=work)
    t.start()
    try:
        quiet_and_mine = cpu.others_busy(0.5)
        total = _total_busy(0.5)
    finally:
        stop.set()
        t.join()
    # this process alone keeps about a core busy; the probe must not report it as others'
    assert total >= 0.8
    assert quiet_and_mine <= total - 0.6


def _total_busy(seconds):
    cpus = set(range(1024))
    a = cpu._busy_ticks(cpus)
    t = time.monotonic()
    time.sleep(seconds)
    return (cpu._busy_ticks(cpus) - a) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t)


def test_a_busy_machine_trains_on_fewer_threads_says_so_and_records_it(tmp_path, monkeypatch,
                                                                       neighbour):
    if cpu.available_cores() < 2:
        pytest.skip("needs 2 cores")
    env = {"GANKIT_THREADS": ""}
    r = gankit_cli("train", "--steps", "2", "--out", tmp_path / "run",
                   *[f for f in FAST if f != "--quiet"], env=env)
    assert r.returncode == 0, r.stderr
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["train"]["threads"] <= cpu.available_cores() - 1
    assert "other processes keep" in r.stderr and "--threads N" in r.stderr


def test_gankit_threads_sets_the_default_and_a_bad_value_is_one_line(tmp_path):
    r = gankit_cli("train", "--steps", "2", "--out", tmp_path / "run", *FAST,
                   env={"GANKIT_THREADS": "2"})
    assert r.returncode == 0, r.stderr
    assert tomllib.loads((tmp_path / "run" / "config.toml").read_text())["train"]["threads"] == 2
    r = gankit_cli("train", "--steps", "2", "--out", tmp_path / "bad", *FAST,
                   env={"GANKIT_THREADS": "two"})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "GANKIT_THREADS='two'" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "bad").exists()


def test_two_threads_same_seed_same_weights_and_resume_bit_for_bit(tmp_path):
    """The determinism the README promises, on 2 threads (the rest of the suite runs on
    one): same seed and thread count, same weights; a resumed run as an uninterrupted one."""
    a = gankit.train(out=tmp_path / "a", steps=20, seed=5, threads=2, **TINY)
    b = gankit.train(out=tmp_path / "b", steps=20, seed=5, threads=2, **TINY)
    gankit.train(out=tmp_path / "c", steps=10, seed=5, threads=2, **TINY)
    c = gankit.train(out=tmp_path / "c", steps=20, resume=True, progress=False)
    wa, wb, wc = (checkpoint.load(r.out)[0] for r in (a, b, c))
    for k in wa:
        if k.startswith(("model.", "optim.", "rng.")):
            assert torch.equal(wa[k], wb[k]) and torch.equal(wa[k], wc[k]), k


def test_a_neighbour_arriving_mid_run_is_reported_once_with_the_fix(tmp_path, capsys):
    """The thread count stays (it fixes the rounding); the user is told how to change it."""
    if cpu.available_cores() < 2:
        pytest.skip("needs 2 cores")
    watch = cpu.LoadWatch(threads=cpu.available_cores())
    proc = mp.get_context("spawn").Process(target=spin, daemon=True)
    proc.start()
    try:
        time.sleep(0.6)
        assert watch.check() is None            # one busy interval is not yet a neighbour
        time.sleep(0.3)
        note = watch.check()
        assert note and f"--resume --threads {cpu.available_cores() - 1}" in note
        time.sleep(0.3)
        assert watch.check() is None            # said once
        assert cpu.LoadWatch(threads=1).check() is None
        gankit.train(out=tmp_path / "run", steps=30, threads=2, **{**TINY, "progress": True})
    finally:
        proc.terminate()
        proc.join()
    err = capsys.readouterr().err
    assert err.count("other processes now keep") == 1 and "Ctrl-C, then --resume" in err
