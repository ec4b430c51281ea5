"""Clusters of the training images, for GANs that condition on them (`--clusters K`).

An unconditional GAN must find the data's modes by itself, and on digits the samples
between two modes are the malformed ones. A conditional GAN trained on the same images
with their labels draws clean digits in the same minutes (docs/measurements/recipes.md). Self-
conditioning gives an unconditional GAN labels of its own: cluster the training images,
condition G and D on the cluster, and draw the cluster with each sample (Liu, Wang, Hoffman,
Torralba & Zhu 2020, "Diverse Image Generation via Self-Conditioned GANs", cluster D's
features and re-cluster as it trains; here k-means on the pixels, once before training,
which needs no D and no labels).

Images are clustered at a side of at most POOL pixels (2x2 averages of 28x28 digits):
cheaper, and a cluster is about shapes, not single pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POOL = 14
ITERATIONS = 30
CHUNK = 8192   # images per distance computation: bounded memory on 60,000 images


def features(images: torch.Tensor) -> torch.Tensor:
    """Float images (B, C, H, W) in [-1, 1] -> (B, D) vectors that clusters are made of."""
    if images.shape[-1] > POOL or images.shape[-2] > POOL:
        images = F.adaptive_avg_pool2d(images, (min(POOL, images.shape[-2]),
                                                min(POOL, images.shape[-1])))
    return images.flatten(1)


def nearest(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(N, D) vectors, (K, D) centroids -> (N,) index of each vector's nearest centroid."""
    return torch.cat([torch.cdist(part, centroids).argmin(1) for part in x.split(CHUNK)])


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids (k, D), share of the vectors in each (k,)) of k-means on x (N, D):
    k-means++ seeding (Arthur & Vassilvitskii 2007), then Lloyd's iterations; an emptied
    cluster is re-seeded at the vector farthest from its centroid. Its own RNG: the
    run's random streams are untouched."""
    gen = torch.Generator().manual_seed(seed)
    x = x.float().cpu()
    n = len(x)
    centroids = x[torch.randint(n, (1,), generator=gen)]
    dist = torch.cdist(x, centroids).squeeze(1).pow(2)
    for _ in range(1, k):
        if dist.sum() > 0:
            pick = torch.multinomial(dist / dist.sum(), 1, generator=gen)
        else:   # fewer distinct images than clusters: the rest stay empty (share 0)
            pick = torch.randint(n, (1,), generator=gen)
        centroids = torch.cat([centroids, x[pick]])
        dist = torch.minimum(dist, torch.cdist(x, x[pick]).squeeze(1).pow(2))
    for _ in range(ITERATIONS):
        assign = nearest(x, centroids)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        moved = sums / counts.clamp(min=1)[:, None]
        far = (x - centroids[assign]).pow(2).sum(1)
        for j in (counts == 0).nonzero().flatten().tolist():
            if far.max() > 0:
                moved[j] = x[far.argmax()]
                far[far.argmax()] = 0
        if torch.equal(moved, centroids):
            break
        centroids = moved
    counts = torch.bincount(nearest(x, centroids), minlength=k).float()
    return centroids, counts / n
