"""Latent walks: decode a smooth closed path through a few latent codes.

The path goes through `n_points` codes drawn from the prior and back to the first, so an
animation of it loops without a jump. Between two codes it follows a great circle (slerp)
by default: Gaussian codes of dimension D concentrate near the sphere of radius sqrt(D),
and the straight line between two of them passes through codes of atypically small norm
that the generator rarely saw in training (White 2016, "Sampling Generative Networks",
https://arxiv.org/abs/1609.04468).
"""

from __future__ import annotations

import torch

from .errors import GankitError
from .models import GenerativeModel, check_label

MODES = ("slerp", "lerp")
# Below this angle (about 1.8 degrees) slerp and lerp differ by less than 0.02% and
# slerp's 1/sin(angle) loses precision; antiparallel codes have no unique great circle.
PARALLEL_COS = 0.9995


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line: a, b of shape (D,), weights t (T,) -> (T, D); t=0 is a, t=1 is b."""
    t = t.to(a.device, a.dtype).unsqueeze(1)
    return a.unsqueeze(0) + t * (b - a).unsqueeze(0)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985): a, b (D,), t (T,) -> (T, D).

    Moves along the great circle through a and b at constant angular speed; for codes of
    equal norm every point keeps that norm. Falls back to lerp for (anti)parallel codes.
    """
    # float64 for the angle: in float32, arccos near 1 is too coarse to divide by its sine.
    a64, b64 = a.double(), b.double()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-300)
    if not torch.isfinite(cos) or abs(float(cos)) > PARALLEL_COS:
        return lerp(a, b, t)
    omega = torch.arccos(cos.clamp(-1, 1))
    t64 = t.double().to(a.device).unsqueeze(1)
    wa = torch.sin((1 - t64) * omega) / torch.sin(omega)            # (T, 1)
    wb = torch.sin(t64 * omega) / torch.sin(omega)
    return (wa * a64 + wb * b64).to(a.dtype)


def walk_latents(points: torch.Tensor, frames_per_leg: int, mode: str = "slerp") -> torch.Tensor:
    """The closed path through points (P, ...) and back to points[0]: (P * frames_per_leg, ...).

    Leg k starts exactly at points[k] and stops one step short of points[k + 1], where the
    next leg starts, so no code appears twice and the frame after the last is points[0].
    """
    if mode not in MODES:
        raise GankitError(f"unknown interpolation mode {mode!r}: use slerp or lerp")
    interp = slerp if mode == "slerp" else lerp
    flat = points.flatten(1)                                         # (P, D)
    t = torch.arange(frames_per_leg, dtype=torch.float64) / frames_per_leg
    legs = [interp(flat[k], flat[(k + 1) % len(flat)], t) for k in range(len(flat))]
    return torch.cat(legs).view(-1, *points.shape[1:])


def strip_indices(n_points: int, frames_per_leg: int, per_row: int = 16) -> list[int]:
    """Frames for a PNG overview: one row per leg, at most `per_row` evenly spaced frames.

    Each row starts at one of the walk's codes, so the rows read like the GIF in stills.
    """
    cols = min(frames_per_leg, per_row)
    return [leg * frames_per_leg + (k * frames_per_leg) // cols
            for leg in range(n_points) for k in range(cols)]


def check_walk(n_points: int, frames_per_leg: int) -> None:
    for flag, value in (("--points", n_points), ("--frames", frames_per_leg)):
        if value < 2:
            raise GankitError(f"{flag} must be at least 2, got {value}")


@torch.no_grad()
def latent_walk(model: GenerativeModel, n_points: int = 4, frames_per_leg: int = 16,
                mode: str = "slerp", generator: torch.Generator | None = None,
                label: int | str | None = None, chunk: int = 64) -> torch.Tensor:
    """Images (n_points * frames_per_leg, C, H, W) in [-1, 1] along a closed latent path.

    The codes come from `model.latents(n_points, generator)`. A conditional model keeps
    one class for the whole walk (`label`, an index or a class name; default 0), so only
    the latent code changes.
    Decoded `chunk` frames at a time to bound memory for long walks.
    """
    check_walk(n_points, frames_per_leg)
    label = check_label(model, label)
    path = walk_latents(model.latents(n_points, generator), frames_per_leg, mode)
    return _decode(model, path, label, chunk)


@torch.no_grad()
def walk_between(model: GenerativeModel, a: torch.Tensor, b: torch.Tensor, frames: int = 16,
                 mode: str = "slerp", label: int | str | None = None,
                 chunk: int = 64) -> torch.Tensor:
    """Images (frames, C, H, W) in [-1, 1] on the open path from code a to code b, both
    ends included (the web page's walk between two samples the user clicked)."""
    if frames < 2:
        raise GankitError(f"a walk needs at least 2 frames, got {frames}")
    if mode not in MODES:
        raise GankitError(f"unknown interpolation mode {mode!r}: use slerp or lerp")
    label = check_label(model, label)
    t = torch.linspace(0, 1, frames, dtype=torch.float64)
    path = (slerp if mode == "slerp" else lerp)(a.flatten(), b.flatten(), t)
    return _decode(model, path.view(frames, *a.shape), label, chunk)


def _decode(model: GenerativeModel, path: torch.Tensor, label: int | None, chunk: int) -> torch.Tensor:
    """Decode codes `chunk` at a time; a conditional model keeps class `label` (default 0)."""
    frames = []
    for start in range(0, len(path), chunk):
        z = path[start:start + chunk]
        labels = (torch.full((len(z),), label or 0, dtype=torch.long, device=model.device)
                  if model.conditional else None)
        frames.append(model.sample(latents=z, labels=labels))
    return torch.cat(frames)
