"""A bounded load test of `gankit serve` on 127.0.0.1, while a run trains and is followed.

    python benchmarks/serve_load.py [--clients 8] [--requests 200] [--out FILE.md]

Starts, as real processes: a `gankit train` of the guide's gan (the run the page streams),
and `gankit serve` over a root that also holds a finished short run to generate from.
Then `--clients` threads each send `--requests` POST /api/generate (a 6x6 grid, a new seed
each time) while one more client follows the training run as the page does (what changed,
asked once a second). Reports errors, latency percentiles, throughput, the server's
resident memory over the test, and the changes the follower received. Nothing is asserted:
the figures go to docs/measurements/speed.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gankit(*args, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gankit", *map(str, args)], **popen)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--out", default="benchmarks/results/serve_load.md")
    args = p.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gankit-load-"))
    env = {**os.environ, "GANKIT_OFFLINE": "1"}
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    print("training a short gan to generate from ...", flush=True)
    subprocess.run([sys.executable, "-m", "gankit", "train", "--steps", "300", "--out",
                    root / "short", "--quiet"], check=True, **quiet)
    port = free_port()
    server = gankit("serve", root, "--port", port, **quiet)
    train = gankit("train", "--steps", "30000", "--out", root / "live", "--quiet", **quiet)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gankit serve did not start")
                time.sleep(0.2)
        while not (root / "live" / "metrics.csv").is_file():
            time.sleep(0.2)

        def request(conn, seed):
            body = json.dumps({"run": "short", "seed": seed, "n": 36})
            t = time.perf_counter()
            conn.request("POST", "/api/generate", body, {"Host": host, "Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            return time.perf_counter() - t, r.status == 200 and b'"image"' in data

        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        request(warm, 0)   # the model loads once; the test measures what follows
        warm.close()

        events = {"looks": 0, "changed": 0, "rows": 0}
        stop = threading.Event()

        def follow():   # as the page's training tab: what changed, once a second
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            stamp, rows, last = "", 0, ""
            while not stop.is_set():
                conn.request("GET", f"/api/run/changes?run=live&since={stamp}&rows={rows}"
                             f"&last={last}", headers={"Host": host})
                m = json.loads(conn.getresponse().read())
                stamp = m["stamp"]
                events["looks"] += 1
                if "run" in m:
                    events["changed"] += 1
                    events["rows"] += len(m["rows"])
                    rows = m["start"] + len(m["rows"])
                    last = m["rows"][-1][0] if m["rows"] else last
                stop.wait(1.0)
            conn.close()
        threading.Thread(target=follow, daemon=True).start()

        memory = [(0.0, rss_mib(server.pid))]
        start = time.perf_counter()

        def watch():
            while not stop.is_set():
                memory.append((time.perf_counter() - start, rss_mib(server.pid)))
                time.sleep(0.5)
        threading.Thread(target=watch, daemon=True).start()

        latencies, errors = [], [0]
        lock = threading.Lock()

        def client(k):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for i in range(args.requests):
                try:
                    seconds, ok = request(conn, 1 + k * args.requests + i)
                except (OSError, http.client.HTTPException):
                    seconds, ok = float("nan"), False
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    latencies.append(seconds) if ok else None
                    errors[0] += not ok
            conn.close()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        time.sleep(1)
        stop.set()
        memory.append((elapsed, rss_mib(server.pid)))
    finally:
        for proc in (train, server):
            proc.send_signal(2)
        for proc in (train, server):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)

    ms = sorted(1000 * s for s in latencies)
    q = statistics.quantiles(ms, n=100)
    total = args.clients * args.requests
    rss = [m for _, m in memory]
    first_half = [m for t, m in memory if t <= elapsed / 2]
    lines = [
        f"# gankit serve under load ({time.strftime('%Y-%m-%d')})", "",
        f"`python benchmarks/serve_load.py --clients {args.clients} --requests {args.requests}` "
        f"on {os.cpu_count()} cores, while `gankit train` (the guide's gan) ran beside it and one "
        "more client followed the run as the page does (what changed, once a second).", "",
        "| requests | errors | seconds | requests/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|",
        f"| {total:,} | {errors[0]} | {elapsed:.1f} | {total / elapsed:.1f} | {q[49]:.1f} | "
        f"{q[94]:.1f} | {q[98]:.1f} | {ms[-1]:.1f} |", "",
        f"Server memory (RSS, MiB): {rss[0]:.0f} after the first request, {max(first_half):.0f} "
        f"at most in the first half of the test, {max(rss):.0f} at most overall, {rss[-1]:.0f} "
        "at the end.", "",
        f"The follower looked {events['looks']} times meanwhile: {events['changed']} answers "
        f"brought changes, {events['rows']} metrics rows in all.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
