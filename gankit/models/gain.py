"""GAIN: the guide's GAN on tables, filling missing cells (Yoon, Jordon & van der Schaar,
"GAIN: Missing Data Imputation using Generative Adversarial Nets", ICML 2018).

G sees a row with its missing cells replaced by small noise, and the mask, and proposes
every cell; the observed cells are put back. D sees the completed row and a hint and says,
cell by cell, which ones were observed. G learns to make D unsure about the cells it
filled, and to reproduce the observed ones (the reconstruction term, weighted by alpha).

The hint tells D part of the mask, so that the only equilibrium is G's learning the true
conditional distribution (the paper's Theorem 2). The paper's hint is H = B*M + 0.5*(1-B)
with B ~ Bernoulli(hint_rate); the authors' code uses H = B*M and alpha = 100, where the
paper's experiments used other values: both are here (--hint paper|code, --alpha), and the
defaults are those benchmarks/impute.py measured best on a validation split
(docs/measurements/imputation.md). Networks, noise U(0, 0.01), Xavier initialisation, Adam, batch 128 and 10,000
steps are the authors' code's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn

from ..config import ModelConfig, finite_nonnegative, finite_positive, one_of, unit_interval
from .base import adam
from .tables import TableModel

EPS = 1e-8
NOISE = 0.01    # missing cells enter G as U(0, NOISE), as in the authors' code


@dataclass
class GAINConfig(ModelConfig):
    hidden: int = field(default=0, metadata={
        "help": "units of G's and D's two hidden layers (0: as many as the table has "
                "columns, as the authors' code)"})
    alpha: float = field(default=100.0, metadata={
        "help": "weight of G's reconstruction of the observed cells against its "
                "adversarial loss (the authors' code: 100)"})
    hint_rate: float = field(default=0.9, metadata={
        "help": "probability that the hint reveals a cell of the mask"})
    hint: str = field(default="code", metadata={
        "help": "paper (H = B*M + 0.5*(1-B); D scored on the cells not revealed) or code "
                "(H = B*M; D scored on every cell)",
        "choices": ["paper", "code"]})
    lr: float = field(default=1e-3, metadata={"help": "learning rate of G and D (Adam)"})

    def __post_init__(self):
        if self.hidden < 0:
            from ..errors import GankitError
            raise GankitError(f"hidden must be >= 0, got {self.hidden}")
        finite_nonnegative(self, "alpha")
        unit_interval(self, "hint_rate")
        one_of(self, "hint", ("paper", "code"))
        finite_positive(self, "lr")


def _mlp(width: int, hidden: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2 * width, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                        nn.ReLU(), nn.Linear(hidden, width), nn.Sigmoid())
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return net


class GAIN(TableModel):
    """GAIN (Yoon et al. 2018): a GAN that fills the missing cells of a table."""

    Config = GAINConfig
    imputes: ClassVar[bool] = True
    metric_names = ("d_loss", "g_loss", "mse")
    train_defaults: ClassVar[dict] = {"steps": 10_000, "batch_size": 128}

    def __init__(self, cfg: GAINConfig, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        (width,) = self.image_shape
        hidden = cfg.hidden or width
        self.generator = _mlp(width, hidden)        # (row, mask) -> every cell, in [0, 1]
        self.discriminator = _mlp(width, hidden)    # (row, hint) -> P(cell was observed)

    def configure_optimizers(self):
        return {"g": adam(self.generator.parameters(), self.cfg.lr, (0.9, 0.999)),
                "d": adam(self.discriminator.parameters(), self.cfg.lr, (0.9, 0.999))}

    def _fill(self, x: torch.Tensor, m: torch.Tensor, generator=None) -> torch.Tensor:
        noise = torch.rand(x.shape, generator=generator, device="cpu" if generator else x.device)
        x_in = m * x + (1 - m) * NOISE * noise.to(x.device)
        return self.generator(torch.cat([x_in, m], dim=1))

    def training_step(self, real, labels=None):
        cfg, opt = self.cfg, self.optimizers
        m = (~torch.isnan(real)).float()
        x = torch.nan_to_num(real, 0.0)
        b = (torch.rand_like(x) < cfg.hint_rate).float()
        if cfg.hint == "paper":
            h, scored = b * m + 0.5 * (1 - b), 1 - b   # D learns on the cells not revealed
        else:
            h, scored = b * m, torch.ones_like(b)

        with torch.no_grad():
            g = self._fill(x, m)
        d = self.discriminator(torch.cat([m * x + (1 - m) * g, h], dim=1))
        d_loss = -(scored * (m * torch.log(d + EPS) + (1 - m) * torch.log(1 - d + EPS))).sum() / scored.sum().clamp_min(1)
        opt["d"].zero_grad()
        d_loss.backward()
        opt["d"].step()

        g = self._fill(x, m)
        d = self.discriminator(torch.cat([m * x + (1 - m) * g, h], dim=1))
        adversarial = -(scored * (1 - m) * torch.log(d + EPS)).sum() / scored.sum().clamp_min(1)
        mse = ((m * (x - g)) ** 2).sum() / m.sum().clamp_min(1)
        g_loss = adversarial + cfg.alpha * mse
        opt["g"].zero_grad()
        g_loss.backward(inputs=list(self.generator.parameters()))
        opt["g"].step()
        return {"d_loss": d_loss.detach(), "g_loss": adversarial.detach(), "mse": mse.detach()}

    @torch.no_grad()
    def impute(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rows with NaN where missing -> the same rows filled (one draw of G's noise)."""
        m = (~torch.isnan(x)).float()
        x0 = torch.nan_to_num(x, 0.0)
        return m * x0 + (1 - m) * self._fill(x0, m, generator)

    @torch.no_grad()
    def impute_draws(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k completions (k, N, D), each with its own noise: GAIN's multiple imputation."""
        return torch.stack([self.impute(x, generator) for _ in range(k)])
