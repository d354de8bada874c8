/* The study page: optimisation history, parameter importance, parallel coordinates, slice,
   contour, rank, EDF, timeline, intermediate values, the trial table, and live updates while
   the study runs. */
"use strict";

(function () {
  const TD = window.TD;
  const el = TD.el;
  // SVG makes a node per marker, and WebGL (scattergl, parcoords) compiles shaders with eval,
  // which the CSP forbids: above this many points, line charts drop their markers (a line is one node)
  // and marker charts draw an even sample of the trials plus the ones that matter (see thin).
  const MAX_MARKERS = 2000;
  // Above this many distinct values on an axis the contour averages the trials in a grid of cells.
  const CONTOUR_CELLS = 40;

  // At most about MAX_MARKERS of `items`: every k-th, and every one `keep` says to keep.
  function thin(items, keep) {
    if (items.length <= MAX_MARKERS) return items;
    const step = Math.ceil(items.length / MAX_MARKERS);
    return items.filter((t, i) => i % step === 0 || (keep && keep(t)));
  }

  // The best tenth of a few hundred: kept when a chart is thinned.
  function bestSet(trials) {
    const target = goal();
    if (!target || trials.length <= MAX_MARKERS) return new Set();
    const sorted = trials.slice().sort((a, b) => (better(objectiveOf(a), objectiveOf(b), target.direction) ? -1 : 1));
    return new Set(sorted.slice(0, Math.ceil(MAX_MARKERS / 10)));
  }
  const STATE_COLORS = { COMPLETED: "#2456a6", PRUNED: "#98a2b3", FAILED: "#c62828", ACTIVE: "#e07b00",
    INFEASIBLE: "#c62828", STALE: "#b35900", QUEUED: "#b35900", "COMPLETED, INFEASIBLE": "#98a2b3" };

  const live = document.getElementById("live-status");
  const state = {
    detail: TD.pageData(),
    objective: 0,
    metric: null,
    importanceKey: null,
    refresh: Math.max(1, Number(live.dataset.refresh) || 5),
    failures: 0,
    scrolled: false,
    importance: null, // the parameters by importance, most important first (for the contour's default pair)
    pairChosen: false,
    pairDrawn: false,
    // Parallel-coordinates brushing: {param: [[lo, hi], ...]}, one more parameter filter of the table.
  };

  function goal() {
    return state.detail.study.objectives[state.objective] || null;
  }

  function objectiveOf(trial) {
    const value = trial.objectives[state.objective];
    return value === undefined ? null : value;
  }

  function better(a, b, direction) {
    return direction === "maximize" ? a > b : a < b;
  }

  function completedWithValue(trials) {
    return trials.filter((t) => t.state === "COMPLETED" && objectiveOf(t) !== null);
  }

  // A completed trial that violates a constraint keeps its value but can never be the best.
  function isInfeasible(trial) {
    return trial.feasible === false;
  }

  // --- optimisation history ---------------------------------------------------------------------

  function drawHistory() {
    const node = document.getElementById("history-plot");
    const target = goal();
    const done = completedWithValue(state.detail.trials).sort((a, b) => a.number - b.number);
    if (!target || done.length === 0) return TD.plot(node, [], TD.emptyLayout("no completed trials yet"));
    let best = null;
    const bestX = [], bestY = [];
    for (const t of done) {
      if (isInfeasible(t)) continue;
      const value = objectiveOf(t);
      if (best === null || better(value, best, target.direction)) best = value;
      bestX.push(t.number);
      bestY.push(best);
    }
    const records = new Set();
    let record = null;
    for (const t of done) {
      if (isInfeasible(t)) continue;
      if (record === null || better(objectiveOf(t), record, target.direction)) {
        record = objectiveOf(t);
        records.add(t);
      }
    }
    const feasible = thin(done.filter((t) => !isInfeasible(t)), (t) => records.has(t));
    const infeasible = thin(done.filter(isInfeasible));
    const points = {
      type: "scatter", mode: "markers", name: TD.plotText(target.metric),
      x: feasible.map((t) => t.number), y: feasible.map(objectiveOf),
      text: feasible.map((t) => "trial " + t.number), hovertemplate: "%{text}<br>%{y}<extra></extra>",
      marker: { color: "#2456a6", size: 7, opacity: 0.8 },
    };
    const line = {
      type: "scatter", mode: "lines", name: "best so far (feasible)", x: bestX, y: bestY,
      line: { color: "#c62828", width: 2, shape: "hv" }, hoverinfo: "skip",
    };
    const traces = [points, line];
    if (infeasible.length) {
      traces.push({
        type: "scatter", mode: "markers", name: "infeasible", x: infeasible.map((t) => t.number),
        y: infeasible.map(objectiveOf), text: infeasible.map((t) => "trial " + t.number + " (infeasible)"),
        hovertemplate: "%{text}<br>%{y}<extra></extra>",
        marker: { color: "#98a2b3", size: 7, opacity: 0.6, symbol: "x" },
      });
    }
    return TD.plot(node, traces, {
      xaxis: { title: { text: "trial" }, gridcolor: "#eef0f3", zeroline: false },
      yaxis: { title: { text: TD.plotText(target.metric) }, gridcolor: "#eef0f3", zeroline: false, automargin: true },
      legend: { orientation: "h", y: 1.08, x: 0 }, margin: { l: 60, r: 16, t: 24, b: 44 },
    });
  }

  // --- multi-objective: Pareto front (2-D and 3-D), hypervolume over time ----------------------

  const INFEASIBLE_MARKER = { color: "#98a2b3", size: 8, symbol: "x", opacity: 0.8 };

  // Completed trials with a value for every objective, by number, split by feasibility.
  function multiObjectiveTrials() {
    const all = state.detail.trials.filter((t) => t.state === "COMPLETED" && t.objectives.every((v) => v !== null))
      .sort((a, b) => a.number - b.number);
    return { feasible: all.filter((t) => !isInfeasible(t)), infeasible: all.filter(isInfeasible) };
  }

  // Objective values with maximised ones negated, so that lower is better everywhere.
  function losses(trial, goals) {
    return goals.map((g, i) => (g.direction === "maximize" ? -trial.objectives[i] : trial.objectives[i]));
  }

  function dominates(p, q) {
    let strictly = false;
    for (let i = 0; i < p.length; i++) {
      if (p[i] > q[i]) return false;
      if (p[i] < q[i]) strictly = true;
    }
    return strictly;
  }

  function lexicographic(p, q) {
    for (let i = 0; i < p.length; i++) if (p[i] !== q[i]) return p[i] - q[i];
    return 0;
  }

  // Indices of the points no other point dominates (equal points all kept, as GetBestTrials keeps
  // them). In lexicographic order a point can only be dominated by an earlier one, so one pass
  // against the front kept so far suffices.
  function paretoIndices(points) {
    const order = points.map((_, i) => i).sort((a, b) => lexicographic(points[a], points[b]));
    const kept = [];
    for (const i of order) if (!kept.some((k) => dominates(points[k], points[i]))) kept.push(i);
    return kept;
  }

  // Exact hypervolume of 2-D loss points up to ref: a sweep in order of the first objective.
  function hypervolume2d(points, ref) {
    const inside = points.filter((p) => p[0] < ref[0] && p[1] < ref[1]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let volume = 0, floor = ref[1];
    for (const p of inside) {
      if (p[1] >= floor) continue;
      volume += (ref[0] - p[0]) * (floor - p[1]);
      floor = p[1];
    }
    return volume;
  }

  // Exact hypervolume of 3-D loss points: slices along the third objective, each the 2-D
  // hypervolume of the points below it times its thickness.
  function hypervolume3d(points, ref) {
    const inside = points.filter((p) => p[0] < ref[0] && p[1] < ref[1] && p[2] < ref[2]).sort((a, b) => a[2] - b[2]);
    let volume = 0;
    for (let i = 0; i < inside.length; i++) {
      const top = i + 1 < inside.length ? inside[i + 1][2] : ref[2];
      if (top > inside[i][2]) volume += hypervolume2d(inside.slice(0, i + 1), ref) * (top - inside[i][2]);
    }
    return volume;
  }

  // The reference point (in loss space) GetBestTrials uses: the spec's where set, else the worst
  // value moved out by 10% of the range (of the worst value's magnitude when the range is 0, 1
  // when that is 0 too). One point for the whole curve, so that the curve only rises.
  function referencePoint(points, goals) {
    return goals.map((g, k) => {
      if (g.reference_point !== undefined && g.reference_point !== null) {
        return g.direction === "maximize" ? -g.reference_point : g.reference_point;
      }
      let worst = -Infinity, best = Infinity;
      for (const p of points) {
        worst = Math.max(worst, p[k]);
        best = Math.min(best, p[k]);
      }
      let margin = 0.1 * (worst - best);
      if (!(margin > 0)) margin = 0.1 * Math.abs(worst);
      return worst + (margin > 0 ? margin : 1);
    });
  }

  // The hypervolume of the feasible completed trials up to each one, by trial number.
  function hypervolumeHistory(feasible, goals) {
    const points = feasible.map((t) => losses(t, goals));
    const ref = referencePoint(points, goals);
    const measure = goals.length === 2 ? hypervolume2d : hypervolume3d;
    let front = [], volume = 0;
    const x = [], y = [];
    feasible.forEach((t, i) => {
      const p = points[i];
      if (!front.some((q) => dominates(q, p) || lexicographic(q, p) === 0)) {
        front = front.filter((q) => !dominates(p, q)).concat([p]);
        volume = measure(front, ref);
      }
      x.push(t.number);
      y.push(volume);
    });
    return { x, y, ref };
  }

  // The study's Pareto set over all its objectives (feasible trials only), the rest, the infeasible.
  function paretoGroups() {
    const goals = state.detail.study.objectives;
    const { feasible, infeasible } = multiObjectiveTrials();
    const onFront = new Set(paretoIndices(feasible.map((t) => losses(t, goals))).map((i) => feasible[i]));
    return { front: feasible.filter((t) => onFront.has(t)), dominated: feasible.filter((t) => !onFront.has(t)),
      infeasible };
  }

  // An objective picker (filled once: a study's objectives never change); its chosen index.
  function objectivePick(id, fallback) {
    const select = document.getElementById(id);
    const goals = state.detail.study.objectives;
    if (select.options.length !== goals.length) {
      select.replaceChildren(...goals.map((g, i) => el("option", { value: String(i), text: g.metric + " (" + g.direction + ")" })));
      select.value = String(Math.min(fallback, goals.length - 1));
    }
    return Number(select.value);
  }

  function objectiveTitle(index) {
    const g = state.detail.study.objectives[index];
    return { text: TD.plotText(g.metric + " (" + g.direction + ")") };
  }

  function paretoTraces(groups, axes, type) {
    const style = [
      ["dominated", groups.dominated, { color: "#7f9cc9", size: 7, opacity: 0.8 }],
      ["Pareto front", groups.front, { color: "#c62828", size: 9 }],
      ["infeasible", groups.infeasible, INFEASIBLE_MARKER],
    ];
    // dominated and front always (data[0], data[1]), infeasible when there are some.
    return style.filter(([name, trials]) => name !== "infeasible" || trials.length).map(([name, trials, marker]) => {
      const trace = { type, mode: "markers", name, marker: type === "scatter3d" ? Object.assign({}, marker, { size: marker.size * 0.6 }) : marker,
        text: trials.map((t) => "trial " + t.number + (isInfeasible(t) ? " (infeasible)" : "")) };
      ["x", "y", "z"].slice(0, axes.length).forEach((axis, i) => { trace[axis] = trials.map((t) => t.objectives[axes[i]]); });
      trace.hovertemplate = "%{text}<br>" + (axes.length === 3 ? "(%{x}, %{y}, %{z})" : "(%{x}, %{y})") + "<extra></extra>";
      return trace;
    });
  }

  function drawPareto() {
    const node = document.getElementById("pareto-plot");
    if (!node) return Promise.resolve();
    const axes = [objectivePick("pareto-x", 0), objectivePick("pareto-y", 1)];
    const groups = paretoGroups();
    const note = document.getElementById("pareto-note");
    const total = groups.front.length + groups.dominated.length + groups.infeasible.length;
    note.textContent = total ? groups.front.length + " trials on the Pareto front, " + groups.dominated.length +
      " dominated" + (groups.infeasible.length ? ", " + groups.infeasible.length + " infeasible (never on the front)" : "") +
      "." : "";
    if (axes[0] === axes[1]) return TD.plot(node, [], TD.emptyLayout("choose two different objectives"));
    if (total === 0) return TD.plot(node, [], TD.emptyLayout("no completed trials yet"));
    return TD.plot(node, paretoTraces(groups, axes, "scatter"), {
      xaxis: { title: objectiveTitle(axes[0]), gridcolor: "#eef0f3", zeroline: false },
      yaxis: { title: objectiveTitle(axes[1]), gridcolor: "#eef0f3", zeroline: false, automargin: true },
      legend: { orientation: "h", y: 1.1, x: 0 }, margin: { l: 60, r: 16, t: 28, b: 44 },
    });
  }

  function drawPareto3d() {
    const node = document.getElementById("pareto3-plot");
    if (!node) return Promise.resolve();
    const axes = [objectivePick("pareto3-x", 0), objectivePick("pareto3-y", 1), objectivePick("pareto3-z", 2)];
    const groups = paretoGroups();
    if (new Set(axes).size < 3) return TD.plot(node, [], TD.emptyLayout("choose three different objectives"));
    if (groups.front.length + groups.dominated.length + groups.infeasible.length === 0) {
      return TD.plot(node, [], TD.emptyLayout("no completed trials yet"));
    }
    const axis = (i) => ({ title: objectiveTitle(axes[i]), gridcolor: "#eef0f3", zeroline: false });
    return TD.plot(node, paretoTraces(groups, axes, "scatter3d"), {
      scene: { xaxis: axis(0), yaxis: axis(1), zaxis: axis(2) },
      legend: { orientation: "h", y: 1.1, x: 0 }, margin: { l: 0, r: 0, t: 28, b: 0 },
    });
  }

  function drawHypervolume() {
    const node = document.getElementById("hypervolume-plot");
    if (!node) return Promise.resolve();
    const note = document.getElementById("hypervolume-note");
    const goals = state.detail.study.objectives;
    if (goals.length > 3) {
      note.textContent = "The hypervolume is not drawn for more than three objectives.";
      return TD.plot(node, [], TD.emptyLayout("not drawn for more than three objectives"));
    }
    const { feasible, infeasible } = multiObjectiveTrials();
    if (feasible.length === 0) {
      note.textContent = infeasible.length ? infeasible.length + " infeasible trials, none feasible yet." : "";
      return TD.plot(node, [], TD.emptyLayout("no feasible completed trials yet"));
    }
    const history = hypervolumeHistory(feasible, goals);
    const reference = history.ref.map((r, k) => goals[k].metric + " " + TD.fmt(goals[k].direction === "maximize" ? -r : r));
    note.textContent = "Reference point: " + reference.join(", ") + "." +
      (infeasible.length ? " " + infeasible.length + " infeasible trials are left out." : "");
    return TD.plot(node, [{
      type: "scatter", mode: "lines+markers", name: "hypervolume", x: history.x, y: history.y,
      text: history.x.map((n) => "after trial " + n), hovertemplate: "%{text}: %{y}<extra></extra>",
      line: { color: "#2456a6", width: 2, shape: "hv" }, marker: { size: 5, color: "#2456a6" },
    }], {
      xaxis: { title: { text: "trial" }, gridcolor: "#eef0f3", zeroline: false },
      yaxis: { title: { text: "hypervolume" }, gridcolor: "#eef0f3", zeroline: false, automargin: true, rangemode: "tozero" },
      showlegend: false, margin: { l: 60, r: 16, t: 16, b: 44 },
    });
  }

  // --- parallel coordinates ---------------------------------------------------------------------
  // SVG lines, not plotly's parcoords: parcoords draws with regl, which compiles code with eval,
  // and the page's CSP forbids eval (and some browsers have no WebGL).

  // The ranges brushed on the parallel coordinates, by axis (a parameter's name, or the
  // objective's metric), in the axis's units (see parameterAxis): {axis: [[lo, hi], ...]}. They
  // live here, not in the chart, so that redraws (live updates) keep them.
  const brushed = {};
  const INACTIVE = "inactive";

  function niceTicks(lo, hi, log) {
    return [0, 0.25, 0.5, 0.75, 1].map((u) => {
      const v = lo + (hi - lo) * u;
      return [v, TD.fmt(Number((log ? Math.pow(10, v) : v).toPrecision(3)))];
    });
  }

  // A parameter's axis: its values in axis units (log10 for a log scale, the choice's position for
  // a categorical), a range spanning the search space (stable while trials arrive, so brushed
  // ranges keep their meaning), and, when some drawn trial left a conditional parameter out, an
  // extra tick "inactive" below the range that such a trial's line passes through.
  function parameterAxis(spec, trials) {
    const raw = trials.map((t) => t.params[spec.name]);
    const inactive = raw.some((v) => !present(v));
    let unit, lo, hi, ticks, slot;
    const numeric = spec.kind !== "categorical" && raw.every((v) => !present(v) || typeof v === "number");
    if (numeric) {
      const bounds = raw.filter(present).concat([spec.low, spec.high].filter((v) => typeof v === "number"));
      const log = !!spec.log && Math.min(...bounds) > 0;
      unit = log ? Math.log10 : (v) => v;
      lo = unit(Math.min(...bounds));
      hi = unit(Math.max(...bounds));
      if (hi === lo) { lo -= 0.5; hi += 0.5; }
      slot = lo - 0.15 * (hi - lo);
      ticks = niceTicks(lo, hi, log);
    } else {
      const choices = (spec.choices || []).map((c) => JSON.stringify(c));
      for (const v of raw) if (present(v) && !choices.includes(JSON.stringify(v))) choices.push(JSON.stringify(v));
      unit = (v) => choices.indexOf(JSON.stringify(v));
      lo = 0;
      hi = Math.max(1, choices.length - 1);
      slot = -1; // one more category, below the others
      ticks = choices.map((c, i) => [i, TD.fmt(JSON.parse(c))]);
    }
    if (inactive) ticks.unshift([slot, INACTIVE]);
    return { key: spec.name, label: spec.name, range: [inactive ? slot : lo, hi], ticks, inactive,
      value: (t) => (present(t.params[spec.name]) ? unit(t.params[spec.name]) : slot),
      text: (t) => (present(t.params[spec.name]) ? TD.fmt(t.params[spec.name]) : INACTIVE) };
  }

  function objectiveAxis(key, target, trials) {
    const values = trials.map(objectiveOf);
    let lo = Math.min(...values), hi = Math.max(...values);
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    return { key, label: target.metric, range: [lo, hi], ticks: niceTicks(lo, hi, false), objective: true,
      value: objectiveOf, text: (t) => TD.fmt(objectiveOf(t)) };
  }

  // What the parallel coordinates draw: the completed trials (infeasible ones grey) and an axis
  // per non-fixed parameter and one for the objective. Brushes on axes that are gone (another
  // objective chosen) are dropped.
  function parallelModel() {
    const target = goal();
    const trials = completedWithValue(state.detail.trials).sort((a, b) => a.number - b.number);
    const specs = state.detail.params.filter((p) => p.kind !== "fixed");
    const axes = trials.length ? specs.map((spec) => parameterAxis(spec, trials)) : [];
    if (target && trials.length) {
      const key = specs.some((p) => p.name === target.metric) ? target.metric + " (objective)" : target.metric;
      axes.push(objectiveAxis(key, target, trials));
    }
    for (const key of Object.keys(brushed)) if (!axes.some((a) => a.key === key)) delete brushed[key];
    return { target, trials, axes };
  }

  function insideAxis(axis, t) {
    const v = axis.value(t);
    return brushed[axis.key].some(([lo, hi]) => v >= lo && v <= hi);
  }

  // The trials inside every brushed range (only drawn trials can be), or null with no brush.
  function brushFilter() {
    if (Object.keys(brushed).length === 0) return null;
    const model = parallelModel();
    const axes = model.axes.filter((a) => brushed[a.key]);
    if (axes.length === 0) return null;
    const drawn = new Set(model.trials);
    return (t) => drawn.has(t) && axes.every((a) => insideAxis(a, t));
  }

  function showBrushNote(shown, total) {
    const note = document.getElementById("brush-note");
    const keys = Object.keys(brushed);
    note.hidden = keys.length === 0;
    document.getElementById("brush-text").textContent = keys.length ?
      shown + " of " + total + " trials shown (brushed on " + keys.join(", ") + ") —" : "";
  }

  function clearBrush() {
    for (const key of Object.keys(brushed)) delete brushed[key];
    drawTable();
    return drawParallel();
  }

  // A box dragged over the chart brushes each axis it covers (the axis nearest its middle when it
  // covers none) over its height: a new range replaces the axis's ranges, or joins them with shift.
  function brush(range, model, adding) {
    if (!range || !range.x || !range.y) return;
    const [x0, x1] = range.x.slice().sort((a, b) => a - b);
    const [y0, y1] = range.y.slice().sort((a, b) => a - b);
    let hit = model.axes.map((_, i) => i).filter((i) => i >= x0 && i <= x1);
    if (hit.length === 0) {
      const middle = Math.round((x0 + x1) / 2);
      if (middle < 0 || middle >= model.axes.length || Math.abs(middle - (x0 + x1) / 2) > 0.35) return;
      hit = [middle];
    }
    for (const i of hit) {
      const axis = model.axes[i];
      const [lo, hi] = axis.range;
      const picked = [lo + Math.max(0, y0) * (hi - lo), lo + Math.min(1, y1) * (hi - lo)];
      if (picked[0] > picked[1]) continue;
      brushed[axis.key] = adding && brushed[axis.key] ? brushed[axis.key].concat([picked]) : [picked];
    }
  }

  function colorAt(u) {
    // viridis-like, from dark blue (0) to yellow (1)
    const stops = [[0, [68, 1, 84]], [0.25, [59, 82, 139]], [0.5, [33, 145, 140]], [0.75, [94, 201, 98]],
      [1, [253, 231, 37]]];
    for (let i = 1; i < stops.length; i++) {
      if (u <= stops[i][0]) {
        const [u0, c0] = stops[i - 1], [u1, c1] = stops[i];
        const k = (u - u0) / (u1 - u0 || 1);
        return "rgb(" + c0.map((c, j) => Math.round(c + (c1[j] - c) * k)).join(",") + ")";
      }
    }
    return "rgb(253,231,37)";
  }

  const PARALLEL_BINS = 8;

  function drawParallel() {
    const node = document.getElementById("parallel-plot");
    const note = document.getElementById("parallel-note");
    const model = parallelModel();
    const { target, trials, axes } = model;
    if (!target || trials.length === 0) {
      note.textContent = "";
      return TD.plot(node, [], TD.emptyLayout("no completed trials yet"));
    }
    const infeasible = trials.filter(isInfeasible).length;
    const inactive = axes.filter((a) => a.inactive).map((a) => a.label);
    const inside = brushFilter();
    const outside = inside ? trials.filter((t) => !inside(t)).length : 0;
    // Past MAX_MARKERS lines the chart is a solid block and SVG slows down: an even sample with
    // the best trials and (under a brush) every trial inside it. The table and the brush use all.
    const best = bestSet(trials);
    const drawn = thin(trials, (t) => best.has(t) || (inside && inside(t)));
    note.textContent = [
      drawn.length < trials.length ? "A sample of " + drawn.length + " of " + trials.length +
        " trials (evenly spaced, the best " + best.size + (inside ? ", every brushed one" : "") + ")." : "",
      infeasible ? infeasible + " infeasible trials drawn grey." : "",
      inactive.length ? "Lines through 'inactive': trials where " + inactive.join(", ") + " did not apply." : "",
      inside ? outside + " trials outside the brushed ranges drawn faint." : "Drag along an axis to brush a range.",
    ].filter(Boolean).join(" ");
    const feasibleValues = trials.filter((t) => !isInfeasible(t)).map(objectiveOf);
    const scaled = feasibleValues.length ? feasibleValues : trials.map(objectiveOf);
    const lo = Math.min(...scaled), hi = Math.max(...scaled);
    const shade = (v) => (hi === lo ? 0.5 : (v - lo) / (hi - lo));
    const position = (i, v) => (v - axes[i].range[0]) / (axes[i].range[1] - axes[i].range[0]);
    // One trace per colour: the objective's eight bins, the infeasible trials, those brushed out.
    const groups = new Map();
    for (const t of drawn) {
      const group = inside && !inside(t) ? "outside" : isInfeasible(t) ? "infeasible" :
        Math.min(PARALLEL_BINS - 1, Math.floor(shade(objectiveOf(t)) * PARALLEL_BINS));
      if (!groups.has(group)) groups.set(group, { x: [], y: [], text: [] });
      const g = groups.get(group);
      axes.forEach((a, i) => {
        g.x.push(i);
        g.y.push(position(i, a.value(t)));
        g.text.push("trial " + t.number + (isInfeasible(t) ? " (infeasible)" : "") + "<br>" + TD.plotText(a.label) +
          " = " + TD.plotText(a.text(t)));
      });
      g.x.push(null); g.y.push(null); g.text.push(null);
    }
    // Past MAX_MARKERS points the lines go without their markers (one SVG node a line).
    const mode = drawn.length * axes.length > MAX_MARKERS ? "lines" : "lines+markers";
    const order = ["outside", "infeasible"].concat(Array.from({ length: PARALLEL_BINS }, (_, b) => b));
    const traces = order.filter((g) => groups.has(g)).map((group) => {
      const g = groups.get(group);
      const color = group === "outside" ? "#d0d5dd" : group === "infeasible" ? "#98a2b3" : colorAt((group + 0.5) / PARALLEL_BINS);
      return { type: "scatter", mode, name: String(group), x: g.x, y: g.y, text: g.text,
        hovertemplate: "%{text}<extra></extra>", line: { color, width: group === "outside" ? 1 : 1.6 },
        marker: { size: 5, color }, opacity: group === "outside" ? 0.5 : 0.75, showlegend: false, connectgaps: false,
        // plotly's own selection look would fight the brush's.
        selected: { marker: { opacity: 1 } }, unselected: { marker: { opacity: 1 } } };
    });
    // The colour scale of the objective (feasible trials), as a colour bar.
    traces.push({
      type: "scatter", mode: "markers", x: [axes.length - 1, axes.length - 1], y: [0, 1], hoverinfo: "skip",
      showlegend: false,
      marker: { size: 0.1, opacity: 0, color: [lo, hi], cmin: lo, cmax: hi, showscale: true,
        colorscale: [[0, colorAt(0)], [0.25, colorAt(0.25)], [0.5, colorAt(0.5)], [0.75, colorAt(0.75)], [1, colorAt(1)]],
        colorbar: { title: { text: TD.plotText(target.metric), side: "right" }, thickness: 12, len: 0.9 } },
    });
    const annotations = [], shapes = [];
    axes.forEach((a, i) => {
      shapes.push({ type: "line", x0: i, x1: i, y0: a.inactive ? position(i, a.ticks[1][0]) : 0, y1: 1,
        line: { color: "#98a2b3", width: 1 } });
      for (const [v, label] of a.ticks) {
        annotations.push({ x: i, y: position(i, v), text: TD.plotText(label), showarrow: false, xanchor: "right",
          xshift: -4, font: { size: 10, color: label === INACTIVE && a.inactive ? "#98a2b3" : "#475467" },
          bgcolor: "rgba(255,255,255,0.7)" });
      }
      for (const [from, to] of brushed[a.key] || []) {
        shapes.push({ type: "rect", x0: i - 0.06, x1: i + 0.06, y0: Math.max(-0.04, position(i, from)),
          y1: Math.min(1.04, position(i, to)), fillcolor: "rgba(36,86,166,0.18)", line: { color: "#2456a6", width: 1 } });
      }
    });
    state.parallelModel = model;
    return TD.plot(node, traces, {
      xaxis: { tickvals: axes.map((_, i) => i), ticktext: axes.map((a) => TD.plotText(a.label)), side: "top",
        range: [-0.6, axes.length - 0.5], showgrid: false, zeroline: false, fixedrange: true, tickfont: { size: 12 } },
      yaxis: { visible: false, range: [-0.08, 1.06], fixedrange: true },
      dragmode: "select", selectdirection: "any",
      annotations, shapes, margin: { l: 70, r: 20, t: 40, b: 16 },
    }).then(() => listenForBrushes(node));
  }

  function listenForBrushes(node) {
    if (node.dataset.brushing || !node.on) return;
    node.dataset.brushing = "1";
    node.addEventListener("mousedown", (event) => { state.brushAdding = event.shiftKey; }, true);
    node.on("plotly_selected", (event) => {
      if (!event || !event.range || !state.parallelModel) return;
      brush(event.range, state.parallelModel, state.brushAdding);
      // Redrawn once plotly has finished with the drag; the redraw also drops plotly's own box.
      setTimeout(() => { drawTable(); drawParallel(); }, 0);
    });
    node.on("plotly_doubleclick", () => { if (Object.keys(brushed).length) clearBrush(); });
  }

  // --- parameter importance ---------------------------------------------------------------------

  function importanceKey() {
    const done = state.detail.trials.filter((t) => t.state === "COMPLETED").length;
    return state.objective + ":" + done;
  }

  async function drawImportance(force) {
    const key = importanceKey();
    if (!force && key === state.importanceKey) return;
    state.importanceKey = key;
    const node = document.getElementById("importance-plot");
    const note = document.getElementById("importance-note");
    const target = goal();
    let url = "/ui/api/importance/" + encodeURIComponent(state.detail.study.name);
    if (target) url += "?objective=" + encodeURIComponent(target.metric);
    let result;
    try {
      const response = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
      result = await response.json();
      if (!response.ok) throw new Error(result.error ? result.error.message : response.statusText);
    } catch (error) {
      note.textContent = "importance unavailable: " + error.message;
      state.importanceKey = null;
      return TD.plot(node, [], TD.emptyLayout("importance unavailable"));
    }
    const known = state.importance;
    state.importance = result.importances.some((r) => r.importance > 0) ? result.importances.slice() : null;
    // A later answer (live updates) that changes the ranking moves the default pair; the first
    // draw of the pair charts waits for this answer instead (drawAll).
    if (!state.pairChosen && state.pairDrawn && JSON.stringify(known) !== JSON.stringify(state.importance)) {
      await Promise.all([drawContour(), drawRank()]);
    }
    const ranked = result.importances.slice().reverse();
    note.textContent = result.message
      ? result.message
      : "fANOVA importance (random forest, main effects) for " + result.objective + ", from " +
        result.trials + " completed trials; sums to 1.";
    if (result.message && ranked.every((r) => r.importance === 0)) {
      const short = result.min_trials && result.trials < result.min_trials
        ? "not enough completed trials yet" : "nothing to rank";
      return TD.plot(node, [], TD.emptyLayout(short));
    }
    return TD.plot(node, [{
      type: "bar", orientation: "h", x: ranked.map((r) => r.importance), y: ranked.map((r) => TD.plotText(r.param)),
      text: ranked.map((r) => (100 * r.importance).toFixed(1) + "%"), textposition: "outside", cliponaxis: false,
      hovertemplate: "%{y}: %{x:.3f}<extra></extra>", marker: { color: "#2456a6" },
    }], {
      xaxis: { title: { text: "importance" }, range: [0, 1.08], gridcolor: "#eef0f3", zeroline: false },
      yaxis: { automargin: true }, margin: { l: 100, r: 16, t: 30, b: 44 },
    });
  }

  // --- intermediate values ---------------------------------------------------------------------

  // The server picks the trials (all of them when few, else a bounded sample) and sends one
  // metric's curves: the page never holds every trial's measurements.
  async function fetchIntermediate() {
    let url = "/ui/api/intermediate/" + encodeURIComponent(state.detail.study.name);
    if (state.metric !== null) url += "?metric=" + encodeURIComponent(state.metric);
    const response = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
    const result = await response.json();
    if (!response.ok) throw new Error(result.error ? result.error.message : response.statusText);
    return result;
  }

  function sampleNote(result) {
    const groups = result.groups;
    if (groups.all !== undefined) return "";
    return "A sample of " + result.trials.length + " of the " + result.total + " trials that reported " +
      result.metric + ": the " + groups.best + " best completed, the " + groups.recent + " most recent, and " +
      groups.spread + " of the rest spread evenly by trial number. ";
  }

  async function drawIntermediate() {
    const node = document.getElementById("intermediate-plot");
    const note = document.getElementById("intermediate-note");
    const select = document.getElementById("intermediate-metric");
    let result;
    try {
      result = await fetchIntermediate();
    } catch (error) {
      note.textContent = "intermediate values unavailable: " + error.message;
      return TD.plot(node, [], TD.emptyLayout("intermediate values unavailable"));
    }
    const current = Array.from(select.options).map((o) => o.value);
    if (current.join("\n") !== result.metrics.join("\n")) {
      select.replaceChildren(...result.metrics.map((n) => el("option", { value: n, text: n })));
    }
    state.metric = result.metric || null;
    if (state.metric !== null) select.value = state.metric;
    select.disabled = result.metrics.length < 2;
    const trials = result.trials.filter((t) => t.points.length > 0);
    if (!result.metric || trials.length === 0) {
      note.textContent = "";
      return TD.plot(node, [], TD.emptyLayout("no intermediate values reported"));
    }
    const pruned = trials.filter((t) => t.state === "PRUNED").length;
    note.textContent = sampleNote(result) + (pruned ? pruned + " pruned trials: dashed grey, ✕ where they stopped." : "");
    const seen = new Set();
    const traces = trials.map((t) => {
      const isPruned = t.state === "PRUNED";
      const group = t.state === "COMPLETED" && isInfeasible(t) ? "COMPLETED, INFEASIBLE" : t.state;
      const color = STATE_COLORS[group] || "#667085";
      const first = !seen.has(group);
      seen.add(group);
      const last = t.points.length - 1;
      return {
        type: "scatter", mode: "lines+markers", x: t.points.map((p) => p[0]), y: t.points.map((p) => p[1]),
        name: group.toLowerCase(), legendgroup: group, showlegend: first,
        text: t.points.map(() => "trial " + t.number + " (" + t.state.toLowerCase() + ")"),
        hovertemplate: "%{text}<br>step %{x}: %{y}<extra></extra>",
        line: { color, width: isPruned ? 1.2 : 1.6, dash: isPruned ? "dash" : "solid" },
        marker: { size: t.points.map((_, i) => (isPruned && i === last ? 10 : 4)),
          symbol: t.points.map((_, i) => (isPruned && i === last ? "x" : "circle")), color },
        opacity: isPruned ? 0.7 : 0.9,
      };
    });
    return TD.plot(node, traces, {
      xaxis: { title: { text: TD.plotText(state.detail.study.fidelity || "step") }, gridcolor: "#eef0f3", zeroline: false },
      yaxis: { title: { text: TD.plotText(result.metric) }, gridcolor: "#eef0f3", zeroline: false, automargin: true },
      legend: { orientation: "h", y: 1.1, x: 0 }, margin: { l: 60, r: 16, t: 28, b: 44 },
    });
  }

  // --- population (pbt) -------------------------------------------------------------------------

  // Each member's segments by generation, the latest attempt of each (a retry or redo replaces
  // the attempt that lost its lease or failed).
  function members() {
    const byMember = new Map();
    for (const t of state.detail.trials.filter((t) => t.pbt).sort((a, b) => a.number - b.number)) {
      if (!byMember.has(t.pbt.member)) byMember.set(t.pbt.member, new Map());
      byMember.get(t.pbt.member).set(t.pbt.generation, t);
    }
    return Array.from(byMember.entries()).sort((a, b) => a[0] - b[0])
      .map(([member, segments]) => [member, Array.from(segments.values()).sort((a, b) => a.pbt.generation - b.pbt.generation)]);
  }

  function memberColor(member) {
    return TD.palette[member % TD.palette.length];
  }

  function exploitText(t) {
    return "member " + t.pbt.member + " took member " + t.pbt.parent_member + "'s checkpoint (trial " +
      t.pbt.parent_trial_id + ") at step " + t.pbt.start_step;
  }

  function drawPopulation() {
    const scoreNode = document.getElementById("population-score-plot");
    if (!scoreNode) return Promise.resolve();
    const scheduleNode = document.getElementById("population-schedule-plot");
    const select = document.getElementById("population-param");
    const names = state.detail.params.map((p) => p.name);
    if (select.options.length !== names.length) {
      select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
    }
    const param = select.value || names[0];
    const target = goal();
    const population = members();
    if (!target || population.length === 0) {
      return Promise.all([TD.plot(scoreNode, [], TD.emptyLayout("no segment suggested yet")),
        TD.plot(scheduleNode, [], TD.emptyLayout("no segment suggested yet"))]);
    }
    const byId = new Map(state.detail.trials.map((t) => [t.id, t]));
    const scores = [], schedules = [];
    const exploits = population.flatMap(([, segments]) => segments.filter((t) => t.pbt.decision === "EXPLOIT"));
    for (const [member, segments] of population) {
      const color = memberColor(member);
      const x = [], y = [], text = [];
      for (const t of segments) {
        const points = t.intermediate.filter((m) => m.values[target.metric] !== undefined && m.values[target.metric] !== null);
        if (points.length === 0 && objectiveOf(t) !== null) points.push({ step: t.pbt.end_step, values: { [target.metric]: objectiveOf(t) } });
        for (const m of points) {
          x.push(m.step);
          y.push(m.values[target.metric]);
          text.push("member " + member + ", trial " + t.number + " (" + t.pbt.decision.toLowerCase() + ")");
        }
      }
      scores.push({ type: "scatter", mode: "lines", name: "member " + member, legendgroup: "m" + member, x, y, text,
        hovertemplate: "%{text}<br>step %{x}: %{y}<extra></extra>", line: { color, width: 1.6 } });
      const sx = [], sy = [], stext = [];
      for (const t of segments) {
        if (t.params[param] === undefined) continue;
        sx.push(t.pbt.start_step, t.pbt.end_step);
        sy.push(t.params[param], t.params[param]);
        const label = "member " + member + ", trial " + t.number;
        stext.push(label, label);
      }
      schedules.push({ type: "scatter", mode: "lines", name: "member " + member, legendgroup: "m" + member,
        showlegend: false, x: sx, y: sy, text: stext, hovertemplate: "%{text}<br>step %{x}: %{y}<extra></extra>",
        line: { color, width: 1.6, shape: "hv" } });
    }
    const marker = { symbol: "diamond", size: 10, color: exploits.map((t) => memberColor(t.pbt.member)),
      line: { color: "#1f2937", width: 1 } };
    scores.push({ type: "scatter", mode: "markers", name: "exploit", x: exploits.map((t) => t.pbt.start_step),
      y: exploits.map((t) => { const parent = byId.get(t.pbt.parent_trial_id); return parent ? objectiveOf(parent) : null; }),
      text: exploits.map(exploitText), hovertemplate: "%{text}<extra></extra>", marker });
    schedules.push({ type: "scatter", mode: "markers", name: "exploit", showlegend: false,
      x: exploits.map((t) => t.pbt.start_step), y: exploits.map((t) => t.params[param]),
      text: exploits.map(exploitText), hovertemplate: "%{text}<extra></extra>", marker });
    document.getElementById("population-note").textContent = population.length + " members, " + exploits.length +
      " exploits so far.";
    const spec = state.detail.params.find((p) => p.name === param) || {};
    const axis = (title) => ({ title: { text: TD.plotText(title) }, gridcolor: "#eef0f3", zeroline: false, automargin: true });
    const layout = (yTitle, log) => ({ xaxis: axis("step"), yaxis: { ...axis(yTitle), type: log ? "log" : "-" },
      legend: { orientation: "h", y: 1.12, x: 0 }, margin: { l: 60, r: 16, t: 28, b: 44 } });
    return Promise.all([TD.plot(scoreNode, scores, layout(target.metric, false)),
      TD.plot(scheduleNode, schedules, layout(param, spec.log === true))]);
  }

  // --- slice, contour, rank, EDF, timeline ------------------------------------------------------

  function numericSpecs() {
    return state.detail.params.filter((p) => p.kind === "float" || p.kind === "int");
  }

  function present(v) {
    return v !== null && v !== undefined;
  }

  // Fills a select with names, keeping the current choice when it is still there.
  function fillSelect(select, names, fallback) {
    const current = Array.from(select.options).map((o) => o.value);
    if (current.join("\n") !== names.join("\n")) {
      const keep = select.value;
      select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
      select.value = names.includes(keep) ? keep : fallback || names[0] || "";
    }
    select.disabled = names.length < 2;
  }

  function paramAxis(spec, title) {
    const axis = { title: { text: TD.plotText(title) }, gridcolor: "#eef0f3", zeroline: false, automargin: true };
    if (spec && spec.kind === "categorical") axis.type = "category";
    else if (spec && spec.log) axis.type = "log";
    return axis;
  }

  const TRIAL_SCALE = "Viridis";

  // Infeasible completed trials in a plot of their own: grey crosses.
  function infeasibleTrace(trials, x, y) {
    return { type: "scatter", mode: "markers", name: "infeasible", x: trials.map(x), y: trials.map(y),
      text: trials.map((t) => "trial " + t.number + " (infeasible): " + TD.fmt(objectiveOf(t))),
      hovertemplate: "%{text}<br>(%{x}, %{y})<extra></extra>", marker: INFEASIBLE_MARKER };
  }

  // Objective against one parameter; a conditional parameter's inactive trials are left out.
  function drawSlice() {
    const node = document.getElementById("slice-plot");
    const note = document.getElementById("slice-note");
    const select = document.getElementById("slice-param");
    const specs = state.detail.params.filter((p) => p.kind !== "fixed");
    fillSelect(select, specs.map((p) => p.name));
    const target = goal();
    const done = completedWithValue(state.detail.trials).sort((a, b) => a.number - b.number);
    const spec = specs.find((p) => p.name === select.value);
    if (!target || !spec || done.length === 0) {
      note.textContent = "";
      return TD.plot(node, [], TD.emptyLayout("no completed trials yet"));
    }
    const all = done.filter((t) => present(t.params[spec.name]));
    const inactive = done.length - all.length;
    const best = bestSet(all);
    const shown = thin(all, (t) => best.has(t));
    const active = shown.filter((t) => !isInfeasible(t)), infeasible = shown.filter(isInfeasible);
    note.textContent = (inactive ? inactive + " completed trials where " + spec.name + " was inactive are not drawn. " : "") +
      (infeasible.length ? infeasible.length + " infeasible trials: grey crosses. " : "") +
      (shown.length < all.length ? "A sample of " + shown.length + " of " + all.length + " trials (evenly spaced, and the best " +
        best.size + ")." : "");
    const value = (v) => (spec.kind === "categorical" ? TD.plotText(v) : v);
    const traces = [{
      type: "scatter", mode: "markers", name: TD.plotText(target.metric),
      x: active.map((t) => value(t.params[spec.name])), y: active.map(objectiveOf),
      text: active.map((t) => "trial " + t.number), hovertemplate: "%{text}<br>%{x}: %{y}<extra></extra>",
      marker: { size: 8, opacity: 0.85, color: active.map((t) => t.number), colorscale: TRIAL_SCALE,
        showscale: true, colorbar: { title: { text: "trial" }, thickness: 12 } },
    }];
    if (infeasible.length) traces.push(infeasibleTrace(infeasible, (t) => value(t.params[spec.name]), objectiveOf));
    return TD.plot(node, traces, {
      xaxis: paramAxis(spec, spec.name),
      yaxis: { title: { text: TD.plotText(target.metric) }, gridcolor: "#eef0f3", zeroline: false, automargin: true },
      showlegend: false, margin: { l: 60, r: 16, t: 16, b: 44 },
    });
  }

  // The pair of parameters for the contour and rank plots: the user's choice, else the two
  // most important numeric parameters once the importance is known, else the first two.
  function updatePairChoice() {
    const names = numericSpecs().map((p) => p.name);
    const xs = document.getElementById("contour-x"), ys = document.getElementById("contour-y");
    let ranked = names;
    if (state.importance) {
      const order = state.importance.map((r) => r.param).filter((n) => names.includes(n));
      ranked = order.concat(names.filter((n) => !order.includes(n)));
    }
    const chosen = state.pairChosen && names.includes(xs.value) && names.includes(ys.value);
    fillSelect(xs, names, ranked[0]);
    fillSelect(ys, names, ranked[1]);
    if (!chosen && names.length >= 2) {
      xs.value = ranked[0];
      ys.value = ranked[1];
    }
    return names.length >= 2 && xs.value !== ys.value ? [xs.value, ys.value] : null;
  }

  function pairTrials(pair) {
    return completedWithValue(state.detail.trials)
      .filter((t) => typeof t.params[pair[0]] === "number" && typeof t.params[pair[1]] === "number");
  }

  function pairLayout(pair, extra) {
    const spec = (name) => state.detail.params.find((p) => p.name === name);
    return Object.assign({ xaxis: paramAxis(spec(pair[0]), pair[0]), yaxis: paramAxis(spec(pair[1]), pair[1]),
      showlegend: false, margin: { l: 60, r: 16, t: 16, b: 44 } }, extra || {});
  }

  function pairMessage(pair) {
    return numericSpecs().length < 2 ? "needs two numeric parameters" : pair ? "" : "choose two different parameters";
  }

  // A contour axis: the distinct values when they are few, else CONTOUR_CELLS cells across the
  // range (log-spaced on a log axis), at their centres; and each value's cell.
  function contourAxis(values, spec) {
    const distinct = Array.from(new Set(values)).sort((a, b) => a - b);
    if (distinct.length <= CONTOUR_CELLS) return [distinct, values.map((v) => distinct.indexOf(v))];
    const log = !!spec.log && distinct[0] > 0;
    const f = log ? Math.log10 : (v) => v, g = log ? (u) => Math.pow(10, u) : (u) => u;
    const lo = f(distinct[0]), hi = f(distinct[distinct.length - 1]), width = (hi - lo) / CONTOUR_CELLS;
    const centres = Array.from({ length: CONTOUR_CELLS }, (_, i) => g(lo + (i + 0.5) * width));
    return [centres, values.map((v) => Math.min(CONTOUR_CELLS - 1, Math.floor((f(v) - lo) / width)))];
  }

  function drawContour() {
    const node = document.getElementById("contour-plot");
    const pair = updatePairChoice();
    const target = goal();
    if (!pair || !target) return TD.plot(node, [], TD.emptyLayout(pairMessage(pair) || "no completed trials yet"));
    const both = pairTrials(pair);
    // The surface interpolates the feasible trials; infeasible ones are only marked.
    const trials = both.filter((t) => !isInfeasible(t)), infeasible = both.filter(isInfeasible);
    if (trials.length < 2) return TD.plot(node, [], TD.emptyLayout("needs two feasible completed trials with both parameters"));
    const x = trials.map((t) => t.params[pair[0]]), y = trials.map((t) => t.params[pair[1]]);
    const spec = (name) => state.detail.params.find((p) => p.name === name) || {};
    const [gx, ix] = contourAxis(x, spec(pair[0]));
    const [gy, iy] = contourAxis(y, spec(pair[1]));
    // The objective where a trial was (the mean where several share a cell), the gaps interpolated.
    const sum = gy.map(() => gx.map(() => 0)), count = gy.map(() => gx.map(() => 0));
    trials.forEach((t, k) => {
      sum[iy[k]][ix[k]] += objectiveOf(t);
      count[iy[k]][ix[k]] += 1;
    });
    const z = sum.map((row, j) => row.map((v, i) => (count[j][i] ? v / count[j][i] : null)));
    const best = bestSet(trials);
    const dots = thin(trials, (t) => best.has(t));
    // The better values darker: Blues runs from dark (low) to light (high).
    const reverse = target.direction === "maximize";
    return TD.plot(node, [{
      type: "contour", x: gx, y: gy, z, connectgaps: true, colorscale: "Blues", reversescale: reverse,
      contours: { coloring: "heatmap" }, line: { smoothing: 1.0 }, hoverinfo: "skip",
      colorbar: { title: { text: TD.plotText(target.metric) }, thickness: 12 },
    }, {
      type: "scatter", mode: "markers", x: dots.map((t) => t.params[pair[0]]), y: dots.map((t) => t.params[pair[1]]),
      text: dots.map((t) => "trial " + t.number + ": " + TD.fmt(objectiveOf(t))),
      hovertemplate: "%{text}<br>(%{x}, %{y})<extra></extra>",
      marker: { color: "#1f2937", size: 6, line: { color: "#fff", width: 1 } },
    }].concat(infeasible.length ? [infeasibleTrace(infeasible, (t) => t.params[pair[0]], (t) => t.params[pair[1]])] : []),
    pairLayout(pair));
  }

  // Each completed trial at its pair of parameters, coloured by its objective's rank (0 the best).
  function drawRank() {
    const node = document.getElementById("rank-plot");
    const pair = updatePairChoice();
    const target = goal();
    if (!pair || !target) return TD.plot(node, [], TD.emptyLayout(pairMessage(pair) || "no completed trials yet"));
    const both = pairTrials(pair);
    if (both.length === 0) return TD.plot(node, [], TD.emptyLayout("no completed trials with both parameters"));
    const best = bestSet(both);
    const sampled = thin(both, (t) => best.has(t));
    // Ranked among the feasible trials; infeasible ones are only marked.
    const trials = sampled.filter((t) => !isInfeasible(t)), infeasible = sampled.filter(isInfeasible);
    const order = trials.slice().sort((a, b) => (better(objectiveOf(a), objectiveOf(b), target.direction) ? -1 :
      better(objectiveOf(b), objectiveOf(a), target.direction) ? 1 : 0));
    const position = new Map(order.map((t, i) => [t, i]));
    const rank = new Map(order.map((t, i) => [t, trials.length > 1 ? i / (trials.length - 1) : 0]));
    return TD.plot(node, [{
      type: "scatter", mode: "markers", x: trials.map((t) => t.params[pair[0]]),
      y: trials.map((t) => t.params[pair[1]]),
      text: trials.map((t) => "trial " + t.number + ": " + TD.fmt(objectiveOf(t)) + " (rank " +
        (position.get(t) + 1) + " of " + trials.length + ")"),
      hovertemplate: "%{text}<br>(%{x}, %{y})<extra></extra>",
      marker: { size: 9, color: trials.map((t) => rank.get(t)), colorscale: [[0, "#2456a6"], [0.5, "#f2e394"], [1, "#c62828"]], cmin: 0, cmax: 1,
        showscale: true, colorbar: { title: { text: "rank" }, thickness: 12, tickvals: [0, 1], ticktext: ["best", "worst"] },
        line: { color: "#1f2937", width: 0.5 } },
    }].concat(infeasible.length ? [infeasibleTrace(infeasible, (t) => t.params[pair[0]], (t) => t.params[pair[1]])] : []),
    pairLayout(pair));
  }

  // Empirical distribution function: the share of completed trials with a value at most y.
  function drawEdf() {
    const node = document.getElementById("edf-plot");
    const target = goal();
    const done = completedWithValue(state.detail.trials);
    const left = done.filter(isInfeasible).length;
    document.getElementById("edf-note").textContent = left ? left + " infeasible trials are left out." : "";
    const values = done.filter((t) => !isInfeasible(t)).map(objectiveOf).sort((a, b) => a - b);
    if (!target || values.length === 0) return TD.plot(node, [], TD.emptyLayout("no feasible completed trials yet"));
    return TD.plot(node, [{
      type: "scatter", mode: values.length > MAX_MARKERS ? "lines" : "lines+markers",
      name: TD.plotText(target.metric), x: values,
      y: values.map((_, i) => (i + 1) / values.length), line: { color: "#2456a6", width: 2, shape: "hv" },
      marker: { size: 5, color: "#2456a6" }, hovertemplate: "%{x}: %{y:.0%} of trials at most<extra></extra>",
    }], {
      xaxis: { title: { text: TD.plotText(target.metric) }, gridcolor: "#eef0f3", zeroline: false },
      yaxis: { title: { text: "cumulative share of completed trials" }, range: [0, 1.04], tickformat: ".0%",
        gridcolor: "#eef0f3", zeroline: false, automargin: true },
      showlegend: false, margin: { l: 60, r: 16, t: 16, b: 44 },
    });
  }

  // One bar per started trial, from its start to its end (now while it runs), a row per worker.
  // Many trials: each a thick line segment (start to end), one SVG path a state, instead of a bar each.
  // Past this many, a bar (an SVG path of its own) becomes a segment of one line per state.
  const TIMELINE_BARS = 500;

  function timelineSegments(byState) {
    return Array.from(byState.entries()).map(([name, trials]) => {
      const x = [], y = [], text = [];
      for (const t of trials) {
        const start = Date.parse(t.start_time), label = TD.plotText(t.worker || "(no worker)");
        const caption = "trial " + t.number + " (" + name.toLowerCase() + ", " + TD.fmtDuration(t.duration) + ")";
        x.push(start, start + Math.max(1, 1000 * (t.duration || 0)), null);
        y.push(label, label, null);
        text.push(caption, caption, null);
      }
      return { type: "scatter", mode: "lines", name: name.toLowerCase(), x, y, text, connectgaps: false,
        hovertemplate: "%{text}<extra></extra>", line: { color: STATE_COLORS[name] || "#667085", width: 8 } };
    });
  }

  function drawTimeline() {
    const node = document.getElementById("timeline-plot");
    const note = document.getElementById("timeline-note");
    const all = state.detail.trials.filter((t) => t.start_time).sort((a, b) => a.number - b.number);
    note.textContent = "";
    if (all.length === 0) return TD.plot(node, [], TD.emptyLayout("no trial started yet"));
    // Thousands of bars are sub-pixel slivers that cost a second of SVG: the latest MAX_MARKERS.
    const started = all.slice(-MAX_MARKERS);
    if (started.length < all.length) note.textContent = "The latest " + started.length + " of " + all.length + " started trials.";
    const byState = new Map();
    for (const t of started) {
      const key = t.state === "COMPLETED" && isInfeasible(t) ? "COMPLETED, INFEASIBLE" : t.state;
      if (!byState.has(key)) byState.set(key, []);
      byState.get(key).push(t);
    }
    const workers = Array.from(new Set(started.map((t) => t.worker || "(no worker)"))).sort();
    const traces = started.length > TIMELINE_BARS ? timelineSegments(byState) : Array.from(byState.entries()).map(([name, trials]) => ({
      type: "bar", orientation: "h", name: name.toLowerCase(),
      base: trials.map((t) => Date.parse(t.start_time)),
      x: trials.map((t) => Math.max(1, 1000 * (t.duration || 0))),
      y: trials.map((t) => TD.plotText(t.worker || "(no worker)")),
      text: trials.map((t) => "trial " + t.number + " (" + name.toLowerCase() + ", " + TD.fmtDuration(t.duration) + ")"),
      textposition: "none", hovertemplate: "%{text}<extra></extra>",
      marker: { color: STATE_COLORS[name] || "#667085", line: { color: "#fff", width: 1 },
        pattern: name === "COMPLETED, INFEASIBLE" ? { shape: "x", fgcolor: "#fff", size: 6 } : undefined },
    }));
    return TD.plot(node, traces, {
      barmode: "overlay",
      xaxis: { type: "date", title: { text: "time" }, gridcolor: "#eef0f3", zeroline: false },
      yaxis: { type: "category", categoryorder: "array", categoryarray: workers.map(TD.plotText), automargin: true,
        title: { text: "worker" } },
      legend: { orientation: "h", y: 1.12, x: 0 }, margin: { l: 60, r: 16, t: 28, b: 44 },
    });
  }

  // --- trial table: filters, sorting and pages, kept in the URL ------------------------------------
  //
  // The view (which trials, in which order, which page) lives in the query string, so a link
  // shares it:  ?state=completed,pruned&p.lr=0.001..0.1&m.loss=..0.5&sort=-loss&page=2
  //   state=a,b      trials in these states
  //   p.NAME=…       a parameter: lo..hi ranges (either end may be left open) or values, comma-separated
  //   m.NAME=…       an objective or final metric, the same way
  //   sort=[-]KEY    a column (a metric or parameter by name, or p.NAME / m.NAME; - for descending)
  //   page, page_size  the table's page (1-based) and rows a page (1-1000, 100 by default)
  // A key or value the page cannot read is reported by name above the table, never dropped quietly.

  const PAGE_SIZE = 100;
  const STATES = ["completed", "pruned", "failed", "active", "queued", "infeasible", "stale"];
  // Query keys that belong to the page, not to the table.
  const PAGE_KEYS = new Set(["refresh"]);
  const view = {
    states: null, params: {}, metrics: {}, sort: null, page: 1, pageSize: PAGE_SIZE,
    errors: {}, // by field: the URL's or an input's text that could not be read
  };

  // A condition: values within any of `ranges` or equal (as text) to any of `values`.
  function parseCondition(text, numeric) {
    const ranges = [], values = [];
    for (const part of text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
      const dots = part.indexOf("..");
      if (dots >= 0) {
        const lo = part.slice(0, dots).trim(), hi = part.slice(dots + 2).trim();
        const a = lo === "" ? -Infinity : Number(lo), b = hi === "" ? Infinity : Number(hi);
        if (Number.isNaN(a) || Number.isNaN(b) || (lo === "" && hi === "")) {
          throw new Error("'" + part + "' is not a range (write lo..hi, ..hi or lo.., with numbers)");
        }
        if (a > b) throw new Error("'" + part + "' is empty: its low end is above its high end");
        ranges.push([a, b]);
      } else if (numeric) {
        const v = Number(part);
        if (Number.isNaN(v)) throw new Error("'" + part + "' is not a number (write lo..hi for a range)");
        ranges.push([v, v]);
      } else {
        values.push(part);
      }
    }
    if (ranges.length === 0 && values.length === 0) throw new Error("empty: give a range lo..hi or values");
    return { ranges, values };
  }

  function conditionText(cond) {
    const range = ([a, b]) => (a === b ? TD.fmt(a) : (a === -Infinity ? "" : String(a)) + ".." + (b === Infinity ? "" : String(b)));
    return cond.ranges.map(range).concat(cond.values).join(",");
  }

  function matches(cond, v) {
    if (v === null || v === undefined) return false;
    if (typeof v === "number" && cond.ranges.some(([a, b]) => v >= a && v <= b)) return true;
    return cond.values.includes(TD.fmt(v));
  }

  function paramSpec(name) {
    return state.detail.params.find((p) => p.name === name);
  }

  function metricNamesOf() {
    const names = new Set(state.detail.study.objectives.map((g) => g.metric));
    for (const t of state.detail.trials) for (const k of Object.keys(t.values)) names.add(k);
    return names;
  }

  function metricValue(t, name) {
    const i = state.detail.study.objectives.findIndex((g) => g.metric === name);
    return i >= 0 ? t.objectives[i] : t.values[name];
  }

  // The table's columns: key (as the URL's sort names it), header, cell.
  function columns() {
    const detail = state.detail;
    const goals = detail.study.objectives;
    const goalNames = new Set(goals.map((g) => g.metric));
    const others = Array.from(metricNamesOf()).filter((k) => !goalNames.has(k)).sort();
    const constraints = detail.study.constraints || [];
    return [
      { key: "number", label: "#", cls: "num", value: (t) => t.number },
      { key: "state", label: "state", value: (t) => t.state.toLowerCase() },
      ...goals.map((g, i) => ({ key: "m." + g.metric, name: g.metric, label: g.metric, cls: "num metric",
        title: "objective, " + g.direction, filter: "m", value: (t) => t.objectives[i] })),
      ...constraints.map((c, i) => ({ key: "c." + c, name: c, label: c, cls: "num constraint",
        title: "constraint (<= 0 is feasible)", value: (t) => (t.constraints.length ? t.constraints[i] : null) })),
      ...detail.params.map((p) => ({ key: "p." + p.name, name: p.name, label: p.name, cls: "param", title: "parameter",
        filter: "p", value: (t) => t.params[p.name] })),
      ...others.map((k) => ({ key: "m." + k, name: k, label: k, cls: "num metric", title: "final metric", filter: "m",
        value: (t) => t.values[k] })),
      { key: "duration", label: "duration", cls: "num", value: (t) => t.duration },
      { key: "worker", label: "worker", value: (t) => t.worker },
      { key: "run", label: "run", value: (t) => t.run_id },
      { key: "started", label: "started", value: (t) => t.start_time },
      { key: "note", label: "note", value: note },
    ];
  }

  // A sort key from the URL: a column's key, or a name that only one column has.
  function findColumn(cols, text) {
    const exact = cols.find((c) => c.key === text);
    if (exact) return exact;
    const named = cols.filter((c) => c.name === text);
    if (named.length === 1) return named[0];
    if (named.length > 1) throw new Error("'" + text + "' names a metric and a parameter: write m." + text + " or p." + text);
    throw new Error("no column '" + text + "' (a metric or parameter name, p.NAME, m.NAME, number, state, duration, " +
      "worker, run, started)");
  }

  function sortText(sort, cols) {
    const col = cols.find((c) => c.key === sort.key);
    const short = col && col.name && cols.filter((c) => c.name === col.name).length === 1 &&
      !cols.some((c) => c.key === col.name) ? col.name : sort.key;
    return (sort.desc ? "-" : "") + short;
  }

  function setCondition(kind, name, text) {
    const field = kind + "." + name;
    delete view.errors[field];
    const target = kind === "m" ? view.metrics : view.params;
    if (text.trim() === "") {
      delete target[name];
      return;
    }
    try {
      if (kind === "m") {
        if (!metricNamesOf().has(name)) throw new Error("no metric '" + name + "' in this study");
        target[name] = parseCondition(text, true);
      } else {
        const spec = paramSpec(name);
        if (!spec) throw new Error("no parameter '" + name + "' in this study");
        const cond = parseCondition(text, spec.kind === "float" || spec.kind === "int");
        target[name] = cond;
      }
    } catch (error) {
      view.errors[field] = error.message;
    }
  }

  function readView() {
    const query = new URLSearchParams(location.search);
    const cols = columns();
    for (const [key, value] of query) {
      if (PAGE_KEYS.has(key)) continue;
      try {
        if (key === "state") {
          const states = value.split(",").map((v) => v.trim().toLowerCase()).filter((v) => v);
          const unknown = states.filter((v) => !STATES.includes(v));
          if (unknown.length) throw new Error("unknown state '" + unknown[0] + "' (one of " + STATES.join(", ") + ")");
          view.states = new Set(states);
        } else if (/^[pm]\..+/.test(key)) {
          setCondition(key[0], key.slice(2), value);
        } else if (key === "sort") {
          const desc = value.startsWith("-");
          view.sort = { key: findColumn(cols, desc ? value.slice(1) : value).key, desc };
        } else if (key === "page" || key === "page_size") {
          const n = Number(value);
          const high = key === "page" ? Infinity : 1000;
          if (!Number.isInteger(n) || n < 1 || n > high) throw new Error("'" + value + "' is not a whole number from 1" + (high < Infinity ? " to " + high : ""));
          if (key === "page") view.page = n; else view.pageSize = n;
        } else {
          throw new Error("unknown filter key (state, p.NAME, m.NAME, sort, page, page_size)");
        }
      } catch (error) {
        view.errors[key] = error.message;
      }
    }
  }

  // The view into the query string (history.replaceState: filtering is not navigation).
  function writeView(cols) {
    const query = new URLSearchParams();
    const current = new URLSearchParams(location.search);
    for (const key of PAGE_KEYS) if (current.has(key)) query.set(key, current.get(key));
    if (view.states) query.set("state", Array.from(view.states).join(","));
    for (const [name, cond] of Object.entries(view.params)) query.set("p." + name, conditionText(cond));
    for (const [name, cond] of Object.entries(view.metrics)) query.set("m." + name, conditionText(cond));
    // What could not be read stays in the URL as it was, so the link still shows the mistake.
    for (const field of Object.keys(view.errors)) if (current.has(field)) query.set(field, current.get(field));
    if (view.sort) query.set("sort", sortText(view.sort, cols));
    if (view.page > 1) query.set("page", String(view.page));
    if (view.pageSize !== PAGE_SIZE) query.set("page_size", String(view.pageSize));
    const text = query.toString().replace(/%2C/g, ",");
    const url = location.pathname + (text ? "?" + text : "") + location.hash;
    if (url !== location.pathname + location.search + location.hash) history.replaceState(null, "", url);
  }

  function keep(t) {
    if (view.states && !view.states.has(t.state.toLowerCase())) return false;
    for (const [name, cond] of Object.entries(view.params)) if (!matches(cond, t.params[name])) return false;
    for (const [name, cond] of Object.entries(view.metrics)) if (!matches(cond, metricValue(t, name))) return false;
    return true;
  }

  // Blanks last in either direction; numbers as numbers, the rest as text.
  function compareValues(a, b, desc) {
    const blankA = a === null || a === undefined || a === "", blankB = b === null || b === undefined || b === "";
    if (blankA || blankB) return blankA === blankB ? 0 : blankA ? 1 : -1;
    const order = typeof a === "number" && typeof b === "number" ? a - b
      : String(a).localeCompare(String(b), undefined, { numeric: true });
    return desc ? -order : order;
  }

  // A pruned trial has no result, only where it stopped: said in words, never in a value column.
  function note(t) {
    if (!t.stopped_at) return t.reason || "";
    const values = Object.entries(t.stopped_at.values).map(([k, v]) => k + " " + TD.fmt(v)).join(", ");
    return "pruned at step " + t.stopped_at.step + (values ? " (" + values + ")" : "");
  }

  function sortKey(v) {
    return v === null || v === undefined ? "" : typeof v === "number" ? String(v) : TD.fmt(v);
  }

  function cell(col, t) {
    const v = col.value(t);
    if (col.key === "state") {
      return el("td", {}, [el("span", { class: "badge state-" + v, text: v }),
        ...(isInfeasible(t) ? [" ", el("span", { class: "badge state-infeasible", text: "infeasible",
          title: "a constraint value is above 0: never the best trial" })] : [])]);
    }
    if (col.key === "run") {
      return el("td", {}, v ? [el("a", { href: "/ui/runs/" + encodeURIComponent(v), class: "mono", text: v.slice(0, 8) })] : []);
    }
    if (col.key === "duration") return el("td", { class: "num", text: TD.fmtDuration(v), dataset: { sort: sortKey(v) } });
    if (col.key === "started") return el("td", { text: TD.fmtTime(v), dataset: { sort: v || "" } });
    if (col.key === "worker") return el("td", { class: "small", text: v });
    if (col.key === "note") return el("td", { class: "small wrap", text: v });
    if (col.key === "number") {
      return el("td", { class: "num" }, [el("a", { href: "/ui/trials/" + t.id, class: "trial-link", text: v,
        title: "the trial's page" })]);
    }
    const violated = col.key.startsWith("c.") && v !== null && v > 0;
    return el("td", { class: (col.cls && col.cls.includes("num") ? "num" : "") + (violated ? " violated" : ""),
      text: TD.fmt(v), dataset: { sort: sortKey(v) } });
  }

  function filterInput(col) {
    if (!col.filter) return el("td", {});
    const cond = col.filter === "m" ? view.metrics[col.name] : view.params[col.name];
    const field = col.filter + "." + col.name;
    const spec = col.filter === "p" ? paramSpec(col.name) : null;
    const categorical = spec && spec.kind === "categorical";
    return el("td", {}, [el("input", {
      type: "text", class: "column-filter" + (view.errors[field] ? " invalid" : ""), dataset: { field },
      value: cond ? conditionText(cond) : new URLSearchParams(location.search).get(field) || "",
      placeholder: categorical ? "a,b" : "lo..hi", "aria-label": "filter " + col.label,
      title: categorical ? "values, comma-separated" : "a range lo..hi (either end may be left out), or several: a..b,c..d",
    })]);
  }

  function drawErrors() {
    const box = document.getElementById("trial-filter-error");
    const entries = Object.entries(view.errors);
    box.hidden = entries.length === 0;
    box.replaceChildren(...entries.map(([field, message]) => el("div", {}, [el("strong", { text: field }), ": " +
      message + " (not applied)"])));
  }

  function drawStateFilter() {
    const box = document.getElementById("state-filter");
    const counts = state.detail.study.counts;
    box.replaceChildren(...STATES.filter((s) => counts[s] || (view.states && view.states.has(s))).map((s) =>
      el("label", { class: "inline" }, [el("input", { type: "checkbox", value: s,
        checked: !view.states || view.states.has(s) }), " " + s + " (" + (counts[s] || 0) + ")"])));
  }

  function drawPager(total) {
    const pages = Math.max(1, Math.ceil(total / view.pageSize));
    if (view.page > pages) view.page = pages;
    document.getElementById("trials-previous").disabled = view.page <= 1;
    document.getElementById("trials-next").disabled = view.page >= pages;
    const first = total ? (view.page - 1) * view.pageSize + 1 : 0;
    document.getElementById("trials-page").textContent = "page " + view.page + " of " + pages + " (trials " + first +
      "–" + Math.min(total, view.page * view.pageSize) + ")";
  }

  function drawTable() {
    const table = document.getElementById("trials");
    const cols = columns();
    // A brush on the parallel coordinates lists only the trials inside every brushed range.
    const inside = brushFilter();
    const shown = state.detail.trials.filter((t) => keep(t) && (!inside || inside(t)));
    if (view.sort) {
      const col = cols.find((c) => c.key === view.sort.key);
      if (col) shown.sort((a, b) => compareValues(col.value(a), col.value(b), view.sort.desc) || a.number - b.number);
    } else {
      shown.sort((a, b) => a.number - b.number);
    }
    // A link to one trial (#trial-N) opens the page it is on.
    if (!state.scrolled && location.hash.startsWith("#trial-")) {
      const at = shown.findIndex((t) => "trial-" + t.number === location.hash.slice(1));
      if (at >= 0) view.page = Math.floor(at / view.pageSize) + 1;
    }
    drawPager(shown.length);
    const page = shown.slice((view.page - 1) * view.pageSize, view.page * view.pageSize);
    const head = el("tr", {}, cols.map((c) => el("th", { class: c.cls, title: c.title, text: c.label,
      dataset: { key: c.key }, "aria-sort": view.sort && view.sort.key === c.key ? (view.sort.desc ? "descending" : "ascending") : null })));
    const filters = el("tr", { class: "filters" }, cols.map(filterInput));
    table.tHead.replaceChildren(head, filters);
    table.tBodies[0].replaceChildren(...page.map((t) => el("tr", { id: "trial-" + t.number,
      class: isInfeasible(t) ? "infeasible" : "" }, cols.map((c) => cell(c, t)))));
    const total = state.detail.trials.length;
    document.getElementById("trials-count").textContent = shown.length === total ? total + " trials"
      : shown.length + " of " + total + " trials match";
    showBrushNote(shown.length, total);
    drawStateFilter();
    drawErrors();
    writeView(cols);
    if (!state.scrolled && location.hash.startsWith("#trial-")) {
      const row = document.getElementById(location.hash.slice(1));
      if (row) {
        row.classList.add("highlight");
        row.scrollIntoView({ block: "center" });
      }
    }
    state.scrolled = true;
  }

  function tableEvents() {
    const table = document.getElementById("trials");
    table.tHead.addEventListener("click", (event) => {
      const th = event.target.closest("th");
      if (!th || !th.dataset.key) return;
      const same = view.sort && view.sort.key === th.dataset.key;
      view.sort = { key: th.dataset.key, desc: same && !view.sort.desc };
      view.page = 1;
      drawTable();
    });
    table.tHead.addEventListener("change", (event) => {
      const input = event.target.closest("input.column-filter");
      if (!input) return;
      const field = input.dataset.field;
      setCondition(field[0], field.slice(2), input.value);
      view.page = 1;
      drawTable();
    });
    document.getElementById("state-filter").addEventListener("change", () => {
      const boxes = Array.from(document.querySelectorAll("#state-filter input"));
      const checked = boxes.filter((b) => b.checked).map((b) => b.value);
      view.states = checked.length === boxes.length ? null : new Set(checked);
      delete view.errors.state;
      view.page = 1;
      drawTable();
    });
    document.getElementById("trials-previous").addEventListener("click", () => { view.page -= 1; drawTable(); });
    document.getElementById("trials-next").addEventListener("click", () => { view.page += 1; drawTable(); });
    document.getElementById("trials-clear").addEventListener("click", () => {
      Object.assign(view, { states: null, params: {}, metrics: {}, sort: null, page: 1, errors: {} });
      clearBrush();
    });
  }

  // --- header, live updates ---------------------------------------------------------------------

  function drawHeader() {
    const study = state.detail.study;
    const badge = document.getElementById("study-state");
    badge.textContent = study.state.toLowerCase();
    badge.className = "badge state-" + study.state.toLowerCase();
    document.getElementById("count-total").textContent = study.total;
    for (const [name, count] of Object.entries(study.counts)) {
      const node = document.getElementById("count-" + name);
      if (node) node.textContent = count;
    }
    const target = goal();
    const done = completedWithValue(state.detail.trials).filter((t) => !isInfeasible(t));
    let best = null;
    for (const t of done) if (best === null || better(objectiveOf(t), objectiveOf(best), target.direction)) best = t;
    document.getElementById("best-value").textContent = best ? TD.fmt(objectiveOf(best)) + " (trial " + best.number + ")" : "–";
  }

  // Resolves once the table and every chart but the importance (a request of its own, computed
  // by the suggestion service) have drawn; `importance` once that has too.
  // A task boundary after a frame: the browser paints what is drawn so far before the next chart.
  function nextFrame() {
    return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  }

  // The first screen (the facts, the history; the importance when its answer comes) is drawn and
  // painted first, then the table and the other charts one at a time, top to bottom, a paint
  // between each: a large study shows its first screen at once instead of after every chart.
  // The contour and rank wait for the importance, which picks their default pair.
  function drawAll() {
    drawHeader();
    const importance = drawImportance(false);
    const first = drawHistory().then(nextFrame);
    const steps = [drawTable, drawPareto, drawPareto3d, drawHypervolume, drawParallel, drawPopulation, drawSlice,
      drawEdf, () => importance.then(() => Promise.all([drawContour(), drawRank()])), drawTimeline, drawIntermediate];
    const main = first.then(async () => {
      for (const step of steps) {
        await step();
        await nextFrame();
      }
      state.pairDrawn = true;
    });
    return { first, main, all: Promise.all([main, importance]) };
  }

  // The trials that can change: numbered above the highest held, or unfinished when read.
  const FINISHED = new Set(["COMPLETED", "PRUNED", "FAILED", "INFEASIBLE", "STALE"]);
  const MAX_OPEN = 1000;

  function pollUrl() {
    const base = "/ui/api/studies/" + encodeURIComponent(state.detail.study.name);
    const trials = state.detail.trials;
    if (trials.length === 0 || state.detail.truncated) return base;
    const open = trials.filter((t) => !FINISHED.has(t.state)).map((t) => t.number);
    if (open.length > MAX_OPEN) return base;
    const after = trials.reduce((m, t) => Math.max(m, t.number), -1);
    return base + "?after=" + after + (open.length ? "&open=" + open.join(",") : "");
  }

  // Merges a delta into the held document; says whether anything changed.
  function merge(doc) {
    if (!doc.delta) {
      const changed = JSON.stringify(doc.trials) !== JSON.stringify(state.detail.trials) ||
        JSON.stringify(doc.study) !== JSON.stringify(state.detail.study);
      state.detail = doc;
      return changed;
    }
    const byNumber = new Map(state.detail.trials.map((t) => [t.number, t]));
    let changed = JSON.stringify(doc.study) !== JSON.stringify(state.detail.study);
    for (const t of doc.trials) {
      const held = byNumber.get(t.number);
      if (!held || JSON.stringify(held) !== JSON.stringify(t)) changed = true;
      byNumber.set(t.number, t);
    }
    state.detail = Object.assign({}, doc, { delta: false,
      trials: Array.from(byNumber.values()).sort((a, b) => a.number - b.number) });
    return changed;
  }

  function finished() {
    return state.detail.study.state === "COMPLETED";
  }

  function schedule() {
    if (finished()) {
      live.textContent = "study completed: live updates stopped";
      live.classList.remove("error");
      return;
    }
    const delay = state.refresh * 1000 * Math.min(8, Math.pow(2, state.failures));
    setTimeout(poll, delay);
  }

  async function poll() {
    if (document.hidden) {
      document.addEventListener("visibilitychange", poll, { once: true });
      return;
    }
    const url = pollUrl();
    try {
      const response = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
      const text = await response.text();
      if (!response.ok) {
        let message = response.statusText;
        try { message = JSON.parse(text).error.message; } catch (ignored) { /* not JSON */ }
        throw new Error(message);
      }
      state.failures = 0;
      if (merge(JSON.parse(text))) await drawAll().all;
      live.classList.remove("error");
      live.textContent = "live: updated " + new Date().toLocaleTimeString() +
        (finished() ? "" : ", every " + state.refresh + " s");
    } catch (error) {
      state.failures += 1;
      live.classList.add("error");
      live.textContent = "live update failed (" + error.message + "); retrying";
    }
    schedule();
  }

  readView();
  tableEvents();
  const select = document.getElementById("objective");
  if (select) {
    select.addEventListener("change", () => {
      state.objective = Number(select.value);
      drawAll();
    });
  }
  const populationParam = document.getElementById("population-param");
  if (populationParam) populationParam.addEventListener("change", drawPopulation);
  document.getElementById("slice-param").addEventListener("change", drawSlice);
  document.getElementById("brush-clear").addEventListener("click", clearBrush);
  for (const id of ["pareto-x", "pareto-y"]) {
    const picker = document.getElementById(id);
    if (picker) picker.addEventListener("change", drawPareto);
  }
  for (const id of ["pareto3-x", "pareto3-y", "pareto3-z"]) {
    const picker = document.getElementById(id);
    if (picker) picker.addEventListener("change", drawPareto3d);
  }
  for (const id of ["contour-x", "contour-y"]) {
    document.getElementById(id).addEventListener("change", () => {
      state.pairChosen = true;
      drawContour();
      drawRank();
    });
  }
  document.getElementById("intermediate-metric").addEventListener("change", (event) => {
    state.metric = event.target.value;
    drawIntermediate();
  });

  const first = drawAll();
  // For the time-to-first-render benchmark: the first screen painted ("rendered"), then the
  // table and every chart but the importance ("complete").
  first.first.then(() => {
    performance.mark("rendered");
    document.body.dataset.rendered = "1";
  });
  first.main.then(() => {
    performance.mark("complete");
    document.body.dataset.complete = "1";
  });
  first.all.then(() => {
    TD.ready();
    if (finished()) {
      live.textContent = "study completed: live updates stopped";
    } else {
      live.textContent = "live: every " + state.refresh + " s";
      schedule();
    }
  }, (error) => {
    live.classList.add("error");
    live.textContent = "drawing failed: " + error.message;
    throw error;
  });
}());
