"""Optional feature backend: InceptionV3 as the published FID protocol uses it.

The network and weights are torch-fidelity's (`FeatureExtractorInceptionV3`, the
TensorFlow 2015-12-05 graph of Heusel et al.'s reference FID code, converted to PyTorch).
torch-fidelity takes uint8 RGB images of any size and itself resizes them to 299x299 with
a bilinear filter that reproduces TensorFlow 1.x's (`interpolate_bilinear_2d_like_
tensorflow1x`), then scales to [-1, 1]; so this module only tiles gray to 3 channels and
converts to uint8 at the native size, and never resizes itself.

torchmetrics' FID is no second route: its `NoTrainInceptionV3` subclasses the same
torch-fidelity class and refuses to run without torch-fidelity.

Two things make the backend unusable, and both become one GankitError line: torch-fidelity
cannot be imported (it is not installed, or torchvision, which its package imports, is
missing), or its weights are not in torch.hub's cache and cannot be downloaded (offline).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..data import to_uint8
from ..errors import GankitError, first_line, option

EXTRACTOR = "inception-v3 (torch-fidelity)"
WEIGHTS_NAME = "pt_inception-2015-12-05"
FEATURE_DIM = 2048
NUM_CLASSES = 1008
BATCH = 100

def _unusable(problem: str) -> GankitError:
    return GankitError(f"{option('features', 'inception')} needs torch-fidelity and its "
                       f"InceptionV3 weights ({WEIGHTS_NAME}); {problem}: pip install "
                       "torch-fidelity (it needs torchvision) and run once online to fetch the "
                       f"weights, or use the default {option('features', 'classifier')}")


def _import_extractor():
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import (
            URL_INCEPTION_V3, FeatureExtractorInceptionV3)
    except Exception as e:  # ImportError, or a torchvision that does not match torch
        raise _unusable(f"importing it failed ({first_line(e)})") from None
    return FeatureExtractorInceptionV3, URL_INCEPTION_V3


def weights_file(url: str) -> Path:
    """Where torch.hub caches the weights that torch-fidelity downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


class InceptionExtractor:
    """images -> (feats (N, 2048) float32, probs (N, 1008) float32), batched, no grad.

    `images`: uint8 (N, C, H, W) in [0, 255] or float in [-1, 1]; C is 1 or 3.
    probs are the softmax of torch-fidelity's 'logits_unbiased' (the logits without the
    final bias), the layer it uses for the Inception Score.
    """

    def __init__(self, net: torch.nn.Module, device: torch.device, weights: Path):
        self.net, self.device = net, device
        self.info: dict[str, Any] = {
            "extractor": EXTRACTOR, "weights": WEIGHTS_NAME, "weights_file": str(weights),
            "feature_dim": FEATURE_DIM, "num_classes": NUM_CLASSES}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise GankitError(f"inception features need (N, 1 or 3, H, W) images, got "
                              f"{tuple(images.shape)}")
        feats, probs = [], []
        for start in range(0, len(images), BATCH):
            x = images[start:start + BATCH]
            x = x if x.dtype == torch.uint8 else to_uint8(x)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x   # gray -> RGB, as in FID code
            f, logits = self.net(x.to(self.device).contiguous())
            feats.append(f.float().cpu())
            probs.append(F.softmax(logits.float(), dim=1).cpu())
        if not feats:
            return torch.zeros(0, FEATURE_DIM), torch.zeros(0, NUM_CLASSES)
        return torch.cat(feats), torch.cat(probs)


def inception_extractor(device: str | torch.device = "cpu",
                        offline: bool | None = None) -> Callable[[torch.Tensor], tuple]:
    """torch-fidelity's InceptionV3 on `device`, or one GankitError line saying why not.

    Offline (`offline` or GANKIT_OFFLINE=1) the weights must already be in torch.hub's
    cache (~/.cache/torch/hub/checkpoints, or $TORCH_HOME/hub/checkpoints).
    """
    from ..data.mnist import is_offline
    extractor_class, url = _import_extractor()
    weights = weights_file(url)
    if not weights.is_file() and is_offline(offline):
        raise _unusable(f"the weights are not in {weights.parent} and gankit is offline")
    try:
        net = extractor_class("inception-v3-compat", ["2048", "logits_unbiased"])
    except Exception as e:  # a failed download (URLError, HTTPError), a damaged file
        raise _unusable(f"loading the weights failed ({first_line(e)})") from None
    device = torch.device(device)
    return InceptionExtractor(net.to(device).eval(), device, weights)
