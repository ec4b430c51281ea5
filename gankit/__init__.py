"""gankit: train, judge and use generative models of images and tables.

    import gankit
    run = gankit.train(model="gan", data="mnist", steps=2000)
    model = gankit.load("runs/gan")          # a run folder or a .safetensors file
    images = model.sample(16)                # (16, 1, 28, 28) in [-1, 1]

    synth = gankit.Synthesizer("ctgan").fit("adult.csv")   # or a pandas DataFrame
    rows = synth.sample(1000)                # a DataFrame with the table's columns
"""

from ._version import __version__  # noqa: E402

from .api import load, make_config, train  # noqa: E402
from .errors import GankitError  # noqa: E402
from .synth import Synthesizer  # noqa: E402

__all__ = ["train", "load", "make_config", "Synthesizer", "GankitError", "__version__"]
