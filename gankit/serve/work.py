"""The page's work: models loaded once and kept, and long jobs off the request thread.

A model is loaded on first use and kept until its checkpoint file changes (a run that
trains saves a new one every --checkpoint-every steps), then reloaded; a report's pictures
likewise until its report.json changes. One lock per model: the uses switch a model's modes
and gradients for a moment (inpainting freezes it), so two requests never use one model at
once; different models run side by side.

Long work (evaluation, inpainting) is a Job: it runs on a worker thread, reports its
progress through the bar factory that the uses accept as `progress` (gankit/progress.py),
and stops at its next progress update once cancelled.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..training import checkpoint
from ..errors import GankitError

KEPT_MODELS = 8    # least recently used models beyond this are dropped
KEPT_JOBS = 100    # finished jobs remembered (their results are small)
KEPT_PICTURES = 32   # report pictures kept (a few hundred kB each)


@dataclass
class Loaded:
    model: Any
    lock: threading.Lock
    stamp: tuple[int, int]


class ModelCache:
    def __init__(self, device: str = "cpu"):
        self.device = device
        self._models: OrderedDict[tuple[str, bool], Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0   # how many times a checkpoint was read (tests check the caching)

    def get(self, run: Path, ema: bool = True) -> Loaded:
        """The run's model from its last checkpoint (EMA weights unless ema=False)."""
        path = checkpoint.last_in(run)
        try:
            st = path.stat()
        except OSError:
            raise GankitError(f"run {run.name} has no checkpoint yet: it is saved every "
                              "--checkpoint-every steps and at the end") from None
        key, stamp = (str(path), ema), (st.st_mtime_ns, st.st_size)
        with self._lock:
            entry = self._models.get(key)
            if entry is not None and entry.stamp == stamp:
                self._models.move_to_end(key)
                return entry
        from ..api import load
        model = load(path, device=self.device, ema=ema)   # outside the lock: may take a while
        with self._lock:
            self.loads += 1
            entry = self._models[key] = Loaded(model, threading.Lock(), stamp)
            self._models.move_to_end(key)
            while len(self._models) > KEPT_MODELS:
                self._models.popitem(last=False)
        return entry


class FileCache:
    """What was made from a file (a report's pictures), kept until the file changes, as
    models are kept until their checkpoint changes."""

    def __init__(self, size: int = KEPT_PICTURES):
        self.size = size
        self._kept: OrderedDict[tuple[str, str], tuple[tuple[int, int], Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.made = 0   # how many times something was made (tests check the caching)

    def get(self, path: Path, kind: str, make: Callable[[Path], Any]) -> Any:
        """make(path), or what it made before from the same file (same mtime and size)."""
        st = path.stat()   # before reading: a write in between is seen at the next look
        key, stamp = (str(path), kind), (st.st_mtime_ns, st.st_size)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == stamp:
                self._kept.move_to_end(key)
                return kept[1]
        value = make(path)   # outside the lock: drawing takes a moment
        with self._lock:
            self.made += 1
            self._kept[key] = (stamp, value)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return value


class Cancelled(Exception):
    pass


@dataclass
class Job:
    id: str
    kind: str
    run: str
    state: str = "queued"           # queued, running, done, failed, cancelled
    phase: str = ""                 # what the current bar says it does
    done: float = 0
    total: float = 0
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    changed: threading.Event = field(default_factory=threading.Event)

    def say(self, phase: str) -> None:
        """A phase of the work that has no bar of its own (loading, scoring)."""
        if self.cancel.is_set():
            raise Cancelled()
        self.phase, self.done, self.total = phase, 0, 0
        self.changed.set()

    def bar(self, total: float = 0, desc: str = "", **_: Any) -> "JobBar":
        """A bar factory for the uses' `progress`: one bar per phase of the work."""
        self.phase, self.done, self.total = desc, 0, total or 0
        self.changed.set()
        return JobBar(self)

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "run": self.run, "state": self.state,
                "phase": self.phase, "done": self.done, "total": self.total,
                "result": self.result, "error": self.error}


class JobBar:
    """tqdm's surface (update, set_postfix, close, with) reporting to a Job."""

    def __init__(self, job: Job):
        self.job = job

    def update(self, n: float = 1) -> None:
        if self.job.cancel.is_set():
            raise Cancelled()
        self.job.done += n
        self.job.changed.set()

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "JobBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class Jobs:
    """One worker: long jobs run one after another (two would only share 2 cores slower),
    while the requests that answer at once keep their own threads."""

    def __init__(self, workers: int = 1):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="gankit-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def submit(self, kind: str, run: str, work: Callable[[Job], Any]) -> Job:
        job = Job(id=str(next(self._ids)), kind=kind, run=run)
        with self._lock:
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.state in ("done", "failed", "cancelled")]
            for k in finished[:max(0, len(self._jobs) - KEPT_JOBS)]:
                del self._jobs[k]
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        if job.cancel.is_set():
            job.state = "cancelled"
        else:
            job.state = "running"
            job.changed.set()
            try:
                job.result = work(job)
                job.state = "done"
            except Cancelled:
                job.state = "cancelled"
            except GankitError as e:
                job.state, job.error = "failed", str(e)
            except Exception as e:   # a bug: the page says so, the server log has the trace
                traceback.print_exc()
                job.state, job.error = "failed", f"{type(e).__name__}: {e}"
        job.changed.set()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def shutdown(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
