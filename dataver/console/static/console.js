// The DAG follows the store: every 2 seconds its graph is fetched again and swapped in if it
// changed (states, progress, new pipelines). Nothing else on the console runs script.
(function () {
  const box = document.getElementById("dag");
  if (!box) return;
  let shown = box.innerHTML;
  async function refresh() {
    try {
      const answer = await fetch("/dag/graph", { credentials: "same-origin" });
      if (answer.ok) {
        const drawn = await answer.text();
        if (drawn !== shown) { box.innerHTML = drawn; shown = drawn; }
      }
    } catch (e) { /* the console went away: try again later */ }
    setTimeout(refresh, 2000);
  }
  setTimeout(refresh, 2000);
})();
