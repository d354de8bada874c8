/* Comparing runs: hide the rows that do not differ; overlay each metric's curves. */
"use strict";

(function () {
  const TD = window.TD;
  const data = TD.pageData();
  const table = document.getElementById("compare-table");
  const only = document.getElementById("only-differences");
  only.addEventListener("change", () => table.classList.toggle("only-differences", only.checked));

  const box = document.getElementById("compare-charts");
  const note = document.getElementById("charts-note");
  const keys = Object.keys(data.curves).sort();
  const draws = [];
  for (const key of keys) {
    const perRun = data.curves[key];
    if (!Object.values(perRun).some((points) => points.length > 1)) continue;
    const chart = TD.el("div", { class: "chart small" });
    box.appendChild(TD.el("div", { class: "chart-box" }, [TD.el("h3", { text: key }), chart]));
    const traces = data.runs.map((runId, i) => {
      const points = perRun[runId] || [];
      return {
        type: "scatter", mode: points.length > 60 ? "lines" : "lines+markers",
        name: TD.plotText(data.names[i] || runId), x: points.map((p) => p[0]), y: points.map((p) => p[1]),
        line: { color: TD.palette[i % TD.palette.length], width: 1.8 }, marker: { size: 4 },
        hovertemplate: TD.plotText(data.names[i] || runId) + "<br>step %{x}: %{y}<extra></extra>",
      };
    });
    draws.push(TD.plot(chart, traces, {
      xaxis: { title: { text: "step" }, gridcolor: "#eef0f3", zeroline: false },
      margin: { l: 56, r: 12, t: 8, b: 40 }, legend: { orientation: "h", y: -0.25 },
    }));
  }
  note.textContent = draws.length ? "" : "No metric has more than one point in these runs.";
  Promise.all(draws).then(TD.ready, (error) => { note.textContent = "drawing failed: " + error.message; throw error; });
}());
