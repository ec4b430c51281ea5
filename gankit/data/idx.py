"""Read IDX files, the format of MNIST and Fashion-MNIST, gzipped or raw.

Format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code (0x08 is
unsigned byte, the only one these datasets use), the number of dimensions, then one
big-endian uint32 per dimension and the data, row-major. Every defect raises a GankitError
on one line that names the file, the problem and the fix, because a half-downloaded or
hand-copied file is the usual cause and the user can fix it.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import GankitError

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
FIX = "delete it and run again to re-download, or replace it with an intact copy"


def _fail(path: str | os.PathLike, problem: str) -> GankitError:
    return GankitError(f"{path}: {problem}; {FIX}")


def read_bytes(path: str | os.PathLike) -> bytearray:
    """The file's content, decompressed when it starts with the gzip magic (not by name).

    A bytearray, so that the arrays viewing it are writable (torch.from_numpy wants that).
    """
    try:
        with open(path, "rb") as f:
            data = bytearray(f.read())
    except OSError as e:
        raise GankitError(f"cannot read {path}: {e.strerror or e}") from None
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return bytearray(gzip.decompress(data))
    except (EOFError, OSError, zlib.error) as e:
        # EOFError is what a truncated gzip stream raises; BadGzipFile is an OSError.
        raise _fail(path, f"corrupt or truncated gzip data ({e})") from None


def parse_idx(data: bytes | bytearray, path: str | os.PathLike, ndim: int) -> np.ndarray:
    """Parse IDX bytes that must hold unsigned bytes in `ndim` dimensions."""
    if len(data) < 4:
        raise _fail(path, f"only {len(data)} bytes, too short for an IDX header")
    zeros, code, dims = data[:2], data[2], data[3]
    if zeros != b"\0\0":
        raise _fail(path, f"not an IDX file (magic 0x{data[:4].hex()}, expected "
                          f"0x{0x0800 | ndim:08x})")
    if code != UBYTE:
        raise _fail(path, f"IDX dtype code 0x{code:02x}, expected 0x08 (unsigned byte)")
    if dims != ndim:
        raise _fail(path, f"IDX file with {dims} dimension(s), expected {ndim} "
                          f"(magic 0x{0x0800 | ndim:08x})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _fail(path, f"truncated header ({len(data)} of {header} bytes)")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(data) - header
    if actual < expected:
        raise _fail(path, f"truncated: the header says {_shape_text(shape)} "
                          f"({expected} bytes) but only {actual} bytes follow")
    if actual > expected:
        raise _fail(path, f"counts do not match the data: the header says "
                          f"{_shape_text(shape)} ({expected} bytes) but {actual} bytes follow")
    return np.frombuffer(data, np.uint8, count=expected, offset=header).reshape(shape)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def read_images(path: str | os.PathLike) -> np.ndarray:
    """uint8 (N, rows, cols) from an IDX image file (magic 0x00000803), gz or raw."""
    return parse_idx(read_bytes(path), path, ndim=3)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """uint8 (N,) from an IDX label file (magic 0x00000801), gz or raw."""
    return parse_idx(read_bytes(path), path, ndim=1)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 array as IDX (gzipped when `compress`, default: name ends in .gz).

    Used by the tests and handy for turning any uint8 image stack into an MNIST-style file.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.tobytes()
    if compress is None:
        compress = str(path).endswith(".gz")
    Path(path).write_bytes(gzip.compress(data) if compress else data)
