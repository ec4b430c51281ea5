"""THE training loop: one for every model.

batches (drawn by index from the resident uint8 tensor) -> model.training_step -> metrics
-> scheduled hooks (sample grids, checkpoints) ; resume ; Ctrl-C. Nothing here knows which
model it is training: a model contributes its step, the loop does the rest.

Under torchrun every process runs this same loop on its own batches and noise, and
gankit/training/distributed.py keeps their weights identical; rank 0 alone writes the run folder.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..config import RunConfig
from ..errors import GankitError, option
from ..images import grid, save_image
from ..models import GenerativeModel
from . import checkpoint, distributed
from .budget import BudgetClock
from .cpu import LoadWatch
from .ema import EMA, averaged
from .metrics_log import D_WINS_STEPS, MetricsLog, d_wins
from .run_folder import RunFolder
from .setup import prepare, save_config, with_train
from .step_trace import step_hashes

# Steps between refits of a fitted prior for the sample grids (see Trainer.fit_prior).
REFIT_EVERY = 1000


@dataclass
class Run:
    """What `gankit.train` returns: the trained model and where its files are."""
    out: Path
    model: GenerativeModel
    config: RunConfig
    step: int
    metrics: list[dict[str, float]] = field(default_factory=list)
    interrupted: int | None = None   # the signal number that stopped the run, if any
    ema: EMA | None = None            # the averaged sampling weights, with --ema
    rank: int = 0                     # under torchrun: this process's rank (0 writes files)
    world_size: int = 1               # and how many processes trained together

    def sample(self, n: int, seed: int | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with averaged(self.model, self.ema):
            return self.model.sample(n, generator=gen, labels=labels)


# --- divergence ------------------------------------------------------------------------

class Diverged(GankitError):
    def __init__(self, step: int, what: str, out: Path, last_good: int | None):
        kept = (f"the last good checkpoint (step {last_good}) is kept in {out}/checkpoints"
                if last_good is not None else "no checkpoint had been saved yet")
        super().__init__(f"training diverged at step {step}: {what}, usually a learning rate "
                         f"too high for this model; {kept}: start a new run with a lower "
                         f"{option('lr_g')}/{option('lr_d')} ({option('resume', True)} would "
                         "repeat the same steps)")


def nonfinite_weights(model: GenerativeModel) -> list[str]:
    """Names of weights holding NaN or inf (a host sync per tensor: checkpoint time only)."""
    return [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]


class StopSignals:
    """First SIGINT/SIGTERM asks the loop to stop after this step and save; a second exits.

    Under torchrun a second signal does not exit: torchrun itself SIGKILLs a process that
    has not ended 30 s (its --shutdown-timeout) after the signal it sent, and older
    torchruns leave Ctrl-C to reach the processes twice (from the terminal and from them).
    """

    def __init__(self, exit_on_second: bool = True):
        self.signum: int | None = None
        self.exit_on_second = exit_on_second
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and self.exit_on_second:   # leave now; writes are atomic
            os._exit(128 + signum)
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# --- the loop ----------------------------------------------------------------------------

def train(cfg: RunConfig, resume: bool = False, progress: bool = True, data=None) -> Run:
    """Train; under torchrun, as one of its processes (see gankit/training/distributed.py).

    `data`: a dataset already in memory (the imputers' arrays) instead of cfg.data's."""
    job = distributed.from_env()
    folder, threads = None, torch.get_num_threads()   # the caller's, given back at the end
    try:
        with warnings.catch_warnings():
            if not job.main:   # the same warnings would come once per process
                warnings.simplefilter("ignore")
            folder = RunFolder(cfg.train.out, resume) if job.main else None
            return Trainer(cfg, resume, progress and job.main, job, folder, data).fit()
    except RuntimeError as e:
        # torch.distributed's errors (DistError and gloo's plain RuntimeErrors) when another
        # process died or went silent; anything else is a bug and keeps its traceback.
        if job.parallel and distributed.is_collective_error(e):
            raise distributed.lost_contact(e) from None
        raise
    finally:
        if folder is not None:
            folder.release()
        job.leave()
        torch.set_num_threads(threads)


class Trainer:
    """One run of the loop: `setup.prepare` makes the run ready (`self.p`), then `fit()`:

        while steps remain: train_step() -> run_hooks(): every N steps evaluate(),
        log_metrics(), save_samples(), save_checkpoint() -> at the end (or on Ctrl-C),
        whichever of them did not just run.

    Under torchrun every process runs it; only the main process (rank 0) writes files.
    """

    def __init__(self, cfg: RunConfig, resume: bool, progress: bool, job: distributed.Solo,
                 folder: RunFolder | None, data=None):
        self.job, self.progress = job, progress
        self.p = p = prepare(cfg, resume, job, folder, data, progress, self.say)
        tc = p.cfg.train
        self.load_watch = (LoadWatch(tc.threads) if p.device.type == "cpu"
                           and job.world_size == 1 else None)
        self.log = (MetricsLog(p.paths, p.model.metric_names, resume_step=p.step,
                               extra=("fid", "class_entropy") if tc.eval_every else ())
                    if job.main else None)
        self.bar = tqdm(total=tc.steps, initial=p.step, desc=f"{p.cfg.model} {p.data.name}",
                        unit="it", disable=not progress, dynamic_ncols=True, mininterval=0.5)
        # The one scheduled place for everything that happens "every N steps". Evaluation
        # first, so that its scores go into this step's row and checkpoint. Functions of
        # the class, not bound methods: bound ones would tie the trainer into a reference
        # cycle, which outlives train() until the garbage collector runs, perhaps at exit,
        # after torch.distributed has shut down, where freeing it aborted the process.
        self.hooks: list[tuple[int, Callable[[Trainer], None]]] = [
            *([(tc.eval_every, Trainer.evaluate)] if tc.eval_every else []),
            (tc.log_every, Trainer.log_metrics),
            *([(tc.sample_every, Trainer.save_samples)] if p.grid is not None else []),
            (tc.checkpoint_every, Trainer.save_checkpoint)]
        self.notes_said: set[str] = set()   # one-time notes (D winning, an eager step)
        self.ranks_rng: dict[str, torch.Tensor] = {}   # the other processes' RNG states
        self.interrupted: int | None = None

    def say(self, note: str) -> None:
        """A one-line note on stderr when the run shows progress; tqdm.write keeps the bar
        (if one is drawn yet) below it."""
        if self.progress:
            tqdm.write(f"gankit: {note}", file=sys.stderr)

    # --- the loop ----------------------------------------------------------------------

    def fit(self) -> Run:
        p, job = self.p, self.job
        samples = p.data.samples.to(p.device)   # images (uint8) or table rows
        labels = p.data.labels.to(p.device) if p.data.labels is not None else None
        n_real = p.model.real_batch_size(p.cfg.train.batch_size)
        weights = p.model.row_weights(p.data.samples)
        weights = weights.to(p.device) if weights is not None else None
        hashes = step_hashes(job.rank)   # a debugging aid; off unless asked for
        clock = BudgetClock(p.cfg.train.budget, p.step) if p.cfg.train.steps is None else None
        try:
            with StopSignals(exit_on_second=not job.parallel) as stop:
                while ((clock is not None or p.step < p.cfg.train.steps)
                       and job.agree_to_stop(stop.signum) is None):
                    idx = (torch.randint(len(samples), (n_real,), device=p.device,
                                         generator=p.batch_gen) if weights is None else
                           torch.multinomial(weights, n_real, True, generator=p.batch_gen))
                    start = self._now() if clock is not None else 0.0
                    self.train_step(p.data.prepare(samples[idx]),
                                    labels[idx] if labels is not None else None)
                    if clock is not None:
                        # rank 0's clock decides, at the same step in every process
                        steps = job.agree_on(clock.add(self._now() - start) or 0)
                        if steps:
                            self._set_length(steps, clock)
                            clock = None
                    if hashes is not None:
                        hashes.write(p.step, p.model, idx)
                    self.run_hooks(lambda every: p.step % every == 0)
                self.interrupted = job.agree_to_stop(stop.signum) or stop.signum
                # The end, or a stop request: whatever was not just written, write now.
                self.run_hooks(lambda every: p.step % every != 0)
        finally:   # also on divergence: metrics.csv and loss.png show how it went
            self.bar.close()
            if self.log is not None:
                self.log.close()
        return Run(out=p.paths.root, model=p.model, config=p.cfg, step=p.step,
                   metrics=self.log.rows if self.log else [], interrupted=self.interrupted,
                   ema=p.ema, rank=job.rank, world_size=job.world_size)

    def _now(self) -> float:
        """The time once the device has finished the work queued so far."""
        if self.p.device.type == "cuda":
            torch.cuda.synchronize(self.p.device)
        return BudgetClock.now()

    def _set_length(self, steps: int, clock: BudgetClock) -> None:
        """The budget became `steps`: the run is now one of that many steps, in config.toml
        too (its checkpoints record it with the rest of the config)."""
        p = self.p
        p.cfg = with_train(p.cfg, steps=steps)
        if self.job.main:
            save_config(p, self.job)
        self.bar.total = steps
        self.bar.refresh()
        self.say(f"{option('budget', p.cfg.train.budget)}: {steps:,} steps "
                 f"({clock.step_ms():.1f} ms a step over the first {clock.seen}; recorded in "
                 f"{p.paths.config})")

    def _once(self, key: str, note: str) -> None:
        if key not in self.notes_said:
            self.notes_said.add(key)
            self.say(note)

    def train_step(self, real: torch.Tensor, labels: torch.Tensor | None) -> None:
        p = self.p
        metrics = p.step_fn(real, labels)
        note = getattr(p.step_fn, "note", None)
        if note:
            self._once("eager", f"this model's step runs eagerly, without a CUDA graph: {note}")
        self.job.sync_buffers(p.model)   # BatchNorm statistics and the like: rank 0's
        p.step += 1
        if p.ema is not None:
            p.ema.update(p.model.sampler, p.step)
        if self.log is not None:
            self.log.add(metrics)
        self.bar.update(1)

    def run_hooks(self, due: Callable[[int], bool]) -> None:
        """The hooks whose interval `due` accepts; rank 0 runs them while the others wait."""
        hooks = [hook for every, hook in self.hooks if due(every)]
        if not hooks:
            return
        self.ranks_rng.update(self.job.rng_states(self.p.batch_gen))
        if self.job.main:
            if Trainer.evaluate in hooks or Trainer.save_checkpoint in hooks:
                self.fit_prior(force=True)
            elif Trainer.save_samples in hooks:
                self.fit_prior(force=False)
            for hook in hooks:
                hook(self)
        self.job.wait_for_main()

    # --- the hooks (rank 0) ------------------------------------------------------------

    def fit_prior(self, force: bool) -> None:
        """Refit a model's fitted prior (an autoencoder's code density) before it is sampled
        or saved: always before evaluations and checkpoints, before grids only when the fit
        is REFIT_EVERY steps old, since a fit costs about as much as a hundred steps. It
        draws no random numbers from the run's streams, so training is the same with it."""
        p = self.p
        last = p.model.prior_step()
        if last is None or last == p.step:
            return
        if force or last < 0 or p.step - last >= REFIT_EVERY:
            p.model.fit_prior(p.data.images, p.data.labels, p.step)

    def log_metrics(self) -> None:
        p = self.p
        self.log.flush(p.step)
        self.bar.set_postfix(self.log.postfix(), refresh=False)
        note = self.load_watch.check() if self.load_watch else None
        if note:
            self.say(note)
        won = None if "d_wins" in self.notes_said else d_wins(self.log.rows, p.cfg.train.log_every)
        fix = p.model.d_wins_fix() if won else None
        if fix:
            self._once("d_wins", f"D has been right about {won:.0%} of real and fake images "
                       f"for over {D_WINS_STEPS:,} steps: it is winning, and G learns little "
                       f"from a D that always wins (the guide's warning); try {fix}")
        bad = [k for k in p.model.metric_names if not math.isfinite(self.log.rows[-1][k])]
        if bad:
            raise Diverged(p.step, f"{', '.join(bad)} became NaN or infinite", p.paths.root,
                           p.last_good)

    def save_samples(self) -> None:
        p, g = self.p, self.p.grid
        with averaged(p.model, p.ema):
            fakes = p.model.sample(latents=g.z, labels=g.labels)
        save_image(grid(fakes, nrow=g.nrow), p.paths.grid(p.step))
        if g.real is not None:   # originals above, their reconstructions below
            real, y = g.real
            pair = torch.cat([real, p.model.reconstruct(real, y)])
            save_image(grid(pair, nrow=len(real)), p.paths.recon(p.step))

    def evaluate(self) -> None:
        p = self.p
        with averaged(p.model, p.ema):
            scores = p.evaluator(p.model)
        self.log.note(scores)
        if scores["fid"] < p.best_fid:
            p.best_fid = scores["fid"]
            self.save_checkpoint("best")

    def save_checkpoint(self, name: str = "last") -> None:
        p, s = self.p, self.p.step
        bad = nonfinite_weights(p.model)   # a diverged model must not replace a good one
        if bad:
            raise Diverged(s, f"weights {', '.join(bad[:2])}{' ...' if len(bad) > 2 else ''} "
                           "became NaN or infinite", p.paths.root, p.last_good)
        tensors, skeleton = checkpoint.training_state(p.model, p.batch_gen, p.ema)
        tensors.update(self.ranks_rng)
        meta = {**checkpoint.run_meta(p.cfg, p.model, s, p.data.name, p.parallel),
                **p.data.describe(), "optim": skeleton}
        if p.thread_segments:   # the CPU thread counts it trained on, stretch by stretch
            meta["thread_segments"] = p.thread_segments
        if p.evaluator is not None:   # what the run's fid column means, and its best value
            meta.update(best_fid=p.best_fid, evaluation=p.evaluator.describe())
        path = p.paths.checkpoint(name)
        checkpoint.save(path, tensors, meta)
        if name == "last":
            p.last_good = s
            if p.cfg.train.keep:
                checkpoint.keep_numbered(path, s, p.cfg.train.keep)
