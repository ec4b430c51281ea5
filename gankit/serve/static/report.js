// Report: a table generator's synthetic rows judged against its table (RUN/report.json,
// written by gankit synth as it trains; gankit/synth_report.py): the scores, privacy and
// efficacy, the worst columns and pairs, and the two pictures, which the server draws
// from the same file. Column names come from a user's CSV: text nodes only (h()).
import {h} from "./dom.js";

const num = (x, digits = 3) => typeof x === "number" ? x.toFixed(digits) : "n/a";
const pct = (x, digits = 1) => typeof x === "number" ? `${(100 * x).toFixed(digits)}%` : "n/a";
const grade = x => typeof x !== "number" ? "" : x >= 0.9 ? "ok" : x >= 0.8 ? "warn" : "bad";

export function reportTab(body, run) {
  const r = run.report;
  if (!r || r.error) { body.append(...missing(run, r && r.error)); return; }
  const q = r.quality || {}, rows = r.rows || {};
  const picture = name => `/api/report/${name}?` + new URLSearchParams({run: run.id, v: r.version});
  const json = "/files/" + `${run.id}/report.json`.split("/").map(encodeURIComponent).join("/");
  const links = [h("a", {href: json}, "report.json")];
  if (r.page) links.unshift(h("a", {href: "/api/report/page.html?" + new URLSearchParams({run: run.id}),
    target: "_blank", rel: "noopener"}, "the whole report (report.html)"), " · ");
  body.append(
    h("div", {class: "row"},
      h("span", {class: "score badge " + grade(q.score), id: "quality"}, `quality ${num(q.score)}`),
      h("span", {}, `column shapes ${num(q.column_shapes)} · column pair trends ${num(q.column_pair_trends)}`),
      h("span", {class: "muted", title: "SDMetrics' QualityReport averages only the pairs associated in the real table"},
        `(SDMetrics' score, associated pairs only: ${num(q.sdmetrics_score)})`)),
    h("p", {class: "muted small"}, "Each score lies between 0 and 1, 1 when the synthetic rows match the real ones; " +
      "above 0.9 is good, below 0.8 a clear mismatch. A copy of the table scores 1: read it with the privacy line. " +
      `${(rows.real ?? 0).toLocaleString()} real rows, ${(rows.synthetic ?? 0).toLocaleString()} synthetic rows` +
      (rows.holdout ? `, ${rows.holdout.toLocaleString()} held-out rows` : "") + `; ${r.columns} columns, ${r.pairs} pairs.`,
      r.left_out && r.left_out.length ? ` Left out (no value in the real table): ${r.left_out.join(", ")}.` : ""),
    h("p", {id: "privacy"}, h("b", {}, "Privacy: "), privacy(r.privacy || {})),
    h("p", {id: "efficacy", class: r.efficacy ? "" : "muted"}, h("b", {}, "Efficacy: "), efficacy(r.efficacy)),
    h("div", {class: "row top"},
      worstTable("Worst columns", ["column", "metric", "score", "missing real / synthetic"],
        (r.worst_columns || []).map(c => [c.column, c.metric, num(c.score),
          c.missing ? `${pct(c.missing.real)} / ${pct(c.missing.synthetic)}` : ""])),
      worstTable("Worst pairs", ["columns", "metric", "score", "association real / synthetic"],
        (r.worst_pairs || []).map(p => [[].concat(p.columns ?? []).join(" × "), p.metric, num(p.score),
          `${num(p.real, 2)} / ${num(p.synthetic, 2)}`]))),
    h("p", {class: "row"}, ...links),
    h("h3", {}, "Column shapes: each column's values, real against synthetic"),
    h("img", {src: picture("shapes.png"), id: "shapes", class: "report", alt: "column marginals, real and synthetic"}),
    h("h3", {}, "Column pair trends: how each pair of columns relates, in each table"),
    h("img", {src: picture("pairs.png"), id: "pairs", class: "report", alt: "pair associations, real and synthetic"}));
}

function privacy(p) {
  const dcr = p.dcr_to_training || {};
  const parts = [`${pct(p.exact_copies)} exact copies of a training row; distance to the closest training row: ` +
    `median ${num(dcr.median)}, 5th percentile ${num(dcr.p5)} (0: a copy, 1: as far as can be).`];
  if (typeof p.closer_to_training === "number") {
    parts.push(` ${pct(p.closer_to_training)} of synthetic rows are closer to training rows than to held-out ones ` +
      `(50% = no copying; over all rows of both ${pct(p.closer_to_training_all_rows)} against ` +
      `${pct(p.expected_all_rows)} expected).`);
  } else {
    parts.push(" Whether rows lie closer to the training rows than to rows the generator never saw needs " +
      "held-out rows: gankit synth-report --holdout.");
  }
  return parts;
}

function efficacy(e) {
  if (!e) return "not measured: it trains models on the synthetic rows and tests them on held-out real rows " +
    "(gankit synth-report --target COLUMN --holdout HOLDOUT.csv).";
  const what = e.metric + (e.positive !== undefined ? ` of ${JSON.stringify(e.positive)}` : "");
  const models = e.models ? Object.keys(e.models).length : 0;
  return `${e.target} (${what}, mean of ${models} models): trained on synthetic ${num(e.synthetic)}, ` +
    `on real ${num(e.real)}, ratio ${num(e.ratio, 2)} (near 1: the synthetic rows serve as well).`;
}

function worstTable(title, head, rows) {
  return h("div", {class: "grow"}, h("h3", {}, title), rows.length
    ? h("table", {class: "runs worst"}, h("thead", {}, h("tr", {}, ...head.map(t => h("th", {}, t)))),
        h("tbody", {}, ...rows.map(r => h("tr", {}, ...r.map((c, i) => h("td", {class: i > 1 ? "num" : ""}, c))))))
    : h("p", {class: "muted"}, "none"));
}

// No report.json (or one this version cannot read): how to get one.
function missing(run, error) {
  const folder = run.folder || "RUN", table = run.data || "TABLE.csv";
  return [
    error ? h("p", {class: "badge bad"}, error) : h("p", {}, "This run has no report: its folder holds no report.json."),
    h("p", {}, "gankit synth writes report.json and report.html into a run folder when it trains the run " +
      "(not when it reuses a trained one, nor with --condition or --no-report). For this run: draw rows from it, " +
      "and judge them against its table (with --holdout, real rows it never saw, for the privacy share; " +
      "with --target COLUMN as well, the efficacy):"),
    h("pre", {class: "code wrap", id: "how"},
      `gankit synth ${quote(table)} \\\n    --checkpoint ${quote(folder)} --out SYNTH.csv\n` +
      `gankit synth-report ${quote(table)} SYNTH.csv --holdout HOLDOUT.csv \\\n` +
      `    --json ${quote(folder + "/report.json")} \\\n    --html ${quote(folder + "/report.html")}`),
    h("p", {class: "muted"}, "A new run gets its report as it trains: gankit synth TABLE.csv --out SYNTH.csv --run DIR."),
  ];
}

// A word for a POSIX shell: as it is when it needs no quoting.
function quote(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
