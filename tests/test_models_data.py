"""Every registered model trains on every kind of data: digits, clothes, a folder of RGB
images at another size. Two steps each: the point is that shapes, channels and labels fit."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gankit
from gankit.models import MODELS

from helpers import tiny_run

FAST = tiny_run(steps=2, batch_size=8, log_every=1, sample_every=2, checkpoint_every=2)


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    """Two classes of 40x36 RGB pictures; the loader resizes and crops them to 32x32."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for k, name in enumerate(["cats", "dogs"]):
        (root / name).mkdir()
        for i in range(6):
            pixels = rng.integers(0, 255, (36, 40, 3), dtype=np.uint8) // (k + 1)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("name", list(MODELS))
def test_trains_on_an_rgb_folder_at_32(name, rgb_folder, tmp_path):
    run = gankit.train(name, str(rgb_folder), image_size=32, out=tmp_path / "r", **FAST)
    assert run.model.image_shape == (3, 32, 32)
    assert run.sample(2, seed=0).shape == (2, 3, 32, 32)
    picture = Image.open(tmp_path / "r" / "samples" / "step_000002.png")
    assert picture.mode == "RGB"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
@pytest.mark.parametrize("name", list(MODELS))
def test_trains_on_fashion_mnist(name, tmp_path):
    run = gankit.train(name, "fashion-mnist", out=tmp_path / "r", **FAST)
    assert run.model.image_shape == (1, 28, 28) and run.model.num_classes == 10
