// The timeline (anywidget front end): a row per rank and thread, spans as boxes on a canvas.
// Wheel: zoom around the pointer; drag: pan; double click: everything; hover: the span.

const KNOWN = {
  "wait for peers": "#e4572e", "check": "#f29e4c", "wait for gradients": "#c0392b",
  "reduce": "#3b82c4", "copy in": "#8ecae6", "copy out": "#8ecae6", "allreduce": "#5d6d7e",
  "forward": "#52a447", "backward": "#2d6a4f", "update": "#76c7c0", "step": "#b8b8b8",
  "cell": "#e3e3e3", "trial": "#9b59b6", "joblib task": "#f4a261",
};
const PALETTE = ["#8d6cab", "#d4a373", "#6c757d", "#e9c46a", "#264653", "#a8dadc"];
const ROW_H = 14, GAP = 6, LEFT = 170, AXIS = 22;

function color(name, k) { return KNOWN[name] || PALETTE[k % PALETTE.length]; }

function fmt(us) {
  if (us >= 1e6) return (us / 1e6).toFixed(2) + " s";
  if (us >= 1e3) return (us / 1e3).toFixed(2) + " ms";
  return us.toFixed(1) + " µs";
}

function niceStep(range, target) {
  const raw = range / target, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "workbench-timeline";
  box.style.position = "relative";
  const canvas = document.createElement("canvas");
  const legend = document.createElement("div");
  legend.className = "legend";
  const caption = document.createElement("div");
  caption.className = "caption";
  const tip = document.createElement("div");
  tip.className = "tip";
  box.append(canvas, legend, caption, tip);
  el.appendChild(box);

  let view = null; // [t0, t1] in µs
  let layout = [];  // per row: y of its top

  function extent() {
    const s = model.get("spans");
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < s.length; i += 6) { lo = Math.min(lo, s[i + 1]); hi = Math.max(hi, s[i + 1] + s[i + 2]); }
    if (!isFinite(lo)) return [0, 1];
    const pad = (hi - lo) * 0.01 || 1;
    return [lo - pad, hi + pad];
  }

  function draw() {
    const rows = model.get("rows"), s = model.get("spans"), names = model.get("names");
    if (!view) view = extent();
    layout = [];
    let y = AXIS;
    for (const r of rows) { layout.push(y); y += r.lanes * ROW_H + GAP; }
    const width = Math.max(box.clientWidth || 900, 400), height = Math.max(y, AXIS + 30);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr; canvas.height = height * dpr; canvas.style.height = height + "px";
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = "11px sans-serif";
    const [t0, t1] = view, span = t1 - t0, plotW = width - LEFT - 8;
    const x = (t) => LEFT + ((t - t0) / span) * plotW;
    // rows
    rows.forEach((r, k) => {
      g.fillStyle = k % 2 ? "#fafafa" : "#f3f5f8";
      g.fillRect(0, layout[k] - 2, width, r.lanes * ROW_H + 4);
    });
    g.save();
    g.beginPath(); g.rect(LEFT, 0, plotW, height); g.clip();  // spans stay right of the labels
    if (!s.length) {
      g.fillStyle = "#888";
      g.fillText("nothing was recorded", LEFT + 10, AXIS + 14);
    }
    for (let i = 0; i < s.length; i += 6) {
      const a = s[i + 1], d = s[i + 2];
      if (a + d < t0 || a > t1) continue;
      const px = x(a), w = Math.max(x(a + d) - px, 1);
      const top = layout[s[i]] + s[i + 4] * ROW_H;
      g.fillStyle = color(names[s[i + 3]], s[i + 3]);
      g.fillRect(px, top, w, ROW_H - 2);
      if (w > 40) {
        g.fillStyle = "#fff";
        g.save(); g.beginPath(); g.rect(px, top, w, ROW_H); g.clip();
        g.fillStyle = "#111"; g.fillText(names[s[i + 3]], px + 3, top + 10); g.restore();
      }
    }
    // the time axis over the rows, then the labels on their own column
    const step = niceStep(span, Math.max(plotW / 110, 2));
    g.fillStyle = "#666"; g.strokeStyle = "rgba(0, 0, 0, 0.08)";
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const px = x(t);
      g.beginPath(); g.moveTo(px, AXIS - 4); g.lineTo(px, height); g.stroke();
      g.fillText(fmt(t), px + 2, 12);
    }
    g.restore();
    g.fillStyle = "#fff";
    g.fillRect(0, 0, LEFT - 2, AXIS - 2);
    rows.forEach((r, k) => {
      g.fillStyle = k % 2 ? "#fafafa" : "#f3f5f8";
      g.fillRect(0, layout[k] - 2, LEFT - 2, r.lanes * ROW_H + 4);
      g.fillStyle = r.label.startsWith(" ") ? "#666" : "#222";
      g.fillText(r.label.trim(), r.label.startsWith(" ") ? 16 : 6, layout[k] + 11, LEFT - 20);
    });
    legend.replaceChildren(...names.map((n, k) => {
      const item = document.createElement("span");
      item.style.setProperty("--swatch", color(n, k));
      item.textContent = n;
      return item;
    }));
    caption.textContent = model.get("caption");
  }

  function hit(ev) {
    const rect = canvas.getBoundingClientRect();
    const mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
    const s = model.get("spans"), rows = model.get("rows");
    const [t0, t1] = view, plotW = rect.width - LEFT - 8;
    const t = t0 + ((mx - LEFT) / plotW) * (t1 - t0);
    let best = -1;
    for (let i = 0; i < s.length; i += 6) {
      const top = layout[s[i]] + s[i + 4] * ROW_H;
      if (my < top || my > top + ROW_H || t < s[i + 1] || t > s[i + 1] + s[i + 2]) continue;
      if (best < 0 || s[i + 4] >= s[best + 4]) best = i;
    }
    return { best, mx, my, rows };
  }

  let drag = null;
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const rect = canvas.getBoundingClientRect(), plotW = rect.width - LEFT - 8;
    const [t0, t1] = view, f = Math.min(Math.max((ev.clientX - rect.left - LEFT) / plotW, 0), 1);
    const at = t0 + f * (t1 - t0), k = ev.deltaY > 0 ? 1.25 : 0.8;
    const w = Math.max((t1 - t0) * k, 0.5);
    view = [at - f * w, at + (1 - f) * w];
    draw();
  }, { passive: false });
  canvas.addEventListener("mousedown", (ev) => { drag = [ev.clientX, view]; canvas.classList.add("dragging"); });
  window.addEventListener("mouseup", () => { drag = null; canvas.classList.remove("dragging"); });
  canvas.addEventListener("mousemove", (ev) => {
    if (drag) {
      const plotW = canvas.getBoundingClientRect().width - LEFT - 8;
      const [t0, t1] = drag[1], dt = ((ev.clientX - drag[0]) / plotW) * (t1 - t0);
      view = [t0 - dt, t1 - dt];
      draw();
      return;
    }
    const { best, mx, my, rows } = hit(ev);
    if (best < 0) { tip.style.display = "none"; return; }
    const s = model.get("spans"), detail = s[best + 5] >= 0 ? "\n" + model.get("details")[s[best + 5]] : "";
    tip.textContent = `${model.get("names")[s[best + 3]]} — ${fmt(s[best + 2])}\n${rows[s[best]].label}${detail}`;
    tip.style.left = mx + 12 + "px"; tip.style.top = my + 12 + "px"; tip.style.display = "block";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("dblclick", () => { view = extent(); draw(); });
  model.on("change:spans", () => { view = null; draw(); });
  model.on("change:rows", draw);
  new ResizeObserver(() => draw()).observe(box);
  draw();
}

export default { render };
