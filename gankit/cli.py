"""The `gankit` command: train, sample, interpolate, eval, inpaint, classify, info.

Training flags are derived from the config dataclasses (gankit/config.py and each model's
Config), so a new config field is a new flag with its help text, and nothing here changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .config import DataConfig, TrainConfig, base_type, field_types, read_toml
from .errors import GankitError


def add_config_flags(parser: argparse.ArgumentParser, cls, title: str,
                     description: str | None = None) -> None:
    group = parser.add_argument_group(title, description)
    types = field_types(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        kw = dict(dest=f.name, default=argparse.SUPPRESS)
        if base_type(types[f.name]) is bool:
            group.add_argument(flag, action="store_true", help=help_text, **kw)
        else:
            default = "" if f.default is None else f" (default: {f.default})"
            tp = base_type(types[f.name])
            metavar = {int: "N", float: "X"}.get(tp, f.name.upper())
            choices = f.metadata.get("choices")
            if choices:
                metavar = "{" + ",".join(choices) + "}"
            group.add_argument(flag, type=tp, metavar=metavar, choices=choices,
                               help=help_text + default, **kw)


def _peek_model(argv: list[str]) -> str:
    """The model whose flags `train` should accept: --model, else the config file's, else gan."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    pre.add_argument("--config")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--out", default=TrainConfig.out)
    known, _ = pre.parse_known_args(argv)
    if known.model:
        return known.model
    from .checkpoint import last_in, read_meta
    last = last_in(known.out)
    if known.resume and last.is_file():
        return read_meta(last).get("model", "gan")
    if known.config and Path(known.config).is_file():
        model = read_toml(known.config).get("model", {})
        if isinstance(model, dict) and isinstance(model.get("name"), str):
            return model["name"]
    return "gan"


def build_parser(model: str = "gan") -> argparse.ArgumentParser:
    from .interpolate import MODES
    from .models import MODELS, get_model_class

    parser = argparse.ArgumentParser(
        prog="gankit", description="Train, sample and inspect generative image models.")
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a model; writes a run folder",
                       description="Train a model. Writes OUT/config.toml, metrics.csv, "
                       "samples/step_NNNNNN.png, loss.png and checkpoints/last.safetensors. "
                       "Ctrl-C saves a checkpoint; --resume continues from it.")
    p.add_argument("--model", default=argparse.SUPPRESS, choices=list(MODELS),
                   help="which model to train (default: gan; see `gankit info`)")
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file "
                   "with [model], [data] and [train] tables; flags override it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its "
                   "last checkpoint, with its saved config (--steps may change)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(p, DataConfig, "data")
    add_config_flags(p, TrainConfig, "training")
    model_cls = get_model_class(model)
    add_config_flags(p, model_cls.Config, f"model ({model}; pick another with --model NAME "
                     "to see its flags)", (model_cls.__doc__ or "").strip().splitlines()[0])

    p = sub.add_parser("sample", help="generate images from a checkpoint",
                       description="Rebuild a model from a checkpoint alone and write a grid "
                       "of samples (and optionally the raw uint8 array).")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a run folder or a .safetensors checkpoint")
    p.add_argument("--n", type=int, help="how many images (default: 64; a conditional model "
                   "without --label: 10 per class, one class per row)")
    p.add_argument("--label", type=int, metavar="K", help="conditional models: generate class K "
                   "(0-based, in the order `gankit info` / the run's class names give)")
    p.add_argument("--no-ema", action="store_true", help="use the last weights even when the "
                   "run kept an average (--ema)")
    p.add_argument("--out", default="samples.png", help="grid PNG to write (default: samples.png)")
    p.add_argument("--npy", metavar="FILE.npy", help="also write the images as uint8 "
                   "(N, H, W) for one channel, (N, H, W, C) otherwise")
    p.add_argument("--seed", type=int, help="seed for the noise (default: random)")
    p.add_argument("--nrow", type=int, help="images per grid row (default: square)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")

    p = sub.add_parser("interpolate", help="animate a walk through latent space (GIF + PNG)",
                       description="Decode a closed walk through --points random latent codes "
                       "and back to the first, so the GIF loops without a jump; also write a "
                       "PNG strip with one row per leg (at most 16 evenly spaced frames a row, "
                       "each row starting at one of the codes).")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a run folder or a .safetensors checkpoint")
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
    p.add_argument("--seed", type=int, help="seed for the codes (default: random)")
    p.add_argument("--label", type=int, metavar="K", help="class held fixed for the whole walk "
                   "of a conditional model (default: 0); refused for unconditional models")
    p.add_argument("--duration", type=int, default=80, metavar="MS",
                   help="milliseconds per GIF frame (default: 80)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")

    p = sub.add_parser("eval", help="score samples: FID, KID, IS, precision/recall, classes",
                       description="Score generated images against the dataset's training "
                       "split, on features of a classifier gankit trains on that dataset (once; "
                       "cached). Give exactly one of --checkpoint, --images, --reference.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", metavar="PATH", help="a run folder or .safetensors: "
                      "samples are drawn from the model")
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
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and subsets (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--no-ema", action="store_true", help="score the last weights even when the "
                   "run kept an average (--ema)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    p = sub.add_parser("classify", help="classify images with a conditional model (Bayes' rule)",
                       description="Use a conditional generative model with a likelihood (a "
                       "cvae) as a classifier: p(y|x) is proportional to p(x|y) p(y), with "
                       "log p(x|y) estimated by the importance-weighted bound (Burda et al. "
                       "2016) and p(y) the training class frequencies the checkpoint records "
                       "(else uniform). Prints one line per image (index, predicted class, its "
                       "probability); with labels, prints the accuracy and the confusion "
                       "matrix instead and draws it as a PNG.")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a run folder or a .safetensors checkpoint of a conditional model "
                   "with a likelihood (cvae)")
    p.add_argument("--images", required=True, metavar="DIR_OR_NPY", help="a .npy of uint8 "
                   "(N, H, W) / (N, H, W, C) at the model's size, or a folder of images "
                   "(resized); a folder with one subfolder per class named as the model's "
                   "classes gives the labels")
    p.add_argument("--labels", metavar="FILE.npy", help="true classes of a .npy of images: "
                   "integers (N,) in 0..K-1, in the order of the model's class names")
    p.add_argument("--samples", type=int, default=10, metavar="N", help="importance samples "
                   "per image and class: 1 is the ELBO; more tighten the bound, in "
                   "proportionally more time (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed for the samples (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--confusion", metavar="FILE.png", help="confusion-matrix picture to write "
                   "when labels are known (default: confusion.png)")
    p.add_argument("--out", metavar="FILE.csv", help="write the predictions (and every class's "
                   "probability) as CSV instead of printing them")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")

    p = sub.add_parser("inpaint", help="fill the masked pixels of images with a trained model",
                       description="Fill the pixels a mask hides, keeping every other pixel "
                       "exactly. GANs search the latent code whose image fits the known pixels "
                       "and looks real to D, then Poisson-blend it in (Yeh et al. 2017); "
                       "autoencoders and VAEs reconstruct with the known pixels clamped "
                       "(Rezende et al. 2014). One --image writes the filled image to --out; "
                       "--images writes a grid of (input with the hole in grey, fill) pairs.")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a run folder or a .safetensors checkpoint of a GAN, an autoencoder "
                   "or a VAE")
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
    p.add_argument("--label", type=int, metavar="K", help="conditional models: the class of "
                   "every image (default: try every class, keep the best fit per image)")
    p.add_argument("--steps", type=int, metavar="N", help="search steps: Adam steps on the "
                   "latent code (GANs, default 100) or clamped iterations (autoencoders, "
                   "default 20)")
    p.add_argument("--restarts", type=int, metavar="R", help="GANs: random "
                   "starting codes, the best fit per image goes on (default: 4)")
    p.add_argument("--blend", choices=["poisson", "copy"], default="poisson",
                   help="GANs: poisson (match the fill's gradients, known pixels as the "
                   "boundary; default) or copy (paste the generated pixels)")
    p.add_argument("--seed", type=int, default=0, help="seed for the search and random: masks "
                   "(default: 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--no-ema", action="store_true", help="use the last weights even when the "
                   "run kept an average (--ema)")

    sub.add_parser("info", help="list the models and datasets")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .api import make_config
    from .trainer import train

    options = {k: v for k, v in vars(args).items()
               if k not in ("command", "model", "config", "resume", "quiet")}
    cfg = make_config(getattr(args, "model", None), args.config, args.resume, **options)
    run = train(cfg, resume=args.resume, progress=not args.quiet)
    if run.rank != 0:   # under torchrun, rank 0 reports for the job
        return 128 + run.interrupted if run.interrupted else 0
    if run.interrupted:
        again = "gankit train" if run.world_size == 1 else "torchrun ... -m gankit train"
        print(f"stopped at step {run.step}: checkpoint saved in {run.out}/checkpoints; "
              f"continue with: {again} --resume --out {run.out}", file=sys.stderr)
        return 128 + run.interrupted
    last = run.metrics[-1] if run.metrics else {}
    summary = "  ".join(f"{k} {v:.3f}" for k, v in last.items() if k not in ("step", "seconds"))
    print(f"done: {run.step} steps in {run.out}  {summary}")
    print(f"samples: {run.out}/samples/   sample more: gankit sample --checkpoint {run.out}")
    return 0


def check_output(path: str, flag: str, image: bool = False) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    target = Path(path)
    parent = target.resolve().parent
    if not parent.is_dir():
        raise GankitError(f"cannot write {path}: folder {parent} does not exist "
                          f"(create it or choose another {flag})")
    if target.is_dir():
        raise GankitError(f"cannot write {path}: it is a folder; give {flag} a file name")
    if image:
        from .images import image_format
        image_format(path)


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from .api import load
    from .images import grid, save_image
    from .runtime import configure_threads, pick_device
    from .data import to_uint8
    from .evaluate import npy_array
    from .interpolate import check_label

    if args.n is not None and args.n <= 0:
        raise GankitError(f"--n must be positive, got {args.n}")
    if args.nrow is not None and args.nrow <= 0:
        raise GankitError(f"--nrow must be positive, got {args.nrow}")
    check_output(args.out, "--out", image=True)
    if args.npy:
        check_output(args.npy, "--npy")
    device = pick_device(args.device)
    # A fixed thread count: MKL may otherwise pick fewer threads on a busy machine, and a
    # different count rounds differently, so the same --seed could give other pixels.
    configure_threads(None, device)
    model = load(args.checkpoint, device=device, ema=not args.no_ema)
    check_label(model, args.label)
    gen = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    nrow, labels = args.nrow, None
    if model.conditional and args.label is None:
        # One row per class, the same noise down each column: class and style separate.
        per_class = -(-args.n // model.num_classes) if args.n else 10
        z = model.latents(per_class, gen).repeat(model.num_classes, 1)
        labels = torch.arange(model.num_classes).repeat_interleave(per_class)
        nrow = nrow or per_class
    else:
        z = model.latents(args.n or 64, gen)
        if args.label is not None:
            labels = torch.full((len(z),), args.label)
    n = len(z)
    images = to_uint8(model.sample(latents=z, labels=labels)).cpu()
    try:
        save_image(grid(images, nrow=nrow), args.out)
        if args.npy:
            np.save(args.npy, npy_array(images))
    except OSError as e:
        raise GankitError(f"cannot write samples ({e}): choose another --out / --npy") from None
    print(f"wrote {n} samples to {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    import torch

    from .api import load
    from .images import grid, save_gif, save_image
    from .interpolate import check_label, latent_walk, strip_indices
    from .runtime import configure_threads, pick_device

    for flag, value in (("--points", args.points), ("--frames", args.frames)):
        if value < 2:
            raise GankitError(f"{flag} must be at least 2, got {value}")
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
    device = pick_device(args.device)
    configure_threads(None, device)   # as in cmd_sample: same --seed, same pixels
    model = load(args.checkpoint, device=device)
    check_label(model, args.label)
    gen = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    frames = latent_walk(model, args.points, args.frames, args.mode, gen, args.label).cpu()
    try:
        save_gif(frames, args.out, duration_ms=args.duration)
        if png:
            picks = strip_indices(args.points, args.frames)
            save_image(grid(frames[picks], nrow=len(picks) // args.points), png)
    except OSError as e:
        raise GankitError(f"cannot write the walk ({e}): choose another --out / --png") from None
    print(f"wrote {len(frames)} frames ({args.points} points x {args.frames}) to {args.out}"
          + (f" and a strip to {png}" if png else ""))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    import torch

    from .config import DataConfig
    from .evaluate import draw, finite, format_table, load_npy, prepare, read_images, score
    from .runtime import configure_threads, pick_device

    if args.n is not None and args.n < 2:
        raise GankitError(f"--n must be at least 2, got {args.n}")
    if args.images and not Path(args.images).is_dir():
        load_npy(args.images)   # refuse a bad file before a first run trains the classifier
    device = pick_device(args.device)
    configure_threads(None, device)
    model = None
    if args.checkpoint:
        from .api import load
        model = load(args.checkpoint, device=device, ema=not args.no_ema)
        data_cfg = model.run_config.data
        if args.data:
            data_cfg = DataConfig(data=args.data)
    else:
        data_cfg = DataConfig(data=args.data or "mnist")
    data_cfg = DataConfig(**{**vars(data_cfg), "offline": args.offline or data_cfg.offline,
                             **({"data_dir": args.data_dir} if args.data_dir else {})})
    ref = prepare(data_cfg, args.features, device, progress=not args.json, seed=args.seed)
    if args.reference:
        images, title = ref.held_out.images, f"reference floor: {ref.description}"
    elif args.images:
        images, title = read_images(args.images, ref), f"images {args.images}"
    else:
        gen = torch.Generator().manual_seed(args.seed)
        n = args.n or len(ref.held_out)
        images = draw(lambda k: model.sample(k, generator=gen), n, progress=not args.json)
        title = f"checkpoint {args.checkpoint} ({model.run_config.model})"
    result = score(ref, images, seed=args.seed)
    print(json.dumps(finite({"what": title, **result})) if args.json else format_table(result, title))
    return 0


def _classify_inputs(args: argparse.Namespace, model) -> tuple:
    """(images uint8 (N, C, H, W), labels (N,) or None), each checked against the model."""
    from .classify import check_images, check_label_range, folder_labels, load_labels
    from .evaluate import npy_images

    names = model.class_names
    if Path(args.images).is_dir():
        from .data.folder import load_folder
        c, h, _ = model.image_shape
        data = load_folder(args.images, image_size=h, channels=c)
        images, labels = data.images, folder_labels(data.labels, data.class_names, names, args.images)
    else:
        images = npy_images(args.images)
        labels = load_labels(args.labels, len(images)) if args.labels else None
    if not len(images):
        raise GankitError(f"--images {args.images} holds no images")
    check_images(model, images)
    if labels is not None:
        check_label_range(labels, names, f"--labels {args.labels}" if args.labels else args.images)
    return images, labels


def _classify_paths(args: argparse.Namespace) -> str | None:
    """Check every input file and output path before a model loads; returns where the
    confusion PNG goes (None when no labels can be known)."""
    from .classify import load_labels
    from .evaluate import load_npy

    if args.samples < 1:
        raise GankitError(f"--samples must be at least 1, got {args.samples}")
    folder = Path(args.images).is_dir()
    if folder and args.labels:
        raise GankitError("--labels goes with a .npy of images: a folder gives its labels by "
                          "one subfolder per class, named as the model's classes")
    if not folder and args.labels:
        load_labels(args.labels, len(load_npy(args.images)))
    elif not folder:
        load_npy(args.images)
    labelled = bool(args.labels) or (folder and any(p.is_dir() for p in Path(args.images).iterdir()))
    png = args.confusion or ("confusion.png" if labelled else None)
    if png:
        check_output(png, "--confusion", image=True)
    if args.out:
        check_output(args.out, "--out")
    return png


def _print_classified(args: argparse.Namespace, report: dict, pred, labels) -> None:
    """Without labels: one line per image (index, class, probability), unless --out has
    them; with labels: the accuracy and the confusion matrix."""
    from .classify import format_confusion

    names, n = report["class_names"], report["images"]
    print(f"{n:,} images; log p(x|y) by the IWAE bound with k={args.samples}; prior: "
          f"{pred.prior}", file=sys.stderr)
    if labels is None and not args.out:
        for i, (y, p) in enumerate(zip(pred.labels.tolist(), pred.probs)):
            print(f"{i}\t{names[y]}\t{float(p[y]):.4f}")
    if labels is not None:
        matrix = np.array(report["confusion"])
        print(f"accuracy {report['accuracy']:.4f} ({int(np.trace(matrix))} of {n})")
        print(format_confusion(matrix, names))
        print(f"wrote {report['confusion_png']}")
    if args.out:
        print(f"wrote {n:,} predictions to {args.out}")


def cmd_classify(args: argparse.Namespace) -> int:
    import json

    from .api import load
    from .classify import check_can_classify, classify, confusion_matrix, write_predictions
    from .images import confusion_image, save_image
    from .runtime import configure_threads, pick_device

    png = _classify_paths(args)
    device = pick_device(args.device)
    configure_threads(None, device)
    model = load(args.checkpoint, device=device)
    check_can_classify(model)
    model.class_names = list(model.class_names) or [str(k) for k in range(model.num_classes)]
    names = model.class_names
    images, labels = _classify_inputs(args, model)
    if args.confusion and labels is None:
        raise GankitError("--confusion needs labels: pass --labels, or a folder with one "
                          "subfolder per class named as the model's classes")
    pred = classify(model, images, samples=args.samples, seed=args.seed, progress=not args.json)
    report = {"checkpoint": args.checkpoint, "images": len(images), "samples": args.samples,
              "seed": args.seed, "prior": pred.prior, "class_names": names}
    if labels is not None:
        matrix = confusion_matrix(labels, pred.labels, len(names))
        report.update(accuracy=float((pred.labels == labels).double().mean()),
                      confusion=matrix.tolist(), confusion_png=png)
        save_image(confusion_image(matrix, names, title=f"{args.checkpoint}: IWAE k="
                                   f"{args.samples}, {len(images):,} images"), png)
    if args.out:
        write_predictions(args.out, pred, names, labels)
    if args.json:
        report.update(predicted=[names[y] for y in pred.labels.tolist()],
                      probability=[round(float(p[y]), 6) for p, y in zip(pred.probs, pred.labels)])
        print(json.dumps(report))
    else:
        _print_classified(args, report, pred, labels)
    return 0


def cmd_inpaint(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from .api import load
    from .checkpoint import read_meta
    from .evaluate import npy_array
    from .images import save_image
    from .inpaint import check_can_inpaint, inpaint, parse_mask, read_inputs, side_by_side
    from .models import get_model_class
    from .runtime import configure_threads, pick_device

    for flag, value in (("--steps", args.steps), ("--restarts", args.restarts)):
        if value is not None and value < 1:
            raise GankitError(f"{flag} must be at least 1, got {value}")
    source = args.image or args.images
    for flag, out in (("--out", args.out), ("--npy", args.npy)):
        if out and Path(out).resolve() == Path(source).resolve():
            raise GankitError(f"{flag} {out} would overwrite the input: choose another {flag}")
    check_output(args.out, "--out", image=True)
    if args.npy:
        check_output(args.npy, "--npy")
    # Everything is checked against the checkpoint's metadata before any weights load.
    meta = read_meta(args.checkpoint)
    try:
        shape, num_classes = tuple(meta["image_shape"]), meta["num_classes"]
        model_cls = get_model_class(meta["model"])
    except (KeyError, TypeError):
        raise GankitError(f"checkpoint {args.checkpoint} has incomplete metadata: it was not "
                          "written by gankit train, or was edited") from None
    check_can_inpaint(model_cls, num_classes, args.label)
    images = read_inputs(source, shape, "--image" if args.image else "--images")
    known = parse_mask(args.mask, shape, len(images), seed=args.seed)
    device = pick_device(args.device)
    configure_threads(None, device)   # as in cmd_sample: same --seed, same pixels
    model = load(args.checkpoint, device=device, ema=not args.no_ema)
    labels = None if args.label is None else torch.full((len(images),), args.label)
    options = {k: v for k, v in (("steps", args.steps), ("restarts", args.restarts)) if v}
    filled = inpaint(model, images, known, labels, blend=args.blend, seed=args.seed,
                     progress=True, **options)
    if args.image:
        save_image(Image.fromarray(npy_array(filled)[0]), args.out)
    else:
        save_image(side_by_side(images, known, filled), args.out)
    if args.npy:
        try:
            np.save(args.npy, npy_array(filled))
        except OSError as e:
            raise GankitError(f"cannot write {args.npy} ({e.strerror or e}): choose another --npy") from None
    holes = int((~known).sum())
    print(f"filled {holes:,} pixels in {len(images)} image(s): wrote {args.out}"
          + (f" and {args.npy}" if args.npy else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .data import dataset_names, describe
    from .models import MODELS

    print("models:")
    for name, cls in MODELS.items():
        print(f"  {name:16s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    print("datasets:")
    for name in dataset_names():
        print(f"  {name:16s} {describe(name)}")
    print("  PATH             any folder of images (subfolders become labels)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Warnings (e.g. "offline: using the 5,000-digit MNIST subset") as one readable line.
    warnings.formatwarning = lambda msg, *args, **kw: f"gankit: warning: {msg}\n"
    commands = {"train": cmd_train, "sample": cmd_sample, "interpolate": cmd_interpolate,
                "eval": cmd_eval, "classify": cmd_classify, "inpaint": cmd_inpaint,
                "info": cmd_info}
    try:
        model = _peek_model(argv) if argv[:1] == ["train"] else "gan"
        from .models import MODELS
        args = build_parser(model if model in MODELS else "gan").parse_args(argv)
        return commands[args.command](args)
    except GankitError as e:
        from .distributed import report_error   # under torchrun: names the rank
        print(report_error(f"gankit: error: {e}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `gankit classify ... | head`: the reader has what it wanted
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no error at exit
        return 141            # 128 + SIGPIPE, as a shell reports a command cut off so


if __name__ == "__main__":
    raise SystemExit(main())
