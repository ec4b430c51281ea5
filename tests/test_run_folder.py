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

from conftest import gankit_cli

FAST = ["--data", "mnist", "--offline", "--batch-size", "8", "--sample-every", "100000",
        "--log-every", "10", "--device", "cpu", "--quiet"]


def one_line_error(r, *fragments):
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gankit: error: "), r.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def wait_for(path, proc, timeout=180):
    start = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < timeout, f"{path} never appeared"
        time.sleep(0.2)


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock(run)
    lock.acquire()
    try:
        r = gankit_cli("train", "--out", run, "--steps", "5", *FAST)
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


def test_running_training_locks_out_train_and_resume_but_not_readers(tmp_path, capsys):
    """The trainer is another process; the commands that meet its lock run in this one
    (gankit.cli.main, the code path of the command), which spares a Python start each."""
    run = tmp_path / "run"
    trainer = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--out", str(run),
                                "--steps", "1000000", "--checkpoint-every", "5", *FAST],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(run / "checkpoints" / "last.json", trainer)
        holder = f"in use by process {trainer.pid}"
        for argv in (["train", "--out", str(run), "--steps", "5", *FAST],
                     ["train", "--resume", "--out", str(run), "--quiet"]):
            assert main(argv) == 1
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("gankit: error: ") and holder in err[0], err
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
