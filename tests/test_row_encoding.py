"""Rows as the table generators see them (gankit/data/row_encoding.py): spans per column, a
missing slot, and the round trip from cells to numbers and back to the same cells."""

import json

import numpy as np

from gankit.data.row_encoding import RowEncoding
from gankit.data.table import infer_schema


def mixed_table(n: int = 600, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """A bimodal float with missing cells, a many-valued int, a few-valued int, and a
    category with missing cells."""
    rng = np.random.default_rng(seed)
    low = rng.random(n) < 0.4
    height = np.where(low, rng.normal(150, 3, n), rng.normal(180, 5, n))
    rows = []
    for i in range(n):
        rows.append([
            "" if rng.random() < 0.1 else f"{height[i]:.2f}",
            str(int(rng.integers(20, 90))),
            str(int(rng.choice([1, 2, 4]))),
            "" if rng.random() < 0.2 else str(rng.choice(["red", "green", "blue"])),
        ])
    return ["height", "age", "doors", "colour"], rows


def fitted(n: int = 600):
    header, rows = mixed_table(n)
    schema = infer_schema(header, rows, "t.csv")
    values = schema.encode(header, rows, "t.csv")
    return header, rows, schema, values, RowEncoding.fit(schema, values)


def test_each_column_gets_its_spans_and_a_missing_slot_where_it_has_missing_cells():
    _, _, schema, _, enc = fitted()
    by_column = {}
    for span in enc.spans:
        by_column.setdefault(span.column, []).append((span.kind, span.width))
    height_modes = enc.codes[0].modes.count
    assert by_column["height"] == [("alpha", 1), ("choice", height_modes + 1)]
    assert by_column["age"] == [("alpha", 1), ("choice", enc.codes[1].modes.count)]
    assert by_column["doors"] == [("choice", 3)]            # few values: discrete, no missing
    assert by_column["colour"] == [("choice", 4)]           # 3 colours + missing
    assert height_modes == 2
    assert enc.width == sum(s.width for s in enc.spans)
    assert [s.start for s in enc.spans] == list(np.cumsum([0] + [s.width for s in enc.spans])[:-1])


def test_encoded_rows_are_one_hot_with_alphas_in_range_and_missing_in_its_slot():
    _, rows, _, values, enc = fitted()
    x = enc.encode(values, np.random.default_rng(0))
    assert x.shape == (len(rows), enc.width) and x.dtype == np.float32
    for span in enc.spans:
        block = x[:, span.start:span.start + span.width]
        if span.kind == "choice":
            assert set(np.unique(block)) <= {0, 1} and (block.sum(1) == 1).all()
        else:
            assert block.min() >= -1 and block.max() <= 1
    colour = next(s for s in enc.spans if s.column == "colour")
    missing = np.array([r[3] == "" for r in rows])
    assert (x[missing, colour.start + 3] == 1).all() and (x[~missing, colour.start + 3] == 0).all()


def test_cells_come_back_exactly_through_the_encoding():
    header, rows, schema, values, enc = fitted()
    again = schema.render(enc.decode(enc.encode(values, np.random.default_rng(1))))
    assert again == rows


def test_a_generators_soft_choices_decode_as_their_argmax():
    _, _, schema, values, enc = fitted()
    x = enc.encode(values, np.random.default_rng(0))
    soft = x.copy()
    rng = np.random.default_rng(2)
    for span in enc.spans:
        if span.kind == "choice":      # a softmax-like output whose largest entry is the code
            block = soft[:, span.start:span.start + span.width]
            soft[:, span.start:span.start + span.width] = 0.6 * block + 0.4 * rng.dirichlet(
                np.ones(span.width), len(block)) * 0.99
    assert np.array_equal(np.isnan(enc.decode(soft)), np.isnan(enc.decode(x)))
    assert np.allclose(enc.decode(soft), enc.decode(x), equal_nan=True)


def test_the_encoding_travels_as_json():
    _, _, _, values, enc = fitted()
    again = RowEncoding.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again.spans == enc.spans and again.codes == enc.codes
    rng = lambda: np.random.default_rng(3)    # noqa: E731
    assert np.array_equal(again.encode(values, rng()), enc.encode(values, rng()))


def test_render_writes_missing_as_empty_and_values_as_their_column_writes_them():
    header, rows, schema, values, _ = fitted(50)
    assert schema.render(values) == rows


def test_a_spike_stays_a_spike_when_a_generator_is_a_little_off():
    """Capital gains: 0 in 90% of rows, the rest spread up to 99,999. The spike's mode is
    fitted in the column's own units, so an alpha a generator gets 0.2 wrong still decodes
    to 0 (fitted on [0, 1]-scaled values, its width was $100 and such a 0 came back as 80)."""
    rng = np.random.default_rng(0)
    gain = np.where(rng.random(4000) < 0.9, 0, rng.integers(1000, 100_000, 4000))
    header, rows = ["gain"], [[str(v)] for v in gain]
    schema = infer_schema(header, rows, "t.csv")
    values = schema.encode(header, rows, "t.csv")
    enc = RowEncoding.fit(schema, values)
    x = enc.encode(values, np.random.default_rng(1))
    x[:, enc.alphas[0].start] = np.clip(x[:, enc.alphas[0].start] + 0.2, -1, 1)
    back = [r[0] for r in schema.render(enc.decode(x))]
    assert all(b == "0" for b, v in zip(back, gain) if v == 0)
