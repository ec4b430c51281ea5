"""MIWAE: the guide's VAE on tables, filling missing cells (Mattei & Frellsen, "MIWAE: Deep
Generative Modelling and Imputation of Incomplete Data Sets", ICML 2019).

A VAE trained on the observed cells only: the encoder reads the row with its missing cells
set to 0, and the bound is the importance-weighted one (Burda et al. 2016) with
log p(x_obs | z), the decoder's likelihood of the observed cells alone. The missing cells
then follow from the model:

- single imputation (impute): E[x_mis | x_obs] by self-normalised importance sampling,
  sum_l w_l E[x_mis | z_l] with z_l ~ q(z | x_obs) and w_l proportional to
  p(x_obs | z_l) p(z_l) / q(z_l | x_obs);
- multiple imputation (impute_draws): sampling importance resampling: a z_l drawn with
  probability w_l, then x_mis ~ p(x_mis | z_l).

The paper's UCI set-up: encoder and decoder with 3 layers of 128 tanh units, a latent of
10, K = 20 importance samples in training, a Student's t observation model, Adam(1e-3).
Single imputations use `--impute-samples` (the paper: 10,000; 1,000 here by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Normal

from ..config import ModelConfig, finite_positive, one_of, positive
from .base import adam
from .nets import mlp
from .tables import TableModel


class StudentT(NamedTuple):
    """Student's t (df degrees of freedom, location, scale): the decoder's heavy-tailed
    likelihood, with torch.distributions.StudentT's log density. That class builds and
    validates a Chi2 on every construction, which reads a flag back from the device each
    step (and keeps the step from being a CUDA graph); training needs only the density."""
    df: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:   # df > 3 here, so the mean is the location
        return self.loc

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        y = (value - self.loc) / self.scale
        z = (self.scale.log() + 0.5 * self.df.log() + 0.5 * math.log(math.pi)
             + torch.lgamma(0.5 * self.df) - torch.lgamma(0.5 * (self.df + 1.0)))
        return -0.5 * (self.df + 1.0) * torch.log1p(y ** 2.0 / self.df) - z


@dataclass
class MIWAEConfig(ModelConfig):
    latent_dim: int = field(default=10, metadata={"help": "size of the latent code"})
    hidden: int = field(default=128, metadata={"help": "units of each hidden layer"})
    samples: int = field(default=20, metadata={
        "help": "importance samples K of the training bound (1 is the VAE's ELBO)"})
    impute_samples: int = field(default=1000, metadata={
        "help": "importance samples per row for a single imputation"})
    likelihood: str = field(default="t", metadata={
        "help": "observation model: t (Student's t, the paper's for UCI data) or gaussian",
        "choices": ["t", "gaussian"]})
    lr: float = field(default=1e-3, metadata={"help": "learning rate (Adam)"})

    def __post_init__(self):
        positive(self, "latent_dim", "hidden", "samples", "impute_samples")
        one_of(self, "likelihood", ("t", "gaussian"))
        finite_positive(self, "lr")



class MIWAE(TableModel):
    """MIWAE (Mattei & Frellsen 2019): an importance-weighted VAE of incomplete tables."""

    Config = MIWAEConfig
    imputes: ClassVar[bool] = True
    sampling_network: ClassVar[str] = "decoder"
    metric_names = ("loss",)
    train_defaults: ClassVar[dict] = {"steps": 10_000, "batch_size": 64}

    def __init__(self, cfg: MIWAEConfig, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        (width,) = self.image_shape
        self.encoder = mlp(width, cfg.hidden, 2 * cfg.latent_dim, nn.Tanh)
        self.decoder = mlp(cfg.latent_dim, cfg.hidden, 3 * width, nn.Tanh)

    def configure_optimizers(self):
        return {"all": adam(self.parameters(), self.cfg.lr, (0.9, 0.999))}

    def _weights(self, x: torch.Tensor, m: torch.Tensor, k: int, generator=None):
        """(log w (k, B), the observation model p(x | z_l) for each sample)."""
        mu, raw = self.encoder(x).chunk(2, dim=1)
        # validate_args=False: the scales are positive by construction, and the checks
        # would read a flag back from the device on every call (a sync each step, and a
        # step that cannot be a CUDA graph); NaN is caught by the trainer instead.
        q = Normal(mu, F.softplus(raw) + 1e-4, validate_args=False)
        eps = torch.randn((k, *mu.shape), generator=generator,
                          device="cpu" if generator else mu.device).to(mu.device)
        z = q.loc + q.scale * eps                                       # (k, B, d), reparametrised
        loc, scale, df = self.decoder(z).chunk(3, dim=-1)
        scale = F.softplus(scale) + 1e-3
        p_x = (StudentT(F.softplus(df) + 3, loc, scale) if self.cfg.likelihood == "t"
               else Normal(loc, scale, validate_args=False))
        log_px = (p_x.log_prob(x) * m).sum(-1)                         # observed cells only
        log_pz = Normal(0.0, 1.0, validate_args=False).log_prob(z).sum(-1)
        log_qz = q.log_prob(z).sum(-1)
        return log_px + log_pz - log_qz, p_x

    def training_step(self, real, labels=None):
        m = (~torch.isnan(real)).float()
        x = torch.nan_to_num(real, 0.0)
        log_w, _ = self._weights(x, m, self.cfg.samples)
        bound = (torch.logsumexp(log_w, dim=0) - math.log(self.cfg.samples)).mean()
        opt = self.optimizers["all"]
        opt.zero_grad()
        (-bound).backward()
        opt.step()
        return {"loss": -bound.detach()}

    def _posteriors(self, x: torch.Tensor, generator):
        """Per chunk of rows: (rows, mask, rows with 0 for NaN, log w (L, B), p(x | z_l)),
        with L = impute_samples; chunks keep L x rows x columns numbers in memory bounded."""
        step = max(1, 2_000_000 // (self.cfg.impute_samples * max(1, x.shape[1])))
        for s in range(0, len(x), step):
            part = x[s:s + step]
            m = (~torch.isnan(part)).float()
            x0 = torch.nan_to_num(part, 0.0)
            log_w, p_x = self._weights(x0, m, self.cfg.impute_samples, generator)
            yield m, x0, log_w, p_x

    @torch.no_grad()
    def impute(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rows with NaN where missing -> filled with E[x_mis | x_obs] (self-normalised
        importance sampling with impute_samples draws per row)."""
        out = []
        for m, x0, log_w, p_x in self._posteriors(x, generator):
            w = torch.softmax(log_w, dim=0).unsqueeze(-1)               # (L, B, 1)
            out.append(m * x0 + (1 - m) * (w * p_x.mean).sum(0))
        return torch.cat(out)

    @torch.no_grad()
    def impute_draws(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k completions (k, N, D) by sampling importance resampling."""
        out = []
        for m, x0, log_w, p_x in self._posteriors(x, generator):
            rows = torch.arange(len(x0))
            draws = []
            for _ in range(k):
                pick = torch.multinomial(torch.softmax(log_w, 0).T.cpu(), 1, generator=generator).view(-1)
                loc, scale = p_x.loc[pick, rows], p_x.scale[pick, rows]
                noise = torch.randn(loc.shape, generator=generator).to(x.device)
                if self.cfg.likelihood == "t":   # a t draw: normal / sqrt(chi2 / df)
                    df = p_x.df[pick, rows]
                    # torch's gamma sampler takes no generator: seed the global one from it
                    seed = int(torch.randint(2**62, (1,), generator=generator))
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(seed)
                        chi2 = torch.distributions.Chi2(df.cpu()).sample().to(x.device)
                    value = loc + scale * noise / torch.sqrt(chi2 / df)
                else:
                    value = loc + scale * noise
                draws.append(m * x0 + (1 - m) * value)
            out.append(torch.stack(draws))
        return torch.cat(out, dim=1)
