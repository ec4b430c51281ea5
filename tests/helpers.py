"""What several test modules share: running the real `gankit` command, the one-line error
check, a tiny training run's settings, and building a model as the trainer does.

Test modules import it as `from helpers import ...` (tests/ has no __init__.py, so pytest's
default "prepend" import mode puts tests/ on sys.path, as it does for conftest.py). No test
module imports from another test module; fixtures live in conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import torch


# --- the command -----------------------------------------------------------------------------

def gankit_cli(*args, cwd=None, timeout=300, env=None, **popen) -> subprocess.CompletedProcess:
    """Run the real `python -m gankit` in a subprocess (as a user would); `env` adds to
    (overrides) the test session's environment."""
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **popen)


def gankit_main(capsys, *args) -> subprocess.CompletedProcess:
    """gankit.cli.main(args) in this process (the command's code path, without the ~3 s of a
    Python start), as a CompletedProcess of its exit status and what it printed (`capsys`
    is the test's fixture)."""
    from gankit.cli import main

    capsys.readouterr()   # only this command's output
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """`result` failed the way a user's mistake must: exit status 1, no traceback, and its
    whole stderr ONE line, `gankit: error: ...`, holding every fragment. Returns the line."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gankit: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# --- a tiny training run -------------------------------------------------------------------

# The settings of a short CPU run: small batches, and a metrics row, a sample grid and a
# checkpoint within a few steps. Model and data are gankit's defaults (gan, mnist).
TINY: dict[str, Any] = dict(batch_size=16, log_every=5, sample_every=10, checkpoint_every=10,
                            device="cpu", progress=False)


def tiny_run(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of gankit.train for a tiny run: TINY with `overrides` (any config
    field: steps=20, model="cgan", offline=True, ...). An override of None leaves that key
    out, so that gankit's own default applies (a model's batch size, the default cadence)."""
    return {k: v for k, v in {**TINY, **overrides}.items() if v is not None}


def tiny_flags(**overrides: Any) -> list[str]:
    """The same run as `gankit train` flags: tiny_flags(steps=4, batch_size=8) is
    ["--batch-size", "8", ..., "--quiet", "--steps", "4"]. progress=False is --quiet; a
    switch is --name or --no-name."""
    flags = []
    for key, value in tiny_run(**overrides).items():
        if key == "progress":
            flags += [] if value else ["--quiet"]
        elif isinstance(value, bool):
            flags.append(("--" if value else "--no-") + key.replace("_", "-"))
        else:
            flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


# --- models --------------------------------------------------------------------------------

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
