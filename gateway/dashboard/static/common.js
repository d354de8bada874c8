/* The dashboard's shared helpers. User data only ever reaches the DOM as text (textContent,
   attribute values set one by one) and reaches plotly escaped (plotly reads a few HTML tags). */
"use strict";

(function () {
  const TD = (window.TD = {});

  TD.pageData = function (id) {
    const node = document.getElementById(id || "page-data");
    return node ? JSON.parse(node.textContent) : null;
  };

  /* el("a", {href: url, class: "x"}, ["text", otherNode]) */
  TD.el = function (tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of [].concat(children === undefined ? [] : children)) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  };

  TD.fmt = function (value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") {
      if (!isFinite(value)) return String(value);
      if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
      return String(Number(value.toPrecision(6)));
    }
    if (typeof value === "boolean") return value ? "true" : "false";
    return String(value);
  };

  TD.fmtTime = function (iso) {
    if (!iso) return "";
    return iso.replace("T", " ").slice(0, 19);
  };

  TD.fmtDuration = function (seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  };

  /* Text for plotly (trace names, hover text, tick labels): plotly renders <b>, <a>, <br> and
     entities, so user text is escaped first. */
  TD.plotText = function (value) {
    return TD.fmt(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  };

  TD.hasPlotly = function () {
    return typeof window.Plotly !== "undefined";
  };

  TD.palette = ["#2456a6", "#e07b00", "#1a7f37", "#c62828", "#7b3fb3", "#00838f", "#8d6e63", "#d81b60",
    "#5c6bc0", "#9e9d24"];

  TD.baseLayout = function (extra) {
    return Object.assign({
      margin: { l: 56, r: 16, t: 10, b: 44 },
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2330" },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff",
      hovermode: "closest",
      xaxis: { gridcolor: "#eef0f3", zeroline: false, automargin: true },
      yaxis: { gridcolor: "#eef0f3", zeroline: false, automargin: true },
      legend: { orientation: "h", y: -0.2 },
    }, extra || {});
  };

  TD.plotConfig = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  /* Draws (or redraws) a chart; a message instead when plotly is missing. */
  TD.plot = function (node, traces, layout) {
    if (!TD.hasPlotly()) {
      node.textContent = "charts need plotly.js";
      return Promise.resolve();
    }
    const config = traces.length ? TD.plotConfig : Object.assign({}, TD.plotConfig, { displayModeBar: false });
    return window.Plotly.react(node, traces, TD.baseLayout(layout), config);
  };

  TD.emptyLayout = function (message) {
    return {
      xaxis: { visible: false }, yaxis: { visible: false },
      annotations: [{ text: TD.plotText(message), showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
        font: { color: "#667085", size: 13 } }],
    };
  };

  /* Sortable tables: click a header; cells sort by data-sort when present, else their text;
     numbers numerically, blanks last. */
  function cellKey(row, index) {
    const cell = row.cells[index];
    if (!cell) return "";
    return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  }

  function compare(a, b) {
    if (a === "" && b === "") return 0;
    if (a === "") return 1;
    if (b === "") return -1;
    const x = Number(a), y = Number(b);
    if (!isNaN(x) && !isNaN(y)) return x - y;
    return a.localeCompare(b, undefined, { numeric: true });
  }

  TD.resort = function (table) {
    const index = table.dataset.sortColumn;
    if (index === undefined || index === "") return;
    const direction = table.dataset.sortDirection === "descending" ? -1 : 1;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((r1, r2) => {
      const a = cellKey(r1, Number(index)), b = cellKey(r2, Number(index));
      if (a === "" || b === "") return compare(a, b);
      return direction * compare(a, b);
    });
    for (const row of rows) body.appendChild(row);
    Array.from(table.tHead.rows[0].cells).forEach((th, i) => {
      if (String(i) === String(index)) th.setAttribute("aria-sort", table.dataset.sortDirection);
      else th.removeAttribute("aria-sort");
    });
  };

  TD.sortable = function (table) {
    if (table.dataset.sortableReady) return;
    table.dataset.sortableReady = "1";
    table.tHead.addEventListener("click", (event) => {
      const th = event.target.closest("th");
      if (!th || th.classList.contains("nosort") || event.target.tagName === "INPUT") return;
      const index = String(th.cellIndex);
      const same = table.dataset.sortColumn === index;
      table.dataset.sortColumn = index;
      table.dataset.sortDirection = same && table.dataset.sortDirection === "ascending" ? "descending" : "ascending";
      TD.resort(table);
    });
  };

  /* The one helper for calls that change something: the gateway's HTTP/JSON API, as JSON, with
     the page's CSRF token when base.html carries one. Resolves to the parsed answer; rejects
     with an Error whose message is the server's own (its JSON error's message). */
  TD.send = async function (method, url, body) {
    const headers = { "content-type": "application/json" };
    const csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf && csrf.content) headers["x-csrf-token"] = csrf.content;
    const response = await fetch(url, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let answer = null;
    try {
      answer = text ? JSON.parse(text) : {};
    } catch (error) {
      answer = null;
    }
    if (!response.ok) {
      const message = answer && answer.error && answer.error.message;
      throw new Error(message || ("HTTP " + response.status + (text ? ": " + text.slice(0, 300) : "")));
    }
    if (answer === null) throw new Error("the answer was not JSON: " + text.slice(0, 300));
    return answer;
  };

  TD.ready = function () {
    document.body.dataset.ready = "1";
  };

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("table.sortable").forEach(TD.sortable);
    const page = document.body.dataset.page;
    if (!["study", "run", "compare", "trial"].includes(page)) TD.ready();
  });
}());
