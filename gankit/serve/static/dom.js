// The few helpers every tab uses: building elements safely, calling the API, jobs.

// h("div", {class: "x", onclick: f}, "text", child): strings become text nodes, never markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "checked" || k === "hidden" || k === "disabled") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return el;
}

export function clear(el) { el.replaceChildren(); return el; }

export function toast(message, bad = true) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 6000);
}

// fetch JSON; an error answer shows its one line and rejects.
export async function api(url, body) {
  const opts = body === undefined ? {} : {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)};
  const r = await fetch(url, opts);
  const text = await r.text();
  let data;
  try { data = JSON.parse(text); } catch { data = {error: text}; }
  if (!r.ok) { toast(data.error || `${r.status} ${r.statusText}`); throw new Error(data.error); }
  return data;
}


// A job (evaluation, inpainting): progress bar and cancel button in `box`; resolves with
// its result, or null when it failed or was cancelled.
export function follow(job, box) {
  const bar = h("div", {class: "bar"});
  const what = h("span", {class: "job-phase"}, "queued");
  const cancel = h("button", {class: "cancel"}, "cancel");
  const meter = h("div", {class: "progress job"}, bar, what);
  clear(box).append(h("div", {class: "row"}, meter, cancel));
  cancel.addEventListener("click", () => api(`/api/jobs/${job.id}/cancel`, {}));
  return new Promise(resolve => {
    const events = new EventSource(`/api/jobs/${job.id}/events`);
    events.addEventListener("job", e => {
      const j = JSON.parse(e.data);
      const f = j.total ? j.done / j.total : 0;
      bar.style.width = `${(100 * f).toFixed(1)}%`;
      what.textContent = j.state !== "running" ? j.state : j.total ? `${j.phase} ${Math.round(100 * f)}%` : `${j.phase}…`;
      if (["done", "failed", "cancelled"].includes(j.state)) {
        events.close();
        cancel.remove();
        if (j.state === "failed") toast(j.error);
        resolve(j.state === "done" ? j.result : null);
      }
    });
    events.onerror = () => { events.close(); what.textContent = "lost the server"; resolve(null); };
  });
}

// Mouse or pen strokes on a canvas, in the canvas's own pixel coordinates.
export function strokes(canvas, {down, move, up}) {
  const at = e => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  let drawing = false;
  canvas.addEventListener("pointerdown", e => {
    drawing = true; canvas.setPointerCapture(e.pointerId); down && down(...at(e)); e.preventDefault();
  });
  canvas.addEventListener("pointermove", e => { if (drawing) move && move(...at(e)); });
  const end = e => { if (drawing) { drawing = false; up && up(...at(e)); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}
