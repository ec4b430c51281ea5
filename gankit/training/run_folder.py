"""One writer per run folder: an operating-system lock on RUN/.lock.

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

NAME = ".lock"


class RunLock:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / NAME
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
        me = json.loads((Path(folder) / NAME).read_bytes().decode())
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
