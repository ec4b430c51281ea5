"""The training step as a CUDA graph (gankit/training/graphs.py) and --precision bf16.

On the CPU: asking for graphs trains eagerly and identically, bf16 really changes the
rounding, and both options are recorded and checked. On a CUDA GPU (benchmarks/gpu_check.sh
runs this file there): every model's replayed step gives the eager step's losses and
weights, resume is unchanged, and a step that cannot be recorded falls back to eager,
says so once, and trains exactly as eager does."""

import tomllib

import pytest
import torch

import gankit
from gankit.training import checkpoint, graphs
from gankit.models import IMPUTERS, MODELS, build_model, get_model_class
from gankit.models.gan import GAN
from helpers import gankit_cli, make_model, tiny_flags, tiny_run


@pytest.fixture(autouse=True)
def _deterministic_cudnn(monkeypatch):
    """cuDNN's default convolution algorithms may sum in a different order on every call
    (eager against eager differs too): the comparisons below use deterministic ones, so
    that what they measure is the graph, not cuDNN."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


RUN = tiny_run(sample_every=10**9, checkpoint_every=10**9)   # on the CPU


def weights(run):
    return run.model.state_dict()


# --- on the CPU ------------------------------------------------------------------------

def test_graphs_asked_for_on_the_cpu_train_eagerly_and_identically(tmp_path):
    step, note = graphs.training_step(make_model("gan"), torch.device("cpu"), "fp32", True, 1)
    assert not isinstance(step, graphs.GraphedStep) and note == ""
    a = gankit.train(model="gan", steps=10, out=tmp_path / "a", **RUN)
    b = gankit.train(model="gan", steps=10, out=tmp_path / "b", cuda_graphs=False, **RUN)
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_graphs_are_off_under_torchrun_and_say_so():
    """Several processes exchange gradients from hooks between the step's kernels, which a
    replay would skip: eager steps, and a note (no GPU needed to decide it)."""
    model = make_model("gan")
    step, note = graphs.training_step(model, torch.device("cuda"), "fp32", True, 2)
    assert step == model.training_step and "torchrun" in note
    step, note = graphs.training_step(model, torch.device("cuda"), "fp32", False, 1)
    assert step == model.training_step and note == ""


def test_bf16_changes_the_rounding_and_still_trains(tmp_path):
    a = gankit.train(model="dcgan", steps=10, out=tmp_path / "a", **RUN)
    b = gankit.train(model="dcgan", steps=10, out=tmp_path / "b", precision="bf16", **RUN)
    wa, wb = weights(a), weights(b)
    assert all(v.dtype == torch.float32 for v in wb.values() if v.is_floating_point())
    diff = max((wa[k] - wb[k]).abs().max().item() for k in wa if wa[k].is_floating_point())
    assert 0 < diff < 0.05   # bf16 products: different rounding, the same training
    assert all(torch.isfinite(torch.tensor(r["g_loss"])) for r in b.metrics)


def test_the_options_are_recorded_and_resume_keeps_them(tmp_path):
    out = tmp_path / "run"
    gankit.train(model="gan", steps=10, out=out, precision="bf16", cuda_graphs=False,
                 **{**RUN, "checkpoint_every": 5})
    saved = tomllib.loads((out / "config.toml").read_text())["train"]
    assert saved["precision"] == "bf16" and saved["cuda_graphs"] is False
    run = gankit.train(model="gan", steps=15, out=out, resume=True, progress=False)
    assert run.config.train.precision == "bf16" and run.config.train.cuda_graphs is False


def test_a_bad_precision_is_one_line(tmp_path):
    r = gankit_cli("train", "--precision", "fp16", "--out", tmp_path / "r", *tiny_flags(steps=5))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--precision" in r.stderr and "fp32" in r.stderr
    assert not (tmp_path / "r").exists()


# --- on a GPU ----------------------------------------------------------------------------

def _steps(model, step, batches):
    """Run `step` over the batches from a fixed CUDA seed; each step's metrics as floats."""
    torch.cuda.manual_seed(1)
    rows = []
    for real, labels in batches:
        rows.append({k: v.item() for k, v in step(real, labels).items()})
    return rows


def _batches(model, n_steps, seed=0, table=False):
    gen = torch.Generator().manual_seed(seed)
    n = model.real_batch_size(32)
    out = []
    for _ in range(n_steps):
        if table:
            x = torch.randn(n, *model.image_shape, generator=gen)
            x[torch.rand(x.shape, generator=gen) < 0.2] = float("nan")
        else:
            x = torch.rand(n, *model.image_shape, generator=gen) * 2 - 1
        labels = torch.randint(model.num_classes, (n,), generator=gen) if model.num_classes else None
        out.append((x.cuda(), labels.cuda() if labels is not None else None))
    return out


def _pair(name):
    table = name in IMPUTERS
    shape, classes = ((6,), 0) if table else ((1, 28, 28), 10)
    pair = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(name, get_model_class(name).Config(), shape, classes).cuda()
        model.optimizers = model.configure_optimizers()
        pair.append(model)
    return *pair, table


@pytest.mark.gpu   # skipped where torch sees no CUDA GPU (tests/conftest.py)
@pytest.mark.parametrize("name", [*MODELS, *IMPUTERS])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_replayed_step_gives_the_eager_losses_for_100_steps(name, precision):
    eager, graphed, table = _pair(name)
    batches = _batches(eager, 100, table=table)
    step = graphs.GraphedStep(graphed, precision)
    a = _steps(eager, graphs.eager_step(eager, torch.device("cuda"), precision), batches)
    b = _steps(graphed, step, batches)
    assert step.captured, step.note
    worst = max(abs(x[k] - y[k]) / max(1.0, abs(x[k])) for x, y in zip(a, b) for k in x)
    wa, wb = eager.state_dict(), graphed.state_dict()
    wdiff = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
    identical = all(torch.equal(wa[k], wb[k]) for k in wa)
    print(f"{name} {precision}: worst loss difference {worst:.3g}, weights "
          f"{'identical' if identical else f'differ by at most {wdiff:.3g}'}")
    assert worst < 1e-4 and wdiff < 1e-4


class SyncingGAN(GAN):
    """A user's model that reads a loss on the host inside its step: it cannot be
    recorded (a host sync), and must train as it would eagerly."""

    def training_step(self, real, labels=None):
        metrics = super().training_step(real, labels)
        if metrics["g_loss"].item() > 1e9:
            raise RuntimeError("unreachable")
        return metrics


@pytest.mark.gpu   # skipped where torch sees no CUDA GPU (tests/conftest.py)
def test_a_step_that_cannot_be_recorded_falls_back_to_eager_exactly():
    torch.manual_seed(0)
    eager = SyncingGAN(GAN.Config(), (1, 28, 28)).cuda()
    torch.manual_seed(0)
    graphed = SyncingGAN(GAN.Config(), (1, 28, 28)).cuda()
    for m in (eager, graphed):
        m.optimizers = m.configure_optimizers()
    batches = _batches(eager, 12)
    step = graphs.GraphedStep(graphed)
    a = _steps(eager, eager.training_step, batches)
    b = _steps(graphed, step, batches)
    assert not step.captured and "recording it failed" in step.note
    assert a == b
    wa, wb = eager.state_dict(), graphed.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.gpu   # skipped where torch sees no CUDA GPU (tests/conftest.py)
def test_training_on_the_gpu_with_graphs_resumes_and_samples_as_eagerly(tmp_path, capfd):
    gpu = dict(RUN, device="cuda", log_every=1)
    plain = gankit.train(model="gan", steps=100, out=tmp_path / "eager", cuda_graphs=False, **gpu)
    whole = gankit.train(model="gan", steps=100, out=tmp_path / "whole", **gpu)
    gankit.train(model="gan", steps=50, out=tmp_path / "part", **{**gpu, "checkpoint_every": 50})
    resumed = gankit.train(model="gan", steps=100, out=tmp_path / "part", resume=True,
                           progress=False)
    for other in (plain, resumed):
        for x, y in zip(whole.metrics, other.metrics):
            assert x["step"] == y["step"]
            assert abs(x["g_loss"] - y["g_loss"]) < 1e-4 * max(1, abs(x["g_loss"]))
    # A replay computes what the eager step computes, bit for bit (the test above), and a
    # resumed run's first steps are eager ones: resume stays exact.
    wa, wb = checkpoint.load(whole.out)[0], checkpoint.load(resumed.out)[0]
    assert all(torch.equal(wa[k], wb[k]) for k in wa if k.startswith(("model.", "optim.")))
    z = torch.randn(8, 100, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(whole.model.sample(latents=z), plain.model.sample(latents=z), atol=1e-4)
    # A step that cannot be recorded: said once, with the reason.
    gankit.train(model="gan", steps=20, out=tmp_path / "loud", **{**RUN, "device": "cuda",
                                                                   "progress": True})
    assert "without a CUDA graph" not in capfd.readouterr().err
