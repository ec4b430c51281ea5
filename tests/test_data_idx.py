import gzip

import numpy as np
import pytest

from gankit.data.idx import read_images, read_labels, write_idx
from gankit.errors import GankitError


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)


def assert_one_line_naming(err: pytest.ExceptionInfo, path, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    for word in words:
        assert word in msg.lower(), msg


@pytest.mark.parametrize("name", ["x-images-idx3-ubyte.gz", "x-images-idx3-ubyte"])
def test_roundtrip_gz_and_raw(tmp_path, images, name):
    path = tmp_path / name
    write_idx(path, images)
    assert path.read_bytes().startswith(b"\x1f\x8b") == name.endswith(".gz")
    out = read_images(path)
    assert out.dtype == np.uint8 and out.shape == (7, 28, 28)
    np.testing.assert_array_equal(out, images)


def test_gzip_detected_by_content_not_name(tmp_path, images):
    gz_named_raw = tmp_path / "a.gz"
    write_idx(gz_named_raw, images, compress=False)
    raw_named_gz = tmp_path / "b"
    write_idx(raw_named_gz, images, compress=True)
    np.testing.assert_array_equal(read_images(gz_named_raw), images)
    np.testing.assert_array_equal(read_images(raw_named_gz), images)


def test_labels(tmp_path):
    path = tmp_path / "l.gz"
    write_idx(path, np.arange(10, dtype=np.uint8))
    out = read_labels(path)
    assert out.shape == (10,) and list(out) == list(range(10))


def _raw(path, images, compress=False) -> bytearray:
    write_idx(path, images, compress=compress)
    data = path.read_bytes()
    return bytearray(gzip.decompress(data) if compress else data)


def _wrong_dtype(path, images):
    data = _raw(path, images)
    data[2] = 0x0D   # float
    path.write_bytes(bytes(data))


def _counts_off(path, images):
    data = _raw(path, images)
    data[4:8] = (3).to_bytes(4, "big")   # header says 3, data holds 7
    path.write_bytes(gzip.compress(bytes(data)))


# name -> (writes a damaged file at the path, words its one-line error must hold)
DAMAGED = {
    "wrong-magic": (lambda p, x: p.write_bytes(b"PK\x03\x04" + bytes(100)), ("magic", "delete it")),
    "labels-read-as-images": (lambda p, x: write_idx(p, np.zeros(5, np.uint8)), ("dimension",)),
    "wrong-dtype-code": (_wrong_dtype, ("dtype",)),
    "counts-do-not-match": (_counts_off, ("do not match",)),
    "truncated-data": (lambda p, x: p.write_bytes(bytes(_raw(p, x)[:-100])),
                       ("truncated", "re-download")),
    "truncated-header": (lambda p, x: p.write_bytes(bytes([0, 0, 8, 3, 0, 0])), ("truncated",)),
    "truncated-gzip": (lambda p, x: p.write_bytes(gzip.compress(bytes(_raw(p, x)))[:2000]),
                       ("gzip",)),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_file_is_one_line_naming_it(tmp_path, images, damage):
    write, words = DAMAGED[damage]
    path = tmp_path / damage
    write(path, images)
    with pytest.raises(GankitError) as err:
        read_images(path)
    assert_one_line_naming(err, path, *words)


def test_missing_file(tmp_path):
    with pytest.raises(GankitError) as err:
        read_images(tmp_path / "nope")
    assert_one_line_naming(err, tmp_path / "nope")
