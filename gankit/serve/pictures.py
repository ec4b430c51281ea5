"""Pictures between the page and the models: data URLs in, uint8 tensors, PNG data URLs out."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from ..files import npy_array


def png_url(picture: Image.Image) -> str:
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def to_picture(image: torch.Tensor) -> Image.Image:
    """One uint8 image (C, H, W) at its own size."""
    return Image.fromarray(npy_array(image[None].cpu())[0])


def to_model(picture: Image.Image, shape: tuple[int, int, int]) -> torch.Tensor:
    """A picture as uint8 (C, H, W) of the model's shape: gray or RGB as the model is, and,
    when its size differs, the centre square cropped and resized (Lanczos). Transparent
    pixels count as black, as a drawn digit's background is."""
    c, h, w = shape
    if picture.mode in ("RGBA", "LA", "P"):
        rgba = picture.convert("RGBA")
        back = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        picture = Image.alpha_composite(back, rgba)
    picture = picture.convert("L" if c == 1 else "RGB")
    if picture.size != (w, h):
        side = min(picture.size)
        left, top = (picture.width - side) // 2, (picture.height - side) // 2
        picture = picture.crop((left, top, left + side, top + side)).resize((w, h), Image.LANCZOS)
    x = torch.from_numpy(np.asarray(picture).copy())
    return x[None] if c == 1 else x.permute(2, 0, 1)


def as_digit(picture: Image.Image, shape: tuple[int, int, int]) -> torch.Tensor:
    """A drawing prepared as MNIST's digits were (LeCun et al.: each digit size-normalised
    into a 20x20 box, keeping its aspect ratio, then placed in the 28x28 field with its
    centre of mass at the centre): light strokes on a dark ground, uint8 (C, H, W)."""
    c, h, w = shape
    gray = to_model(picture, (1, picture.height, picture.width))[0].numpy()
    ys, xs = np.nonzero(gray > 0)
    if not len(ys):
        return torch.zeros(shape, dtype=torch.uint8)
    crop = gray[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    box = max(1, round(min(h, w) * 20 / 28))
    scale = box / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop).resize(size, Image.LANCZOS), dtype=np.float64)
    total = small.sum()
    cy, cx = ((np.indices(small.shape) * small).reshape(2, -1).sum(1) / total
              if total > 0 else (small.shape[0] / 2, small.shape[1] / 2))
    top = int(np.clip(round(h / 2 - cy), 0, h - small.shape[0]))
    left = int(np.clip(round(w / 2 - cx), 0, w - small.shape[1]))
    field = np.zeros((h, w), dtype=np.float64)
    field[top:top + small.shape[0], left:left + small.shape[1]] = small
    x = torch.from_numpy(np.clip(field, 0, 255).round().astype(np.uint8))
    return x[None].expand(c, h, w).contiguous()
