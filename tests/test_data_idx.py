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


def test_wrong_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(GankitError) as err:
        read_images(path)
    assert_one_line_naming(err, path, "magic", "delete it")


def test_labels_file_read_as_images(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.zeros(5, np.uint8))
    with pytest.raises(GankitError) as err:
        read_images(path)
    assert_one_line_naming(err, path, "dimension")


def test_wrong_dtype_code(tmp_path, images):
    path = tmp_path / "float"
    write_idx(path, images)
    data = bytearray(path.read_bytes())
    data[2] = 0x0D   # float
    path.write_bytes(bytes(data))
    with pytest.raises(GankitError) as err:
        read_images(path)
    assert_one_line_naming(err, path, "dtype")


def test_counts_do_not_match(tmp_path, images):
    path = tmp_path / "extra.gz"
    write_idx(path, images)
    data = gzip.decompress(path.read_bytes())
    data = data[:4] + (3).to_bytes(4, "big") + data[8:]   # header says 3, data holds 7
    path.write_bytes(gzip.compress(data))
    with pytest.raises(GankitError) as err:
        read_images(path)
    assert_one_line_naming(err, path, "do not match")


def test_truncated_data(tmp_path, images):
    path = tmp_path / "short"
    write_idx(path, images)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(GankitError) as err:
        read_images(path)
    assert_one_line_naming(err, path, "truncated", "re-download")


def test_truncated_header(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(GankitError) as err:
        read_images(path)
    assert_one_line_naming(err, path, "truncated")


def test_truncated_gzip(tmp_path, images):
    path = tmp_path / "cut.gz"
    write_idx(path, images)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(GankitError) as err:
        read_images(path)
    assert_one_line_naming(err, path, "gzip")


def test_missing_file(tmp_path):
    with pytest.raises(GankitError) as err:
        read_images(tmp_path / "nope")
    assert_one_line_naming(err, tmp_path / "nope")
