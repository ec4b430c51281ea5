"""Flow matching: the ODE solver and the likelihood against flows whose answer is known,
inpainting by the sampler against a velocity field that is exact for two images,
classifier-free guidance, label dropout, sampling settings changed after training, and the
one-line refusals."""

import math

import pytest
import torch
from torch import nn

from gankit.errors import GankitError
from gankit.inpaint import inpaint, parse_mask
from gankit.models.flow import ConditionalFlow, Flow, FlowConfig, integrate, log_density

from helpers import gankit_main, one_line_error, tiny_run


def test_euler_is_exact_for_a_constant_velocity_and_heun_for_a_linear_one():
    x0 = torch.randn(4, 1, 3, 3)
    shift = torch.randn(4, 1, 3, 3)
    constant = integrate(lambda x, t, y: shift, x0, None, 3, "euler")
    assert torch.allclose(constant, x0 + shift, atol=1e-6)        # x(1) = x0 + v
    # dx/dt = 2 t a: x(1/2) = x0 + a / 4 exactly under the trapezoid rule; Euler falls short
    a = torch.randn(4, 1, 3, 3)
    linear = lambda x, t, y: 2 * t[:, None, None, None] * a     # noqa: E731
    heun = integrate(linear, x0, None, 4, "heun", end=0.5)
    assert torch.allclose(heun, x0 + a / 4, atol=1e-6)
    euler = integrate(linear, x0, None, 4, "euler", end=0.5)
    assert torch.allclose(euler, x0 + a / 4 * (1 - 1 / 4), atol=1e-6)   # sum of k / 32, k < 4


def test_heun_never_asks_for_the_velocity_at_the_image_itself():
    """The step into t = 1 is Euler's (integrate's docstring), whether the path is sampled
    whole or a step at a time as inpainting does; every other step is Heun's."""
    seen = []

    def velocity(x, t, y):
        seen.append(round(float(t[0]), 6))
        return torch.zeros_like(x)
    integrate(velocity, torch.zeros(2, 1, 2, 2), None, 4, "heun")
    assert seen == [0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75]
    seen.clear()
    for k in range(4):
        integrate(velocity, torch.zeros(2, 1, 2, 2), None, 1, "heun", k / 4, (k + 1) / 4)
    assert seen == [0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75]


def test_heun_converges_faster_than_euler_on_an_exponential():
    """dx/dt = x from x0: x(1) = e x0. Heun's error falls as 1/N^2, its last step (Euler's)
    included, and Euler's as 1/N."""
    x0 = torch.ones(1, 1, 1, 1)
    exact = torch.e * x0
    errors = {s: [float((integrate(lambda x, t, y: x, x0, None, n, s) - exact).abs())
                  for n in (8, 16)] for s in ("euler", "heun")}
    assert errors["heun"][1] < errors["euler"][1] / 10
    assert errors["heun"][0] / errors["heun"][1] > 3.5      # about 4: second order
    assert 1.7 < errors["euler"][0] / errors["euler"][1] < 2.3


def test_guidance_mixes_the_conditional_and_unconditional_velocities():
    torch.manual_seed(0)
    model = ConditionalFlow(FlowConfig(guidance=3.0, sample_precision="fp32"), (1, 8, 8), 4)
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


# --- the likelihood ------------------------------------------------------------------------

def gaussian_velocity(scale: float):
    """The flow-matching velocity from N(0, I) to N(0, scale^2 I): x_t ~ N(0, sigma_t^2) with
    sigma_t^2 = (1 - t)^2 + t^2 scale^2, so v = (d sigma_t / dt) / sigma_t * x."""
    def v(x, t, labels):
        t = t[:, None, None, None]
        return (t * scale ** 2 - (1 - t)) / ((1 - t) ** 2 + t ** 2 * scale ** 2) * x
    return v


def test_the_likelihood_of_a_gaussian_is_its_closed_form():
    torch.manual_seed(0)
    scale = 0.5
    x = scale * torch.randn(6, 1, 4, 4)
    exact = torch.distributions.Normal(0.0, scale).log_prob(x).flatten(1).sum(1)
    probe = (2 * torch.randint(0, 2, x.shape) - 1).float()
    errors = [float((log_density(gaussian_velocity(scale), x, None, n, "heun", probe)
                     - exact).abs().max()) for n in (8, 32)]
    assert errors[1] < 0.01                    # nats, of log-densities around -6 per image
    assert errors[0] / errors[1] > 10          # second order: 16x from 4x the steps
    # Euler is first order: further off at the same steps
    euler = log_density(gaussian_velocity(scale), x, None, 32, "euler", probe)
    assert float((euler - exact).abs().max()) > 5 * errors[1]


def test_hutchinson_is_unbiased_where_the_jacobian_is_not_diagonal():
    """v = A x with a fixed non-symmetric A: div v = trace(A) exactly, which one probe gets
    only on average; the mean over many probes converges to the exact log-density."""
    torch.manual_seed(0)
    a = 0.3 * torch.randn(4, 4)
    velocity = lambda x, t, y: (x.flatten(1) @ a.T).view_as(x)          # noqa: E731
    x = torch.randn(1, 1, 2, 2).repeat(4000, 1, 1, 1)
    probe = (2 * torch.randint(0, 2, x.shape) - 1).float()
    logp = log_density(velocity, x, None, 16, "heun", probe)
    x0 = torch.linalg.matrix_exp(-a) @ x[0].flatten()                    # x(0) = e^{-A} x(1)
    exact = (-0.5 * x0 @ x0 - 2 * math.log(2 * math.pi) - torch.trace(a)).item()
    assert logp.std() > 0.05                                             # one probe: noisy
    assert abs(logp.mean().item() - exact) < 4 * logp.std().item() / math.sqrt(len(logp)) + 1e-3


class GaussianVelocity(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale), requires_grad=False)   # a device

    def forward(self, x, t):
        return gaussian_velocity(float(self.scale))(x, t, None)


def test_the_noised_likelihood_is_the_marginals_density_at_that_time():
    """log_likelihood at likelihood_time t averages log p_t(t x + (1 - t) noise) over the
    noise: for data N(0, s^2), p_t is N(0, sigma_t^2), whose expectation is closed form."""
    torch.manual_seed(0)
    s, t, d = 0.5, 0.6, 4
    model = Flow(FlowConfig(width=8, sample_steps=32, likelihood="exact", likelihood_time=t),
                 (1, 2, 2)).eval()
    x = s * torch.randn(3, 1, 2, 2)
    var = (1 - t) ** 2 + t ** 2 * s ** 2
    expected = (-0.5 * d * math.log(2 * math.pi * var)
                - (t ** 2 * (x ** 2).flatten(1).sum(1) + (1 - t) ** 2 * d) / (2 * var))
    with model.sampling_with(GaussianVelocity(s)):
        got = model.log_likelihood(x, samples=4000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(got, expected, atol=0.1), (got, expected)
    assert "noised to t = 0.6" in model.likelihood_method(4000)


def test_the_bound_is_the_weighted_flow_matching_error_in_closed_form():
    """For data N(0, s^2) the exact velocity is k(t) x_t (gaussian_velocity), so the
    expected squared error at t is (k t - 1)^2 |x|^2 + d (k (1 - t) + 1)^2 in closed form;
    the bound is minus its integral from 0 to likelihood_time, weighted by t / (1 - t)."""
    s, end, d = 0.5, 0.6, 4
    model = Flow(FlowConfig(width=8, likelihood_time=end, sample_precision="fp32"),
                 (1, 2, 2)).eval()
    x = s * torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0, end, 20_001, dtype=torch.float64)[:, None]
    k = (t * s ** 2 - (1 - t)) / ((1 - t) ** 2 + t ** 2 * s ** 2)
    error = (k * t - 1) ** 2 * x.double().pow(2).flatten(1).sum(1) + d * (k * (1 - t) + 1) ** 2
    expected = -torch.trapezoid(t / (1 - t) * error, t, dim=0)
    with model.sampling_with(GaussianVelocity(s)):
        got = model.log_likelihood(x, samples=4000, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(got.double(), expected, rtol=0.03), (got, expected)
    assert model.likelihood_samples == 10
    assert model.likelihood_method(10).startswith("the flow-matching bound, t from the noise to 0.6")


class OneImagePerClass(nn.Module):
    """The exact velocity of rectified flow to the single image `images[y]`: (x_1 - x_t) /
    (1 - t)."""

    def __init__(self, images):
        super().__init__()
        self.images = nn.Parameter(images, requires_grad=False)

    def forward(self, x, t, labels):
        return (self.images[labels] - x) / (1 - t[:, None, None, None])


@pytest.mark.parametrize("likelihood", ["bound", "exact"])
def test_classification_by_either_likelihood_finds_the_class_whose_flow_makes_the_image(likelihood):
    from gankit.classify import classify
    images = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model = ConditionalFlow(FlowConfig(width=8, likelihood=likelihood, sample_steps=4,
                                       sample_precision="fp32"), (1, 6, 6), 4).eval()
    with model.sampling_with(OneImagePerClass(images)):
        found = classify(model, images[[2, 0, 3, 1, 2]])
    assert found.labels.tolist() == [2, 0, 3, 1, 2]


def test_a_flow_gives_a_likelihood_per_image_repeatable_by_generator():
    torch.manual_seed(0)
    model = ConditionalFlow(FlowConfig(width=8, sample_steps=2), (1, 8, 8), 3).eval()
    x, y = torch.rand(5, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1])
    one = model.log_likelihood(x, y, 3, torch.Generator().manual_seed(1))
    assert one.shape == (5,) and torch.isfinite(one).all()
    assert torch.equal(one, model.log_likelihood(x, y, 3, torch.Generator().manual_seed(1)))
    assert not torch.equal(one, model.log_likelihood(x, (y + 1) % 3, 3,
                                                     torch.Generator().manual_seed(1)))


# --- inpainting ----------------------------------------------------------------------------

class TwoImages(nn.Module):
    """The exact velocity of rectified flow to data that is images a and b, half each:
    v = (E[x_1 | x_t] - x_t) / (1 - t), the posterior over the two from x_t ~ N(t x_1, (1-t)^2)."""

    def __init__(self, a, b):
        super().__init__()
        self.data = nn.Parameter(torch.stack([a, b]), requires_grad=False)   # gives a device

    def forward(self, x, t):
        t = t[:, None, None, None]
        dist = ((x[:, None] - t[:, None] * self.data[None]) ** 2).flatten(2).sum(2)
        w = torch.softmax(-dist / (2 * (1 - t.flatten()[:, None]) ** 2), dim=1)
        mean = (w[:, :, None, None, None] * self.data[None]).sum(1)
        return (mean - x) / (1 - t)


def test_the_sampler_fills_a_hole_with_the_image_its_known_pixels_belong_to(monkeypatch):
    """Given the left half of a or b, the right half must come back as that image's. Plain
    replacement (one pass per step) sometimes commits the hole to the other image early;
    RePaint's resampling lets it come back (measured: 6.5% wrong without, 1% with, at 32
    steps)."""
    import gankit.models.flow as flow
    torch.manual_seed(0)
    a, b = torch.rand(1, 8, 8) * 2 - 1, torch.rand(1, 8, 8) * 2 - 1
    model = Flow(FlowConfig(width=8, sample_steps=32, solver="euler"), (1, 8, 8)).eval()
    known = parse_mask("box:0,0,4,8", (1, 8, 8), n=200)               # the left half
    images = torch.stack([a, b] * 100)
    default = flow.INPAINT_RESAMPLE

    def wrong(resample: int) -> float:
        monkeypatch.setattr(flow, "INPAINT_RESAMPLE", resample)
        raw = model.fill_holes(images, known, generator=torch.Generator().manual_seed(0))
        return float(((raw - images).flatten(1).abs().max(1).values > 0.01).float().mean())

    with model.sampling_with(TwoImages(a, b)):
        plain, resampled = wrong(1), wrong(default)
        assert resampled <= 0.03 and plain > resampled
        as_uint8 = ((images[:6] + 1) * 127.5).round().to(torch.uint8)
        filled = inpaint(model, as_uint8, known[:6], seed=0, restarts=2)
    keep = known[:6].expand_as(filled)
    assert torch.equal(filled[keep], as_uint8[keep])
    assert (filled.float() - as_uint8.float()).abs().max() <= 1        # the holes too


def test_inpainting_by_sampling_refuses_search_steps():
    model = Flow(FlowConfig(width=8, sample_steps=2), (1, 8, 8)).eval()
    images = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(GankitError, match="sampling settings"):
        inpaint(model, images, parse_mask("box:0,0,4,4", (1, 8, 8), n=1), steps=5)


# --- sampling settings after training -----------------------------------------------------

def test_sampling_settings_change_the_samples_and_sampling_as_restores_them():
    torch.manual_seed(0)
    model = ConditionalFlow(FlowConfig(width=8, sample_steps=4), (1, 8, 8), 3).eval()
    z = model.latents(3, torch.Generator().manual_seed(0))
    before = model.sample(latents=z)
    with model.sampling_as(sample_steps=2, guidance=3.0, solver="euler") as m:
        assert (m.cfg.sample_steps, m.cfg.guidance, m.cfg.solver) == (2, 3.0, "euler")
        changed = model.sample(latents=z)
    assert not torch.allclose(before, changed)
    assert torch.equal(model.sample(latents=z), before)
    assert model.set_sampling(sample_steps=2) is model and model.cfg.sample_steps == 2


@pytest.mark.parametrize("model, settings, words", [
    ("flow", dict(guidance=2.0),
     "guidance.*sample_steps, solver, sample_precision, likelihood, likelihood_time$"),
    ("flow", dict(likelihood="iwae"), "likelihood must be one of"),
    ("cflow", dict(guidance=-1.0), "guidance"),
    ("cflow", dict(sample_steps=0), "sample_steps must be positive"),
    ("cflow", dict(sample_steps="8"), "sample_steps must be an integer"),
    ("cflow", dict(width=16), "width=16 does not apply.*sample_steps, solver, "
     "sample_precision, likelihood, likelihood_time, guidance"),
])
def test_bad_sampling_settings_are_refused_and_change_nothing(model, settings, words):
    m = (ConditionalFlow(FlowConfig(width=8), (1, 8, 8), 3) if model == "cflow"
         else Flow(FlowConfig(width=8), (1, 8, 8)))
    kept = m.cfg
    with pytest.raises(GankitError, match=words):
        m.set_sampling(**settings)
    assert m.cfg is kept


@pytest.fixture(scope="module")
def cflow_run(tmp_path_factory):
    import gankit
    out = tmp_path_factory.mktemp("cflow") / "run"
    gankit.train(out=str(out), **tiny_run(model="cflow", steps=2, width=8, offline=True))
    return out


def test_sample_takes_the_sampling_settings_as_flags(cflow_run, tmp_path, capsys):
    import numpy as np
    base = ["sample", "--checkpoint", cflow_run, "--n", "4", "--seed", "0"]
    for name, extra in (("a", []), ("b", ["--sample-steps", "2", "--guidance", "2"])):
        r = gankit_main(capsys, *base, "--out", tmp_path / f"{name}.png",
                        "--npy", tmp_path / f"{name}.npy", *extra)
        assert r.returncode == 0, r.stderr
    assert not np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    for flags, words in ((["--guidance", "-1"], "guidance"),
                         (["--sample-steps", "0"], "sample_steps must be positive")):
        r = gankit_main(capsys, *base, "--out", tmp_path / "c.png", *flags)
        one_line_error(r, words)
        assert not (tmp_path / "c.png").exists()


def test_classify_uses_the_flows_likelihood_with_its_own_default_probes(cflow_run, tmp_path,
                                                                          capsys):
    import json

    import numpy as np
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (3, 28, 28),
                                                                  dtype=np.uint8))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2]))
    args = ("classify", "--checkpoint", cflow_run, "--images", tmp_path / "x.npy",
            "--labels", tmp_path / "y.npy", "--json", "--confusion", tmp_path / "c.png")
    r = gankit_main(capsys, *args)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["samples"] == 10
    assert report["method"].startswith("the flow-matching bound, t from the noise to 0.5 (10")
    assert 0 <= report["accuracy"] <= 1 and (tmp_path / "c.png").is_file()
    r = gankit_main(capsys, *args, "--likelihood", "exact", "--sample-steps", "2")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["samples"] == 1
    assert report["method"].startswith("the change of variables of the image noised to t = 0.5 (2 heun steps")


@pytest.mark.slow
def test_a_resumed_cflow_run_is_the_uninterrupted_one_bit_for_bit(tmp_path):
    """bf16 where the CPU has it (the recipe's --precision auto), EMA and label dropout
    included: stopping and resuming changes no tensor."""
    import gankit
    from gankit.training import checkpoint
    flags = tiny_run(model="cflow", width=8, offline=True, seed=3)
    a = gankit.train(out=str(tmp_path / "a"), **{**flags, "steps": 6})
    gankit.train(out=str(tmp_path / "b"), **{**flags, "steps": 3})
    b = gankit.train(out=str(tmp_path / "b"), steps=6, resume=True, progress=False)
    wa, wb = checkpoint.load(a.out)[0], checkpoint.load(b.out)[0]
    assert wa.keys() == wb.keys()
    for k in wa:
        if k.startswith(("model.", "optim.", "rng.", "ema.")):
            assert torch.equal(wa[k], wb[k]), k
