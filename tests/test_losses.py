"""Golden values: each adversarial loss and the gradient penalty against hand arithmetic."""

import math

import pytest
import torch
from torch.nn.functional import binary_cross_entropy

from gankit.models.losses import LOSSES, gradient_penalty

R = torch.tensor([2.0, -1.0])   # D's outputs on two real images
F = torch.tensor([0.5, -3.0])   # ... and on two fakes


def sp(x):   # softplus, by hand
    return math.log1p(math.exp(x))


GOLDEN = [
    # BCE: -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f); G: softplus(-f)
    ("bce", (sp(-2) + sp(1)) / 2, (sp(0.5) + sp(-3)) / 2, (sp(-0.5) + sp(3)) / 2),
    # LSGAN, a=0 b=c=1: 1/2 E[(r-1)^2] = 1/2 * (1 + 4)/2; 1/2 E[f^2] = 1/2 * (0.25 + 9)/2
    ("lsgan", 1.25, 2.3125, 0.5 * (0.25 + 16) / 2),
    # hinge: E[max(0, 1-r)] = (0 + 2)/2; E[max(0, 1+f)] = (1.5 + 0)/2; G: -E[f] = 1.25
    ("hinge", 1.0, 0.75, 1.25),
    # Wasserstein: -E[r] = -0.5; E[f] = -1.25; G: -E[f] = 1.25
    ("wasserstein", -0.5, -1.25, 1.25),
]


def test_every_loss_has_golden_values():
    """The table above covers every loss gankit offers but RpGAN, which scores pairs (its
    golden values: tests/test_modern_gan.py::test_rpgan_scores_pairs)."""
    assert {name for name, *_ in GOLDEN} | {"rpgan"} == set(LOSSES)


@pytest.mark.parametrize("name, d_real, d_fake, g", GOLDEN)
def test_adversarial_losses(name, d_real, d_fake, g):
    loss = LOSSES[name]
    assert loss.d_real(R).item() == pytest.approx(d_real, rel=1e-6)
    assert loss.d_fake(F).item() == pytest.approx(d_fake, rel=1e-6)
    assert loss.g(F).item() == pytest.approx(g, rel=1e-6)


def test_bce_loss_on_logits_is_bce_on_sigmoid_outputs():
    """gankit's BCE loss takes D's logits; it must equal torch's binary cross-entropy on
    sigmoid(D) with target 1 (D on reals, G's non-saturating loss) and 0 (D on fakes), for
    every logit from -8 to 8 (each alone, so that the mean cannot hide one wrong value)."""
    bce = LOSSES["bce"]
    x = torch.linspace(-8, 8, 101, dtype=torch.float64)
    on = lambda term: torch.stack([term(v.view(1)) for v in x])
    ones = binary_cross_entropy(torch.sigmoid(x), torch.ones_like(x), reduction="none")
    zeros = binary_cross_entropy(torch.sigmoid(x), torch.zeros_like(x), reduction="none")
    assert torch.allclose(on(bce.d_real), ones, atol=1e-5)
    assert torch.allclose(on(bce.g), ones, atol=1e-5)
    assert torch.allclose(on(bce.d_fake), zeros, atol=1e-5)
    # and on a batch, the mean of those
    assert bce.d_real(x).item() == pytest.approx(ones.mean().item(), abs=1e-5)
    assert bce.d_fake(x).item() == pytest.approx(zeros.mean().item(), abs=1e-5)


def test_gradient_penalty_hand_computed():
    """Critic D(x) = 1/2 ||x||^2 has gradient x. With real = 1 and fake = 0 everywhere the
    interpolate is eps * 1, whose norm over all C*H*W = 12 values is eps * sqrt(12), so
    GP = mean_i (eps_i sqrt(12) - 1)^2 with one eps_i ~ U[0, 1] per sample. A per-pixel
    eps, a normal eps, or a norm over one dimension only all give other numbers."""
    real, fake = torch.ones(4, 3, 2, 2), torch.zeros(4, 3, 2, 2)
    critic = lambda x: 0.5 * x.pow(2).flatten(1).sum(1)
    torch.manual_seed(7)
    gp = gradient_penalty(critic, real, fake)
    torch.manual_seed(7)
    eps = torch.rand(4)                    # the same draws, one per sample
    expected = ((eps * math.sqrt(12) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_penalty_is_zero_for_a_unit_gradient_and_differentiable():
    # D(x) = <w, x> with ||w|| = 1 over all dims: gradient norm 1 everywhere, penalty 0.
    w = torch.randn(2, 3, 3)
    w = (w / w.norm()).requires_grad_(True)
    critic = lambda x: (x * w).flatten(1).sum(1)
    gp = gradient_penalty(critic, torch.randn(5, 2, 3, 3), torch.randn(5, 2, 3, 3))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)
    # and it is a function of the critic's weights (create_graph): twice ||w|| -> (2-1)^2
    w2 = (2 * w).detach().requires_grad_(True)
    gp2 = gradient_penalty(lambda x: (x * w2).flatten(1).sum(1), torch.randn(5, 2, 3, 3),
                           torch.randn(5, 2, 3, 3))
    gp2.backward()
    assert gp2.item() == pytest.approx(1.0, rel=1e-5)
    assert w2.grad is not None and w2.grad.abs().sum() > 0
