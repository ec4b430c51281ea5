"""gankit classify: p(y|x) from a conditional model's likelihood p(x|y), by Bayes' rule."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import GankitError
from .common import (add_checkpoint, add_device, add_json, add_sampling_flags, add_seed,
                     check_output, load_model)


def add(sub) -> None:
    from ..models import names_that

    p = sub.add_parser("classify", help="classify images with a conditional model (Bayes' rule)",
                       description="Use a conditional generative model with a likelihood as a "
                       "classifier: p(y|x) is proportional to p(x|y) p(y), with log p(x|y) "
                       "the model's own bound or estimate (a VAE's importance-weighted bound, "
                       "Burda et al. 2016; a flow's flow-matching bound, or with --likelihood "
                       "exact its density by the change of variables; the report names it) "
                       "and p(y) the training "
                       "class frequencies the checkpoint records (else uniform). Prints one line per image (index, predicted "
                       "class, its probability); with labels, prints the accuracy and the "
                       "confusion matrix instead and draws it as a PNG.")
    p.set_defaults(run=run)
    add_checkpoint(p, "of a conditional model with a likelihood "
                   f"({names_that(lambda c: c.conditional and c.has_likelihood)})")
    p.add_argument("--images", required=True, metavar="DIR_OR_NPY", help="a .npy of uint8 "
                   "(N, H, W) / (N, H, W, C) at the model's size, or a folder of images "
                   "(resized); a folder with one subfolder per class named as the model's "
                   "classes gives the labels")
    p.add_argument("--labels", metavar="FILE.npy", help="true classes of a .npy of images: "
                   "integers (N,) in 0..K-1, in the order of the model's class names")
    p.add_argument("--samples", type=int, metavar="N", help="samples per image and class, "
                   "in proportionally more time: a VAE's importance samples (1 is the ELBO, "
                   "more tighten the bound); a flow's draws of t and noise for its bound, or "
                   "of noise and Hutchinson probe for its exact density (default: the "
                   "model's, 10; 1 for a flow's exact density)")
    add_seed(p, "the samples", default=0)
    add_device(p)
    add_sampling_flags(p)
    p.add_argument("--confusion", metavar="FILE.png", help="confusion-matrix picture to write "
                   "when labels are known (default: confusion.png)")
    p.add_argument("--out", metavar="FILE.csv", help="write the predictions (and every class's "
                   "probability) as CSV instead of printing them")
    add_json(p, "instead")


def run(args: argparse.Namespace) -> int:
    import json

    from ..classify import check_can_classify, classify, confusion_matrix, write_predictions
    from ..images import confusion_image, save_image

    png = _check_paths(args)
    model = load_model(args)
    check_can_classify(model)
    names = model.class_names
    images, labels = _inputs(args, model)
    if args.confusion and labels is None:
        raise GankitError("--confusion needs labels: pass --labels, or a folder with one "
                          "subfolder per class named as the model's classes")
    samples = model.likelihood_samples if args.samples is None else args.samples
    pred = classify(model, images, samples=samples, seed=args.seed, progress=not args.json)
    report = {"checkpoint": args.checkpoint, "images": len(images), "samples": samples,
              "method": model.likelihood_method(samples), "seed": args.seed,
              "prior": pred.prior, "class_names": names}
    if labels is not None:
        matrix = confusion_matrix(labels, pred.labels, len(names))
        report.update(accuracy=float((pred.labels == labels).double().mean()),
                      confusion=matrix.tolist(), confusion_png=png)
        save_image(confusion_image(matrix, names, title=f"{args.checkpoint}: "
                                   f"{report['method']}, {len(images):,} images"), png)
    if args.out:
        write_predictions(args.out, pred, names, labels)
    if args.json:
        report.update(predicted=[names[y] for y in pred.labels.tolist()],
                      probability=[round(float(p[y]), 6) for p, y in zip(pred.probs, pred.labels)])
        print(json.dumps(report))
    else:
        _print(args, report, pred, labels)
    return 0


def _check_paths(args: argparse.Namespace) -> str | None:
    """Check every input file and output path before a model loads; returns where the
    confusion PNG goes (None when no labels can be known)."""
    from ..classify import check_samples, load_labels
    from ..files import load_npy

    if args.samples is not None:
        check_samples(args.samples)
    folder = Path(args.images).is_dir()
    if folder and args.labels:
        raise GankitError("--labels goes with a .npy of images: a folder gives its labels by "
                          "one subfolder per class, named as the model's classes")
    if not folder:
        n = len(load_npy(args.images))
        if args.labels:
            load_labels(args.labels, n)
    labelled = bool(args.labels) or (folder and any(p.is_dir() for p in Path(args.images).iterdir()))
    png = args.confusion or ("confusion.png" if labelled else None)
    if png:
        check_output(png, "--confusion", image=True)
    if args.out:
        check_output(args.out, "--out")
    return png


def _inputs(args: argparse.Namespace, model) -> tuple:
    """(images uint8 (N, C, H, W), labels (N,) or None), each checked against the model."""
    from ..classify import check_images, check_label_range, folder_labels, load_labels
    from ..files import npy_images

    names = model.class_names
    if Path(args.images).is_dir():
        from ..data.folder import load_folder
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


def _print(args: argparse.Namespace, report: dict, pred, labels) -> None:
    """Without labels: one line per image (index, class, probability), unless --out has
    them; with labels: the accuracy and the confusion matrix."""
    import numpy as np

    from ..classify import format_confusion

    names, n = report["class_names"], report["images"]
    print(f"{n:,} images; log p(x|y) by {report['method']}; prior: {pred.prior}",
          file=sys.stderr)
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
