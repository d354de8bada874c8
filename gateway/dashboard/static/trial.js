/* A trial's intermediate values: one line per metric it reported, over the steps. */
"use strict";

(function () {
  const TD = window.TD;
  const data = TD.pageData();
  const chart = document.getElementById("trial-intermediate");
  const note = document.getElementById("intermediate-note");
  const points = data.measurements;
  if (!points.length) {
    chart.remove();
    note.textContent = "This trial reported no intermediate values.";
    TD.ready();
    return;
  }
  const traces = data.metrics.map((metric, i) => {
    const steps = points.filter((m) => m.values[metric] !== undefined);
    return {
      type: "scatter", mode: steps.length > 60 ? "lines" : "lines+markers", name: TD.plotText(metric),
      x: steps.map((m) => m.step), y: steps.map((m) => m.values[metric]),
      line: { color: TD.palette[i % TD.palette.length], width: 1.8 }, marker: { size: 5 },
      hovertemplate: TD.plotText(metric) + "<br>step %{x}: %{y}<extra></extra>",
    };
  });
  const layout = { xaxis: { title: { text: "step" }, gridcolor: "#eef0f3", zeroline: false } };
  if (data.stopped_at) {
    layout.shapes = [{ type: "line", xref: "x", yref: "paper", x0: data.stopped_at.step, x1: data.stopped_at.step,
      y0: 0, y1: 1, line: { color: "#c62828", dash: "dot", width: 1.5 } }];
    layout.annotations = [{ text: "pruned", xref: "x", yref: "paper", x: data.stopped_at.step, y: 1,
      showarrow: false, yanchor: "bottom", font: { color: "#c62828", size: 11 } }];
  }
  note.textContent = points.length + " measurement(s), " + data.metrics.length + " metric(s).";
  TD.plot(chart, traces, layout).then(TD.ready, (error) => { note.textContent = "drawing failed: " + error.message; throw error; });
}());
