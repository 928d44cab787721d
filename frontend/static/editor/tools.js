// The view around the canvas: hide the palette or the panel for room, find a step, the shortcuts list.
import { graph, root } from "./state.js";
import { selectNode } from "./selection.js";
import { centerOn, vp } from "./view.js";

var ROOM_KEY = "touchflow-editor-room";

function setCollapsed(name, collapsed) {
  root.classList.toggle(name + "-collapsed", collapsed);
  var button = root.querySelector('[data-action="toggle-' + name + '"]');
  if (button) {
    button.setAttribute("aria-pressed", String(collapsed));
    button.textContent = collapsed ? button.dataset.labelCollapsed : button.dataset.labelExpanded;
  }
  try {
    var room = JSON.parse(localStorage.getItem(ROOM_KEY) || "{}");
    room[name] = collapsed;
    localStorage.setItem(ROOM_KEY, JSON.stringify(room));
  } catch (e) { /* storage disabled: the choice lasts for this page */ }
  vp.drawMinimap();
}

export function toggle(name) {
  setCollapsed(name, !root.classList.contains(name + "-collapsed"));
}

// Jump to the first step whose name, type or id contains the text.
export function findStep(text) {
  var wanted = text.trim().toLowerCase();
  if (!wanted) return false;
  var found = null;
  graph().querySelectorAll(".node").forEach(function (el) {
    if (!found && el.textContent.toLowerCase().indexOf(wanted) !== -1) found = el;
  });
  if (!found) return false;
  centerOn(found.dataset.nodeId);
  selectNode(found.dataset.nodeId, true);
  return true;
}

export function showShortcuts() {
  var dialog = document.getElementById("shortcuts");
  if (dialog && !dialog.open) dialog.showModal();
}

export function installTools() {
  root.querySelectorAll("[data-action^='toggle-']").forEach(function (button) {
    button.dataset.labelExpanded = button.textContent;
  });
  var room = {};
  try { room = JSON.parse(localStorage.getItem(ROOM_KEY) || "{}"); } catch (e) { room = {}; }
  ["palette", "side"].forEach(function (name) { if (room[name]) setCollapsed(name, true); });
  var search = document.getElementById("node-search");
  if (search) {
    search.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") return;
      event.preventDefault();
      search.setAttribute("aria-invalid", String(!findStep(search.value)));
    });
  }
}
