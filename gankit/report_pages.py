"""The report of a synthetic table (synth_report.judge's dict) as pictures and one
self-contained HTML page: each column's marginals, real against synthetic, the association
matrices side by side, and the scores with how to read them. Drawn with Pillow from the
dict alone, so a saved report.json is enough (gankit serve draws them from it)."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from .errors import option
from .synth_report import _f, summary

REAL_COLOR, SYNTH_COLOR = "#6baed6", "#e6550d"


def _text_size(draw, text: str, font) -> tuple[float, float]:
    box = draw.textbbox((0, 0), text, font=font)
    return box[2] - box[0], box[3] - box[1]


def _legend(draw, x: int, y: int, font) -> None:
    for label, color in (("real", REAL_COLOR), ("synthetic", SYNTH_COLOR)):
        draw.rectangle([x, y + 2, x + 12, y + 14], fill=color)
        draw.text((x + 17, y), label, fill="black", font=font)
        x += 30 + int(draw.textlength(label, font=font))


def shapes_picture(report: dict[str, Any], columns: int = 3) -> Any:
    """Each column's real and synthetic marginals overlaid, one panel per column in a
    grid, its name and shape score above it: a histogram (shared bins, shares of the
    observed cells) with the synthetic one as a line, or paired bars per level."""
    from PIL import Image, ImageDraw

    from .images import load_font
    shapes = report["column_shapes"]
    font, small = load_font(13), load_font(11)
    w, h, top = 330, 250, 34
    rows = max(1, math.ceil(len(shapes) / columns))
    img = Image.new("RGB", (w * min(columns, max(len(shapes), 1)), top + h * rows), "white")
    draw = ImageDraw.Draw(img)
    _legend(draw, 10, 8, font)
    for i, shape in enumerate(shapes):
        x, y = (i % columns) * w, top + (i // columns) * h
        _panel(draw, shape, (x + 10, y + 4, x + w - 12, y + h - 10), font, small)
    return img


def _panel(draw, shape: dict, box: tuple[int, int, int, int], font, small) -> None:
    from .images import fit_text
    x0, y0, x1, y1 = box
    score = f"{shape['metric']} {_f(shape['score'])}"
    draw.text((x1 - draw.textlength(score, font=small), y0 + 2), score, fill="#444444", font=small)
    name = fit_text(draw, shape["column"], font, x1 - x0 - draw.textlength(score, font=small) - 8)
    draw.text((x0, y0), name, fill="black", font=font)
    gone, m = shape["missing"], shape["marginal"]
    if "edges" in m:
        end = _histogram(draw, m, (x0, y0 + 22, x1, y1 - 16), small)
    else:
        end = _bars(draw, m, (x0, y0 + 22, x1, y1 - 16), small)
    if gone["real"] or gone["synthetic"]:   # left out of the shares drawn: say how many
        note = f"missing: real {100 * gone['real']:.1f}%, synthetic {100 * gone['synthetic']:.1f}%"
        draw.text((x0, end + 4), note, fill="#666666", font=small)


def _histogram(draw, m: dict, box: tuple[int, int, int, int], font) -> float:
    """The histogram in `box`; returns the y below what it drew."""
    x0, y0, x1, y1 = box
    y1 -= 16                                   # room for the range below
    top = max(max(m["real"], default=0), max(m["synthetic"], default=0)) or 1
    k = len(m["real"])
    draw.rectangle([x0, y0, x1, y1], outline="#bbbbbb")
    bx = [x0 + (x1 - x0) * i / k for i in range(k + 1)]

    def height(v):
        return y1 - (y1 - y0 - 4) * v / top
    for i, v in enumerate(m["real"]):
        if v > 0:
            draw.rectangle([bx[i] + 1, height(v), bx[i + 1] - 1, y1], fill=REAL_COLOR)
    line = []
    for i, v in enumerate(m["synthetic"]):   # a step line, so the bars show through
        line += [(bx[i], height(v)), (bx[i + 1], height(v))]
    draw.line(line, fill=SYNTH_COLOR, width=2)
    lo, hi = f"{m['edges'][0]:.4g}", f"{m['edges'][-1]:.4g}"
    draw.text((x0, y1 + 3), lo, fill="black", font=font)
    draw.text((x1 - draw.textlength(hi, font=font), y1 + 3), hi, fill="black", font=font)
    return y1 + 16


def _bars(draw, m: dict, box: tuple[int, int, int, int], font) -> float:
    """Paired horizontal bars per level (real above synthetic), the level's name on the
    left and its two shares, real/synthetic in percent, on the right; returns the y below
    the last."""
    from .images import fit_text
    x0, y0, x1, y1 = box
    names = [fit_text(draw, str(n), font, 100) for n in m["levels"]]
    shares = ["/".join(_percent(m[t][i]) for t in ("real", "synthetic")) + "%"
              for i in range(len(names))]
    left = x0 + 6 + max((draw.textlength(n, font=font) for n in names), default=0)
    right = x1 - 6 - max((draw.textlength(t, font=font) for t in shares), default=0)
    top = max(max(m["real"], default=0), max(m["synthetic"], default=0)) or 1
    row = min(22, (y1 - y0) / max(len(names), 1))
    bar = max(2, (row - 3) / 2)
    for i, name in enumerate(names):
        y = y0 + i * row
        draw.text((x0, y + row / 2 - 7), name, fill="black", font=font)
        for k, (v, color) in enumerate(((m["real"][i], REAL_COLOR), (m["synthetic"][i], SYNTH_COLOR))):
            if v > 0:
                yy = y + 1 + k * bar
                draw.rectangle([left, yy, left + max(1, (right - left) * v / top), yy + bar - 1],
                               fill=color)
        draw.text((x1 - draw.textlength(shares[i], font=font), y + row / 2 - 7), shares[i],
                  fill="#666666", font=font)
    return y0 + len(names) * row


def _percent(share: float) -> str:
    return "<1" if 0 < share < 0.005 else f"{100 * share:.0f}"


def _color(v: float | None, stops: list[tuple[float, tuple[int, int, int]]]) -> tuple:
    """The colour of v on a piecewise-linear scale; grey where v is undefined."""
    if v is None:
        return (190, 190, 190)
    v = min(max(v, stops[0][0]), stops[-1][0])
    for (a, ca), (b, cb) in zip(stops, stops[1:]):
        if v <= b:
            f = (v - a) / (b - a)
            return tuple(int(round(p + f * (q - p))) for p, q in zip(ca, cb))
    return stops[-1][1]


ASSOCIATION = [(-1.0, (33, 102, 172)), (0.0, (247, 247, 247)), (1.0, (178, 24, 43))]
SCORE = [(0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80))]


def pairs_picture(report: dict[str, Any]) -> Any:
    """Three heatmaps, columns on both axes: the association of each pair in the real
    table and in the synthetic one (Pearson's r for two numeric columns, from -1 to 1;
    Cramer's V, from 0 to 1, for the others), and the pair-trend score (0 to 1)."""
    from PIL import Image, ImageDraw

    from .images import fit_text, load_font
    names = [c["name"] for c in report["columns"]]
    k = len(names)
    index = {n: i for i, n in enumerate(names)}
    mats = {key: [[None] * k for _ in range(k)] for key in ("real", "synthetic", "score")}
    for p in report["column_pair_trends"]:
        i, j = (index[c] for c in p["columns"])
        for key in mats:
            mats[key][i][j] = mats[key][j][i] = p[key]
    font, small = load_font(13), load_font(11)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [fit_text(probe, n, small, 110) for n in names]
    cell = max(10, min(26, 480 // max(k, 1)))
    left = 12 + int(max((probe.textlength(n, font=small) for n in labels), default=0))
    head = 30 + int(max((probe.textlength(n, font=small) for n in labels), default=0))
    side, gap = k * cell, 26
    span = max(side, 140)      # a panel's width: room for its title and colour bar
    note = ("association: Pearson's r of two numeric columns, Cramer's V of the others; "
            "grey: the diagonal, or undefined (a constant column)")
    width = max(left + 3 * (span + gap) + 10, 16 + int(probe.textlength(note, font=small)))
    img = Image.new("RGB", (width, head + side + 70), "white")
    draw = ImageDraw.Draw(img)
    titles = {"real": "real", "synthetic": "synthetic", "score": "pair-trend score"}
    for p, key in enumerate(mats):
        x0 = left + p * (span + gap)
        draw.text((x0, 6), titles[key], fill="black", font=font)
        stops = SCORE if key == "score" else ASSOCIATION
        for i in range(k):
            for j in range(k):
                fill = (225, 225, 225) if i == j else _color(mats[key][i][j], stops)
                draw.rectangle([x0 + j * cell, head + i * cell, x0 + (j + 1) * cell - 1,
                                head + (i + 1) * cell - 1], fill=fill)
        for j, label in enumerate(labels):     # column names, read bottom to top
            w, _ = _text_size(probe, label, small)
            txt = Image.new("RGB", (int(w) + 4, 14), "white")
            ImageDraw.Draw(txt).text((0, 0), label, fill="black", font=small)
            turned = txt.rotate(90, expand=True)
            img.paste(turned, (x0 + j * cell + (cell - 14) // 2, head - 4 - turned.height))
        _scale(draw, stops, x0 + 6, head + side + 12, min(span, 200) - 12, small)
    for i, label in enumerate(labels):
        draw.text((8, head + i * cell + (cell - 13) / 2), label, fill="black", font=small)
    draw.text((8, img.height - 16), note, fill="#666666", font=small)
    return img


def _scale(draw, stops, x: int, y: int, width: int, font) -> None:
    """A colour bar with its ends and middle written under it."""
    lo, hi = stops[0][0], stops[-1][0]
    for i in range(width):
        draw.line([(x + i, y), (x + i, y + 10)], fill=_color(lo + (hi - lo) * i / (width - 1), stops))
    for v, at in ((lo, 0), ((lo + hi) / 2, width / 2), (hi, width)):
        text = f"{v:g}"
        draw.text((x + at - draw.textlength(text, font=font) / 2, y + 13), text, fill="black",
                  font=font)


# --- the page -------------------------------------------------------------------------

def _png(picture) -> str:
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                    for r in rows)
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + cells + "</table>")


READING = {
    "quality": "The mean of the column-shape and column-pair-trend scores. Each lies between 0 "
               "and 1, 1 when the synthetic table matches the real one; above 0.9 is good, "
               "below 0.8 shows a clear mismatch. An exact copy of the real table scores 1, so a "
               "high quality says nothing about privacy: read it with the privacy section.",
    "shapes": "Per column: 1 - the Kolmogorov-Smirnov statistic (KS, numeric columns: the "
              "largest gap between the two cumulative distributions) or 1 - the total variation "
              "distance (TV, categorical columns: half the summed differences of the level "
              "shares), of the observed cells. 1 means the same distribution; look at the "
              "pictures of the lowest for what differs. The light bars are the real table, the "
              "orange line or bars the synthetic one.",
    "pairs": "Per pair of columns: for two numeric columns 1 - |r_real - r_synthetic| / 2 "
             "(Pearson's r); otherwise 1 - the total variation distance of the pair's "
             "contingency table (a numeric column cut into 10 bins, missing a value of its own). "
             "The pictures show how strongly each pair is related in each table (r from -1, blue, "
             "to 1, red; Cramer's V from 0 to 1): the two should look alike. A low-scoring pair is "
             "a relation the generator did not learn.",
    "efficacy": "Models trained on the synthetic rows and on the real rows, both tested on the "
                "held-out real rows. A ratio (synthetic / real) near 1 means the synthetic table "
                "serves a model as well as the real one; 0.9 is good, below 0.7 shows that the "
                "relation between the target and the other columns was not learnt.",
    "privacy": "Distance to the closest record: the mean over the columns of the gap between a "
               "synthetic row and its nearest real row (a number's gap divided by its real range, "
               "at most 1; a category's 0 or 1), from 0 (an exact copy) to 1. The share of "
               "synthetic rows closer to the training rows than to the held-out rows (both sets "
               "of the same size; ties count half) is 0.5 for a generator that does not copy; "
               "well above 0.5 means it memorised training rows. Compare the distances with "
               "those of the held-out rows to the training rows.",
}


def page(report: dict[str, Any]) -> str:
    """The report as one HTML page, its pictures inside it."""
    q, rows = report["quality"], report["rows"]
    shapes = sorted(report["column_shapes"], key=lambda s: -1 if s["score"] is None else s["score"])
    pairs = [p for p in sorted(report["column_pair_trends"],
                               key=lambda p: -1 if p["score"] is None else p["score"])][:15]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>gankit synthetic-table report"
        "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left}th{background:#f0f0f0}img{max-width:100%}p.how{color:#444}pre{white-space:pre-wrap}</style>"
        "</head><body><h1>Synthetic table report</h1>",
        f"<pre>{html.escape(summary(report))}</pre>",
        f"<p>{rows['real']:,} real rows, {rows['synthetic']:,} synthetic rows"
        + (f", {rows['holdout']:,} held-out rows" if "holdout" in rows else "")
        + f"; seed {report['seed']}."
        + (f" Left out (no value in the real table): {html.escape(', '.join(report['left_out']))}."
           if report["left_out"] else "") + "</p>",
        "<h2>Quality</h2>", f"<p class='how'>{READING['quality']}</p>",
        _table(["score", "value"], [["quality", _f(q["score"])], ["column shapes", _f(q["column_shapes"])],
                                    ["column pair trends (every pair)", _f(q["column_pair_trends"])],
                                    ["column pair trends (associated pairs, as SDMetrics)",
                                     _f(q["trends_associated"])],
                                    ["SDMetrics' QualityReport score", _f(q["sdmetrics_score"])]]),
        "<h2>Column shapes</h2>", f"<p class='how'>{READING['shapes']}</p>",
        _table(["column", "kind", "metric", "score", "missing (real / synthetic)"],
               [[s["column"], s["kind"], s["metric"], _f(s["score"]),
                 f"{100 * s['missing']['real']:.1f}% / {100 * s['missing']['synthetic']:.1f}%"]
                for s in shapes]),
        f"<img alt='column marginals' src='{_png(shapes_picture(report))}'>",
        "<h2>Column pair trends</h2>", f"<p class='how'>{READING['pairs']}</p>",
        f"<img alt='pair associations' src='{_png(pairs_picture(report))}'>",
        "<p>The lowest-scoring pairs:</p>",
        _table(["columns", "metric", "score", "association (real)", "association (synthetic)",
                "counted by SDMetrics"],
               [[" x ".join(p["columns"]), p["metric"], _f(p["score"]), _f(p["real"]),
                 _f(p["synthetic"]), "yes" if p["associated"] else "no"] for p in pairs]),
        _efficacy_html(report["efficacy"]), _privacy_html(report["privacy"]),
        "</body></html>"]
    return "\n".join(parts)


def _efficacy_html(e: dict | None) -> str:
    head = f"<h2>Machine-learning efficacy</h2><p class='how'>{READING['efficacy']}</p>"
    if not e:
        return head + "<p>Not measured: it needs a target column and held-out real rows.</p>"
    what = html.escape(e["metric"] + (f" of the class {e['positive']!r}" if "positive" in e else ""))
    rows = [[name, _f(r["real"]), _f(r["synthetic"]), _f(r["ratio"], 2)]
            for name, r in e["models"].items()]
    rows.append(["mean", _f(e["real"]), _f(e["synthetic"]), _f(e["ratio"], 2)])
    return (head + f"<p>Target {html.escape(e['target'])} ({e['task']}); score: {what}.</p>"
            + _table(["model", "trained on real", "trained on synthetic", "ratio"], rows))


def _privacy_html(p: dict) -> str:
    head = f"<h2>Privacy</h2><p class='how'>{READING['privacy']}</p>"
    rows = [["synthetic rows measured", f"{p['synthetic_rows']:,}"],
            ["distance to the closest training row: median / 5th percentile",
             f"{_f(p['dcr_to_training']['median'])} / {_f(p['dcr_to_training']['p5'])}"],
            ["exact copies of a training row", f"{100 * p['exact_copies']:.2f}%"]]
    if p["closer_to_training"] is not None:
        rows += [["closer to training rows than to held-out rows",
                  f"{100 * p['closer_to_training']:.1f}% (of {p['reference_rows']:,} rows each)"],
                 ["distance to the closest held-out row: median / 5th percentile",
                  f"{_f(p['dcr_to_holdout']['median'])} / {_f(p['dcr_to_holdout']['p5'])}"],
                 ["held-out rows' distance to the closest training row: median / 5th percentile",
                  f"{_f(p['holdout_dcr_to_training']['median'])} / "
                  f"{_f(p['holdout_dcr_to_training']['p5'])}"],
                 ["closer to training rows, all rows of both sets (expected without copying)",
                  f"{100 * p['closer_to_training_all_rows']:.1f}% "
                  f"({100 * p['expected_all_rows']:.1f}%)"]]
    return head + _table(["measure", "value"], rows)


def write_html(report: dict[str, Any], path: str | Path) -> None:
    """The page (see `page`), written atomically."""
    from .files import atomic_write
    text = page(report)
    with atomic_write(path, fix=f"choose another {option('html')}") as f:
        f.write(text.encode())
