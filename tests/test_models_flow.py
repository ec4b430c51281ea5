"""Flow matching: the ODE solver against flows whose answer is known, classifier-free
guidance, label dropout, and the one-line refusals."""

import pytest
import torch

from gankit.errors import GankitError
from gankit.models.flow import ConditionalFlow, Flow, FlowConfig, integrate


def test_euler_is_exact_for_a_constant_velocity_and_heun_for_a_linear_one():
    x0 = torch.randn(4, 1, 3, 3)
    shift = torch.randn(4, 1, 3, 3)
    constant = integrate(lambda x, t, y: shift, x0, None, 3, "euler")
    assert torch.allclose(constant, x0 + shift, atol=1e-6)        # x(1) = x0 + v
    # dx/dt = 2 t a: x(1) = x0 + a exactly under the trapezoid rule; Euler falls short
    a = torch.randn(4, 1, 3, 3)
    linear = lambda x, t, y: 2 * t[:, None, None, None] * a     # noqa: E731
    assert torch.allclose(integrate(linear, x0, None, 4, "heun"), x0 + a, atol=1e-6)
    euler = integrate(linear, x0, None, 4, "euler")
    assert torch.allclose(euler, x0 + a * (1 - 1 / 4), atol=1e-6)   # sum of 2 k/16, k < 4


def test_heun_converges_faster_than_euler_on_an_exponential():
    """dx/dt = x from x0: x(1) = e x0. Heun's error falls as 1/N^2, Euler's as 1/N."""
    x0 = torch.ones(1, 1, 1, 1)
    exact = torch.e * x0
    errors = {s: [float((integrate(lambda x, t, y: x, x0, None, n, s) - exact).abs())
                  for n in (4, 8)] for s in ("euler", "heun")}
    assert errors["heun"][1] < errors["euler"][1] / 10
    assert errors["heun"][0] / errors["heun"][1] > 3.5      # about 4: second order
    assert 1.7 < errors["euler"][0] / errors["euler"][1] < 2.3


def test_guidance_mixes_the_conditional_and_unconditional_velocities():
    torch.manual_seed(0)
    model = ConditionalFlow(FlowConfig(guidance=3.0), (1, 8, 8), 4)
    x, t, y = torch.randn(5, 1, 8, 8), torch.rand(5), torch.tensor([0, 1, 2, 3, 0])
    with torch.no_grad():
        cond = model.velocity(x, t, y)
        uncond = model.velocity(x, t, torch.full_like(y, 4))   # label K: none
        assert torch.allclose(model.velocity_at(x, t, y), uncond + 3 * (cond - uncond), atol=1e-5)
        model.cfg.guidance = 1.0
        assert torch.equal(model.velocity_at(x, t, y), cond)


def test_label_dropout_replaces_about_its_share_by_no_label():
    torch.manual_seed(0)
    model = ConditionalFlow(FlowConfig(label_dropout=0.25), (1, 8, 8), 10)
    labels = torch.randint(0, 10, (4000,))
    dropped = model._train_labels(labels)
    share = float((dropped == 10).float().mean())
    assert 0.22 < share < 0.28
    kept = dropped != 10
    assert torch.equal(dropped[kept], labels[kept])


@pytest.mark.parametrize("settings, words", [
    (dict(sample_steps=0), "sample_steps"),
    (dict(guidance=-1.0), "guidance"),
    (dict(label_dropout=1.0), "label_dropout"),
    (dict(solver="rk4"), "solver"),
])
def test_bad_settings_are_refused(settings, words):
    with pytest.raises(GankitError, match=words):
        FlowConfig(**settings)


def test_guidance_on_an_unconditional_flow_is_refused():
    with pytest.raises(GankitError, match="guidance.*conditional"):
        Flow(FlowConfig(guidance=2.0), (1, 8, 8))
