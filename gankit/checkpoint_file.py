"""The checkpoint file: tensors in safetensors, everything else as JSON in its header.

Below the models and metrics (the feature network keeps its weights in one too);
training/checkpoint.py builds the training state and resuming on it. Never pickle: a file
someone hands us could run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as serialize

from .errors import GankitError, first_line, option
from .files import write_bytes

FORMAT = "gankit-checkpoint"
FORMAT_VERSION = 1


def save(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Atomically write `path` (.safetensors) and its readable `.json` twin.

    A failed write (a full disk, a file-size limit) leaves the previous file untouched and no
    temporary behind, and becomes one GankitError."""
    path = Path(path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    text = json.dumps(meta, indent=1)
    # safetensors refuses tensors that share memory (e.g. views); give each its own copy.
    # Serialized here and written by files.write_bytes (PATH.tmp, fsync, rename), not by
    # safetensors' save_file: that one writes through a randomly named temporary of its
    # own, which a killed process leaves behind for good (a checkpoint's size each time).
    data = serialize({k: v.clone() for k, v in tensors.items()}, metadata={"gankit": text})
    kept = ("the previous file is untouched, and a training run continues from its last "
            f"checkpoint with {option('resume', True)}")
    write_bytes(path, data, fsync=True, fix=kept)
    del data
    write_bytes(path.with_suffix(".json"), text.encode(), fsync=True, fix=kept)


def read(path: str | Path, with_tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of the checkpoint file `path` ({} without `with_tensors`: cheap);
    any damage becomes one GankitError naming the file."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except Exception as e:  # safetensors raises its own error types for damaged files
        reason = first_line(e)
        raise GankitError(f"checkpoint {path} is unreadable ({reason}): it is truncated or "
                          "not a safetensors file; use another checkpoint") from None
    if "gankit" not in header:
        raise GankitError(f"{path} is a safetensors file but not a gankit checkpoint "
                          "(no gankit metadata): pass a checkpoint that gankit train wrote")
    try:
        meta = json.loads(header["gankit"])
    except ValueError:
        raise GankitError(f"checkpoint {path} has damaged metadata (not valid JSON): it was "
                          "edited or corrupted; use another checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GankitError(f"{path} is a safetensors file but not a gankit checkpoint "
                          "(unknown metadata format): pass a checkpoint that gankit train wrote")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise GankitError(f"checkpoint {path} was written by a newer gankit "
                          f"({meta.get('gankit_version')}): upgrade gankit to read it")
    return tensors, meta
