// Evaluate: gankit eval on the run's checkpoint, with progress and cancel.
import {h, api, clear, follow} from "./dom.js";

export function evaluateTab(body, run) {
  const n = h("input", {type: "number", min: 2, placeholder: "held-out size", class: "short", "aria-label": "samples"});
  const ema = h("input", {type: "checkbox", checked: run.uses.ema, disabled: !run.uses.ema});
  const go = h("button", {class: "primary"}, "evaluate");
  const jobBox = h("div"), out = h("pre", {class: "code", id: "scores"});
  body.append(h("p", {class: "muted"}, "FID, KID, precision/recall and classes of the samples against the " +
      "training split, on features of gankit's classifier (trained once per dataset, then cached) — " +
      "the same numbers as `gankit eval --checkpoint`, kept in the run as eval.json."),
    h("div", {class: "row"}, h("label", {}, "samples ", n), h("label", {}, ema, " EMA weights"), go),
    jobBox, out);
  if (run.evaluation) out.textContent = "The run's latest evaluation:\n\n" + run.evaluation;
  go.addEventListener("click", async () => {
    go.disabled = true;
    clear(out);
    try {
      const job = await api("/api/evaluate", {run: run.id, n: n.value ? +n.value : null, ema: ema.checked});
      const r = await follow(job, jobBox);
      if (r) out.textContent = r.table;
    } finally { go.disabled = false; }
  });
}
