"""The step every GAN here shares: D updates, then one G update, with a chosen loss.

A GAN model file provides its two networks (`build_networks`) and a Config; the loss
(BCE, LSGAN, hinge, Wasserstein), the D:G step ratio, the gradient penalty, spectral
norm and DiffAugment are options of every GAN, implemented once here. The guide's vanilla
GAN keeps its Keras-era quirks by overriding the three small methods marked below.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from .augment import ada_adjust, ada_augment, diff_augment
from ..config import (ModelConfig, finite_nonnegative, finite_positive, one_of, positive,
                      unit_interval)
from ..errors import GankitError, option
from .losses import LOSSES, gradient_penalty, r1_penalty, zero_centred_penalty
from ..runtime import evaluating
from .base import GenerativeModel, adam


@dataclass
class AdversarialConfig(ModelConfig):
    latent_dim: int = field(default=100, metadata={"help": "size of the noise vector z"})
    lr_g: float = field(default=2e-4, metadata={"help": "generator learning rate (Adam)"})
    lr_d: float = field(default=2e-4, metadata={
        "help": "discriminator learning rate; lower it when D overpowers G (TTUR: Heusel "
                "et al. 2017 train D faster, e.g. --lr-d 4e-4 --lr-g 1e-4)"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1 for both networks"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2 for both networks"})
    loss: str = field(default="bce", metadata={
        "help": "adversarial loss: bce (non-saturating), lsgan (least squares), hinge, "
                "wasserstein (needs --gp or --spectral-norm; reports no d_acc, since a "
                "critic's scores have no fixed origin), or rpgan (relativistic pairs, R3GAN's "
                "loss; use it with --r1 and --r2)", "choices": tuple(LOSSES)})
    d_steps: int = field(default=1, metadata={
        "help": "discriminator updates per generator update, each on its own real batch"})
    gp: float = field(default=0.0, metadata={
        "help": "gradient penalty weight (WGAN-GP uses 10); 0 turns it off; D then has no "
                "BatchNorm"})
    r1: float = field(default=0.0, metadata={
        "help": "R1 penalty weight gamma: gamma/2 * E||grad D(real)||^2 pushes D's gradient "
                "on real images to zero (Mescheder et al. 2018), so that training settles "
                "instead of circling; e.g. 1 for digits; 0 turns it off; D then has no BatchNorm"})
    r2: float = field(default=0.0, metadata={
        "help": "R2 penalty weight: the same on generated images; R3GAN (Huang et al. 2024) "
                "proves that RpGAN with R1 and R2 together converges locally and uses one "
                "weight for both; 0 turns it off"})
    spectral_norm: bool = field(default=False, metadata={
        "help": "spectral normalisation of D's layers (Miyato et al. 2018)"})
    augment: bool = field(default=False, metadata={
        "help": "DiffAugment (translation + cutout on real and fake images before D; Zhao "
                "et al. 2020): helps on small datasets such as the 5,000 offline digits; "
                "instead of --ada", "turns_off": {"ada": 0.0}})
    ada: float = field(default=0.0, metadata={
        "help": "adaptive augmentation (ADA, Karras et al. 2020) with this target: D sees "
                "reals and fakes through random shifts, zooms, turns and colour changes, each "
                "at a chance p raised while D calls more than this share of reals real and "
                "lowered otherwise (the paper's target: 0.6); 0 turns it off; --augment "
                "replaces it", "saved_default": 0.0})

    def __post_init__(self):
        positive(self, "latent_dim", "d_steps")
        finite_positive(self, "lr_g", "lr_d")
        one_of(self, "loss", tuple(LOSSES))
        unit_interval(self, "beta1", "beta2", "ada")
        finite_nonnegative(self, "gp", "r1", "r2")
        if self.ada and self.augment:
            raise GankitError(f"{option('ada', self.ada)} and {option('augment', True)} both "
                              f"augment D's images: keep one (with {option('augment', True)}, "
                              f"add {option('ada', 0)})")
        if self.loss == "wasserstein" and not (self.gp or self.spectral_norm):
            warnings.warn(f"{option('loss', 'wasserstein')} without {option('gp')} or "
                          f"{option('spectral_norm')}: nothing keeps the critic Lipschitz, so its "
                          f"scores can grow without bound; add {option('gp', 10)}")


class AdversarialModel(GenerativeModel):
    """Base of the GANs: `generator` (z [, labels] -> images) and `discriminator`."""

    Config = AdversarialConfig

    def __init__(self, cfg: AdversarialConfig, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        self.loss = LOSSES[cfg.loss]
        self.generator, self.discriminator = self.build_networks()
        if cfg.ada:   # ADA's augmentation probability: a buffer, so checkpoints keep it
            self.register_buffer("ada_p", torch.zeros(()))
        scored = self.loss.threshold is not None or self.loss.pair is not None
        self.metric_names = (("d_loss",) + (("d_acc",) if scored else ())
                             + tuple(k for k in ("gp", "r1", "r2") if getattr(cfg, k))
                             + ("g_loss", "d_real", "d_fake") + (("ada_p",) if cfg.ada else ()))

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {"g": adam(self.generator.parameters(), self.cfg.lr_g, betas),
                "d": adam(self.discriminator.parameters(), self.cfg.lr_d, betas)}

    def real_batch_size(self, batch_size: int) -> int:
        return batch_size * self.cfg.d_steps   # each D update gets its own real images

    # --- the parts a model may override ------------------------------------------------

    def make_fakes(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """Generated images for a D update (no gradient to G)."""
        with torch.no_grad():
            return self.generator(*self._g_inputs(n, labels))

    def update_discriminator(self, real, fake, labels):
        """One D update on real and fake together; returns (loss, penalties by name, D(real),
        D(fake)), all detached."""
        # R1 and R2 differentiate these very outputs with respect to their inputs.
        real = real.detach().requires_grad_(self.cfg.r1 > 0)
        fake = fake.detach().requires_grad_(self.cfg.r2 > 0)
        out_real = self.discriminate(real, labels)
        out_fake = self.discriminate(fake, labels)
        loss = self.loss.d(out_real, out_fake)
        total, penalties = self.with_penalty(loss, real, fake, labels, out_real, out_fake)
        opt = self.optimizers["d"]
        opt.zero_grad()
        total.backward()
        opt.step()
        if self.cfg.ada:   # a relativistic D's outputs have no origin: a real against its fake
            origin = out_fake if self.loss.pair else (self.loss.threshold or 0.0)
            ada_adjust(self.ada_p, out_real - origin, self.cfg.ada, len(out_real))
        return loss.detach(), penalties, out_real.detach(), out_fake.detach()

    def generator_batch(self, n_real: int) -> int:
        """How many fakes G's update uses, given one D update's real batch size."""
        return n_real

    # --- shared machinery ---------------------------------------------------------------

    def _g_inputs(self, n: int, labels: torch.Tensor | None):
        z = torch.randn(n, self.cfg.latent_dim, device=self.device)
        return (z, labels) if labels is not None else (z,)

    def random_labels(self, n: int) -> torch.Tensor | None:
        """Labels for G's update: uniform over the classes (None if unconditional)."""
        if not self.conditional:
            return None
        return torch.randint(self.num_classes, (n,), device=self.device)

    def labels_for(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The labels D and G take with these images: a conditional model's own (None if
        unconditional)."""
        return labels if self.conditional else None

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's raw outputs (B,); DiffAugment applies to real and fake alike, as it must."""
        if self.cfg.augment:
            x = diff_augment(x)
        elif self.cfg.ada:
            x = ada_augment(x, self.ada_p)
        return self.discriminator(x, labels).view(-1)

    def d_wins_fix(self) -> str:
        """DiffAugment where it is off (made for small data, where D memorises the reals),
        and a slower D (the guide's remedy: separate learning rates)."""
        slower = f"a lower {option('lr_d')} than {self.cfg.lr_d:g}"
        if self.cfg.augment or self.cfg.ada:
            return f"{slower}, or more images"
        return f"{option('augment', True)} (DiffAugment, made for small data) or {slower}"

    def realism_loss(self, images, labels=None):
        """G's loss on D's verdict: low when D takes `images` for real. D itself, not
        discriminate(), which would apply training-time DiffAugment."""
        return self.loss.g(self.discriminator(images, self.labels_for(images, labels)).view(-1))

    @torch.no_grad()
    def judged_samples(self, latents, labels=None):
        """(images, D's logits on them) for rejection sampling: with the BCE loss, D's logit
        estimates log p_data(x) / p_G(x) (Goodfellow et al. 2014, Prop. 1); None otherwise
        (a hinge, Wasserstein or relativistic D's scores are not that ratio)."""
        if self.loss is not LOSSES["bce"]:
            return None
        images = self.sample(latents=latents, labels=labels)
        with evaluating(self.discriminator):
            logits = self.discriminator(images, self.latent_labels(latents, labels, images))
        return images, logits.view(-1)

    def latent_labels(self, latents, labels, images):
        """The labels G drew `images` with: a conditional model's own."""
        return self.labels_for(images, labels)

    def with_penalty(self, loss, real, fake, labels, out_real=None, out_fake=None
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss plus its weighted gradient penalties, and each penalty unweighted and
        detached, by metric name ("gp": WGAN-GP's, "r1", "r2"; empty when all are off).
        R1 and R2 reuse D's outputs `out_real` / `out_fake` where their inputs require
        grad, else run D again."""
        cfg, critic = self.cfg, (lambda x: self.discriminate(x, labels))
        penalties = {}
        if cfg.gp:
            # D itself: WGAN-GP interpolates between the images D is shown, un-augmented.
            penalties["gp"] = gradient_penalty(lambda x: self.discriminator(x, labels), real, fake)
            loss = loss + cfg.gp * penalties["gp"]
        for name, images, out in (("r1", real, out_real), ("r2", fake, out_fake)):
            weight = getattr(cfg, name)
            if not weight:
                continue
            penalties[name] = (zero_centred_penalty(out, images)
                               if out is not None and images.requires_grad
                               else r1_penalty(critic, images))
            loss = loss + weight / 2 * penalties[name]
        return loss, {k: v.detach() for k, v in penalties.items()}

    def training_step(self, real, labels=None):
        G, opt, loss = self.generator, self.optimizers, self.loss
        n = real.shape[0] // self.cfg.d_steps
        for k in range(self.cfg.d_steps):
            part = slice(k * n, (k + 1) * n)
            # Fakes carry the real batch's labels, so D sees the same classes on both sides
            # and the penalty interpolates between images of one class.
            y = self.labels_for(real[part], None if labels is None else labels[part])
            fake = self.make_fakes(n, y)
            d_loss, penalties, out_real, out_fake = self.update_discriminator(real[part], fake, y)

        # G: fresh noise through D. Asking backward for G's gradients only skips D's weight
        # gradients, which would be thrown away (D is not updated here).
        n_g = self.generator_batch(n)
        g_labels = self.random_labels(n_g)
        against = None
        if loss.pair is not None:   # relativistic: D's scores of the last real batch, now
            with torch.no_grad():
                against = self.discriminate(real[part][:n_g], y)
            if y is not None:       # fakes then carry the real batch's labels
                g_labels = y[:n_g]
        g_loss = loss.g_against(self.discriminate(G(*self._g_inputs(n_g, g_labels)), g_labels),
                                against)
        opt["g"].zero_grad()
        g_loss.backward(inputs=list(G.parameters()))
        opt["g"].step()

        metrics = {"d_loss": d_loss}
        accuracy = loss.d_accuracy(out_real, out_fake)
        if accuracy is not None:
            metrics["d_acc"] = accuracy
        metrics.update(penalties)
        metrics["g_loss"] = g_loss.detach()
        # D's mean verdict on the last real and fake batches: the balance of the two players.
        metrics["d_real"] = loss.verdict(out_real).mean()
        metrics["d_fake"] = loss.verdict(out_fake).mean()
        if self.cfg.ada:
            metrics["ada_p"] = self.ada_p.clone()
        return metrics
