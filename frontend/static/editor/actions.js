// Buttons, links and forms of the editor: toolbar actions, the config panel, import.
import { base, readonly, root } from "./state.js";
import { edit, request } from "./requests.js";
import { select, selectNode } from "./selection.js";
import { centerOn, vp } from "./view.js";
import { showShortcuts, toggle } from "./tools.js";

function showInPanel(path) {
  select(null);
  return request("GET", base + path, "#panel");
}

const ACTIONS = {
  "zoom-in": function () { vp.zoomAt(1.2); },
  "zoom-out": function () { vp.zoomAt(1 / 1.2); },
  "fit": function () { vp.fit(); },
  "toggle-palette": function () { toggle("palette"); },
  "toggle-side": function () { toggle("side"); },
  "shortcuts": showShortcuts,
  "rule-add": function (button) {
    // The contacts page's builder: one condition added to the step's rule (all must hold).
    var builder = button.closest(".rule-builder");
    var area = document.getElementById(button.dataset.field);
    var error = document.getElementById(button.dataset.field + "-builder-error");
    var query = new URLSearchParams({
      current: area.value,
      key: builder.querySelector(".rule-key").value,
      op: builder.querySelector(".rule-op").value,
      value: builder.querySelector(".rule-value").value,
    });
    fetch(base + "/rule-add?" + query.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        error.textContent = answer.error || "";
        if (answer.rule) {
          area.value = answer.rule;
          area.dispatchEvent(new Event("input", { bubbles: true }));
        }
      });
  },
  "undo": function () { edit("/undo", {}); },
  "redo": function () { edit("/redo", {}); },
  "publish": function (button) {
    if (!button.dataset.dialog) {
      edit("/publish", {}, "#editor-status");
      return;
    }
    // Customers are in the flow: the panel says how many could move, and asks.
    showInPanel("/publish");
  },
  "close-panel": function () { showInPanel("/nodes/-"); },
  "test": function () { showInPanel("/test"); },
  "compare": function (button) {
    showInPanel("/compare?a=" + encodeURIComponent(button.dataset.a) + "&b=" + encodeURIComponent(button.dataset.b));
  },
  "delete-node": function (button) {
    select(null);
    edit("/nodes/" + encodeURIComponent(button.dataset.nodeId) + "/delete", {});
  },
  "tidy": function () { edit("/tidy", {}).then(vp.fit); },
  "restore": function (button) {
    if (!window.confirm(button.dataset.confirm)) return;
    edit("/versions/" + encodeURIComponent(button.dataset.value) + "/restore", {});
  },
  "lifecycle": function (button) {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    edit("/lifecycle", { action: button.dataset.value }, "#editor-status");
  },
};

function formValues(form) {
  var values = {};
  new FormData(form).forEach(function (value, key) { values[key] = value; });
  return values;
}

export function installActions() {
  root.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (button && ACTIONS[button.dataset.action]) {
      event.preventDefault();
      ACTIONS[button.dataset.action](button);
      return;
    }
    var link = event.target.closest("[data-select-node]");
    if (link) {
      event.preventDefault();
      centerOn(link.dataset.selectNode);
      selectNode(link.dataset.selectNode, true);
    }
  });

  root.addEventListener("submit", function (event) {
    var form = event.target.closest(".config-form, .test-form, .publish-form");
    if (!form) return;
    event.preventDefault();
    if (form.classList.contains("publish-form")) {
      edit("/publish", formValues(form), "#editor-status");
      return;
    }
    if (readonly && form.classList.contains("config-form")) return;
    request("POST", form.getAttribute("action"), "#panel", formValues(form));
  });

  // Connecting from the panel (keyboard users): pick what an output leads to.
  root.addEventListener("change", function (event) {
    var picker = event.target.closest(".picker");
    if (picker) {
      var shown = document.getElementById(picker.id + "-id");
      if (shown) shown.textContent = picker.value ? picker.value : "";
      return;
    }
    var choice = event.target.closest(".port-target");
    if (!choice || readonly) return;
    var source = choice.dataset.source, port = choice.dataset.port;
    if (choice.value) {
      edit("/edges", { source: source, port: port, target: choice.value });
    } else {
      edit("/edges/delete", { source: source, port: port });
    }
  });

  // Import: the file is read here and sent as text, like any other edit.
  var importFile = document.getElementById("import-file");
  if (importFile) {
    importFile.addEventListener("change", function () {
      var file = importFile.files && importFile.files[0];
      if (!file) return;
      file.text().then(function (text) {
        importFile.value = "";
        select(null);
        edit("/import", { graph: text }).then(vp.fit);
      });
    });
  }
}
