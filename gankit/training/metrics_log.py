"""metrics.csv, TensorBoard events and loss.png: one row per logging interval."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import torch

from ..files import atomic_write
from ..images import plot_curves, save_image
from .run_folder import RunPaths


class MetricsLog:
    """`names` are averaged over each logging interval; `extra` columns (evaluation scores)
    hold a value only in the rows of the steps where one was noted."""

    def __init__(self, paths: RunPaths, names: tuple[str, ...], resume_step: int = 0,
                 extra: tuple[str, ...] = ()):
        self.paths = paths
        self.path = paths.metrics
        self.names = list(names)
        self.extra = list(extra)
        self.columns = ["step", *self.names, *self.extra, "seconds"]
        self.pending: list[dict[str, torch.Tensor]] = []
        self.noted: dict[str, float] = {}
        self.rows: list[dict[str, float]] = self._read_kept(resume_step)
        self.start = time.perf_counter() - (self.rows[-1]["seconds"] if self.rows else 0.0)
        self._rewrite()
        self.tb = _tensorboard_writer(paths.tensorboard)

    def _read_kept(self, resume_step: int) -> list[dict[str, float]]:
        """Rows a resumed run keeps: those up to its checkpoint (a killed run may have more)."""
        if resume_step == 0 or not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            rows = [{k: float(v) for k, v in row.items() if k in self.columns and v != ""}
                    for row in csv.DictReader(f)]
        return [r for r in rows if r.get("step", 0) <= resume_step]

    def _rewrite(self) -> None:
        with atomic_write(self.path, "w") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows({**r, "step": int(r["step"])} for r in self.rows)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, self.columns)

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        self.pending.append(metrics)

    def note(self, values: dict[str, float]) -> None:
        """Values for the extra columns, written with the next row."""
        self.noted.update(values)

    def flush(self, step: int) -> None:
        """Average the steps since the last flush (the only host sync of the loop)."""
        if not self.pending:
            return
        stacked = torch.stack([torch.stack([m[k] for k in self.names]) for m in self.pending])
        means = stacked.float().mean(0).tolist()
        self.pending.clear()
        row = {"step": step, **dict(zip(self.names, means)), **self.noted,
               "seconds": round(time.perf_counter() - self.start, 3)}
        self.noted = {}
        self.rows.append(row)
        self._writer.writerow(row)
        self._file.flush()
        if self.tb is not None:
            for k in self.names + self.extra:
                if k in row:
                    self.tb.add_scalar(k, row[k], step)

    def postfix(self) -> dict[str, str]:
        if not self.rows:
            return {}
        shown = {k: f"{self.rows[-1][k]:.3f}" for k in self.names}
        for k in self.extra:   # the latest evaluation, however many rows ago
            last = next((r[k] for r in reversed(self.rows) if k in r), None)
            if last is not None:
                shown[k] = f"{last:.3g}"
        return shown

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()
        if self.rows:
            steps = [int(r["step"]) for r in self.rows]
            plot = plot_curves(steps, {k: [r.get(k, math.nan) for r in self.rows]
                                       for k in self.names + self.extra
                                       if any(k in r for r in self.rows)})
            save_image(plot, self.paths.loss_plot)


# The guide's classic failure: a discriminator that wins outright gives G almost no gradient.
# Every GAN's D wins at first; a healthy one then settles well short of always right, and
# one that stays above this is winning (measured: docs/guide/training.md, "A discriminator
# that keeps winning").
D_WINS_ACC = 0.93      # D's accuracy at least this high...
D_WINS_STEPS = 1000    # ...for this many steps, not counting the first this many


def d_wins(rows: list[dict[str, float]], log_every: int) -> float | None:
    """D's mean accuracy over the latest rows (a `d_acc` column) in which it stayed at
    D_WINS_ACC or above, when they span D_WINS_STEPS after the first D_WINS_STEPS; else None."""
    streak = []
    for row in reversed(rows):
        if row.get("d_acc", 0.0) < D_WINS_ACC or row["step"] <= D_WINS_STEPS:
            break
        streak.append(row)
    if not streak or streak[0]["step"] - streak[-1]["step"] + log_every < D_WINS_STEPS:
        return None
    return sum(r["d_acc"] for r in streak) / len(streak)


def _tensorboard_writer(folder: Path):
    """TensorBoard events when the optional `tensorboard` package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))
