"""gankit serve: the page's API and its guards, with Starlette's test client and a real
uvicorn on 127.0.0.1 (for what a client library would tidy up: literal '..' in a path,
what changed while `gankit train` writes the run)."""

import base64
import http.client
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import gankit_cli, tiny_flags, tiny_run

starlette = pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from gankit.serve import guard  # noqa: E402
from gankit.serve.app import create_app  # noqa: E402

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def client(served_runs):
    with TestClient(create_app(served_runs, "127.0.0.1", 8000), base_url=BASE) as c:
        yield c


def png_url(array: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def decode(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def wait_job(client, job, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        view = client.get(f"/api/jobs/{job['id']}").json()
        if view["state"] in ("done", "failed", "cancelled"):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.1)


# --- runs ---------------------------------------------------------------------------------

def test_runs_lists_every_run_with_its_state_step_and_thumbnail(client):
    runs = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    assert set(runs) == {"gan/short", "cvae", "<img src=x onerror=alert(1)>", "tables/ctgan",
                         "tables/tvae"}
    gan = runs["gan/short"]
    assert (gan["model"], gan["data"], gan["step"], gan["steps"], gan["state"]) == \
        ("gan", "mnist", 20, 20, "finished")
    assert gan["thumbnail"] == "gan/short/samples/step_000020.png"
    assert client.get("/files/" + gan["thumbnail"]).headers["content-type"] == "image/png"
    assert runs["<img src=x onerror=alert(1)>"]["state"] == "interrupted"   # no checkpoint


def test_run_detail_has_curves_grids_config_and_checkpoint_metadata(client):
    d = client.get("/api/run", params={"run": "gan/short"}).json()
    assert d["columns"][:3] == ["step", "d_loss", "d_acc"] and "d_real" in d["columns"]
    assert [r[0] for r in d["rows"]] == [5, 10, 15, 20]
    assert [g["step"] for g in d["grids"]] == [10, 20]
    assert 'name = "gan"' in d["config"] and d["meta"]["step"] == 20 and "optim" not in d["meta"]
    assert d["uses"]["generate"] and not d["uses"]["classify"] and d["bce"]
    assert client.get("/api/run", params={"run": "cvae"}).json()["uses"]["classify"]


def test_run_states_training_diverged_interrupted(tmp_path, client):
    from gankit.training.run_folder import RunLock
    from gankit.serve import runs
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "config.toml").write_text("[train]\nsteps = 100\n")
    (folder / "metrics.csv").write_text("step,d_loss,g_loss,seconds\n5,0.5,0.7,1.0\n")
    assert runs.summary(tmp_path, folder)["state"] == "interrupted"
    lock = RunLock(folder)
    lock.acquire()
    try:
        assert runs.summary(tmp_path, folder)["state"] == "training"
    finally:
        lock.release()
    with open(folder / "metrics.csv", "a") as f:
        f.write("10,nan,0.7,2.0\n")
    s = runs.summary(tmp_path, folder)
    assert s["state"] == "diverged" and s["step"] == 10
    assert runs.read_metrics(folder)[1][-1] == [10, None, 0.7, 2.0]   # JSON has no NaN


def test_a_checkpoint_before_its_first_evaluation_is_shown_without_infinity(tmp_path):
    import shutil
    from gankit.training import checkpoint
    from gankit.serve import runs
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    checkpoint.save(folder / "checkpoints" / "last.safetensors", {"x": torch.zeros(1)},
                    {"model": "gan", "step": 5, "best_fid": float("inf"), "optim": {}})
    meta = runs.checkpoint_meta(folder)
    assert meta["best_fid"] is None and meta["step"] == 5 and "optim" not in meta
    with TestClient(create_app(tmp_path, "127.0.0.1", 8000), base_url=BASE) as c:
        assert c.get("/api/run", params={"run": "run"}).json()["meta"]["best_fid"] is None
    shutil.rmtree(folder)


def test_grids_gif_has_one_frame_per_grid(client):
    r = client.get("/api/grids.gif", params={"run": "gan/short", "ms": 100})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    assert "attachment" in r.headers["content-disposition"]
    gif = Image.open(io.BytesIO(r.content))
    assert gif.n_frames == 2


# --- uses ---------------------------------------------------------------------------------

def test_generate_is_repeatable_by_seed_and_matches_the_api(client, served_runs):
    import gankit
    from gankit.data import to_uint8
    a = client.post("/api/generate", json={"run": "gan/short", "seed": 7, "n": 9}).json()
    b = client.post("/api/generate", json={"run": "gan/short", "seed": 7, "n": 9}).json()
    c = client.post("/api/generate", json={"run": "gan/short", "seed": 8, "n": 9}).json()
    assert a["image"] == b["image"] != c["image"]
    assert (a["n"], a["ncol"], a["height"], a["scale"]) == (9, 3, 28, 2)
    # the first cell is the model's first sample for that seed, as `gankit.load` gives it
    model = gankit.load(served_runs / "gan" / "short")
    first = to_uint8(model.sample(9, generator=torch.Generator().manual_seed(7)))[0, 0].numpy()
    picture = decode(a["image"])
    cell = picture[4:4 + 56:2, 4:4 + 56:2]   # pad 2 and scale 2: every second pixel
    assert np.array_equal(cell, first)


def test_generate_takes_a_truncation_as_sample_does(client, served_runs):
    import gankit
    from gankit.data import to_uint8
    a = client.post("/api/generate", json={"run": "gan/short", "seed": 7, "n": 9,
                                           "truncation": 0.5}).json()
    model = gankit.load(served_runs / "gan" / "short")
    first = to_uint8(model.sample(9, generator=torch.Generator().manual_seed(7),
                                  truncation=0.5))[0, 0].numpy()
    assert np.array_equal(decode(a["image"])[4:4 + 56:2, 4:4 + 56:2], first)
    for bad in (0, -1, 2, "x"):
        r = client.post("/api/generate", json={"run": "gan/short", "truncation": bad})
        assert r.status_code == 400 and "truncation" in r.json()["error"]


def test_a_model_is_loaded_once_and_reloaded_when_its_checkpoint_changes(tmp_path, served_runs):
    import shutil
    root = tmp_path / "root"
    shutil.copytree(served_runs / "gan", root / "gan")
    app = create_app(root, "127.0.0.1", 8000)
    with TestClient(app, base_url=BASE) as c:
        cache = app.app.state.gankit.models
        for seed in range(3):
            assert c.post("/api/generate", json={"run": "gan/short", "seed": seed}).status_code == 200
        assert cache.loads == 1
        last = root / "gan" / "short" / "checkpoints" / "last.safetensors"
        os.utime(last, ns=(time.time_ns(), time.time_ns() + 10**9))
        c.post("/api/generate", json={"run": "gan/short"})
        assert cache.loads == 2


def test_conditional_grid_and_label_errors(client):
    r = client.post("/api/generate", json={"run": "cvae", "n": 20}).json()
    assert r["labels"] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]
    assert r["ncol"] == 2
    # n not a multiple of the classes: the page draws the grid `gankit sample --n 36` draws
    # (ceil(36 / 10) = 4 a class), from the one function both call
    r = client.post("/api/generate", json={"run": "cvae", "n": 36}).json()
    assert r["labels"] == [c for c in range(10) for _ in range(4)] and r["ncol"] == 4
    r = client.post("/api/generate", json={"run": "gan/short", "label": 3})
    assert r.status_code == 400 and "conditional" in r.json()["error"]
    r = client.post("/api/generate", json={"run": "cvae", "label": 12})
    assert r.status_code == 400 and "out of range" in r.json()["error"]
    r = client.post("/api/generate", json={"run": "gan/short", "n": "many"})
    assert r.status_code == 400 and "whole number" in r.json()["error"]


def test_walk_goes_from_sample_a_to_sample_b(client):
    grid = decode(client.post("/api/generate", json={"run": "gan/short", "seed": 3, "n": 9}).json()["image"])
    r = client.get("/api/walk", params={"run": "gan/short", "seed": 3, "n": 9, "a": 1, "b": 5,
                                        "frames": 6})
    strip = np.asarray(Image.open(io.BytesIO(r.content)))
    assert strip.shape == (56, 6 * 56)

    def cell(i):   # sample i of the 3x3 grid (pad 2, scale 2)
        row, col = divmod(i, 3)
        return grid[4 + row * 60:4 + row * 60 + 56, 4 + col * 60:4 + col * 60 + 56].astype(int)
    assert np.abs(strip[:, :56] - cell(1)).max() <= 1           # slerp at t=0 and t=1: the
    assert np.abs(strip[:, -56:] - cell(5)).max() <= 1          # codes, to float rounding
    assert np.abs(strip[:, 112:168] - cell(1)).mean() > 1       # and it moves between
    gif = client.get("/api/walk", params={"run": "gan/short", "a": 0, "b": 1, "format": "gif",
                                          "frames": 5})
    assert Image.open(io.BytesIO(gif.content)).n_frames == 8   # there and back
    r = client.get("/api/walk", params={"run": "gan/short", "n": 4, "a": 0, "b": 9})
    assert r.status_code == 400 and "below" in r.json()["error"]


def test_inpaint_job_fills_the_mask_and_keeps_every_other_pixel(client):
    held = client.get("/api/heldout", params={"run": "gan/short", "index": 3}).json()
    assert held["count"] == 1000 and held["label"] is not None
    image = decode(held["image"])
    mask = np.zeros((28, 28), dtype=bool)
    mask[8:20, 6:22] = True
    job = client.post("/api/inpaint", json={"run": "gan/short", "image": held["image"],
                                            "mask": "".join("1" if m else "0" for m in mask.flat)})
    assert job.status_code == 202
    view = wait_job(client, job.json())
    assert view["state"] == "done", view
    filled = decode(view["result"]["filled"])
    assert np.array_equal(filled[~mask], image[~mask])
    assert (filled[mask] != image[mask]).mean() > 0.3
    assert view["result"]["pixels"] == mask.sum() and view["done"] == view["total"] > 0


def test_classify_gives_a_distribution_over_the_classes(client):
    held = client.get("/api/heldout", params={"run": "cvae", "index": 0}).json()
    r = client.post("/api/classify", json={"run": "cvae", "image": held["image"], "digit": False}).json()
    assert r["classes"] == [str(k) for k in range(10)]
    assert sum(r["probs"]) == pytest.approx(1) and r["predicted"] in r["classes"]
    assert np.array_equal(decode(r["seen"]), decode(held["image"]))   # at size: untouched
    r = client.post("/api/classify", json={"run": "gan/short", "image": held["image"]})
    assert r.status_code == 400 and "cvae" in r.json()["error"]


def test_a_drawing_is_centred_and_scaled_as_mnist_digits_are():
    from gankit.serve.pictures import as_digit
    drawing = np.zeros((280, 280), dtype=np.uint8)
    drawing[20:120, 200:230] = 255          # a bar in the top right corner
    x = as_digit(Image.fromarray(drawing), (1, 28, 28))[0].numpy().astype(float)
    ys, xs = np.nonzero(x)
    assert ys.max() - ys.min() + 1 == 20    # the longer side fills the 20-pixel box
    cy, cx = (np.indices(x.shape) * x).reshape(2, -1).sum(1) / x.sum()
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert not as_digit(Image.fromarray(np.zeros((50, 50), np.uint8)), (1, 28, 28)).any()


@pytest.mark.slow
def test_evaluate_job_reports_progress_and_can_be_cancelled(client):
    job = client.post("/api/evaluate", json={"run": "gan/short", "n": 50}).json()
    view = wait_job(client, job, timeout=600)
    assert view["state"] == "done", view
    scores = view["result"]["scores"]
    assert scores["fid"] > 0 and "FID" in view["result"]["table"]
    assert (view["phase"], view["done"], view["total"]) == ("scoring", 1, 1)
    job = client.post("/api/evaluate", json={"run": "gan/short", "n": 20000}).json()
    client.post(f"/api/jobs/{job['id']}/cancel")
    assert wait_job(client, job)["state"] == "cancelled"


# --- guards -------------------------------------------------------------------------------

@pytest.mark.parametrize("host, status", [("127.0.0.1:8000", 200), ("localhost:8000", 200),
                                          ("evil.example:8000", 421), ("127.0.0.1:9999", 421),
                                          ("127.0.0.1.nip.io:8000", 421), ("", 421)])
def test_host_header_must_name_this_server(client, host, status):
    assert client.get("/api/runs", headers={"host": host}).status_code == status


def test_wildcard_bind_accepts_ip_addresses_but_not_other_names():
    check = guard.HostCheck("0.0.0.0", 8000)
    assert check.allows("192.168.1.20:8000") and check.allows("[::1]:8000")
    assert not check.allows("attacker.example:8000")


@pytest.mark.parametrize("headers, status", [({}, 200), ({"origin": BASE}, 200),
                                             ({"origin": "http://evil.example"}, 403),
                                             ({"origin": "null"}, 403),
                                             ({"sec-fetch-site": "cross-site"}, 403)])
def test_posts_from_other_sites_are_refused(client, headers, status):
    r = client.post("/api/generate", json={"run": "gan/short"}, headers=headers)
    assert r.status_code == status


@pytest.mark.parametrize("path", ["/files/%2e%2e/secret.txt", "/files/gan/%2e%2e/%2e%2e/secret.txt",
                                  "/files//etc/passwd", "/files/%2fetc%2fpasswd",
                                  "/files/gan/short/.lock", "/files/gan/short/checkpoints/last.safetensors",
                                  "/files/outside/secret.txt", "/files/gan%5c..%5c..%5csecret.txt"])
def test_files_outside_root_are_404(served_runs, path):
    (served_runs.parent / "secret.txt").write_text("secret")
    link = served_runs / "outside"
    if not link.exists():
        link.symlink_to(served_runs.parent, target_is_directory=True)
    try:
        with TestClient(create_app(served_runs, "127.0.0.1", 8000), base_url=BASE) as c:
            r = c.get(path)
        assert r.status_code == 404 and b"secret" not in r.content
    finally:
        link.unlink()


def test_literal_dot_dot_over_a_real_socket_is_404(served_runs, live_server):
    (served_runs.parent / "secret.txt").write_text("secret")
    base = live_server(served_runs)
    host, port = base.removeprefix("http://").split(":")
    for path in ("/files/../secret.txt", "/files/gan/../../secret.txt", "/static/../app.py",
                 "/api/run?run=../"):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", path, headers={"Host": f"{host}:{port}"})
        r = conn.getresponse()
        assert r.status == 404 and b"secret" not in r.read(), path
        conn.close()


def test_run_ids_that_leave_root_are_404(client):
    for run in ("..", "../x", "/etc", "gan/../..", "nothere"):
        assert client.get("/api/run", params={"run": run}).status_code == 404


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says width x height, with one tiny compressed row after it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def test_uploads_are_limited_in_bytes_and_pixels(client):
    bomb = "data:image/png;base64," + base64.b64encode(_png_header_claiming(100_000, 100_000)).decode()
    mask = "1" * 784
    r = client.post("/api/inpaint", json={"run": "gan/short", "image": bomb, "mask": mask})
    assert r.status_code == 413 and "more than 16,777,216 pixels" in r.json()["error"]
    wide = "data:image/png;base64," + base64.b64encode(_png_header_claiming(5000, 5000)).decode()
    r = client.post("/api/inpaint", json={"run": "gan/short", "image": wide, "mask": mask})
    assert r.status_code == 413 and "5000x5000" in r.json()["error"]
    big = {"run": "gan/short", "image": "A" * (guard.MAX_BODY + 10), "mask": mask}
    r = client.post("/api/inpaint", content=json.dumps(big), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    for image, words in (("data:image/png;base64,bm90IGFuIGltYWdl", "not an image"),
                         ("%%%", "base64"), (None, "data URL")):
        r = client.post("/api/inpaint", json={"run": "gan/short", "image": image, "mask": mask})
        assert r.status_code == 400 and words in r.json()["error"]
    r = client.post("/api/inpaint", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON object" in r.json()["error"]


def test_masks_are_checked(client):
    image = png_url(np.zeros((28, 28), np.uint8))
    for mask, words in (("1" * 10, "784 characters"), ("0" * 784, "empty"), ("2" * 784, "784")):
        r = client.post("/api/inpaint", json={"run": "gan/short", "image": image, "mask": mask})
        assert r.status_code == 400 and words in r.json()["error"]


# --- live: what changed, asked for while `gankit train` writes the run -------------------

def _events(response):
    """(event, data) pairs from a server-sent event stream, as they arrive."""
    name = None
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


@pytest.mark.slow
def test_curves_grow_live_while_a_run_trains(tmp_path, live_server):
    """The page asks what changed since its last look, as it does every second: new rows
    come as an append to the ones it has, the state goes from training to finished, and
    an unchanged run answers with its stamp alone. Every answer is a short request."""
    base = live_server(tmp_path)
    run = tmp_path / "live"
    train = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--out", str(run),
                              *tiny_flags(steps=400)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    host, port = base.removeprefix("http://").split(":")

    def get(path):
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", path, headers={"Host": f"{host}:{port}"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        data = json.loads(response.read())
        conn.close()
        return data
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.csv").is_file():
            assert time.monotonic() < deadline and train.poll() is None, train.stderr
            time.sleep(0.1)
        stamp, rows, states, appended = "", [], [], 0
        while not states or states[-1] != "finished":
            assert time.monotonic() < deadline + 120, states
            last = f"&last={rows[-1][0]}" if rows else ""
            m = get(f"/api/run/changes?run=live&since={stamp}&rows={len(rows)}{last}")
            stamp = m["stamp"]
            if "run" in m:
                assert "rows" not in m["run"]
                states.append(m["run"]["state"])
                appended += bool(rows) and m["start"] == len(rows) and bool(m["rows"])
                rows = rows[:m["start"]] + m["rows"]
            time.sleep(0.2)
        assert train.wait(60) == 0
    finally:
        train.kill()
    assert states[0] == "training" and states[-1] == "finished"
    assert appended >= 3                          # rows arrived as they were written ...
    assert [r[0] for r in rows] == list(range(5, 401, 5))   # ... all of them, in order
    assert get(f"/api/run/changes?run=live&since={stamp}&rows={len(rows)}&last=400") == {"stamp": stamp}
    again = get("/api/run/changes?run=live&since=&rows=3&last=999")   # rows it no longer has
    assert again["start"] == 0 and len(again["rows"]) == 80
    first = get("/api/run/changes?run=live&since=&rows=0&last=")      # a page with no rows yet
    assert first["start"] == 0 and len(first["rows"]) == 80


def test_pages_bring_their_data_and_keep_names_as_text(client):
    """/ and /run/ID/TAB answer with the view's data inside the HTML (so the page is drawn
    before its load event); nothing from a run folder can close the script element."""
    import re
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    boot = json.loads(re.search(r'<script id="boot" type="application/json">(.*?)</script>',
                                r.text).group(1))
    assert boot["view"] == "runs" and {x["id"] for x in boot["runs"]} >= {"gan/short", "cvae"}
    assert "<img src=x" not in r.text and "\\u003cimg src=x onerror=alert(1)>" in r.text
    r = client.get("/run/gan/short/generate")
    boot = json.loads(re.search(r'<script id="boot" type="application/json">(.*?)</script>',
                                r.text).group(1))
    assert boot["view"] == "run" and boot["tab"] == "generate" and boot["run"]["id"] == "gan/short"
    assert boot["run"]["rows"] and boot["run"]["stamp"]
    assert client.get("/run/gan/short").status_code == 200
    r = client.get("/run/no/such/run")
    assert r.status_code == 404 and '"view": "missing"' in r.text
    assert client.get("/run/..%2F..%2Fetc").status_code == 404


# --- the command --------------------------------------------------------------------------

@pytest.mark.slow
def test_serve_refuses_a_missing_root_and_a_busy_port_in_one_line(tmp_path):
    r = gankit_cli("serve", tmp_path / "nope")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "not a folder" in r.stderr
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("")
    r = gankit_cli("serve", run)
    assert r.returncode == 1 and "is a run folder itself" in r.stderr and str(tmp_path) in r.stderr
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = gankit_cli("serve", tmp_path, "--port", port)
    assert r.returncode == 1 and "cannot listen" in r.stderr and r.stderr.count("\n") == 1


def test_serve_prints_its_url_serves_and_warns_off_loopback(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "gankit", "serve", str(tmp_path), "--port",
                          str(port), "--host", "0.0.0.0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/")
                body = conn.getresponse().read()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert b"<title>gankit</title>" in body
    finally:
        p.send_signal(2)   # Ctrl-C
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "anyone who can reach" in err and "stopped" in err
    assert "Traceback" not in err


def test_serve_without_its_extra_says_how_to_install_it(tmp_path):
    # A real interpreter in which starlette cannot be imported (a blocker on sys.meta_path).
    code = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('starlette', 'uvicorn'):\n"
            "            raise ImportError(name=name)\n"
            "sys.meta_path.insert(0, Block())\nfrom gankit.cli import main\n"
            f"sys.exit(main(['serve', {str(tmp_path)!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "pip install 'gankit[serve]'" in r.stderr
    assert r.stderr.count("\n") == 1


def test_a_job_reports_each_bar_and_stops_at_the_next_update_once_cancelled():
    from gankit.serve.work import Cancelled, Jobs
    jobs, seen, release = Jobs(), [], threading.Event()

    def work(job):
        with job.bar(total=4, desc="sampling") as bar:
            for _ in range(4):
                bar.update(1)
                seen.append((job.phase, job.done, job.total))
                release.wait(10)
        return "never"
    job = jobs.submit("test", "run", work)
    deadline = time.monotonic() + 10
    while not seen:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert seen[0] == ("sampling", 1, 4) and job.state == "running"
    job.cancel.set()
    release.set()
    while job.state == "running":
        time.sleep(0.01)
    assert job.state == "cancelled" and job.result is None and len(seen) == 1
    with pytest.raises(Cancelled):
        job.say("scoring")


def test_job_events_stream_until_the_job_ends(served_runs, live_server):
    base = live_server(served_runs)
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    mask = "".join("1" if 8 <= i // 28 < 20 else "0" for i in range(784))
    body = json.dumps({"run": "gan/short", "image": png_url(np.zeros((28, 28), np.uint8)), "mask": mask})
    conn.request("POST", "/api/inpaint", body, {"Host": f"{host}:{port}", "Origin": base,
                                                "Content-Type": "application/json"})
    job = json.loads(conn.getresponse().read())
    conn.request("GET", f"/api/jobs/{job['id']}/events", headers={"Host": f"{host}:{port}"})
    views = [data for _, data in _events(conn.getresponse())]
    conn.close()
    assert views[-1]["state"] == "done" and views[-1]["result"]["pixels"] == 12 * 28
    assert all(v["state"] in ("queued", "running") for v in views[:-1])


def test_an_imputer_run_shows_its_curves_and_offers_no_image_use(tmp_path):
    from gankit.impute import impute_csv
    table = tmp_path / "t.csv"
    table.write_text("a,b\n" + "\n".join(f"{i},{'' if i % 3 else i * 2}" for i in range(30)) + "\n")
    root = tmp_path / "root"
    impute_csv(str(table), str(tmp_path / "f.csv"), steps=10, run=str(root / "imp"), progress=False)
    with TestClient(create_app(root, "127.0.0.1", 8000), base_url=BASE) as c:
        d = c.get("/api/run", params={"run": "imp"}).json()
        assert d["model"] == "gain" and d["state"] == "finished" and d["grids"] == []
        assert not any(d["uses"][k] for k in ("generate", "inpaint", "classify", "evaluate"))
        assert d["columns"] == ["step", "d_loss", "g_loss", "mse", "seconds"]


# --- a table generator's report (gankit synth --run leaves report.json in the run) -------

MARKUP = "<img src=x onerror=alert(1)>"   # a column of the served table is named so


def test_a_table_runs_report_is_offered_with_its_pictures_and_page(client):
    d = client.get("/api/run", params={"run": "tables/ctgan"}).json()
    assert d["model"] == "ctgan" and d["uses"]["report"]
    assert not any(d["uses"][k] for k in ("generate", "inpaint", "classify", "evaluate"))
    r = d["report"]
    assert 0 < r["quality"]["score"] <= 1 and r["rows"] == {"real": 60, "synthetic": 60}
    assert (r["columns"], r["pairs"]) == (4, 6) and r["page"] and r["efficacy"] is None
    assert r["privacy"]["closer_to_training"] is None and 0 <= r["privacy"]["exact_copies"] <= 1
    worst = r["worst_columns"]
    assert {c["column"] for c in worst} == {"age", "job", MARKUP, "income"}   # all 4, worst first
    assert [c["score"] for c in worst] == sorted(c["score"] for c in worst)
    assert "marginal" not in worst[0] and len(r["worst_pairs"]) == 5
    for name in ("shapes.png", "pairs.png"):
        got = client.get(f"/api/report/{name}", params={"run": "tables/ctgan"})
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(got.content))
        assert 400 <= picture.width <= 1600 and 200 <= picture.height <= 1000, (name, picture.size)
        assert np.asarray(picture.convert("L")).std() > 20   # drawn on, not a blank canvas
    # report.html: its own route, sandboxed (no script of it runs, nor on this origin);
    # /files serves no HTML
    page = client.get("/api/report/page.html", params={"run": "tables/ctgan"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "default-src 'none'" in policy
    assert "&lt;img src=x" in page.text and MARKUP not in page.text
    assert client.get("/files/tables/ctgan/report.html").status_code == 404
    assert client.get("/files/tables/ctgan/report.json").json()["quality"] == r["quality"]
    # judged with held-out rows and a target (gankit synth-report): efficacy, closer share
    held = client.get("/api/run", params={"run": "tables/tvae"}).json()["report"]
    assert held["rows"] == {"real": 60, "synthetic": 60, "holdout": 20}
    assert held["efficacy"]["target"] == "income" and len(held["efficacy"]["models"]) == 3
    assert 0 <= held["privacy"]["closer_to_training"] <= 1


def test_an_image_run_offers_no_report(client):
    d = client.get("/api/run", params={"run": "gan/short"}).json()
    assert d["uses"]["report"] is False and d["report"] is None
    r = client.get("/api/report/shapes.png", params={"run": "gan/short"})
    assert r.status_code == 404 and "report.json" in r.json()["error"]
    for bad in ({"run": "../"}, {"run": "tables/../../"}, {}):
        assert client.get("/api/report/pairs.png", params=bad).status_code == 404
    assert client.get("/api/report/other.png", params={"run": "tables/ctgan"}).status_code == 404


def test_a_table_run_without_a_report_says_how_to_get_one_and_shows_it_once_written(
        tmp_path, served_runs):
    import shutil
    root = tmp_path / "root"
    run = root / "ctgan"
    shutil.copytree(served_runs / "tables" / "ctgan", run)
    report = (run / "report.json").read_bytes()
    (run / "report.json").unlink()
    app = create_app(root, "127.0.0.1", 8000)
    with TestClient(app, base_url=BASE) as c:
        d = c.get("/api/run", params={"run": "ctgan"}).json()
        assert d["uses"]["report"] and d["report"] is None and d["folder"] == str(run.resolve())
        r = c.get("/api/report/shapes.png", params={"run": "ctgan"})
        assert r.status_code == 404 and "gankit synth --run" in r.json()["error"]
        (run / "report.json").write_bytes(report)   # as gankit synth-report --json writes it
        m = c.get("/api/run/changes", params={"run": "ctgan", "since": d["stamp"],
                                              "rows": len(d["rows"]), "last": d["rows"][-1][0]})
        assert m.json()["run"]["report"]["quality"]["score"] > 0
        # the pictures are drawn once per version of the file
        pictures = app.app.state.gankit.pictures
        first = c.get("/api/report/shapes.png", params={"run": "ctgan"}).content
        assert c.get("/api/report/shapes.png", params={"run": "ctgan"}).content == first
        assert pictures.made == 1
        (run / "report.json").write_text('{"quality": 3}')
        assert "not a report" in c.get("/api/run", params={"run": "ctgan"}).json()["report"]["error"]
        r = c.get("/api/report/shapes.png", params={"run": "ctgan"})
        assert r.status_code == 400 and "cannot be drawn" in r.json()["error"]
        # a report.json that leads out of ROOT is not read
        (tmp_path / "secret.json").write_bytes(report)
        (run / "report.json").unlink()
        (run / "report.json").symlink_to(tmp_path / "secret.json")
        assert c.get("/api/report/pairs.png", params={"run": "ctgan"}).status_code == 404
        assert c.get("/api/run", params={"run": "ctgan"}).json()["report"] is None


# --- sampling settings (a flow's sampler steps, guidance) ---------------------------------

@pytest.fixture(scope="module")
def flow_client(tmp_path_factory):
    import gankit
    root = tmp_path_factory.mktemp("flow-served")
    gankit.train(out=str(root / "cflow"), **tiny_run(model="cflow", steps=2, width=8,
                                                     offline=True))
    with TestClient(create_app(root, "127.0.0.1", 8000), base_url=BASE) as c:
        yield c


def test_generate_takes_the_models_sampling_settings(flow_client, client):
    uses = flow_client.get("/api/run", params={"run": "cflow"}).json()["uses"]
    assert [(f["name"], f["value"]) for f in uses["sampling"]] == \
        [("sample_steps", 6), ("solver", "heun"), ("sample_precision", "auto"),
         ("likelihood", "bound"), ("likelihood_time", 0.5), ("guidance", 1.25)]
    assert uses["sampling"][1]["choices"] == ["euler", "heun"]
    assert [f["name"] for f in uses["sampling"] if f["likelihood_only"]] == \
        ["likelihood", "likelihood_time"]         # the Generate tab leaves these out
    assert client.get("/api/run", params={"run": "gan/short"}).json()["uses"]["sampling"] == []

    def grid(**settings):
        r = flow_client.post("/api/generate", json={"run": "cflow", "seed": 1, "n": 10, **settings})
        assert r.status_code == 200, r.text
        return r.json()["image"]
    before = grid()
    assert grid(sample_steps="2", guidance="3", solver="euler") != before
    assert grid() == before                     # the cached model is left as it was trained
    for bad, words in (({"sample_steps": 0}, "sample_steps must be positive"),
                       ({"guidance": "x"}, "guidance must be a float"),
                       ({"solver": "rk4"}, "solver must be one of")):
        r = flow_client.post("/api/generate", json={"run": "cflow", **bad})
        assert r.status_code == 400 and words in r.json()["error"], r.text
    r = flow_client.get("/api/walk", params={"run": "cflow", "n": 10, "a": 0, "b": 1,
                                              "frames": 2, "sample_steps": 2})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
