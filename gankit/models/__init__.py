"""The model registry: the only place a model's name appears.

Adding a model is one file in this folder and one line here.
"""

from __future__ import annotations

from ..errors import GankitError
from .ae import AE
from .base import GenerativeModel
from .cgan import CGAN
from .cvae import CVAE
from .dcgan import DCGAN
from .gan import GAN
from .vae import VAE
from .wgan_gp import WGANGP

MODELS: dict[str, type[GenerativeModel]] = {
    "gan": GAN,
    "dcgan": DCGAN,
    "cgan": CGAN,
    "wgan-gp": WGANGP,
    "ae": AE,
    "vae": VAE,
    "cvae": CVAE,
}


def get_model_class(name: str) -> type[GenerativeModel]:
    try:
        return MODELS[name]
    except KeyError:
        raise GankitError(f"unknown model {name!r}: use one of {', '.join(MODELS)}") from None


def model_name(model: GenerativeModel | type[GenerativeModel]) -> str:
    """The registry name of a model or model class (what checkpoints record)."""
    wanted = model if isinstance(model, type) else type(model)
    for name, cls in MODELS.items():
        if wanted is cls:
            return name
    raise KeyError(wanted.__name__)


def build_model(name: str, cfg, image_shape, num_classes: int = 0) -> GenerativeModel:
    return get_model_class(name)(cfg, image_shape, num_classes)
