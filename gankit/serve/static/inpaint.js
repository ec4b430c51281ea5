// Inpaint: pick a held-out image or upload one, paint the mask, fill.
import {h, api, clear, follow, strokes, toast} from "./dom.js";

const ZOOM = 12;   // screen pixels per image pixel while painting

export function inpaintTab(body, run) {
  const [c, H, W] = run.uses.image_shape;
  const pick = h("button", {}, "another held-out image");
  const upload = h("input", {type: "file", accept: "image/png,image/jpeg,image/gif,image/bmp,image/webp", "aria-label": "upload an image"});
  const tool = h("select", {"aria-label": "tool"}, h("option", {value: "brush"}, "brush"),
    h("option", {value: "eraser"}, "eraser"), h("option", {value: "box"}, "box"));
  const size = h("input", {type: "range", min: 1, max: 8, value: 3, "aria-label": "brush size"});
  const wipe = h("button", {}, "clear mask");
  const fill = h("button", {class: "primary", id: "fill"}, "fill");
  const picture = h("canvas", {width: W, height: H, class: "pixels"});
  const mask = h("canvas", {width: W, height: H, class: "pixels overlay", id: "mask"});
  const stage = h("div", {class: "paint", style: `width:${W * ZOOM}px;height:${H * ZOOM}px`}, picture, mask);
  const jobBox = h("div"), result = h("div", {class: "row top results"});
  const source = h("span", {class: "muted"});
  body.append(h("div", {class: "row"}, pick, h("label", {}, "or upload ", upload), source),
    h("div", {class: "row"}, h("label", {}, "tool ", tool), h("label", {}, "size ", size), wipe, fill),
    h("p", {class: "muted"}, "Paint the pixels to fill; the others come back unchanged."),
    h("div", {class: "row top"}, stage, h("div", {}, jobBox, result)));
  const pg = picture.getContext("2d"), mg = mask.getContext("2d");
  let holes = new Uint8Array(W * H), index = Math.floor(Math.random() * 1000), box0 = null, before = null;

  function paintMask() {
    const img = mg.createImageData(W, H);
    holes.forEach((v, i) => { if (v) img.data.set([255, 40, 120, 170], 4 * i); });
    mg.putImageData(img, 0, 0);
  }
  function dab(x, y, on) {
    const r = (+size.value - 1) / 2;
    for (let yy = Math.floor(y - r); yy <= Math.floor(y + r); yy++)
      for (let xx = Math.floor(x - r); xx <= Math.floor(x + r); xx++)
        if (xx >= 0 && yy >= 0 && xx < W && yy < H) holes[yy * W + xx] = on ? 1 : 0;
  }
  function line(x0, y0, x1, y1, on) {
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) * 2));
    for (let i = 0; i <= n; i++) dab(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, on);
  }
  let last = null;
  strokes(mask, {
    down(x, y) {
      if (tool.value === "box") { box0 = [x, y]; before = holes.slice(); return; }
      last = [x, y]; dab(x, y, tool.value === "brush"); paintMask();
    },
    move(x, y) {
      if (tool.value === "box") {
        holes = before.slice();
        const [x0, x1] = [Math.min(box0[0], x), Math.max(box0[0], x)].map(Math.floor);
        const [y0, y1] = [Math.min(box0[1], y), Math.max(box0[1], y)].map(Math.floor);
        for (let yy = Math.max(0, y0); yy <= Math.min(H - 1, y1); yy++)
          for (let xx = Math.max(0, x0); xx <= Math.min(W - 1, x1); xx++) holes[yy * W + xx] = 1;
      } else { line(...last, x, y, tool.value === "brush"); last = [x, y]; }
      paintMask();
    },
    up() { last = null; },
  });
  wipe.addEventListener("click", () => { holes.fill(0); paintMask(); });

  function useImage(url, what) {
    const img = new Image();
    img.onload = () => {
      pg.imageSmoothingEnabled = true;
      pg.fillStyle = "#000"; pg.fillRect(0, 0, W, H);
      const s = Math.min(img.width, img.height);   // the centre square, as the server crops
      pg.drawImage(img, (img.width - s) / 2, (img.height - s) / 2, s, s, 0, 0, W, H);
      source.textContent = what;
      clear(result);
    };
    img.src = url;
  }
  async function heldOut() {
    const r = await api(`/api/heldout?run=${encodeURIComponent(run.id)}&index=${index++}`);
    useImage(r.image, `held-out image ${r.index + 1} of ${r.count}` + (r.label ? ` (${r.label})` : ""));
  }
  pick.addEventListener("click", heldOut);
  upload.addEventListener("change", () => {
    const f = upload.files[0];
    if (!f) return;
    if (f.size > 8 * 2 ** 20) { toast(`${f.name} is over 8 MB: choose a smaller picture`); return; }
    const reader = new FileReader();
    reader.onload = () => useImage(reader.result, f.name);
    reader.readAsDataURL(f);
  });
  fill.addEventListener("click", async () => {
    if (!holes.some(v => v)) { toast("paint the pixels to fill first"); return; }
    fill.disabled = true;
    try {
      const job = await api("/api/inpaint", {run: run.id, image: picture.toDataURL("image/png"),
        mask: Array.from(holes).join(""), ema: run.uses.ema, seed: 0});
      const r = await follow(job, jobBox);
      if (r) clear(result).append(
        h("figure", {}, h("img", {src: r.holes, class: "pixels big", alt: "input with the hole"}), h("figcaption", {}, "input, hole in grey")),
        h("figure", {}, h("img", {src: r.filled, class: "pixels big", id: "filled", alt: "filled"}), h("figcaption", {}, `filled (${r.pixels} pixels)`)));
    } finally { fill.disabled = false; }
  });
  heldOut();
}
