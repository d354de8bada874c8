/* A run's metric charts: one per metric with more than one point. */
"use strict";

(function () {
  const TD = window.TD;
  const data = TD.pageData();
  const box = document.getElementById("metric-charts");
  const note = document.getElementById("charts-note");
  const keys = Object.keys(data.histories).filter((k) => data.histories[k].length > 1).sort();
  const draws = keys.map((key) => {
    const points = data.histories[key];
    const chart = TD.el("div", { class: "chart small" });
    box.appendChild(TD.el("div", { class: "chart-box" }, [TD.el("h3", { text: key }), chart]));
    const bySteps = new Set(points.map((p) => p[0])).size > 1;
    return TD.plot(chart, [{
      type: "scatter", mode: points.length > 60 ? "lines" : "lines+markers",
      x: points.map((p) => (bySteps ? p[0] : new Date(p[2]))), y: points.map((p) => p[1]),
      name: TD.plotText(key), line: { color: "#2456a6", width: 1.8 }, marker: { size: 4 },
      hovertemplate: (bySteps ? "step %{x}" : "%{x}") + ": %{y}<extra></extra>",
    }], {
      xaxis: { title: { text: bySteps ? "step" : "time" }, gridcolor: "#eef0f3", zeroline: false },
      margin: { l: 56, r: 12, t: 8, b: 40 }, showlegend: false,
    });
  });
  note.textContent = keys.length ? "" : "No metric has more than one point; the latest values are in the table above.";
  Promise.all(draws).then(TD.ready, (error) => { note.textContent = "drawing failed: " + error.message; throw error; });
}());
