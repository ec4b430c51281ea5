"""One writer per run folder: a second `train` (or a `--resume`) of a run that is still
training is refused in one line naming the process; a killed run never blocks its own
--resume; readers never need the lock."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gankit.cli import main
from gankit.errors import GankitError
from gankit.training.run_folder import RunLock

from helpers import gankit_cli, gankit_main, one_line_error, tiny_flags

# Runs that train on until they are stopped, writing no sample grid on the way.
RUN = dict(offline=True, batch_size=8, sample_every=100_000, log_every=10)


def wait_for(path, proc, timeout=180):
    start = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < timeout, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock(run)
    lock.acquire()
    try:
        r = gankit_cli("train", "--out", run, *tiny_flags(steps=5, **RUN))
        one_line_error(r, f"run folder {run} is in use by process {os.getpid()}", "--out")
        assert not (run / "checkpoints").exists()   # it stopped before writing anything
    finally:
        lock.release()


def test_the_same_process_cannot_hold_a_folder_twice(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    with pytest.raises(GankitError, match=f"in use by process {os.getpid()}"):
        second.acquire()
    holder = json.loads((tmp_path / ".lock").read_text())
    assert holder["pid"] == os.getpid()   # a failed attempt leaves the holder's details
    first.release()
    second.acquire()
    second.release()


@pytest.mark.slow
def test_running_training_locks_out_train_and_resume_but_not_readers(tmp_path, capsys):
    """The trainer is another process; the commands that meet its lock run in this one
    (gankit.cli.main, the code path of the command), which spares a Python start each."""
    run = tmp_path / "run"
    trainer = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--out", str(run),
                                *tiny_flags(steps=1_000_000, checkpoint_every=5, **RUN)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(run / "checkpoints" / "last.json", trainer)
        holder = f"in use by process {trainer.pid}"
        for argv in (["train", "--out", run, *tiny_flags(steps=5, **RUN)],
                     ["train", "--resume", "--out", run, "--quiet"]):
            one_line_error(gankit_main(capsys, *argv), holder)
        # Readers go ahead while it trains: checkpoints are written atomically.
        assert main(["sample", "--checkpoint", str(run), "--n", "4", "--out",
                     str(tmp_path / "s.png")]) == 0
        assert trainer.poll() is None   # none of this disturbed the run
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.communicate()
    # The kernel released the killed run's lock: it resumes at once, in another process.
    step = json.loads((run / "checkpoints" / "last.json").read_text())["step"]
    r = gankit_cli("train", "--resume", "--out", run, "--steps", str(step + 10), "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "checkpoints" / "last.json").read_text())["step"] == step + 10
