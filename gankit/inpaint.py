"""Inpainting: given some pixels of an image, fill in the others with a trained model.

A use of trained weights, not a fork of a model. The method follows from what the model
declares it can do (gankit/models/base.py), never from its name:

- any model, by latent search: Yeh et al. 2017, "Semantic Image Inpainting with Deep
  Generative Models" (CVPR). Search the latent z whose decoded image matches the known
  pixels (an importance-weighted L1 "context loss") and that the model finds realistic (the
  "prior loss": a GAN's D, through the model's `realism_loss`), then Poisson-blend it into
  the hole so its edges meet the known pixels.
- a model that `fills_holes` (flow, cflow): its own sampler with the known pixels put back
  at every step (RePaint, Lugmayr et al. 2022; the model's fill_holes). Restarts draw other
  starting noise; no search, no blend (the sampler makes the fill meet the known pixels).
- a model that `reconstructs` (ae, vae, cvae): clamped iteration, the imputation of Rezende,
  Mohamed & Wierstra 2014 ("Stochastic Backpropagation and Approximate Inference in Deep
  Generative Models", section 5.3): x <- known ? y : reconstruct(x), repeated. We take the
  posterior and decoder means rather than samples, so the chain is deterministic.

A conditional model without labels tries every class and keeps, per image, the class whose
fill agrees best with the known pixels. Masks are boolean (N, 1, H, W), True = KNOWN.
Known pixels come back byte-identical: the result is assembled in uint8 at the very end.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .data import to_float, to_uint8
from .errors import GankitError
from .masks import parse_mask, show_mask
from .models import GenerativeModel
from .poisson import poisson_blend
from .progress import Progress, bar as progress_bar
from .runtime import evaluating

# Masks (gankit.masks) and the Poisson solver (gankit.poisson) live in their own modules;
# they are exported here too, so `from gankit.inpaint import inpaint, parse_mask` works.
__all__ = ["inpaint", "parse_mask", "show_mask", "poisson_blend", "check_search",
           "importance_weights", "context_loss", "BLENDS", "PRIOR_WEIGHT", "WINDOW",
           "GAN_STEPS", "GAN_LR", "GAN_RESTARTS", "AE_STEPS", "SCREEN", "CHUNK"]

# Why each default is what it is; the numbers, measured on training digits (never the
# held-out ones the benchmark reports on): docs/measurements/inpainting.md
PRIOR_WEIGHT = 0.003  # Yeh et al.'s lambda, prior vs context loss; on digits it barely matters
WINDOW = 7            # Yeh et al.'s importance weights count the holes in a 7x7 window
GAN_STEPS = 100       # Adam steps on z: two or four times as many gained little for their time
GAN_LR = 0.1          # the best fit of those tried; twice it overshoots on gan and wgan-gp
GAN_RESTARTS = 4      # starts screened, the best going on: better fills than one long search
AE_STEPS = 20         # clamped iteration: converged on scattered holes, still gaining on a box
SCREEN = 0.2          # every (start, class) screened this share of steps: as good, far faster
BLENDS = ("poisson", "copy")
CHUNK = 500   # images per search batch: bounds memory, keeps the per-image maths separate


# --- the search -------------------------------------------------------------------------

def inpaint(model: GenerativeModel, images: torch.Tensor, known: torch.Tensor,
            labels: torch.Tensor | None = None, *, steps: int | None = None, lr: float = GAN_LR,
            restarts: int | None = None, blend: str = "poisson", seed: int = 0,
            progress: Progress = False) -> torch.Tensor:
    """Fill the pixels where `known` is False; uint8 (N, C, H, W) in, uint8 out.

    known: bool (N, 1, H, W) (or broadcastable to it), True = keep. labels: (N,) classes for
    a conditional model; None tries every class. steps: Adam steps on z (GANs) or clamped
    iterations (autoencoders); lr, restarts (best of R starting points) and blend
    ("poisson" or "copy") concern the GAN search (restarts, default 4, also the number of
    fills a sampling model draws, default 1). Same seed, same output.
    """
    if model.fills_holes:
        return _sampled(model, images, known, labels, steps, restarts, seed, progress)
    restarts = restarts or GAN_RESTARTS
    search = _ClampedSearch(model) if model.reconstructs else _LatentSearch(model, lr, blend)
    _check_args(model, images, known, labels, steps, restarts, blend)
    steps = steps or search.default_steps
    starts = restarts if search.random_start else 1
    tries = starts * (model.num_classes if model.conditional and labels is None else 1)
    screen = steps if tries == 1 else max(1, round(steps * SCREEN))
    gen = torch.Generator().manual_seed(seed)

    def fill(y, k, lab, bar):
        return _search(search, y, k, lab, steps, screen, starts, gen, bar)
    return _by_chunk(model, images, known, labels, tries * screen + steps - screen, progress,
                     fill)


def _sampled(model, images, known, labels, steps, restarts, seed, progress) -> torch.Tensor:
    """Inpainting by a model's own sampler: `restarts` fills per image and class tried, the
    one whose own values at the known pixels are nearest to them kept."""
    if steps is not None:
        raise GankitError(f"steps set a search, and {type(model).__name__} fills holes by "
                          "sampling: its sampling settings set its work (gankit inpaint --help)")
    _check_args(model, images, known, labels, None, restarts, BLENDS[0])
    restarts = restarts or 1
    gen = torch.Generator().manual_seed(seed)

    def best_fill(y, k, given, bar):
        weight, best = importance_weights(k), None
        for lab in _class_tries(model, given, len(y), y.device):
            for _ in range(restarts):
                fill = model.fill_holes(y, k, lab, gen)
                best = _keep_better(best, (context_loss(fill, y, weight), fill))
                bar.update(1)
        return best[1]
    tries = restarts * (model.num_classes if model.conditional and labels is None else 1)
    return _by_chunk(model, images, known, labels, tries, progress, best_fill)


def _by_chunk(model, images, known, labels, steps_per_chunk, progress, fill) -> torch.Tensor:
    """fill(y, known, labels, bar) on CHUNK images at a time (y float in [-1, 1] on the
    model's device), its pixels put where `known` is False: assembled in uint8, so the known
    ones come back byte-identical. The model is frozen meanwhile."""
    known = known.expand(len(images), 1, *images.shape[2:])
    parts = []
    with _frozen(model), _bar(steps_per_chunk * -(-len(images) // CHUNK), progress) as bar:
        for start in range(0, len(images), CHUNK):
            part = slice(start, start + CHUNK)
            y = to_float(images[part].to(model.device))
            lab = None if labels is None else labels[part].to(model.device)
            parts.append(to_uint8(fill(y, known[part].to(model.device), lab, bar)).cpu())
    return torch.where(known, images, torch.cat(parts))


def _check_args(model, images, known, labels, steps, restarts, blend) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != model.image_shape:
        raise GankitError(f"images must be uint8 {('N', *model.image_shape)} for this model, got "
                          f"{images.dtype} {tuple(images.shape)}")
    if known.dtype != torch.bool or known.shape[-2:] != images.shape[-2:]:
        raise GankitError("the mask must be bool (N, 1, H, W), True = known (see parse_mask)")
    check_search(steps, restarts)
    if blend not in BLENDS:
        raise GankitError(f"unknown blend {blend!r}: use {' or '.join(BLENDS)}")
    if labels is not None:
        if not model.conditional:
            raise GankitError("labels need a conditional model; this one takes none")
        if len(labels) != len(images) or labels.min() < 0 or labels.max() >= model.num_classes:
            raise GankitError(f"labels must be one class in 0..{model.num_classes - 1} per image")


def check_search(steps: int | None, restarts: int | None) -> None:
    for flag, value in (("--steps", steps), ("--restarts", restarts)):
        if value is not None and value < 1:
            raise GankitError(f"{flag} must be at least 1, got {value}")


def _search(search, y, known, labels, steps, screen, starts, gen, bar) -> torch.Tensor:
    """Every (starting point, class) pair is searched for `screen` steps; per image, the one
    whose result fits the known pixels best (lowest context loss) goes on for the rest.

    One pair (no restarts, labels given or an unconditional model) runs all steps at once.
    With P pairs this costs P / 5 + 4 / 5 single searches (SCREEN = 0.2) instead of P: a
    conditional GAN with 4 starts and 10 classes, 8.8 instead of 40.
    """
    weight = importance_weights(known)
    points = [search.start(y, known, gen) for _ in range(starts)]
    best = None
    for lab in _class_tries(search.model, labels, len(y), y.device):
        for state in points:
            state = search.run(state, y, known, weight, lab, screen, bar)
            loss = context_loss(search.explain(state, lab), y, weight)
            best = _keep_better(best, (loss, state, lab))
    _, state, lab = best
    state = search.run(state, y, known, weight, lab, steps - screen, bar)
    return search.fill(state, y, known, lab)


def _class_tries(model, labels, n, device) -> list:
    if not model.conditional or labels is not None:
        return [labels]
    return [torch.full((n,), c, dtype=torch.long, device=device) for c in range(model.num_classes)]


def _keep_better(best, new):
    """Per image, the (loss, state, labels) with the lower loss."""
    if best is None:
        return new
    better = new[0] < best[0]                                           # (B,)

    def pick(a, b):
        return None if a is None else torch.where(better.view(-1, *[1] * (a.ndim - 1)), a, b)
    return tuple(pick(a, b) for a, b in zip(new, best))


def importance_weights(known: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Yeh et al.'s W (B, 1, H, W): at a known pixel, the fraction of missing pixels in the
    window x window square around it (cut at the image's edge); 0 at missing pixels.
    Known pixels far from a hole say little about what fills it, so they weigh nothing."""
    missing = (~known).float()
    frac = F.avg_pool2d(missing, window, stride=1, padding=window // 2, count_include_pad=False)
    return frac * known


def context_loss(images: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """||W * (images - y)||_1 per image (B,), summed over channels and pixels."""
    return (weight * (images - y)).abs().flatten(1).sum(1)


class _LatentSearch:
    """Yeh et al. 2017: Adam on z against context + lambda * prior loss, then blend."""

    random_start = True
    default_steps = GAN_STEPS

    def __init__(self, model: GenerativeModel, lr: float, blend: str):
        self.model, self.lr, self.blend = model, lr, blend

    def start(self, y, known, gen):
        return self.model.latents(len(y), gen)                          # (B, latent_dim)

    def run(self, z, y, known, weight, labels, steps, bar):
        # A fresh Adam for each leg: after screening, the moments of one pair's search
        # would not belong to the image-wise mix of pairs that goes on.
        z = z.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.lr)
        for _ in range(steps):
            fake = self.model.decode(z, labels)
            loss = context_loss(fake, y, weight).sum()
            # The realism loss is a batch mean; times B it is the sum of per-image losses,
            # so each image's z gets the gradient of its own objective (networks in eval
            # mode: no BatchNorm statistics couple the images).
            prior = self.model.realism_loss(fake, labels)
            if prior is not None:
                loss = loss + PRIOR_WEIGHT * (prior * len(z))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
        return z.detach()

    @torch.no_grad()
    def explain(self, z, labels):
        return self.model.decode(z, labels)

    def fill(self, z, y, known, labels):
        fake = self.explain(z, labels)
        return poisson_blend(fake, y, known) if self.blend == "poisson" else fake


class _ClampedSearch:
    """Models with an encoder, Rezende et al. 2014: reconstruct, put the known pixels back,
    repeat. Deterministic (posterior and decoder means), so restarts would all agree."""

    random_start = False
    default_steps = AE_STEPS

    def __init__(self, model: GenerativeModel):
        self.model = model

    def start(self, y, known, gen):
        # Missing pixels start at mid grey (0 in [-1, 1]): no guess towards ink or paper.
        return torch.where(known, y, torch.zeros_like(y))

    def run(self, x, y, known, weight, labels, steps, bar):
        for _ in range(steps):
            x = torch.where(known, y, self.model.reconstruct(x, labels))
            bar.update(1)
        return x

    def explain(self, x, labels):
        # How well the model explains the known pixels from this fill: ranks the classes.
        return self.model.reconstruct(x, labels)

    def fill(self, x, y, known, labels):
        return x


# --- helpers ----------------------------------------------------------------------------

@contextmanager
def _frozen(model: GenerativeModel):
    """Eval mode (BatchNorm's running statistics, no spectral-norm power steps) and no
    parameter gradients while z is searched; the model's state is restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with evaluating(model):
            yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def _bar(total: int, progress: Progress):
    return progress_bar(progress, total=total, desc="inpainting", unit="step", dynamic_ncols=True)
