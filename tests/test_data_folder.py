import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import load_data
from gankit.data.folder import load_folder
from gankit.errors import GankitError


def gray(w, h, value=100):
    return Image.fromarray(np.full((h, w), value, np.uint8), "L")


def rgb(w, h, color=(200, 30, 10)):
    return Image.new("RGB", (w, h), color)


def load_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # these folders are clean: any warning is a bug
        return load_folder(path, **kw)


def test_gray_pngs_odd_sizes_unlabelled(tmp_path):
    for i, (w, h) in enumerate([(17, 40), (100, 33), (28, 28), (5, 5)]):
        gray(w, h, 50 + i).save(tmp_path / f"{i}.png")
    ds = load_quiet(tmp_path)
    assert ds.images.shape == (4, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels is None and ds.class_names == []
    assert ds.images[0].unique().tolist() == [50]   # flat images stay flat
    assert ds.name == f"folder:{tmp_path}"


def test_rgb_jpegs_and_image_size(tmp_path):
    rgb(64, 48).save(tmp_path / "a.jpg", quality=95)
    rgb(30, 90, (10, 200, 10)).save(tmp_path / "b.JPEG", quality=95)
    ds = load_quiet(tmp_path, image_size=16)
    assert ds.images.shape == (2, 3, 16, 16)
    r, g, b = ds.images[0].float().mean((1, 2)).tolist()
    assert r > 150 and g < 80 and b < 60   # channel order kept: red stays red


def test_centre_crop_keeps_the_middle(tmp_path):
    a = np.zeros((30, 90), np.uint8)
    a[:, 30:60] = 255   # white middle third of a wide image
    Image.fromarray(a).save(tmp_path / "wide.png")
    img = load_quiet(tmp_path, image_size=10).images[0, 0]
    assert img.float().mean() > 240   # the crop is the white centre square


def test_subfolder_labels(tmp_path):
    for cls, n in [("cat", 2), ("ant", 3), ("bee", 1)]:
        (tmp_path / cls / "deep").mkdir(parents=True)
        for i in range(n):
            gray(20, 20).save(tmp_path / cls / ("deep" if i else ".") / f"{i}.png")
    ds = load_quiet(tmp_path)
    assert ds.class_names == ["ant", "bee", "cat"]
    assert sorted(ds.labels.tolist()) == [0, 0, 0, 1, 2, 2]
    assert ds.labels.dtype == torch.int64 and ds.num_classes == 3


def test_corrupt_and_non_image_files(tmp_path):
    for i in range(3):
        gray(28, 28).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.png").write_bytes(b"junk")
    with pytest.warns(UserWarning) as record:
        ds = load_folder(tmp_path)
    assert len(record) == 1
    msg = str(record[0].message)
    assert "broken.png" in msg and "1 of 4" in msg and "notes.txt" not in msg
    assert "\n" not in msg and len(ds) == 3


def test_truncated_jpeg_is_skipped(tmp_path):
    rgb(50, 50).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="cut.jpg"):
        assert len(load_folder(tmp_path)) == 1


def test_no_readable_image_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the error says it all: no warning before it
        with pytest.raises(GankitError, match="none of the 1"):
            load_folder(tmp_path)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(GankitError, match="no images found in") as err:
        load_folder(tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(GankitError, match="does not exist"):
        load_folder(tmp_path / "missing")


def test_modes_convert(tmp_path):
    """RGBA, palette, 16-bit, CMYK, 1-bit, LA and an animated GIF all load."""
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :10, 3] = 255                               # left half opaque red, right clear
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    rgb(20, 20).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    Image.fromarray(np.full((20, 20), 40000, np.uint16)).save(tmp_path / "gray16.png")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("1", (20, 20), 1).save(tmp_path / "bits.bmp")
    Image.new("LA", (20, 20), (80, 255)).save(tmp_path / "la.png")
    frames = [gray(20, 20, 10).convert("P"), gray(20, 20, 240).convert("P")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (20, 20), (0, 0, 255)).save(tmp_path / "x.webp")
    Image.new("RGB", (20, 20), (0, 0, 255)).save(tmp_path / "x.tiff")
    ds = load_quiet(tmp_path, image_size=8)
    names = sorted(p.name for p in tmp_path.iterdir())
    img = {n: ds.images[i] for i, n in enumerate(names)}
    assert ds.images.shape == (len(names), 3, 8, 8)
    assert img["gray16.png"].unique().tolist() == [round(40000 / 257)]   # scaled, not clipped
    assert img["rgba.png"][:, 0, 0].tolist() == [255, 0, 0]              # opaque red
    assert img["rgba.png"][:, 0, -1].tolist() == [255, 255, 255]         # clear -> white
    r, g, b = img["cmyk.jpg"].float().mean((1, 2)).tolist()
    assert r > 200 and g < 60 and b < 60                                  # CMYK red is red
    assert img["anim.gif"].unique().tolist() == [10]                      # first frame
    assert img["bits.bmp"].unique().tolist() == [255]
    assert img["la.png"].unique().tolist() == [80]


def test_channels_auto_and_forced(tmp_path):
    gray(20, 20).save(tmp_path / "a.png")
    rgb(20, 20, (90, 90, 90)).save(tmp_path / "b.png")   # RGB file, gray content
    assert load_quiet(tmp_path).shape == (1, 28, 28)
    rgb(20, 20).save(tmp_path / "c.png")
    assert load_quiet(tmp_path).shape == (3, 28, 28)
    forced = load_quiet(tmp_path, channels=1)
    assert forced.shape == (1, 28, 28)
    assert forced.images[1, 0, 0, 0].item() == 90   # gray content survives the conversion


def test_load_data_dispatches_folders(tmp_path):
    gray(30, 30).save(tmp_path / "a.png")
    ds = load_data(DataConfig(data=str(tmp_path), image_size=12, channels=3))
    assert ds.images.shape == (1, 3, 12, 12)
    with pytest.raises(GankitError, match="unknown dataset .*no such folder"):
        load_data(DataConfig(data=str(tmp_path / "missing")))
