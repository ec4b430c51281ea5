"""Downloads against a real HTTP server on 127.0.0.1 (nothing leaves the machine)."""

import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from gankit.data.download import DownloadError, fetch
from gankit.data.idx import write_idx
from gankit.data.mnist import load_idx_dataset
from gankit.errors import GankitError

PAYLOAD = bytes(range(256)) * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    routes: dict = {}   # path -> bytes, or ("truncate", bytes)

    def do_GET(self):
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        truncate = isinstance(body, tuple)
        data = body[1] if truncate else body
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        # a truncated response: the full length announced, half the body, then close
        self.wfile.write(data[: len(data) // 2] if truncate else data)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """Base URL of a server whose routes the test fills in (`server.routes`)."""
    handler = type("H", (Handler,), {"routes": {}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    class Server:
        routes = handler.routes

        def url(self, prefix: str) -> str:
            return f"{base}/{prefix}/"
    yield Server()
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/m/"


def leftovers(d):
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_good_file(server, tmp_path):
    server.routes["/a/f.bin"] = PAYLOAD
    path = fetch("f.bin", [server.url("a")], SHA, tmp_path)
    assert path == tmp_path / "f.bin" and path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["f.bin"]


def test_404_falls_through_to_next_mirror(server, tmp_path):
    server.routes["/b/f.bin"] = PAYLOAD
    path = fetch("f.bin", [server.url("a"), server.url("b")], SHA, tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    server.routes["/a/f.bin"] = PAYLOAD[:-1] + b"x"
    with pytest.raises(DownloadError) as err:
        fetch("f.bin", [server.url("a")], SHA, tmp_path)
    msg = str(err.value)
    assert "f.bin" in msg and "checksum" in msg and "\n" not in msg
    assert isinstance(err.value, GankitError)
    assert leftovers(tmp_path) == []


def test_truncated_leaves_nothing(server, tmp_path):
    server.routes["/a/f.bin"] = ("truncate", PAYLOAD)
    with pytest.raises(DownloadError) as err:
        fetch("f.bin", [server.url("a")], SHA, tmp_path)
    assert "truncated" in str(err.value) or "incomplete" in str(err.value).lower()
    assert leftovers(tmp_path) == []


def test_all_mirrors_fail_message_lists_each(server, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch("f.bin", [server.url("a"), closed_port_url()], SHA, tmp_path)
    msg = str(err.value)
    assert "404" in msg and "refused" in msg and "\n" not in msg
    assert [url for url, _ in err.value.reasons][0].endswith("/a/f.bin")


def test_unreachable_mirror_fails_fast(server, tmp_path):
    server.routes["/a/f.bin"] = PAYLOAD
    start = time.monotonic()
    path = fetch("f.bin", [closed_port_url(), server.url("a")], SHA, tmp_path)
    assert time.monotonic() - start < 3 and path.read_bytes() == PAYLOAD


def test_end_to_end_dataset_through_download(server, tmp_path, monkeypatch):
    """Gzipped IDX files served over HTTP load as a dataset into an empty data dir."""
    monkeypatch.delenv("GANKIT_OFFLINE", raising=False)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = (np.arange(50) % 10).astype(np.uint8)
    sha = {}
    for name, array in [("train-images-idx3-ubyte.gz", images),
                        ("train-labels-idx1-ubyte.gz", labels)]:
        write_idx(tmp_path / name, array)
        data = (tmp_path / name).read_bytes()
        server.routes[f"/good/{name}"] = data
        sha[name] = hashlib.sha256(data).hexdigest()
    data_dir = tmp_path / "data"
    ds = load_idx_dataset("mnist", "train", data_dir, offline=False,
                          mirrors=[server.url("missing"), server.url("good")], sha256=sha)
    assert ds.images.shape == (50, 1, 28, 28) and ds.labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), images)
    assert leftovers(data_dir / "mnist") == sorted(sha)
    # the second load finds the files on disk: no server needed
    ds2 = load_idx_dataset("mnist", "train", data_dir, offline=True)
    assert len(ds2) == 50


def test_download_failure_of_non_fallback_split_is_an_error(server, tmp_path, monkeypatch):
    monkeypatch.delenv("GANKIT_OFFLINE", raising=False)
    with pytest.raises(GankitError) as err:
        load_idx_dataset("mnist", "test", tmp_path, offline=False,
                         mirrors=[server.url("none")])
    assert "t10k-images-idx3-ubyte.gz" in str(err.value) and "\n" not in str(err.value)
