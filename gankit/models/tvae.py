"""TVAE: the guide's VAE on whole table rows (Xu, Skoularidou, Cuesta-Infante &
Veeramachaneni, "Modeling Tabular Data using Conditional GAN", NeurIPS 2019, section 4.4).

Rows are learnt encoded as CTGAN learns them (data/row_encoding.py). The encoder maps a row
to a Gaussian code; the decoder maps a code to a row's likelihood: each alpha a Gaussian
around tanh of its output, with a standard deviation learnt per column (clamped to
[0.01, 1] after each step), and each one-hot block a softmax. The loss is the negative ELBO
with the reconstruction term weighted by `loss_factor` (2).

Sampling draws a code from the prior and then a row from the decoder's likelihood: each
alpha with its learnt noise, and each block's choice from its softmax. The authors' code
takes each block's most likely choice instead (`--argmax`): on Adult, after 3,000 steps,
that gave column shapes of 0.908 and a train-on-synthetic F1 of 0.609, against 0.974 and
0.640 drawn from the softmax (the same run; docs/measurements/synthetic.md). The argmax
over-writes the commonest modes and categories wherever the decoder is unsure.

Sizes and training are the authors' code's: two layers of 128 in each network (ReLU), a
code of 128, Adam(1e-3) with weight decay 1e-5, batch 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn

from ..config import ModelConfig, finite_nonnegative, finite_positive, positive
from .base import adam
from .nets import mlp
from .tables import Blocks, TableGenerator

SAMPLE_CHUNK = 10_000
IMPUTE_STEPS = 20     # the chain's steps before its first state counts
IMPUTE_DRAWS = 20     # states averaged into a single imputation
SIGMA = (0.01, 1.0)   # the learnt standard deviations' range


@dataclass
class TVAEConfig(ModelConfig):
    latent_dim: int = field(default=128, metadata={"help": "size of the code"})
    hidden: int = field(default=128, metadata={"help": "units of each network's two layers"})
    loss_factor: float = field(default=2.0, metadata={
        "help": "weight of the reconstruction term against the KL term"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate (Adam)"})
    weight_decay: float = field(default=1e-5, metadata={"help": "Adam's weight decay"})
    argmax: bool = field(default=False, metadata={
        "help": "sample each one-hot block's most likely choice, as the authors' code does, "
                "instead of drawing it from the decoder's softmax"})

    def __post_init__(self):
        positive(self, "latent_dim", "hidden")
        finite_positive(self, "loss_factor", "lr")
        finite_nonnegative(self, "weight_decay")



class Decoder(nn.Module):
    """A code -> a row's raw outputs, and the learnt standard deviation of each alpha."""

    def __init__(self, latent_dim: int, hidden: int, width: int, alphas: int):
        super().__init__()
        self.net = mlp(latent_dim, hidden, width)
        self.sigma = nn.Parameter(torch.full((alphas,), 0.1))

    def forward(self, z):
        return self.net(z)


class TVAE(TableGenerator):
    """TVAE (Xu et al. 2019): a variational autoencoder of table rows."""

    Config = TVAEConfig
    sampling_network: ClassVar[str] = "decoder"
    imputes: ClassVar[bool] = True
    metric_names = ("loss", "recon", "kl")
    # 10,000 steps of 500 rows: 154 passes over Adult. On it, against 3,000 steps, every
    # score improved (docs/measurements/synthetic.md); the paper's code runs 300 epochs.
    train_defaults: ClassVar[dict] = {"steps": 10_000, "batch_size": 500}

    def __init__(self, cfg: TVAEConfig, image_shape, num_classes=0, layout=None):
        super().__init__(cfg, image_shape, num_classes, layout)
        width = self.image_shape[0]
        self.blocks = Blocks(layout)
        self.encoder = mlp(width, cfg.hidden, 2 * cfg.latent_dim)
        self.decoder = Decoder(cfg.latent_dim, cfg.hidden, width, len(layout.alphas))

    def configure_optimizers(self):
        return {"all": adam(self.parameters(), self.cfg.lr, (0.9, 0.999), self.cfg.weight_decay)}

    def training_step(self, real, labels=None):
        cfg = self.cfg
        mu, logvar = self.encoder(real).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        raw = self.decoder(z)
        sigma = self.decoder.sigma
        a = self.blocks.alpha
        gauss = ((real[:, a] - torch.tanh(raw[:, a])) ** 2 / (2 * sigma ** 2) + torch.log(sigma)).sum(1)
        recon = (gauss + self.blocks.cross_entropy(raw, real).sum(1)).mean()
        kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).mean()
        loss = cfg.loss_factor * recon + kl
        opt = self.optimizers["all"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            sigma.clamp_(*SIGMA)
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def sample_rows(self, n, condition=None, generator=None):
        device, out = self.device, []
        for start in range(0, n, SAMPLE_CHUNK):
            m = min(SAMPLE_CHUNK, n - start)
            z = torch.randn(m, self.cfg.latent_dim, generator=generator).to(device)
            out.append(self._draw(self.sampler(z), generator))
        return torch.cat(out) if out else torch.zeros(0, self.image_shape[0], device=device)

    def _draw(self, raw: torch.Tensor, generator=None, argmax: bool | None = None) -> torch.Tensor:
        """A row from the decoder's outputs: each alpha with its learnt noise, each block's
        choice drawn from its softmax (tau 1: a Gumbel-softmax's argmax is such a draw), or
        its argmax."""
        argmax = self.cfg.argmax if argmax is None else argmax
        rows = self.blocks.one_hot(raw if argmax else self.blocks.activate(raw, 1.0, generator))
        a = self.blocks.alpha
        noise = torch.randn(len(raw), len(a), generator=generator).to(raw.device)
        rows[:, a] = (torch.tanh(raw[:, a]) + noise * self.sampler.sigma).clamp(-1, 1)
        return rows

    # --- imputation: the observed cells condition the rest ------------------------------

    @torch.no_grad()
    def impute_draws(self, x, k, generator=None):
        """k completions (k, N, D) of scaled rows (NaN = missing) by a Markov chain
        (Rezende et al. 2014, section 5.2): fill the missing cells, encode the row, decode
        a draw, put its missing cells back, IMPUTE_STEPS times; the chain's last k states."""
        values = x.double().cpu().numpy()
        missing = np.isnan(values)
        filled = np.where(missing, np.nanmean(values, 0), values)
        filled = np.where(np.isnan(filled), 0.0, filled)   # a column with no observed cell
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        states = []
        for step in range(IMPUTE_STEPS + k - 1):
            rows = torch.from_numpy(self.layout.encode(filled, rng)).to(self.device)
            mu, logvar = self.encoder(rows).chunk(2, dim=1)
            noise = torch.randn(mu.shape, generator=generator).to(self.device)
            raw = self.sampler(mu + noise * torch.exp(0.5 * logvar))
            raw[:, self.missing_slots] = float("-inf")   # the cell is there, just unseen
            drawn = self.layout.decode(self._draw(raw, generator, argmax=False).cpu().numpy())
            filled = np.where(missing, drawn, values)
            if step >= IMPUTE_STEPS - 1:
                states.append(filled)
        return torch.from_numpy(np.stack(states)).to(x.dtype)

    @torch.no_grad()
    def impute(self, x, generator=None):
        """Rows filled with the mean of IMPUTE_DRAWS states of the chain (a discrete column's
        commonest value among them)."""
        draws = self.impute_draws(x, IMPUTE_DRAWS, generator).double().numpy()
        out = draws.mean(0)
        for j, code in enumerate(self.layout.codes):
            if code.modes is None:   # a level, not an average of levels
                out[:, j] = _commonest(draws[:, :, j])
        return torch.from_numpy(out).to(x.dtype)

    @property
    def missing_slots(self) -> list[int]:
        return [span.start + code.levels for code, span in zip(self.layout.codes, self.layout.choices)
                if code.missing]


def _commonest(values: np.ndarray) -> np.ndarray:
    """(k, N) -> (N,): each column's most frequent value (the first, on a tie)."""
    out = values[0].copy()
    best = np.zeros(values.shape[1])
    for v in values:
        count = (values == v).sum(0)
        better = count > best
        out[better], best[better] = v[better], count[better]
    return out
