"""CPU threads: the load probe, the training default and its record,
GANKIT_THREADS, and determinism on more than one thread."""

import multiprocessing as mp
import os
import time
import tomllib

import pytest
import torch

import gankit
from gankit.training import checkpoint, cpu
from gankit.models import IMPUTERS, MODELS
from helpers import gankit_cli, tiny_flags, tiny_run

TINY = tiny_run()   # gan on mnist


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
    load: what the probe reports is the cores' busy time less this process's own."""
    import threading
    stop = threading.Event()

    def work():
        while not stop.is_set():
            pass
    t = threading.Thread(target=work)
    t.start()
    cpus, tick = os.sched_getaffinity(0), os.sysconf("SC_CLK_TCK")
    try:
        a, own0, t0 = cpu._busy_ticks(cpus), time.process_time(), time.monotonic()
        others = cpu.others_busy(0.5)
        b, own1, t1 = cpu._busy_ticks(cpus), time.process_time(), time.monotonic()
    finally:
        stop.set()
        t.join()
    total, own = (b - a) / tick / (t1 - t0), (own1 - own0) / (t1 - t0)
    assert own >= 0.3                              # this process's thread did work
    assert abs(others - (total - own)) <= 0.25     # and it is not in the others' share


@pytest.mark.slow
def test_a_busy_machine_trains_on_fewer_threads_says_so_and_records_it(tmp_path, monkeypatch,
                                                                       neighbour):
    if cpu.available_cores() < 2:
        pytest.skip("needs 2 cores")
    env = {"GANKIT_THREADS": ""}
    r = gankit_cli("train", "--out", tmp_path / "run", *tiny_flags(steps=2, progress=True),
                   env=env)
    assert r.returncode == 0, r.stderr
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["train"]["threads"] <= cpu.available_cores() - 1
    assert "other processes keep" in r.stderr and "--threads N" in r.stderr


@pytest.mark.slow
def test_gankit_threads_sets_the_default_and_a_bad_value_is_one_line(tmp_path):
    r = gankit_cli("train", "--out", tmp_path / "run", *tiny_flags(steps=2),
                   env={"GANKIT_THREADS": "2"})
    assert r.returncode == 0, r.stderr
    assert tomllib.loads((tmp_path / "run" / "config.toml").read_text())["train"]["threads"] == 2
    r = gankit_cli("train", "--out", tmp_path / "bad", *tiny_flags(steps=2),
                   env={"GANKIT_THREADS": "two"})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "GANKIT_THREADS='two'" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
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


@pytest.mark.slow
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
        assert note and f"resume=True threads={cpu.available_cores() - 1}" in note
        time.sleep(0.3)
        assert watch.check() is None            # said once
        assert cpu.LoadWatch(threads=1).check() is None
        gankit.train(out=tmp_path / "run", steps=30, threads=2, **{**TINY, "progress": True})
    finally:
        proc.terminate()
        proc.join()
    err = capsys.readouterr().err
    assert err.count("other processes now keep") == 1 and "continue with resume=True" in err


def test_fastest_takes_more_threads_only_when_they_pay():
    def step(cost):   # a step whose duration depends on the thread count, as real ones do
        return lambda: time.sleep(cost[torch.get_num_threads()])
    before = torch.get_num_threads()
    try:
        assert cpu.fastest([2, 1], step({2: 0.002, 1: 0.004}), seconds=0.02)[0] == 2
        assert cpu.fastest([2, 1], step({2: 0.004, 1: 0.002}), seconds=0.02)[0] == 1
        # 5% faster is not enough to take the thread a neighbour would hurt first
        count, medians = cpu.fastest([2, 1], step({2: 0.0038, 1: 0.004}), seconds=0.02)
        assert count == 1 and medians[2] < medians[1]
    finally:
        torch.set_num_threads(before)
    assert cpu.candidates(2) == [2, 1] and cpu.candidates(8) == [8, 4, 1] and cpu.candidates(1) == [1]


def test_the_timed_choice_leaves_the_run_as_if_its_count_had_been_given(tmp_path, monkeypatch):
    """Timing a copy of the model draws no random numbers from the run and touches none of
    its weights: the run equals one trained with the chosen count from the start."""
    monkeypatch.delenv("GANKIT_THREADS")
    a = gankit.train(out=tmp_path / "a", steps=10, seed=2, **TINY)
    chosen = a.config.train.threads
    assert 1 <= chosen <= cpu.available_cores()
    b = gankit.train(out=tmp_path / "b", steps=10, seed=2, threads=chosen, **TINY)
    wa, wb = checkpoint.load(a.out)[0], checkpoint.load(b.out)[0]
    assert all(torch.equal(wa[k], wb[k]) for k in wa if k.startswith(("model.", "optim.", "rng.")))


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "t.csv"
    rows = ["a,b,c"] + [f"{i % 7},{'' if i % 5 == 0 else i * 0.5},{i % 3 * 1.5}" for i in range(60)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("name", [*MODELS, *IMPUTERS])
def test_every_model_trains_after_its_thread_count_is_timed(name, tmp_path, monkeypatch,
                                                             small_table):
    """The timing deep-copies the model, optimizers included, and steps the copy: every
    model must survive that and then train."""
    monkeypatch.delenv("GANKIT_THREADS")
    data = str(small_table) if name in IMPUTERS else "mnist"
    run = gankit.train(out=tmp_path / "run", **tiny_run(model=name, data=data, steps=2,
                                                        log_every=1, sample_every=10**9,
                                                        checkpoint_every=10**9))
    assert run.step == 2 and 1 <= run.config.train.threads <= cpu.available_cores()


def _ran_on(run):
    meta = checkpoint.read_meta(checkpoint.last_in(run))
    return tomllib.loads((run / "config.toml").read_text())["train"]["threads"], meta


@pytest.mark.slow
def test_a_resume_chooses_its_threads_again_and_says_so_before_training(tmp_path, neighbour):
    """A run whose count was chosen (not given) resumes on a machine where another process
    now holds a core: it chooses as a new run does, so it continues on fewer threads, says
    so before its first step, and records the stretch."""
    if cpu.available_cores() != 2:
        pytest.skip("the counts below are those of a 2-core machine")
    run = tmp_path / "run"
    gankit.train(out=run, steps=10, seed=1, threads=2, **TINY)
    # Recorded as a run that chose 2 threads on a quiet machine records it (the suite's
    # other worker keeps this machine too busy for a new run to choose 2 here).
    last = checkpoint.last_in(run)
    tensors, meta = checkpoint.load(last)
    meta["thread_segments"] = [{"from_step": 0, "threads": 2, "chosen": True}]
    checkpoint.save(last, tensors, meta)
    r = gankit_cli("train", "--resume", "--out", run, *tiny_flags(steps=20, progress=True),
                   env={"GANKIT_THREADS": ""})
    assert r.returncode == 0, r.stderr
    said = "this run trained on 2 threads until step 10; other processes keep"
    assert said in r.stderr and "so it continues on 1" in r.stderr and "--threads 2 keeps" in r.stderr
    assert r.stderr.index(said) < r.stderr.index("gan mnist")   # before the bar's first step
    threads, meta = _ran_on(run)
    assert threads == 1 and meta["step"] == 20
    assert meta["thread_segments"] == [{"from_step": 0, "threads": 2, "chosen": True},
                                       {"from_step": 10, "threads": 1, "chosen": True}]


@pytest.mark.slow
def test_a_resume_keeps_a_count_it_was_given_and_says_at_once_what_is_faster(tmp_path,
                                                                             neighbour):
    """--threads 2 was the user's choice, and the same count is what keeps a resumed run
    equal to an uninterrupted one: it stays, and the user hears the faster count before the
    first step rather than after the slow ones."""
    if cpu.available_cores() != 2:
        pytest.skip("the counts below are those of a 2-core machine")
    run = tmp_path / "run"
    gankit.train(out=run, steps=10, seed=1, threads=2, **TINY)
    r = gankit_cli("train", "--resume", "--out", run, *tiny_flags(steps=12, progress=True),
                   env={"GANKIT_THREADS": ""})
    assert r.returncode == 0, r.stderr
    said = "this run keeps the 2 threads it was given, which will wait on each other: --threads 1"
    assert said in r.stderr and r.stderr.index(said) < r.stderr.index("gan mnist")
    threads, meta = _ran_on(run)
    assert threads == 2 and meta["thread_segments"] == [
        {"from_step": 0, "threads": 2, "chosen": False}]


def test_fastest_keeps_a_resumed_runs_count_unless_another_clearly_wins():
    def step(cost):
        return lambda: time.sleep(cost[torch.get_num_threads()])
    before = torch.get_num_threads()
    try:   # 1 thread 5% faster than the saved 2: the saved count (and its rounding) stays
        assert cpu.fastest([2, 1], step({2: 0.004, 1: 0.0038}), seconds=0.02, prefer=2)[0] == 2
        assert cpu.fastest([2, 1], step({2: 0.004, 1: 0.002}), seconds=0.02, prefer=2)[0] == 1
    finally:
        torch.set_num_threads(before)


def test_training_gives_the_callers_thread_count_back(tmp_path):
    """gankit.train sets torch's threads for its run (here 1) and restores the caller's."""
    torch.set_num_threads(2)
    gankit.train(**tiny_run(steps=2, threads=1, out=str(tmp_path / "run")))
    assert torch.get_num_threads() == 2
