"""metrics.csv, TensorBoard events and loss.png: one row per logging interval."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import torch

from .images import plot_curves, save_image


class MetricsLog:
    def __init__(self, out: Path, names: tuple[str, ...], resume_step: int = 0):
        self.path = out / "metrics.csv"
        self.names = list(names)
        self.columns = ["step", *self.names, "seconds"]
        self.pending: list[dict[str, torch.Tensor]] = []
        self.rows: list[dict[str, float]] = self._read_kept(resume_step)
        self.start = time.perf_counter() - (self.rows[-1]["seconds"] if self.rows else 0.0)
        self._rewrite()
        self.tb = _tensorboard_writer(out)

    def _read_kept(self, resume_step: int) -> list[dict[str, float]]:
        """Rows a resumed run keeps: those up to its checkpoint (a killed run may have more)."""
        if resume_step == 0 or not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            rows = [{k: float(v) for k, v in row.items() if k in self.columns and v != ""}
                    for row in csv.DictReader(f)]
        return [r for r in rows if r.get("step", 0) <= resume_step]

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows({**r, "step": int(r["step"])} for r in self.rows)
        tmp.replace(self.path)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, self.columns)

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        self.pending.append(metrics)

    def flush(self, step: int) -> None:
        """Average the steps since the last flush (the only host sync of the loop)."""
        if not self.pending:
            return
        stacked = torch.stack([torch.stack([m[k] for k in self.names]) for m in self.pending])
        means = stacked.float().mean(0).tolist()
        self.pending.clear()
        row = {"step": step, **dict(zip(self.names, means)),
               "seconds": round(time.perf_counter() - self.start, 3)}
        self.rows.append(row)
        self._writer.writerow(row)
        self._file.flush()
        if self.tb is not None:
            for k in self.names:
                self.tb.add_scalar(k, row[k], step)

    def postfix(self) -> dict[str, str]:
        return {k: f"{self.rows[-1][k]:.3f}" for k in self.names} if self.rows else {}

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()
        if self.rows:
            steps = [int(r["step"]) for r in self.rows]
            plot = plot_curves(steps, {k: [r[k] for r in self.rows] for k in self.names})
            save_image(plot, self.path.with_name("loss.png"))


def _tensorboard_writer(out: Path):
    """TensorBoard events when the optional `tensorboard` package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))
