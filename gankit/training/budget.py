"""Budgets in minutes (`--budget 5m`): a step count from a short timing at the start.

People think in minutes, and the same minutes buy ten times the steps on a GPU that they
buy on two CPU cores. A run given a budget times its first steps (real training steps,
not thrown away), turns the budget into a step count, and records that count in
config.toml and its checkpoints: from there on it is a run of N steps like any other, so
it is reproducible (`--steps N`) and `--resume` finishes the same N.

The count covers the training steps; sample grids, checkpoints and --eval-every add their
own time on top (a few percent at the defaults).
"""

from __future__ import annotations

import time

from ..config import parse_budget  # noqa: F401  (the budget's text: a config field's)

WARMUP = 5             # steps not timed: the first allocate memory (or record a CUDA graph)
TIMED_SHARE = 0.02     # the timing lasts this share of the budget ...
TIMED_MIN_S = 1.0      # ... and at least this long
TIMED_MIN_STEPS = 10   # ... and this many steps
ROUND_TO = 10          # a count ends in 0: easier to read, as exact


class BudgetClock:
    """Fed the duration of each training step; once it has timed enough of them, `steps`
    holds the count that fits the budget (None until then)."""

    def __init__(self, budget: str, done: int = 0):
        self.seconds = parse_budget(budget)
        self.done = done   # steps run before (a resumed run's): they count, untimed
        self.seen, self.timed, self.elapsed = 0, 0, 0.0
        self.steps: int | None = None

    def add(self, seconds: float) -> int | None:
        """One more step took `seconds`; returns the step count once it is known."""
        self.seen += 1
        if self.seen > WARMUP:
            self.timed += 1
            self.elapsed += seconds
            if (self.timed >= TIMED_MIN_STEPS
                    and self.elapsed >= max(TIMED_MIN_S, TIMED_SHARE * self.seconds)):
                self.steps = self.count(self.elapsed / self.timed)
        return self.steps

    def count(self, step_seconds: float) -> int:
        """The steps `self.seconds` holds at `step_seconds` a step (at least those run)."""
        fits = int(round(self.seconds / step_seconds, 6)) // ROUND_TO * ROUND_TO
        return max(fits, self.done + self.seen)

    def step_ms(self) -> float:
        return 1e3 * self.elapsed / max(1, self.timed)

    @staticmethod
    def now() -> float:
        return time.perf_counter()
