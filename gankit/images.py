"""Pictures: reading image files, sample grids, animated GIFs and the loss plot, with Pillow
alone."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .data.image_data import to_uint8
from .errors import GankitError, first_line
from .files import atomic_write

MIN_CELL = 56   # upscale small images (28x28) so a grid is comfortable to look at


class UnreadableImage(GankitError):
    """An image Pillow could not open or decode: 'cannot read WHAT (REASON): FIX'. `reason`
    is the short why, without Pillow's copy of the path; `too_large` marks Pillow's limit
    against decompression bombs, `damaged` a file whose header read but whose pixels did not."""

    def __init__(self, what: str, reason: str, fix: str, *, too_large: bool = False,
                 damaged: bool = False):
        super().__init__(f"cannot read {what} ({reason}): {fix}")
        self.reason, self.too_large, self.damaged = reason, too_large, damaged


def open_image(source: str | Path | bytes, what: str = "the image",
               fix: str = "pass a PNG or JPEG image", *, mode: str | None = None,
               check: Callable[[Image.Image], None] | None = None, draft: int | None = None,
               upright: bool = False) -> Image.Image:
    """A picture from a file (or its bytes), decoded, as one UnreadableImage whatever of
    Pillow's many exception types a bad file raises. In order: `check` sees the picture with
    only its header read (to refuse it before a pixel is decoded; a GankitError it raises
    passes through), `draft` lets a JPEG decode at about that size (much faster), the pixels
    are decoded (a GIF's, WebP's or TIFF's first frame), `upright` turns it by its EXIF
    orientation (phone photos are stored sideways), `mode` converts it ("L", "RGB", ...)."""
    damaged = False
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            if check is not None:
                check(img)
            if draft:
                img.draft(None, (draft, draft))
            damaged = True
            img.load()
            if upright:
                img = ImageOps.exif_transpose(img)
            return img.convert(mode) if mode else img
    except GankitError:
        raise
    except Exception as e:   # Pillow raises many types for bad files
        raise UnreadableImage(what, _why_unreadable(source, e), fix, damaged=damaged,
                              too_large=isinstance(e, Image.DecompressionBombError)) from None


def _why_unreadable(source: str | Path | bytes, error: Exception) -> str:
    """A short reason, without Pillow's copy of the (long) path."""
    if isinstance(error, Image.DecompressionBombError):
        return (f"too large, over Pillow's limit of {2 * Image.MAX_IMAGE_PIXELS:,} pixels "
                "against decompression bombs")
    if isinstance(error, UnidentifiedImageError):
        try:
            size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
            empty = size == 0
        except OSError:
            empty = False
        return "empty file" if empty else "not an image format Pillow can read"
    return first_line(error, 80)


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """Tile (N, C, H, W) images (uint8, or float in [-1, 1]) into one picture, row-major."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    images = images.cpu()
    n, c, h, w = images.shape
    ncol = nrow or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncol)
    scale = max(1, MIN_CELL // max(h, w))
    canvas = np.zeros((nrows * (h + pad) + pad, ncol * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        canvas[y:y + h, x:x + w] = images[i].permute(1, 2, 0).numpy()
    picture = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return picture


def image_format(path: str | Path) -> str:
    """Pillow's format name for `path`'s extension (PNG when it has none); GankitError for
    an extension Pillow cannot write, so a command can refuse it before any work."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise GankitError(f"cannot write {path}: unknown image type {suffix!r}; "
                          "use .png (or .jpg, .gif, .bmp, .tif, .webp)")
    return fmt


def save_image(picture: Image.Image, path: str | Path) -> None:
    """Write via a temporary file so a reader never sees half a PNG."""
    fmt = image_format(path)
    with atomic_write(path) as f:
        picture.save(f, format=fmt)


def save_gif(frames: torch.Tensor | Sequence[Image.Image], path: str | Path,
             duration_ms: int = 80, loop: int | None = 0) -> None:
    """Write an animated GIF (see gif_bytes), atomically like save_image."""
    data = gif_bytes(frames, duration_ms, loop)
    with atomic_write(path) as f:
        f.write(data)


def gif_bytes(frames: torch.Tensor | Sequence[Image.Image], duration_ms: int = 80,
              loop: int | None = 0) -> bytes:
    """An animated GIF's bytes. frames: (N, C, H, W) uint8 or float in [-1, 1], upscaled
    like `grid` does for small images, or ready-made Pillow images. loop=0 repeats
    forever, None plays once. Pillow merges identical consecutive frames into one longer
    frame."""
    import io
    if isinstance(frames, torch.Tensor):
        pictures = [grid(frames[i:i + 1], nrow=1, pad=0) for i in range(len(frames))]
    else:
        pictures = list(frames)
    if not pictures:
        raise ValueError("a GIF needs at least one frame")
    extra = {} if loop is None else {"loop": loop}
    out = io.BytesIO()
    pictures[0].save(out, format="GIF", save_all=True, append_images=pictures[1:],
                     duration=duration_ms, **extra)
    return out.getvalue()


def plot_curves(steps: Sequence[int], series: dict[str, Sequence[float]],
                width: int = 720, panel_height: int = 180) -> Image.Image:
    """One panel per metric, stacked; each with its own y range, shared step axis."""
    font = ImageFont.load_default()
    margin_l, margin_r, margin_t, margin_b = 70, 20, 22, 26
    img = Image.new("RGB", (width, panel_height * len(series) + margin_b), "white")
    draw = ImageDraw.Draw(img)
    x0, x1 = margin_l, width - margin_r
    s_min, s_max = (min(steps), max(steps)) if steps else (0, 1)
    colors = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b"]
    for k, (name, values) in enumerate(series.items()):
        top = k * panel_height + margin_t
        bottom = (k + 1) * panel_height - 4
        finite = [v for v in values if math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        if not hi - lo > 1e-9 * max(1.0, abs(hi), abs(lo)):   # flat (or huge and flat)
            pad = max(0.5, 0.05 * max(abs(hi), abs(lo)))
            lo, hi = lo - pad, hi + pad
        draw.rectangle([x0, top, x1, bottom], outline="#888888")
        draw.text((x0, top - 14), name, fill="black", font=font)
        draw.text((4, top), f"{hi:.3g}", fill="black", font=font)
        draw.text((4, bottom - 12), f"{lo:.3g}", fill="black", font=font)

        def xy(s, v):
            fx = (s - s_min) / max(1, s_max - s_min)
            return x0 + fx * (x1 - x0), bottom - (v - lo) / (hi - lo) * (bottom - top)

        pts = [xy(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
        if len(pts) > 1:
            draw.line(pts, fill=colors[k % len(colors)], width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2],
                         fill=colors[k % len(colors)])
    base = img.height - margin_b + 6
    draw.text((x0, base), f"step {s_min}", fill="black", font=font)
    draw.text((x1 - 70, base), f"step {s_max}", fill="black", font=font)
    return img


def load_font(size: int):
    """A scalable font where Pillow has one (>= 10.1 with FreeType), else its bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def confusion_image(matrix, class_names: Sequence[str], title: str | None = None,
                    cell: int = 44) -> Image.Image:
    """A confusion matrix (K, K) as a heatmap: row = true class, column = predicted class,
    the count written in every cell. A cell's shade is its share of its row, so the
    diagonal reads as each class's recall whether the class is rare or common."""
    m = np.asarray(matrix, dtype=np.int64)
    k = len(m)
    names = [str(n) for n in class_names] if len(class_names) == k else [str(i) for i in range(k)]
    font, small = load_font(14), load_font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    fit = [fit_text(probe, n, small, cell - 4) for n in names]          # column heads
    left = 16 + max(probe.textlength(n[:24], font=small) for n in names + ["true"])
    top = 72 if title else 40
    width = max(left + k * cell + 12, 16 + probe.textlength(title or "", font=font), 220)
    img = Image.new("RGB", (int(width), top + k * cell + 30), "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((8, 6), title, fill="black", font=font)
    draw.text((left, top - 38), "predicted", fill="black", font=font)
    draw.text((8, top - 20), "true", fill="black", font=small)
    rows = np.maximum(m.sum(1, keepdims=True), 1)
    for i in range(k):
        draw.text((8, top + i * cell + cell // 2 - 7), names[i][:24], fill="black", font=small)
        w = probe.textlength(fit[i], font=small)
        draw.text((left + i * cell + (cell - w) / 2, top - 18), fit[i], fill="black", font=small)
        for j in range(k):
            share = m[i, j] / rows[i, 0]
            x, y = left + j * cell, top + i * cell
            shade = tuple(int(255 + share * (c - 255)) for c in (8, 48, 107))   # white -> navy
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=shade, outline="#cccccc")
            text = str(m[i, j])
            w = probe.textlength(text, font=small)
            draw.text((x + (cell - w) / 2, y + cell / 2 - 7), text,
                      fill="white" if share > 0.5 else "black", font=small)
    total, right = int(m.sum()), int(np.trace(m))
    footer = f"{right:,} of {total:,} correct ({100 * right / max(total, 1):.1f}%)"
    draw.text((8, img.height - 22), footer, fill="black", font=small)
    return img


def fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """`text`, cut (with a trailing '.') until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + ".", font=font) > width:
        text = text[:-1]
    return text + "."
