// Renaming a step where it stands: double-click its name, or F2 on the selected step.
// Enter or leaving the field saves the label (an edit at the draft's revision, like any
// other); Escape puts the old name back.
import { nodeEl, readonly } from "./state.js";
import { edit } from "./requests.js";
import { selectedIds } from "./selection.js";

export function startRename(id) {
  var node = nodeEl(id);
  if (readonly || !node || node.querySelector(".node-rename")) return;
  var title = node.querySelector(".node-title");
  var typeName = node.dataset.typeName || "";
  var input = document.createElement("input");
  input.className = "node-rename";
  input.maxLength = 120;
  input.value = node.dataset.label || "";
  input.placeholder = typeName;
  input.setAttribute("aria-label", document.getElementById("editor").dataset.renameLabel || "");
  title.hidden = true;
  title.after(input);
  var done = false;

  function finish(save) {
    if (done) return;
    done = true;
    var label = input.value.trim();
    input.remove();
    title.hidden = false;
    node.focus({ preventScroll: true });
    if (!save || label === (node.dataset.label || "")) return;
    title.textContent = label || typeName;
    edit("/nodes/" + encodeURIComponent(id) + "/label", { label: label }).then(function () {
      // The open panel's label field follows, so saving the step later keeps the new name.
      var panel = document.getElementById("panel");
      var field = document.getElementById("node-label");
      if (panel && panel.dataset.nodeId === id && field) field.value = label;
    });
  }

  input.addEventListener("keydown", function (event) {
    event.stopPropagation();
    if (event.key === "Enter") { event.preventDefault(); finish(true); }
    else if (event.key === "Escape") { event.preventDefault(); finish(false); }
  });
  input.addEventListener("pointerdown", function (event) { event.stopPropagation(); });
  input.addEventListener("blur", function () { finish(true); });
  input.focus();
  input.select();
}

export function installRename() {
  document.addEventListener("dblclick", function (event) {
    var node = event.target.closest && event.target.closest("#graph .node");
    if (!node || event.target.closest(".port")) return;
    event.preventDefault();
    startRename(node.dataset.nodeId);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "F2") return;
    var ids = selectedIds();
    var focused = event.target.closest && event.target.closest("#graph .node");
    var id = focused ? focused.dataset.nodeId : ids.length === 1 ? ids[0] : null;
    if (!id) return;
    event.preventDefault();
    startRename(id);
  });
}
