"""Latent walks: interpolation maths, the closed walk, the GIF and `gankit interpolate`."""

import math

import pytest
import torch
from PIL import Image, ImageSequence

from helpers import gankit_cli, one_line_error

from gankit.errors import GankitError
from gankit.images import save_gif
from gankit.interpolate import latent_walk, lerp, slerp, strip_indices, walk_latents
from gankit.models import MODELS, check_label

T = torch.linspace(0, 1, 11)


# --- lerp and slerp ----------------------------------------------------------------------

def test_slerp_ends_at_a_and_b():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(100, generator=g), torch.randn(100, generator=g)
    path = slerp(a, b, T)
    assert path.shape == (11, 100)
    assert torch.allclose(path[0], a, atol=1e-6) and torch.allclose(path[-1], b, atol=1e-5)


def test_slerp_of_orthogonal_unit_vectors_at_half_is_the_normalised_sum():
    a, b = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0])
    mid = slerp(a, b, torch.tensor([0.5]))[0]
    assert torch.allclose(mid, (a + b) / math.sqrt(2), atol=1e-7)


def test_slerp_keeps_the_norm_of_equal_norm_codes_and_lerp_does_not():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 100, generator=g)
    b = b * a.norm() / b.norm()
    assert torch.allclose(slerp(a, b, T).norm(dim=1), a.norm().expand(11), rtol=1e-5)
    assert lerp(a, b, T)[5].norm() < 0.8 * a.norm()    # why slerp is the default


def test_lerp_midpoint_is_the_mean():
    a, b = torch.tensor([1.0, 2.0, -3.0]), torch.tensor([3.0, -2.0, 5.0])
    assert torch.allclose(lerp(a, b, torch.tensor([0.5]))[0], (a + b) / 2)
    assert torch.equal(lerp(a, b, torch.tensor([0.0, 1.0])), torch.stack([a, b]))


@pytest.mark.parametrize("b_of_a", [lambda a: a.clone(), lambda a: 2 * a,
                                    lambda a: a + 1e-6, lambda a: -a])
def test_nearly_parallel_codes_give_no_nan(b_of_a):
    a = torch.randn(64, generator=torch.Generator().manual_seed(2))
    path = slerp(a, b_of_a(a), T)
    assert torch.isfinite(path).all()
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b_of_a(a), atol=1e-5)


# --- the walk ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["slerp", "lerp"])
def test_walk_passes_every_point_and_closes_the_loop_smoothly(mode):
    z = torch.randn(3, 100, generator=torch.Generator().manual_seed(3))
    z = z / z.norm(dim=1, keepdim=True) * 10       # equal norms: slerp moves at constant speed
    path = walk_latents(z, 8, mode)
    assert path.shape == (24, 100)
    for k in range(3):
        assert torch.allclose(path[8 * k], z[k], atol=1e-5)
    # the step after the last frame lands on the first point, at the last leg's speed
    closing = (z[0] - path[-1]).norm()
    steps = (path[17:] - path[16:-1]).norm(dim=1)
    assert torch.allclose(steps, closing.expand(7), rtol=1e-4)
    if mode == "lerp":
        assert torch.allclose(path[4], (z[0] + z[1]) / 2, atol=1e-6)
    else:
        assert torch.allclose(path.norm(dim=1), torch.full((24,), 10.0), rtol=1e-5)


def test_latent_walk_decodes_the_path(make_model):
    model = make_model("gan", num_classes=0, optimizers=False).eval()
    frames = latent_walk(model, 3, 5, "slerp", torch.Generator().manual_seed(4))
    assert frames.shape == (15, 1, 28, 28) and frames.min() >= -1 and frames.max() <= 1
    ring = torch.cat([frames, frames[:1]])                     # last frame -> first frame too
    assert ((ring[1:] - ring[:-1]).abs().flatten(1).amax(1) > 0).all()
    z = model.latents(3, torch.Generator().manual_seed(4))
    assert torch.allclose(frames[0], model.sample(latents=z[:1])[0], atol=1e-5)
    assert torch.allclose(frames[5], model.sample(latents=z[1:2])[0], atol=1e-5)
    # decoding in chunks changes nothing
    small = latent_walk(model, 3, 5, "slerp", torch.Generator().manual_seed(4), chunk=4)
    assert torch.allclose(frames, small, atol=1e-6)


def test_conditional_model_walks_with_one_fixed_label(make_model):
    model = make_model("cgan", optimizers=False)
    frames = latent_walk(model, 2, 40, label=7, generator=torch.Generator().manual_seed(1), chunk=32)
    path = walk_latents(model.latents(2, torch.Generator().manual_seed(1)), 40, "slerp")
    sevens = model.sample(latents=path, labels=torch.full((len(path),), 7))
    assert torch.allclose(frames, sevens, atol=1e-6)
    assert not torch.allclose(frames, model.sample(latents=path, labels=torch.full((len(path),), 3)))
    zeros = latent_walk(model, 2, 3, generator=torch.Generator().manual_seed(1))   # no label: class 0
    path = walk_latents(model.latents(2, torch.Generator().manual_seed(1)), 3, "slerp")
    assert torch.allclose(zeros, model.sample(latents=path, labels=torch.zeros(len(path), dtype=torch.long)),
                          atol=1e-6)
    with pytest.raises(GankitError, match="out of range.*0 to 9"):
        check_label(model, 10)
    with pytest.raises(GankitError, match="out of range"):
        check_label(model, -1)


def test_labels_are_refused_for_unconditional_models(make_model):
    model = make_model("gan", num_classes=0, optimizers=False).eval()
    check_label(model, None)
    with pytest.raises(GankitError, match=r"needs a conditional model \(cgan"):
        latent_walk(model, 2, 2, label=0)
    with pytest.raises(GankitError, match="at least 2"):
        latent_walk(model, 1, 4)


def test_strip_has_one_row_per_leg_of_at_most_16_frames():
    assert strip_indices(3, 4) == list(range(12))
    picks = strip_indices(2, 40)
    assert len(picks) == 32 and picks[0] == 0 and picks[16] == 40 and picks[15] < 40
    assert len(set(picks)) == 32


def test_save_gif_from_tensors_and_pictures(tmp_path):
    frames = torch.rand(6, 3, 16, 16) * 2 - 1
    save_gif(frames, tmp_path / "a.gif", duration_ms=50)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 6 and im.size == (48, 48)       # 16 px upscaled 3x, as grid does
        assert im.info["loop"] == 0 and im.info["duration"] == 50
    pictures = [Image.new("L", (10, 10), v) for v in (0, 128, 255)]
    save_gif(pictures, tmp_path / "b.gif", loop=None)
    with Image.open(tmp_path / "b.gif") as im:
        assert im.n_frames == 3 and "loop" not in im.info
    assert not list(tmp_path.glob("*.tmp"))


# --- the command -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(gan_cli_run):
    """One tiny gan run trained by `gankit train` for every CLI test here: conftest's,
    shared read-only with test_cli (the walks write only under tmp_path)."""
    path, r = gan_cli_run
    assert r.returncode == 0, r.stderr
    return path


def gif_frames(path):
    with Image.open(path) as im:
        return [f.convert("L").tobytes() for f in ImageSequence.Iterator(im)]


@pytest.mark.slow
def test_interpolate_writes_a_looping_gif_and_a_strip(run, tmp_path):
    r = gankit_cli("interpolate", "--checkpoint", run, "--out", tmp_path / "a.gif",
                   "--points", "3", "--frames", "5", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert "15 frames" in r.stdout and "a.png" in r.stdout
    with Image.open(tmp_path / "a.gif") as im:
        assert im.is_animated and im.n_frames == 15 and im.info["loop"] == 0
    with Image.open(tmp_path / "a.png") as strip:                # 3 rows of 5 cells, 2x
        assert strip.size == ((5 * 30 + 2) * 2, (3 * 30 + 2) * 2)

    # the same seed gives the same frames, byte for byte; another seed other frames
    r = gankit_cli("interpolate", "--checkpoint", run, "--out", tmp_path / "b.gif",
                   "--points", "3", "--frames", "5", "--seed", "3", "--png", tmp_path / "s.png")
    assert r.returncode == 0, r.stderr
    assert gif_frames(tmp_path / "a.gif") == gif_frames(tmp_path / "b.gif")
    assert (tmp_path / "a.gif").read_bytes() == (tmp_path / "b.gif").read_bytes()
    assert (tmp_path / "s.png").is_file() and not (tmp_path / "b.png").exists()
    r = gankit_cli("interpolate", "--checkpoint", run, "--out", tmp_path / "c.gif",
                   "--points", "3", "--frames", "5", "--seed", "4", "--mode", "lerp", "--no-png")
    assert r.returncode == 0, r.stderr
    assert gif_frames(tmp_path / "c.gif") != gif_frames(tmp_path / "a.gif")
    assert not (tmp_path / "c.png").exists()


@pytest.mark.slow
def test_interpolate_mistakes_are_one_line(run, tmp_path):
    def interp(*args):
        return gankit_cli("interpolate", "--checkpoint", run, *args)

    one_line_error(interp("--out", tmp_path / "w.gif", "--points", "1"), "--points", "at least 2")
    one_line_error(interp("--out", tmp_path / "w.gif", "--frames", "1"), "--frames", "at least 2")
    one_line_error(interp("--out", tmp_path / "no" / "w.gif"), "does not exist")
    one_line_error(interp("--out", tmp_path / "w.png"), "must end in .gif")
    one_line_error(interp("--out", tmp_path / "w.gif", "--label", "3"),
                   "--label needs a conditional model (cgan",
                   "this checkpoint is gan")
    one_line_error(gankit_cli("interpolate", "--checkpoint", tmp_path / "missing",
                              "--out", tmp_path / "w.gif"), "does not exist")
    assert not list(tmp_path.glob("w.*"))                        # nothing written


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_walks(name, make_model):
    model = make_model(name, optimizers=False)
    frames = latent_walk(model, 2, 3, generator=torch.Generator().manual_seed(0),
                         label=4 if model.conditional else None)
    assert frames.shape == (6, 1, 28, 28) and torch.isfinite(frames).all()
    assert not torch.equal(frames[0], frames[1])
