"""Inpainting: given some pixels of an image, fill in the others with a trained model.

A use of trained weights, not a fork of a model. The method follows from what the model
declares it can do (gankit/models/base.py), never from its name:

- any model, by latent search: Yeh et al. 2017, "Semantic Image Inpainting with Deep
  Generative Models" (CVPR). Search the latent z whose decoded image matches the known
  pixels (an importance-weighted L1 "context loss") and that the model finds realistic (the
  "prior loss": a GAN's D, through the model's `realism_loss`), then Poisson-blend it into
  the hole so its edges meet the known pixels.
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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import to_float, to_uint8
from .errors import GankitError
from .models import GenerativeModel
from .progress import Progress, bar as progress_bar
from .runtime import evaluating

# Yeh et al. 2017, section 3.3 and their experiments: lambda = 0.003 weighs the prior loss
# against the context loss, and the importance weights count holes in a 7x7 window. On
# digits the prior term hardly matters: lambda 0, 0.003 and 0.1 gave the same fills within
# noise (dcgan, 200 training digits, random:0.5 MSE 0.0128, 0.0129, 0.0131).
PRIOR_WEIGHT = 0.003
WINDOW = 7
# Search defaults, measured on 200 *training* digits (never the held-out ones that
# benchmarks/inpaint.py reports on) with the benchmark's checkpoints, one CPU thread:
# - GAN_LR: of 0.01, 0.05, 0.1 and 0.2, 0.05-0.1 fit best (dcgan, random:0.5, 100 steps:
#   MSE 0.0172 at 0.05, 0.0164 at 0.1); 0.2 overshoots on gan and wgan-gp.
# - GAN_STEPS: 2x and 4x the steps gained little for their time (dcgan random:0.5 MSE
#   0.0164 at 100, 0.0144 at 200, 0.0127 at 400; the box barely moves, 0.193 -> 0.191).
# - GAN_RESTARTS: 4 starting codes screened for 20 steps each, the best going on (1.6x the
#   time of one start), beat 200 plain steps: vanilla gan classifier accuracy on the fills
#   81.5% -> 94.5% (random:0.5) and 48.5% -> 59.5% (box); dcgan random MSE 0.0164 -> 0.0129.
# - AE_STEPS: clamped iteration converges in about 10 on random:0.5 (vae MSE 0.092, 0.028,
#   0.017 after 1, 3, 10, flat after); on the box the vae still gains up to 20 (accuracy
#   52% -> 54%), while the plain ae drifts slowly (box MSE 0.178 after 1, 0.214 after 20).
# - SCREEN: every (start, class) pair searched for a fifth of the steps, then the best per
#   image to the end, fitted as well as searching every class to the end (cgan, 100
#   digits: box accuracy 60% vs 49%, random 97% vs 99%) in a third of the time.
GAN_STEPS = 100
GAN_LR = 0.1
GAN_RESTARTS = 4
AE_STEPS = 20
SCREEN = 0.2
BLENDS = ("poisson", "copy")
CHUNK = 500   # images per search batch: bounds memory, keeps the per-image maths separate

MASK_HELP = "use box:X,Y,W,H, random:F (0 < F < 1) or a mask image (white = fill, black = keep)"


# --- masks ------------------------------------------------------------------------------

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
    from PIL import Image
    try:
        with Image.open(path) as img:
            gray = np.asarray(img.convert("L"))
    except Exception as e:   # Pillow raises many types for bad files
        raise GankitError(f"cannot read mask image {path} ({' '.join(str(e).split())[:80]}): "
                          "pass a PNG, white = fill, black = keep") from None
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


# --- the search -------------------------------------------------------------------------

def inpaint(model: GenerativeModel, images: torch.Tensor, known: torch.Tensor,
            labels: torch.Tensor | None = None, *, steps: int | None = None, lr: float = GAN_LR,
            restarts: int = GAN_RESTARTS, blend: str = "poisson", seed: int = 0,
            progress: Progress = False) -> torch.Tensor:
    """Fill the pixels where `known` is False; uint8 (N, C, H, W) in, uint8 out.

    known: bool (N, 1, H, W) (or broadcastable to it), True = keep. labels: (N,) classes for
    a conditional model; None tries every class. steps: Adam steps on z (GANs) or clamped
    iterations (autoencoders); lr, restarts (best of R starting points) and blend
    ("poisson" or "copy") concern the GAN search. Same seed, same output.
    """
    search = _ClampedSearch(model) if model.reconstructs else _LatentSearch(model, lr, blend)
    _check_args(model, images, known, labels, steps, restarts, blend)
    known = known.expand(len(images), 1, *images.shape[2:])
    steps = steps or search.default_steps
    starts = restarts if search.random_start else 1
    tries = starts * (model.num_classes if model.conditional and labels is None else 1)
    screen = steps if tries == 1 else max(1, round(steps * SCREEN))
    gen = torch.Generator().manual_seed(seed)
    total = (tries * screen + steps - screen) * -(-len(images) // CHUNK)
    parts = []
    with _frozen(model), _bar(total, progress) as bar:
        for start in range(0, len(images), CHUNK):
            part = slice(start, start + CHUNK)
            y = to_float(images[part].to(model.device))
            k = known[part].to(model.device)
            lab = None if labels is None else labels[part].to(model.device)
            fill = _search(search, y, k, lab, steps, screen, starts, gen, bar)
            parts.append(to_uint8(fill).cpu())
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


# --- Poisson blending -------------------------------------------------------------------

def laplacian(x: torch.Tensor) -> torch.Tensor:
    """Graph Laplacian on the 4-neighbour pixel grid: deg(p) x_p - sum of p's neighbours,
    where pixels at the image's edge have fewer neighbours (a Neumann boundary)."""
    def neighbour_sum(t):
        p = F.pad(t, (1, 1, 1, 1))
        return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]
    degree = neighbour_sum(torch.ones_like(x[:1, :1]))
    return degree * x - neighbour_sum(x)


@torch.no_grad()
def poisson_blend(source: torch.Tensor, target: torch.Tensor, known: torch.Tensor,
                  max_iter: int = 500, tol: float = 1e-5) -> torch.Tensor:
    """Missing pixels whose Laplacian equals `source`'s, with `target`'s known pixels as the
    boundary (Perez, Gangnet & Blake 2003, "Poisson Image Editing"; Yeh et al.'s last step).

    Shapes (B, C, H, W), known (B, 1, H, W). Solved by conjugate gradients per image on the
    missing pixels, a symmetric positive definite system whenever each image keeps a known
    pixel. A fill offset by a constant from the truth comes back as the truth. `tol`, the
    residual relative to the right-hand side, leaves errors near 1e-4 in [-1, 1] (measured:
    20-40 iterations for a 14x14 hole or half the pixels of 28x28 digits), far below one
    uint8 step (0.008).
    """
    hole = (~known).to(source.dtype).expand_as(source)
    fixed = target * (1 - hole)

    def apply(u):                                              # A u, restricted to the hole
        return hole * laplacian(hole * u)

    def dot(a, b):                                             # per image, (B, 1, 1, 1)
        return (a * b).flatten(1).sum(1)[:, None, None, None]

    b = hole * (laplacian(source) - laplacian(fixed))
    u = hole * source                                          # start from the fill itself
    r = b - apply(u)
    p, rs = r, dot(r, r)
    limit = tol ** 2 * dot(b, b).clamp_min(1e-12)
    for _ in range(max_iter):
        if bool((rs <= limit).all()):
            break
        # Images already solved stand still: iterating on their tiny residuals would only
        # produce denormal floats, which are slow on CPUs.
        active = rs > limit
        ap = apply(p)
        alpha = torch.where(active, rs / dot(p, ap).clamp_min(1e-30), 0)
        u = u + alpha * p
        r = r - alpha * ap
        rs_new = dot(r, r)
        p = r + torch.where(active, rs_new / rs.clamp_min(1e-30), 0) * p
        rs = rs_new
    return fixed + hole * u


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


# --- files in and pictures out (for the CLI) ---------------------------------------------

def read_inputs(path: str, image_shape: tuple[int, int, int], flag: str) -> torch.Tensor:
    """uint8 (N, C, H, W) from one image file (--image), or from a folder of images or a
    .npy as `gankit sample --npy` writes (--images). Never resized: a mask is given in
    pixel coordinates, so an image of another size is refused rather than rescaled."""
    from .data.folder import EXTENSIONS, image_files
    from .files import npy_images
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
    from PIL import Image
    c, h, w = image_shape
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L" if c == 1 else "RGB"))
    except Exception as e:   # Pillow raises many types for bad files
        raise GankitError(f"cannot read {flag} {path} ({' '.join(str(e).split())[:80]}): pass a "
                          "PNG or JPEG image") from None
    if arr.shape[:2] != (h, w):
        raise GankitError(f"{flag} {path} is {arr.shape[1]}x{arr.shape[0]} but this model makes "
                          f"{w}x{h} images: crop or resize it first (gankit does not rescale, "
                          "since the mask is in pixel coordinates)")
    x = torch.from_numpy(arr.copy())
    return x[None] if c == 1 else x.permute(2, 0, 1)


def show_mask(images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """uint8 images with the pixels to fill painted mid grey (gray) or magenta (colour)."""
    colour = torch.tensor([128] if images.shape[1] == 1 else [255, 0, 255], dtype=torch.uint8)
    return torch.where(known, images, colour.view(1, -1, 1, 1))


def side_by_side(images: torch.Tensor, known: torch.Tensor, filled: torch.Tensor,
                 pairs_per_row: int = 8):
    """A grid picture: for every image, the input with its hole shown, then the fill."""
    from .images import grid
    pairs = torch.stack([show_mask(images, known), filled], dim=1).flatten(0, 1)
    return grid(pairs, nrow=2 * min(len(images), pairs_per_row))
