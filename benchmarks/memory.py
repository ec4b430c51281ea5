"""Does a long training run's memory grow? Resident memory (RSS) of a real run, step by step.

Each model is trained through `gankit.train(...)` in a child process (so that this script's
own memory is not counted), with the run's usual writes: metrics.csv rows, sample grids,
checkpoints. This process reads the child's VmRSS from /proc/PID/status a few times a
second and its step from the last row of metrics.csv; nothing is hooked into the loop.
The first reading is taken once the run has passed `--settle` steps (allocator pools and
optimizer moments exist by then), then one every `--every` steps after it (with the
defaults, never at a checkpoint step, whose transient copies of the weights would look like
growth), and at the last metrics row before the end (the end itself would race with the
run's teardown). It prints step vs RSS, the growth from the first reading to
the last (MiB and %), the slope of a least-squares line through the readings (KiB per
1,000 steps: a leak shows as a steady slope, noise as a slope near 0), and the peak (VmHWM).

    python benchmarks/memory.py                              # gan, 20,000 steps
    python benchmarks/memory.py --steps 10000 --every 1000
    python benchmarks/memory.py --models gan dcgan --steps 4000

Linux only (/proc). Offline machines: set GANKIT_OFFLINE=1 (or pass --offline).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys
import gankit
gankit.train(progress=False, **json.loads(sys.argv[1]))
"""


def proc_status_kib(pid: int, field: str) -> int | None:
    """A `kB` field (VmRSS, VmHWM) of /proc/PID/status, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def last_step(metrics: Path) -> int:
    """The step of metrics.csv's last complete row (0 before the first one)."""
    try:
        with open(metrics, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode(errors="replace")
    except FileNotFoundError:
        return 0
    for line in reversed(tail.splitlines()[:-1] if not tail.endswith("\n") else tail.splitlines()):
        head = line.split(",", 1)[0]
        if head.isdigit():
            return int(head)
    return 0


def measure(model: str, steps: int, every: int, settle: int, options: dict, poll: float):
    """Train one model; returns [(step, rss_kib)], the peak (kib) and the wall time (s)."""
    with tempfile.TemporaryDirectory(prefix=f"gankit-mem-{model}-") as tmp:
        out = Path(tmp) / "run"
        opts = {"model": model, "steps": steps, "out": str(out), **options}
        t0 = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(opts)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        readings: list[tuple[int, int]] = []
        # the last reading: the last metrics row before the end (the end itself races with
        # the run's teardown: loss.png, freed data)
        end = steps - options["log_every"]
        # settle + k * every: off the checkpoint steps (multiples of 1,000), whose transient
        # copies of the weights would read as growth
        targets = sorted({*range(settle, end, every), end})
        peak = 0
        while child.poll() is None:
            step = last_step(out / "metrics.csv")
            rss = proc_status_kib(child.pid, "VmRSS")
            peak = max(peak, proc_status_kib(child.pid, "VmHWM") or 0)
            if rss is not None and targets and step >= targets[0]:
                readings.append((step, rss))
                while targets and step >= targets[0]:
                    targets.pop(0)
            time.sleep(poll)
        wall = time.perf_counter() - t0
        err = child.stderr.read()
        if child.returncode != 0:
            raise SystemExit(f"{model}: training failed (status {child.returncode}):\n{err}")
    return readings, peak, wall


def slope_kib_per_1000(readings: list[tuple[int, int]]) -> float:
    if len(readings) < 2:
        return 0.0
    xs = [s for s, _ in readings]
    ys = [r for _, r in readings]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gan"], help="default: gan")
    parser.add_argument("--steps", type=int, default=20_000, help="steps per model (default 20000)")
    parser.add_argument("--every", type=int, default=2000, help="a reading every N steps (default 2000)")
    parser.add_argument("--settle", type=int, default=200,
                        help="first reading once this many steps are done (default 200)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--offline", action="store_true", help="never touch the network")
    parser.add_argument("--log-every", type=int, default=100,
                        help="metrics.csv row every N steps: the step clock this script reads")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between readings")
    args = parser.parse_args()
    if not Path("/proc/self/status").is_file():
        raise SystemExit("needs Linux /proc")
    options = {"data": args.data, "batch_size": args.batch_size, "threads": args.threads,
               "device": "cpu", "log_every": args.log_every, "seed": 0}
    if args.offline:
        options["offline"] = True

    for model in args.models:
        readings, peak, wall = measure(model, args.steps, args.every, args.settle, options, args.poll)
        if not readings:
            raise SystemExit(f"{model}: no readings (is --steps larger than --settle?)")
        print(f"\n{model}: {args.steps} steps, batch {args.batch_size}, {args.threads} thread(s), "
              f"{wall:.0f} s")
        print(f"{'step':>8} {'RSS MiB':>9} {'vs first':>9}")
        first = readings[0][1]
        for step, rss in readings:
            print(f"{step:>8} {rss / 1024:>9.1f} {(rss - first) / 1024:>+9.1f}")
        last = readings[-1][1]
        growth = (last - first) / 1024
        print(f"growth step {readings[0][0]} -> {readings[-1][0]}: {growth:+.1f} MiB "
              f"({100 * (last - first) / first:+.1f}%); slope {slope_kib_per_1000(readings):+.0f} "
              f"KiB per 1,000 steps; peak RSS (VmHWM) {peak / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
