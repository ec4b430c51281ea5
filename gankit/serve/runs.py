"""Run folders as the page shows them, read without any lock.

Every file in a run folder is written to a temporary name and renamed (metrics.csv is
appended a whole row at a time), so a reader sees whole files, never half of one, and the
page may read a run while `gankit train` writes it.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..training import checkpoint, run_folder
from ..training.run_folder import RunPaths
from ..config import tomllib
from ..data.table import parse_number
from ..errors import GankitError
from ..evaluate import finite, format_table

MAX_DEPTH = 4                 # runs/<group>/<name>/... is deep enough; a home folder is not
WORST = 5                     # columns and pairs of a table report the page lists


def inside(root: Path, rel: str) -> Path | None:
    """root/rel when it lies under root once symlinks are followed, else None (the caller
    answers 404). Refuses '..', absolute paths, backslashes, NUL and hidden names (.lock)."""
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return None
    parts = PurePosixPath(rel).parts
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    path = (root / rel).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def is_run(folder: Path) -> bool:
    paths = RunPaths(folder)
    return (paths.config.is_file() or paths.metrics.is_file()
            or paths.checkpoint().with_suffix(".json").is_file())


def find_runs(root: Path) -> list[Path]:
    """Folders under root that hold a run (config.toml, metrics.csv or a last checkpoint),
    newest first. Symlinked folders are not followed."""
    found = []
    root = root.resolve()
    for here, dirs, files in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in RunPaths.PARTS
                         and depth < MAX_DEPTH)
        if depth and is_run(Path(here)):
            found.append(Path(here))
    return sorted(found, key=changed, reverse=True)


def changed(folder: Path) -> float:
    """When the run last wrote anything the page shows (seconds since the epoch)."""
    times = []
    paths = RunPaths(folder)
    for p in (folder, paths.metrics, paths.config, paths.checkpoint().with_suffix(".json")):
        try:
            times.append(p.stat().st_mtime)
        except OSError:   # not written yet, or the run was deleted meanwhile
            pass
    return max(times, default=0.0)


def _metric_cells(folder: Path) -> tuple[list[str], list[list[str]]]:
    """metrics.csv as (columns, rows of cells as text)."""
    try:
        with open(RunPaths(folder).metrics, newline="") as f:
            reader = csv.reader(f)
            columns = next(reader, [])
            return columns, [row for row in reader if len(row) == len(columns)]
    except OSError:
        return [], []


def read_metrics(folder: Path) -> tuple[list[str], list[list[float | None]]]:
    """metrics.csv as (columns, rows); an empty cell (a score not measured at that step)
    and a non-finite number are None (JSON has no NaN)."""
    columns, cells = _metric_cells(folder)
    return columns, [[parse_number(v) for v in row] for row in cells]


def _diverged(cells: list[list[str]]) -> bool:
    """The last metrics row holds NaN or inf: training stopped there (trainer.Diverged)."""
    return bool(cells) and any(v.strip().lower() in ("nan", "inf", "-inf") for v in cells[-1])


def grids(folder: Path, prefix: str = RunPaths.GRID_PREFIX) -> list[tuple[int, str]]:
    """(step, file name) of the sample grids (or reconstructions), by step."""
    found = []
    for p in RunPaths(folder).samples.glob(f"{prefix}*.png"):
        digits = p.stem[len(prefix):]
        if digits.isdigit():
            found.append((int(digits), p.name))
    return sorted(found)


def _config(folder: Path) -> tuple[str, dict[str, Any]]:
    """config.toml as (its text, its tables); ("", {}) when missing or unreadable."""
    try:
        text = RunPaths(folder).config.read_text()
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "", {}


def checkpoint_meta(folder: Path) -> dict[str, Any] | None:
    """The last checkpoint's metadata without the optimizer skeleton (long, and only for
    --resume), or None."""
    path = checkpoint.last_in(folder)
    if not path.is_file():
        return None
    try:
        meta = checkpoint.read_meta(path)
    except GankitError:
        return None
    # JSON has no inf: a run's best_fid is inf until its first evaluation
    return finite({k: v for k, v in meta.items() if k != "optim"})


def evaluation(folder: Path) -> dict[str, Any] | None:
    """The run's latest `gankit eval --checkpoint` (RUN/eval.json), or None."""
    try:
        saved = json.loads(RunPaths(folder).evaluation.read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


@dataclass
class _Look:
    """One reading of a run folder's files, from which the page's views are derived (the
    live stream asks for them every time the run writes)."""
    config_text: str
    tables: dict[str, Any]
    meta: dict[str, Any] | None
    columns: list[str]
    rows: list[list[float | None]]
    diverged: bool
    grids: list[tuple[int, str]]
    evaluation: dict[str, Any] | None

    @classmethod
    def of(cls, folder: Path) -> "_Look":
        text, tables = _config(folder)
        columns, cells = _metric_cells(folder)
        rows = [[parse_number(v) for v in row] for row in cells]
        return cls(text, tables, checkpoint_meta(folder), columns, rows, _diverged(cells),
                   grids(folder), evaluation(folder))

    def fid(self) -> tuple[float | None, str]:
        """The newest FID (by training step) and where it comes from: the last `--eval-every`
        score in metrics.csv, or the latest `gankit eval` of a checkpoint (RUN/eval.json),
        which wins a tie (it was asked for, and may use more samples)."""
        found = []
        if "fid" in self.columns:
            i, s = self.columns.index("fid"), self.columns.index("step")
            row = next((r for r in reversed(self.rows) if r[i] is not None), None)
            if row is not None:
                found.append((row[s] or 0, 0, row[i], f"--eval-every at step {row[s]:.0f}"))
        saved = self.evaluation
        if saved and isinstance(saved.get("fid"), (int, float)):
            seen = "; NOT HELD OUT" if saved.get("held_out") is False else ""
            found.append((saved.get("step") or 0, 1, saved["fid"],
                          f"gankit eval of {saved.get('checkpoint')} (step {saved.get('step')}): "
                          f"{saved.get('n_fake')} samples, {saved.get('extractor')}{seen}"))
        if not found:
            return None, ""
        _, _, fid, where = max(found, key=lambda f: f[:2])
        return fid, where


def summary(root: Path, folder: Path, look: _Look | None = None) -> dict[str, Any]:
    """One line of the runs table."""
    look = look or _Look.of(folder)
    tables, meta, columns, rows = look.tables, look.meta, look.columns, look.rows
    last = dict(zip(columns, rows[-1])) if rows else {}
    steps = tables.get("train", {}).get("steps")
    step = max(int(last.get("step") or 0), int((meta or {}).get("step") or 0))
    fid, fid_from = look.fid()
    holder = run_folder.holder(folder)
    if holder is not None:
        state = "training"
    elif look.diverged:
        state = "diverged"
    elif meta is not None and steps is not None and meta.get("step", 0) >= steps:
        state = "finished"
    else:
        state = "interrupted"
    rel = folder.relative_to(root.resolve()).as_posix()
    return {"id": rel, "model": tables.get("model", {}).get("name") or (meta or {}).get("model"),
            "data": tables.get("data", {}).get("data"), "step": step, "steps": steps,
            "state": state, "fid": fid, "fid_from": fid_from, "changed": changed(folder),
            "thumbnail": f"{rel}/samples/{look.grids[-1][1]}" if look.grids else None,
            "holder": holder, "checkpoint": meta is not None}


def detail(root: Path, folder: Path) -> dict[str, Any]:
    """Everything the run's page shows but the images themselves."""
    look = _Look.of(folder)
    rel = folder.relative_to(root.resolve()).as_posix()
    loss = look.tables.get("model", {}).get("loss")
    uses = _uses(look.meta)
    return {**summary(root, folder, look), "columns": look.columns, "rows": look.rows,
            "config": look.config_text,
            # d_real and d_fake are probabilities (a BCE D's sigmoid), else raw scores
            "bce": loss == "bce" or (loss is None and "d_real" in look.columns),
            "meta": look.meta,
            "evaluation": _evaluation_table(look.evaluation),
            "grids": [{"step": s, "url": f"{rel}/samples/{name}"} for s, name in look.grids],
            "recons": [{"step": s, "url": f"{rel}/samples/{name}"}
                       for s, name in grids(folder, RunPaths.RECON_PREFIX)],
            "uses": uses, "folder": str(folder),
            "report": report(root, folder) if uses["report"] else None}


def _evaluation_table(saved: dict[str, Any] | None) -> str | None:
    """The latest `gankit eval` of the run as the command printed it."""
    try:
        return format_table(saved, f"{saved['checkpoint']} at step {saved['step']} "
                                   f"(evaluated {saved['when']})") if saved else None
    except (KeyError, TypeError, ValueError):   # written by another version, or edited
        return None


def report(root: Path, folder: Path) -> dict[str, Any] | None:
    """RUN/report.json (`gankit synth` judged the rows it wrote against the table) as the
    Report tab shows it: the scores, privacy and efficacy, the worst columns and pairs;
    not the marginals, which the pictures (drawn by the server from the same file) show.
    None without the file (or when it leads out of root); {"error"} for one this version
    cannot read."""
    from ..synth_report import worst
    path = RunPaths(folder).report
    if not path.resolve().is_relative_to(root.resolve()):
        return None
    try:
        version = path.stat().st_mtime_ns
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return {"error": f"report.json cannot be read: {e}"}
    try:
        columns, pairs = worst(saved, WORST)
        return finite({
            "quality": dict(saved["quality"]), "rows": dict(saved["rows"]),
            "left_out": [str(c) for c in saved.get("left_out") or []], "seed": saved.get("seed"),
            "privacy": dict(saved["privacy"]), "efficacy": saved.get("efficacy"),
            "columns": len(saved["column_shapes"]), "pairs": len(saved["column_pair_trends"]),
            "worst_columns": [{k: c.get(k) for k in ("column", "kind", "metric", "score", "missing")}
                              for c in columns],
            "worst_pairs": [{k: p.get(k) for k in ("columns", "metric", "score", "real",
                                                   "synthetic", "associated")} for p in pairs],
            "version": version, "page": RunPaths(folder).report_page.is_file()})
    except (KeyError, TypeError, ValueError, AttributeError):
        return {"error": "report.json is not a report this version of gankit reads (written "
                         "by another version, or edited)"}


def _uses(meta: dict[str, Any] | None) -> dict[str, Any]:
    """What the page may offer for this run: from the model's declared abilities."""
    if meta is None:
        return {"generate": False, "inpaint": False, "classify": False, "evaluate": False,
                "classes": [], "ema": False, "sampling": [], "report": False}
    from ..models import get_model_class
    try:
        cls = get_model_class(meta.get("model"))
    except GankitError:
        return _uses(None)
    if getattr(cls, "generates_rows", False):   # a table generator: gankit synth's report
        return {**_uses(None), "report": True}
    if cls.data_kind != "image":   # an imputer: the page shows how it trained, no more
        return _uses(None)
    ema = bool(meta.get("config", {}).get("train", {}).get("ema"))
    classes = list(meta.get("class_names") or [])
    return {"generate": True, "inpaint": True, "evaluate": True, "ema": ema,
            "conditional": cls.conditional, "classes": classes,
            "classify": bool(cls.conditional and cls.has_likelihood), "report": False,
            "image_shape": meta.get("image_shape"), "sampling": _sampling(cls, meta)}


def _sampling(cls, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's sampling settings, each with its trained value, help and choices, and
    whether it concerns only the likelihood (classification), not the samples."""
    from ..models import sampling_fields
    trained = meta.get("config", {}).get("model", {})
    return [{"name": name, "value": trained.get(name, f.default), "type": tp.__name__,
             "help": f.metadata.get("help", ""), "choices": f.metadata.get("choices"),
             "likelihood_only": bool(f.metadata.get("likelihood_only"))}
            for name, (f, tp) in sampling_fields().items() if name in cls.sampling_settings]
