"""The web page's server: a Starlette app over the same functions as the CLI.

Pages (`/`, `/run/ID[/TAB]`) come with their data inside the HTML, so the page is drawn
before its load event: a plain headless capture (chromium --dump-dom, --screenshot) shows
it, not "loading…". A run that trains is followed by short requests for what changed
(`/api/run/changes`), not by a stream that never ends, so a page load settles (headless
chromium's --virtual-time-budget waits for open requests). Routes answer at once (runs,
generate, walk, classify) or start a Job (evaluate, inpaint) whose progress the page follows
as server-sent events until it ends. Nothing here computes a use: it parses the request,
calls gankit's function, and turns pictures into PNGs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (FileResponse, HTMLResponse, JSONResponse, Response,
                                 StreamingResponse)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import GankitError
from ..training.run_folder import RunPaths
from . import runs as folders
from .guard import Guard, HostCheck, Refused, decode_picture, read_json
from .pictures import as_digit, png_url, to_model, to_picture
from .work import FileCache, Job, Jobs, ModelCache

STATIC = Path(__file__).parent / "static"
SERVED = {".png", ".gif", ".csv", ".toml", ".json", ".txt"}   # files of a run the page shows
TICK = 0.5            # seconds between looks at a job for its event stream
TABS = ("training", "generate", "inpaint", "classify", "evaluate", "report", "about")   # of a run page
MAX_SAMPLES = 256     # images one generate request may ask for
MAX_FRAMES = 120      # frames of one walk
MAX_EVAL = 20_000     # samples of one evaluation
REPORT_PICTURES = {"shapes.png": "shapes_picture", "pairs.png": "pairs_picture"}   # report_pages'
MAX_REPORT_COLUMNS = 200   # wider tables' pictures would take gigabytes: report.html has them
# report.html as a document of no origin that runs nothing: its pictures are data: URLs and
# its style inline. A file in a run folder may come from anyone; it cannot script this page.
REPORT_PAGE_POLICY = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass
class State:
    root: Path
    device: str
    models: ModelCache
    jobs: Jobs
    references: dict[str, Any] = field(default_factory=dict)   # features per dataset
    held_out: dict[str, Any] = field(default_factory=dict)     # images per dataset
    pictures: FileCache = field(default_factory=FileCache)     # PNGs of report.json files
    stopping: asyncio.Event | None = None


def create_app(root: str | os.PathLike = "runs", host: str = "127.0.0.1", port: int = 8000,
               device: str = "cpu"):
    """The ASGI app serving the runs under `root` to a browser at http://host:port."""
    state = State(Path(root).resolve(), device, ModelCache(device), Jobs())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state.stopping = asyncio.Event()
        yield
        state.stopping.set()       # ends the job streams, so Ctrl-C does not wait on them
        state.jobs.shutdown()

    routes = [
        Route("/", _endpoint(state, page)),
        Route("/run/{path:path}", _endpoint(state, page)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/files/{path:path}", _endpoint(state, files)),
        Route("/api/runs", _endpoint(state, list_runs)),
        Route("/api/run", _endpoint(state, run_detail)),
        Route("/api/run/changes", _endpoint(state, run_changes)),
        Route("/api/grids.gif", _endpoint(state, grids_gif)),
        Route("/api/report/page.html", _endpoint(state, report_page)),
        Route("/api/report/{name}", _endpoint(state, report_picture)),
        Route("/api/generate", _endpoint(state, generate), methods=["POST"]),
        Route("/api/walk", _endpoint(state, walk)),
        Route("/api/heldout", _endpoint(state, held_out)),
        Route("/api/inpaint", _endpoint(state, inpaint), methods=["POST"]),
        Route("/api/classify", _endpoint(state, classify), methods=["POST"]),
        Route("/api/evaluate", _endpoint(state, evaluate), methods=["POST"]),
        Route("/api/jobs/{id}", _endpoint(state, job_view)),
        Route("/api/jobs/{id}/events", _endpoint(state, job_events)),
        Route("/api/jobs/{id}/cancel", _endpoint(state, job_cancel), methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gankit = state
    return Guard(app, HostCheck(host, port))


def _endpoint(state: State, handler):
    """A route calling handler(state, request); a user's mistake is a JSON {"error"}."""
    async def endpoint(request: Request):
        try:
            return await handler(state, request)
        except Refused as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except NotFound as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        except GankitError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
    return endpoint


class NotFound(GankitError):
    pass


# --- runs -----------------------------------------------------------------------------

def _run(state: State, run_id: Any) -> Path:
    """The folder of run `run_id` (its path under ROOT), or NotFound."""
    folder = folders.inside(state.root, run_id) if isinstance(run_id, str) else None
    if folder is None or not folder.is_dir():
        raise NotFound(f"no run {run_id!r} under {state.root}")
    return folder


async def files(state: State, request: Request):
    path = folders.inside(state.root, request.path_params["path"])
    if path is None or not path.is_file() or path.suffix.lower() not in SERVED:
        raise NotFound("no such file")
    return FileResponse(path, headers={"cache-control": "no-cache"})


def _runs(state: State) -> dict[str, Any]:
    found = []
    for folder in folders.find_runs(state.root):
        if folder.is_dir():   # not deleted since the walk
            found.append(folders.summary(state.root, folder))
    return {"root": str(state.root), "runs": found}


async def list_runs(state: State, request: Request):
    return JSONResponse(await run_in_threadpool(_runs, state))


def _detail(state: State, folder: Path, stamp: str | None = None) -> dict[str, Any]:
    """The run page's data, with the stamp of the files it was read from: taken before they
    are read, so that a write in between shows as a change at the page's next look."""
    stamp = stamp or _stamp(folder)
    return {**folders.detail(state.root, folder), "stamp": stamp}


async def run_detail(state: State, request: Request):
    folder = _run(state, request.query_params.get("run"))
    return JSONResponse(await run_in_threadpool(_detail, state, folder))


async def page(state: State, request: Request):
    """index.html with its view's data inside (a script element of type application/json):
    the runs at `/`, a run and its tab at `/run/ID[/TAB]`."""
    path = request.path_params.get("path")

    def boot() -> tuple[dict[str, Any], int]:
        if path is None:
            return {"view": "runs", **_runs(state)}, 200
        run_id, tab = path, "training"
        head, _, last = path.rstrip("/").rpartition("/")
        if last in TABS and head:
            run_id, tab = head, last
        try:
            return {"view": "run", "tab": tab, "run": _detail(state, _run(state, run_id))}, 200
        except NotFound as e:
            return {"view": "missing", "error": str(e)}, 404
    data, status = await run_in_threadpool(boot)
    # JSON inside <script>: "<" escaped, so no run name or config can close the element.
    text = json.dumps(data, allow_nan=False).replace("<", "\\u003c")
    html = (STATIC / "index.html").read_text().replace(
        "<!--boot-->", f'<script id="boot" type="application/json">{text}</script>')
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-cache"})


LOOKS = 3   # reads of a changing run before answering with the last one


def _stamp(folder: Path) -> str:
    """A short token that changes whenever a run writes what the page shows: metrics, grids,
    checkpoint, lock, evaluation, report."""
    def st(p: Path):
        try:
            s = p.stat()
            return (s.st_ino, s.st_size, s.st_mtime_ns)
        except OSError:
            return None
    paths = RunPaths(folder)
    seen = [st(p) for p in (paths.metrics, paths.samples, paths.checkpoint().with_suffix(".json"),
                            paths.lock, paths.evaluation, paths.report)]
    return hashlib.sha1(repr(seen).encode()).hexdigest()[:16]


async def run_changes(state: State, request: Request):
    """What changed in a run since the page last looked: `since` (the stamp it has), `rows`
    (how many metrics rows it has) and `last` (the step of its last one). Unchanged:
    {stamp}. Changed: {stamp, run: everything but the rows, start, rows: rows[start:]},
    start being the page's count when its rows are still a prefix (new rows were appended),
    else 0 (a resumed run rewrote them)."""
    q = request.query_params
    folder = _run(state, q.get("run"))
    have = _int(q, "rows", 0, 0, 10**9)
    try:
        last = float(q.get("last") or "nan")   # a page with no rows yet sends none
    except ValueError:
        raise Refused(f"last must be a step number, got {q.get('last')!r}") from None

    def look() -> dict[str, Any]:
        for _ in range(LOOKS):
            stamp = _stamp(folder)
            if stamp == q.get("since"):
                return {"stamp": stamp}
            detail = _detail(state, folder, stamp)
            # A run that wrote while we read (its lock emptied as it ends) would pair an
            # older stamp with the newer state, and the page would be told "changed" once
            # more after "finished": look again until the stamp is that of what we read.
            if _stamp(folder) == stamp:
                break
        rows = detail.pop("rows")
        start = have if have <= len(rows) and (have == 0 or rows[have - 1][0] == last) else 0
        return {"stamp": detail["stamp"], "run": detail, "start": start, "rows": rows[start:]}
    return JSONResponse(await run_in_threadpool(look))


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, allow_nan=False)}\n\n"


async def grids_gif(state: State, request: Request):
    """The run's sample grids as one animated GIF, every `every`-th grid (default: at most
    100 frames), `ms` milliseconds a frame."""
    from PIL import Image

    from ..images import gif_bytes
    folder = _run(state, request.query_params.get("run"))
    shown = folders.grids(folder)
    if not shown:
        raise NotFound("this run has no sample grids yet")
    every = _int(request.query_params, "every", max(1, math.ceil(len(shown) / 100)), 1, 10**6)
    ms = _int(request.query_params, "ms", 200, 20, 10_000)

    def build() -> bytes:
        frames = []
        for _, name in shown[::every]:
            with Image.open(RunPaths(folder).samples / name) as im:
                frames.append(im.convert("RGB"))
        return gif_bytes(frames, duration_ms=ms)
    name = folder.name.encode("ascii", "replace").decode().replace('"', "")
    return Response(await run_in_threadpool(build), media_type="image/gif",
                    headers={"content-disposition": f'attachment; filename="{name}-grids.gif"'})


def _report_file(state: State, folder: Path, path: Path) -> Path:
    """A file of a run's report, refused (404) when missing or, once symlinks are
    followed, outside ROOT, as /files refuses it."""
    resolved = path.resolve()
    if not resolved.is_relative_to(state.root) or not resolved.is_file():
        raise NotFound(f"run {folder.relative_to(state.root).as_posix()} has no {path.name}: "
                       "gankit synth --run DIR writes it when it trains the run")
    return resolved


async def report_picture(state: State, request: Request):
    """A table generator's report pictures as PNGs, drawn from RUN/report.json on request
    and kept until the file changes: shapes.png (each column's marginals, real against
    synthetic), pairs.png (the association heatmaps and pair scores)."""
    from .. import report_pages
    name = request.path_params["name"]
    if name not in REPORT_PICTURES:
        raise NotFound(f"no report picture {name!r}: {' or '.join(REPORT_PICTURES)}")
    folder = _run(state, request.query_params.get("run"))
    path = _report_file(state, folder, RunPaths(folder).report)

    def draw(path: Path) -> bytes:
        try:
            report = json.loads(path.read_text())
            if len(report["columns"]) > MAX_REPORT_COLUMNS:
                raise GankitError(f"the report judges {len(report['columns'])} columns: too "
                                  f"many to draw here (at most {MAX_REPORT_COLUMNS}); "
                                  "report.html has the pictures")
            picture = getattr(report_pages, REPORT_PICTURES[name])(report)
        except GankitError:
            raise
        except Exception as e:   # edited, or written by another version: say so, no trace
            raise GankitError(f"report.json cannot be drawn ({type(e).__name__}: {e})") from None
        out = io.BytesIO()
        picture.save(out, format="PNG")
        return out.getvalue()
    png = await run_in_threadpool(state.pictures.get, path, name, draw)
    return Response(png, media_type="image/png", headers={"cache-control": "no-cache"})


async def report_page(state: State, request: Request):
    """RUN/report.html as gankit synth wrote it, sandboxed (REPORT_PAGE_POLICY): the one
    HTML file of a run the server gives, and no script of it runs (/files serves no HTML)."""
    folder = _run(state, request.query_params.get("run"))
    path = _report_file(state, folder, RunPaths(folder).report_page)
    return FileResponse(path, media_type="text/html; charset=utf-8",
                        headers={"cache-control": "no-cache", "x-content-type-options": "nosniff",
                                 "content-security-policy": REPORT_PAGE_POLICY})


# --- uses -----------------------------------------------------------------------------

def _int(values, key: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = values.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise Refused(f"{key} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise Refused(f"{key} must lie between {lo} and {hi}, got {value}")
    return value


def _bool(values, key: str, default: bool) -> bool:
    raw = values.get(key, default)
    return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")


def _grid_request(state: State, values) -> dict[str, Any]:
    """The settings that make a generate grid, shared by the walk, which recomputes it."""
    folder = _run(state, values.get("run"))
    return {"folder": folder, "seed": _int(values, "seed", 0, 0, 2**63 - 1),
            "label": _int(values, "label", None, 0, 10**6), "ema": _bool(values, "ema", True),
            "n": _int(values, "n", 36, 1, MAX_SAMPLES),
            "truncation": _truncation(values), "sampling": _sampling(values)}


def _sampling(values) -> dict[str, Any]:
    """The sampling settings the request gives (base.py), typed as their fields; the model
    checks them when they are applied (sampling_as)."""
    from ..models import sampling_fields
    settings = {}
    for name, (_, tp) in sampling_fields().items():
        raw = values.get(name)
        if raw is None or raw == "":
            continue
        try:
            settings[name] = tp(raw)
        except (TypeError, ValueError):
            raise Refused(f"{name} must be a {tp.__name__}, got {raw!r}") from None
    return settings


def _truncation(values) -> float:
    from ..models.base import check_truncation
    try:
        psi = float(values.get("truncation", 1.0))
        check_truncation(psi)
    except (TypeError, ValueError, GankitError):
        raise Refused("truncation must be a number in (0, 1]; 1 is none") from None
    return psi


def _grid_codes(model, seed: int, label: int | None, n: int, truncation: float = 1.0):
    """(latents, labels, images per row): the CLI's `gankit sample` grid for this seed
    (its latents truncated, so that a walk between two of them stays truncated too); a
    conditional model without a label gets a row per class."""
    from ..models import check_label
    check_label(model, label)
    gen = torch.Generator().manual_seed(seed)
    z, labels, nrow = model.grid_inputs(n, gen, label)   # as `gankit sample --n n` draws
    if truncation != 1:
        z = model.truncate(z, truncation)
    return z, labels, nrow or math.ceil(math.sqrt(len(z)))


async def generate(state: State, request: Request):
    from ..data import to_uint8
    from ..images import MIN_CELL, grid
    g = _grid_request(state, await read_json(request))

    def work():
        loaded = state.models.get(g["folder"], g["ema"])
        with loaded.lock:
            model = loaded.model
            z, labels, nrow = _grid_codes(model, g["seed"], g["label"], g["n"], g["truncation"])
            with model.sampling_as(**g["sampling"]):
                images = to_uint8(model.sample(latents=z, labels=labels)).cpu()
        c, h, w = images.shape[1:]
        return {"image": png_url(grid(images, nrow=nrow)), "n": len(images), "ncol": nrow,
                "height": h, "width": w, "pad": 2, "scale": max(1, MIN_CELL // max(h, w)),
                "labels": None if labels is None else labels.tolist(),
                "class_names": model.class_names}
    return JSONResponse(await run_in_threadpool(work))


async def walk(state: State, request: Request):
    """GET: the slerp walk between samples a and b of a generate grid (same settings),
    as a PNG strip (frames side by side) or, with format=gif, an animated GIF."""
    from ..images import gif_bytes, grid
    from ..interpolate import MODES, walk_between
    q = request.query_params
    g = _grid_request(state, q)
    a, b = _int(q, "a", 0, 0, MAX_SAMPLES), _int(q, "b", 1, 0, MAX_SAMPLES)
    frames = _int(q, "frames", 16, 2, MAX_FRAMES)
    mode, fmt = q.get("mode", "slerp"), q.get("format", "png")
    if mode not in MODES or fmt not in ("png", "gif"):
        raise Refused("mode is slerp or lerp, format png or gif")

    def work():
        loaded = state.models.get(g["folder"], g["ema"])
        with loaded.lock:
            model = loaded.model
            z, labels, _ = _grid_codes(model, g["seed"], g["label"], g["n"], g["truncation"])
            if max(a, b) >= len(z):
                raise Refused(f"the grid has {len(z)} samples: a and b must be below that")
            label = None if labels is None else int(labels[a])   # the walk keeps a's class
            with model.sampling_as(**g["sampling"]):
                images = walk_between(model, z[a], z[b], frames, mode, label).cpu()
        if fmt == "gif":   # there and back, so the GIF loops without a jump
            return gif_bytes(torch.cat([images, images.flip(0)[1:-1]]), duration_ms=80)
        out = io.BytesIO()
        grid(images, nrow=len(images), pad=0).save(out, format="PNG")
        return out.getvalue()
    data = await run_in_threadpool(work)
    headers = ({"content-disposition": 'attachment; filename="walk.gif"'} if fmt == "gif" else {})
    return Response(data, media_type=f"image/{fmt}", headers=headers)


def _held_out_images(state: State, folder: Path):
    """The held-out split of the run's dataset (the images gankit eval's floor uses)."""
    from ..api import run_spec
    from ..training.checkpoint import last_in, read_meta
    from ..data.reference import reference_split
    cfg, _, _ = run_spec(read_meta(last_in(folder)), folder)
    key = repr(cfg.data)
    if key not in state.held_out:
        state.held_out[key] = reference_split(cfg.data)[1]
    return state.held_out[key]


async def held_out(state: State, request: Request):
    """One image of the dataset's held-out split: {image, index, count, label}."""
    folder = _run(state, request.query_params.get("run"))

    def work():
        data = _held_out_images(state, folder)
        index = _int(request.query_params, "index", 0, 0, 10**9) % len(data)
        label = None if data.labels is None else data.class_names[int(data.labels[index])]
        return {"image": png_url(to_picture(data.images[index])), "index": index,
                "count": len(data), "label": label}
    return JSONResponse(await run_in_threadpool(work))


def _mask(text: Any, shape) -> torch.Tensor:
    """'0'/'1' per pixel, row by row, 1 = fill -> known (1, 1, H, W), True = keep."""
    _, h, w = shape
    if not isinstance(text, str) or len(text) != h * w or set(text) - {"0", "1"}:
        raise Refused(f"mask must be {h * w} characters 0 (keep) or 1 (fill), row by row")
    missing = torch.tensor([ch == "1" for ch in text]).view(1, 1, h, w)
    if not missing.any():
        raise Refused("the mask is empty: paint the pixels to fill")
    return ~missing


def _shape(folder: Path) -> tuple[int, int, int]:
    from ..training.checkpoint import last_in, read_meta
    meta = read_meta(last_in(folder))
    return tuple(meta["image_shape"])


def _start(state: State, kind: str, folder: Path, work) -> JSONResponse:
    job = state.jobs.submit(kind, folder.relative_to(state.root).as_posix(), work)
    return JSONResponse(job.view(), status_code=202)


async def inpaint(state: State, request: Request):
    """A job: fill the mask's pixels of an uploaded picture; the known ones come back
    unchanged. {run, image (data URL), mask, ema, seed, label}."""
    from ..inpaint import inpaint as fill
    from ..inpaint import show_mask
    values = await read_json(request)
    folder = _run(state, values.get("run"))
    shape = await run_in_threadpool(_shape, folder)
    picture = decode_picture(values.get("image"))
    image = to_model(picture, shape)[None]
    known = _mask(values.get("mask"), shape)
    seed = _int(values, "seed", 0, 0, 2**63 - 1)
    label = _int(values, "label", None, 0, 10**6)
    ema = _bool(values, "ema", True)

    def work(job: Job):
        from ..models import check_label
        job.say("loading the model")
        loaded = state.models.get(folder, ema)
        with loaded.lock:
            check_label(loaded.model, label)
            labels = None if label is None else torch.tensor([label])
            filled = fill(loaded.model, image, known, labels, seed=seed, progress=job.bar)
        return {"input": png_url(to_picture(image[0])),
                "holes": png_url(to_picture(show_mask(image, known)[0])),
                "filled": png_url(to_picture(filled[0])), "pixels": int((~known).sum())}
    return _start(state, "inpaint", folder, work)


async def classify(state: State, request: Request):
    """p(y|x) of a drawing (or any picture): {run, image, samples, digit} -> bars."""
    from ..classify import check_can_classify, classify as bayes
    values = await read_json(request)
    folder = _run(state, values.get("run"))
    picture = decode_picture(values.get("image"))
    samples = _int(values, "samples", None, 1, 1000)   # None: the model's own
    digit = _bool(values, "digit", True)

    def work():
        loaded = state.models.get(folder)
        with loaded.lock:
            model = loaded.model
            check_can_classify(model)
            image = (as_digit if digit else to_model)(picture, model.image_shape)
            pred = bayes(model, image[None], samples=samples, seed=0)
        return {"classes": model.class_names, "probs": pred.probs[0].tolist(),
                "predicted": model.class_names[int(pred.labels[0])], "prior": pred.prior,
                "seen": png_url(to_picture(image))}
    return JSONResponse(await run_in_threadpool(work))


async def evaluate(state: State, request: Request):
    """A job: `gankit eval --checkpoint RUN` ({run, n, ema}); its result holds the scores
    and the CLI's table."""
    from ..training.checkpoint import last_in
    from ..evaluate import finite, format_table, prepare, save_result, score_model
    values = await read_json(request)
    folder = _run(state, values.get("run"))
    n = _int(values, "n", None, 2, MAX_EVAL)
    ema = _bool(values, "ema", True)

    def work(job: Job):
        job.say("loading the model")
        loaded = state.models.get(folder, ema)
        data = loaded.model.run_config.data
        key = repr(data)
        if key not in state.references:
            job.say("features of the training images")
            state.references[key] = prepare(data, "classifier", state.device, progress=job.bar)
        ref = state.references[key]
        with loaded.lock:
            result = score_model(loaded.model, ref, n, seed=0, progress=job.bar)
        save_result(last_in(folder), result, features="classifier", seed=0, ema=ema)
        title = f"{folder.relative_to(state.root).as_posix()} ({loaded.model.run_config.model})"
        return {"scores": finite(result), "table": format_table(result, title)}
    return _start(state, "evaluate", folder, work)


# --- jobs -----------------------------------------------------------------------------

def _job(state: State, request: Request) -> Job:
    job = state.jobs.get(request.path_params["id"])
    if job is None:
        raise NotFound(f"no job {request.path_params['id']}")
    return job


async def job_view(state: State, request: Request):
    return JSONResponse(_job(state, request).view())


async def job_cancel(state: State, request: Request):
    job = _job(state, request)
    job.cancel.set()
    return JSONResponse(job.view())


async def job_events(state: State, request: Request):
    """Server-sent `job` events as the job moves, until it ends."""
    job = _job(state, request)

    async def stream():
        while True:
            job.changed.clear()
            view = job.view()
            yield _event("job", view)
            if view["state"] in ("done", "failed", "cancelled") or state.stopping.is_set():
                return
            for _ in range(10):   # wait for a change, at most TICK seconds
                if job.changed.is_set() or await request.is_disconnected():
                    break
                await asyncio.sleep(TICK / 10)
            if await request.is_disconnected():
                return
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})
