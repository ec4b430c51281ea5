"""The autoencoders: golden values for the VAE terms, the ELBO's assembly, the Gaussian
mixture fitted to the codes, and a short learning check on real digits."""

import math

import pytest
import torch
from torch import nn

from gankit.config import DataConfig
from gankit.data import load_data, to_float
from gankit.errors import GankitError
from gankit.models.losses import bernoulli_nll, gaussian_nll, kl_normal
from gankit.models.vae import VAEConfig

SHAPE = (1, 28, 28)


def images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g)


# --- the loss terms ------------------------------------------------------------------------

def test_kl_of_the_prior_itself_is_zero():
    assert torch.equal(kl_normal(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3))


def test_kl_hand_computed():
    # KL = 1/2 sum_d (mu^2 + var - 1 - log var)
    #   dim 1: mu 1, var 1:  1 + 1 - 1 - 0      = 1
    #   dim 2: mu 2, var 4:  4 + 4 - 1 - log 4  = 7 - log 4
    #   -> 1/2 (8 - log 4) = 4 - log 2 = 3.30685...
    kl = kl_normal(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, math.log(4.0)]]))
    assert kl.shape == (1,)
    assert kl.item() == pytest.approx(4 - math.log(2), rel=1e-6)


def test_kl_is_non_negative_and_summed_over_dims():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 8, generator=g) * 2, torch.randn(64, 8, generator=g) * 2
    kl = kl_normal(mu, logvar)
    assert kl.shape == (64,) and (kl >= 0).all()
    # Duplicating every latent dimension doubles a sum (and would leave a mean unchanged).
    doubled = kl_normal(torch.cat([mu, mu], 1), torch.cat([logvar, logvar], 1))
    torch.testing.assert_close(doubled, 2 * kl)


def test_bernoulli_nll_by_hand():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 4, 4, generator=g) * 3
    x = torch.rand(3, 1, 4, 4, generator=g)          # soft targets in [0, 1] too
    p = torch.sigmoid(logits.double())
    by_hand = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, x).double(), by_hand)
    # logit 0 is p = 1/2: log 2 nats per pixel whatever the target.
    assert bernoulli_nll(torch.zeros(1, 1, 4, 4), x[:1]).item() == pytest.approx(16 * math.log(2))


@pytest.mark.parametrize("sigma", [0.1, 1.0, 2.5])
def test_gaussian_nll_matches_torch_normal(sigma):
    g = torch.Generator().manual_seed(2)
    mean, x = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    log_p = torch.distributions.Normal(mean.double(), sigma).log_prob(x.double())
    expected = -log_p.flatten(1).sum(1)
    torch.testing.assert_close(gaussian_nll(mean, x, sigma).double(), expected)


# --- the VAE's loss is the negative ELBO per image -----------------------------------------

@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_reported_loss_is_rec_plus_beta_kl(name, make_model):
    model = make_model(name, beta=3.0)
    real, labels = images()
    with torch.no_grad():   # train mode, as in the step: the same batch statistics
        mu, logvar = model.posterior(real, labels)
    out = model.training_step(real, labels)
    # KL summed over latent dims, averaged over the batch.
    torch.testing.assert_close(out["kl"], kl_normal(mu, logvar).mean())
    torch.testing.assert_close(out["loss"], out["rec"] + 3.0 * out["kl"])
    assert out["kl"] > 0 and out["loss"] > out["rec"]   # added, not subtracted


def test_beta_scales_only_the_kl_term(make_model):
    real, labels = images()
    runs = {}
    for beta in (1.0, 4.0):
        model = make_model("vae", beta=beta)
        torch.manual_seed(5)    # the same reparameterisation noise
        runs[beta] = model.training_step(real, labels)
    a, b = runs[1.0], runs[4.0]
    assert torch.equal(a["rec"], b["rec"]) and torch.equal(a["kl"], b["kl"])
    torch.testing.assert_close(b["loss"] - a["loss"], 3.0 * a["kl"], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
def test_reconstruction_term_is_summed_over_pixels(decoder, make_model):
    # A zeroed last layer makes the decoder output exactly 0: Bernoulli p = 1/2, or
    # Gaussian mean tanh(0) = 0, so the reconstruction term has a closed form per image.
    model = make_model("vae", decoder=decoder, sigma=0.5)
    last = model.decoder.net[-1]
    nn.init.zeros_(last.weight), nn.init.zeros_(last.bias)
    real, labels = images()
    rec = model.training_step(real, labels)["rec"].item()
    d = real[0].numel()
    if decoder == "bernoulli":
        expected = d * math.log(2)
    else:
        expected = (real.pow(2).flatten(1).sum(1) / (2 * 0.25)).mean().item() \
            + d * (math.log(0.5) + 0.5 * math.log(2 * math.pi))
    assert rec == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["ae", "vae", "cvae"])
def test_reconstruct_is_deterministic_and_leaves_the_model_as_it_was(name, make_model):
    model = make_model(name)
    real, labels = images(8)
    model.training_step(real, labels)
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    a, b = model.reconstruct(real, labels), model.reconstruct(real, labels)
    assert torch.equal(a, b) and a.shape == real.shape
    assert a.min() >= -1 and a.max() <= 1
    assert model.training and all(torch.equal(stats[k], v) for k, v in model.state_dict().items())


def test_cvae_needs_labels_to_reconstruct(make_model):
    with pytest.raises(GankitError, match="label"):
        make_model("cvae").reconstruct(images(4)[0])


@pytest.mark.parametrize("bad", [dict(decoder="poisson"), dict(sigma=0.0), dict(beta=-1.0),
                                 dict(beta=float("nan")), dict(latent_dim=0), dict(beta1=1.0)])
def test_bad_config_names_the_field(bad):
    with pytest.raises(GankitError, match=next(iter(bad))):
        VAEConfig(**bad)


# --- the fitted code density (ae, and vae/cvae with --density) -----------------------------

def test_density_fit_recovers_a_two_component_mixture():
    from gankit.models.density import CodeDensity
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3000, 2, generator=g) * 0.3 + torch.tensor([4.0, 0.0])
    b = torch.randn(1000, 2, generator=g) * torch.tensor([1.0, 0.2]) + torch.tensor([-4.0, 1.0])
    density = CodeDensity(2, 2)
    density.fit(torch.cat([a, b]), step=7)
    assert int(density.fitted_step) == 7
    codes = density(torch.randn(40_000, density.noise_dim, generator=g))
    left = codes[:, 0] < 0
    # the odds of the components, and each one's mean and spread, come back
    assert left.float().mean().item() == pytest.approx(0.25, abs=0.01)
    torch.testing.assert_close(codes[left].mean(0), torch.tensor([-4.0, 1.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(codes[left].std(0), torch.tensor([1.0, 0.2]), atol=0.05, rtol=0)
    torch.testing.assert_close(codes[~left].std(0), torch.tensor([0.3, 0.3]), atol=0.03, rtol=0)


def test_ae_samples_come_from_the_fitted_gaussian(make_model):
    model = make_model("ae", latent_dim=3, density=1)
    mean = torch.tensor([1.0, -2.0, 0.5])
    a = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.3, 0.2, 0.4]])
    cov = a @ a.T   # correlated
    model.density.fit(torch.randn(50_000, 3, generator=torch.Generator().manual_seed(1)) @ a.T + mean, 0)
    model.decoder = nn.Identity()   # so that sample() hands back the codes it decodes
    codes = model.sample(40_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(codes.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(codes.T), cov, atol=0.04, rtol=0)


def test_density_survives_collapsed_codes(make_model):
    model = make_model("ae", density=3)
    model.density.fit(torch.ones(100, model.cfg.latent_dim), 0)   # every code equal
    assert torch.isfinite(model.sample(4)).all()


def test_an_ae_checkpoint_from_before_the_mixture_samples_as_it_did(make_model):
    """Older AEs kept a running Gaussian (code_mean, code_cov) and drew m + L eps."""
    model = make_model("ae", latent_dim=3, density=1)
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("density.")}
    mean, cov = torch.tensor([1.0, -2.0, 0.5]), torch.diag(torch.tensor([4.0, 1.0, 0.25]))
    old.update(code_mean=mean, code_cov=cov, codes_seen=torch.tensor(5))
    model.load_state_dict(model.upgrade_state(old))
    eps = torch.randn(5, 3)
    old_codes = mean + eps @ torch.linalg.cholesky(cov + 1e-5 * cov.diagonal().mean() * torch.eye(3)).T
    torch.testing.assert_close(model.prior_codes(eps), old_codes)


def test_a_cvae_fits_one_mixture_per_class(make_model):
    model = make_model("cvae", num_classes=3, latent_dim=2, density=1)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(500)
    centres = torch.tensor([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    model.density.fit(centres[labels] + 0.1 * torch.randn(1500, 2, generator=g), 0, labels)
    codes = model.prior_codes(torch.randn(300, 2, generator=g), torch.full((300,), 1))
    torch.testing.assert_close(codes.mean(0), centres[1], atol=0.05, rtol=0)


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_reconstructions_decode_the_code_itself_not_through_the_density(make_model, name):
    model = make_model(name, density=3).eval()
    x, y = images(4)
    y = y if model.conditional else None
    model.density.fit(torch.randn(300, model.cfg.latent_dim) * 5 + 3, 0,
                      torch.arange(300) % 10 if model.conditional else None)
    with torch.no_grad():
        mu, _ = model.posterior(x, y)
        direct = model.to_images(model.decoder(mu, *(() if y is None else (y,))))
    torch.testing.assert_close(model.reconstruct(x, y), direct)


def test_vae_samples_the_prior_unless_asked_for_a_density(make_model):
    assert make_model("vae", density=0).prior_step() is None
    model = make_model("vae", density=4)
    assert model.prior_step() == -1 and model.latent_size == model.cfg.latent_dim + 1
    with pytest.raises(GankitError, match="density"):
        VAEConfig(density=-1)


# --- learning ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    data = load_data(DataConfig(data="mnist", offline=True))
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))[:32]
    return to_float(data.images[idx]), data.labels[idx]


@pytest.fixture
def one_thread():
    """torch on one thread for the test, and on its count before it afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.filterwarnings("ignore:mnist")
@pytest.mark.parametrize("name", ["vae", "ae"])
def test_loss_drops_on_a_fixed_batch_of_digits(name, digits, make_model, one_thread):
    model = make_model(name)
    key = model.metric_names[0]
    losses = [model.training_step(*digits)[key].item() for _ in range(150)]
    # The VAE starts near 784 log 2 = 543 nats per image (p = 1/2 everywhere).
    assert sum(losses[-10:]) / 10 < 0.4 * losses[0]
