"""The `gan` model is the guide's Keras GAN, exactly."""

import math

import pytest
import torch
from torch import nn

from gankit.errors import GankitError
from gankit.models.gan import GANConfig


def test_batchnorm_is_keras_momentum_08_not_eps_08(make_model):
    generator = make_model("gan", num_classes=0).generator
    bns = [m for m in generator.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [bn.num_features for bn in bns] == [256, 512, 1024]
    for bn in bns:
        assert bn.momentum == pytest.approx(0.2)   # Keras momentum=0.8 keeps 0.8 of the old stats
        assert bn.eps == pytest.approx(1e-3)       # Keras' epsilon default
        assert bn.affine and bn.track_running_stats


def test_batchnorm_momentum_matches_keras_update_rule(make_model):
    generator = make_model("gan", num_classes=0).generator
    bn = [m for m in generator.modules() if isinstance(m, nn.BatchNorm1d)][0]
    x = torch.randn(64, 256) + 3.0
    bn.train()
    bn(x)
    # Keras: moving_mean = 0.8 * moving_mean + 0.2 * batch_mean, starting from 0.
    assert torch.allclose(bn.running_mean, 0.2 * x.mean(0), atol=1e-6)


def test_architecture_is_the_guides(make_model):
    g = make_model("gan", num_classes=0).generator
    d = make_model("gan", num_classes=0).discriminator
    g_lin = [(m.in_features, m.out_features) for m in g.modules() if isinstance(m, nn.Linear)]
    d_lin = [(m.in_features, m.out_features) for m in d.modules() if isinstance(m, nn.Linear)]
    assert g_lin == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    assert d_lin == [(784, 512), (512, 256), (256, 1)]
    assert isinstance(list(g.net)[-1], nn.Tanh)
    # D outputs logits: the sigmoid is inside the loss, not a layer
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    slopes = {m.negative_slope for m in [*g.modules(), *d.modules()] if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    # order inside G's hidden blocks: Dense -> LeakyReLU -> BatchNorm (as the original)
    kinds = [type(m).__name__ for m in g.net][:3]
    assert kinds == ["Linear", "LeakyReLU", "BatchNorm1d"]


def test_dense_layers_use_keras_init(make_model):
    model = make_model("gan", num_classes=0)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            limit = math.sqrt(6 / (m.in_features + m.out_features))   # Glorot uniform
            assert m.weight.abs().max() <= limit
            assert m.weight.abs().max() > 0.95 * limit
            assert torch.all(m.bias == 0)


def test_adam_settings_and_separate_learning_rates(make_model):
    model = make_model("gan", num_classes=0, lr_g=3e-4, lr_d=1e-4)
    g, d = model.optimizers["g"].param_groups[0], model.optimizers["d"].param_groups[0]
    assert (g["lr"], d["lr"]) == (3e-4, 1e-4)
    assert tuple(g["betas"]) == tuple(d["betas"]) == (0.5, 0.999)


def test_step_follows_the_original(make_model):
    model = make_model("gan", num_classes=0)
    modes = []
    model.generator.register_forward_pre_hook(lambda m, inp: modes.append((m.training, inp[0].shape[0])))
    d_inputs = []
    model.discriminator.register_forward_pre_hook(lambda m, inp: d_inputs.append(inp[0].shape[0]))
    assert model.real_batch_size(32) == 16
    real = torch.rand(16, 1, 28, 28) * 2 - 1
    out = model.training_step(real, None)
    # fakes for D from G in inference mode on a half batch, then G trains on a full batch
    assert modes == [(False, 16), (True, 32)]
    assert d_inputs == [16, 16, 32]
    # D took two optimizer steps (real, fake), G one; the G step did not move D
    assert int(model.optimizers["d"].state[model.discriminator.net[1].weight]["step"]) == 2
    assert int(model.optimizers["g"].state[model.generator.net[0].weight]["step"]) == 1
    assert set(out) == {"d_loss", "d_acc", "g_loss", "d_real", "d_fake"}
    assert all(v.dim() == 0 and not v.requires_grad for v in out.values())
    assert 0 <= out["d_acc"] <= 1


def test_d_real_and_d_fake_are_ds_mean_probabilities(make_model):
    """The page's balance curve: D's sigmoid output averaged over the real and fake batches
    its update saw (the guide's warning: near 1 and 0, G stops learning)."""
    model = make_model("gan", num_classes=0)
    outputs = []
    model.discriminator.register_forward_hook(lambda m, inp, out: outputs.append(out.detach()))
    out = model.training_step(torch.rand(16, 1, 28, 28) * 2 - 1, None)
    real_out, fake_out = outputs[0].view(-1), outputs[1].view(-1)   # then G's batch
    assert torch.allclose(out["d_real"], torch.sigmoid(real_out).mean())
    assert torch.allclose(out["d_fake"], torch.sigmoid(fake_out).mean())
    assert out["d_acc"] == ((real_out > 0).float().mean() + (fake_out <= 0).float().mean()) / 2


def test_g_step_leaves_discriminator_weights_alone(make_model):
    model = make_model("gan", num_classes=0)
    real = torch.rand(16, 1, 28, 28) * 2 - 1
    snapshots = []
    # record D's weights right after its second update (before the G step)
    orig = model.optimizers["g"].step
    def spy(*a, **k):
        snapshots.append([p.detach().clone() for p in model.discriminator.parameters()])
        return orig(*a, **k)
    model.optimizers["g"].step = spy
    model.training_step(real, None)
    after = list(model.discriminator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(snapshots[0], after))


def test_every_network_learns_in_one_step(make_model):
    model = make_model("gan", num_classes=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.training_step(torch.rand(16, 1, 28, 28) * 2 - 1, None)
    after = model.state_dict()
    for name in before:
        if name.endswith("weight") and "net" in name:
            assert not torch.equal(before[name], after[name]), name


def test_sample_shape_range_and_inference_mode(make_model):
    model = make_model("gan", num_classes=0)
    x = model.sample(10)
    assert x.shape == (10, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert model.generator.training   # sample() restores the mode it found
    z = model.latents(4, torch.Generator().manual_seed(1))
    assert torch.equal(model.sample(latents=z), model.sample(latents=z))


def test_other_image_shapes(make_model):
    model = make_model("gan", (3, 32, 32), num_classes=0, optimizers=False)
    assert model.sample(2).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("kw", [{"lr_g": 0}, {"lr_d": float("nan")}, {"latent_dim": 0}, {"beta1": 1.0}])
def test_bad_config_names_the_field(kw):
    with pytest.raises(GankitError, match=next(iter(kw))):
        GANConfig(**kw)
