"""A folder of images as a dataset (`--data path/`).

Images are found recursively by extension. When the folder's subfolders hold images, each
subfolder is a class (names sorted); otherwise the set is unlabelled. Every image is
resized so its short side is `image_size` and centre-cropped to a square, gray or RGB.
A corrupt file is skipped with one summary warning: one bad file must not cost a long run.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import GankitError
from ..images import UnreadableImage, open_image
from .image_data import ImageData

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_SIZE = 28
PROGRESS_MIN_FILES = 500
SHOW_BAD = 3   # how many unreadable files the warning names


def load_folder(path: str | os.PathLike, image_size: int | None = None,
                channels: int | None = None) -> ImageData:
    """Every image under `path` as uint8 (N, C, size, size); C is `channels`, or 1 when
    every image is gray, else 3. Labels are the subfolder indices, or None."""
    root = Path(path).expanduser()
    if not root.exists():
        raise GankitError(f"folder {root} does not exist: pass a folder of images or a "
                          f"dataset name")
    if not root.is_dir():
        raise GankitError(f"{root} is a file, not a folder: pass the folder that holds "
                          f"the images")
    files, labels, classes = _scan(root)
    size = image_size or DEFAULT_SIZE
    arrays, bad = _decode_all(files, size)
    good = [i for i, a in enumerate(arrays) if a is not None]
    if not good:   # the error says it all: no warning before it
        raise GankitError(f"none of the {len(files)} image files in {root} could be read "
                          f"(e.g. {bad[0][0].name}: {bad[0][1]}); check the files")
    if bad:
        _warn_bad(root, bad, len(files))
    images = _stack([arrays[i] for i in good], channels)
    label_tensor = None if labels is None else torch.tensor([labels[i] for i in good])
    return ImageData(images, label_tensor, classes, f"folder:{root}",
                     [files[i].relative_to(root).as_posix() for i in good])


def image_files(root: Path) -> list[Path]:
    """Every image file under `root`, subfolders included, hidden ones left out, sorted."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS
                   and p.is_file() and not _hidden(p.relative_to(root)))
    if not files:
        raise GankitError(f"no images found in {root} (looked for "
                          f"{', '.join(sorted(EXTENSIONS))}, in subfolders too)")
    return files


def _scan(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """Image files (sorted) and, when subfolders hold images, their class indices."""
    files = image_files(root)
    top = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else None
           for p in files]
    classes = sorted({t for t in top if t is not None})
    if len(classes) < 2:   # one subfolder (e.g. celeba/img_align_celeba/) is no labelling
        return files, None, []
    loose = [p for p, t in zip(files, top) if t is None]
    if loose:
        warnings.warn(f"{len(loose)} image(s) directly in {root} belong to no class subfolder "
                      f"and are left out (e.g. {loose[0].name})", stacklevel=3)
    index = {c: i for i, c in enumerate(classes)}
    kept = [(p, index[t]) for p, t in zip(files, top) if t is not None]
    return [p for p, _ in kept], [i for _, i in kept], classes


def _hidden(rel: Path) -> bool:
    # .git, .ipynb_checkpoints, macOS ._ files: never training data
    return any(part.startswith(".") for part in rel.parts)


def _decode_all(files: list[Path], size: int) -> tuple[list[np.ndarray | None], list]:
    """Decode in threads (Pillow releases the GIL while decoding and resizing)."""
    from tqdm import tqdm
    results: list[np.ndarray | None] = []
    bad = []
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool, \
            tqdm(total=len(files), desc="reading images", unit="img", leave=False,
                 disable=True if len(files) < PROGRESS_MIN_FILES else None) as bar:
        for path, (array, error) in zip(files, pool.map(lambda p: _decode(p, size), files)):
            results.append(array)
            if error:
                bad.append((path, error))
            bar.update()
    return results, bad


def _decode(path: Path, size: int) -> tuple[np.ndarray | None, str | None]:
    """(H, W) gray or (H, W, 3) RGB uint8 at size x size, or (None, why it failed): a bad
    file is reported, not raised. A JPEG decodes at a reduced scale (draft), a GIF, WebP or
    TIFF as its first frame, a photo turned upright by its EXIF orientation."""
    try:
        img = open_image(path, draft=size, upright=True)
    except UnreadableImage as e:
        return None, e.reason
    return _square(_to_8bit(img), size), None


def _to_8bit(img: Image.Image) -> Image.Image:
    """Mode 'L' or 'RGB', whatever the file held."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_gray_to_8bit(img), "L")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        return _flatten_alpha(img)
    if mode == "1":
        return img.convert("L")
    return img.convert("RGB")   # P, CMYK, YCbCr, LAB, HSV


def _gray_to_8bit(img: Image.Image) -> np.ndarray:
    # Pillow's convert("L") clips 16-bit values at 255 (a white image), so scale instead.
    a = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and a.max(initial=0) > 255):
        a = a / 257.0                    # 0..65535 -> 0..255
    elif img.mode == "F" and a.max(initial=0) <= 1.0:
        a = a * 255.0                    # float images are usually 0..1
    return np.rint(np.clip(a, 0, 255)).astype(np.uint8)


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Composite over white: transparent pixels hold arbitrary colour (often black), and
    sprites and icons are drawn to be seen on a light page."""
    gray = img.mode in ("LA", "La")
    a = np.asarray(img.convert("LA" if gray else "RGBA")).astype(np.float32)
    alpha = a[..., -1:] / 255.0
    out = np.rint(a[..., :-1] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return Image.fromarray(out[..., 0], "L") if gray else Image.fromarray(out, "RGB")


def _square(img: Image.Image, size: int) -> np.ndarray:
    """Short side to `size`, centre-cropped: resize the centre square in one step."""
    w, h = img.size
    s = min(w, h)
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    return np.asarray(img.resize((size, size), Image.Resampling.LANCZOS, box=box,
                                 reducing_gap=3.0))


def _stack(arrays: list[np.ndarray], channels: int | None) -> torch.Tensor:
    """uint8 (N, C, H, W); C auto: 1 when every image is gray (RGB files whose three
    channels are equal count as gray), else 3."""
    if channels is None:
        channels = 1 if all(_is_gray(a) for a in arrays) else 3
    if channels == 1:
        out = np.stack([a if a.ndim == 2 else _luma(a) for a in arrays])[:, None]
    else:
        out = np.stack([np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a for a in arrays])
        out = out.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(out))


def _is_gray(a: np.ndarray) -> bool:
    return a.ndim == 2 or bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


def _luma(rgb: np.ndarray) -> np.ndarray:
    # ITU-R 601-2 weights, as Pillow's convert("L")
    return np.rint(rgb @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)


def _warn_bad(root: Path, bad: list[tuple[Path, str]], total: int) -> None:
    named = ", ".join(f"{p.relative_to(root)} ({why})" for p, why in bad[:SHOW_BAD])
    more = f" and {len(bad) - SHOW_BAD} more" if len(bad) > SHOW_BAD else ""
    warnings.warn(f"skipped {len(bad)} of {total} image files in {root} that could not be "
                  f"read: {named}{more}", stacklevel=3)
