// A small line chart on a canvas: enough for loss and FID curves, nothing more.
// series: [{name, color, points: [[x, y], ...]}]; y may be null (a gap).

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
                 "#be185d", "#4d7c0f", "#7c3aed", "#b45309"];

export function colour(i) { return PALETTE[i % PALETTE.length]; }

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

function label(v) {
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1000) return String(v);
  if (a >= 1e4) return (v / 1000).toFixed(0) + "k";
  if (a >= 1000) return (v / 1000).toFixed(1) + "k";
  if (a >= 10 || a === 0) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}

export class LineChart {
  constructor(canvas, {title = "", yRange = null} = {}) {
    this.canvas = canvas;
    this.title = title;
    this.yRange = yRange;      // fixed [lo, hi], e.g. [0, 1] for probabilities
    this.series = [];
    this.bands = [];           // [{lo, hi, color}] shaded y ranges
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  set(series) { this.series = series; this.draw(); }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = "12px system-ui, sans-serif";
    const pad = {l: 46, r: 10, t: 22, b: 36};
    const pts = this.series.flatMap(s => s.points.filter(p => p[1] !== null && isFinite(p[1])));
    g.fillStyle = "#111"; g.fillText(this.title, pad.l, 14);
    if (!pts.length) {
      g.fillStyle = "#888"; g.fillText("no data yet", pad.l, h / 2);
      return;
    }
    let [x0, x1] = [Math.min(...pts.map(p => p[0])), Math.max(...pts.map(p => p[0]))];
    let [y0, y1] = this.yRange || [Math.min(...pts.map(p => p[1])), Math.max(...pts.map(p => p[1]))];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const yPad = this.yRange ? 0 : (y1 - y0) * 0.05;
    y0 -= yPad; y1 += yPad;
    const X = x => pad.l + (x - x0) / (x1 - x0) * (w - pad.l - pad.r);
    const Y = y => h - pad.b - (y - y0) / (y1 - y0) * (h - pad.t - pad.b);
    for (const b of this.bands) {
      g.fillStyle = b.color;
      g.fillRect(pad.l, Y(Math.min(b.hi, y1)), w - pad.l - pad.r, Y(Math.max(b.lo, y0)) - Y(Math.min(b.hi, y1)));
    }
    g.strokeStyle = "#e5e7eb"; g.fillStyle = "#555"; g.lineWidth = 1;
    for (const t of niceTicks(y0, y1, 4)) {
      g.beginPath(); g.moveTo(pad.l, Y(t)); g.lineTo(w - pad.r, Y(t)); g.stroke();
      g.fillText(label(t), 4, Y(t) + 4);
    }
    g.textAlign = "center";
    for (const t of niceTicks(x0, x1, 5)) {
      const tw = g.measureText(label(t)).width / 2;
      g.fillText(label(t), Math.min(w - tw - 1, Math.max(pad.l, X(t))), h - pad.b + 14);
    }
    g.textAlign = "left";
    let lx = pad.l;
    this.series.forEach((s, i) => {
      g.strokeStyle = s.color || colour(i); g.lineWidth = 1.5;
      g.beginPath();
      let pen = false;
      for (const [x, y] of s.points) {
        if (y === null || !isFinite(y)) { pen = false; continue; }
        if (pen) g.lineTo(X(x), Y(y)); else g.moveTo(X(x), Y(y));
        pen = true;
      }
      g.stroke();
      if (s.points.filter(p => p[1] !== null).length === 1) {   // a lone value: a dot
        const [x, y] = s.points.find(p => p[1] !== null);
        g.fillStyle = s.color || colour(i); g.beginPath(); g.arc(X(x), Y(y), 3, 0, 7); g.fill();
      }
      g.fillStyle = s.color || colour(i);
      g.fillRect(lx, h - 14, 10, 3);
      g.fillStyle = "#333";
      g.fillText(s.name, lx + 14, h - 9);
      lx += g.measureText(s.name).width + 30;
    });
  }
}
