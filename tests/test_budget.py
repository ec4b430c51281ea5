"""--budget TIME: parsing, the step count it becomes (from step durations fed in, not
timed here), its record in config.toml, resume, and its clash with --steps."""

import tomllib

import pytest

import gankit
from gankit.api import make_config
from gankit.training.budget import ROUND_TO, WARMUP, BudgetClock, parse_budget
from gankit.errors import GankitError

from helpers import gankit_cli, tiny_flags, tiny_run


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("5m", 300), ("1.5h", 5400),
                                           ("120", 120), (" 2M ", 120)])
def test_budgets_read_as_seconds(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["0", "0m", "5x", "-1m", "", "m", "1e9999", "five minutes"])
def test_bad_budgets_are_refused_in_one_line(text):
    with pytest.raises(GankitError, match="is not a time") as e:
        parse_budget(text)
    assert "\n" not in str(e.value)


def test_the_count_fits_the_budget_at_the_timed_pace_after_a_warm_up():
    clock = BudgetClock("60s")
    for _ in range(WARMUP):
        assert clock.add(100.0) is None          # slow first steps are not counted
    results = [clock.add(0.05) for _ in range(30)]
    settled = next(i for i, r in enumerate(results) if r is not None)
    # 2% of 60 s is 1.2 s: 24 steps of 50 ms
    assert settled == 23
    assert results[settled] == 1200 and results[settled] % ROUND_TO == 0


def test_the_count_is_never_below_the_steps_already_run():
    clock = BudgetClock("1s", done=500)
    for _ in range(WARMUP + 20):
        steps = clock.add(0.2)
    assert steps == 500 + WARMUP + 20


def test_a_model_default_budget_gives_way_to_steps_and_both_given_is_refused(monkeypatch):
    from gankit.models import MODELS
    monkeypatch.setattr(MODELS["dcgan"], "train_defaults", {"budget": "5m", "batch_size": 64})
    assert make_config("dcgan").train.steps is None
    assert make_config("dcgan").train.budget == "5m"
    given = make_config("dcgan", steps=100).train
    assert (given.steps, given.budget) == (100, None)
    assert make_config("dcgan", budget="2m").train.budget == "2m"
    with pytest.raises(GankitError, match="keep one"):
        make_config("dcgan", steps=100, budget="2m")


@pytest.mark.slow
def test_cli_refuses_steps_with_budget_in_one_line(tmp_path):
    out = tmp_path / "run"
    r = gankit_cli("train", "--budget", "1m", "--out", out, *tiny_flags(steps=10))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "--steps" in r.stderr and "--budget" in r.stderr and not out.exists()
    r = gankit_cli("train", "--budget", "5x", "--out", out, *tiny_flags())
    assert r.returncode != 0 and "not a time" in r.stderr and not out.exists()


@pytest.mark.slow
def test_a_budget_run_records_its_count_and_resumes_as_a_run_of_that_many_steps(tmp_path):
    out = tmp_path / "run"
    fast = tiny_run(offline=True, out=str(out))
    run = gankit.train(model="gan", budget="2s", **fast)
    saved = tomllib.loads((out / "config.toml").read_text())["train"]
    assert saved["budget"] == "2s" and saved["steps"] == run.step == run.config.train.steps
    assert run.step >= WARMUP + 10
    assert gankit.load(out).run_config.train.steps == run.step   # the checkpoint's too
    again = gankit.train(resume=True, **fast)                     # nothing left to do
    assert again.step == run.step
    more = gankit.train(resume=True, steps=run.step + 10, **fast)  # --steps still extends
    assert more.step == run.step + 10
