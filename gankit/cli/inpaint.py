"""gankit inpaint: fill the pixels a mask hides, keeping every other pixel exactly."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (add_checkpoint, add_device, add_label, add_no_ema, add_sampling_flags,
                     add_seed, check_not_input, check_output, load_model)

if TYPE_CHECKING:
    import torch


def add(sub) -> None:
    from ..inpaint import BLENDS

    p = sub.add_parser("inpaint", help="fill the masked pixels of images with a trained model",
                       description="Fill the pixels a mask hides, keeping every other pixel "
                       "exactly. A model searches the latent code whose image fits the known "
                       "pixels and looks real (to a GAN's D), then Poisson-blends it in (Yeh "
                       "et al. 2017); autoencoders and VAEs reconstruct with the known pixels "
                       "clamped (Rezende et al. 2014); flows sample with the known pixels "
                       "put back at every step (RePaint, Lugmayr et al. 2022). One --image writes the filled image to "
                       "--out; --images writes a grid of (input with the hole in grey, fill) "
                       "pairs.")
    p.set_defaults(run=run)
    add_checkpoint(p, "(a GAN, an autoencoder, a VAE, ...)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="FILE", help="one picture at the model's size (not "
                     "resized; gray <-> RGB converted by Pillow)")
    src.add_argument("--images", metavar="DIR_OR_NPY", help="a folder of pictures at the "
                     "model's size, or a .npy of uint8 (N, H, W) / (N, H, W, C) as `gankit "
                     "sample --npy` writes")
    p.add_argument("--mask", required=True, metavar="SPEC", help="what to fill: box:X,Y,W,H "
                   "(left column, top row, 0-based; width, height), random:F (each pixel with "
                   "probability F, another pattern per image), or a mask picture of the "
                   "images' size (white = fill, black = keep)")
    p.add_argument("--out", default="inpainted.png", metavar="FILE.png",
                   help="picture to write (default: inpainted.png)")
    p.add_argument("--npy", metavar="FILE.npy", help="also write the filled images as uint8 "
                   "(N, H, W) for one channel, (N, H, W, C) otherwise")
    add_label(p, "the class of every image (default: try every class, keep the best fit per "
              "image)")
    p.add_argument("--steps", type=int, metavar="N", help="search steps: Adam steps on the "
                   "latent code (default 100) or clamped iterations (autoencoders, default 20); a flow's "
                   "work is its --sample-steps")
    p.add_argument("--restarts", type=int, metavar="R", help="latent search: random "
                   "starting codes, the best fit per image goes on (default: 4); a flow: "
                   "fills drawn, the best fit kept (default: 1)")
    p.add_argument("--blend", choices=BLENDS, default="poisson",
                   help="latent search: poisson (match the fill's gradients, known pixels as "
                   "the boundary; default) or copy (paste the generated pixels)")
    add_seed(p, "the search and random: masks", default=0)
    add_device(p)
    add_no_ema(p)
    add_sampling_flags(p)


def run(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from ..api import run_spec
    from ..training.checkpoint import read_meta
    from ..files import npy_array, save_npy
    from ..images import save_image
    from ..inpaint import check_search, inpaint, parse_mask
    from ..models import check_label, get_model_class

    check_search(args.steps, args.restarts)
    source = args.image or args.images
    check_not_input(source, ("--out", args.out), ("--npy", args.npy))
    check_output(args.out, "--out", image=True)
    if args.npy:
        check_output(args.npy, "--npy")
    # Everything is checked against the checkpoint's metadata before any weights load.
    meta = read_meta(args.checkpoint)
    cfg, shape, num_classes = run_spec(meta, args.checkpoint)
    label = check_label(get_model_class(cfg.model), args.label, num_classes,
                        meta.get("class_names") or [])
    images = read_inputs(source, shape, "--image" if args.image else "--images")
    known = parse_mask(args.mask, shape, len(images), seed=args.seed)
    model = load_model(args)
    labels = None if label is None else torch.full((len(images),), label)
    options = {k: v for k, v in (("steps", args.steps), ("restarts", args.restarts)) if v}
    filled = inpaint(model, images, known, labels, blend=args.blend, seed=args.seed,
                     progress=True, **options)
    if args.image:
        save_image(Image.fromarray(npy_array(filled)[0]), args.out)
    else:
        save_image(side_by_side(images, known, filled), args.out)
    if args.npy:
        save_npy(args.npy, filled)
    holes = int((~known).sum())
    print(f"filled {holes:,} pixels in {len(images)} image(s): wrote {args.out}"
          + (f" and {args.npy}" if args.npy else ""))
    return 0


# --- files in and pictures out ------------------------------------------------------------

def read_inputs(path: str, image_shape: tuple[int, int, int], flag: str) -> torch.Tensor:
    """uint8 (N, C, H, W) from one image file (--image), or from a folder of images or a
    .npy as `gankit sample --npy` writes (--images). Never resized: a mask is given in
    pixel coordinates, so an image of another size is refused rather than rescaled."""
    import torch

    from ..data.folder import EXTENSIONS, image_files
    from ..errors import GankitError
    from ..files import npy_images
    source = Path(path)
    if flag == "--image":
        return _read_picture(source, image_shape, flag)[None]
    if source.is_dir():
        return torch.stack([_read_picture(f, image_shape, flag) for f in image_files(source)])
    if source.suffix.lower() in EXTENSIONS:
        raise GankitError(f"--images {path} is one picture: pass it with --image, or give "
                          "--images a folder or a .npy")
    images = npy_images(path)
    if tuple(images.shape[1:]) != tuple(image_shape) or not len(images):
        raise GankitError(f"--images {path} holds {len(images)} images of shape (C, H, W) "
                          f"{tuple(images.shape[1:])}, but this model makes {tuple(image_shape)}: "
                          "pass images of the model's size")
    return images


def _read_picture(path: Path, image_shape, flag: str) -> torch.Tensor:
    """One image file as uint8 (C, H, W); gray <-> RGB by Pillow's mode conversion (RGB to
    gray is ITU-R 601 luma; an alpha channel is dropped)."""
    import numpy as np
    import torch

    from ..errors import GankitError
    from ..images import open_image
    c, h, w = image_shape
    arr = np.asarray(open_image(path, f"{flag} {path}", "pass a PNG or JPEG image",
                                mode="L" if c == 1 else "RGB"))
    if arr.shape[:2] != (h, w):
        raise GankitError(f"{flag} {path} is {arr.shape[1]}x{arr.shape[0]} but this model makes "
                          f"{w}x{h} images: crop or resize it first (gankit does not rescale, "
                          "since the mask is in pixel coordinates)")
    x = torch.from_numpy(arr.copy())
    return x[None] if c == 1 else x.permute(2, 0, 1)


def side_by_side(images: torch.Tensor, known: torch.Tensor, filled: torch.Tensor,
                 pairs_per_row: int = 8):
    """A grid picture: for every image, the input with its hole shown, then the fill."""
    import torch

    from ..images import grid
    from ..masks import show_mask
    pairs = torch.stack([show_mask(images, known), filled], dim=1).flatten(0, 1)
    return grid(pairs, nrow=2 * min(len(images), pairs_per_row))
