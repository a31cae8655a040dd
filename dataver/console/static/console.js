// The DAG page: the drawing is fitted into its box (so a failed pipeline at the far end of a
// big graph is in view), dragged to pan, zoomed with the wheel or the buttons, and follows the
// store: every 2 seconds the failures and the drawing are fetched again and swapped in if they
// changed, keeping the view the user chose. Nothing else on the console runs script.
(function () {
  const box = document.getElementById("dag");
  if (!box) return;
  const MIN = 0.1, MAX = 4;
  let view = null; // {x, y, scale}: the drawing's point at the box's top left, and its zoom; null: fitted
  let shown = box.dataset.digest; // the ETag of what the page shows

  const svg = () => box.querySelector("svg.graph");
  const drawing = () => ({ w: +svg().dataset.width, h: +svg().dataset.height });

  function size() {
    // the box takes the window's height left by what is above and below it (at least 320 px)
    const r = box.getBoundingClientRect();
    const below = document.documentElement.scrollHeight - (r.bottom + window.scrollY);
    box.style.height = Math.max(320, window.innerHeight - (r.top + window.scrollY) - below) + "px";
    return { w: box.clientWidth, h: box.clientHeight };
  }

  function fitted() {
    const d = drawing(), b = size();
    const scale = Math.min(b.w / d.w, b.h / d.h, 1);
    return { x: (d.w - b.w / scale) / 2, y: (d.h - b.h / scale) / 2, scale: scale };
  }

  function apply() {
    const v = view || fitted(), b = size();
    svg().setAttribute("viewBox", `${v.x} ${v.y} ${b.w / v.scale} ${b.h / v.scale}`);
    svg().dataset.scale = v.scale.toFixed(3);
  }

  function zoom(factor, px, py) {
    const v = view || fitted();
    const scale = Math.min(MAX, Math.max(MIN, v.scale * factor));
    // the drawing's point under (px, py) stays there
    view = { x: v.x + px / v.scale - px / scale, y: v.y + py / v.scale - py / scale, scale: scale };
    apply();
  }

  function zoomAtCentre(factor) {
    const b = size();
    zoom(factor, b.w / 2, b.h / 2);
  }

  box.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = box.getBoundingClientRect();
    zoom(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });

  // drag to pan; a press that moves less than a few pixels is a click on a link
  let press = null, dragged = false;
  box.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    press = { x: e.clientX, y: e.clientY, from: view || fitted(), id: e.pointerId };
    dragged = false;
  });
  box.addEventListener("pointermove", (e) => {
    if (!press || press.id !== e.pointerId) return;
    const dx = e.clientX - press.x, dy = e.clientY - press.y;
    if (!dragged && Math.hypot(dx, dy) < 4) return;
    if (!dragged) { dragged = true; box.setPointerCapture(e.pointerId); box.classList.add("panning"); }
    const f = press.from;
    view = { x: f.x - dx / f.scale, y: f.y - dy / f.scale, scale: f.scale };
    apply();
  });
  const release = () => { press = null; box.classList.remove("panning"); };
  box.addEventListener("pointerup", release);
  box.addEventListener("pointercancel", release);
  box.addEventListener("click", (e) => {
    if (dragged) { e.preventDefault(); e.stopPropagation(); dragged = false; }
  }, true);

  document.getElementById("dag-fit").addEventListener("click", () => { view = null; apply(); });
  document.getElementById("dag-zoom-in").addEventListener("click", () => zoomAtCentre(1.25));
  document.getElementById("dag-zoom-out").addEventListener("click", () => zoomAtCentre(0.8));
  window.addEventListener("resize", apply);
  apply();

  async function refresh() {
    try {
      const answer = await fetch("/dag/graph", { credentials: "same-origin" });
      if (answer.ok) {
        const digest = answer.headers.get("ETag");
        if (digest !== shown) {
          const page = new DOMParser().parseFromString(await answer.text(), "text/html");
          document.getElementById("failures").replaceWith(page.getElementById("failures"));
          svg().replaceWith(page.querySelector("svg.graph"));
          shown = digest;
          apply();
        }
      }
    } catch (e) { /* the console went away: try again later */ }
    setTimeout(refresh, 2000);
  }
  setTimeout(refresh, 2000);
})();
