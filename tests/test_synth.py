"""Synthetic tables: the table generators' contract (every registered one), `gankit synth`,
the Synthesizer API, and a table model defined here plugging into synth and impute."""

import csv
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import nn

from gankit.config import ModelConfig, RunConfig
from gankit.data.row_encoding import RowEncoding, encode_table
from gankit.data.table import infer_schema, table_data
from gankit.models import IMPUTERS, SYNTHESIZERS, build_model
from gankit.models.tables import TableGenerator
from gankit.synth import Synthesizer
from gankit.training.checkpoint import run_meta, save, training_state

from helpers import gankit_main, one_line_error
from test_row_encoding import mixed_table


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def table():
    """The mixed table (a bimodal float and a category with missing cells, a many-valued
    and a few-valued int) and its encoded rows."""
    header, rows = mixed_table(400)
    data = table_data(header, rows, "t.csv")
    return header, rows, encode_table(data, seed=0)


def built(name, rows, seed=0):
    torch.manual_seed(seed)
    return build_model(name, SYNTHESIZERS[name].Config(), rows.shape, 0, rows.layout)


# --- the contract of a table generator: every registered one --------------------------------

@pytest.mark.parametrize("name", list(SYNTHESIZERS))
def test_a_step_returns_its_metrics_and_every_network_learns(name, table):
    _, _, rows = table
    model = built(name, rows)
    model.optimizers = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.named_parameters()}
    out = model.training_step(rows.values[:model.real_batch_size(40)], None)
    assert tuple(out) == model.metric_names
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    changed = {k.split(".")[0] for k, v in model.named_parameters() if not torch.equal(before[k], v)}
    assert changed == {k.split(".")[0] for k in before}


@pytest.mark.parametrize("name", list(SYNTHESIZERS))
def test_samples_are_rows_of_the_encoding_and_repeat_with_a_seed(name, table):
    _, _, rows = table
    model = built(name, rows)
    x = model.sample_rows(50, generator=torch.Generator().manual_seed(3))
    assert x.shape == (50, rows.layout.width)
    for span in rows.layout.spans:
        block = x[:, span.start:span.start + span.width]
        if span.kind == "choice":
            assert set(block.unique().tolist()) <= {0.0, 1.0} and (block.sum(1) == 1).all()
        else:
            assert block.abs().max() <= 1
    again = model.sample_rows(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, again)
    assert model.sample_values(50).shape == (50, 4)


@pytest.mark.parametrize("name", list(SYNTHESIZERS))
def test_checkpoint_round_trip_gives_identical_rows(name, table, tmp_path):
    from gankit.api import load
    _, _, rows = table
    model = built(name, rows)
    model.optimizers = model.configure_optimizers()
    model.training_step(rows.values[:model.real_batch_size(40)], None)
    cfg = RunConfig(model=name, model_cfg=model.cfg)
    tensors, skeleton = training_state(model, torch.Generator())
    save(tmp_path / "c.safetensors", tensors,
         {**run_meta(cfg, model, 1), **rows.describe(), "optim": skeleton})
    back = load(tmp_path / "c.safetensors")
    g = lambda: torch.Generator().manual_seed(0)   # noqa: E731
    assert torch.equal(model.eval().sample_rows(30, generator=g()), back.sample_rows(30, generator=g()))


@pytest.mark.parametrize("name", [n for n, c in SYNTHESIZERS.items() if c.conditions_rows])
def test_a_condition_is_honoured_exactly(name, table):
    _, _, rows = table
    model = built(name, rows)
    j, k = rows.layout.choice_of("colour", "green")
    x = model.sample_rows(40, (j, k))
    span = rows.layout.choices[j]
    assert (x[:, span.start + k] == 1).all()


@pytest.mark.parametrize("name", list(SYNTHESIZERS))
def test_row_weights_are_none_or_one_positive_weight_per_row(name, table):
    _, _, rows = table
    w = built(name, rows).row_weights(rows.values)
    assert w is None or (w.shape == (len(rows),) and (w > 0).all())


def test_training_by_sampling_draws_rare_values_by_the_log_of_their_frequency():
    """CTGAN's row weights: a column drawn uniformly, its value by log(1 + count), a row with
    it uniformly. With one discrete column of counts 900/100, rows of the rare value are
    drawn log(101)/(log(901)+log(101)) of the time, not 10%."""
    header = ["kind", "x"]
    rows = [["common", str(i)] for i in range(900)] + [["rare", str(i)] for i in range(100)]
    data = encode_table(table_data(header, rows, "t.csv"), seed=0)
    model = built("ctgan", data)
    w = model.row_weights(data.values)
    share = float(w[900:].sum() / w.sum())
    assert share == pytest.approx(np.log(101) / (np.log(901) + np.log(101)), rel=1e-5)


# --- gankit synth ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """CTGAN trained 150 steps on the mixed table by `gankit synth`, 600 rows written."""
    folder = tmp_path_factory.mktemp("synth")
    header, rows = mixed_table(600)
    src = write(folder / "t.csv", header, rows)
    from gankit.cli import main
    code = main(["synth", src, "--out", str(folder / "s.csv"), "--rows", "600", "--steps", "150",
                 "--batch-size", "100", "--run", str(folder / "run"), "--quiet"])
    assert code == 0
    return folder, header, rows


@pytest.mark.slow
def test_synthetic_cells_are_valid_values_of_their_columns(synthesized):
    folder, header, rows = synthesized
    out_header, out = read(folder / "s.csv")
    assert out_header == header and len(out) == 600
    schema = infer_schema(header, rows, "t.csv")
    cols = {c.name: c for c in schema.columns}
    for j, name in enumerate(header):
        cells = [r[j] for r in out if r[j] != ""]
        col = cols[name]
        if col.kind == "category":
            assert set(cells) <= set(col.levels)
        elif col.kind == "int":
            values = [int(c) for c in cells]   # whole numbers, written as the table writes them
            assert min(values) >= col.low and max(values) <= col.high
            if col.levels:
                assert set(values) <= set(col.levels)
        else:
            assert all(len(c.split(".")[1]) == 2 for c in cells)   # decimals as in the table


@pytest.mark.slow
def test_missing_cells_come_at_the_tables_rate(synthesized):
    """height misses 10% of its cells and colour 20%; the other columns none."""
    folder, header, rows = synthesized
    _, out = read(folder / "s.csv")
    for j, name in enumerate(header):
        real = np.mean([r[j] == "" for r in rows])
        fake = np.mean([r[j] == "" for r in out])
        assert abs(fake - real) < 0.08, (name, real, fake)
        if real == 0:
            assert fake == 0


@pytest.mark.slow
def test_same_seed_same_bytes_and_checkpoint_samples_again(synthesized, tmp_path, capsys):
    folder, header, rows = synthesized
    src = str(folder / "t.csv")
    again = gankit_main(capsys, "synth", src, "--out", tmp_path / "a.csv", "--rows", 600,
                        "--steps", 150, "--batch-size", 100, "--run", tmp_path / "run", "--quiet")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "a.csv").read_bytes() == (folder / "s.csv").read_bytes()
    reused = gankit_main(capsys, "synth", src, "--out", tmp_path / "b.csv", "--rows", 600,
                         "--checkpoint", folder / "run")
    assert reused.returncode == 0, reused.stderr
    assert (tmp_path / "b.csv").read_bytes() == (folder / "s.csv").read_bytes()
    other = gankit_main(capsys, "synth", src, "--out", tmp_path / "c.csv", "--rows", 600,
                        "--checkpoint", folder / "run", "--seed", 1)
    assert (tmp_path / "c.csv").read_bytes() != (folder / "s.csv").read_bytes()
    assert other.returncode == 0


@pytest.mark.slow
def test_conditions_fix_values_exactly_and_by_rejection(synthesized, tmp_path, capsys):
    folder, header, _ = synthesized
    src = str(folder / "t.csv")
    done = gankit_main(capsys, "synth", src, "--out", tmp_path / "c.csv", "--rows", 200,
                       "--checkpoint", folder / "run", "--condition", "colour=blue",
                       "--condition", "doors=2")
    assert done.returncode == 0, done.stderr
    _, out = read(tmp_path / "c.csv")
    assert len(out) == 200
    assert {r[3] for r in out} == {"blue"} and {r[2] for r in out} == {"2"}
    missing = gankit_main(capsys, "synth", src, "--out", tmp_path / "m.csv", "--rows", 50,
                          "--checkpoint", folder / "run", "--condition", "colour=")
    assert missing.returncode == 0, missing.stderr
    assert {r[3] for r in read(tmp_path / "m.csv")[1]} == {""}


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [
    (["--rows", "0"], ["--rows", "at least 1"]),
    (["--condition", "shade=blue"], ["no column 'shade'"]),
    (["--condition", "colour=purple"], ["'purple' is not a value of 'colour'", "blue"]),
    (["--condition", "height=150"], ["numeric column", "at most 20 values"]),
    (["--condition", "colour"], ["COLUMN=VALUE"]),
    (["--condition", "age="], ["numeric column"]),
    (["--condition", "doors="], ["no missing cell"]),
])
def test_bad_requests_are_one_line_and_write_nothing(synthesized, tmp_path, capsys, args, words):
    folder, _, _ = synthesized
    out = tmp_path / "never.csv"
    result = gankit_main(capsys, "synth", folder / "t.csv", "--out", out,
                         "--checkpoint", folder / "run", *args)
    one_line_error(result, *words)
    assert not out.exists()


@pytest.mark.slow
def test_a_checkpoint_of_another_table_or_kind_is_refused(synthesized, tmp_path, capsys):
    folder, header, rows = synthesized
    other = write(tmp_path / "o.csv", ["a", "b"], [["1", "x"], ["2", "y"]])
    result = gankit_main(capsys, "synth", other, "--out", tmp_path / "n.csv",
                         "--checkpoint", folder / "run")
    one_line_error(result, "same header")
    holes = write(tmp_path / "h.csv", header, [r[:] for r in rows[:60]])
    gankit_main(capsys, "impute", holes, "--out", tmp_path / "f.csv", "--steps", 5,
                "--run", tmp_path / "gain", "--quiet")
    result = gankit_main(capsys, "synth", holes, "--out", tmp_path / "n.csv",
                         "--checkpoint", tmp_path / "gain")
    one_line_error(result, "not a table generator")
    assert not (tmp_path / "n.csv").exists()


def test_the_table_checks_of_impute_apply(tmp_path, capsys):
    bad = write(tmp_path / "b.csv", ["a", "b"], [["1", "x"], ["two", "y"], ["3", "z"], ["4", "w"]])
    result = gankit_main(capsys, "synth", bad, "--out", tmp_path / "o.csv", "--steps", 1)
    one_line_error(result, "row 3", "'two' is not a number")
    assert not (tmp_path / "o.csv").exists()


# --- the Python API -------------------------------------------------------------------------

@pytest.mark.slow
def test_synthesizer_fits_a_dataframe_and_samples_one(tmp_path):
    pd = pytest.importorskip("pandas")
    header, rows = mixed_table(300)
    df = pd.DataFrame(rows, columns=header).replace("", np.nan)
    df["age"] = df["age"].astype(int)
    synth = Synthesizer("tvae", steps=300, batch_size=100, run=str(tmp_path / "run")).fit(df)
    out = synth.sample(80, conditions={"doors": 4}, seed=1)
    assert list(out.columns) == header and len(out) == 80
    assert (out["doors"] == 4).all() and out["age"].dtype.kind == "i"
    assert set(out["colour"].dropna()) <= {"red", "green", "blue"}
    back = Synthesizer.load(str(tmp_path / "run")).sample(80, conditions={"doors": 4}, seed=1)
    assert back.equals(out)


# --- a table model defined here plugs into synth and impute ---------------------------------

@dataclass
class MarginalsConfig(ModelConfig):
    lr: float = field(default=0.1, metadata={"help": "learning rate (Adam)"})


class Marginals(TableGenerator):
    """Each column drawn on its own from its learnt marginal, defined in a test."""

    Config = MarginalsConfig
    metric_names = ("nll",)
    sampling_network = "logits"
    imputes = True

    def __init__(self, cfg, image_shape, num_classes=0, layout=None):
        super().__init__(cfg, image_shape, num_classes, layout)
        from gankit.models.tables import Blocks
        self.blocks = Blocks(layout)
        self.logits = nn.ParameterDict({"choice": nn.Parameter(torch.zeros(layout.width)),
                                        "mean": nn.Parameter(torch.zeros(len(layout.alphas)))})

    def configure_optimizers(self):
        return {"all": torch.optim.Adam(self.parameters(), lr=self.cfg.lr)}

    def training_step(self, real, labels=None):
        raw = self.logits["choice"].expand(len(real), -1)
        a = self.blocks.alpha
        nll = (self.blocks.cross_entropy(raw, real).sum(1)
               + ((real[:, a] - self.logits["mean"]) ** 2).sum(1)).mean()
        self.optimizers["all"].zero_grad()
        nll.backward()
        self.optimizers["all"].step()
        return {"nll": nll.detach()}

    def sample_rows(self, n, condition=None, generator=None):
        raw = self.blocks.activate(self.logits["choice"].detach().expand(n, -1), 1e-3, generator)
        rows = self.blocks.one_hot(raw)
        rows[:, self.blocks.alpha] = self.logits["mean"].detach().clamp(-1, 1)
        return rows

    def impute(self, x, generator=None):
        draws = torch.from_numpy(self.sample_values(len(x), generator=generator)).float()
        # a draw of "missing" leaves the cell to the column's mean
        fill = torch.where(torch.isnan(draws), torch.nanmean(draws, 0), draws)
        return torch.where(torch.isnan(x), fill, x)

    def impute_draws(self, x, k, generator=None):
        return torch.stack([self.impute(x, generator) for _ in range(k)])


@pytest.mark.slow
def test_a_table_model_defined_here_plugs_into_synth_and_impute(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(SYNTHESIZERS, "marginals", Marginals)
    monkeypatch.setitem(IMPUTERS, "marginals", Marginals)
    header, rows = mixed_table(300)
    src = write(tmp_path / "t.csv", header, rows)
    done = gankit_main(capsys, "synth", src, "--out", tmp_path / "s.csv", "--model", "marginals",
                       "--steps", 200, "--batch-size", 100, "--rows", 500, "--quiet")
    assert done.returncode == 0, done.stderr
    _, out = read(tmp_path / "s.csv")
    colour = [r[3] for r in out]
    real = [r[3] for r in rows]
    for level in ("red", "green", "blue", ""):   # its marginal, the missing share too
        assert abs(colour.count(level) / 500 - real.count(level) / 300) < 0.09, level
    # rejection sampling for a model without a conditional vector
    cond = gankit_main(capsys, "synth", src, "--out", tmp_path / "c.csv", "--model", "marginals",
                       "--steps", 200, "--batch-size", 100, "--rows", 50, "--quiet",
                       "--condition", "colour=red")
    assert cond.returncode == 0 and {r[3] for r in read(tmp_path / "c.csv")[1]} == {"red"}
    filled = gankit_main(capsys, "impute", src, "--out", tmp_path / "f.csv", "--model",
                         "marginals", "--steps", 100, "--quiet")
    assert filled.returncode == 0, filled.stderr
    _, got = read(tmp_path / "f.csv")
    for before, after in zip(rows, got):
        assert all(a == b for a, b in zip(before, after) if a != "")   # observed cells kept
        assert all(a != "" for a in after)                            # holes filled


def test_the_encoding_is_saved_with_a_table_generators_run(table):
    _, _, rows = table
    d = rows.describe()
    assert RowEncoding.from_dict(d["encoding"]).width == rows.layout.width
    assert d["table"]["header"] == ["height", "age", "doors", "colour"]


def test_gankit_train_trains_a_table_generator_that_synth_then_samples(tmp_path, capsys):
    header, rows = mixed_table(200)
    src = write(tmp_path / "t.csv", header, rows)
    trained = gankit_main(capsys, "train", "--model", "ctgan", "--data", src, "--steps", 5,
                          "--batch-size", 50, "--out", tmp_path / "run", "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert f"gankit synth TABLE.csv --out SYNTH.csv --checkpoint {tmp_path / 'run'}" in trained.stdout
    done = gankit_main(capsys, "synth", src, "--out", tmp_path / "s.csv", "--rows", 7,
                       "--checkpoint", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert "trained before" not in done.stdout and len(read(tmp_path / "s.csv")[1]) == 7
    assert not (tmp_path / "run" / "report.json").exists()   # sampling again: no report
    images = gankit_main(capsys, "train", "--model", "ctgan", "--data", "mnist", "--offline",
                         "--steps", 1, "--out", tmp_path / "img")
    assert images.returncode == 1   # after the offline-data note, one line says why
    assert "ctgan learns from tables but" in images.stderr.splitlines()[-1]
    assert "Traceback" not in images.stderr
