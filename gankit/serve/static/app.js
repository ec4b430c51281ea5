// gankit's page. Plain modules, no framework: every piece of text from a run (names,
// configs) goes through textContent, never innerHTML, so a folder named like markup
// shows as text.
//
// Each view is its own URL (/ and /run/ID/TAB) and arrives with its data inside the HTML
// (the "boot" element), so it is drawn before the load event: a plain headless capture
// shows the page. A training run is followed by short requests every second, never an
// endless stream, so a page load settles.
import {LineChart, colour} from "./chart.js";
import {generateTab} from "./generate.js";
import {inpaintTab} from "./inpaint.js";
import {classifyTab} from "./classify.js";
import {evaluateTab} from "./evaluate.js";
import {reportTab} from "./report.js";
import {h, api, clear} from "./dom.js";

const view = document.getElementById("view");
const POLL_MS = 1000;            // how often a training run is asked what changed
const IDLE_POLL_MS = 5000;       // and a run that is not training (it may be resumed)

function crumbs(...parts) {
  const nav = clear(document.getElementById("crumbs"));
  for (const p of parts) nav.append(" / ", p);
}

export function runUrl(id, tab) {
  return "/run/" + encodePath(id) + (tab && tab !== "training" ? "/" + tab : "");
}

// --- the runs ---------------------------------------------------------------------------

const STATES = {training: "live", finished: "ok", interrupted: "warn", diverged: "bad"};

function runsPage(list) {
  crumbs();
  document.getElementById("root").textContent = list.root;
  const chosen = new Set(JSON.parse(sessionStorage.getItem("compare") || "[]"));
  const body = h("tbody");
  for (const r of list.runs) {
    const box = h("input", {type: "checkbox", checked: chosen.has(r.id), "aria-label": "compare " + r.id});
    box.addEventListener("change", () => {
      box.checked ? chosen.add(r.id) : chosen.delete(r.id);
      sessionStorage.setItem("compare", JSON.stringify([...chosen]));
      compare();
    });
    body.append(h("tr", {"data-run": r.id},
      h("td", {}, box),
      h("td", {}, r.thumbnail ? h("img", {src: "/files/" + encodePath(r.thumbnail), class: "thumb", alt: ""}) : ""),
      h("td", {}, h("a", {href: runUrl(r.id), class: "run-name"}, r.id)),
      h("td", {}, r.model || "?"), h("td", {}, r.data || "?"),
      h("td", {}, progress(r.step, r.steps)),
      h("td", {}, h("span", {class: "badge " + (STATES[r.state] || ""), title: r.holder ? `process ${r.holder.pid}: ${r.holder.command}` : ""}, r.state)),
      h("td", {class: "num", title: r.fid_from || ""}, r.fid === null ? "–" : r.fid.toFixed(2)),
      h("td", {title: new Date(r.changed * 1000).toLocaleString()}, ago(r.changed))));
  }
  const chartBox = h("div");
  const metric = h("select", {"aria-label": "curve to compare"});
  clear(view).append(
    h("section", {},
      h("div", {class: "row"}, h("h2", {}, `Runs (${list.runs.length})`),
        h("button", {onclick: refresh}, "refresh")),
      list.runs.length ? h("table", {class: "runs"},
        h("thead", {}, h("tr", {}, ...["", "", "run", "model", "data", "step", "state", "FID", "changed"].map(t => h("th", {}, t)))),
        body) : h("p", {class: "muted"}, "No runs here yet: gankit train --out " + list.root + "/NAME")),
    h("section", {}, h("div", {class: "row"}, h("h2", {}, "Compare"), metric,
      h("span", {class: "muted"}, "tick runs above to overlay their curves")), chartBox));
  const chart = new LineChart(chartBox.appendChild(h("canvas", {class: "chart wide"})));
  let details = [];
  metric.addEventListener("change", draw);
  async function compare() {
    details = await Promise.all([...chosen].filter(id => list.runs.some(r => r.id === id))
      .map(id => api("/api/run?run=" + encodeURIComponent(id))));
    const names = [...new Set(details.flatMap(d => d.columns.filter(c => c !== "step" && c !== "seconds")))];
    const keep = metric.value;
    clear(metric).append(...names.map(n => h("option", {value: n}, n)));
    if (names.includes(keep)) metric.value = keep; else if (names.includes("fid")) metric.value = "fid";
    draw();
  }
  function draw() {
    chart.title = metric.value ? metric.value + " by step" : "";
    chart.set(details.map((d, i) => ({name: d.id, color: colour(i), points: column(d, metric.value)})));
  }
  compare();
}

async function refresh() { runsPage(await api("/api/runs")); }

function progress(step, steps) {
  const f = steps ? Math.min(1, step / steps) : 0;
  return h("div", {class: "progress", title: `${step} of ${steps ?? "?"}`},
    h("div", {class: "bar", style: `width:${(100 * f).toFixed(1)}%`}),
    h("span", {}, `${step.toLocaleString()} / ${steps ? steps.toLocaleString() : "?"}`));
}

function ago(t) {
  const s = Date.now() / 1000 - t;
  if (s < 90) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function encodePath(p) { return p.split("/").map(encodeURIComponent).join("/"); }

function column(detail, name) {
  const i = detail.columns.indexOf(name), s = detail.columns.indexOf("step");
  return i < 0 ? [] : detail.rows.map(r => [r[s], r[i]]);
}

// --- one run ----------------------------------------------------------------------------

const TABS = ["training", "generate", "inpaint", "classify", "evaluate", "report", "about"];

function runPage(run, tab) {
  crumbs(h("a", {href: runUrl(run.id)}, run.id));
  document.getElementById("root").textContent = "";
  document.title = `${run.id} · gankit`;
  const head = h("div", {class: "runhead"});
  const tabs = h("nav", {class: "tabs"}, ...TABS.filter(t => t === "training" || t === "about" || run.uses[t])
    .map(t => h("a", {href: runUrl(run.id, t), class: t === tab ? "on" : ""}, t)));
  const body = h("section", {id: "tab-" + tab});
  clear(view).append(head, tabs, body);
  const showHead = r => clear(head).append(
    h("h2", {class: "run-name"}, r.id),
    h("span", {class: "muted"}, `${r.model || "?"} on ${r.data || "?"}`),
    h("span", {class: "badge " + (STATES[r.state] || "")}, r.state), progress(r.step, r.steps),
    r.fid === null ? "" : h("span", {title: r.fid_from || ""}, `FID ${r.fid.toFixed(2)}`));
  showHead(run);
  if (tab === "training") trainingTab(body, run, showHead);
  else if (tab === "about") aboutTab(body, run);
  else if (!run.uses[tab]) body.append(h("p", {class: "muted"}, !run.checkpoint
      ? "This run has no checkpoint yet: it is saved every --checkpoint-every steps."
      : tab === "report" ? "A report judges a table generator's rows (gankit synth); this run is not one."
      : `${run.model} cannot ${tab}.`));
  else ({generate: generateTab, inpaint: inpaintTab, classify: classifyTab, evaluate: evaluateTab,
         report: reportTab})[tab](body, run);
}

function aboutTab(body, run) {
  body.append(h("h3", {}, "config.toml"), h("pre", {class: "code"}, run.config || "(none)"),
    h("h3", {}, "last checkpoint"), h("pre", {class: "code"}, run.meta ? JSON.stringify(run.meta, null, 2) : "(none yet)"));
}

// Curves that grow while the run trains (server-sent events), and the sample grids.
function trainingTab(body, run, showHead) {
  const charts = h("div", {class: "charts"});
  const make = (title, opts = {}) => new LineChart(charts.appendChild(h("canvas", {class: "chart"})), {title, ...opts});
  const loss = make("losses by step"), acc = make("D accuracy", {yRange: [0, 1]});
  const verdict = make("D's mean verdict: real, fake", {});
  const fid = make("FID (lower is better)");
  const note = h("p", {class: "muted small"}, "D's verdict: a D that wins outright says ~1 on real and ~0 on fake " +
    "images and G stops learning (the guide's warning); healthy training keeps the two apart but short of the ends. " +
    "Separate learning rates (--lr-d, --lr-g) move the balance.");
  const grids = h("div", {class: "grids"});
  body.append(charts, note, grids);
  let columns = run.columns, rows = run.rows;
  const g = gridPlayer(grids, run);
  function redraw() {
    const d = {columns, rows};
    const losses = columns.filter(c => /loss|^rec$|^kl$|^gp$|^r1$|^mse$/.test(c));
    loss.set(losses.map((c, i) => ({name: c, color: colour(i), points: column(d, c)})));
    acc.canvas.hidden = !columns.includes("d_acc");
    acc.set(columns.includes("d_acc") ? [{name: "d_acc", color: colour(0), points: column(d, "d_acc")}] : []);
    const hasVerdict = columns.includes("d_real");
    verdict.canvas.hidden = note.hidden = !hasVerdict;
    verdict.yRange = run.bce ? [0, 1] : null;       // probabilities: shade where D has won
    verdict.bands = run.bce ? [{lo: 0.95, hi: 1, color: "#fee2e2"}, {lo: 0, hi: 0.05, color: "#fee2e2"}] : [];
    verdict.set(hasVerdict ? [{name: "on real", color: colour(2), points: column(d, "d_real")},
                              {name: "on fake", color: colour(1), points: column(d, "d_fake")}] : []);
    fid.canvas.hidden = !columns.includes("fid");
    fid.set(columns.includes("fid") ? [{name: "fid", color: colour(3), points: column(d, "fid").filter(p => p[1] !== null)}] : []);
  }
  redraw();
  // What changed since the last look, once a second while the run trains (every few
  // seconds otherwise: it may be resumed), after the page is drawn.
  async function poll() {
    if (document.visibilityState === "visible") {
      const q = new URLSearchParams({run: run.id, since: run.stamp, rows: rows.length,
                                     last: rows.length ? rows[rows.length - 1][0] : ""});
      try {
        const m = await api("/api/run/changes?" + q);
        run.stamp = m.stamp;
        if (m.run) {
          Object.assign(run, m.run);
          columns = m.run.columns;
          rows = rows.slice(0, m.start).concat(m.rows);
          showHead(run); g.update(run.grids, run.recons); redraw();
        }
      } catch { /* the server said why, in the toast; try again later */ }
    }
    setTimeout(poll, run.state === "training" ? POLL_MS : IDLE_POLL_MS);
  }
  setTimeout(poll, run.state === "training" ? POLL_MS : IDLE_POLL_MS);
}

// Sample grids with a step slider, play button, jump-to-step and GIF download.
function gridPlayer(box, run) {
  const img = h("img", {class: "grid", alt: "sample grid"});
  const recon = h("img", {class: "grid", alt: "reconstructions"});
  const slider = h("input", {type: "range", min: 0, value: 0, "aria-label": "step"});
  const stepLabel = h("span", {class: "num"});
  const jump = h("input", {type: "number", placeholder: "step", "aria-label": "jump to step", class: "short"});
  const play = h("button", {}, "▶ play");
  const gif = h("a", {href: "/api/grids.gif?run=" + encodeURIComponent(run.id), download: "", class: "button"}, "download as GIF");
  let grids = [], recons = [], timer = null, follow = true;
  box.append(h("h3", {}, "Samples (fixed noise)"),
    h("div", {class: "row"}, play, slider, stepLabel, jump, gif),
    h("div", {class: "row top"}, img, recon));
  function show(i) {
    if (!grids.length) { img.alt = "no sample grids yet"; return; }
    i = Math.max(0, Math.min(grids.length - 1, i));
    slider.value = i;
    img.src = "/files/" + encodePath(grids[i].url);
    stepLabel.textContent = `step ${grids[i].step.toLocaleString()}`;
    const r = recons.find(x => x.step === grids[i].step);
    recon.hidden = !r;
    if (r) recon.src = "/files/" + encodePath(r.url);
    follow = i === grids.length - 1;
  }
  slider.addEventListener("input", () => show(+slider.value));
  jump.addEventListener("change", () => {
    const want = +jump.value;
    let best = 0;
    grids.forEach((g, i) => { if (Math.abs(g.step - want) < Math.abs(grids[best].step - want)) best = i; });
    show(best);
  });
  play.addEventListener("click", () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "▶ play"; return; }
    play.textContent = "❚❚ pause";
    if (+slider.value >= grids.length - 1) show(0);
    timer = setInterval(() => {
      if (+slider.value >= grids.length - 1) { play.click(); return; }
      show(+slider.value + 1);
    }, 250);
  });
  function update(g, r) {
    const wasLast = follow;
    grids = g || []; recons = r || [];
    box.hidden = !grids.length;   // none yet, or a model of tables, which draws no grids
    slider.max = Math.max(0, grids.length - 1);
    gif.hidden = !grids.length;
    show(wasLast ? grids.length - 1 : +slider.value);   // a live run: follow the newest grid
  }
  update(run.grids, run.recons);
  return {update};
}

// --- start: the view this URL names, drawn from the data the HTML brought ----------------

const bootElement = document.getElementById("boot");
const boot = bootElement ? JSON.parse(bootElement.textContent) : {view: "runs", ...await api("/api/runs")};
if (location.hash.startsWith("#/")) {          // a link from when views lived in the hash
  const old = decodeURIComponent(location.hash.slice(1));
  location.replace(old === "/" ? "/" : encodePath(old));
} else if (boot.view === "run") {
  runPage(boot.run, boot.tab);
} else if (boot.view === "runs") {
  runsPage(boot);
  // back to the tab: the runs may have moved on meanwhile
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refresh(); });
} else {
  clear(view).append(h("p", {class: "muted"}, boot.error, " ", h("a", {href: "/"}, "all runs")));
}
