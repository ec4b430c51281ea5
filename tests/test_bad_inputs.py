"""Bad input, case by case, through the real `gankit` command.

Every case is one mistake a user can make (a damaged checkpoint, a corrupt IDX file, a
folder with no usable image, a wrong config value, an output path that cannot be written)
and must end with ONE `gankit: error: ...` line naming the problem (argparse's usage error
for malformed flags), a non-zero status, no traceback, and every file that existed before
byte for byte as it was.

Speed: a subprocess costs ~3 s of start-up (importing torch), so the subprocess cases are
prepared up front and run two at a time in the background while the in-process cases
(`gankit.cli.main`, the same code path) run in the foreground. The cases that read data,
resume runs or hand over pickles always run as real subprocesses.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import traceback
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import gankit_cli, one_line_error, tiny_flags

TRAIN_FAST = tiny_flags(steps=2, batch_size=8, sample_every=2, checkpoint_every=2)
WORKERS = 2


# --- the shared runs, trained once ----------------------------------------------------

@dataclass
class Ctx:
    root: Path
    gan: Path      # a finished `gan` run (4 steps)
    cgan: Path     # a finished `cgan` run (conditional: --label is meaningful)

    @property
    def gan_ckpt(self) -> Path:
        return self.gan / "checkpoints" / "last.safetensors"


def _train_runs(root: Path) -> Ctx:
    ctx = Ctx(root, root / "gan", root / "cgan")
    flags = tiny_flags(steps=4, batch_size=8, sample_every=4, checkpoint_every=4)
    procs = [subprocess.Popen([sys.executable, "-m", "gankit", "train", "--model", model,
                               "--out", str(out), *flags], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for model, out in (("gan", ctx.gan), ("cgan", ctx.cgan))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    return ctx


# --- hashing what must not change -------------------------------------------------------

def snapshot(*paths: Path) -> dict[str, str]:
    """SHA-256 of every file under `paths` (files or folders), by path."""
    out = {}
    for p in paths:
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# --- bad checkpoints --------------------------------------------------------------------

class RunsCode:
    """Unpickling this runs `touch MARKER`: a checkpoint must never be unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def bad_checkpoint(kind: str, src: Path, dest: Path) -> Path:
    """Write a damaged / foreign variant of the checkpoint `src` to `dest`."""
    from safetensors.torch import save_file

    from gankit.training import checkpoint as ck

    dest.parent.mkdir(parents=True, exist_ok=True)
    raw = src.read_bytes()
    if kind == "truncated":
        dest.write_bytes(raw[: len(raw) // 2])
    elif kind == "empty":
        dest.write_bytes(b"")
    elif kind == "random":
        dest.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "corrupt_header":       # the safetensors JSON header itself is broken
        assert struct.unpack("<Q", raw[:8])[0] > 16   # the header is longer than the damage
        dest.write_bytes(raw[:8] + b"{not json at all" + raw[8 + 16:])
    elif kind == "no_gankit_metadata":   # a valid safetensors file from somewhere else
        save_file({"weight": torch.zeros(4, 4)}, str(dest), metadata={"format": "pt"})
    elif kind == "corrupt_gankit_metadata":
        tensors, _ = ck.load(src)
        save_file(tensors, str(dest), metadata={"gankit": "{this is not json"})
    elif kind in ("other_model", "other_shape", "extra_tensor", "missing_tensor",
                  "missing_rng_state", "missing_optimizer_tensor"):
        tensors, meta = ck.load(src)
        if kind == "other_model":        # says dcgan, holds gan's tensors
            meta["model"] = "dcgan"
            meta["config"]["model"] = {"name": "dcgan"}
        elif kind == "other_shape":      # says RGB, holds gray-image tensors
            meta["image_shape"] = [3, 28, 28]
        elif kind == "extra_tensor":
            tensors["model.generator.extra.weight"] = torch.zeros(3)
        elif kind == "missing_rng_state":
            del tensors["rng.torch"]
        else:
            prefix = "optim." if kind == "missing_optimizer_tensor" else "model."
            del tensors[next(k for k in tensors if k.startswith(prefix))]
        ck.save(dest, tensors, meta)
    elif kind == "torch_pickle":         # torch.save: a pickle, whatever the extension
        torch.save({"weight": torch.zeros(2)}, dest)
    elif kind == "code_pickle":
        dest.write_bytes(pickle.dumps(RunsCode(dest.parent / "MARKER")))
    elif kind == "dir_without_checkpoints":
        dest.mkdir()
        (dest / "notes.txt").write_text("no checkpoint here")
    elif kind == "missing":
        pass
    else:
        raise AssertionError(kind)
    return dest


# fragments the one error line must hold, per kind of bad checkpoint
CKPT_SAYS = {
    "truncated": ("unreadable", "truncated"),
    "empty": ("unreadable",),
    "random": ("unreadable",),
    "corrupt_header": ("unreadable",),
    "no_gankit_metadata": ("not a gankit checkpoint",),
    "corrupt_gankit_metadata": ("damaged metadata", "another checkpoint"),
    "other_model": ("does not fit", "another model"),
    "other_shape": ("does not fit", "image shape"),
    "extra_tensor": ("does not fit",),
    "missing_tensor": ("does not fit",),
    "missing_rng_state": ("lacks part of the training state", "new run"),
    "missing_optimizer_tensor": ("lacks part of the training state", "new run"),
    "torch_pickle": ("unreadable", "not a safetensors file"),
    "code_pickle": ("unreadable", "not a safetensors file"),
    "dir_without_checkpoints": ("no checkpoint in",),
    "missing": ("does not exist",),
}


# --- IDX files ----------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, magic: int | None = None, shape=None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    shape = array.shape if shape is None else shape
    return struct.pack(">I", magic) + struct.pack(f">{len(shape)}I", *shape) + array.tobytes()


def write_mnist(data_dir: Path, images: bytes, labels: bytes, gz=(True, True)) -> None:
    """The training split as the loader looks for it: <data_dir>/mnist/*-idx?-ubyte.gz."""
    d = data_dir / "mnist"
    d.mkdir(parents=True, exist_ok=True)
    for name, payload, zipped in (("train-images-idx3-ubyte.gz", images, gz[0]),
                                  ("train-labels-idx1-ubyte.gz", labels, gz[1])):
        (d / name).write_bytes(gzip.compress(payload) if zipped else payload)


def _digits(n=20):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10


def idx_case(kind: str, d: Path) -> None:
    images, labels = _digits()
    good_images, good_labels = idx_bytes(images), idx_bytes(labels)
    data = d / "data"
    if kind == "wrong_magic":
        write_mnist(data, idx_bytes(images, magic=0x12345678), good_labels)
    elif kind == "images_file_holds_labels":     # magic 0x801 where 0x803 belongs
        write_mnist(data, good_labels, good_labels)
    elif kind == "header_count_too_big":
        write_mnist(data, idx_bytes(images, shape=(100, 28, 28)), good_labels)
    elif kind == "truncated_gzip":
        write_mnist(data, b"", good_labels)
        zipped = gzip.compress(good_images)
        (data / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(zipped[: len(zipped) // 2])
    elif kind == "label_count_differs":
        write_mnist(data, good_images, idx_bytes(labels[:7]))
    elif kind == "label_out_of_range":
        write_mnist(data, good_images, idx_bytes(labels + 5))
    elif kind == "not_gzip_with_gz_name":
        write_mnist(data, b"<html>404 Not Found</html>\n", good_labels, gz=(False, True))
    else:
        raise AssertionError(kind)


IDX_SAYS = {
    "wrong_magic": ("train-images-idx3-ubyte.gz", "not an IDX file", "0x12345678"),
    "images_file_holds_labels": ("train-images-idx3-ubyte.gz", "1 dimension(s), expected 3"),
    "header_count_too_big": ("train-images-idx3-ubyte.gz", "truncated", "100x28x28"),
    "truncated_gzip": ("train-images-idx3-ubyte.gz", "truncated gzip"),
    "label_count_differs": ("20 images", "7 labels"),
    "label_out_of_range": ("train-labels-idx1-ubyte.gz", "out of range"),
    "not_gzip_with_gz_name": ("train-images-idx3-ubyte.gz", "not an IDX file"),
}


# --- image files ----------------------------------------------------------------------------

def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data): a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) \
        + chunk(b"IEND", b"")


def folder_case(kind: str, d: Path) -> Path:
    imgs = d / "imgs"
    imgs.mkdir()
    if kind == "empty":
        pass
    elif kind == "only_non_images":
        (imgs / "readme.txt").write_text("hello")
        (imgs / "data.csv").write_text("1,2,3")
    elif kind == "only_hidden_images":   # .ipynb_checkpoints and the like are skipped
        (imgs / ".cache").mkdir()
        Image.new("L", (8, 8)).save(imgs / ".cache" / "a.png")
    elif kind == "corrupt_image":
        (imgs / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    elif kind == "zero_byte_image":
        (imgs / "a.jpg").write_bytes(b"")
    elif kind == "decompression_bomb":
        (imgs / "huge.png").write_bytes(png_claiming(100_000, 100_000))
    elif kind == "is_a_file":
        shutil.rmtree(imgs)
        imgs.write_bytes(b"a file")
    else:
        raise AssertionError(kind)
    return imgs


FOLDER_SAYS = {
    "empty": ("no images found",),
    "only_non_images": ("no images found", ".png"),
    "only_hidden_images": ("no images found",),
    "corrupt_image": ("could be read", "a.png"),
    "zero_byte_image": ("could be read", "a.jpg: empty file"),
    "decompression_bomb": ("could be read", "huge.png: too large", "decompression bomb"),
    "is_a_file": ("is a file",),
}


# --- the cases ------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    make: Callable[[Path, Ctx], list]       # builds the inputs in its own folder -> argv
    says: tuple[str, ...] = ()              # fragments of the one error line
    sub: bool = True                        # real subprocess (else gankit.cli.main in-process)
    usage: bool = False                     # an argparse error (exit 2, one line)
    protect: tuple[str, ...] = ()           # paths under the case folder that must not change
    env: dict | None = None                 # environment additions ({} values relative to d)
    marker: bool = False                    # a MARKER file must NOT appear (no code ran)
    not_as_root: str = ""                   # reason to skip when running as root
    known_bug: str = ""                     # a gankit bug this case shows (strict xfail)


CASES: list[Case] = []


def case(*args, **kw):
    CASES.append(Case(*args, **kw))


# checkpoints x commands
SAMPLE = ["sample", "--n", "4", "--out", "s.png"]
EVAL = ["eval", "--n", "10"]
INTERP = ["interpolate", "--out", "w.gif", "--points", "2", "--frames", "2"]


def _ckpt(kind, name="bad.safetensors"):
    def make(d, ctx):
        return bad_checkpoint(kind, ctx.gan_ckpt, d / name)
    return make


def _cmd_ckpt(cmd, kind, name="bad.safetensors"):
    def make(d, ctx):
        path = _ckpt(kind, name)(d, ctx)
        return [*cmd, "--checkpoint", path]
    return make


def _ckpt_name(kind):
    return "not_a_run" if kind == "dir_without_checkpoints" else "bad.safetensors"


def _resume(kind):
    def make(d, ctx):
        run = d / "run"
        shutil.copytree(ctx.gan, run)
        bad_checkpoint(kind, ctx.gan_ckpt, d / "bad.safetensors")
        os.replace(d / "bad.safetensors", run / "checkpoints" / "last.safetensors")
        return ["train", "--resume", "--out", run, "--quiet", "--device", "cpu"]
    return make


PICKLES = {"torch_pickle", "code_pickle"}
RESUME_ONLY = {"missing_rng_state", "missing_optimizer_tensor"}   # sampling needs neither
for kind in (k for k in CKPT_SAYS if k not in RESUME_ONLY):
    protect = () if kind == "missing" else (_ckpt_name(kind),)
    case(f"sample-ckpt-{kind}", _cmd_ckpt(SAMPLE, kind, _ckpt_name(kind)), CKPT_SAYS[kind],
         sub=kind in PICKLES, protect=protect, marker=kind == "code_pickle")
for kind in ("torch_pickle", "code_pickle"):
    case(f"sample-ckpt-{kind}-pt", _cmd_ckpt(SAMPLE, kind, "weights.pt"), CKPT_SAYS[kind],
         protect=("weights.pt",), marker=kind == "code_pickle")
for kind in ("truncated", "no_gankit_metadata", "other_model", "code_pickle", "missing"):
    case(f"eval-ckpt-{kind}", _cmd_ckpt(EVAL, kind), CKPT_SAYS[kind], sub=kind in PICKLES,
         protect=() if kind == "missing" else ("bad.safetensors",), marker=kind == "code_pickle")
for kind in ("random", "corrupt_header", "other_shape", "missing_tensor",
             "dir_without_checkpoints", "code_pickle"):
    case(f"interpolate-ckpt-{kind}", _cmd_ckpt(INTERP, kind, _ckpt_name(kind)), CKPT_SAYS[kind],
         sub=kind in PICKLES, protect=(_ckpt_name(kind),), marker=kind == "code_pickle")
# (not "other_shape": a resumed run rebuilds its model from its data, and the tensors fit;
# "random" and "corrupt_gankit_metadata" take the paths of "empty" and "no_gankit_metadata")
for kind in ("truncated", "empty", "no_gankit_metadata", "other_model", "extra_tensor",
             "missing_tensor", "torch_pickle", "code_pickle"):
    case(f"resume-ckpt-{kind}", _resume(kind), CKPT_SAYS[kind], protect=("run",),
         marker=kind == "code_pickle")
for kind in ("missing_rng_state", "missing_optimizer_tensor"):
    case(f"resume-ckpt-{kind}", _resume(kind), CKPT_SAYS[kind], protect=("run",))


def _resume_as_dcgan(d, ctx):
    shutil.copytree(ctx.gan, d / "run")
    return ["train", "--resume", "--model", "dcgan", "--out", "run", "--quiet"]


case("resume-gan-run-as-dcgan", _resume_as_dcgan, ("--model dcgan", "resumed run", "gan"),
     sub=False, protect=("run",))


def _resume_changed_flag(d, ctx):
    shutil.copytree(ctx.gan, d / "run")
    return ["train", "--resume", "--out", "run", "--batch-size", "16", "--quiet"]


case("resume-with-changed-batch-size", _resume_changed_flag, ("--batch-size 16", "differs"),
     sub=False, protect=("run",))


# IDX data: GANKIT_DATA points at the case's own data folder
def _idx(kind):
    def make(d, ctx):
        idx_case(kind, d)
        return ["train", "--data", "mnist", "--out", "run", *TRAIN_FAST]
    return make


for kind in IDX_SAYS:
    case(f"idx-{kind}", _idx(kind), IDX_SAYS[kind], env={"GANKIT_DATA": "data"},
         protect=("data",))


# image folders
def _folder(kind):
    def make(d, ctx):
        imgs = folder_case(kind, d)
        return ["train", "--data", imgs, "--image-size", "8", "--out", "run", *TRAIN_FAST]
    return make


for kind in FOLDER_SAYS:
    case(f"folder-{kind}", _folder(kind), FOLDER_SAYS[kind], protect=("imgs",))
case("folder-missing", lambda d, ctx: ["train", "--data", "./no/such/folder", "--out", "run",
                                       *TRAIN_FAST],
     ("unknown dataset", "no such folder"), sub=False)


# config files
def _toml(text, *extra):
    def make(d, ctx):
        (d / "c.toml").write_text(text) if isinstance(text, str) else (d / "c.toml").write_bytes(text)
        return ["train", "--config", "c.toml", "--out", "run", *extra, "--quiet", "--device", "cpu"]
    return make


CONFIGS = {
    "unknown_key": ("[train]\nstepz = 5\n", ("unknown key", "stepz", "[train]")),
    "wrong_type": ('[train]\nsteps = "ten"\n', ("steps must be an integer", "'ten'")),
    "negative_batch_size": ("[train]\nbatch_size = -8\nsteps = 2\n", ("batch_size must be positive",)),
    "zero_steps": ("[train]\nsteps = 0\n", ("steps must be positive",)),
    "lr_zero": ("[model]\nlr_g = 0.0\n[train]\nsteps = 2\n", ("lr_g", "> 0")),
    "lr_nan": ("[model]\nlr_d = nan\n[train]\nsteps = 2\n", ("lr_d", "nan")),
    "lr_inf": ("[model]\nlr_d = inf\n[train]\nsteps = 2\n", ("lr_d", "inf")),
    "unknown_top_level_table": ("[optimizer]\nlr = 0.1\n", ("unknown table", "optimizer")),
    "table_is_a_value": ("train = 3\n", ("train", "must be a table")),
    "unknown_model_name": ('[model]\nname = "gpt"\n', ("unknown model", "gpt")),
    "invalid_toml": ("[train\nsteps = 2\n", ("not valid TOML",)),
    "binary_file": (b"\xff\xfe\x00garbage\x80", ("not valid TOML",)),
}
for name, (text, says) in CONFIGS.items():
    # in-process: only the config is read; the subprocess cases below cover the command
    case(f"config-{name}", _toml(text), says, sub=name == "lr_nan",
         protect=("c.toml",))
case("config-missing-file", lambda d, ctx: ["train", "--config", "nope.toml", "--out", "run"],
     ("nope.toml", "does not exist"), sub=False)


def _config_is_folder(d, ctx):
    (d / "conf.toml").mkdir()
    return ["train", "--config", "conf.toml", "--out", "run", "--quiet"]


case("config-is-a-folder", _config_is_folder, ("conf.toml",), sub=False)

# flags (in-process: refused before any data is read, by the same `main`)
FLAGS = {
    "batch-size-0": (["--batch-size", "0"], ("batch_size must be positive",)),
    "lr-g-negative": (["--lr-g", "-1"], ("lr_g", "> 0")),
    "ema-1.5": (["--ema", "1.5"], ("ema must be in [0, 1)",)),
    "image-size-0": (["--image-size", "0"], ("image_size must be positive",)),
    "channels-2": (["--channels", "2"], ("channels must be 1 or 3",)),
    "seed-negative": (["--seed", "-3"], ("seed must be >= 0",)),
    "device-tpu": (["--device", "tpu"], ("device must be",)),
    "unknown-dataset": (["--data", "imagenet"], ("unknown dataset", "'imagenet'", "mnist")),
    "empty-dataset-name": (["--data", ""], ("data is empty",)),
}
for name, (flags, says) in FLAGS.items():
    case(f"flag-{name}", lambda d, ctx, flags=flags: ["train", "--out", "run", "--steps", "2",
                                                      *flags, "--quiet"],
         says, sub=False)
USAGE = {
    "unknown-model": ["train", "--model", "nope"],
    "steps-not-a-number": ["train", "--steps", "abc"],
    "lr-not-a-number": ["train", "--lr-g", "fast"],
    "unknown-flag": ["train", "--epochs", "3"],
    "eval-without-source": ["eval"],
    "sample-without-checkpoint": ["sample"],
}
for name, argv in USAGE.items():
    case(f"usage-{name}", lambda d, ctx, argv=argv: list(argv), sub=False, usage=True)


# output
def _out_is_file(d, ctx):
    (d / "f.txt").write_text("keep me")
    return ["train", "--out", "f.txt", *TRAIN_FAST]


def _out_under_file(d, ctx):
    (d / "f.txt").write_text("keep me")
    return ["train", "--out", "f.txt/run", *TRAIN_FAST]


def _out_read_only(d, ctx):
    (d / "ro").mkdir(mode=0o500)
    return ["train", "--out", "ro/run", *TRAIN_FAST]


def _out_existing_run(d, ctx):
    shutil.copytree(ctx.gan, d / "run")
    return ["train", "--out", "run", *TRAIN_FAST]


def _resume_nothing(d, ctx):
    (d / "run").mkdir()
    (d / "run" / "notes.txt").write_text("mine")
    return ["train", "--resume", "--out", "run", "--quiet"]


case("out-is-a-file", _out_is_file, ("is a file", "--out"), sub=False, protect=("f.txt",))
case("out-under-a-file", _out_under_file, ("cannot write", "--out"), protect=("f.txt",))
case("out-in-read-only-folder", _out_read_only, ("cannot write", "--out"),
     not_as_root="running as root: chmod 0o500 does not stop root's writes "
                 "(out-under-a-file covers an unwritable --out)")
case("out-existing-finished-run", _out_existing_run, ("already holds a run", "--resume"),
     protect=("run",))
case("resume-with-nothing-to-resume", _resume_nothing, ("nothing to resume",), sub=False,
     protect=("run",))


# sample / interpolate / eval arguments
def _with(ckpt_attr, *argv):
    def make(d, ctx):
        return [a if a != "CKPT" else getattr(ctx, ckpt_attr) for a in argv]
    return make


case("sample-n-0", _with("gan", "sample", "--checkpoint", "CKPT", "--n", "0"), ("--n must be positive",), sub=False)
case("sample-nrow-negative", _with("gan", "sample", "--checkpoint", "CKPT", "--nrow", "-2"), ("--nrow must be positive",), sub=False)
case("sample-label-unconditional", _with("gan", "sample", "--checkpoint", "CKPT", "--label", "3"),
     ("needs a conditional model", "gan"), sub=False)
case("sample-label-out-of-range", _with("cgan", "sample", "--checkpoint", "CKPT", "--label", "10"),
     ("--label 10 is out of range", "0 to 9"), sub=False)
case("sample-label-negative", _with("cgan", "sample", "--checkpoint", "CKPT", "--label", "-1"),
     ("out of range",), sub=False)
case("sample-out-missing-folder", _with("gan", "sample", "--checkpoint", "CKPT", "--out", "nope/s.png"),
     ("nope", "does not exist"), sub=False)
case("sample-npy-missing-folder", _with("gan", "sample", "--checkpoint", "CKPT", "--npy", "nope/s.npy"),
     ("nope", "does not exist"), sub=False)


def _sample_out_is_folder(d, ctx):
    (d / "grid.png").mkdir()
    return ["sample", "--checkpoint", ctx.gan, "--n", "4", "--out", "grid.png"]


case("sample-out-is-a-folder", _sample_out_is_folder, ("cannot write", "grid.png"), sub=False)
case("sample-out-unknown-extension", _with("gan", "sample", "--checkpoint", "CKPT", "--n", "4",
                                           "--out", "s.xyz"), ("s.xyz",), sub=False)
case("interpolate-out-not-gif", _with("gan", "interpolate", "--checkpoint", "CKPT", "--out", "w.png"),
     ("must end in .gif",), sub=False)
case("interpolate-points-1", _with("gan", "interpolate", "--checkpoint", "CKPT", "--points", "1"),
     ("--points must be at least 2",), sub=False)
case("interpolate-duration-0", _with("gan", "interpolate", "--checkpoint", "CKPT", "--duration", "0"),
     ("--duration must be positive",), sub=False)
case("interpolate-out-missing-folder", _with("gan", "interpolate", "--checkpoint", "CKPT", "--out",
                                             "nope/w.gif"), ("nope", "does not exist"), sub=False)
case("interpolate-label-out-of-range", _with("cgan", *INTERP, "--checkpoint", "CKPT", "--label", "12"),
     ("out of range",), sub=False)
case("eval-n-1", _with("gan", "eval", "--checkpoint", "CKPT", "--n", "1"), ("--n must be at least 2",),
     sub=False)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npy(array_fn, name="x.npy"):
    def make(d, ctx):
        arr = array_fn(d)
        if isinstance(arr, bytes):
            (d / name).write_bytes(arr)
        else:
            np.save(d / name, arr, allow_pickle=True)
        return ["eval", "--images", name]
    return make


case("eval-images-float-npy", _npy(lambda d: np.zeros((8, 28, 28), np.float32)),
     ("x.npy", "float32", "uint8"), sub=False, protect=("x.npy",))
case("eval-images-2d-npy", _npy(lambda d: np.zeros((28, 28), np.uint8)),
     ("x.npy", "(28, 28)", "uint8"), sub=False, protect=("x.npy",))
case("eval-images-not-npy", _npy(lambda d: b"just some text\n"), ("x.npy", "not a readable .npy", "no NumPy header"),
     sub=False, protect=("x.npy",))
case("eval-images-truncated-npy", _npy(lambda d: _npy_bytes(np.zeros((8, 28, 28), np.uint8))[:300]),
     ("x.npy", "not a readable .npy"), sub=False, protect=("x.npy",))
case("eval-images-torch-save-with-code",
     lambda d, ctx: (torch.save(RunsCode(d / "MARKER"), d / "x.npy"), ["eval", "--images", "x.npy"])[1],
     ("x.npy", "not a readable .npy", "no NumPy header"), protect=("x.npy",), marker=True)
case("eval-images-missing", lambda d, ctx: ["eval", "--images", "nope.npy"], ("nope.npy", "does not exist"),
     sub=False)
case("eval-images-code-pickle", _npy(lambda d: pickle.dumps(RunsCode(d / "MARKER"))),
     ("x.npy", "not a readable .npy", "no NumPy header"), protect=("x.npy",), marker=True)
case("eval-images-object-array-with-code",
     _npy(lambda d: np.array([RunsCode(d / "MARKER"), 1], dtype=object)),
     ("x.npy", "Python objects", "never unpickles"), protect=("x.npy",), marker=True)


def _wrong_shape(d, ctx):
    # a tiny labelled folder as the reference keeps the feature classifier's training short
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (d / "ref" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
                d / "ref" / label / f"{i}.png")
    np.save(d / "x.npy", np.zeros((6, 10, 10), np.uint8))
    return ["eval", "--images", "x.npy", "--data", d / "ref"]


case("eval-images-wrong-shape", _wrong_shape, ("(1, 10, 10)", "(1, 28, 28)"), sub=False,
     protect=("x.npy",))

IDS = [c.id for c in CASES]
assert len(IDS) == len(set(IDS)), "case ids must be unique"


# --- running them -------------------------------------------------------------------------

@dataclass
class Prepared:
    case: Case
    dir: Path
    argv: list
    env: dict
    before: dict
    fresh_out: Path | None     # an --out that did not exist: it must not be created


def _prepare(c: Case, root: Path, ctx: Ctx) -> Prepared:
    d = root / c.id
    d.mkdir()
    argv = [str(a) for a in c.make(d, ctx)]
    env = {k: str(d / v) for k, v in (c.env or {}).items()}
    out = None
    if argv[:1] == ["train"] and "--out" in argv:
        out = d / argv[argv.index("--out") + 1]
        out = None if out.exists() else out
    return Prepared(c, d, argv, env, snapshot(*(d / p for p in c.protect)), out)


def _run_sub(p: Prepared) -> subprocess.CompletedProcess:
    return gankit_cli(*p.argv, cwd=p.dir, env=p.env, timeout=180)


def _run_in_process(p: Prepared) -> subprocess.CompletedProcess:
    from gankit import cli

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        for k, v in p.env.items():
            mp.setenv(k, v)
        os.chdir(p.dir)
        try:
            code = cli.main(p.argv)
        except SystemExit as e:      # argparse
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:        # what a user would see as a traceback
            err.write(traceback.format_exc())
            code = 1
        finally:
            os.chdir(cwd)
    return subprocess.CompletedProcess(p.argv, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def world(tmp_path_factory, request):
    """The trained runs, and every selected subprocess case started in the background."""
    selected = {item.callspec.params["c"].id for item in request.session.items
                if "c" in getattr(getattr(item, "callspec", None), "params", {})}
    root = tmp_path_factory.mktemp("bad-inputs")
    ctx = _train_runs(root)
    shared = snapshot(ctx.gan, ctx.cgan)
    cases_root = root / "cases"
    cases_root.mkdir()
    prepared, futures = {}, {}
    pool = ThreadPoolExecutor(WORKERS)
    for c in CASES:
        if c.id not in selected or (c.not_as_root and os.geteuid() == 0):
            continue
        try:
            prepared[c.id] = _prepare(c, cases_root, ctx)
        except Exception as e:   # reported by that case's test, not by all of them
            prepared[c.id] = e
            continue
        if c.sub:
            futures[c.id] = pool.submit(_run_sub, prepared[c.id])
    yield ctx, shared, prepared, futures
    pool.shutdown(wait=True, cancel_futures=True)


# The subprocess cases are slow (a Python start each); the in-process ones stay in the
# fast loop (`pytest -m "not slow"`).
def _marks(c: Case) -> list:
    return ([pytest.mark.slow] if c.sub else []) + (
        [pytest.mark.xfail(strict=True, reason=c.known_bug)] if c.known_bug else [])


@pytest.mark.parametrize("c", [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES])
def test_bad_input_is_one_clear_line(c: Case, world):
    ctx, shared, prepared, futures = world
    if c.not_as_root and os.geteuid() == 0:
        pytest.skip(c.not_as_root)
    p = prepared[c.id]
    if isinstance(p, Exception):
        raise p
    r = futures[c.id].result() if c.sub else _run_in_process(p)
    detail = f"argv: {p.argv}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, detail
    if c.usage:   # argparse's own checks: one line too, with the subcommand's --help named
        assert r.returncode == 2, detail
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and ": error:" in lines[0] and "--help)" in lines[0], detail
        assert "usage:" not in r.stderr, detail
    else:
        assert r.returncode == 1, detail
        one_line_error(r, *c.says)
    assert snapshot(*(p.dir / q for q in c.protect)) == p.before, "files changed: " + detail
    assert snapshot(ctx.gan, ctx.cgan) == shared, "the shared runs changed: " + detail
    if p.fresh_out is not None:
        assert not p.fresh_out.exists(), f"a failed run left {p.fresh_out} behind: {detail}"
    if c.marker:
        assert not (p.dir / "MARKER").exists(), "a pickle was loaded and ran code: " + detail
    leftovers = [f.name for f in p.dir.rglob("*.tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_the_code_pickle_is_live(tmp_path):
    """The pickled payload of the cases above does run code when unpickled, so that its
    MARKER staying absent shows gankit never unpickled it."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.exists()


# --- borderline images: accepted, and read correctly ------------------------------------

def _borderline_images(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    paths = {}
    paths["1x1"] = folder / "tiny.png"
    Image.new("L", (1, 1), 200).save(paths["1x1"])
    paths["16-bit"] = folder / "deep.png"
    Image.fromarray(np.full((12, 12), 40000, np.uint16)).save(paths["16-bit"])
    paths["cmyk-jpeg"] = folder / "print.jpg"
    Image.new("CMYK", (12, 12), (0, 0, 0, 0)).save(paths["cmyk-jpeg"], quality=95)   # white
    paths["animated-gif"] = folder / "anim.gif"
    frames = [Image.new("L", (12, 12), v) for v in (100, 0, 255)]
    frames[0].save(paths["animated-gif"], save_all=True, append_images=frames[1:], duration=50)
    paths["transparent-png"] = folder / "sprite.png"
    Image.new("RGBA", (12, 12), (0, 0, 0, 0)).save(paths["transparent-png"])        # on white
    paths["extreme-aspect"] = folder / "line.png"
    Image.new("L", (300, 1), 50).save(paths["extreme-aspect"])
    return paths


EXPECTED_GRAY = {"1x1": 200, "16-bit": round(40000 / 257), "cmyk-jpeg": 255,
                 "animated-gif": 100, "transparent-png": 255, "extreme-aspect": 50}


@pytest.mark.parametrize("kind", list(EXPECTED_GRAY))
def test_borderline_image_is_read_sensibly(kind, tmp_path):
    from gankit.data.folder import load_folder

    paths = _borderline_images(tmp_path / "imgs")
    only = tmp_path / "one"
    only.mkdir()
    shutil.copy(paths[kind], only / paths[kind].name)
    data = load_folder(only, image_size=8)
    assert data.images.shape == (1, 1, 8, 8)
    assert abs(int(data.images.float().mean().round()) - EXPECTED_GRAY[kind]) <= 2, data.images


@pytest.mark.slow
def test_training_on_borderline_images_works(tmp_path):
    _borderline_images(tmp_path / "imgs")
    r = gankit_cli("train", "--data", tmp_path / "imgs", "--image-size", "8", "--out",
                   tmp_path / "run", *TRAIN_FAST)
    assert r.returncode == 0, r.stderr
    assert "skipped" not in r.stderr, r.stderr   # every one of them was read
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()
