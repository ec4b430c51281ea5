"""The run folder: every path in it (RunPaths), and one writer at a time (RunLock, RunFolder).

RunPaths is the only place a file of a run folder is named: the trainer writes through
it and the checkpoint module, `gankit eval` and the web page read through it.

One writer: an operating-system lock on RUN/.lock.

Two `gankit train --out R` at once would write the same metrics.csv and checkpoints over
each other. So the process that trains a run folder (rank 0 under torchrun) holds an
exclusive flock(2) on its `.lock` file for as long as it runs. The kernel releases it when
the process ends, however it ends (SIGKILL included): a killed run never blocks its own
`--resume`, and there is no stale lock to clean up by hand. The file stays; while the lock
is held it holds the holder's PID, host, start time and command, which the refusal names.

Readers (`gankit sample`, `eval`, `interpolate`, the web page) never take the lock: every
file in a run folder is written to a temporary name and renamed, so they never see half
of one.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import GankitError, option

try:
    import fcntl
except ImportError:   # Windows has no flock: runs there go unlocked
    fcntl = None


class RunPaths:
    """Where each file of the run folder `root` lies."""

    GRID_PREFIX = "step_"    # samples/step_NNNNNN.png: the fixed-noise grid at a step
    RECON_PREFIX = "recon_"  # samples/recon_NNNNNN.png: images over their reconstructions
    NUMBERED_PREFIX = "step_"   # checkpoints/step_NNNNNN.safetensors, kept by --keep
    PARTS = ("samples", "checkpoints", "tensorboard")   # folders of a run, never runs

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    config = property(lambda self: self.root / "config.toml")
    metrics = property(lambda self: self.root / "metrics.csv")
    loss_plot = property(lambda self: self.root / "loss.png")
    tensorboard = property(lambda self: self.root / "tensorboard")
    samples = property(lambda self: self.root / "samples")
    checkpoints = property(lambda self: self.root / "checkpoints")
    held_out = property(lambda self: self.root / "held_out.txt")   # a folder's held-out images
    evaluation = property(lambda self: self.root / "eval.json")    # the latest `gankit eval`
    # a table generator's: its synthetic table judged against its training table (gankit synth)
    report = property(lambda self: self.root / "report.json")
    report_page = property(lambda self: self.root / "report.html")
    lock = property(lambda self: self.root / ".lock")

    def checkpoint(self, name: str = "last") -> Path:
        """checkpoints/NAME.safetensors (its JSON twin: .with_suffix(".json"))."""
        return self.checkpoints / f"{name}.safetensors"

    @staticmethod
    def numbered(step: int) -> str:
        """The name of the checkpoint kept for `step` (--keep)."""
        return f"{RunPaths.NUMBERED_PREFIX}{step:06d}"

    def grid(self, step: int) -> Path:
        return self.samples / f"{self.GRID_PREFIX}{step:06d}.png"

    def recon(self, step: int) -> Path:
        return self.samples / f"{self.RECON_PREFIX}{step:06d}.png"


def to_resume(run: str | Path) -> Path:
    """The checkpoint `--resume` continues from; one line when there is none."""
    last = RunPaths(run).checkpoint()
    if not last.is_file():
        raise GankitError(f"nothing to resume in {run}: no checkpoints/last.safetensors "
                          f"(drop {option('resume', True)} to start a new run)")
    return last


class RunFolder:
    """Rank 0's run folder: refused when it would lose work, locked while training, created
    only once everything it needs has loaded (a bad device, dataset or model leaves none)."""

    def __init__(self, out: str, resume: bool):
        self.path, self.resume = Path(out), resume
        self.paths = RunPaths(out)
        self.lock = RunLock(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise GankitError(f"run folder {self.path} is a file: choose another {option('out')}")
        if resume:
            to_resume(self.path)   # before anything is loaded
        if self.path.is_dir():
            self._claim()

    def _claim(self) -> None:
        """Take the lock, then look: another process may have written a run meanwhile."""
        self.lock.acquire()
        try:
            if self.resume:
                to_resume(self.path)
            elif self.paths.checkpoint().is_file():
                raise GankitError(f"{self.path} already holds a run: pass "
                                  f"{option('resume', True)} to continue it, or "
                                  f"{option('out', 'NEW_FOLDER')} to start another")
        except GankitError:
            self.release()
            raise

    def release(self) -> None:
        self.lock.release()

    def create(self) -> None:
        path = self.path
        try:
            self.paths.samples.mkdir(parents=True, exist_ok=True)
            self.paths.checkpoints.mkdir(exist_ok=True)
            probe = path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise GankitError(f"cannot write to run folder {path} ({e.strerror}): "
                              f"choose another {option('out')}") from None
        if not self.lock.held:
            self._claim()


class RunLock:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = RunPaths(folder).lock
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Hold the folder's lock, or end with one line naming the process that holds it."""
        if self.held or fcntl is None:
            return
        try:
            # Opened without truncating: the holder's details must survive a failed attempt.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise GankitError(f"cannot write to run folder {self.folder} ({e.strerror}): "
                              f"choose another {option('out')}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise GankitError(f"run folder {self.folder} is in use by {holder}: wait for it "
                              "to end or stop it (Ctrl-C saves a checkpoint; then "
                              f"{option('resume', True)}), or choose another {option('out')}"
                              ) from None
        except OSError as e:   # a file system without locks (some network mounts)
            os.close(fd)
            raise GankitError(f"cannot lock run folder {self.folder} ({e.strerror}): put runs "
                              f"on a local disk, or choose another {option('out')}") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": _command()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go: emptied (a run that ends leaves no holder's details behind; only a killed
        one does, and the next holder overwrites them), then closed, which releases the
        lock. The file itself stays."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)
                self._fd = None


def _command() -> str:
    """This process's command line, `python -m gankit` shown as `gankit`."""
    program = os.path.basename(sys.argv[0]) if sys.argv else "python"
    return " ".join(["gankit" if program == "__main__.py" else program, *sys.argv[1:]])


def _describe(content: bytes) -> str:
    """'process 1234 on host (gankit train ..., since 2026-11-30 10:00:00)', from the file."""
    try:
        me = json.loads(content.decode())
        command = me["command"] if len(me["command"]) <= 80 else me["command"][:77] + "..."
        return f"process {me['pid']} on {me['host']} ({command}, since {me['started']})"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "another process"   # it has locked the file but not yet written to it


def holder(folder: str | os.PathLike) -> dict | None:
    """The details of the process training `folder` (pid, host, started, command), or None.

    For readers such as the web page, which must not take the lock even for a moment (a
    `gankit train` starting at that moment would be refused): the file's details, believed
    while their process lives. A run that ended emptied the file; a killed one left details
    whose process is gone. A holder on another host (a shared disk) cannot be checked and
    is believed."""
    try:
        me = json.loads(RunPaths(folder).lock.read_bytes().decode())
        pid, host = int(me["pid"]), str(me["host"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:   # alive, another user's
            pass
    return me
