"""Inpainting masks: which pixels are known, from a spec (box:X,Y,W,H, random:F) or a mask
picture, and how a mask is shown. Masks are boolean (N, 1, H, W), True = KNOWN (kept)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import GankitError

MASK_HELP = "use box:X,Y,W,H, random:F (0 < F < 1) or a mask image (white = fill, black = keep)"


def parse_mask(spec: str, image_shape: tuple[int, int, int], n: int, seed: int = 0) -> torch.Tensor:
    """A mask spec -> bool (n, 1, H, W), True where the pixel is KNOWN (kept).

    box:X,Y,W,H  the W x H rectangle with top-left column X, row Y (0-based) is filled;
    random:F     each pixel is missing with probability F, a different pattern per image
                 (seeded by `seed`);
    a file path  an image of exactly H x W: white (>= 128) = fill, black = keep.
    """
    _, h, w = image_shape
    if spec.startswith("box:"):
        missing = _box(spec, h, w).expand(n, 1, h, w)
    elif spec.startswith("random:"):
        fraction = _fraction(spec)
        gen = torch.Generator().manual_seed(seed)
        missing = torch.rand(n, 1, h, w, generator=gen) < fraction
    elif Path(spec).is_file():
        missing = _mask_file(spec, h, w).expand(n, 1, h, w)
    else:
        raise GankitError(f"unknown mask {spec!r} (not a spec, and no such file): {MASK_HELP}")
    known = ~missing
    _check_coverage(known, spec)
    return known.contiguous()


def _numbers(spec: str, kind, count: int, form: str) -> list:
    parts = spec.split(":", 1)[1].split(",")
    try:
        if len(parts) != count:
            raise ValueError
        return [kind(p) for p in parts]
    except ValueError:
        raise GankitError(f"malformed mask {spec!r}: write {form}") from None


def _box(spec: str, h: int, w: int) -> torch.Tensor:
    x, y, bw, bh = _numbers(spec, int, 4, "box:X,Y,W,H with four integers, e.g. box:7,7,14,14")
    if bw <= 0 or bh <= 0:
        raise GankitError(f"mask {spec} is empty (W and H must be positive): e.g. box:7,7,14,14")
    if x < 0 or y < 0 or x + bw > w or y + bh > h:
        raise GankitError(f"mask {spec} reaches outside the {w}x{h} image: keep 0 <= X, "
                          f"X + W <= {w}, 0 <= Y, Y + H <= {h}")
    missing = torch.zeros(1, 1, h, w, dtype=torch.bool)
    missing[..., y:y + bh, x:x + bw] = True
    return missing


def _fraction(spec: str) -> float:
    (fraction,) = _numbers(spec, float, 1, "random:F with a number F, e.g. random:0.5")
    if not 0 < fraction < 1:
        raise GankitError(f"mask {spec}: F is the fraction of pixels to fill and must lie "
                          "strictly between 0 and 1, e.g. random:0.5")
    return fraction


def _mask_file(path: str, h: int, w: int) -> torch.Tensor:
    from .images import open_image
    gray = np.asarray(open_image(path, f"mask image {path}",
                                 "pass a PNG, white = fill, black = keep", mode="L"))
    if gray.shape != (h, w):
        raise GankitError(f"mask image {path} is {gray.shape[1]}x{gray.shape[0]} but the images "
                          f"are {w}x{h}: draw the mask at the images' size")
    # Binarised at mid grey (as diffusers' mask processor does), not at "nonzero": a JPEG or
    # an anti-aliased brush leaves faint non-black pixels that are not meant to be filled.
    return torch.from_numpy(gray >= 128)[None, None]


def _check_coverage(known: torch.Tensor, spec: str) -> None:
    per_image = known.flatten(1)
    for bad, problem in ((per_image.all(1), "no pixel"), (~per_image.any(1), "every pixel")):
        if bad.any():
            which = (f"image {int(bad.nonzero()[0])}" if spec.startswith("random:")
                     and len(known) > 1 else "the image")
            fix = (f"nothing to fill; {MASK_HELP}" if problem == "no pixel"
                   else "nothing to condition on: use gankit sample")
            raise GankitError(f"mask {spec} hides {problem} of {which}: {fix}")


def show_mask(images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """uint8 images with the pixels to fill painted mid grey (gray) or magenta (colour)."""
    colour = torch.tensor([128] if images.shape[1] == 1 else [255, 0, 255], dtype=torch.uint8)
    return torch.where(known, images, colour.view(1, -1, 1, 1))
