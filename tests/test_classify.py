"""Generative classification (gankit.classify, `gankit classify`): Bayes' rule by hand, the
baselines by hand, the IWAE bound against an exact likelihood, a trained CVAE on held-out
digits, and the command's refusals of bad input."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.classify import (BernoulliNaiveBayes, LogisticRegression, bayes_posterior,
                             class_log_likelihoods, class_log_prior, classify,
                             confusion_matrix)
from gankit.cli import main
from gankit.config import DataConfig
from gankit.errors import GankitError
from gankit.images import confusion_image
from gankit.models.losses import kl_normal
from gankit.data.reference import reference_split

from helpers import gankit_cli, gankit_main, one_line_error, tiny_run


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """gankit's own policy on a 2-core machine (runtime.default_threads): a second torch
    thread gains little and loses badly while another process holds a core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- Bayes' rule and the baselines, by hand ---------------------------------------------

def test_bayes_posterior_hand_computed():
    # p(x|y) = 0.2, 0.1, 0.4 and p(y) = 0.5, 0.3, 0.2: joint 0.10, 0.03, 0.08, sum 0.21,
    # so p(y|x) = 10/21, 3/21, 8/21 (the prior moves the winner from class 2 to class 0).
    log_lik = torch.tensor([[0.2, 0.1, 0.4]]).double().log()
    log_prior = torch.tensor([0.5, 0.3, 0.2]).double().log()
    post = bayes_posterior(log_lik, log_prior).exp()
    torch.testing.assert_close(post, torch.tensor([[10 / 21, 3 / 21, 8 / 21]]).double())
    # Image likelihoods are hundreds of nats below 0: exp() of them is 0 for every class,
    # yet the posterior only depends on their differences.
    far = bayes_posterior(log_lik - 1000, log_prior).exp()
    torch.testing.assert_close(far, post)


def test_naive_bayes_by_hand_with_laplace_smoothing():
    # Two pixels; on means >= 128. Class 0: (255, 0), (128, 127), (0, 0) -> pixel 1 on in 2
    # of 3, pixel 2 in 0 of 3: theta_0 = ((2+1)/(3+2), (0+1)/(3+2)) = (0.6, 0.2). Class 1:
    # (0, 255) -> theta_1 = ((0+1)/(1+2), (1+1)/(1+2)) = (1/3, 2/3). Prior 3/4, 1/4.
    # x = (on, off): p(x|0) = 0.6 * 0.8 = 0.48, p(x|1) = 1/3 * 1/3 = 1/9; joint 9/25, 1/36;
    #   p(0|x) = (9/25) / (9/25 + 1/36) = 324/349.
    # x = (off, on): p(x|0) = 0.4 * 0.2 = 0.08, p(x|1) = 4/9; joint 0.06, 1/9 -> p(0|x) = 27/77
    #   (without smoothing theta_0 of pixel 2 would be 0, and p(0|x) 0).
    train = torch.tensor([[255, 0], [128, 127], [0, 0], [0, 255]], dtype=torch.uint8)
    nb = BernoulliNaiveBayes().fit(train.view(4, 1, 1, 2), torch.tensor([0, 0, 0, 1]), 2)
    post = nb.predict_log_proba(torch.tensor([[255, 0], [0, 200]], dtype=torch.uint8)).exp()
    torch.testing.assert_close(post[:, 0], torch.tensor([324 / 349, 27 / 77]).double())
    torch.testing.assert_close(post.sum(1), torch.ones(2).double())


def separable(n_per_class, seed):
    """3 classes of 4x4 images: class k lights pixel k (>= 200), the rest is noise <= 100."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    images = torch.randint(0, 101, (len(labels), 1, 4, 4), generator=g)
    images.view(len(labels), -1)[torch.arange(len(labels)), labels] = \
        torch.randint(200, 256, (len(labels),), generator=g)
    return images.to(torch.uint8), labels


def test_logistic_regression_separates_a_separable_set_deterministically():
    x, y = separable(20, seed=0)
    a, b = LogisticRegression().fit(x, y, 3), LogisticRegression().fit(x, y, 3)
    assert torch.equal(a.w, b.w)                                   # full-batch L-BFGS
    assert (a.predict_log_proba(x).argmax(1) == y).all()
    x2, y2 = separable(50, seed=1)
    logp = a.predict_log_proba(x2)
    assert (logp.argmax(1) == y2).double().mean() > 0.95
    torch.testing.assert_close(logp.exp().sum(1), torch.ones(len(x2)).double())


def test_confusion_matrix_rows_are_true_classes():
    m = confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2, 0]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


# --- the IWAE bound against an exact likelihood -------------------------------------------

@pytest.fixture
def z_blind_cvae(make_model):
    """z_blind_cvae(mu, var): a CVAE on 8x8 images whose decoder ignores z (p(x|z, y) =
    p(x|y), so the true posterior is the prior N(0, I)) and whose encoder says
    q(z|x, y) = N(mu, var I)."""
    def z_blind(mu: float, var: float):
        model = make_model("cvae", (1, 8, 8), 2, optimizers=False, width=8, latent_dim=4).eval()
        with torch.no_grad():
            model.decoder.net[0].weight[:, :4] = 0              # the columns that read z
            head = model.encoder.head
            head.weight.zero_()
            head.bias.copy_(torch.tensor([mu] * 4 + [math.log(var)] * 4))
        return model
    return z_blind


def exact_log_likelihood(model, x):
    """log p(x|y) (N, K) of a z-blind decoder: any z gives it."""
    z = torch.zeros(len(x), 4)
    with torch.no_grad():
        return torch.stack([-model.nll(model.decoder(z, torch.full((len(x),), y)), x)
                            for y in range(model.num_classes)], 1).double()


def test_iwae_is_exact_when_q_is_the_true_posterior(z_blind_cvae):
    model = z_blind_cvae(0.0, 1.0)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    exact = exact_log_likelihood(model, x)
    for k in (1, 5):
        torch.testing.assert_close(class_log_likelihoods(model, x, samples=k), exact,
                                   rtol=0, atol=1e-3)


def test_elbo_falls_short_by_the_kl_and_iwae_closes_the_gap(z_blind_cvae):
    # q = N(1, 0.5) but the posterior is N(0, 1): the ELBO is log p(x|y) - KL(q || p) in
    # expectation, and the IWAE bound climbs towards log p(x|y) as k grows (Burda et al.).
    model = z_blind_cvae(1.0, 0.5)
    # One image, many times: the Monte Carlo noise of a mean over n is about 1.6 / sqrt(n)
    # nats at k=1 (measured), so 2,000 copies pin the KL to +- 0.04.
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1)).repeat(2000, 1, 1, 1)
    exact = exact_log_likelihood(model, x)
    gap = {k: (exact[:n] - class_log_likelihoods(model, x[:n], samples=k)).mean().item()
           for k, n in ((1, 2000), (4, 500), (32, 500))}
    kl = kl_normal(torch.ones(1, 4), torch.full((1, 4), math.log(0.5))).item()   # 2.39 nats
    assert gap[1] == pytest.approx(kl, abs=0.15)
    assert gap[1] > gap[4] > gap[32] > -0.05


# --- a trained CVAE ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small CVAE trained by gankit's own trainer on offline MNIST (200 steps, ~5 s)."""
    out = tmp_path_factory.mktemp("cvae") / "run"
    gankit.train(out=str(out), **tiny_run(model="cvae", offline=True, steps=200, width=16,
                                          batch_size=None, log_every=None,   # cvae's own
                                          sample_every=200, checkpoint_every=200))
    _, held, _ = reference_split(DataConfig(data="mnist", offline=True))
    keep = torch.arange(0, len(held), 5)                       # 20 of each class
    return out, gankit.load(out), held.images[keep], held.labels[keep]


def test_trained_cvae_classifies_held_out_digits_well_above_chance(trained):
    _, model, images, labels = trained
    assert model.class_counts == [400] * 10
    pred = classify(model, images, samples=5)
    assert pred.prior.startswith("training class frequencies")
    assert pred.probs.shape == (200, 10)
    torch.testing.assert_close(pred.probs.sum(1), torch.ones(200).double())
    accuracy = (pred.labels == labels).double().mean().item()
    assert accuracy > 0.6, accuracy                          # chance is 0.1; measured 0.8
    # Seeded: the same call gives the same numbers.
    assert torch.equal(classify(model, images, samples=5).probs, pred.probs)


def test_iwae_bound_grows_with_k_on_real_digits(trained):
    _, model, images, labels = trained
    def bound(k):   # log p(x|y) of each image's own class, averaged
        log_lik = class_log_likelihoods(model, images[::5], samples=k)       # (40, 10)
        return log_lik[torch.arange(40), labels[::5]].mean()
    elbo, k5, k25 = bound(1), bound(5), bound(25)
    assert elbo < k5 < k25, (elbo, k5, k25)


def test_prior_is_uniform_without_class_counts(trained):
    _, model, _, _ = trained
    counts = model.class_counts
    try:
        model.class_counts = []
        log_prior, what = class_log_prior(model)
        assert what.startswith("uniform")
        torch.testing.assert_close(log_prior, torch.full((10,), -math.log(10)).double())
        model.class_counts = [1] * 9 + [3]
        torch.testing.assert_close(class_log_prior(model)[0].exp()[-1].item(), 0.25)
    finally:
        model.class_counts = counts


@pytest.mark.parametrize("name, why", [("vae", "unconditional"), ("cgan", "no likelihood")])
def test_models_without_p_x_given_y_are_refused(name, why, make_model):
    model = make_model(name, optimizers=False)
    with pytest.raises(GankitError, match=why) as e:
        classify(model, torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    assert "cvae" in str(e.value) and "\n" not in str(e.value)


# --- the command ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(trained, tmp_path_factory):
    """The held-out digits as `gankit sample --npy` writes them, and their labels."""
    d = tmp_path_factory.mktemp("inputs")
    _, _, images, labels = trained
    np.save(d / "x.npy", images[:, 0].numpy())
    np.save(d / "y.npy", labels.numpy())
    np.save(d / "y_short.npy", labels.numpy()[:-1])
    np.save(d / "y_float.npy", labels.numpy().astype(np.float32))
    np.save(d / "y_range.npy", np.where(np.arange(len(labels)) == 3, 10, labels.numpy()))
    np.save(d / "x_small.npy", images[:, 0, ::2, ::2].numpy())
    return d


def test_cli_reports_accuracy_and_draws_the_confusion_png(trained, files, tmp_path):
    run = trained[0]
    png = tmp_path / "c.png"
    r = gankit_cli("classify", "--checkpoint", run, "--images", files / "x.npy", "--labels",
                   files / "y.npy", "--samples", "1", "--confusion", png, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    truth = np.load(files / "y.npy")
    predicted = np.array([int(c) for c in report["predicted"]])
    assert report["accuracy"] == pytest.approx((predicted == truth).mean())
    assert report["accuracy"] > 0.6
    assert np.array(report["confusion"]).sum() == 200
    assert np.trace(report["confusion"]) == (predicted == truth).sum()
    with Image.open(png) as img:
        assert img.format == "PNG"
        assert 400 <= img.width <= 1200 and 400 <= img.height <= 1200
        assert len(img.getcolors(1 << 16)) > 10          # shades and text, not a blank


def test_cli_prints_one_line_per_image_without_labels(trained, files, capsys):
    assert main(["classify", "--checkpoint", str(trained[0]), "--images",
                 str(files / "x.npy"), "--samples", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 200
    index, name, p = lines[7].split("\t")
    assert index == "7" and name in [str(k) for k in range(10)] and 0.1 <= float(p) <= 1


def test_cli_folder_with_class_subfolders_gives_labels(trained, tmp_path, capsys):
    _, _, images, labels = trained
    for i in range(0, 200, 10):
        path = tmp_path / "digits" / str(int(labels[i])) / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i, 0].numpy()).save(path)
    assert main(["classify", "--checkpoint", str(trained[0]), "--images", str(tmp_path / "digits"),
                 "--samples", "1", "--confusion", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "of 20)" in out and (tmp_path / "c.png").is_file()


# "@name" is a file of the `files` fixture; other paths are relative to an empty folder.
BAD = [
    (["--labels", "@y_short.npy"], "199 labels for 200 images"),
    (["--labels", "@y_float.npy"], "expected integers"),
    (["--labels", "@y_range.npy"], "label 10, outside 0..9"),
    (["--images", "@x_small.npy"], "trained on (1, 28, 28)"),
    (["--labels", "@y.npy", "--samples", "0"], "--samples must be at least 1"),
    (["--labels", "@y.npy", "--confusion", "missing/c.png"], "does not exist"),
    (["--labels", "@y.npy", "--out", "p.csv", "--confusion", "c.xyz"], "unknown image type"),
    (["--labels", "@missing.npy"], "does not exist"),
    (["--images", "@", "--labels", "@y.npy"], "--labels goes with a .npy of images"),
]


@pytest.mark.parametrize("extra, message", BAD, ids=[m for _, m in BAD])
def test_cli_refuses_bad_input_in_one_line_writing_nothing(trained, files, tmp_path,
                                                           monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    args = {"--images": "@x.npy", **dict(zip(extra[::2], extra[1::2]))}
    argv = ["classify", "--checkpoint", str(trained[0])]
    for flag, value in args.items():
        argv += [flag, str(files / value[1:]) if value.startswith("@") else value]
    one_line_error(gankit_main(capsys, *argv), message)
    assert list(tmp_path.iterdir()) == []                 # no confusion.png, no csv


def test_cli_refuses_a_gan_checkpoint_without_a_traceback(tmp_path, files):
    run = tmp_path / "cgan"
    gankit.train(out=str(run), **tiny_run(model="cgan", offline=True, steps=2, batch_size=4,
                                          sample_every=2, checkpoint_every=2))
    r = gankit_cli("classify", "--checkpoint", run, "--images", files / "x.npy", "--labels",
                   files / "y.npy", "--confusion", tmp_path / "c.png")
    one_line_error(r, "train a model that has one", "--model cvae or --model cflow")
    assert not (tmp_path / "c.png").exists()


def test_confusion_image_is_a_readable_heatmap():
    m = np.diag([30, 20, 10]) + 1
    img = confusion_image(m, ["cat", "dog", "a-very-long-class-name"], title="t")
    assert img.mode == "RGB" and 150 < img.width < 600 and 150 < img.height < 600
    px = np.asarray(img)
    assert (px.min(axis=(0, 1)) < 100).all()                 # a dark (diagonal) cell exists
