"""What every model gives the trainer, and what the uses of a trained image model may ask of it.

A model (Model) owns its networks, its optimizers and one `training_step`; the trainer owns
everything else (devices, seeding, batches, logging, grids, checkpoints, resume). The
trainer never asks which model it is running.

Models come in three kinds, each with the base that declares what it can do: image
generators (GenerativeModel, below), and the table models of tables.py: imputers (which
fill missing cells) and table generators (which sample whole rows).

The uses of an image model (gankit/inpaint.py, classify.py, interpolate.py, the CLI) ask it
what it can do through the capabilities below, each a class attribute with its hook, and
never check its class or its attributes:

    capability       hook                       used by
    (every model)    latents(), decode(),       sample, interpolate; inpainting's latent
                     sample(), realism_loss()   search (with D's verdict as its prior term)
    conditional      labels in the above        sample --label, per-class grids, classify
    reconstructs     reconstruct()              recon grids; inpainting by clamped iteration
    has_likelihood   log_likelihood()           classify (Bayes' rule on log p(x|y))
    fills_holes      fill_holes()               inpainting by the model's own sampler
    sampling_settings set_sampling(),           sample/interpolate/eval flags, the page:
                     sampling_as()              how samples are drawn, changed after training
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from ..config import ModelConfig, coerce
from ..errors import GankitError, option
from ..runtime import evaluating


def adam(params, lr: float, betas: tuple[float, float], weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fastest kernel this torch offers for the parameters' device.

    The fused kernel updates every tensor in one pass over memory; on a small CPU the
    textbook per-tensor loop spends more time in Adam than in the networks (see
    benchmarks/throughput.py). The maths is the same.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # torch < 2.4 has no fused Adam for CPU
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay,
                                foreach=True)


def check_truncation(psi: float) -> None:
    if not (isinstance(psi, (int, float)) and 0 < psi <= 1):
        raise GankitError(f"{option('truncation', psi)} is out of range: use a number in (0, 1], "
                          "e.g. 0.7 (1 is no truncation; smaller gives more typical, less "
                          "varied images)")


class Model(nn.Module):
    """What every model gives the trainer: its networks, optimizers and one training step,
    learnt from one kind of data (`data_kind`). What a trained model can then be used for is
    declared by the kind's own base: GenerativeModel here (images), TableModel (tables.py:
    imputers and table generators)."""

    Config: ClassVar[type[ModelConfig]] = ModelConfig
    # Names of the metrics training_step returns, in display order (a subclass may set it
    # per instance when its config adds a metric).
    metric_names: tuple[str, ...] = ()
    # The submodule that turns latents into samples. sample() runs it; the trainer's
    # exponential moving average (--ema) averages its weights.
    sampling_network: ClassVar[str] = "generator"
    # Needs a label per image to train and to sample ("given a label, produce the features").
    conditional: ClassVar[bool] = False
    # What it learns from: "image" (ImageData), "table" (data/table.py: scaled cells, NaN
    # where missing) or "rows" (data/row_encoding.py: rows encoded for a table generator).
    data_kind: ClassVar[str] = "image"

    # The model's own defaults for [train] fields (steps, batch_size, ema, ...): its best
    # measured recipe (benchmarks/sweep.py). Flags, config files and saved runs override
    # them; a field not named here keeps TrainConfig's default (the guide's).
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, ...], num_classes: int = 0):
        """`image_shape`: the shape of one training sample, (C, H, W) for an image and
        (width,) for a table's row (the name is the checkpoints')."""
        super().__init__()
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        # What the model knows of its data, set by the trainer and by gankit.load from the
        # checkpoint: the classes' names, and how many training images each had (the
        # class prior p(y) that classification needs; empty when unknown).
        self.class_names: list[str] = [str(k) for k in range(num_classes)]
        self.class_counts: list[int] = []
        # gankit.load: the RunConfig the model was trained with (None for a new model).
        self.run_config = None
        if self.conditional and num_classes < 2:
            raise GankitError(f"{type(self).__name__} is conditional and needs labelled data "
                              "with 2 or more classes: use mnist, fashion-mnist or a folder "
                              "with one subfolder per class")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Called by the trainer once the model is on its device."""
        raise NotImplementedError

    def real_batch_size(self, batch_size: int) -> int:
        """How many real images one training step consumes."""
        return batch_size

    def training_step(self, real: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """One iteration on `real` (float, [-1, 1]); returns detached scalar tensors.

        Return tensors, not floats: calling .item() every step would make the CPU wait
        for the device; the trainer converts them once per logging interval.

        On a CUDA GPU the step is recorded once as a CUDA graph and replayed
        (gankit/training/graphs.py), so it must do the same device work on every call: no host
        syncs (.item(), a tensor in an `if`), and no Python state that changes what it
        computes (a schedule over steps belongs in a device tensor). A step that breaks
        this still trains, eagerly, and the trainer says why.
        """
        raise NotImplementedError

    @property
    def sampler(self) -> nn.Module:
        """The network sample() runs: `sampling_network`, or the moving average of its
        weights while `sampling_with` has swapped that in."""
        return getattr(self, self.sampling_network)

    @contextmanager
    def sampling_with(self, net: nn.Module) -> Iterator[Model]:
        """Within the block, sample() runs `net` in place of the sampling network."""
        raw = self.sampler
        setattr(self, self.sampling_network, net)
        try:
            yield self
        finally:
            setattr(self, self.sampling_network, raw)

    # --- a fitted prior: what samples are drawn from, fitted to the training data ---------

    def prior_step(self) -> int | None:
        """The training step of the last fit_prior() (-1: not yet); None for a model whose
        prior is fixed (the default), which the trainer then never asks to fit."""
        return None

    def fit_prior(self, images: torch.Tensor, labels: torch.Tensor | None, step: int) -> None:
        """Fit what samples are drawn from to the training images (uint8 (N, C, H, W)) at
        training step `step`. The trainer calls it before sample grids (at most every
        REFIT_EVERY steps), evaluations and checkpoints."""

    def fit_data(self, images: torch.Tensor, labels: torch.Tensor | None, seed: int) -> None:
        """Learn what the model needs from the training images (uint8 (N, C, H, W)) before
        its first step, with an RNG of its own seeded by `seed`: e.g. a self-conditioned
        GAN's clusters. Not called on resume (the checkpoint has it)."""

    def row_weights(self, samples: torch.Tensor) -> torch.Tensor | None:
        """How often the trainer draws each training sample into a batch, relative to the
        others, (N,); None (the default): uniformly. Asked at every start, resumed or not,
        so it must follow from the data alone: a table generator's training-by-sampling
        (ctgan.py) weights rows by their categories."""
        return None

    def d_wins_fix(self) -> str | None:
        """What to try when the model's discriminator wins for long (its `d_acc` near 1; the
        trainer says it once, with this): the options that rebalance it. None: no advice."""
        return None

    def upgrade_state(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A checkpoint's model tensors as this version of the model names them (the
        checkpoint may predate a change); by default, as they are."""
        return weights


class GenerativeModel(Model):
    """An image model: subclasses set `Config` and implement the methods below; the
    capabilities (module docstring) say which uses it serves."""

    # Has an encoder: reconstruct() maps images to their reconstructions.
    reconstructs: ClassVar[bool] = False
    # Gives log p(x) (log p(x|y) if conditional), or a lower bound on it: log_likelihood().
    has_likelihood: ClassVar[bool] = False
    # The `samples` log_likelihood() gets when the caller names none (classification): as
    # many as pay for their time (docs/measurements/classification.md).
    likelihood_samples: ClassVar[int] = 10
    # Samples images whose known pixels are given (its sampler conditioned on them, rather
    # than a search over latents): fill_holes().
    fills_holes: ClassVar[bool] = False
    # Config fields that say how samples are drawn, not what was learned (an ODE's steps, a
    # guidance weight): set_sampling() may change them on a trained model.
    sampling_settings: ClassVar[tuple[str, ...]] = ()

    @property
    def latent_size(self) -> int:
        """Standard-normal numbers per sample that decode() takes."""
        return self.cfg.latent_dim

    def latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latent codes (n, latent_size) from the prior, on the model's device."""
        if generator is None:   # the training path: draw on the device, no host copy
            return torch.randn(n, self.latent_size, device=self.device)
        return torch.randn(n, self.latent_size, generator=generator).to(self.device)

    def decode(self, latents: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Latents (n, latent_size) -> images in [-1, 1]; runs the sampling network."""
        net = self.sampler
        return net(latents, labels) if self.conditional else net(latents)

    def grid_inputs(self, n: int, generator: torch.Generator | None = None,
                    label: int | None = None, per_class: int | None = None,
                    max_classes: int | None = None):
        """(latents, labels or None, images per row or None) for a grid of samples.

        n codes for an unconditional model, or for class `label`. Otherwise one row per
        class (the first `max_classes`), `per_class` codes each (default: n spread over
        the classes), the same codes in every row, so that each column keeps its style
        across classes and class and style can be told apart."""
        if self.conditional and label is None:
            rows = min(self.num_classes, max_classes or self.num_classes)
            k = per_class or -(-n // self.num_classes)
            z = self.latents(k, generator).repeat(rows, 1)
            return z, torch.arange(rows).repeat_interleave(k), k
        z = self.latents(n, generator)
        return z, None if label is None else torch.full((n,), label), None

    def set_sampling(self, **settings: Any) -> GenerativeModel:
        """Change how this model draws samples, e.g. `set_sampling(sample_steps=8)`: only the
        fields it lists in `sampling_settings`, checked as its config checks them. Returns
        the model, so that `gankit.load(run).set_sampling(...).sample(16)` reads."""
        unknown = [k for k in settings if k not in self.sampling_settings]
        if unknown:
            has = (f"its sampling settings are {', '.join(self.sampling_settings)}"
                   if self.sampling_settings else "it has no sampling settings")
            raise GankitError(f"{option(unknown[0], settings[unknown[0]])} does not apply to "
                              f"{type(self).__name__}: {has}")
        typed = {k: coerce(type(self.cfg), k, v) for k, v in settings.items()}
        cfg = dataclasses.replace(self.cfg, **typed)   # runs the config's own checks
        self.check_sampling(cfg)
        self.cfg = cfg
        return self

    @contextmanager
    def sampling_as(self, **settings: Any) -> Iterator[GenerativeModel]:
        """Within the block the model samples with `settings` (as set_sampling), then as before."""
        kept = self.cfg
        try:
            yield self.set_sampling(**settings)
        finally:
            self.cfg = kept

    def check_sampling(self, cfg: ModelConfig) -> None:
        """Refuse sampling settings that this model (not just its config) cannot honour."""

    @property
    def gaussian_size(self) -> int:
        """The leading latent numbers that are the Gaussian code; any after them pick a
        component (a fitted mixture's, a cluster) through their normal CDF."""
        return self.latent_size

    def truncate(self, latents: torch.Tensor, psi: float) -> torch.Tensor:
        """The truncation trick: latents pulled towards the prior's mean, z -> psi * z. Fewer
        samples from the prior's thin tails, where G has seen little: more typical images,
        less variety (Brock et al. 2019 truncate z; Karras et al. 2019 pull w towards its
        mean, w_mean + psi (w - w_mean), the same with a mean of 0). Only the Gaussian part:
        scaled, a number that picks a component would favour the middle ones."""
        d = self.gaussian_size
        return torch.cat([latents[:, :d] * psi, latents[:, d:]], dim=1)

    @torch.no_grad()
    def sample(self, n: int | None = None, *, latents: torch.Tensor | None = None,
               labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               truncation: float = 1.0) -> torch.Tensor:
        """Images in [-1, 1], shape (n, C, H, W), generated in inference mode.

        A conditional model without `labels` cycles through the classes 0, 1, 2, ...
        `truncation` psi in (0, 1] trades variety for typical images (1: none; truncate()).
        """
        check_truncation(truncation)
        if latents is None:
            latents = self.latents(n, generator)
        latents = latents.to(self.device)
        if truncation != 1:
            latents = self.truncate(latents, truncation)
        if self.conditional:
            if labels is None:
                labels = torch.arange(len(latents)) % self.num_classes
            labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        with evaluating(self.sampler):
            return self.decode(latents, labels)

    def judged_samples(self, latents: torch.Tensor, labels: torch.Tensor | None = None):
        """(images from `latents`, a logit per image estimating log p_data(x) / p_model(x)),
        for rejection sampling (gankit/rejection.py); None: the model has no such judge."""
        return None

    # --- hooks of the capabilities above; a model that declares one overrides its hook ---

    def realism_loss(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """A loss, averaged over the batch, that is low when `images` (in [-1, 1]) look like
        the training data to the model, with gradients to the images: the prior term of
        inpainting by latent search (Yeh et al. 2017). None: the model has no judge of
        realism, and the search fits the known pixels alone."""
        return None

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] -> their reconstructions (models that declare `reconstructs`)."""
        raise GankitError(f"{type(self).__name__} has no encoder: it cannot reconstruct images")

    def fill_holes(self, images: torch.Tensor, known: torch.Tensor,
                   labels: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (in [-1, 1]) that agree with `images` where `known` (bool (B, 1, H, W)) is
        True, the rest drawn by the model (models that declare `fills_holes`). Returns the
        model's whole image, its own values at the known pixels too: how far those are from
        the given ones says how well a fill (a class, a starting noise) explains them."""
        raise GankitError(f"{type(self).__name__} cannot fill holes by sampling")

    def likelihood_method(self, samples: int) -> str:
        """How log_likelihood() computes, in a few words, for reports."""
        return f"the model's bound with {samples} samples"

    def log_likelihood(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                       samples: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x), or a lower bound on it (log p(x|y) for a conditional model), per image
        (B,), for images in [-1, 1]; `samples` tightens it where it is a Monte Carlo
        estimate, whose noise is drawn from `generator` (models that declare
        `has_likelihood`)."""
        raise GankitError(f"{type(self).__name__} gives no likelihood p(x) (it generates "
                          "samples but gives no density)")
