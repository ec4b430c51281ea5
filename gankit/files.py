"""Files in and out, written once: atomic writes, the user cache folder, .npy image arrays."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import torch

from .errors import GankitError, first_line

FULL_DISK = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False,
                 unique: bool = False, fix: str = "") -> Iterator[IO]:
    """Write `path` through a temporary file beside it, renamed over it at the end of the
    block: a reader sees the old file or the new one, never half of one.

    Anything raised inside the block (a full disk, a failed check, Ctrl-C) removes the
    temporary and leaves `path` as it was; an OSError becomes one GankitError naming the
    file and the likely cause (a full disk, or a folder that is missing or not writable),
    then `fix` when given (e.g. "choose another --out"). The
    temporary is PATH.tmp, so one left by a killed process is replaced by the next write
    instead of piling up; `unique=True` draws a fresh name instead, for writers that may
    run side by side (two processes downloading the same file). `fsync=True` flushes the
    data to the disk before the rename (checkpoints: a power cut must not leave a named
    but empty file).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if unique:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            tmp = Path(name)
            f = os.fdopen(fd, mode)
        else:
            f = open(tmp, mode, **({"newline": ""} if "b" not in mode else {}))
        with f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(e, OSError):
            full = e.errno in FULL_DISK
            why = ("the disk is full or the file too large: free space (or raise the file-size "
                   "limit)" if full else "check that its folder exists and is writable")
            raise GankitError(f"cannot write {path} ({e.strerror or e}): "
                              f"{why}{'; ' + fix if fix else ''}") from None
        raise


def write_bytes(path: str | os.PathLike, data: bytes, **kw) -> None:
    with atomic_write(path, "wb", **kw) as f:
        f.write(data)


def cache_folder(env_var: str, sub: str = "") -> Path:
    """$env_var when set, else platformdirs' user cache folder for gankit (plus `sub`)."""
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    import platformdirs
    root = Path(platformdirs.user_cache_dir("gankit"))
    return root / sub if sub else root


_SAID: set[str] = set()


def say_once(key: str, message: str) -> None:
    """`gankit: message` on stderr, the first time `key` comes up for this cache folder
    ($GANKIT_CACHE, else the user cache folder): a marker file under said/ remembers it
    for later processes, and a process says it at most once. For what a user needs to know
    once, not at every run (the offline MNIST subset)."""
    if key in _SAID:
        return
    _SAID.add(key)
    marker = cache_folder("GANKIT_CACHE") / "said" / key
    if marker.exists():
        return
    print(f"gankit: {message}", file=sys.stderr)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:   # a read-only cache: the user hears it again next time, no harm
        pass


# --- .npy arrays of images (gankit sample --npy, gankit eval --images, ...) -------------

NPY_EXPECTED = "a .npy of uint8 images as `gankit sample --npy` writes, or a folder of images"


def load_npy(path: str) -> np.ndarray:
    """A .npy of uint8 images (N, H, W) or (N, H, W, C), memory-mapped; refused in one line
    otherwise. Never unpickled: a file we were handed could run code."""
    if not Path(path).is_file():
        raise GankitError(f"--images {path} does not exist: pass {NPY_EXPECTED}")
    try:
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise GankitError(f"--images {path} is not a readable .npy file (no NumPy "
                                  f"header): pass {NPY_EXPECTED}")
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        why = ("it holds Python objects, which gankit never unpickles" if "object" in str(e).lower()
               else first_line(e))
        raise GankitError(f"--images {path} is not a readable .npy file ({why}): "
                          f"pass {NPY_EXPECTED}") from None
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise GankitError(f"--images {path} holds {arr.dtype} of shape {arr.shape}: expected uint8 "
                          "(N, H, W) or (N, H, W, C), as `gankit sample --npy` writes")
    return arr


def npy_image_shape(arr: np.ndarray) -> tuple[int, int, int]:
    """(C, H, W) of one image of a load_npy array, as npy_images lays the images out."""
    return (1, *arr.shape[1:3]) if arr.ndim == 3 else (arr.shape[3], *arr.shape[1:3])


def npy_images(path: str) -> torch.Tensor:
    """A .npy of uint8 images (N, H, W) or (N, H, W, C) as a uint8 tensor (N, C, H, W)."""
    x = torch.from_numpy(np.array(load_npy(path)))   # out of the read-only memory map
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def npy_array(images: torch.Tensor) -> np.ndarray:
    """The inverse of npy_images: uint8 (N, C, H, W) -> (N, H, W) for one channel, else
    (N, H, W, C), the layout `gankit sample --npy` writes and Pillow reads per image."""
    arr = images.cpu().permute(0, 2, 3, 1).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def save_npy(path: str | os.PathLike, images: torch.Tensor, flag: str = "--npy") -> None:
    """uint8 images (N, C, H, W) to `path` in npy_array's layout, atomically; like
    numpy.save, a name without the .npy suffix gets it."""
    path = os.fspath(path)
    path = path if path.endswith(".npy") else path + ".npy"
    with atomic_write(path, fix=f"choose another {flag}") as f:
        np.save(f, npy_array(images))
