"""gankit inpaint: fill the pixels a mask hides, keeping every other pixel exactly."""

from __future__ import annotations

import argparse

from .common import (add_checkpoint, add_device, add_label, add_no_ema, add_seed,
                     check_not_input, check_output, load_model)


def add(sub) -> None:
    from ..inpaint import BLENDS

    p = sub.add_parser("inpaint", help="fill the masked pixels of images with a trained model",
                       description="Fill the pixels a mask hides, keeping every other pixel "
                       "exactly. A model searches the latent code whose image fits the known "
                       "pixels and looks real (to a GAN's D), then Poisson-blends it in (Yeh "
                       "et al. 2017); autoencoders and VAEs reconstruct with the known pixels "
                       "clamped (Rezende et al. 2014). One --image writes the filled image to "
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
                   "latent code (default 100) or clamped iterations (autoencoders, default 20)")
    p.add_argument("--restarts", type=int, metavar="R", help="latent search: random "
                   "starting codes, the best fit per image goes on (default: 4)")
    p.add_argument("--blend", choices=BLENDS, default="poisson",
                   help="latent search: poisson (match the fill's gradients, known pixels as "
                   "the boundary; default) or copy (paste the generated pixels)")
    add_seed(p, "the search and random: masks", default=0)
    add_device(p)
    add_no_ema(p)


def run(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from ..api import run_spec
    from ..training.checkpoint import read_meta
    from ..files import npy_array, save_npy
    from ..images import save_image
    from ..inpaint import check_search, inpaint, parse_mask, read_inputs, side_by_side
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
