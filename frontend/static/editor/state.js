// The editor's shared state and the small DOM and geometry helpers every module uses.
//
// The server owns the graph; what lives here is only what the pointer and the
// keyboard are doing right now (the selection and the gesture in progress).

export const root = document.getElementById("editor");
export const base = root ? root.dataset.base : "";
export const readonly = root ? root.dataset.readonly === "true" : true;
export const canvas = document.getElementById("canvas");
export const world = document.getElementById("world");
export const flowId = base.split("/")[2];
export const MIN_HANDLE = 60;
export const DRAG_THRESHOLD = 4;
export const CLIPBOARD_KEY = "touchflow-clipboard";

// selection: {kind: "nodes", ids: [...]} or {kind: "edge", source, port}; gesture: the pointer gesture in progress.
export const state = { selection: null, gesture: null };

export function graph() { return document.getElementById("graph"); }
// The status bar carries the revision: every edit's answer includes it, a move's only that.
export function revision() { return document.getElementById("editor-status").dataset.revision; }
export function nodeEl(id) { return document.getElementById("node-" + id); }
export function num(value) { return parseFloat(value) || 0; }
export function typing(target) {
  return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

// The same curve as backend/web/editor/geometry.py draws (forward: handles meet halfway).
export function edgePath(x1, y1, x2, y2) {
  var dx = x2 - x1;
  var handle = dx > 0 ? dx / 2 : Math.max(MIN_HANDLE, Math.abs(dx) / 2);
  return "M " + x1 + " " + y1 + " C " + (x1 + handle) + " " + y1 + ", " +
    (x2 - handle) + " " + y2 + ", " + x2 + " " + y2;
}

export function box(el) {
  return { x: num(el.style.left), y: num(el.style.top), w: num(el.style.width), h: num(el.style.height) };
}

export function outputAnchor(el, port) {
  var b = box(el);
  var dot = el.querySelector('.port-out[data-port="' + CSS.escape(port) + '"]');
  return { x: b.x + b.w, y: b.y + (dot ? num(dot.dataset.offset) : b.h / 2) };
}

export function inputAnchor(el) {
  var b = box(el);
  return { x: b.x, y: b.y + b.h / 2 };
}
