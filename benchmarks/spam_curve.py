"""The guide's own example of generative against discriminative, measured: spam or not.

    python benchmarks/spam_curve.py [--draws 20] [--out docs/spam_learning_curve.png]

Spambase (4,601 emails as 57 word, character and capital-run frequencies; Debian's
r-cran-kernlab, exported by benchmarks/impute.py's loader). A Bernoulli naive Bayes (a word
present or not, independent given the class: p(x|y) and Bayes' rule) against a logistic
regression (p(y|x) directly, on log(1 + x) standardised with the training rows), both
gankit's own (gankit/classify.py), at growing training sizes, each size `--draws` random
training sets, tested on a fixed 20% of the emails: the experiment of Ng & Jordan (2001),
"On Discriminative vs. Generative Classifiers", on one of their UCI data sets.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
from impute import exported  # noqa: E402

from gankit.classify import BernoulliNaiveBayes, LogisticRegression  # noqa: E402

SIZES = [20, 40, 80, 160, 320, 640, 1280, 2560, 3680]


def spam() -> tuple[np.ndarray, np.ndarray]:
    header, rows = exported("spam")
    k = header.index("type")
    X = np.array([[float(v) for j, v in enumerate(r) if j != k] for r in rows])
    y = np.array([r[k] == "spam" for r in rows], dtype=np.int64)
    return X, y


def errors(X, y, train, test) -> tuple[float, float]:
    xt, yt = torch.from_numpy(X[train]), torch.from_numpy(y[train])
    nb = BernoulliNaiveBayes(threshold=1e-12).fit(xt, yt, 2)
    nb_err = float((nb.predict_log_proba(torch.from_numpy(X[test])).argmax(1).numpy() != y[test]).mean())
    logs = np.log1p(X)
    mu, sd = logs[train].mean(0), logs[train].std(0) + 1e-9
    z = torch.from_numpy((logs - mu) / sd)
    lr = LogisticRegression(l2=1e-2, scale=1).fit(z[train], yt, 2)
    lr_err = float((lr.predict_log_proba(z[test]).argmax(1).numpy() != y[test]).mean())
    return nb_err, lr_err


def plot(sizes, curves: dict[str, tuple[list, list]], path: str) -> None:
    """Error against training size (log scale), mean with a ±1 std bar, one line a model."""
    w, h, left, right, top_m, bottom = 720, 400, 60, 20, 30, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    top = math.ceil(max(max(m) + max(s) for m, s in curves.values()) * 20) / 20

    def X(n):
        f = (math.log(n) - math.log(sizes[0])) / (math.log(sizes[-1]) - math.log(sizes[0]))
        return left + f * (w - left - right)

    def Y(e):
        return h - bottom - e / top * (h - top_m - bottom)
    d.rectangle([left, top_m, w - right, h - bottom], outline="#888")
    for k in range(int(round(top * 20)) + 1):
        d.line([left, Y(k / 20), w - right, Y(k / 20)], fill="#eee")
        d.text((8, Y(k / 20) - 6), f"{k / 20:.2f}", fill="black", font=font)
    for n in sizes:
        d.text((X(n) - 10, h - bottom + 6), str(n), fill="black", font=font)
    d.text((w // 2 - 80, h - 20), "training emails (log scale)", fill="black", font=font)
    d.text((left, 8), "Spambase test error: generative (naive Bayes) vs discriminative "
           "(logistic regression)", fill="black", font=font)
    for k, ((name, (mean, std)), colour) in enumerate(zip(curves.items(), ("#d62728", "#1f77b4"))):
        for n, m, s in zip(sizes, mean, std):
            d.line([X(n), Y(m - s), X(n), Y(m + s)], fill=colour)
        d.line([(X(n), Y(m)) for n, m in zip(sizes, mean)], fill=colour, width=2)
        d.text((w - right - 230, top_m + 10 + 16 * k), name, fill=colour, font=font)
    img.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--out", default="docs/spam_learning_curve.png")
    args = p.parse_args()
    X, y = spam()
    order = np.random.default_rng(0).permutation(len(X))
    test, pool = order[:920], order[920:]
    rows = {}
    for n in SIZES:
        errs = []
        for draw in range(args.draws if n < len(pool) else 1):
            rng = np.random.default_rng(100 * n + draw)
            train = rng.choice(pool, size=n, replace=False)
            if len(set(y[train])) < 2:   # a tiny draw with one class: draw again
                continue
            errs.append(errors(X, y, train, test))
        e = np.array(errs)
        rows[n] = (e.mean(0), e.std(0), len(e))
        print(f"{n:5d} emails ({len(e)} draws): naive Bayes {e[:, 0].mean():.3f} ± {e[:, 0].std():.3f}, "
              f"logistic regression {e[:, 1].mean():.3f} ± {e[:, 1].std():.3f}", flush=True)
    curves = {"Bernoulli naive Bayes (generative)": ([rows[n][0][0] for n in SIZES], [rows[n][1][0] for n in SIZES]),
              "logistic regression (discriminative)": ([rows[n][0][1] for n in SIZES], [rows[n][1][1] for n in SIZES])}
    plot(SIZES, curves, args.out)
    print("| training emails | naive Bayes error | logistic regression error |")
    print("|---|---|---|")
    for n in SIZES:
        (nb, lr), (snb, slr), k = rows[n]
        print(f"| {n:,} | {nb:.3f} ± {snb:.3f} | {lr:.3f} ± {slr:.3f} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
