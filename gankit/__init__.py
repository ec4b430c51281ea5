"""gankit: train, judge and use generative image models.

    import gankit
    run = gankit.train(model="gan", data="mnist", steps=2000)
    model = gankit.load("runs/gan")          # a run folder or a .safetensors file
    images = model.sample(16)                # (16, 1, 28, 28) in [-1, 1]
"""

from ._version import __version__  # noqa: E402

from .api import load, make_config, train  # noqa: E402
from .errors import GankitError  # noqa: E402

__all__ = ["train", "load", "make_config", "GankitError", "__version__"]
