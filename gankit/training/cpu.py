"""How many CPU threads torch uses for training, sampling and the other uses.

Why training looks at the machine first (measured with benchmarks/throughput.py on a
2-core machine; figures: docs/measurements/speed.md#threads-why-not-oversubscribe): the
seed GAN's matrix products are small, so torch's threads meet at a barrier every few tens of microseconds. GNU OpenMP lets
a thread that arrives first spin for a while before it sleeps. When another process holds a
core, the thread still working is often the descheduled one and its partner spends its
time slices spinning, so two threads ran about 4 times slower than one. Shorter spins do not
cure it (a spin bound of 3,000 polls still ran 2.6 times slower than one thread) and cost
speed on a quiet machine (10,000 polls: 78 to 97 it/s where the default gave 100), and
sleeping at once made two threads slower than one even when quiet. What works is not to
oversubscribe: a thread per core that other processes leave free.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import option
from ..runtime import (MAX_THREADS, allowed_cpus, available_cores, default_threads,
                       threads_from_env)   # the cores; training decides among them here

MORE_THREADS_GAIN = 1.1


def training_threads(probe_seconds: float = 0.15) -> tuple[int, float | None]:
    """Threads for one training process: the cores that other processes leave free now,
    measured over `probe_seconds`, at most MAX_THREADS. Returns (threads, cores busy with
    other work, or None where that cannot be measured)."""
    busy = others_busy(probe_seconds)
    if busy is None:
        return default_threads(), None
    return threads_for(available_cores(), busy), busy


def candidates(threads: int) -> list[int]:
    """The counts that `fastest` times, from the most threads the free cores allow down to
    one: a virtual machine's cores can be shared by other machines, which no probe of this
    one's /proc/stat sees, and then fewer threads can be faster."""
    return sorted({threads, max(1, threads // 2), 1}, reverse=True)


def fastest(counts: list[int], step: Callable[[], None], seconds: float = 0.1,
            prefer: int | None = None) -> tuple[int, dict]:
    """The thread count in `counts` under which `step()` runs fastest. Each count is timed
    twice (in the order given, then reversed, so that a change of pace meanwhile hurts each
    alike) for about `seconds` after one untimed step. More threads must be at least
    MORE_THREADS_GAIN faster than fewer to be taken: they are the first to suffer when a
    neighbour comes. `prefer` (a resumed run's count, whose rounding it has) is kept unless
    another count is that much faster than it. Returns (count, {count: median seconds a
    step}); the caller's thread count is changed, so set it afterwards."""
    times: dict[int, list[float]] = {n: [] for n in counts}
    for order in (counts, counts[::-1]):
        for n in order:
            torch.set_num_threads(n)
            step()
            start, timed = time.perf_counter(), 0
            while timed < 3 or (time.perf_counter() - start < seconds and timed < 25):
                t = time.perf_counter()
                step()
                times[n].append(time.perf_counter() - t)
                timed += 1
    medians = {n: statistics.median(v) for n, v in times.items()}
    best = prefer if prefer in counts else min(counts)
    for n in sorted(counts):
        if medians[n] < medians[best] / MORE_THREADS_GAIN:
            best = n
    return best, medians


@dataclass
class ThreadPlan:
    """A training process's thread count before it starts: given (--threads, GANKIT_THREADS,
    torchrun's share, or a resumed run that had been given one), or chosen from the free
    cores, in which case `counts` lists those worth timing on a copy of the model."""
    threads: int
    chosen: bool
    counts: list[int] = field(default_factory=list)
    busy: float | None = None          # other processes' cores, where the probe measured it
    before: dict | None = None         # a resumed run's last segment (see segments())

    def settle(self, probe: Callable[[], None] | None, step: int) -> tuple[int, str]:
        """(the thread count to train on, what to say of it or ''). Where the plan left a
        choice (`counts`), the count under which `probe` (a training step) runs fastest;
        it is set as torch's count. `step`: the run's step (a resume's)."""
        threads, why = self.threads, ""
        if self.counts:
            prefer = self.before["threads"] if self.before else None
            with torch.random.fork_rng(devices=[]):
                threads, medians = fastest(self.counts, probe, prefer=prefer)
            torch.set_num_threads(threads)
            if threads < max(self.counts) or (prefer is not None and threads != prefer):
                timed = ", ".join(f"{medians[n] * 1e3:.1f} ms on {n}" for n in self.counts)
                why = f"a step took {timed} thread{'s' * (self.counts[-1] > 1)} here"
        return threads, self.note(threads, step, why)

    def note(self, threads: int, step: int, why: str = "") -> str:
        """What to say before the first step, or '': why the count is below the free cores,
        or (on resume) that it differs from the one the run trained on, or that a count the
        run was given now oversubscribes the cores. `why`: the timing, when it decided."""
        cores = available_cores()
        busy = (f"other processes keep {self.busy:.1f} of this machine's {cores} cores busy"
                if self.busy is not None else "")
        old = self.before["threads"] if self.before else None
        if old is not None and not self.chosen and busy and threads_for(cores, self.busy) < old:
            return (f"{busy}, and this run keeps the {old} threads it was given, which will wait "
                    f"on each other: {option('threads', threads_for(cores, self.busy))} goes "
                    "faster (and rounds differently from an uninterrupted run)")
        reason = why or (busy if self.busy is not None and threads < min(cores, MAX_THREADS)
                         else "")
        if old is not None and threads != old:
            return (f"this run trained on {old} thread{'s' * (old > 1)} until step {step}; "
                    f"{reason or 'here'}, so it continues on {threads}, which rounds differently "
                    f"from an uninterrupted run ({option('threads', old)} keeps the count)")
        if reason and old is None:
            return (f"{reason}, so training uses {threads} thread{'s' * (threads > 1)} "
                    f"({option('threads', 'N')} to choose)")
        return ""


def plan_threads(given: int | None, before: dict | None,
                 torchrun_local: int | None = None) -> ThreadPlan:
    """The thread count of a training process on the CPU. `given`: --threads; `before`: a
    resumed run's last segment; `torchrun_local`: processes on this machine under torchrun.

    A resume chooses as a new run does (the machine may have changed since), keeping its
    count unless another is MORE_THREADS_GAIN faster, except where the run had been given
    its count, which it keeps."""
    if given:
        return ThreadPlan(given, False, before=before)
    if before and not before["chosen"]:
        busy = others_busy(0.15) if before["threads"] > 1 else None
        return ThreadPlan(before["threads"], False, busy=busy, before=before)
    fixed = default_threads(torchrun_local) if torchrun_local else threads_from_env()
    if fixed:
        return ThreadPlan(fixed, False, before=before)
    threads, busy = training_threads()
    counts = set(candidates(threads))
    if before and before["threads"] <= threads:
        counts.add(before["threads"])
    return ThreadPlan(threads, True, sorted(counts, reverse=True) if len(counts) > 1 else [],
                      busy, before)


def segments(meta: dict) -> list[dict]:
    """The thread counts a run trained on, from its checkpoint's metadata: one
    {"from_step", "threads", "chosen"} per stretch (a resume may choose another count;
    the same count is what makes a resumed run equal an uninterrupted one). A checkpoint from
    before they were recorded had one count, taken as chosen."""
    if "thread_segments" in meta:
        return [dict(s) for s in meta["thread_segments"]]
    threads = meta.get("config", {}).get("train", {}).get("threads")
    return [{"from_step": 0, "threads": threads, "chosen": True}] if threads else []


def threads_for(cores: int, busy: float) -> int:
    """The thread count for `cores` cores of which other processes keep `busy` occupied:
    the free ones, a core counting as free when less than a quarter of it is in use."""
    return max(1, min(MAX_THREADS, cores - math.ceil(busy - 0.25)))


def others_busy(seconds: float) -> float | None:
    """Cores' worth of CPU time used by other processes, on the cores this process may run
    on, over `seconds` (Linux's /proc/stat; None elsewhere). This process sleeps meanwhile
    and its own CPU time is taken off."""
    cpus = allowed_cpus()
    if cpus is None:
        return None
    first = _sample(cpus)
    time.sleep(seconds)
    return _others_share(first, _sample(cpus))


def _sample(cpus: set[int]) -> tuple[int | None, float, float]:
    """(busy ticks of `cpus`, this process's CPU seconds, the clock)."""
    return _busy_ticks(cpus), time.process_time(), time.monotonic()


def _others_share(a: tuple, b: tuple) -> float | None:
    """Cores' worth of other processes' work between two samples."""
    (ticks0, own0, t0), (ticks1, own1, t1) = a, b
    if ticks0 is None or ticks1 is None or t1 <= t0:
        return None
    busy_seconds = (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK") - (own1 - own0)
    return max(0.0, busy_seconds / (t1 - t0))


def _busy_ticks(cpus: set[int]) -> int | None:
    """Clock ticks the given CPUs spent not idle (user, nice, system, irq, softirq, steal)."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    total, seen = 0, 0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        ticks = [int(v) for v in fields[:8]]
        total += sum(ticks) - ticks[3] - ticks[4]   # all but idle and iowait
        seen += 1
    return total if seen else None


class LoadWatch:
    """Between two calls of `check`, how busy other processes kept this process's cores; says
    once when a neighbour that came after the start leaves fewer cores free than the run
    has threads. The count cannot change mid-run without changing its rounding (and so
    the bit-for-bit resume), so the watch tells the user how to change it instead."""

    def __init__(self, threads: int, intervals: int = 2):
        self.threads, self.needed, self.over = threads, intervals, 0
        self.cpus = allowed_cpus()
        self.done = threads == 1 or self.cpus is None
        self.last = None if self.done else _sample(self.cpus)

    def check(self) -> str | None:
        """A one-line note the first time the cores were oversubscribed for `intervals`
        calls in a row, else None."""
        if self.done:
            return None
        now = _sample(self.cpus)
        if now[2] - self.last[2] < 0.05:   # too short to count ticks of 10 ms
            return None
        busy, self.last = _others_share(self.last, now), now
        if busy is None:
            return None
        fits = threads_for(len(self.cpus), busy)
        self.over = self.over + 1 if fits < self.threads else 0
        if self.over < self.needed:
            return None
        self.done = True
        return (f"other processes now keep {busy:.1f} of {len(self.cpus)} cores busy, and "
                f"{self.threads} threads wait on each other: stop it (Ctrl-C) and continue "
                f"with {option('resume', True)} {option('threads', fits)}, which goes faster")
