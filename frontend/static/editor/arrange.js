// Moving, copying and pasting nodes, and redrawing their curves while they move.
import {
  CLIPBOARD_KEY, box, canvas, edgePath, flowId, graph, inputAnchor, nodeEl, outputAnchor, readonly,
} from "./state.js";
import { edit } from "./requests.js";
import { selectedIds } from "./selection.js";
import { vp } from "./view.js";

// Save where the nodes in ``ids`` now stand (one request for the whole group).
export function saveMoves(ids) {
  if (ids.length === 1) {
    var b = box(nodeEl(ids[0]));
    return edit("/nodes/" + encodeURIComponent(ids[0]) + "/move", { x: Math.round(b.x), y: Math.round(b.y) }, "#editor-status");
  }
  var positions = {};
  ids.forEach(function (id) {
    var nb = box(nodeEl(id));
    positions[id] = { x: Math.round(nb.x), y: Math.round(nb.y) };
  });
  return edit("/selection/move", { positions: JSON.stringify(positions) }, "#editor-status");
}

export function moveSelectionBy(dx, dy) {
  var ids = selectedIds();
  if (!ids.length || readonly) return;
  ids.forEach(function (id) {
    var el = nodeEl(id), b = box(el);
    el.style.left = b.x + dx + "px";
    el.style.top = b.y + dy + "px";
    redrawEdges(id);
  });
  saveMoves(ids);
}

export function copySelection() {
  var ids = selectedIds();
  if (!ids.length) return;
  try {
    localStorage.setItem(CLIPBOARD_KEY, JSON.stringify({ flow: flowId, ids: ids }));
  } catch (e) { /* storage disabled: nothing to paste later */ }
}

export function pasteClipboard() {
  var copied = null;
  try { copied = JSON.parse(localStorage.getItem(CLIPBOARD_KEY) || "null"); } catch (e) { copied = null; }
  if (!copied || !copied.ids || !copied.ids.length || readonly) return;
  var rect = canvas.getBoundingClientRect();
  var at = vp.toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2);
  edit("/paste", {
    source: copied.flow, ids: JSON.stringify(copied.ids), x: Math.round(at.x - 110), y: Math.round(at.y - 36),
  });
}

// Redraw the curves touching node ``id`` while it moves (the server redraws them after).
export function redrawEdges(id) {
  graph().querySelectorAll(".edge").forEach(function (edge) {
    var source = edge.dataset.source, target = edge.dataset.target;
    if (source !== id && target !== id) return;
    var from = nodeEl(source), to = nodeEl(target);
    if (!from || !to) return;
    var a = outputAnchor(from, edge.dataset.port), b = inputAnchor(to);
    var d = edgePath(a.x, a.y, b.x, b.y);
    edge.querySelectorAll("path").forEach(function (p) { p.setAttribute("d", d); });
    var label = graph().querySelector('.edge-label[data-source="' + CSS.escape(source) +
      '"][data-port="' + CSS.escape(edge.dataset.port) + '"]');
    if (label) {
      label.style.left = (a.x + b.x) / 2 + "px";
      label.style.top = (a.y + b.y) / 2 + "px";
    }
  });
}
