"""The model registry: the only place a model's name appears.

Adding a model is one file in this folder and one line here. Everything else asks a model
what it can do (the capabilities declared in base.py), never which one it is.
"""

from __future__ import annotations

import dataclasses

from ..config import base_type, field_types
from ..errors import GankitError, did_you_mean, option
from .ae import AE
from .base import GenerativeModel, Model
from .cgan import CGAN
from .ctgan import CTGAN
from .cvae import CVAE
from .dcgan import DCGAN
from .flow import ConditionalFlow, Flow
from .gain import GAIN
from .gan import GAN
from .miwae import MIWAE
from .tables import TableModel
from .tvae import TVAE
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
    "flow": Flow,
    "cflow": ConditionalFlow,
}
DEFAULT = "gan"   # the guide's own model: what `gankit train` trains when told nothing

# Models of tables (tables.py) that fill missing cells (gankit impute).
IMPUTERS: dict[str, type[TableModel]] = {
    "gain": GAIN,
    "miwae": MIWAE,
    "tvae": TVAE,    # a table generator that imputes too (docs/measurements/imputation.md)
}
DEFAULT_IMPUTER = "gain"

# Models of tables that sample whole rows (gankit synth).
SYNTHESIZERS: dict[str, type[TableModel]] = {
    "ctgan": CTGAN,
    "tvae": TVAE,
}
DEFAULT_SYNTHESIZER = "tvae"   # measured best on Adult (docs/measurements/synthetic.md)


def registered() -> dict[str, type[Model]]:
    """Every registered model, of every kind, by name."""
    return {**MODELS, **IMPUTERS, **SYNTHESIZERS}


def get_model_class(name: str | None = None) -> type[Model]:
    """The class registered as `name` (None: the default model)."""
    try:
        return registered()[DEFAULT if name is None else name]
    except (KeyError, TypeError):
        raise GankitError(f"unknown model {name!r}{did_you_mean(name, list(registered()))}: "
                          f"use one of {', '.join(MODELS)} (images), {', '.join(IMPUTERS)} "
                          f"(filling tables) or {', '.join(SYNTHESIZERS)} (synthetic tables)"
                          ) from None


def model_name(model: Model | type[Model]) -> str:
    """The registry name of a model or model class (what checkpoints record)."""
    wanted = model if isinstance(model, type) else type(model)
    for name, cls in registered().items():
        if wanted is cls:
            return name
    raise KeyError(wanted.__name__)


def names_that(capable, tables: bool = False) -> str:
    """The registered models for which `capable(cls)` holds, for error messages that
    suggest one: e.g. names_that(lambda c: c.conditional) -> "cgan, cvae". The models of
    tables are asked too with tables=True."""
    models = registered() if tables else MODELS
    return ", ".join(name for name, cls in models.items() if capable(cls))


def sampling_fields() -> dict[str, tuple[dataclasses.Field, type]]:
    """Every registered model's sampling settings (base.py), by field name (the first
    model's field where two share one), with the type its value is parsed as."""
    found: dict[str, tuple[dataclasses.Field, type]] = {}
    for cls in MODELS.values():
        types = field_types(cls.Config)
        for f in dataclasses.fields(cls.Config):
            if f.name in cls.sampling_settings and f.name not in found:
                found[f.name] = (f, base_type(types[f.name]))
    return found


def build_model(name: str, cfg, image_shape, num_classes: int = 0, layout=None) -> Model:
    """The model `name`; a table generator also takes its table's RowEncoding, `layout`."""
    cls = get_model_class(name)
    if layout is None:
        return cls(cfg, image_shape, num_classes)
    return cls(cfg, image_shape, num_classes, layout=layout)


def check_label(model: GenerativeModel | type[GenerativeModel], label: int | str | None,
                num_classes: int | None = None, class_names: list[str] | None = None) -> int | None:
    """The class index that `label` means for the model, or GankitError: only conditional
    models take one, and it is one of the model's class names (a folder's class is named
    by its subfolder: --label three) or a class index (0-based), the name winning where a
    class is named like a number.

    `model` is a model or its class (a command asks before loading weights, with the
    checkpoint's `num_classes` and `class_names`). Serves `sample`, `interpolate` and
    `inpaint` alike."""
    if label is None:
        return None
    num_classes = model.num_classes if num_classes is None else num_classes
    if not model.conditional:   # a class attribute: a model class answers too
        raise GankitError(f"{option('label')} needs a conditional model "
                          f"({names_that(lambda c: c.conditional)}); this checkpoint is "
                          f"{model_name(model)}: drop {option('label')}")
    names = [str(n) for n in (getattr(model, "class_names", None) if class_names is None
                              else class_names) or []]
    if isinstance(label, str):
        if label in names:
            return names.index(label)
        try:
            label = int(label)
        except ValueError:
            raise GankitError(f"{option('label', repr(label))} is not a class of this model"
                              f"{did_you_mean(label, names)}: use one of {_classes(names)} or "
                              f"an index from 0 to {num_classes - 1}") from None
    if not 0 <= label < num_classes:
        raise GankitError(f"{option('label', label)} is out of range: this model has "
                          f"{num_classes} classes, use 0 to {num_classes - 1}"
                          + (f" or a name ({_classes(names)})" if names else ""))
    return label


def _classes(names: list[str]) -> str:
    return ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
