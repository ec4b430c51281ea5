"""Data-parallel training under torchrun, with real processes on the CPU (gloo).

Every job here is started the way a user starts one, `python -m torch.distributed.run
--standalone --nproc-per-node 2 -m gankit train ...` (--standalone: a free port on this
machine). GANKIT_DEBUG_STEP_HASHES makes each process write, after every step, a hash
of its weights and buffers, of the batch indices it drew and of its RNG state; the tests
compare those across ranks. One job runs tests/audited_gankit.py instead of `-m gankit`:
the same command under Python's audit hooks, to see which process wrote which file.
"""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import gankit
from gankit.training import checkpoint, distributed
from gankit.cli.common import report_error
from gankit.errors import GankitError
from gankit.runtime import default_threads

from helpers import tiny_flags, tiny_run

REPO = Path(gankit.__file__).resolve().parent.parent


def small(**overrides):
    """Flags of a tiny run of 8 images per process on one thread each; by default at
    gankit's own cadence of metrics rows, sample grids and checkpoints."""
    return tiny_flags(**{"batch_size": 8, "threads": 1, "log_every": None,
                         "sample_every": None, "checkpoint_every": None, **overrides})


def env(**extra):
    # The processes import this checkout's gankit, whatever their working directory.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **{k: str(v) for k, v in extra.items()}}


def torchrun_cmd(*args, script=None, nproc=2):
    target = [str(script)] if script else ["-m", "gankit"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nproc), *target, "train", *map(str, args)]


def torchrun(*args, script=None, timeout=240, **extra_env):
    return subprocess.run(torchrun_cmd(*args, script=script), capture_output=True, text=True,
                          timeout=timeout, env=env(**extra_env))


def read_hashes(folder: Path, rank: int) -> dict[int, tuple[str, str, str]]:
    """step -> (weights and buffers, batch indices, RNG state), as that rank wrote them."""
    lines = (folder / f"rank{rank}.tsv").read_text().splitlines()
    return {int(s): (w, b, r) for s, w, b, r in (l.split("\t") for l in lines[1:])}


def check_lockstep(folder: Path, steps: int) -> None:
    """Identical weights after every step; different batches and noise on each rank."""
    r0, r1 = read_hashes(folder, 0), read_hashes(folder, 1)
    assert sorted(r0) == sorted(r1) == list(range(1, steps + 1))
    for s in r0:
        assert r0[s][0] == r1[s][0], f"the ranks' weights differ after step {s}"
        assert r0[s][1] != r1[s][1], f"both ranks drew the same batch at step {s}"
        assert r0[s][2] != r1[s][2], f"both ranks have the same RNG state at step {s}"
    assert len({r0[s][0] for s in r0}) == steps, "the weights did not change every step"


def tensors_of(path, prefixes=("model.", "optim.", "rng.", "ema.")):
    tensors, _ = checkpoint.load(path)
    return {k: v for k, v in tensors.items() if k.startswith(prefixes)}


# --- two processes train as one -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("model, extra, steps", [
    ("dcgan", ["--width", "8"], 4),                      # BatchNorm in G and D
    ("wgan-gp", ["--width", "8", "--d-steps", "2"], 3),  # gradient penalty: double backward
    ("cflow", ["--width", "8"], 3),                      # bf16 where the CPU has it, label dropout
])
def test_two_processes_keep_identical_weights_rank_0_reports(tmp_path, model, extra, steps):
    run, hashes = tmp_path / "run", tmp_path / "hashes"
    r = torchrun("--model", model, *extra, *small(steps=steps, log_every=2, sample_every=2,
                                                  checkpoint_every=2),
                 "--out", run, GANKIT_DEBUG_STEP_HASHES=hashes)
    assert r.returncode == 0, r.stderr[-3000:]
    check_lockstep(hashes, steps)
    # one report for the job, from rank 0: the batch sizes at the start, the result at the end
    assert r.stdout.count("gankit: 2 processes (gloo) x batch_size 8 = 16 images per step") == 1
    assert r.stdout.count("done: ") == 1
    _, meta = checkpoint.load(run)
    assert meta["step"] == steps
    assert meta["data_parallel"] == {"world_size": 2, "backend": "gloo",
                                     "batch_size_per_process": 8, "global_batch_size": 16}
    assert "x batch_size 8 = 16 images per step" in (run / "config.toml").read_text()
    steps_logged = [int(row["step"]) for row in csv.DictReader(open(run / "metrics.csv"))]
    assert steps_logged == sorted(set(steps_logged)) and steps_logged[-1] == steps
    # the checkpoint loads in this (single) process: plain tensor names, rank 1's RNG kept
    tensors, _ = checkpoint.load(run)
    assert not any("module." in k for k in tensors)
    assert {"rng.rank1.torch", "rng.rank1.batch"} <= set(tensors)
    assert gankit.load(run).sample(3).shape == (3, 1, 28, 28)


@pytest.mark.slow
def test_only_rank_0_writes_files(tmp_path):
    """The vanilla GAN (BatchNorm1d in G) in lockstep, and every file that either process
    created, wrote, renamed or deleted under tmp_path: rank 1 touched none."""
    run, hashes, audit = tmp_path / "work" / "run", tmp_path / "hashes", tmp_path / "audit"
    (tmp_path / "work").mkdir()
    audit.mkdir()
    r = torchrun("--model", "gan", *small(steps=4, log_every=2, sample_every=2,
                                          checkpoint_every=2, keep=2), "--out", run,
                 script=REPO / "tests" / "audited_gankit.py", GANKIT_DEBUG_STEP_HASHES=hashes,
                 AUDIT_ROOT=tmp_path / "work", AUDIT_LOG=audit)
    assert r.returncode == 0, r.stderr[-3000:]
    check_lockstep(hashes, 4)
    rank0 = (audit / "rank0.txt").read_text().splitlines()
    assert (audit / "rank1.txt").read_text() == "", "rank 1 wrote files"
    written = {Path(line.split(" ", 1)[1]).name for line in rank0}
    assert {"config.toml", "metrics.csv", "last.safetensors.tmp", "step_000004.safetensors",
            "step_000002.png", "loss.png"} <= written, written
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000002.png",
                                                                   "step_000004.png"]


# --- resume, across process counts ------------------------------------------------------------

VAE = ["--model", "vae", "--width", "8", *small(log_every=1, sample_every=3, checkpoint_every=3)]


@pytest.mark.slow
def test_resume_under_torchrun_continues_bit_for_bit_and_in_one_process(tmp_path):
    """A 2-process run stopped at step 3 and resumed with 2 processes ends where the
    uninterrupted run ends, bit for bit (every rank's RNG state is in the checkpoint); its
    checkpoint also resumes in a single process."""
    full = tmp_path / "full"
    r = torchrun(*VAE, "--steps", 6, "--keep", 2, "--out", full)
    assert r.returncode == 0, r.stderr[-3000:]
    # "Stopped at step 3": the run folder as it was then, with step 3's checkpoint as last.
    part = tmp_path / "part"
    shutil.copytree(full, part)
    for suffix in (".safetensors", ".json"):
        shutil.copy(part / "checkpoints" / f"step_000003{suffix}", part / "checkpoints" / f"last{suffix}")
    r = torchrun("--resume", "--steps", 6, "--quiet", "--out", part)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = tensors_of(full), tensors_of(part)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert [int(row["step"]) for row in csv.DictReader(open(part / "metrics.csv"))] == [1, 2, 3, 4, 5, 6]

    single = gankit.train(out=part, steps=8, resume=True, progress=False)   # this process
    assert single.step == 8 and single.world_size == 1
    c = tensors_of(part, ("model.",))
    assert c.keys() == {k for k in a if k.startswith("model.")}
    assert any(not torch.equal(a[k], c[k]) for k in c)


@pytest.mark.slow
def test_a_single_process_checkpoint_resumes_under_torchrun(tmp_path):
    run, hashes = tmp_path / "run", tmp_path / "hashes"
    gankit.train(out=run, **tiny_run(model="vae", width=8, batch_size=8, steps=3, threads=1,
                                     log_every=None, sample_every=None, checkpoint_every=3))
    before = tensors_of(run, ("model.",))
    r = torchrun("--resume", "--steps", 5, "--quiet", "--out", run, GANKIT_DEBUG_STEP_HASHES=hashes)
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1 = read_hashes(hashes, 0), read_hashes(hashes, 1)
    assert sorted(r0) == sorted(r1) == [4, 5]
    assert all(r0[s][0] == r1[s][0] and r0[s][1] != r1[s][1] for s in r0)
    _, meta = checkpoint.load(run)
    assert meta["step"] == 5 and meta["data_parallel"]["world_size"] == 2
    after = tensors_of(run, ("model.",))
    assert after.keys() == before.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


# --- failures end the job ----------------------------------------------------------------------

@pytest.mark.slow
def test_a_gankit_error_on_rank_0_ends_the_job_in_one_line(tmp_path):
    """Only rank 0 checks the run folder; its error ends the whole job at once (rank 1 is
    waiting for it), and says what is wrong in one line that names the rank."""
    (tmp_path / "taken").write_text("")
    start = time.monotonic()
    r = torchrun("--model", "gan", *small(steps=5), "--out", tmp_path / "taken", timeout=120)
    assert r.returncode != 0
    assert time.monotonic() - start < 90
    errors = [l for l in r.stderr.splitlines() if l.startswith("gankit: error:")]
    assert errors == [f"gankit: error: [rank 0] run folder {tmp_path / 'taken'} is a file: "
                      "choose another --out"], r.stderr[-3000:]
    # no process's traceback: the one there is torchrun's own (its ChildFailedError)
    assert r.stderr.count("Traceback (most recent call last)") == 1, r.stderr[-3000:]
    # torchrun's own failure summary names the same line as the root cause
    assert "traceback : gankit: error: [rank 0] run folder" in r.stderr


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_quickly(tmp_path):
    run, hashes = tmp_path / "run", tmp_path / "hashes"
    log = open(tmp_path / "log.txt", "w")
    job = subprocess.Popen(torchrun_cmd("--model", "gan", *small(steps=100_000), "--out", run),
                           stdout=log, stderr=subprocess.STDOUT,
                           env=env(GANKIT_DEBUG_STEP_HASHES=hashes))
    try:
        deadline = time.monotonic() + 120
        while not ((hashes / "rank1.tsv").is_file()
                   and len((hashes / "rank1.tsv").read_text().splitlines()) > 3):
            assert job.poll() is None and time.monotonic() < deadline, "the job never trained"
            time.sleep(0.1)
        pid = int((hashes / "rank1.tsv").read_text().splitlines()[0].split("\t")[1])
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        rc = job.wait(timeout=60)
        took = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
        log.close()
    out = (tmp_path / "log.txt").read_text()
    assert rc != 0, out[-3000:]
    assert took < 30, f"the job took {took:.1f} s to end after rank 1 was killed"
    assert "Signal 9 (SIGKILL) received by PID" in out
    assert out.count("Traceback (most recent call last)") <= 1, out[-3000:]   # torchrun's own


# --- pieces, in this process ------------------------------------------------------------------

def test_without_torchrun_nothing_changes(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert type(distributed.from_env()) is distributed.Solo
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert type(distributed.from_env()) is distributed.Solo   # --nproc-per-node 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    job = distributed.from_env()
    assert isinstance(job, distributed.Torchrun) and job.main and job.world_size == 2


def test_rank_seeds():
    assert distributed.rank_seed(7, 0) == 7   # rank 0 draws what a single process draws
    seeds = {distributed.rank_seed(7, r, s) for r in range(4) for s in (0, 100)}
    assert len(seeds) == 8 and all(0 <= s < 2 ** 63 for s in seeds)


def test_cpu_threads_are_shared_between_the_processes_of_a_machine(monkeypatch):
    monkeypatch.delenv("GANKIT_THREADS")
    monkeypatch.setattr("gankit.runtime.available_cores", lambda: 16)
    assert default_threads() == 8 and default_threads(2) == 7 and default_threads(4) == 3
    assert default_threads(32) == 1
    monkeypatch.setattr("gankit.runtime.available_cores", lambda: 2)
    assert default_threads() == default_threads(2) == 1


def test_sync_bn_keeps_checkpoint_names_and_is_refused_on_cpu(make_model):
    model = make_model("dcgan", num_classes=0, optimizers=False, width=8)
    names = {k: v.shape for k, v in model.state_dict().items()}
    job = distributed.Torchrun(rank=0, world_size=2, local_rank=0, local_world_size=2)
    with pytest.raises(GankitError, match="--sync-bn needs CUDA"):
        distributed.convert_sync_batchnorm(model, job, torch.device("cpu"))
    assert distributed.convert_sync_batchnorm(model, distributed.Solo(), torch.device("cpu")) is model
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)   # what a GPU job does
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
    assert {k: v.shape for k, v in synced.state_dict().items()} == names


def test_an_error_line_names_the_rank_and_reaches_torchruns_summary(tmp_path, monkeypatch):
    import json

    line = "gankit: error: run folder x is a file: choose another --out"
    monkeypatch.delenv("RANK", raising=False)
    assert report_error(line) == line   # not under torchrun: unchanged
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(tmp_path / "error.json"))
    marked = report_error(line)
    assert marked == "gankit: error: [rank 1] run folder x is a file: choose another --out"
    reply = json.loads((tmp_path / "error.json").read_text())
    assert reply["message"]["message"] == marked
    gloo = RuntimeError("[/x/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
                        "[127.0.0.1]:5. This is typically caused by a remote worker crashing.")
    assert distributed.is_collective_error(gloo)
    assert "(Connection closed by peer [127.0.0.1]:5)" in str(distributed.lost_contact(gloo))


@pytest.mark.slow
def test_an_imputer_trains_on_a_table_under_torchrun(tmp_path):
    """The tables' models are on the same loop: two processes stay in lockstep on a CSV."""
    table = tmp_path / "t.csv"
    rows = [f"{i % 7},{(i * 3) % 11 if i % 4 else ''},{'ab'[i % 2]}" for i in range(60)]
    table.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    run, hashes = tmp_path / "run", tmp_path / "hashes"
    r = torchrun("--model", "gain", "--data", table, *small(steps=4, log_every=2,
                                                            checkpoint_every=2),
                 "--out", run, GANKIT_DEBUG_STEP_HASHES=hashes)
    assert r.returncode == 0, r.stderr[-3000:]
    check_lockstep(hashes, 4)
    assert r.stdout.count("done: ") == 1 and "gankit impute" in r.stdout
    _, meta = checkpoint.load(run)
    assert meta["table"]["header"] == ["a", "b", "c"] and meta["data_parallel"]["world_size"] == 2
