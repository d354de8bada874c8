/* An experiment's runs: pick runs to compare. */
"use strict";

(function () {
  const form = document.getElementById("compare-form");
  if (!form) return;
  const button = document.getElementById("compare-button");
  const count = document.getElementById("selected-count");
  const all = document.getElementById("select-all");
  const boxes = () => Array.from(form.querySelectorAll("input.run-select"));

  function update() {
    const selected = boxes().filter((b) => b.checked).length;
    button.disabled = selected < 2;
    count.textContent = selected < 2 ? "select two or more runs" : selected + " runs selected";
  }

  form.addEventListener("change", (event) => {
    if (event.target === all) boxes().forEach((b) => { b.checked = all.checked; });
    update();
  });
  update();
}());

/* Quick filters: a status or a tag, written into the filter text in the service's filter
   language (the text box stays the one source of the filter, so the URL carries it). */
(function () {
  const add = document.getElementById("quick-add");
  if (!add) return;
  const filter = document.getElementById("filter");
  const form = document.getElementById("search-form");

  function quoted(text) {
    return "'" + text.replace(/\\/g, "\\\\").replace(/'/g, "''") + "'";
  }

  function key(namespace, name) {
    if (/^[A-Za-z0-9_\-./:]+$/.test(name)) return namespace + "." + name;
    return namespace + "." + (name.includes("`") ? '"' + name + '"' : "`" + name + "`");
  }

  add.addEventListener("click", () => {
    const parts = [];
    const status = document.getElementById("quick-status").value;
    if (status) parts.push("attributes.status = " + quoted(status));
    const tagKey = document.getElementById("quick-tag-key").value.trim();
    if (tagKey) parts.push(key("tags", tagKey) + " = " + quoted(document.getElementById("quick-tag-value").value));
    if (parts.length === 0) return;
    const current = filter.value.trim();
    filter.value = (current ? "(" + current + ") AND " : "") + parts.join(" AND ");
    form.submit();
  });
}());
