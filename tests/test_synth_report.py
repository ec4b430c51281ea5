"""The synthetic-table report (gankit/synth_report.py, gankit synth-report): golden values on
hand-made tables, the column shapes, pair trends and DCR cross-checked against SDMetrics
itself, efficacy and privacy on tables whose answer is known, and the command."""

from __future__ import annotations

import csv
import json
import math
import warnings

import numpy as np
import pytest

from helpers import gankit_main, one_line_error
from gankit import report_pages as pages
from gankit import synth_report as sr
from gankit.errors import GankitError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """numpy's BLAS and scikit-learn's OpenMP (gradient boosting) on one thread: the
    machine is shared, and a second thread waiting for a busy core only slows the tests."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield


def write(path, header, rows) -> str:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


def cells(*columns) -> list[list[str]]:
    """Rows of text cells from columns of values (None: a missing cell)."""
    return [["" if v is None else str(v) for v in row] for row in zip(*columns)]


def shape_of(report, column):
    return next(s for s in report["column_shapes"] if s["column"] == column)


def pair_of(report, a, b):
    return next(p for p in report["column_pair_trends"] if p["columns"] == [a, b])


# --- golden values on tiny tables ----------------------------------------------------------

TINY = (["x", "y", "c"], cells([1.5, 2.0, 3.25, 4.0, 7.5], [10, 30, 20, 50, 40],
                               ["a", "b", "a", None, "b"]))


def test_identical_tables_score_one_and_are_exact_copies():
    report = sr.judge(TINY, TINY)
    assert all(s["score"] == 1.0 for s in report["column_shapes"])
    assert all(p["score"] == pytest.approx(1.0, abs=1e-12) for p in report["column_pair_trends"])
    assert report["quality"]["score"] == pytest.approx(1.0, abs=1e-12)
    p = report["privacy"]
    assert p["dcr_to_training"] == {"median": 0.0, "p5": 0.0}
    assert p["exact_copies"] == 1.0 and p["closer_to_training"] is None
    json.dumps(report, allow_nan=False)     # plain JSON: no numpy types, no NaN


def test_disjoint_categories_give_tv_complement_zero():
    real = (["c"], cells(["a", "b", "a", "b"]))
    synth = (["c"], cells(["c", "d", "d", None]))
    assert shape_of(sr.judge(real, synth), "c")["score"] == 0.0
    assert sr.tv_complement(np.array([0, 1, 1, -1]), np.array([0, 0, 1, 1]), 2) == \
        pytest.approx(1 - 0.5 * (abs(1 / 3 - 1 / 2) + abs(2 / 3 - 1 / 2)))


def test_few_valued_whole_numbers_are_levels_by_value():
    # 1 and 1.0 are one level of a categorical int column (pandas writes 1.0 for an int
    # column with missing cells); 40 distinct whole numbers are a numeric column.
    real = (["kids", "age"], cells([1, 2, 3, 2], [20, 30, 40, 50]))
    synth = (["kids", "age"], cells(["1.0", "2.0", "3", "2"], [20, 30, 40, 50]))
    report = sr.judge(real, synth)
    assert [c["kind"] for c in report["columns"]] == ["categorical", "categorical"]
    assert shape_of(report, "kids")["score"] == 1.0
    many = (["n"], cells(range(40)))
    assert sr.judge(many, many)["columns"] == [{"name": "n", "kind": "numeric"}]


def test_known_ks_complement_missing_cells_left_out():
    # ECDFs of {1,2,3,4} and {3,4,5,6}: the largest gap is 1/2 (at 2: 0.5 vs 0; at 4: 1 vs 0.5).
    nan = math.nan
    assert sr.ks_complement(np.array([1.0, 2, 3, 4, nan]), np.array([3.0, 4, 5, 6])) == 0.5
    assert sr.ks_complement(np.array([1.0, 2]), np.array([5.0, 6])) == 0.0
    assert math.isnan(sr.ks_complement(np.array([nan]), np.array([1.0])))


def test_pair_trends_hand_computed():
    # x, y rise together in the real table and opposite ways in the synthetic one: r = 1 and
    # r = -1, score 1 - |1 - -1| / 2 = 0. The letters pair a with u in the real table and a
    # with v in the synthetic one: disjoint contingency tables, score 0, Cramer's V 1 in both.
    x, y = [0.5, 1.5, 2.5, 3.5], [1.5, 2.5, 3.5, 4.5]     # not whole: numeric, not categorical
    real = (["x", "y", "c", "d"], cells(x, y, list("aabb"), list("uuvv")))
    synth = (["x", "y", "c", "d"], cells(x, y[::-1], list("aabb"), list("vvuu")))
    report = sr.judge(real, synth)
    xy, cd = pair_of(report, "x", "y"), pair_of(report, "c", "d")
    assert (xy["metric"], xy["real"], xy["synthetic"], xy["score"]) == \
        ("CorrelationSimilarity", 1.0, -1.0, 0.0)
    assert (cd["metric"], cd["score"], cd["real"], cd["synthetic"]) == \
        ("ContingencySimilarity", 0.0, pytest.approx(1.0), pytest.approx(1.0))
    assert xy["associated"] and cd["associated"]        # both strongly related in the real table


def test_cramers_v_matches_scipy():
    from scipy.stats.contingency import association
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 500)
    b = (a + rng.integers(0, 3, 500)) % 5
    keys, counts = np.unique(a * 5 + b, return_counts=True)
    table = np.zeros((4, 5), dtype=np.int64)
    np.add.at(table, (a, b), 1)
    assert sr.cramers_v(keys, counts, 5) == pytest.approx(association(table), abs=1e-12)


def test_columns_in_another_order_and_dataframes_give_the_same_report():
    pd = pytest.importorskip("pandas")
    header, rows = TINY
    shuffled = (header[::-1], [r[::-1] for r in rows[::-1]])
    frame = pd.DataFrame({"x": [1.5, 2.0, 3.25, 4.0, 7.5], "y": [10, 30, 20, 50, 40],
                          "c": ["a", "b", "a", None, "b"]})
    base = sr.judge(TINY, TINY)
    assert sr.judge(TINY, shuffled)["quality"] == base["quality"]
    assert sr.judge(frame, frame)["column_shapes"] == base["column_shapes"]


# --- against SDMetrics ---------------------------------------------------------------------

def mixed_table(rng: np.random.Generator, n: int, shift: float = 0.0, extra: bool = False):
    """A table of every kind of column, with missing cells: age (an int of many values:
    numeric), pay (float, rising with age), kids (an int of 4 values: categorical), city
    (text), desk (text, tied to pay). `shift` moves pay; `extra` adds a city the real
    table lacks."""
    age = rng.integers(18, 80, n)
    pay = np.round(1000 + 40 * age * (1 + shift) + rng.normal(0, 400, n), 2)
    kids = rng.integers(0, 4, n)
    cities = ["Oslo", "Lima", "Pune", "Kyiv"] + (["Rome"] if extra else [])
    city = rng.choice(cities, n)
    desk = np.where(pay + rng.normal(0, 500, n) > 2800, "desk", "field")
    columns = [list(c) for c in (age, pay, kids, city, desk)]
    for c in columns[1:4]:                      # ~8% of pay, kids and city missing
        for i in np.flatnonzero(rng.random(n) < 0.08):
            c[i] = None
    return ["age", "pay", "kids", "city", "desk"], cells(*columns)


@pytest.fixture(scope="module")
def sdmetrics_pair(tmp_path_factory):
    """(our report, SDMetrics' QualityReport with its default thresholds, one counting every
    pair, the two DataFrames, the metadata) for a 300-row mixed table and a 250-row
    synthetic one drawn differently."""
    pytest.importorskip("sdmetrics", reason="pip install sdmetrics (the `test` extra has it)")
    import pandas as pd
    with warnings.catch_warnings():
        # Deprecated in favour of the multi-table report, whose single-table properties
        # (sdmetrics.reports.single_table._properties) it runs all the same.
        warnings.simplefilter("ignore", FutureWarning)
        from sdmetrics.reports.single_table import QualityReport
    folder = tmp_path_factory.mktemp("sdmetrics")
    real = write(folder / "real.csv", *mixed_table(np.random.default_rng(1), 300))
    synth = write(folder / "synth.csv", *mixed_table(np.random.default_rng(2), 250, 0.3, True))
    ours = sr.judge(real, synth)
    metadata = {"columns": {c["name"]: {"sdtype": "numerical" if c["kind"] == "numeric"
                                        else "categorical"} for c in ours["columns"]}}
    frames = pd.read_csv(real), pd.read_csv(synth)
    reports = []
    for threshold in (True, False):
        q = QualityReport()
        if not threshold:
            q.real_correlation_threshold = q.real_association_threshold = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # "Unexpected values ("Rome")": on purpose
            q.generate(*frames, metadata, verbose=False)
        reports.append(q)
    return ours, reports, frames, metadata


def test_column_shapes_match_sdmetrics(sdmetrics_pair):
    ours, (default, _), _, _ = sdmetrics_pair
    theirs = default.get_details("Column Shapes")
    assert list(theirs["Column"]) == [s["column"] for s in ours["column_shapes"]]
    for (_, row), shape in zip(theirs.iterrows(), ours["column_shapes"]):
        assert row["Metric"] == shape["metric"]
        # SDMetrics adds 1e-6 to the real count of the synthetic-only city: ~1e-9 here.
        assert shape["score"] == pytest.approx(row["Score"], abs=1e-6), row["Column"]
    assert {shape["metric"] for shape in ours["column_shapes"]} == {"KSComplement", "TVComplement"}


def test_column_pair_trends_and_quality_match_sdmetrics(sdmetrics_pair):
    ours, (default, every), _, _ = sdmetrics_pair
    pairs = {tuple(p["columns"]): p for p in ours["column_pair_trends"]}
    all_pairs, counted = every.get_details("Column Pair Trends"), default.get_details("Column Pair Trends")
    assert len(all_pairs) == len(pairs) == 10
    for (_, row), (_, thr) in zip(all_pairs.iterrows(), counted.iterrows()):
        p = pairs[row["Column 1"], row["Column 2"]]
        assert p["metric"] == row["Metric"]
        assert p["score"] == pytest.approx(row["Score"], abs=1e-12)
        assert p["associated"] == bool(thr["Meets Threshold?"])
        if p["metric"] == "CorrelationSimilarity":
            assert p["real"] == pytest.approx(row["Real Correlation"], abs=1e-12)
        else:
            assert p["real"] == pytest.approx(thr["Real Association"], abs=1e-12)
    assert any(p["associated"] for p in pairs.values()) and not all(p["associated"] for p in pairs.values())
    q = ours["quality"]
    assert q["column_pair_trends"] == pytest.approx(every.get_properties()["Score"][1], abs=1e-12)
    assert q["trends_associated"] == pytest.approx(default.get_properties()["Score"][1], abs=1e-12)
    assert q["score"] == pytest.approx(every.get_score(), abs=1e-6)
    assert q["sdmetrics_score"] == pytest.approx(default.get_score(), abs=1e-6)


def test_distance_to_closest_record_matches_sdmetrics(sdmetrics_pair):
    from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr
    ours, _, (real, synth), metadata = sdmetrics_pair
    theirs = calculate_dcr(synth.iloc[:60], real, metadata).to_numpy()
    # Our distances for the same 60 rows, through the module's own pieces.
    header, rows = mixed_table(np.random.default_rng(1), 300)
    _, synth_rows = mixed_table(np.random.default_rng(2), 250, 0.3, True)
    schema = sr.infer_schema(header, rows, "real")
    columns = sr._columns(schema, {"real": (rows, "real"), "synthetic": (synth_rows, "synth")})
    a = sr._rows(columns, "synthetic", np.arange(60))
    b = sr._rows(columns, "real", np.arange(300))
    (mine,) = sr._distances(a, b, [None], len(columns), block=1000)   # several blocks
    np.testing.assert_allclose(mine, theirs, atol=1e-6)


# --- machine-learning efficacy -------------------------------------------------------------

def labelled(rng: np.random.Generator, n: int):
    """A target that the other columns predict well: y = x1 + x2 + (c == 'b') > 0.5."""
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    c = rng.choice(list("abc"), n)
    y = np.where(x1 + x2 + (c == "b") + rng.normal(0, 0.3, n) > 0.5, "yes", "no")
    return ["x1", "x2", "c", "y"], cells(np.round(x1, 4), np.round(x2, 4), c, y)


def test_efficacy_of_a_copy_is_one_and_of_shuffled_labels_far_lower():
    rng = np.random.default_rng(3)
    real, holdout = labelled(rng, 600), labelled(rng, 400)
    header, rows = real
    copy = sr.judge(real, real, holdout, target="y", seed=1)["efficacy"]
    assert copy["task"] == "classification" and copy["metric"] == "F1"
    assert copy["positive"] in ("yes", "no") and copy["real"] > 0.8
    assert copy["ratio"] == 1.0                         # the same rows train the same models
    labels = [r[3] for r in rows]
    noise = [r[:3] + [y] for r, y in zip(rows, rng.permutation(labels))]
    shuffled = sr.judge(real, (header, noise), holdout, target="y", seed=1)["efficacy"]
    assert shuffled["ratio"] < 0.75, shuffled
    assert set(shuffled["models"]) == {"logistic regression", "decision tree (depth 15)",
                                       "gradient boosting"}


def test_efficacy_warns_of_target_values_the_real_table_lacks():
    rng = np.random.default_rng(9)
    real = labelled(rng, 200)
    header, held = labelled(rng, 100)
    dotted = (header, [r[:3] + [r[3] + "."] for r in held])   # as Adult's test file writes
    with pytest.warns(UserWarning, match=r"held-out rows has values the real table lacks"):
        sr.judge(real, real, dotted, target="y")


def test_efficacy_of_a_numeric_target_is_r2():
    rng = np.random.default_rng(4)
    header, rows = labelled(rng, 300)
    _, held = labelled(rng, 200)
    e = sr.judge((header, rows), (header, rows), (header, held), target="x1")["efficacy"]
    assert (e["task"], e["metric"], e["ratio"]) == ("regression", "R2", 1.0)


# --- privacy -------------------------------------------------------------------------------

def continuous(rng: np.random.Generator, n: int):
    return ["a", "b", "k"], cells(np.round(rng.normal(size=n), 6),
                                  np.round(rng.exponential(size=n), 6), rng.choice(list("pq"), n))


def test_privacy_share_copies_one_fresh_rows_one_half():
    rng = np.random.default_rng(5)
    train, holdout, fresh = (continuous(rng, 1500) for _ in range(3))
    header, rows = train
    copies = (header, [rows[i] for i in rng.integers(0, len(rows), 1500)])
    p = sr.judge(train, copies, holdout, seed=2)["privacy"]
    assert p["closer_to_training"] == 1.0 and p["exact_copies"] == 1.0
    p = sr.judge(train, fresh, holdout, seed=2)["privacy"]
    assert p["closer_to_training"] == pytest.approx(0.5, abs=0.05)
    assert p["exact_copies"] == 0.0
    # Held-out rows are as far from the training rows as fresh synthetic ones.
    assert p["dcr_to_training"]["median"] == pytest.approx(
        p["holdout_dcr_to_training"]["median"], rel=0.2)


def test_privacy_share_subsamples_the_larger_set():
    # 3,000 training rows against 1,000 held-out: fresh rows are closer to the training rows
    # 3/4 of the time over all rows, but 1/2 once the training rows are cut to 1,000.
    rng = np.random.default_rng(6)
    train, holdout, fresh = continuous(rng, 3000), continuous(rng, 1000), continuous(rng, 2000)
    p = sr.judge(train, fresh, holdout, seed=3)["privacy"]
    assert p["reference_rows"] == 1000 and p["synthetic_rows"] == 2000
    assert p["closer_to_training"] == pytest.approx(0.5, abs=0.05)
    assert p["expected_all_rows"] == 0.75
    assert p["closer_to_training_all_rows"] == pytest.approx(0.75, abs=0.05)


def test_privacy_samples_at_most_privacy_rows_seeded():
    rng = np.random.default_rng(7)
    train, synth = continuous(rng, 400), continuous(rng, 400)
    one, two = (sr.judge(train, synth, seed=4, privacy_rows=100)["privacy"] for _ in range(2))
    assert one == two and one["synthetic_rows"] == 100


# --- pictures and the page ----------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_report():
    real = mixed_table(np.random.default_rng(1), 300)
    synth = mixed_table(np.random.default_rng(2), 250, 0.3, True)
    holdout = mixed_table(np.random.default_rng(3), 200)
    return sr.judge(real, synth, holdout, target="desk")


def test_pictures_show_both_tables(mixed_report):
    shapes, pairs = pages.shapes_picture(mixed_report), pages.pairs_picture(mixed_report)
    assert shapes.width >= 900 and shapes.height > 400 and pairs.width > 3 * pairs.height / 2
    for picture in (shapes, pairs):
        colors = {c for _, c in picture.getcolors(1 << 20)}
        assert len(colors) > 20
    colors = {c for _, c in shapes.getcolors(1 << 20)}
    real, synth = (tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))
                   for h in (pages.REAL_COLOR, pages.SYNTH_COLOR))
    assert real in colors and synth in colors


def test_marginals_keep_the_top_levels_and_the_rest_as_other():
    levels = [f"L{i:02d}" for i in range(15)]
    real = (["c"], cells([levels[i % 15] for i in range(300)]))
    m = shape_of(sr.judge(real, real), "c")["marginal"]
    assert len(m["levels"]) == sr.TOP_LEVELS + 1 and m["levels"][-1] == "(other)"
    assert sum(m["real"]) == pytest.approx(1.0) and m["real"] == m["synthetic"]


def test_summary_and_page(mixed_report, tmp_path):
    text = sr.summary(mixed_report)
    for words in ("quality", "worst columns", "worst pairs", "efficacy (desk", "privacy",
                  "distance to the closest training row"):
        assert words in text
    pages.write_html(mixed_report, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert page.count("src='data:image/png;base64,") == 2
    assert "Machine-learning efficacy" in page and "decision tree (depth 15)" in page


# --- the command ---------------------------------------------------------------------------

@pytest.fixture
def csvs(tmp_path):
    rng = np.random.default_rng(8)
    return {name: write(tmp_path / f"{name}.csv", *labelled(rng, n))
            for name, n in (("real", 300), ("synth", 300), ("holdout", 200))}


def test_command_writes_html_and_json(csvs, tmp_path, capsys):
    html, out = tmp_path / "report.html", tmp_path / "report.json"
    r = gankit_main(capsys, "synth-report", csvs["real"], csvs["synth"], "--holdout",
                    csvs["holdout"], "--target", "y", "--html", html, "--json", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("quality ") and "efficacy (y, F1" in r.stdout
    assert "% of synthetic rows closer to training rows" in r.stdout
    assert r.stdout.strip().endswith(f"wrote {html}, {out}")
    assert html.read_text().count("data:image/png;base64,") == 2
    report = json.loads(out.read_text())
    assert 0.5 < report["quality"]["score"] <= 1
    assert report["efficacy"]["target"] == "y" and report["privacy"]["closer_to_training"] > 0
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("change, words", [
    (lambda c, t: [c["real"], t / "none.csv"], ["none.csv does not exist"]),
    (lambda c, t: [c["real"], write(t / "other.csv", ["x1", "x2", "cc", "y"], [["1", "2", "a", "no"]])],
     ["lacks c", "has cc, which the real table has not"]),
    (lambda c, t: [c["real"], write(t / "text.csv", ["x1", "x2", "c", "y"], [["1", "two", "a", "no"]])],
     ["column 'x2'", "'two' is not a number"]),
    (lambda c, t: [c["real"], c["synth"], "--holdout", c["holdout"], "--target", "yy"],
     ["--target yy", "(did you mean y?)"]),
    (lambda c, t: [c["real"], c["synth"], "--target", "y"],
     ["efficacy", "(--holdout HOLDOUT)"]),
    (lambda c, t: [c["real"], c["synth"], "--html", t], ["is a folder; give --html a file name"]),
    (lambda c, t: [c["real"], c["synth"], "--json", c["real"]], ["would overwrite the input"]),
    (lambda c, t: [c["real"], c["synth"], "--json", t / "no" / "r.json"], ["does not exist"]),
], ids=["missing-file", "other-columns", "text-in-numbers", "unknown-target",
        "target-without-holdout", "html-folder", "json-over-input", "json-no-folder"])
def test_bad_input_is_one_line_and_writes_nothing(csvs, tmp_path, capsys, change, words):
    args = [str(a) for a in change(csvs, tmp_path)]
    if "--html" not in args and "--json" not in args:   # would a half-done run write it?
        args += ["--html", str(tmp_path / "r.html")]
    before = sorted(tmp_path.rglob("*"))
    one_line_error(gankit_main(capsys, "synth-report", *args), *words)
    assert sorted(tmp_path.rglob("*")) == before


def test_python_call_names_keywords_not_flags():
    with pytest.raises(GankitError, match=r"\(holdout=HOLDOUT\)$"):
        sr.judge(TINY, TINY, target="x")
