"""Checkpoints of training runs: the training state saved and restored, and finding a run's
checkpoint. The file format (safetensors + JSON, never pickle) is gankit/checkpoint_file.py.

One `.safetensors` file holds every tensor (weights, BatchNorm statistics, optimizer
moments, RNG states) and, in its header metadata, the JSON that describes the run (model
name and config, data and training config, step, versions). That makes the file alone
enough to rebuild the model, and lets a single atomic rename publish a checkpoint: a kill
at any moment leaves either the old file or the new one, never a mix. A `.json` copy of
the metadata is written beside it for people to read; loading never needs it.

Nested state such as an optimizer's state_dict is split by `flatten` into tensors and a
JSON skeleton that names them, and put back by `unflatten`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..checkpoint_file import read, save  # noqa: F401  (save: the trainer writes through it)
from ..errors import GankitError, first_line
from .run_folder import RunPaths

if TYPE_CHECKING:
    from .ema import EMA
    from ..models import GenerativeModel



def flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in `obj` by {"$t": key}, storing it in `tensors[key]`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().contiguous().cpu()
        return {"$t": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        # optimizer state is keyed by parameter index: JSON keys must be strings
        return {"$int": [[k, flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"$tuple": [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix}")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if set(skeleton) == {"$t"}:
            return tensors[skeleton["$t"]]
        if set(skeleton) == {"$int"}:
            return {int(k): unflatten(v, tensors) for k, v in skeleton["$int"]}
        if set(skeleton) == {"$tuple"}:
            return tuple(unflatten(v, tensors) for v in skeleton["$tuple"])
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


# --- the training state: what a run saves and what --resume restores --------------------

def run_meta(cfg, model: GenerativeModel, step: int, dataset: str = "",
             parallel: dict | None = None) -> dict[str, Any]:
    """A training checkpoint's metadata: with the weights, enough to rebuild the model
    (gankit.load) and, with training_state's tensors, to resume the run. `cfg` is the run's
    RunConfig; `parallel` the torchrun job's processes and batch sizes."""
    from .._version import __version__
    from . import distributed
    return {"gankit_version": __version__, "torch_version": torch.__version__,
            "model": cfg.model, "config": cfg.to_tables(), "step": step,
            # processes, and the batch per process and per step (torchrun)
            "data_parallel": parallel or distributed.Solo().describe(cfg.train.batch_size),
            "image_shape": list(model.image_shape), "num_classes": model.num_classes,
            "class_names": list(model.class_names), "dataset": dataset,
            "class_counts": list(model.class_counts)}


def training_state(model: GenerativeModel, batch_gen: torch.Generator,
                   ema: EMA | None = None) -> tuple[dict, dict]:
    """Weights, optimizer states and RNG states as (tensors, JSON skeleton of the
    optimizers' state_dicts, which `restore` reads back from the metadata's "optim")."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:   # the sampling weights: `gankit sample` prefers them
        tensors.update({f"ema.{k}": v for k, v in ema.average.state_dict().items()})
    skeleton = {name: flatten(opt.state_dict(), f"optim.{name}", tensors)
                for name, opt in model.optimizers.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.batch"] = batch_gen.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    return tensors, skeleton


def load_weights(model: GenerativeModel, tensors: dict, where: str | Path) -> None:
    """The checkpoint's "model." tensors into `model`; one line when they do not fit it."""
    weights = model.upgrade_state(prefixed(tensors, "model."))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or reshaped:
        parts = [f"{len(names)} {what} (e.g. {names[0]})" for names, what in
                 ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape"))
                 if names]
        raise GankitError(f"checkpoint {where} does not fit this model: tensors {', '.join(parts)}; "
                          "it belongs to another model or image shape")
    model.load_state_dict(weights, strict=True)


def restore(model: GenerativeModel, batch_gen: torch.Generator, ema: EMA | None,
            tensors: dict, meta: dict, where: str | Path) -> None:
    """Everything `training_state` saved, back into a freshly built model (--resume)."""
    load_weights(model, tensors, where)
    try:
        if ema is not None:
            ema.average.load_state_dict(prefixed(tensors, "ema."))
        for name, opt in model.optimizers.items():
            opt.load_state_dict(unflatten(meta["optim"][name], tensors))
        torch.set_rng_state(tensors["rng.torch"])
        batch_gen.set_state(tensors["rng.batch"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise GankitError(f"checkpoint {where} lacks part of the training state ({type(e).__name__}: "
                          f"{first_line(e, 80)}): it was edited or "
                          "damaged; `gankit sample` can still use its weights, or start a new "
                          "run") from None
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with `prefix` ("model.", "ema."), without it."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def last_in(run: str | Path) -> Path:
    """Where a run folder keeps its newest checkpoint."""
    return RunPaths(run).checkpoint("last")


def resolve(path: str | Path) -> Path:
    """A run folder, a checkpoints folder, a .json or a .safetensors -> the .safetensors."""
    path = Path(path)
    if path.is_dir():
        for candidate in (last_in(path), path / last_in(path).name):   # a run or its checkpoints/
            if candidate.is_file():
                return candidate
        raise GankitError(f"no checkpoint in {path}: expected checkpoints/last.safetensors "
                          "(train first, or pass the .safetensors file)")
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise GankitError(f"checkpoint {path} does not exist: pass a run folder or a .safetensors file")
    return path


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint (a run folder, its checkpoints folder or a file); any damage
    becomes one GankitError naming the file."""
    return read(resolve(path), with_tensors=True)


def read_meta(path: str | Path) -> dict[str, Any]:
    """Only the JSON metadata (cheap: the tensors are not read)."""
    return read(resolve(path), with_tensors=False)[1]


def keep_numbered(saved: Path, step: int, keep: int) -> None:
    """Also keep `saved` (just written, complete) as step_NNNNNN.safetensors and delete all
    but the `keep` newest numbered checkpoints. The new one is linked before any is
    deleted, so the newest good checkpoint always survives."""
    folder = saved.parent
    for suffix in (".safetensors", ".json"):
        src, dst = saved.with_suffix(suffix), folder / f"{RunPaths.numbered(step)}{suffix}"
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)        # last.* is replaced by rename later: the link stays valid
        except OSError:
            shutil.copy2(src, dst)   # file systems without hard links
    numbered = sorted(folder.glob(f"{RunPaths.NUMBERED_PREFIX}*.safetensors"))
    for old in numbered[:-keep]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
