"""Tables: gain and miwae fill missing cells (gankit impute, the scikit-learn interface)."""

import csv
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from helpers import gankit_cli, one_line_error
from gankit.data import table as tables
from gankit.errors import GankitError
from gankit.impute import GAINImputer, MIWAEImputer, fill, impute_csv
from gankit.models import IMPUTERS, build_model


@pytest.fixture(scope="module")
def cancer():
    """Breast Cancer Wisconsin (569 x 30) with 20% of cells missing completely at random."""
    X = load_breast_cancer().data
    missing = np.random.default_rng(0).random(X.shape) < 0.2
    corrupt = X.copy()
    corrupt[missing] = np.nan
    return X, corrupt, missing


def rmse(filled, X, missing, corrupt):
    """The GAIN paper's measure: RMSE over the missing cells after min-max scaling each
    column with its observed values."""
    lo, hi = np.nanmin(corrupt, 0), np.nanmax(corrupt, 0)
    return float(np.sqrt((((filled - X) / (hi - lo))[missing] ** 2).mean()))


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


# --- the models ---------------------------------------------------------------------------

def table_with_holes(seed: int = 0) -> tables.TableData:
    """40 rows of 6 numeric columns, 30% of the cells missing, as gankit reads a table."""
    rng = np.random.default_rng(seed)
    cells = [["" if rng.random() < 0.3 else f"{rng.random():.4f}" for _ in range(6)]
             for _ in range(40)]
    return tables.table_data([f"c{j}" for j in range(6)], cells, "t.csv")


@pytest.mark.parametrize("name", list(IMPUTERS))
def test_imputers_fill_only_missing_cells_and_repeat_with_a_seed(name):
    """Every imputer of the registry, given its data as the trainer would (an imputer of
    table rows, such as a table generator that imputes, gets them encoded)."""
    from gankit.data.row_encoding import encode_table
    torch.manual_seed(0)
    data = table_with_holes()
    x = data.values
    if IMPUTERS[name].data_kind == "rows":
        data = encode_table(data, 0)
    model = build_model(name, IMPUTERS[name].Config(), data.shape, 0, getattr(data, "layout", None))
    model.optimizers = model.configure_optimizers()
    out = model.training_step(data.values, None)
    assert set(out) == set(model.metric_names) and all(torch.isfinite(v) for v in out.values())
    a, b = fill(model, x, seed=3), fill(model, x, seed=3)
    observed = ~torch.isnan(x).numpy()
    assert np.array_equal(a, b) and not np.isnan(a).any()
    assert np.array_equal(a[observed], x.numpy()[observed].astype(np.float64))
    draws = fill(model, x, seed=3, multiple=4)
    assert draws.shape == (4, 40, 6) and np.array_equal(draws[:, observed], np.broadcast_to(a[observed], (4, observed.sum())))
    assert not np.allclose(draws[0][~observed], draws[1][~observed])   # draws differ


@pytest.mark.slow
@pytest.mark.parametrize("cls, steps", [(GAINImputer, 2000), (MIWAEImputer, 1500)])
def test_imputers_beat_the_column_mean_on_breast_cancer(cancer, cls, steps):
    X, corrupt, missing = cancer
    mean = np.where(np.isnan(corrupt), np.nanmean(corrupt, 0), corrupt)
    filled = cls(steps=steps, random_state=0).fit_transform(corrupt)
    assert np.array_equal(filled[~missing], X[~missing])          # observed cells: as given
    assert rmse(filled, X, missing, corrupt) < 0.8 * rmse(mean, X, missing, corrupt)


def test_sklearn_interface_fit_on_train_transform_test(cancer):
    from sklearn.base import clone
    X, corrupt, _ = cancer
    corrupt = np.where(np.isnan(corrupt), -1.0, corrupt)          # missing_values=-1
    imputer = GAINImputer(steps=300, random_state=7, missing_values=-1.0, add_indicator=True)
    assert clone(imputer).get_params() == imputer.get_params()
    with pytest.raises(GankitError, match="not fitted"):
        imputer.transform(corrupt)
    imputer.fit(corrupt[:400])
    a, b = imputer.transform(corrupt[400:]), imputer.transform(corrupt[400:])
    assert a.shape == (169, 60) and np.array_equal(a, b)          # 30 values + 30 indicators
    assert np.array_equal(a[:, 30:], (corrupt[400:] == -1).astype(float))
    assert not (a[:, :30] == -1).any()
    again = GAINImputer(steps=300, random_state=7, missing_values=-1.0).fit(corrupt[:400])
    assert np.array_equal(again.transform(corrupt[400:]), a[:, :30])   # same seed, same cells
    with pytest.raises(GankitError, match="expecting 30 features"):
        imputer.transform(corrupt[:, :5])


def test_an_entirely_missing_feature_is_dropped_with_a_warning():
    X = np.random.default_rng(0).random((50, 4))
    X[:, 2] = np.nan
    X[::3, 0] = np.nan
    with pytest.warns(UserWarning, match=r"\[2\]"):
        out = GAINImputer(steps=50, random_state=0).fit_transform(X)
    assert out.shape == (50, 3) and not np.isnan(out).any()


# --- CSV tables ---------------------------------------------------------------------------

def mixed_table(tmp_path, n=300):
    """A table with a float, an int, a few-valued int and a text column, 20% missing."""
    rng = np.random.default_rng(1)
    size = rng.normal(50, 10, n)
    rows = []
    for i in range(n):
        cells = [f"{size[i]:.2f}", str(int(size[i] * 3) + 7), str([2, 4, 8][i % 3]),
                 "small" if size[i] < 50 else "large"]
        rows.append(["" if rng.random() < 0.2 else c for c in cells])
    rows[0][1], rows[1][2], rows[2][3] = "NA", "NaN", "nan"   # the other spellings of missing
    path = tmp_path / "mixed.csv"
    write(path, ["size", "count", "level", "kind"], rows)
    return path


@pytest.mark.slow
def test_impute_keeps_observed_cells_and_fills_valid_values(tmp_path):
    table = mixed_table(tmp_path)
    header, rows = read(table)
    out = tmp_path / "filled.csv"
    r = gankit_cli("impute", table, "--out", out, "--steps", "300", "--run", tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "filled" in r.stdout and str(out) in r.stdout
    new_header, filled = read(out)
    assert new_header == header and len(filled) == len(rows)
    counts = {int(row[1]) for row in rows if not tables.is_missing(row[1])}
    for before, after in zip(rows, filled):
        for k, cell in enumerate(before):
            if not tables.is_missing(cell):
                assert after[k] == cell                             # byte for byte
        float(after[0])
        assert int(after[1]) == float(after[1]) and min(counts) <= int(after[1]) <= max(counts)
        assert after[2] in ("2", "4", "8") and after[3] in ("small", "large")
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()
    # the kept run fills again without training: the same cells
    again = tmp_path / "again.csv"
    r = gankit_cli("impute", table, "--out", again, "--checkpoint", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.slow
def test_filled_text_follows_the_other_columns(tmp_path):
    """"small" rows have size < 50: a filled kind should agree with the size far more often
    than chance (the model learnt the relation, not only the marginals)."""
    table = mixed_table(tmp_path, n=600)
    header, rows = read(table)
    done = impute_csv(str(table), str(tmp_path / "f.csv"), model="miwae", steps=1500,
                      run=str(tmp_path / "r"), progress=False, impute_samples=200)
    _, filled = read(tmp_path / "f.csv")
    agree = [(float(f[0]) < 50) == (f[3] == "small") for r, f in zip(rows, filled)
             if tables.is_missing(r[3]) and not tables.is_missing(r[0])]
    assert done["model"] == "miwae" and len(agree) > 50 and np.mean(agree) > 0.8


@pytest.mark.slow
def test_multiple_imputation_writes_k_tables_that_differ(tmp_path):
    table = mixed_table(tmp_path)
    r = gankit_cli("impute", table, "--out", tmp_path / "m.csv", "--model", "miwae", "--steps",
                   "100", "--impute-samples", "50", "--multiple", "3", "--run", tmp_path / "run",
                   "--quiet")
    assert r.returncode == 0, r.stderr
    draws = [read(tmp_path / f"m_{k}.csv")[1] for k in (1, 2, 3)]
    assert draws[0] != draws[1] and not (tmp_path / "m.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("content, words", [
    ("", "is empty"),
    ("a,b\n", "no rows"),
    ("a,b\n1,2\n3\n", "row 3: 1 cells"),
    ("a,b\n1,2\n3,4\n", "no missing cell"),
    ("a,a\n1,\n3,4\n", "more than once"),
    ("a,b\n1,\n2,3\nx,4\n4,5\n", "'x' is not a number"),
    ("a,b\n,1\n,2\n,3\n", "no missing cell in the columns the model fills (left out, having no value at all: a)"),
])
def test_bad_tables_get_one_line_and_nothing_is_written(tmp_path, content, words):
    table = tmp_path / "t.csv"
    table.write_text(content)
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    r = gankit_cli("impute", table, "--out", out, "--steps", "5", "--run", tmp_path / "run")
    one_line_error(r, words)
    assert out.read_text() == "keep me"


@pytest.mark.slow
def test_a_column_with_no_value_is_named_and_left_empty(tmp_path):
    table = tmp_path / "t.csv"
    write(table, ["a", "gone", "b"], [[str(i), "", "" if i % 4 == 0 else str(2 * i)] for i in range(40)])
    r = gankit_cli("impute", table, "--out", tmp_path / "o.csv", "--steps", "50", "--run",
                   tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "gone" in r.stderr and "gone" in r.stdout
    _, rows = read(tmp_path / "o.csv")
    assert all(row[1] == "" and row[2] != "" for row in rows)


@pytest.mark.slow
def test_other_mistakes_are_one_line(tmp_path):
    table = mixed_table(tmp_path)
    for args, words in (
            (["--out", table], "overwrite the input"),
            (["--out", tmp_path / "no" / "o.csv"], "does not exist"),
            (["--out", tmp_path / "o.csv", "--multiple", "0"], "--multiple"),
            (["--out", tmp_path / "o.csv", "--checkpoint", tmp_path / "nothing"], "does not exist"),
            (["--out", tmp_path / "o.csv", "--checkpoint", tmp_path, "--alpha", "3"], "drop")):
        one_line_error(gankit_cli("impute", table, *args), words)
    other = tmp_path / "other.csv"
    write(other, ["x", "y"], [["1", ""], ["2", "3"]])
    gankit_cli("impute", table, "--out", tmp_path / "o.csv", "--steps", "5", "--run", tmp_path / "r2")
    r = gankit_cli("impute", other, "--out", tmp_path / "o2.csv", "--checkpoint", tmp_path / "r2")
    assert r.returncode == 1 and "same header" in r.stderr


def test_a_table_too_big_for_memory_is_refused_before_reading(tmp_path, monkeypatch):
    table = tmp_path / "t.csv"
    write(table, ["a", "b"], [["1", ""]] * 100)
    monkeypatch.setattr(tables, "MAX_CELLS", 50)
    with pytest.raises(GankitError, match="limit of 50 cells"):
        tables.read_csv(table)


def test_an_image_model_refuses_a_table_and_back(tmp_path):
    import gankit
    table = mixed_table(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(GankitError, match="learns from images but .* holds tables"):
            gankit.train(model="gan", data=str(table), steps=2, out=str(tmp_path / "r"), progress=False)
        with pytest.raises(GankitError, match="learns from tables"):
            gankit.train(model="gain", data="mnist", offline=True, steps=2,
                         out=str(tmp_path / "r2"), progress=False)


@pytest.mark.slow
def test_a_table_run_resumes_bit_for_bit(tmp_path):
    import gankit
    from gankit.training import checkpoint
    table = str(mixed_table(tmp_path))
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    for name in ("gain", "miwae"):
        gankit.train(model=name, data=table, steps=40, out=str(whole / name), progress=False,
                     checkpoint_every=20)
        gankit.train(model=name, data=table, steps=20, out=str(parts / name), progress=False)
        r = gankit_cli("train", "--resume", "--out", parts / name, "--steps", "40", "--quiet")
        assert r.returncode == 0 and "gankit impute" in r.stdout, r.stderr
        a, _ = checkpoint.load(whole / name)
        b, _ = checkpoint.load(parts / name)
        assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("model."))


def test_whole_numbers_written_as_pandas_writes_them_are_an_int_column(tmp_path):
    """pandas writes an int column that has missing cells as 127.0; its observed values are
    whole, so it is an int column and gets whole fills, written as its cells are."""
    rng = np.random.default_rng(0)
    header = ["magnesium", "alcohol"]
    rows = [[f"{rng.integers(70, 163)}.0", f"{rng.uniform(11, 15):.2f}"] for _ in range(60)]
    for i in range(0, 60, 4):
        rows[i][0] = ""
    write(tmp_path / "t.csv", header, rows)
    schema = tables.infer_schema(header, rows, "t.csv")
    assert [c.kind for c in schema.columns] == ["int", "float"]
    impute_csv(str(tmp_path / "t.csv"), str(tmp_path / "f.csv"), steps=20, progress=False,
               run=str(tmp_path / "run"))
    _, filled = read(tmp_path / "f.csv")
    fills = [filled[i][0] for i in range(0, 60, 4)]
    assert all(f.endswith(".0") and float(f) == int(float(f)) for f in fills), fills
    assert all(70 <= float(f) <= 162 for f in fills)
    assert [r[0] for i, r in enumerate(filled) if i % 4] == [r[0] for i, r in enumerate(rows) if i % 4]


@pytest.mark.slow
def test_table_errors_name_the_row_and_the_file_as_given(tmp_path):
    """The text-cell error names its row (the README promises row and column); a ragged row
    names the file, not a placeholder."""
    write(tmp_path / "t.csv", ["a", "b"], [["1", "2"], ["3", "x4"], ["5", "6"], ["7", "8"]])
    with pytest.raises(GankitError) as e:
        impute_csv(str(tmp_path / "t.csv"), str(tmp_path / "f.csv"), progress=False)
    assert str(e.value).startswith(f"{tmp_path / 't.csv'}, row 3, column 'b': 'x4'"), e.value
    (tmp_path / "r.csv").write_text("a,b\n1,2\n3\n")
    r = gankit_cli("impute", tmp_path / "r.csv", "--out", tmp_path / "f.csv")
    assert r.returncode == 1 and "TABLE" not in r.stderr
    assert f"gankit: error: {tmp_path / 'r.csv'}, row 3: 1 cells where the header has 2" in r.stderr


@pytest.mark.slow
def test_two_tables_impute_without_naming_run_folders_or_leaving_runs(tmp_path):
    """`gankit impute` keeps its run in the cache, named after the table: a second table
    needs no --run, the working folder gains only the filled tables, and the same table
    again reuses its run (same cells, no training)."""
    rng = np.random.default_rng(1)
    for name in ("wine", "iris"):
        rows = [[f"{rng.uniform(0, 9):.2f}", f"{rng.uniform(0, 9):.2f}"] for _ in range(40)]
        for i in range(0, 40, 3):
            rows[i][i % 2] = ""
        write(tmp_path / f"{name}.csv", ["a", "b"], rows)
    cache = tmp_path / "cache"
    said = {}
    for name in ("wine", "iris", "wine"):
        r = gankit_cli("impute", f"{name}.csv", "--out", f"{name}-{len(said)}.csv", "--steps",
                       "20", "--quiet", cwd=tmp_path, env={"GANKIT_CACHE": str(cache)})
        assert r.returncode == 0, r.stderr
        said[len(said)] = r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cache", "iris-1.csv", "iris.csv", "wine-0.csv", "wine-2.csv", "wine.csv"]
    runs = sorted(p.name for p in (cache / "impute").iterdir())
    assert len(runs) == 2 and runs[0].startswith("iris-gain-") and runs[1].startswith("wine-gain-")
    assert "run trained before on this table" in said[2] and str(cache) in said[2]
    assert (tmp_path / "wine-0.csv").read_bytes() == (tmp_path / "wine-2.csv").read_bytes()


def test_an_interrupted_impute_finishes_its_run_next_time(tmp_path, monkeypatch):
    """A run in the cache that stopped short (Ctrl-C) is resumed, not refused or redone."""
    from gankit.training import checkpoint
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    rows = [[str(i % 7), "" if i % 4 == 0 else f"{i * 0.5:.1f}"] for i in range(40)]
    write(tmp_path / "t.csv", ["a", "b"], rows)
    header, cells = tables.read_csv(tmp_path / "t.csv")
    run = __import__("gankit.impute").filling.cached_run(str(tmp_path / "t.csv"), header, cells,
                                                         "gain", 30, 0, {})
    import os
    import signal

    import gankit
    from gankit.training.trainer import Trainer
    save = Trainer.save_checkpoint

    def save_then_ctrl_c(self, name="last"):   # Ctrl-C right after the step-10 checkpoint
        save(self, name)
        if self.p.step == 10:
            os.kill(os.getpid(), signal.SIGINT)
    with monkeypatch.context() as m:
        m.setattr(Trainer, "save_checkpoint", save_then_ctrl_c)
        stopped = gankit.train(model="gain", data=str(tmp_path / "t.csv"), steps=30, seed=0,
                               out=run, progress=False, checkpoint_every=10)
    assert stopped.interrupted and stopped.step == 10
    done = impute_csv(str(tmp_path / "t.csv"), str(tmp_path / "f.csv"), steps=30, progress=False)
    assert done["run"] == str(run) and not done["reused"]
    assert checkpoint.read_meta(checkpoint.last_in(run))["step"] == 30
