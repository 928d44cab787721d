// What is selected (nodes or one edge), how it is painted, and what a fresh fragment does to it.
import { base, graph, nodeEl, readonly, state } from "./state.js";
import { edit, openPanel, request } from "./requests.js";
import { vp } from "./view.js";

export function selectedIds() {
  var selection = state.selection;
  return selection && selection.kind === "nodes" ? selection.ids.slice() : [];
}

export function isSelected(id) { return selectedIds().indexOf(id) !== -1; }

var lastPanel = document.getElementById("panel");

export function afterUpdate() {
  // A freshly swapped-in panel (a dropped or pasted node) selects its node.
  var panel = document.getElementById("panel");
  var shown = panel && panel.dataset.nodeId;
  if (panel !== lastPanel && shown && !isSelected(shown)) state.selection = { kind: "nodes", ids: [shown] };
  lastPanel = panel;
  var selection = state.selection;
  if (selection && selection.kind === "nodes") {
    selection.ids = selection.ids.filter(function (id) { return nodeEl(id); });
    if (!selection.ids.length) state.selection = null;
  }
  paintSelection();
  vp.drawMinimap();
}

export function paintSelection() {
  graph().querySelectorAll(".selected").forEach(function (el) { el.classList.remove("selected"); });
  var selection = state.selection;
  if (!selection) return;
  if (selection.kind === "nodes") {
    selection.ids.forEach(function (id) {
      var el = nodeEl(id);
      if (el) el.classList.add("selected");
    });
  } else {
    var edge = graph().querySelector('.edge[data-source="' + CSS.escape(selection.source) +
      '"][data-port="' + CSS.escape(selection.port) + '"]');
    if (edge) edge.classList.add("selected"); else state.selection = null;
  }
}

export function select(selection) {
  state.selection = selection;
  paintSelection();
}

export function selectNode(id, focus) {
  select({ kind: "nodes", ids: [id] });
  if (focus && nodeEl(id)) nodeEl(id).focus({ preventScroll: true });
  return openPanel(id);
}

export function toggleNode(id) {
  var ids = selectedIds();
  var at = ids.indexOf(id);
  if (at === -1) ids.push(id); else ids.splice(at, 1);
  select(ids.length ? { kind: "nodes", ids: ids } : null);
}

export function clearSelection() {
  var hadPanel = document.getElementById("panel").dataset.nodeId;
  select(null);
  if (hadPanel) request("GET", base + "/nodes/-", "#panel");
}

export function deleteSelection() {
  var selection = state.selection;
  if (!selection || readonly) return;
  var ids = selectedIds();
  if (selection.kind === "edge") {
    edit("/edges/delete", { source: selection.source, port: selection.port });
  } else if (ids.length === 1) {
    edit("/nodes/" + encodeURIComponent(ids[0]) + "/delete", {});
  } else {
    edit("/selection/delete", { ids: JSON.stringify(ids) });
  }
  state.selection = null;
}
