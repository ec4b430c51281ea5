// Generate: a grid from a seed; click two samples to walk between them (slerp).
import {h, api, clear} from "./dom.js";

export function generateTab(body, run) {
  const u = run.uses;
  const seed = h("input", {type: "number", value: 0, min: 0, class: "short", "aria-label": "seed"});
  const again = h("button", {}, "new seed");
  const cls = h("select", {"aria-label": "class"}, h("option", {value: ""}, "every class"),
    ...u.classes.map((c, i) => h("option", {value: i}, c)));
  const ema = h("input", {type: "checkbox", checked: u.ema, disabled: !u.ema});
  const psi = h("input", {type: "number", value: 1, min: 0.05, max: 1, step: 0.05, class: "short",
                          "aria-label": "truncation"});
  // The model's sampling settings (an ODE's steps, a guidance weight), at their trained values;
  // not those that change only its likelihood (classification), which no sample shows.
  const sampling = (u.sampling || []).filter(f => !f.likelihood_only).map(f => ({name: f.name, help: f.help, input: f.choices
    ? h("select", {"aria-label": f.name}, ...f.choices.map(c => h("option", {value: c, selected: c === f.value}, c)))
    : h("input", {type: "number", value: f.value, class: "short", "aria-label": f.name,
                  min: 0, step: f.type === "int" ? 1 : 0.5})}));
  const go = h("button", {class: "primary"}, "generate");
  const stage = h("div", {class: "stage"});
  const img = h("img", {class: "grid pick", alt: "generated samples"});
  const marks = h("div", {class: "marks"});
  stage.append(img, marks);
  const hint = h("p", {class: "muted"}, "Click two samples to walk from one to the other.");
  const walkBox = h("div", {class: "walk"});
  body.append(h("div", {class: "row"}, h("label", {}, "seed ", seed), again,
      u.conditional ? h("label", {}, "class ", cls) : "",
      h("label", {title: u.ema ? "the averaged weights the run kept" : "this run kept no average (--ema)"}, ema, " EMA weights"),
      h("label", {title: "the truncation trick: below 1, more typical and less varied samples"}, "truncation ", psi),
      ...sampling.map(f => h("label", {title: f.help}, f.name.replace("_", " ") + " ", f.input)), go),
    stage, hint, walkBox);
  let grid = null, picks = [], settings = null;

  async function generate() {
    settings = {run: run.id, seed: +seed.value || 0, label: cls.value === "" ? null : +cls.value,
                ema: ema.checked, n: u.conditional && cls.value === "" ? 80 : 36,
                truncation: +psi.value || 1,
                ...Object.fromEntries(sampling.map(f => [f.name, f.input.value]))};
    go.disabled = true;
    try { grid = await api("/api/generate", settings); } finally { go.disabled = false; }
    img.src = grid.image;
    picks = []; clear(marks); clear(walkBox);
  }
  go.addEventListener("click", generate);
  again.addEventListener("click", () => { seed.value = Math.floor(Math.random() * 1e9); generate(); });
  img.addEventListener("click", e => {
    if (!grid) return;
    const r = img.getBoundingClientRect();
    const k = img.naturalWidth / r.width;                     // page pixels -> picture pixels
    const cell = (grid.width + grid.pad) * grid.scale;
    const col = Math.floor((e.clientX - r.left) * k / cell), row = Math.floor((e.clientY - r.top) * k / cell);
    const i = row * grid.ncol + col;
    if (col >= grid.ncol || i >= grid.n) return;
    picks = picks.length >= 2 ? [i] : [...picks, i];
    clear(marks);
    for (const p of picks) {
      const [pr, pc] = [Math.floor(p / grid.ncol), p % grid.ncol];
      marks.append(h("div", {class: "mark", style: `left:${(pc * cell + grid.pad * grid.scale) / k}px;top:${(pr * cell + grid.pad * grid.scale) / k}px;` +
        `width:${grid.width * grid.scale / k}px;height:${grid.height * grid.scale / k}px`}));
    }
    if (picks.length === 2) walk(...picks);
  });

  function walk(a, b) {
    const q = new URLSearchParams({...settings, label: settings.label ?? "", a, b, frames: 24});
    const strip = new Image();
    const canvas = h("canvas", {class: "frame", width: grid.width * 4, height: grid.height * 4});
    const slider = h("input", {type: "range", min: 0, max: 23, value: 0, "aria-label": "walk position"});
    const gif = h("a", {class: "button", href: "/api/walk?" + q + "&format=gif", download: "walk.gif"}, "download walk as GIF");
    const kept = grid.labels ? `, class ${grid.class_names[grid.labels[a]]} throughout` : "";
    clear(walkBox).append(h("h3", {}, `Walk from sample ${a + 1} to sample ${b + 1} (slerp${kept})`),
      h("div", {class: "row"}, canvas, slider, gif));
    const g = canvas.getContext("2d");
    g.imageSmoothingEnabled = false;
    const show = () => {
      const fw = strip.naturalWidth / 24, fh = strip.naturalHeight;
      g.drawImage(strip, +slider.value * fw, 0, fw, fh, 0, 0, canvas.width, canvas.height);
    };
    strip.onload = show;
    slider.addEventListener("input", show);
    strip.src = "/api/walk?" + q;
  }
  generate();
}
