"""What issue 24 added to the GANs: the RpGAN loss with R1 and R2, R3GAN-style residual
networks (--arch resnet), ADA, self-conditioning on clusters (--clusters) and the
truncation trick at sampling time."""

import math

import pytest
import torch

from gankit.api import config_from_tables
from gankit.models.augment import ADA_KIMG, ada_adjust, ada_augment
from gankit.errors import GankitError
from gankit.models.losses import LOSSES, r1_penalty, zero_centred_penalty
from gankit.models import clusters
from gankit.models.base import check_truncation

from helpers import gankit_cli

SHAPE = (1, 28, 28)


def real_batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g)


# --- RpGAN, R1, R2 ----------------------------------------------------------------------

def test_rpgan_scores_pairs():
    rp = LOSSES["rpgan"]
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    # softplus(-(D(real) - D(fake))) averaged over the pairs, for D; the mirror for G
    want_d = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2
    assert rp.d(real, fake).item() == pytest.approx(want_d)
    assert rp.g_against(fake, real).item() == pytest.approx(
        (math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0))) / 2)
    assert rp.d_accuracy(real, fake).item() == 0.5      # the second real lost to its fake
    # shifting every score by a constant changes nothing: relativistic
    assert rp.d(real + 7, fake + 7).item() == pytest.approx(want_d)


def test_penalty_from_the_shared_forward_equals_a_fresh_one(make_model):
    model = make_model("dcgan", loss="rpgan", r1=1.0, r2=1.0, spectral_norm=False, clusters=0)
    d = model.discriminator.eval()   # deterministic: no BatchNorm here, no augmentation
    x = real_batch()[0].requires_grad_(True)
    shared = zero_centred_penalty(d(x).view(-1), x)
    fresh = r1_penalty(lambda v: d(v).view(-1), x.detach())
    assert shared.item() == pytest.approx(fresh.item(), rel=1e-5)
    assert shared.item() > 0


def test_rpgan_with_r1_and_r2_trains_and_reports_both(make_model):
    model = make_model("dcgan", loss="rpgan", r1=0.5, r2=0.5, spectral_norm=False)
    assert "batch" not in str(model.discriminator).lower()   # penalised D: no BatchNorm
    d_before = [p.clone() for p in model.discriminator.parameters()]
    out = model.training_step(*real_batch())
    assert set(model.metric_names) == set(out)
    assert {"d_acc", "r1", "r2"} <= set(out) and out["r1"] > 0 and out["r2"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))


def test_vanilla_gan_refuses_a_paired_loss(make_model):
    with pytest.raises(GankitError, match="pairs"):
        make_model("gan", loss="rpgan")


# --- --arch resnet --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_resnet_networks_build_sample_and_train(name, shape, make_model):
    model = make_model(name, shape=shape, arch="resnet", width=8, loss="rpgan", r1=0.1, r2=0.1)
    images = model.sample(4)
    assert images.shape == (4, *shape) and images.abs().max() <= 1
    x = torch.rand(8, *shape) * 2 - 1
    out = model.training_step(x, torch.randint(0, 10, (8,)))
    assert all(torch.isfinite(v) for v in out.values())


def test_resnet_blocks_start_as_the_identity(make_model):
    from gankit.models.residual import Block
    block = Block(16, blocks_in_network=3)
    x = torch.randn(2, 16, 7, 7)
    assert torch.equal(block(x), x)   # the branch's last conv starts at zero (fix-up init)
    model = make_model("dcgan", arch="resnet", width=8)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_runs_saved_before_this_round_load_as_they_were_trained():
    cfg = config_from_tables({"model": {"name": "dcgan"}, "train": {"steps": 10}}, saved=True)
    m = cfg.model_cfg
    assert (m.arch, m.clusters, m.projection, m.ada, m.r2) == ("dcgan", 0, False, 0.0, 0.0)
    assert cfg.train.budget is None and cfg.train.steps == 10


# --- ADA ------------------------------------------------------------------------------

def test_ada_at_p0_is_the_identity_and_at_p1_changes_every_image():
    x = real_batch(16)[0]
    assert torch.allclose(ada_augment(x, torch.tensor(0.0)), x, atol=1e-5)
    torch.manual_seed(0)
    y = ada_augment(x, torch.tensor(1.0))
    assert y.shape == x.shape
    assert ((y - x).flatten(1).abs().amax(1) > 0.1).all()


def test_ada_p_follows_the_sign_of_d_overfitting():
    p = torch.tensor(0.5)
    ada_adjust(p, torch.ones(64), target=0.6, images=64)      # D calls every real real
    assert p.item() == pytest.approx(0.5 + 64 / (ADA_KIMG * 1000))
    ada_adjust(p, -torch.ones(64), target=0.6, images=64)     # and then none
    assert p.item() == pytest.approx(0.5)
    q = torch.tensor(0.0)
    ada_adjust(q, -torch.ones(8), target=0.6, images=8)
    assert q.item() == 0.0                                      # never below 0


def test_ada_trains_keeps_p_in_the_model_and_is_reported(make_model):
    model = make_model("dcgan", ada=0.6)
    model.ada_p.fill_(0.5)
    out = model.training_step(*real_batch())
    assert "ada_p" in out and 0 < out["ada_p"] <= 1
    assert "ada_p" in model.state_dict()   # checkpoints (and resume) keep it


@pytest.mark.parametrize("kw, fragment", [({"ada": 1.0}, "ada must be in"),
                                          ({"ada": 0.6, "augment": True}, "keep one")])
def test_bad_ada_options(kw, fragment, make_model):
    with pytest.raises(GankitError, match=fragment):
        make_model("dcgan", **kw)


# --- self-conditioning on clusters ------------------------------------------------------

def test_kmeans_finds_separate_groups():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(n, 2, generator=g) for c, n in zip(centres, (50, 30, 20))])
    found, share = clusters.kmeans(x, 3, seed=0)
    assert sorted(share.tolist()) == pytest.approx([0.2, 0.3, 0.5])
    assert torch.cdist(found, centres).min(1).values.max() < 0.2


def test_clustered_dcgan_conditions_on_clusters_and_samples_by_their_share(make_model):
    model = make_model("dcgan", clusters=4)
    images = (torch.rand(200, *SHAPE) * 255).to(torch.uint8)
    model.fit_data(images, None, seed=0)
    assert model.cluster_share.sum().item() == pytest.approx(1.0)
    assert model.latent_size == model.cfg.latent_dim + 1
    out = model.training_step(real_batch()[0], None)   # no data labels needed
    assert all(torch.isfinite(v) for v in out.values())
    # decode's last latent picks clusters as often as their share
    model.cluster_share.copy_(torch.tensor([0.7, 0.1, 0.1, 0.1]))
    picked = []
    original = model.generator.forward
    model.generator.forward = lambda z, labels: (picked.append(labels), original(z, labels))[1]
    model.sample(4000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(torch.cat(picked), minlength=4).float() / 4000
    assert counts[0].item() == pytest.approx(0.7, abs=0.03)


def test_cgan_refuses_clusters(make_model):
    with pytest.raises(GankitError, match="drop it"):
        make_model("cgan", clusters=5)


# --- truncation -------------------------------------------------------------------------

@pytest.mark.parametrize("psi", [0, -0.5, 1.5, float("nan")])
def test_truncation_out_of_range_is_refused(psi):
    with pytest.raises(GankitError, match="truncation"):
        check_truncation(psi)


def test_truncation_pulls_latents_to_the_mean_but_not_the_cluster_pick(make_model):
    model = make_model("dcgan", clusters=3).eval()
    z = torch.randn(5, model.latent_size)
    t = model.truncate(z, 0.5)
    assert torch.equal(t[:, :-1], z[:, :-1] * 0.5) and torch.equal(t[:, -1], z[:, -1])
    plain = make_model("dcgan", clusters=0).eval()
    z = torch.randn(6, plain.latent_size)
    assert torch.equal(plain.sample(latents=z, truncation=1.0), plain.sample(latents=z))
    assert torch.equal(plain.sample(latents=z, truncation=0.5), plain.sample(latents=z * 0.5))


@pytest.mark.slow
def test_sample_cli_truncation(gan_cli_run, tmp_path):
    run = gan_cli_run[0]
    out = tmp_path / "t.png"
    ok = gankit_cli("sample", "--checkpoint", run, "--out", out, "--truncation", "0.6")
    assert ok.returncode == 0 and out.is_file(), ok.stderr
    bad = gankit_cli("sample", "--checkpoint", run, "--out", tmp_path / "u.png",
                     "--truncation", "0")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "truncation" in bad.stderr and not (tmp_path / "u.png").exists()


# --- discriminator rejection sampling ---------------------------------------------------

def test_rejection_keeps_the_samples_d_prefers(make_model):
    from gankit.rejection import rejection_sampler
    model = make_model("dcgan", loss="bce", clusters=0).eval()
    gen = torch.Generator().manual_seed(0)
    sampler = rejection_sampler(model, gen, percentile=90)
    kept = sampler(64)
    assert kept.shape == (64, *SHAPE)
    plain = model.sample(500, generator=torch.Generator().manual_seed(1))
    d = lambda x: model.discriminator.eval()(x).view(-1).mean().item()   # noqa: E731
    assert d(kept) > d(plain)   # what is kept scores higher with D than what is drawn


@pytest.mark.parametrize("loss", ["hinge", "rpgan"])
def test_rejection_needs_a_bce_discriminator(loss, make_model):
    from gankit.rejection import rejection_sampler
    model = make_model("dcgan", loss=loss, spectral_norm=False).eval()
    with pytest.raises(GankitError, match="BCE"):
        rejection_sampler(model)


def test_rejection_with_clusters_asks_d_about_the_cluster_g_drew(make_model):
    model = make_model("dcgan", loss="bce", clusters=3).eval()
    z = model.latents(6, torch.Generator().manual_seed(0))
    images, logits = model.judged_samples(z)
    assert images.shape == (6, *SHAPE) and logits.shape == (6,)
    assert torch.equal(model.latent_labels(z, None, images), model.pick(z))


@pytest.mark.slow
def test_sample_cli_reject_and_eval_flags_need_a_checkpoint(gan_cli_run, tmp_path):
    out = tmp_path / "kept.png"
    ok = gankit_cli("sample", "--checkpoint", gan_cli_run[0], "--out", out, "--n", "9",
                    "--reject", "--reject-percentile", "50", "--seed", "1")
    assert ok.returncode == 0 and out.is_file(), ok.stderr
    for flags in (["--truncation", "0.8"], ["--reject", "80"]):
        bad = gankit_cli("eval", "--reference", *flags)
        assert bad.returncode != 0 and "--checkpoint" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    bad = gankit_cli("sample", "--checkpoint", gan_cli_run[0], "--out", tmp_path / "x.png",
                     "--reject", "--reject-percentile", "100")
    assert bad.returncode != 0 and "percentile" in bad.stderr


def test_augment_given_replaces_a_default_ada_but_both_given_is_refused():
    from gankit.api import make_config
    assert make_config("dcgan").model_cfg.ada == 0.6            # the recipe's ADA
    cfg = make_config("dcgan", augment=True).model_cfg
    assert (cfg.augment, cfg.ada) == (True, 0.0)
    with pytest.raises(GankitError, match="keep one"):
        make_config("dcgan", augment=True, ada=0.5)
