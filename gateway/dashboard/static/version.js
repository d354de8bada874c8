/* A model version's registry actions. Each calls the gateway's HTTP/JSON API (TD.send), the same
   routes, token checks and audit as every client's; on success the page reloads to show the new
   state and its audit event, on failure the server's message shows next to the form. */
"use strict";

(function () {
  const TD = window.TD;
  const data = TD.pageData();
  const DONE_KEY = "td-version-done";
  const done = document.getElementById("action-done");
  const remembered = sessionStorage.getItem(DONE_KEY);
  if (remembered) {
    sessionStorage.removeItem(DONE_KEY);
    done.textContent = remembered;
    done.hidden = false;
  }
  const actions = document.getElementById("actions");
  if (!actions || document.getElementById("actions-off")) return;

  const base = "/v1/registered-models/" + encodeURIComponent(data.name);
  const versionUrl = base + "/versions/" + data.version;
  const actorInput = document.getElementById("actor");

  /* Without tokens the audit records the name typed here; with tokens the gateway records the
     token's principal and the field is not on the page. */
  function who(extra) {
    const body = Object.assign({}, extra);
    if (actorInput && actorInput.value.trim()) body.actor = actorInput.value.trim();
    return body;
  }

  function errorNode(node) {
    const holder = node.closest("form, tr");
    return holder.querySelector(".form-error");
  }

  async function act(node, message, call) {
    const error = errorNode(node);
    error.textContent = "";
    const buttons = Array.from(node.closest("form, tr").querySelectorAll("button"));
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await call();
    } catch (failure) {
      error.textContent = failure.message;
      buttons.forEach((b) => { b.disabled = false; });
      return false;
    }
    if (message) sessionStorage.setItem(DONE_KEY, message);
    return true;
  }

  function onSubmit(id, handler) {
    const form = document.getElementById(id);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      handler(form);
    });
    return form;
  }

  onSubmit("stage-form", async (form) => {
    const stage = form.elements.stage;
    const label = stage.options[stage.selectedIndex].text;
    const body = who({ stage: stage.value, archive_existing_versions: form.elements.archive.checked,
      reason: form.elements.reason.value });
    if (await act(form, "Moved v" + data.version + " to " + label + ".",
      () => TD.send("POST", versionUrl + ":transitionStage", body))) location.reload();
  });

  onSubmit("alias-form", async (form) => {
    const alias = form.elements.alias.value.trim();
    const body = who({ version: String(data.version), reason: form.elements.reason.value });
    if (await act(form, "@" + alias + " now points at v" + data.version + ".",
      () => TD.send("PUT", base + "/aliases/" + encodeURIComponent(alias), body))) location.reload();
  });

  for (const button of document.querySelectorAll("button.delete-alias")) {
    button.addEventListener("click", async () => {
      const alias = button.dataset.alias;
      if (await act(button, "Deleted @" + alias + ".",
        () => TD.send("DELETE", base + "/aliases/" + encodeURIComponent(alias), who({})))) location.reload();
    });
  }

  onSubmit("description-form", async (form) => {
    const body = { description: form.elements.description.value };
    if (await act(form, "Saved the description.", () => TD.send("PATCH", versionUrl, body))) location.reload();
  });

  onSubmit("tag-form", async (form) => {
    const key = form.elements.key.value;
    const body = { key, value: form.elements.value.value };
    if (await act(form, "Set the tag " + key + ".", () => TD.send("POST", versionUrl + "/tags", body))) {
      location.reload();
    }
  });

  for (const button of document.querySelectorAll("button.delete-tag")) {
    button.addEventListener("click", async () => {
      const key = button.dataset.key;
      if (await act(button, "Deleted the tag " + key + ".",
        () => TD.send("DELETE", versionUrl + "/tags/" + encodeURIComponent(key)))) location.reload();
    });
  }

  // Deleting asks twice, in the page (no window.confirm: a dialog blocks and tests refuse it).
  const ask = document.getElementById("delete-ask");
  const confirmBox = document.getElementById("delete-confirm");
  ask.addEventListener("click", () => { confirmBox.hidden = false; ask.hidden = true; });
  document.getElementById("delete-no").addEventListener("click", () => { confirmBox.hidden = true; ask.hidden = false; });
  onSubmit("delete-form", async (form) => {
    if (confirmBox.hidden) return;
    // The version's page is gone: its model's page shows the versions left and the audit event.
    if (await act(form, "", () => TD.send("DELETE", versionUrl, who({})))) {
      location.assign("/ui/models/" + encodeURIComponent(data.name));
    }
  });
}());
