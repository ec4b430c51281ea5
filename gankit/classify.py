"""Generative classification: a model of p(x|y) and Bayes' rule give p(y|x).

    log p(y|x) = log p(x|y) + log p(y) - log sum_y' p(x|y') p(y')

A conditional VAE has no exact log p(x|y), but its encoder q(z|x, y) gives the
importance-weighted bound of Burda et al. 2016 ("Importance Weighted Autoencoders"):

    log p(x|y) >= log 1/k sum_i p(x|z_i, y) p(z_i) / q(z_i|x, y),   z_i ~ q(z|x, y),

which is the ELBO for k = 1 and tightens towards log p(x|y) as k grows. A GAN has no
p(x|y) at all, so it cannot classify this way. The baselines are the textbook pair that Ng &
Jordan, NIPS 2001 ("On Discriminative vs. Generative Classifiers") compare: Bernoulli naive
Bayes (generative) and multinomial logistic regression (discriminative).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .data import to_float
from .errors import GankitError, first_line, option
from .files import atomic_write
from .progress import Progress, bar as progress_bar
from .runtime import evaluating

BATCH = 100          # images per batch; x K classes x k samples latents per decoder pass


def bayes_posterior(log_likelihood: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """log p(y|x) (N, K) from log p(x|y) (N, K) and log p(y) (K,).

    Normalised with logsumexp: log-likelihoods of images are hundreds of nats, and exp()
    of them underflows to 0 for every class.
    """
    joint = log_likelihood + log_prior.to(log_likelihood)
    return joint - torch.logsumexp(joint, dim=1, keepdim=True)


def check_can_classify(model) -> None:
    """Refuse, in one line, a model without a class-conditional likelihood p(x|y)."""
    from .models import MODELS
    kind = type(model).__name__
    able = [name for name, cls in MODELS.items() if cls.conditional and cls.has_likelihood]
    suggest = " or ".join(option("model", name) for name in able)
    if not model.conditional:
        raise GankitError(f"{kind} is unconditional: it models p(x), not p(x|y), so it cannot "
                          "tell classes apart; train a conditional model with a likelihood "
                          f"({suggest})")
    if not model.has_likelihood:
        raise GankitError(f"{kind} has no likelihood p(x|y) (it generates samples but gives "
                          "no density), so Bayes' rule has nothing to work on; train a model "
                          f"that has one ({suggest})")


def class_log_prior(model) -> tuple[torch.Tensor, str]:
    """log p(y) (K,): the training class counts the checkpoint records, else uniform."""
    k = model.num_classes
    counts = list(model.class_counts)
    if len(counts) == k and sum(counts) > 0:
        c = torch.tensor(counts, dtype=torch.float64)
        return (c / c.sum()).log(), "training class frequencies (from the checkpoint)"
    return torch.full((k,), -math.log(k), dtype=torch.float64), \
        "uniform (the checkpoint records no class counts)"


def check_samples(samples: int) -> None:
    if samples < 1:
        raise GankitError(f"{option('samples')} must be at least 1, got {samples}")


def check_images(model, images: torch.Tensor) -> None:
    """Refuse, in one line, images (N, C, H, W) of another size than the model's."""
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(model.image_shape):
        c, h, w = model.image_shape
        got = tuple(images.shape[1:]) if images.ndim == 4 else tuple(images.shape)
        raise GankitError(f"images are {got} (C, H, W) but the model was trained on "
                          f"({c}, {h}, {w}): pass images of the model's size")


@torch.no_grad()
def class_log_likelihoods(model, images: torch.Tensor, samples: int | None = None, seed: int = 0,
                          batch_size: int = BATCH, progress: Progress = False) -> torch.Tensor:
    """log p(x|y) for every image and class, (N, K) float64 on the CPU, by the model's
    bound or estimate (a CVAE: the IWAE bound with k = `samples`, 1 being the ELBO; a flow:
    the change of variables with `samples` Hutchinson probes); None: the model's own
    `likelihood_samples`.

    `images`: uint8 (N, C, H, W), or float in [-1, 1]. Every class of an image gets the same
    noise (common random numbers: the generator is rewound for each class): the posterior
    compares classes, and shared noise cancels from the comparison instead of adding to
    it. The same seed and batch size give the same numbers.
    """
    check_can_classify(model)
    check_images(model, images)
    samples = model.likelihood_samples if samples is None else samples
    check_samples(samples)
    gen = torch.Generator().manual_seed(seed)
    out = []
    with evaluating(model), progress_bar(progress, total=len(images), desc="classifying",
                                         unit="img") as bar:   # BatchNorm: running statistics
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(model.device)
            x = to_float(x) if x.dtype == torch.uint8 else x.float()
            noise = gen.get_state()
            per_class = []
            for y in range(model.num_classes):
                gen.set_state(noise)
                labels = torch.full((len(x),), y, device=x.device)
                per_class.append(model.log_likelihood(x, labels, samples, gen))
            out.append(torch.stack(per_class, dim=1).double().cpu())
            bar.update(len(x))
    return torch.cat(out) if out else torch.zeros(0, model.num_classes, dtype=torch.float64)


class Prediction(NamedTuple):
    labels: torch.Tensor      # (N,) int64, the most probable class
    probs: torch.Tensor       # (N, K) float64, p(y|x)
    prior: str                # which class prior Bayes' rule used


def classify(model, images: torch.Tensor, samples: int | None = None, seed: int = 0,
             batch_size: int = BATCH, progress: Progress = False) -> Prediction:
    """p(y|x) of a conditional generative model with a likelihood (a CVAE, a conditional
    flow), by Bayes' rule; `samples` as class_log_likelihoods."""
    check_can_classify(model)
    log_prior, prior = class_log_prior(model)
    log_lik = class_log_likelihoods(model, images, samples, seed, batch_size, progress)
    log_post = bayes_posterior(log_lik, log_prior)
    return Prediction(log_post.argmax(1), log_post.exp(), prior)


def confusion_matrix(true: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    true, pred = torch.as_tensor(true).long(), torch.as_tensor(pred).long()
    flat = torch.bincount(true * num_classes + pred, minlength=num_classes ** 2)
    return flat.view(num_classes, num_classes)


# --- baselines --------------------------------------------------------------------------

def _pixels(images: torch.Tensor, scale: float = 255) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float64 (N, D) in [0, 1] (or any features, divided by scale)."""
    return images.reshape(len(images), -1).double() / scale


class BernoulliNaiveBayes:
    """Pixels on (>= 128 of 255) or off, independent given the class: the textbook
    generative classifier. Laplace smoothing (alpha = 1) keeps a pixel never seen on in a
    class from vetoing that class: theta = (on + alpha) / (n + 2 alpha). Other features
    than pixels are on at `threshold` (a word counts as present above 0: threshold=1e-12)."""

    def __init__(self, alpha: float = 1.0, threshold: float = 128):
        self.alpha, self.threshold = alpha, threshold

    def fit(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int):
        x = (images.reshape(len(images), -1) >= self.threshold).double()   # (N, D)
        onehot = F.one_hot(labels.long(), num_classes).double()         # (N, K)
        counts = onehot.sum(0)                                          # (K,)
        theta = (onehot.T @ x + self.alpha) / (counts[:, None] + 2 * self.alpha)   # (K, D)
        self.log_on, self.log_off = theta.log(), (1 - theta).log()
        self.log_prior = (counts / counts.sum()).log()                  # class frequencies
        return self

    def predict_log_proba(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.reshape(len(images), -1) >= self.threshold).double()
        log_lik = x @ self.log_on.T + (1 - x) @ self.log_off.T          # (N, K)
        return bayes_posterior(log_lik, self.log_prior)


class LogisticRegression:
    """Multinomial logistic regression on pixels in [0, 1]: the textbook discriminative
    classifier. Full-batch L-BFGS in float64 from zero weights, so a fit is deterministic;
    the loss is the mean cross-entropy + l2 / 2 * ||W||^2 (bias not penalised). Features
    other than pixels are divided by `scale` (1: as given)."""

    def __init__(self, l2: float = 1e-3, max_iter: int = 500, scale: float = 255):
        self.l2, self.max_iter, self.scale = l2, max_iter, scale

    def fit(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int):
        x, y = _pixels(images, self.scale), labels.long()
        self.w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
        self.b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([self.w, self.b], max_iter=self.max_iter, history_size=20,
                                tolerance_grad=1e-9, tolerance_change=1e-12,
                                line_search_fn="strong_wolfe")

        def loss():
            opt.zero_grad()
            value = F.cross_entropy(x @ self.w + self.b, y) + 0.5 * self.l2 * self.w.pow(2).sum()
            value.backward()
            return value

        with torch.enable_grad():
            opt.step(loss)
        self.w, self.b = self.w.detach(), self.b.detach()
        return self

    def predict_log_proba(self, images: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(_pixels(images, self.scale) @ self.w + self.b, dim=1)


# --- inputs and outputs of `gankit classify` -------------------------------------------

def load_labels(path: str, n: int) -> torch.Tensor:
    """Integer labels (n,) from a .npy, refused in one line otherwise (never unpickled)."""
    import numpy as np
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise GankitError(f"--labels {path} does not exist: pass a .npy of integer "
                          "labels") from None
    except (ValueError, OSError, EOFError) as e:
        why = first_line(e, 80)
        raise GankitError(f"--labels {path} is not a readable .npy file ({why}): pass a .npy "
                          "of integer labels, e.g. np.save('labels.npy', y)") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise GankitError(f"--labels {path} holds {getattr(arr, 'dtype', type(arr).__name__)} "
                          f"of shape {getattr(arr, 'shape', '?')}: expected integers of shape (N,)")
    if len(arr) != n:
        raise GankitError(f"--labels {path} has {len(arr)} labels for {n} images: pass one "
                          "label per image, in the same order")
    return torch.from_numpy(arr.astype(np.int64))


def check_label_range(labels: torch.Tensor, class_names: list[str], where: str) -> None:
    k = len(class_names)
    bad = labels[(labels < 0) | (labels >= k)]
    if len(bad):
        raise GankitError(f"{where} holds label {int(bad[0])}, outside 0..{k - 1}: the model "
                          f"knows {k} classes ({', '.join(class_names[:10])}"
                          f"{', ...' if k > 10 else ''})")


def folder_labels(labels: torch.Tensor | None, folder_classes: list[str],
                  class_names: list[str], where: str) -> torch.Tensor | None:
    """A folder's subfolder labels renumbered as the checkpoint's classes; None (with a
    warning) when no subfolder is a class name; refused when only some are."""
    if labels is None:
        return None
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [c for c in folder_classes if c not in index]
    if not unknown:
        return torch.tensor([index[folder_classes[i]] for i in labels.tolist()], dtype=torch.long)
    if len(unknown) < len(folder_classes):
        raise GankitError(f"subfolder(s) {', '.join(unknown[:5])} of {where} are not classes of "
                          f"the model ({', '.join(class_names[:10])}): rename or move them")
    import warnings
    warnings.warn(f"the subfolders of {where} are not the model's class names: classifying "
                  "without labels (no accuracy)", stacklevel=2)
    return None


def format_confusion(matrix: torch.Tensor, class_names: list[str]) -> str:
    """The confusion matrix as text: rows = true class, columns = predicted."""
    names = [n[:8] for n in class_names]
    width = 1 + max(4, *(len(n) for n in names), *(len(str(int(v))) for v in matrix.flatten()))
    head = " " * (width + 1) + "".join(f"{n:>{width}}" for n in names)
    rows = [f"{n:>{width}} " + "".join(f"{int(v):>{width}}" for v in row)
            for n, row in zip(names, matrix)]
    return "\n".join(["confusion (rows: true class, columns: predicted)", head, *rows])


def write_predictions(path: str, pred: Prediction, class_names: list[str],
                      labels: torch.Tensor | None = None) -> None:
    """CSV, one row per image: index, predicted class, its probability, [label,] p(y|x) per class.
    Written to a temporary file and renamed, so a reader never sees half of it."""
    import csv
    with atomic_write(path, "w", fix="choose another --out") as f:
        out = csv.writer(f)
        truth_column = ["label"] if labels is not None else []
        out.writerow(["index", "predicted", "probability", *truth_column,
                      *(f"p_{n}" for n in class_names)])
        for i, (y, p) in enumerate(zip(pred.labels.tolist(), pred.probs.tolist())):
            truth = [class_names[int(labels[i])]] if labels is not None else []
            out.writerow([i, class_names[y], f"{p[y]:.6g}", *truth, *(f"{q:.6g}" for q in p)])
