"""gankit.api resolves settings into a RunConfig in one place: which model, which run
folder, which tables."""

import pytest

import gankit
from gankit.api import config_from_tables, model_for, run_spec
from gankit.errors import GankitError
from gankit.models import DEFAULT

from helpers import tiny_run


def test_the_run_folder_defaults_to_runs_model():
    assert gankit.make_config().train.out == f"runs/{DEFAULT}"
    assert gankit.make_config("dcgan").train.out == "runs/dcgan"
    assert gankit.make_config("dcgan", out="elsewhere").train.out == "elsewhere"


def test_which_model_a_training_call_means(tmp_path, monkeypatch):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[model]\nname = "vae"\n')
    assert model_for() == DEFAULT
    assert model_for(config_file=str(cfg)) == "vae"
    assert model_for("cgan", config_file=str(cfg)) == "cgan"        # the flag wins
    # On --resume the saved run's model wins over the config file's; without --out the
    # run folder is the default one of the model named so far.
    run = tmp_path / "runs" / "vae"
    gankit.train(out=str(run), **tiny_run(model="ae", offline=True, steps=1, batch_size=2,
                                          width=4))
    assert model_for(config_file=str(cfg), resume=True, out=str(run)) == "ae"
    monkeypatch.chdir(tmp_path)
    assert model_for(config_file=str(cfg), resume=True) == "ae"
    assert model_for(resume=True) == DEFAULT                           # runs/gan: no run


def test_tables_are_checked_by_name():
    with pytest.raises(GankitError, match="unknown table or key extra"):
        config_from_tables({"extra": {}})
    with pytest.raises(GankitError, match=r"data in x must be a table: write \[data\]"):
        config_from_tables({"data": 3}, where="x")
    assert config_from_tables({}).model == DEFAULT


def test_incomplete_checkpoint_metadata_is_one_line():
    with pytest.raises(GankitError, match="checkpoint c has incomplete metadata"):
        run_spec({"config": {"model": {"name": "gan"}}}, "c")   # no image_shape


def test_a_saved_config_from_before_a_new_field_keeps_the_old_behaviour():
    """Runs saved before the code density existed lack `density`: an AE then kept one
    Gaussian, a VAE sampled its prior; a new config gets the model's current default."""
    from gankit.models import MODELS
    old = {"model": {"name": "ae"}, "train": {"steps": 30000}}
    assert config_from_tables(old, saved=True).model_cfg.density == 1
    assert config_from_tables({"model": {"name": "vae"}}, saved=True).model_cfg.density == 0
    assert config_from_tables({"model": {"name": "ae"}}).model_cfg.density == MODELS["ae"].Config().density
    # and a saved [train] table is complete: the model's training defaults do not apply
    assert config_from_tables(old, saved=True).train.ema == 0.0


def test_python_errors_name_keywords_and_the_cli_names_flags(tmp_path, capsys):
    """The same mistake told in the caller's words: `resume=True` and `out=` to a Python
    caller, `--resume` and `--out` on the command line."""
    from gankit.cli import main

    fast = tiny_run(steps=1, batch_size=8, sample_every=10**6)
    gankit.train(out=tmp_path / "run", **fast)
    with pytest.raises(GankitError) as e:
        gankit.train(out=tmp_path / "run", **fast)
    assert "pass resume=True to continue it, or out=NEW_FOLDER" in str(e.value)
    assert "--" not in str(e.value)
    with pytest.raises(GankitError) as e:
        gankit.train(out=tmp_path / "run", resume=True, lr_d=1e-3, progress=False)
    assert "lr_d=0.001 differs" in str(e.value) and "only device, keep, steps" in str(e.value)
    with pytest.raises(GankitError, match=r"e\.g\. ema=0\.999"):
        gankit.make_config(ema=2.0)
    assert main(["train", "--out", str(tmp_path / "run"), "--steps", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "pass --resume to continue it, or --out NEW_FOLDER" in err
    assert main(["train", "--ema", "2", "--quiet"]) == 1
    assert "e.g. --ema 0.999" in capsys.readouterr().err
