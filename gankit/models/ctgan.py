"""CTGAN: a conditional GAN of tables (Xu, Skoularidou, Cuesta-Infante & Veeramachaneni,
"Modeling Tabular Data using Conditional GAN", NeurIPS 2019).

Rows are learnt encoded (data/row_encoding.py): a numeric column as its mode-specific
normalisation (alpha and a one-hot mode), a discrete one as a one-hot level. What the paper
adds to a WGAN-GP on such rows:

- The conditional vector. Each row G makes is conditioned on one discrete column taking
  one value, a one-hot over every discrete column's levels; a cross-entropy term makes G
  honour it. Sampling can then fix a column's value (`gankit synth --condition`).
- Training-by-sampling. The conditions are drawn so that rare categories are learnt: a
  discrete column uniformly, then a value with probability proportional to the log of its
  frequency, then a real row with that value, which D sees with the same condition. Here
  the trainer draws rows with each row's probability under that scheme (row_weights) and
  the step draws which of the row's columns was the condition from its posterior: the
  same joint distribution of (column, value, row), without a loop over rows.
- PacGAN: D judges `pac` rows at once (10), which lets it see a lack of variety.
- G: two residual layers (each's output concatenated to its input) of 256 with BatchNorm
  and ReLU; tanh for alphas and a Gumbel-softmax with tau 0.2 for one-hot blocks. D: two
  layers of 256, LeakyReLU(0.2), dropout 0.5. WGAN-GP with lambda 10; Adam(2e-4, (0.5,
  0.9)) with weight decay 1e-6 for both, batch 500: the paper's and its authors' settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn

from ..config import ModelConfig, finite_nonnegative, finite_positive, positive
from ..runtime import evaluating
from .base import adam
from .losses import gradient_penalty
from .tables import Blocks, TableGenerator

SAMPLE_CHUNK = 10_000   # rows per pass when sampling


@dataclass
class CTGANConfig(ModelConfig):
    latent_dim: int = field(default=128, metadata={"help": "size of G's noise"})
    g_hidden: int = field(default=256, metadata={
        "help": "units of each of G's two residual layers"})
    d_hidden: int = field(default=256, metadata={"help": "units of each of D's two layers"})
    pac: int = field(default=10, metadata={
        "help": "rows D judges together (PacGAN); the batch is rounded down to a multiple"})
    gp_weight: float = field(default=10.0, metadata={"help": "WGAN-GP's lambda"})
    tau: float = field(default=0.2, metadata={
        "help": "temperature of the Gumbel-softmax of G's one-hot outputs"})
    log_frequency: bool = field(default=True, metadata={
        "help": "draw training conditions by the log of each value's frequency (rare values "
                "learnt better) rather than the frequency"})
    lr_g: float = field(default=2e-4, metadata={"help": "learning rate of G (Adam)"})
    lr_d: float = field(default=2e-4, metadata={"help": "learning rate of D (Adam)"})
    weight_decay: float = field(default=1e-6, metadata={"help": "Adam's weight decay"})

    def __post_init__(self):
        positive(self, "latent_dim", "g_hidden", "d_hidden", "pac")
        finite_nonnegative(self, "gp_weight", "weight_decay")
        finite_positive(self, "tau", "lr_g", "lr_d")


class Residual(nn.Module):
    """Linear, BatchNorm, ReLU, with the input passed on beside the output."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.net(x), x], dim=1)


class Generator(nn.Module):
    """(noise, condition) -> raw outputs of a row; Blocks.activate makes them a row."""

    def __init__(self, n_in: int, hidden: int, width: int):
        super().__init__()
        self.net = nn.Sequential(Residual(n_in, hidden), Residual(n_in + hidden, hidden),
                                 nn.Linear(n_in + 2 * hidden, width))

    def forward(self, z, cond):
        return self.net(torch.cat([z, cond], dim=1))


class CTGAN(TableGenerator):
    """CTGAN (Xu et al. 2019): a conditional WGAN-GP of table rows."""

    Config = CTGANConfig
    conditions_rows: ClassVar[bool] = True
    metric_names = ("d_loss", "g_loss", "cond_loss", "gp")
    # 10,000 steps of 500 rows: 154 passes over Adult. On it, against 3,000 steps, every
    # score improved (docs/measurements/synthetic.md); the paper's code runs 300 epochs.
    train_defaults: ClassVar[dict] = {"steps": 10_000, "batch_size": 500}

    def __init__(self, cfg: CTGANConfig, image_shape, num_classes=0, layout=None):
        super().__init__(cfg, image_shape, num_classes, layout)
        width = self.image_shape[0]
        self.blocks = Blocks(layout)
        self._conditions_from(layout)
        n_cond = len(self.cond_index)
        self.generator = Generator(cfg.latent_dim + n_cond, cfg.g_hidden, width)
        self.discriminator = nn.Sequential(
            nn.Linear(cfg.pac * (width + n_cond), cfg.d_hidden), nn.LeakyReLU(0.2), nn.Dropout(0.5),
            nn.Linear(cfg.d_hidden, cfg.d_hidden), nn.LeakyReLU(0.2), nn.Dropout(0.5),
            nn.Linear(cfg.d_hidden, 1))

    def _conditions_from(self, layout) -> None:
        """The conditional vector's layout: its positions in a row (every discrete column's
        block, in order), which of them belong to each column, and the training counts."""
        discrete = layout.discrete()
        # which of Blocks' blocks (one a column) are the discrete columns', for the
        # conditional loss of every step
        self.discrete_blocks = [j for j, _, _ in discrete]
        index, owner, counts = [], [], []
        for c, (_, span, n) in enumerate(discrete):
            index += range(span.start, span.start + span.width)
            owner += [c] * span.width
            counts += n
        counts = torch.tensor(counts, dtype=torch.float64)
        owner = torch.tensor(owner, dtype=torch.long)
        columns = torch.zeros(len(discrete), len(index))
        columns[owner, torch.arange(len(index))] = 1
        # A value's chance of being the training condition, given its column: proportional
        # to log(1 + count) (or the count); over the count, the chance per row holding it.
        weight = torch.log1p(counts) if self.cfg.log_frequency else counts.clone()
        total = torch.zeros(len(discrete), dtype=torch.float64).index_add_(0, owner, weight)
        per_row = torch.where(counts > 0, weight / total[owner] / counts.clamp_min(1), 0.0)
        # The frequency of each value in its column: unconditional samples draw from it.
        freq = torch.zeros(len(discrete), dtype=torch.float64).index_add_(0, owner, counts)
        for name, value in (("cond_index", torch.tensor(index, dtype=torch.long)),
                            ("cond_columns", columns), ("per_row", per_row.float()),
                            ("frequency", (counts / freq[owner].clamp_min(1)).float())):
            self.register_buffer(name, value, persistent=False)   # from the layout: not saved

    def configure_optimizers(self):
        cfg = self.cfg
        return {"g": adam(self.generator.parameters(), cfg.lr_g, (0.5, 0.9), cfg.weight_decay),
                "d": adam(self.discriminator.parameters(), cfg.lr_d, (0.5, 0.9), cfg.weight_decay)}

    def real_batch_size(self, batch_size: int) -> int:
        return max(self.cfg.pac, batch_size // self.cfg.pac * self.cfg.pac)

    def row_weights(self, samples: torch.Tensor) -> torch.Tensor | None:
        """Training-by-sampling: each row's chance of being drawn, the sum over discrete
        columns of (1 / columns) x (its value's chance) / (rows with that value)."""
        if len(self.cond_index) == 0:
            return None
        return self._chances(samples.to(self.per_row.device)).sum(1)

    def _chances(self, rows: torch.Tensor) -> torch.Tensor:
        """(N, discrete columns): for each row, the chance of drawing it through each column."""
        return (rows[:, self.cond_index] * self.per_row) @ self.cond_columns.T

    def _conditions(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional vectors of `real`'s rows, the chosen column one-hot): the column each
        row was drawn through, drawn from its posterior given the row."""
        if len(self.cond_index) == 0:
            return real.new_zeros(len(real), 0), real.new_zeros(len(real), 0)
        chances = self._chances(real).clamp_min(1e-12)
        pick = nn.functional.one_hot(torch.multinomial(chances, 1).squeeze(1),
                                     len(self.cond_columns)).float()
        return real[:, self.cond_index] * (pick @ self.cond_columns), pick

    def _pack(self, rows: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.cat([rows, cond], dim=1).view(-1, self.cfg.pac * (rows.shape[1] + cond.shape[1]))

    def training_step(self, real, labels=None):
        cfg, opt = self.cfg, self.optimizers
        n = len(real)
        cond, pick = self._conditions(real)

        perm = torch.randperm(n, device=real.device)   # G's conditions: the same values
        with torch.no_grad():
            fake = self.blocks.activate(self.generator(
                torch.randn(n, cfg.latent_dim, device=real.device), cond[perm]), cfg.tau)
        real_in, fake_in = self._pack(real, cond), self._pack(fake, cond[perm])
        d_loss = self.discriminator(fake_in).mean() - self.discriminator(real_in).mean()
        gp = gradient_penalty(self.discriminator, real_in, fake_in)
        opt["d"].zero_grad()
        (d_loss + cfg.gp_weight * gp).backward()
        opt["d"].step()

        perm = torch.randperm(n, device=real.device)
        c, chosen = cond[perm], pick[perm]
        raw = self.generator(torch.randn(n, cfg.latent_dim, device=real.device), c)
        g_loss = -self.discriminator(self._pack(self.blocks.activate(raw, cfg.tau), c)).mean()
        cond_loss = self._condition_loss(raw, c, chosen)
        opt["g"].zero_grad()
        (g_loss + cond_loss).backward(inputs=list(self.generator.parameters()))
        opt["g"].step()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "cond_loss": cond_loss.detach(), "gp": gp.detach()}

    def _condition_loss(self, raw: torch.Tensor, cond: torch.Tensor, chosen: torch.Tensor):
        """Cross-entropy of G's block for each row's conditioned column against its value."""
        if cond.shape[1] == 0:
            return raw.new_zeros(())
        target = torch.zeros_like(raw)
        target[:, self.cond_index] = cond
        ce = self.blocks.cross_entropy(raw, target)[:, self.discrete_blocks]
        return (ce * chosen).sum(1).mean()


    @torch.no_grad()
    def sample_rows(self, n, condition=None, generator=None):
        device, cfg = self.device, self.cfg
        out = []
        with evaluating(self.generator):
            for start in range(0, n, SAMPLE_CHUNK):
                m = min(SAMPLE_CHUNK, n - start)
                z = torch.randn(m, cfg.latent_dim, generator=generator).to(device)
                cond = self._sampling_conditions(m, condition, generator).to(device)
                rows = self.blocks.one_hot(self.blocks.activate(self.generator(z, cond), cfg.tau,
                                                                generator))
                if condition is not None:   # the condition itself, exactly
                    span = self.layout.choices[condition[0]]
                    rows[:, span.start:span.start + span.width] = 0
                    rows[:, span.start + condition[1]] = 1
                out.append(rows)
        return torch.cat(out) if out else torch.zeros(0, self.image_shape[0], device=device)

    def _sampling_conditions(self, m: int, condition, generator) -> torch.Tensor:
        """Conditional vectors for m samples: `condition`'s value, else a column drawn
        uniformly and a value by its frequency (the data's own mix, not training's)."""
        c = torch.zeros(m, len(self.cond_index))
        if len(self.cond_index) == 0:
            return c
        if condition is not None:
            j, k = condition
            column = [b for b, (jj, _, _) in enumerate(self.layout.discrete()) if jj == j][0]
            c[:, int(self.cond_columns[column].nonzero()[0]) + k] = 1
            return c
        columns = torch.randint(len(self.cond_columns), (m,), generator=generator)
        p = self.cond_columns.cpu()[columns] * self.frequency.cpu()
        c[torch.arange(m), torch.multinomial(p, 1, generator=generator).squeeze(1)] = 1
        return c

