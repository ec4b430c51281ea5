"""The options every GAN shares (loss, D:G ratio, penalty, spectral norm, DiffAugment) and
the dcgan / cgan / wgan-gp specifics."""

import pytest
import torch
from torch import nn

from gankit.errors import GankitError
from gankit.models import MODELS, build_model
from gankit.models.adversarial import AdversarialModel
from gankit.models.losses import LOSSES

GANS = [name for name, cls in MODELS.items() if issubclass(cls, AdversarialModel)]
SHAPE = (1, 28, 28)


def real_batch(model, bs=8):
    n = model.real_batch_size(bs)
    return torch.rand(n, *model.image_shape) * 2 - 1, torch.randint(0, 10, (n,))


def optimizer_steps(opt):
    return int(next(iter(opt.state.values()))["step"])


def test_the_gans_and_losses_tested_are_those_offered():
    """The lists the tests below run over, against what gankit offers: every GAN the
    registry has, and every loss `gankit train --model M --loss` takes."""
    import argparse

    from gankit.cli import build_parser
    assert {"gan", "dcgan", "cgan", "wgan-gp"} <= set(GANS)
    assert {"bce", "lsgan", "hinge", "wasserstein", "rpgan"} <= set(LOSSES)
    for name in GANS:
        sub = next(a for a in build_parser(name)._actions
                   if isinstance(a, argparse._SubParsersAction))
        loss = next(a for a in sub.choices["train"]._actions if "--loss" in a.option_strings)
        # the command line offers every loss the model's config takes, and no other
        assert set(loss.choices) == set(LOSSES) - {l for n, l in REFUSED if n == name}, name


# A pairing loss needs D to see a real and a fake batch together; the vanilla GAN's D sees
# them one after the other, and its config says so.
REFUSED = {("gan", "rpgan"): "use it with dcgan or cgan"}


@pytest.mark.parametrize("name", GANS)
@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_trains(name, loss, make_model):
    if (name, loss) in REFUSED:
        with pytest.raises(GankitError, match=REFUSED[name, loss]):
            make_model(name, loss=loss)
        return
    model = make_model(name, loss=loss, gp=1.0 if loss == "wasserstein" else 0.0)
    assert model.loss is LOSSES[loss]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model.training_step(*real_batch(model))
    assert set(out) == set(model.metric_names)
    assert all(torch.isfinite(v) for v in out.values())
    after = model.state_dict()
    for net in ("generator.", "discriminator."):   # both networks learned from this loss
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net))


@pytest.mark.parametrize("name", GANS)
def test_d_steps_is_the_number_of_d_updates_per_g_update(name, make_model):
    one, three = make_model(name, d_steps=1), make_model(name, d_steps=3)
    assert three.real_batch_size(8) == 3 * one.real_batch_size(8)
    one.training_step(*real_batch(one))
    three.training_step(*real_batch(three))
    assert optimizer_steps(three.optimizers["g"]) == 1
    assert optimizer_steps(three.optimizers["d"]) == 3 * optimizer_steps(one.optimizers["d"])


def test_wgan_gp_defaults_are_the_papers_but_the_measured_learning_rate(make_model):
    cfg = MODELS["wgan-gp"].Config()   # Gulrajani et al. 2017, Algorithm 1, but lr (sweep)
    assert (cfg.loss, cfg.d_steps, cfg.gp, cfg.lr_d, cfg.lr_g, cfg.beta1, cfg.beta2) == \
        ("wasserstein", 5, 10.0, 2e-4, 2e-4, 0.0, 0.9)
    assert not cfg.spectral_norm   # the penalty keeps the critic Lipschitz
    model = make_model("wgan-gp")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.discriminator.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.generator.modules())
    assert model.metric_names == ("d_loss", "gp", "g_loss", "d_real", "d_fake")
    out = model.training_step(*real_batch(model))
    assert out["gp"] >= 0


@pytest.mark.parametrize("name", GANS)
def test_spectral_norm_bounds_d_layers(name, make_model):
    model = make_model(name, spectral_norm=True)
    for _ in range(3):
        model.training_step(*real_batch(model))
    layers = [m for m in model.discriminator.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    for m in layers:   # power iteration converges from above: sigma(W / sigma_est) ~ 1
        w = m.weight.detach().flatten(1)
        assert torch.linalg.matrix_norm(w, ord=2) < 1.3


@pytest.mark.parametrize("name", GANS)
def test_augment_changes_what_d_sees_of_real_and_fake(name, make_model):
    seen = []
    for augment in (False, True):
        # DiffAugment replaces ADA (dcgan's default), as --augment does on the command line
        model = make_model(name, augment=augment, **({"ada": 0.0} if augment else {}))
        inputs = []
        model.discriminator.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach()))
        real, labels = real_batch(model)
        torch.manual_seed(1)
        model.training_step(real, labels)
        seen.append(inputs)
    plain, augmented = seen
    n = real.shape[0] // model.cfg.d_steps
    assert any(torch.equal(x, real[:n]) for x in plain)
    assert not any(torch.equal(x, real[:n]) for x in augmented)
    # same number of D calls, and every augmented input differs from the plain one
    assert len(plain) == len(augmented)
    assert all(not torch.equal(a, b) for a, b in zip(plain, augmented))


def test_cgan_follows_its_labels(make_model):
    model = make_model("cgan")
    for _ in range(2):
        model.training_step(*real_batch(model))
    z = model.latents(4, torch.Generator().manual_seed(0))
    sevens = model.sample(latents=z, labels=torch.full((4,), 7))
    threes = model.sample(latents=z, labels=torch.full((4,), 3))
    assert sevens.shape == (4, *SHAPE) and not torch.equal(sevens, threes)
    # without labels a conditional model cycles through the classes
    zs = z.repeat(3, 1)[:10]
    cycled = model.sample(latents=zs)
    assert torch.allclose(cycled, model.sample(latents=zs, labels=torch.arange(10)), atol=1e-6)


def test_cgan_projection_discriminator(make_model):
    concat, proj = make_model("cgan"), make_model("cgan", projection=True)
    assert concat.discriminator.label_channels == 10 and concat.discriminator.project is None
    assert proj.discriminator.project is not None and proj.discriminator.label_channels == 0
    x, y = real_batch(proj)
    d = proj.discriminator
    # the projection term is <embed(y), features>: other labels give other outputs
    assert not torch.equal(d(x, y), d(x, (y + 1) % 10))


def test_conditional_model_needs_labels():
    with pytest.raises(GankitError, match="needs labelled data"):
        build_model("cgan", MODELS["cgan"].Config(), SHAPE, num_classes=0)


@pytest.mark.parametrize("size", [28, 32, 64])
def test_dcgan_sizes(size, make_model):
    model = make_model("dcgan", shape=(3, size, size), num_classes=0)
    assert model.sample(2).shape == (2, 3, size, size)
    x = torch.rand(2, 3, size, size) * 2 - 1
    # D takes the cluster its images belong to (the recipe's self-conditioning)
    assert model.discriminator(x, model.labels_for(x, None)).shape == (2, 1)


@pytest.mark.parametrize("size, fragment", [(27, "even image size"), (6, "even image size")])
def test_dcgan_refuses_sizes_it_cannot_build(size, fragment, make_model):
    with pytest.raises(GankitError, match=fragment):
        make_model("dcgan", shape=(1, size, size))


@pytest.mark.parametrize("kw, fragment", [
    ({"loss": "nope"}, "loss must be one of"), ({"d_steps": 0}, "d_steps must be positive"),
    ({"gp": -1.0}, "gp must be"), ({"width": 0}, "width must be positive")])
def test_bad_options_name_the_field(kw, fragment):
    with pytest.raises(GankitError, match=fragment):
        MODELS["dcgan"].Config(**kw)


def test_unconstrained_wasserstein_critic_is_warned_about():
    with pytest.warns(UserWarning, match="add gp=10"):
        MODELS["dcgan"].Config(loss="wasserstein", spectral_norm=False)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MODELS["wgan-gp"].Config()
        MODELS["dcgan"].Config(loss="wasserstein", spectral_norm=True)
