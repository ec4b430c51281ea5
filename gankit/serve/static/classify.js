// Classify: draw a digit; p(y|x) by Bayes' rule on the model's likelihood, as you draw.
import {h, api, clear, strokes} from "./dom.js";

const SIDE = 280;

export function classifyTab(body, run) {
  const pad = h("canvas", {width: SIDE, height: SIDE, class: "draw", id: "pad"});
  const seen = h("img", {class: "pixels seen", alt: "what the model sees"});
  const bars = h("div", {class: "bars", id: "bars"});
  const wipe = h("button", {}, "clear");
  const verdict = h("p", {class: "verdict"});
  body.append(h("p", {class: "muted"}, "Draw a digit with the mouse. p(y|x) ∝ p(x|y) p(y): the model's " +
      "likelihood of your drawing under each class, by Bayes' rule."),
    h("div", {class: "row top"}, h("div", {}, pad, h("div", {class: "row"}, wipe)),
      h("figure", {}, seen, h("figcaption", {}, "what the model sees")),
      h("div", {class: "grow"}, bars, verdict)));
  const g = pad.getContext("2d");
  const blank = () => { g.fillStyle = "#000"; g.fillRect(0, 0, SIDE, SIDE); };
  blank();
  g.strokeStyle = "#fff"; g.lineWidth = 22; g.lineCap = g.lineJoin = "round";
  let last = null, busy = false, again = false;

  async function ask() {                 // one request at a time; the latest drawing wins
    if (busy) { again = true; return; }
    busy = true;
    try {
      const r = await api("/api/classify", {run: run.id, image: pad.toDataURL("image/png")});
      seen.src = r.seen;
      show(r);
    } catch { /* the toast said why */ }
    busy = false;
    if (again) { again = false; ask(); }
  }
  function show(r) {
    const best = Math.max(...r.probs);
    clear(bars).append(...r.classes.map((c, i) => h("div", {class: "barrow" + (r.probs[i] === best ? " best" : "")},
      h("span", {class: "cls"}, c),
      h("div", {class: "track"}, h("div", {class: "fill", style: `width:${(100 * r.probs[i]).toFixed(1)}%`})),
      h("span", {class: "num"}, r.probs[i].toFixed(3)))));
    verdict.textContent = `most probable: ${r.predicted} (${(100 * best).toFixed(1)}%), prior: ${r.prior}`;
  }
  let timer = null;
  strokes(pad, {
    down(x, y) { last = [x, y]; g.beginPath(); g.arc(x, y, g.lineWidth / 2, 0, 7); g.fillStyle = "#fff"; g.fill(); },
    move(x, y) {
      g.beginPath(); g.moveTo(...last); g.lineTo(x, y); g.stroke(); last = [x, y];
      if (!timer) timer = setTimeout(() => { timer = null; ask(); }, 150);   // as you draw
    },
    up() { ask(); },
  });
  wipe.addEventListener("click", () => { blank(); clear(bars); verdict.textContent = ""; seen.removeAttribute("src"); });
}
