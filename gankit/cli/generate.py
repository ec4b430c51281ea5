"""gankit sample and gankit interpolate: images from a checkpoint's model alone."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GankitError
from .common import (add_checkpoint, add_device, add_label, add_no_ema, add_sampling_flags,
                     add_seed, check_output, load_model)


def add(sub) -> None:
    _add_sample(sub)
    _add_interpolate(sub)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="generate images from a checkpoint",
                       description="Rebuild a model from a checkpoint alone and write a grid "
                       "of samples (and optionally the raw uint8 array).")
    p.set_defaults(run=sample)
    add_checkpoint(p)
    p.add_argument("--n", type=int, help="how many images (default: 64; a conditional model "
                   "without --label: 10 per class, one class per row)")
    add_label(p, "generate this class only")
    add_no_ema(p)
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="the truncation trick: noise scaled by PSI in (0, 1] towards the "
                   "prior's mean gives more typical, less varied images (default: 1, none; "
                   "docs/measurements/quality.md#precision-at-sampling-time)")
    p.add_argument("--reject", action="store_true", help="discriminator rejection sampling "
                   "(Azadi et al. 2019): draw more samples and keep those the GAN's D judges "
                   "most real; needs a D trained with --loss bce (dcgan's default)")
    p.add_argument("--reject-percentile", type=float, default=80.0, metavar="P",
                   help="with --reject: higher keeps fewer, more typical samples (default: 80)")
    p.add_argument("--out", default="samples.png", help="grid PNG to write (default: samples.png)")
    p.add_argument("--npy", metavar="FILE.npy", help="also write the images as uint8 "
                   "(N, H, W) for one channel, (N, H, W, C) otherwise")
    add_seed(p, "the noise")
    p.add_argument("--nrow", type=int, help="images per grid row (default: square)")
    add_device(p)
    add_sampling_flags(p)


def sample(args: argparse.Namespace) -> int:
    import torch

    from ..data import to_uint8
    from ..files import save_npy
    from ..images import grid, save_image
    from ..models import check_label
    from ..models.base import check_truncation
    from ..rejection import check_percentile

    for flag, value in (("--n", args.n), ("--nrow", args.nrow)):
        if value is not None and value <= 0:
            raise GankitError(f"{flag} must be positive, got {value}")
    check_truncation(args.truncation)
    check_percentile(args.reject_percentile)
    check_output(args.out, "--out", image=True)
    if args.npy:
        check_output(args.npy, "--npy")
    model = load_model(args)
    label = check_label(model, args.label)
    gen = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    # A conditional model without --label: one row per class, 10 a row unless --n says.
    z, labels, nrow = model.grid_inputs(args.n or 64, gen, label,
                                        per_class=None if args.n else 10)
    if args.reject:
        images = to_uint8(_rejected(model, args, gen, z, labels, nrow)).cpu()
    else:
        images = to_uint8(model.sample(latents=z, labels=labels, truncation=args.truncation)).cpu()
    save_image(grid(images, nrow=args.nrow or nrow), args.out)
    if args.npy:
        save_npy(args.npy, images)
    print(f"wrote {len(z)} samples to {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def _rejected(model, args, gen, z, labels, nrow):
    """As many images as the grid has, kept by discriminator rejection sampling; a
    conditional model's rows keep their classes."""
    import torch

    from ..rejection import rejection_sampler
    if labels is None:
        return rejection_sampler(model, gen, args.reject_percentile,
                                 truncation=args.truncation)(len(z))
    rows = []
    for start in range(0, len(z), nrow or len(z)):
        row = labels[start:start + (nrow or len(z))]
        sampler = rejection_sampler(model, gen, args.reject_percentile, int(row[0]),
                                    truncation=args.truncation)
        rows.append(sampler(len(row)))
    return torch.cat(rows)


def _add_interpolate(sub) -> None:
    from ..interpolate import MODES

    p = sub.add_parser("interpolate", help="animate a walk through latent space (GIF + PNG)",
                       description="Decode a closed walk through --points random latent codes "
                       "and back to the first, so the GIF loops without a jump; also write a "
                       "PNG strip with one row per leg (at most 16 evenly spaced frames a row, "
                       "each row starting at one of the codes).")
    p.set_defaults(run=interpolate)
    add_checkpoint(p)
    p.add_argument("--out", default="walk.gif", metavar="FILE.gif",
                   help="animated GIF to write (default: walk.gif)")
    strip = p.add_mutually_exclusive_group()
    strip.add_argument("--png", metavar="FILE.png",
                       help="PNG strip to write (default: the GIF's path with .png)")
    strip.add_argument("--no-png", action="store_true", help="write the GIF only")
    p.add_argument("--points", type=int, default=4, metavar="N",
                   help="random latent codes the walk passes through (default: 4)")
    p.add_argument("--frames", type=int, default=16, metavar="N",
                   help="frames from one code to the next (default: 16)")
    p.add_argument("--mode", choices=MODES, default="slerp",
                   help="slerp (default) follows great circles: Gaussian codes lie near a "
                   "sphere, so lerp's midpoints have atypically small norm (White 2016, "
                   "'Sampling Generative Networks')")
    add_seed(p, "the codes")
    add_label(p, "the class held fixed for the whole walk (default: the first)")
    p.add_argument("--duration", type=int, default=80, metavar="MS",
                   help="milliseconds per GIF frame (default: 80)")
    add_device(p)
    add_sampling_flags(p)


def interpolate(args: argparse.Namespace) -> int:
    import torch

    from ..images import grid, save_gif, save_image
    from ..interpolate import check_walk, latent_walk, strip_indices

    check_walk(args.points, args.frames)
    if args.duration <= 0:
        raise GankitError(f"--duration must be positive (milliseconds), got {args.duration}")
    if Path(args.out).suffix.lower() != ".gif":
        raise GankitError(f"--out {args.out} must end in .gif: the walk is an animated GIF")
    png = None if args.no_png else (args.png or str(Path(args.out).with_suffix(".png")))
    if png and Path(png).resolve() == Path(args.out).resolve():
        raise GankitError(f"--png {png} would overwrite the GIF: choose another --png")
    check_output(args.out, "--out")
    if png:
        check_output(png, "--png", image=True)
    model = load_model(args)
    gen = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    frames = latent_walk(model, args.points, args.frames, args.mode, gen, args.label).cpu()
    save_gif(frames, args.out, duration_ms=args.duration)
    if png:
        picks = strip_indices(args.points, args.frames)
        save_image(grid(frames[picks], nrow=len(picks) // args.points), png)
    print(f"wrote {len(frames)} frames ({args.points} points x {args.frames}) to {args.out}"
          + (f" and a strip to {png}" if png else ""))
    return 0
