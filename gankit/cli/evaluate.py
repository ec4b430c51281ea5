"""gankit eval: FID, KID, IS, precision/recall and classes of a model's (or any) images."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GankitError
from .common import (add_checkpoint, add_device, add_json, add_no_ema, add_sampling_flags,
                     add_seed, device_for, load_model)


def add(sub) -> None:
    p = sub.add_parser("eval", help="score samples: FID, KID, IS, precision/recall, classes",
                       description="Score generated images against the dataset's training "
                       "split, on features of a classifier gankit trains on that dataset (once; "
                       "cached). Give exactly one of --checkpoint, --images, --reference.")
    p.set_defaults(run=run)
    what = p.add_mutually_exclusive_group(required=True)
    add_checkpoint(what, "(samples are drawn from its model)", required=False)
    what.add_argument("--images", metavar="DIR_OR_NPY", help="any generator's output: a folder "
                      "of images, or a .npy of uint8 (N, H, W) / (N, H, W, C) as `gankit sample "
                      "--npy` writes")
    what.add_argument("--reference", action="store_true", help="the real-vs-real floor: the "
                      "held-out split scored against the training split")
    p.add_argument("--data", help="dataset to compare with (default: the checkpoint's, else "
                   "mnist)")
    p.add_argument("--data-dir", help="where dataset files are found (as for train)")
    p.add_argument("--offline", action="store_true", help="never touch the network")
    p.add_argument("--n", type=int, help="samples to draw from a checkpoint (default: the size "
                   "of the held-out split, so the numbers compare with --reference)")
    p.add_argument("--features", choices=["classifier", "inception"], default="classifier",
                   help="feature extractor (default: gankit's classifier; inception needs "
                   "torch-fidelity and its weights)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="sample a checkpoint with the truncation trick, as `gankit sample "
                   "--truncation` (default: 1, none)")
    p.add_argument("--reject", type=float, metavar="P", help="sample a checkpoint with "
                   "discriminator rejection sampling at percentile P, as `gankit sample "
                   "--reject --reject-percentile P`")
    add_seed(p, "sampling and subsets", default=0)
    add_device(p)
    add_no_ema(p, "score the last weights")
    add_sampling_flags(p)
    add_json(p)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from ..config import DataConfig
    from ..evaluate import finite, format_table, prepare, read_images, score, score_model
    from ..files import load_npy, npy_image_shape
    from ..models.base import check_truncation
    from ..rejection import check_percentile

    if args.n is not None and args.n < 2:
        raise GankitError(f"--n must be at least 2, got {args.n}")
    check_truncation(args.truncation)
    if (args.truncation != 1 or args.reject is not None) and not args.checkpoint:
        raise GankitError("--truncation and --reject apply to a checkpoint's samples: pass "
                          "--checkpoint")
    if args.reject is not None:
        check_percentile(args.reject)
    shape = None
    if args.images and not Path(args.images).is_dir():
        # refuse a bad file, or images of the wrong size, before a first run trains the classifier
        shape = npy_image_shape(load_npy(args.images))
    device = device_for(args)
    model = load_model(args, device) if args.checkpoint else None
    data_cfg = model.run_config.data if model is not None else DataConfig()
    if args.data:
        data_cfg = DataConfig(data=args.data)
    data_cfg = dataclasses.replace(data_cfg, offline=args.offline or data_cfg.offline,
                                   data_dir=args.data_dir or data_cfg.data_dir)
    ref = prepare(data_cfg, args.features, device, progress=not args.json, seed=args.seed,
                  images_shape=shape)
    if model is not None:
        result = score_model(model, ref, args.n, args.seed, progress=not args.json,
                             truncation=args.truncation, reject=args.reject)
        title = f"checkpoint {args.checkpoint} ({model.run_config.model})"
        if args.truncation != 1:   # eval.json holds the model's own scores
            title += f", truncation {args.truncation:g}"
        if args.reject is not None:
            title += f", rejection sampling at percentile {args.reject:g}"
        if args.truncation == 1 and args.reject is None:
            keep(args, result)
    else:
        if args.reference:
            images, title = ref.held_out.images, f"reference floor: {ref.description}"
        else:
            images, title = read_images(args.images, ref), f"images {args.images}"
        result = score(ref, images, seed=args.seed)
    print(json.dumps(finite({"what": title, **result})) if args.json else format_table(result, title))
    return 0


def keep(args: argparse.Namespace, result: dict) -> None:
    """The result, kept in the checkpoint's run folder for the page (a read-only run folder
    costs the user nothing but this line)."""
    import sys

    from ..evaluate import save_result
    try:
        path = save_result(args.checkpoint, result, features=args.features, seed=args.seed,
                           ema=not args.no_ema)
    except GankitError as e:
        print(f"gankit: the result is not kept in the run: {e}", file=sys.stderr)
        return
    if path is not None and not args.json:
        print(f"kept in {path}", file=sys.stderr)
