"""A model family defined here, in the test, plugs into every use without an edit to them.

ClassPCA is about the simplest conditional model with an exact likelihood: probabilistic
PCA (Tipping & Bishop 1999) with a mean per class, x = mu_y + W z + noise, z ~ N(0, I),
so p(x|y) = N(mu_y, W W^T + diag(psi)), trained by maximum likelihood. It declares what it
can do (conditional, has_likelihood) and implements the hooks; registering it is one line.
The trainer, `gankit sample`, `interpolate`, `inpaint` and `classify` then work on it as on
the built-in models.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import LowRankMultivariateNormal

import gankit
from gankit.cli import main
from gankit.config import DataConfig, ModelConfig
from gankit.inpaint import parse_mask
from gankit.data.reference import reference_split
from gankit.models import MODELS
from gankit.models.base import GenerativeModel

from helpers import tiny_run


@dataclass
class ClassPCAConfig(ModelConfig):
    latent_dim: int = field(default=16, metadata={"help": "principal components"})
    lr: float = field(default=0.01, metadata={"help": "learning rate (Adam)"})


class Decoder(nn.Module):
    """z (B, latent_dim), labels (B,) -> the mean of p(x|z, y), mu_y + W z, as images."""

    def __init__(self, latent_dim: int, num_classes: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        d = math.prod(image_shape)
        self.mu = nn.Parameter(torch.zeros(num_classes, d))
        self.w = nn.Parameter(torch.randn(d, latent_dim) * 0.01)
        self.log_psi = nn.Parameter(torch.zeros(d))

    def density(self, labels) -> LowRankMultivariateNormal:
        # psi has a floor: a pixel that is paper in every training image would otherwise
        # get a variance near 0 and veto any test image with ink there.
        return LowRankMultivariateNormal(self.mu[labels], self.w, 0.01 + self.log_psi.exp())

    def forward(self, z, labels):
        return (self.mu[labels] + z @ self.w.T).clamp(-1, 1).view(-1, *self.image_shape)


class ClassPCA(GenerativeModel):
    """Probabilistic PCA with a mean per class, defined in a test."""

    Config = ClassPCAConfig
    metric_names = ("nll",)
    sampling_network = "decoder"
    conditional = True
    has_likelihood = True

    def __init__(self, cfg, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        self.decoder = Decoder(cfg.latent_dim, num_classes, self.image_shape)

    def configure_optimizers(self):
        return {"fit": torch.optim.Adam(self.decoder.parameters(), lr=self.cfg.lr)}

    def training_step(self, real, labels):
        loss = -self.log_likelihood(real, labels).mean() / real[0].numel()   # nats per pixel
        opt = self.optimizers["fit"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"nll": loss.detach()}

    def log_likelihood(self, images, labels=None, samples=1, generator=None):
        return self.decoder.density(labels).log_prob(images.flatten(1))   # exact: no sampling


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """ClassPCA registered (one line), trained by gankit's trainer on offline MNIST."""
    folder = tmp_path_factory.mktemp("class-pca")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, "class-pca", ClassPCA)
        gankit.train(out=str(folder / "run"), **tiny_run(
            model="class-pca", offline=True, steps=300, batch_size=64, log_every=None,
            sample_every=300, checkpoint_every=300))
        _, held, _ = reference_split(DataConfig(data="mnist", offline=True))
        keep = torch.arange(0, len(held), 10)              # 10 of each class
        images = held.images[keep].squeeze(1).numpy()
        np.save(folder / "digits.npy", images)
        np.save(folder / "labels.npy", held.labels[keep].numpy())
        yield folder


def test_the_trainer_trains_it(run):
    model = gankit.load(run / "run")
    assert isinstance(model, ClassPCA) and model.class_counts == [400] * 10
    assert (run / "run" / "samples" / "step_000300.png").is_file()


def test_sample_and_interpolate(run):
    assert main(["sample", "--checkpoint", str(run / "run"), "--out", str(run / "s.png"),
                 "--npy", str(run / "s.npy"), "--seed", "1"]) == 0
    assert np.load(run / "s.npy").shape == (100, 28, 28)   # a row of 10 per class
    assert main(["interpolate", "--checkpoint", str(run / "run"), "--out", str(run / "w.gif"),
                 "--points", "2", "--frames", "4", "--label", "3", "--seed", "1"]) == 0
    assert (run / "w.gif").is_file() and (run / "w.png").is_file()


def test_inpaint_keeps_known_pixels_and_fills_the_holes(run):
    assert main(["inpaint", "--checkpoint", str(run / "run"), "--images", str(run / "digits.npy"),
                 "--mask", "random:0.5", "--out", str(run / "i.png"),
                 "--npy", str(run / "i.npy"), "--restarts", "1"]) == 0
    before, after = np.load(run / "digits.npy"), np.load(run / "i.npy")
    known = parse_mask("random:0.5", (1, 28, 28), len(before), seed=0)[:, 0].numpy()
    assert np.array_equal(before[known], after[known])
    # The fill is the model's: the latent code found from the known pixels predicts the
    # missing ones far better than paper does (measured: MSE 0.018 against 0.119).
    def mse(fill):
        return (((fill[~known].astype(float) - before[~known]) / 255) ** 2).mean()
    assert mse(after) < 0.5 * mse(np.zeros_like(before))


def test_classify_by_its_likelihood(run, capsys):
    assert main(["classify", "--checkpoint", str(run / "run"), "--images", str(run / "digits.npy"),
                 "--labels", str(run / "labels.npy"), "--samples", "1", "--json",
                 "--confusion", str(run / "c.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 100 and report["prior"].startswith("training class frequencies")
    assert report["accuracy"] > 0.4, report["accuracy"]   # chance is 0.1
