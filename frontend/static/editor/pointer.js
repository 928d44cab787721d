// Pointer gestures on the canvas: drop from the palette, connect, move, box-select, pan, zoom.
import {
  DRAG_THRESHOLD, box, canvas, edgePath, graph, nodeEl, outputAnchor, readonly, state,
} from "./state.js";
import { edit } from "./requests.js";
import { clearSelection, isSelected, paintSelection, select, selectNode, selectedIds, toggleNode } from "./selection.js";
import { redrawEdges, saveMoves } from "./arrange.js";
import { addAt } from "./palette.js";
import { vp } from "./view.js";

function onPointerDown(event) {
  if (event.button !== 0) return;
  var target = event.target;
  var item = target.closest(".palette-item");
  if (item && !readonly) {
    state.gesture = { kind: "palette", item: item, startX: event.clientX, startY: event.clientY, ghost: null };
    return;
  }
  if (target.closest(".minimap")) {
    state.gesture = { kind: "minimap" };
    vp.minimapTo(event);
    return;
  }
  if (!canvas.contains(target) || target.closest(".zoom-controls")) return;
  var port = target.closest(".port-out");
  var node = target.closest(".node");
  var edge = target.closest(".edge");
  if (port && node && !readonly) {
    event.preventDefault();
    var draft = document.createElementNS("http://www.w3.org/2000/svg", "path");
    draft.setAttribute("class", "edge-draft");
    graph().querySelector("svg.edges").appendChild(draft);
    state.gesture = { kind: "connect", source: node.dataset.nodeId, port: port.dataset.port, path: draft };
    return;
  }
  if (node) {
    var id = node.dataset.nodeId;
    // Dragging a node of a multi-selection moves the whole selection.
    var group = isSelected(id) && selectedIds().length > 1 ? selectedIds() : [id];
    state.gesture = {
      kind: "node", id: id, group: group, startX: event.clientX, startY: event.clientY,
      starts: group.map(function (gid) { return box(nodeEl(gid)); }), moved: false, shift: event.shiftKey,
    };
    return;
  }
  if (edge) {
    select({ kind: "edge", source: edge.dataset.source, port: edge.dataset.port });
    canvas.focus({ preventScroll: true });
    return;
  }
  if (event.shiftKey) {
    var frame = document.createElement("div");
    frame.className = "select-box";
    canvas.appendChild(frame);
    state.gesture = { kind: "box", startX: event.clientX, startY: event.clientY, frame: frame };
    return;
  }
  state.gesture = { kind: "pan", startX: event.clientX, startY: event.clientY, origin: vp.offset(), moved: false };
  canvas.classList.add("panning");
}

var EDGE_ZONE = 36, PAN_STEP = 14;

// Dragging near the canvas's edge moves the view that way, so a drag can reach any spot.
function autoPan(gesture, event) {
  var rect = canvas.getBoundingClientRect();
  if (event.clientX < rect.left || event.clientX > rect.right || event.clientY < rect.top || event.clientY > rect.bottom) return;
  var px = event.clientX - rect.left < EDGE_ZONE ? PAN_STEP : rect.right - event.clientX < EDGE_ZONE ? -PAN_STEP : 0;
  var py = event.clientY - rect.top < EDGE_ZONE ? PAN_STEP : rect.bottom - event.clientY < EDGE_ZONE ? -PAN_STEP : 0;
  if (!px && !py) return;
  var at = vp.offset();
  vp.panTo(at.x + px, at.y + py, false);
  gesture.panX = (gesture.panX || 0) + px;
  gesture.panY = (gesture.panY || 0) + py;
}

// Where a palette drop lands: inside the canvas, or pulled in from just outside it.
function dropPoint(event) {
  var rect = canvas.getBoundingClientRect();
  var over = document.elementFromPoint(event.clientX, event.clientY);
  if (over && over.closest(".palette")) return null; // dragged back: no drop
  var margin = 120;
  if (event.clientX < rect.left - margin || event.clientX > rect.right + margin ||
    event.clientY < rect.top - margin || event.clientY > rect.bottom + margin) return null;
  var x = Math.min(Math.max(event.clientX, rect.left + 120), rect.right - 120);
  var y = Math.min(Math.max(event.clientY, rect.top + 40), rect.bottom - 40);
  return vp.toWorld(x, y);
}

function onPointerMove(event) {
  var gesture = state.gesture;
  if (!gesture) return;
  if (gesture.kind === "node" || gesture.kind === "connect" || (gesture.kind === "palette" && gesture.ghost)) {
    if (!readonly) autoPan(gesture, event);
  }
  var dx = event.clientX - gesture.startX, dy = event.clientY - gesture.startY;
  if (gesture.kind === "palette") {
    if (!gesture.ghost && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
    if (!gesture.ghost) {
      gesture.ghost = gesture.item.cloneNode(true);
      gesture.ghost.classList.add("drag-ghost");
      document.body.appendChild(gesture.ghost);
    }
    gesture.ghost.style.left = event.clientX + 8 + "px";
    gesture.ghost.style.top = event.clientY + 8 + "px";
  } else if (gesture.kind === "connect") {
    var from = outputAnchor(nodeEl(gesture.source), gesture.port);
    var to = vp.toWorld(event.clientX, event.clientY);
    gesture.path.setAttribute("d", edgePath(from.x, from.y, to.x, to.y));
  } else if (gesture.kind === "node") {
    if (readonly) return;
    if (!gesture.moved && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
    gesture.moved = true;
    gesture.group.forEach(function (gid, i) {
      var el = nodeEl(gid);
      el.classList.add("dragging");
      el.style.left = gesture.starts[i].x + (dx - (gesture.panX || 0)) / vp.scale() + "px";
      el.style.top = gesture.starts[i].y + (dy - (gesture.panY || 0)) / vp.scale() + "px";
      redrawEdges(gid);
    });
  } else if (gesture.kind === "minimap") {
    vp.minimapTo(event);
  } else if (gesture.kind === "box") {
    var rect = canvas.getBoundingClientRect();
    var f = gesture.frame.style;
    f.left = Math.min(event.clientX, gesture.startX) - rect.left + "px";
    f.top = Math.min(event.clientY, gesture.startY) - rect.top + "px";
    f.width = Math.abs(dx) + "px";
    f.height = Math.abs(dy) + "px";
  } else if (gesture.kind === "pan") {
    gesture.moved = gesture.moved || Math.hypot(dx, dy) >= DRAG_THRESHOLD;
    vp.panTo(gesture.origin.x + dx, gesture.origin.y + dy, false);
  }
}

function onPointerUp(event) {
  var g = state.gesture;
  state.gesture = null;
  if (!g) return;
  canvas.classList.remove("panning");
  if (g.kind === "palette") {
    if (!g.ghost) return; // a plain click: the click handler adds it at the centre
    g.ghost.remove();
    g.item.dataset.dragged = "1";
    var at = dropPoint(event);
    if (at) addAt(g.item.dataset.type, { x: at.x - 110, y: at.y - 36 });
  } else if (g.kind === "connect") {
    g.path.remove();
    var under = document.elementFromPoint(event.clientX, event.clientY);
    var target = under && under.closest(".node");
    if (target && target.dataset.nodeId !== g.source) {
      edit("/edges", { source: g.source, port: g.port, target: target.dataset.nodeId });
    }
  } else if (g.kind === "node") {
    g.group.forEach(function (gid) { nodeEl(gid).classList.remove("dragging"); });
    if (g.moved) {
      if (g.group.length === 1) state.selection = { kind: "nodes", ids: [g.id] };
      paintSelection();
      saveMoves(g.group);
    } else if (g.shift) {
      toggleNode(g.id);
    } else {
      selectNode(g.id, true);
    }
  } else if (g.kind === "box") {
    g.frame.remove();
    var a = vp.toWorld(Math.min(event.clientX, g.startX), Math.min(event.clientY, g.startY));
    var z = vp.toWorld(Math.max(event.clientX, g.startX), Math.max(event.clientY, g.startY));
    var within = [];
    graph().querySelectorAll(".node").forEach(function (el) {
      var nb = box(el);
      if (nb.x < z.x && nb.x + nb.w > a.x && nb.y < z.y && nb.y + nb.h > a.y) within.push(el.dataset.nodeId);
    });
    select(within.length ? { kind: "nodes", ids: within } : null);
  } else if (g.kind === "pan") {
    vp.apply();
    if (!g.moved) clearSelection();
  }
}

function onWheel(event) {
  event.preventDefault();
  if (event.ctrlKey || event.metaKey) {
    // Pinch on a trackpad arrives as ctrl+wheel with small deltas.
    vp.zoomAt(Math.exp(-event.deltaY * 0.01), event.clientX, event.clientY);
  } else {
    var at = vp.offset();
    vp.panTo(at.x - event.deltaX, at.y - event.deltaY);
  }
}

export function installPointer() {
  document.addEventListener("pointerdown", onPointerDown);
  document.addEventListener("pointermove", onPointerMove);
  document.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("wheel", onWheel, { passive: false });
}
