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
