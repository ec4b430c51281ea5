"""What every registered model owes the trainer; a new model gets these tests for free."""

import pytest
import torch

from gankit.training import checkpoint
from gankit.api import load
from gankit.config import RunConfig
from gankit.models import MODELS, model_name
from gankit.training.checkpoint import run_meta, training_state

SHAPES = [(1, 28, 28), (3, 16, 16)]


def batch(model, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(model.real_batch_size(n), *model.image_shape, generator=g) * 2 - 1
    labels = torch.randint(0, 10, (len(real),), generator=g)
    return real, labels


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", SHAPES)
def test_sample_shape_and_range(name, shape, make_model):
    model = make_model(name, shape)
    x = model.sample(5)
    assert x.shape == (5, *shape)
    assert x.min() >= -1 and x.max() <= 1 and torch.isfinite(x).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_step_returns_declared_metrics_and_every_network_learns(name, make_model):
    model = make_model(name, SHAPES[0])
    before = {k: v.clone() for k, v in model.named_parameters()}
    out = model.training_step(*batch(model))
    assert tuple(out) == model.metric_names
    assert all(v.dim() == 0 and torch.isfinite(v) and not v.requires_grad for v in out.values())
    changed = {k.split(".")[0] for k, v in model.named_parameters() if not torch.equal(before[k], v)}
    networks = {k.split(".")[0] for k in before}
    assert changed == networks


@pytest.mark.parametrize("name", list(MODELS))
def test_same_seed_same_first_steps(name, make_model):
    a, b = make_model(name, SHAPES[0], seed=1), make_model(name, SHAPES[0], seed=1)
    for i in range(2):
        torch.manual_seed(10 + i)
        ra = a.training_step(*batch(a, seed=i))
        torch.manual_seed(10 + i)
        rb = b.training_step(*batch(b, seed=i))
        assert all(torch.equal(ra[k], rb[k]) for k in ra)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", list(MODELS))
def test_checkpoint_round_trip_gives_identical_samples(name, tmp_path, make_model):
    model = make_model(name, SHAPES[1])
    model.training_step(*batch(model))
    cfg = RunConfig(model=name, model_cfg=model.cfg)
    tensors, skeleton = training_state(model, torch.Generator())
    checkpoint.save(tmp_path / "c.safetensors", tensors,
                    {**run_meta(cfg, model, 1), "optim": skeleton})
    again = load(tmp_path / "c.safetensors")
    assert model_name(again) == name
    z = model.latents(6, torch.Generator().manual_seed(3))
    assert torch.equal(model.sample(latents=z), again.sample(latents=z))


@pytest.mark.parametrize("name", [n for n, cls in MODELS.items() if cls.conditional])
def test_conditional_models_honour_their_labels(name, make_model):
    model = make_model(name, SHAPES[0])
    model.training_step(*batch(model))
    z = model.latents(6, torch.Generator().manual_seed(0))
    ones, twos = (model.sample(latents=z, labels=torch.full((6,), k)) for k in (1, 2))
    assert ones.shape == (6, *SHAPES[0]) and not torch.equal(ones, twos)
    # labels may be any integer sequence of the right length; without them, classes cycle
    assert torch.equal(model.sample(latents=z, labels=[1] * 6), ones)
    assert model.sample(latents=z).shape == ones.shape


@pytest.mark.parametrize("name", [n for n, cls in MODELS.items() if cls.reconstructs])
def test_models_with_an_encoder_reconstruct(name, make_model):
    model = make_model(name, SHAPES[1])
    real, labels = batch(model, 4)
    model.training_step(real, labels)
    again = model.reconstruct(real, labels if model.conditional else None)
    assert again.shape == real.shape and again.min() >= -1 and again.max() <= 1
