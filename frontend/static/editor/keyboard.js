// Keyboard shortcuts on the canvas (never while the marketer is typing in a field).
import { graph, state, typing } from "./state.js";
import { edit } from "./requests.js";
import { clearSelection, deleteSelection, select, selectNode, selectedIds } from "./selection.js";
import { copySelection, moveSelectionBy, pasteClipboard } from "./arrange.js";
import { vp } from "./view.js";
import { showShortcuts } from "./tools.js";
import { openConnect } from "./connect.js";

function onKeyDown(event) {
  if (typing(event.target)) return;
  var mod = event.ctrlKey || event.metaKey;
  var key = event.key;
  if (mod && (key === "z" || key === "Z")) {
    event.preventDefault();
    edit(event.shiftKey ? "/redo" : "/undo", {});
  } else if (mod && (key === "y" || key === "Y")) {
    event.preventDefault();
    edit("/redo", {});
  } else if (mod && (key === "a" || key === "A")) {
    event.preventDefault();
    var all = [];
    graph().querySelectorAll(".node").forEach(function (el) { all.push(el.dataset.nodeId); });
    select(all.length ? { kind: "nodes", ids: all } : null);
  } else if (mod && (key === "c" || key === "C")) {
    copySelection();
  } else if (mod && (key === "v" || key === "V")) {
    event.preventDefault();
    pasteClipboard();
  } else if (mod) {
    return;
  } else if (key === "Delete" || key === "Backspace") {
    if (state.selection) { event.preventDefault(); deleteSelection(); }
  } else if ((key === "c" || key === "C") && !event.altKey) {
    if (openConnect()) event.preventDefault();
  } else if (key === "?") {
    event.preventDefault();
    showShortcuts();
  } else if (key === "/") {
    var search = document.getElementById("node-search");
    if (search) { event.preventDefault(); search.focus(); }
  } else if (key === "Escape") {
    clearSelection();
  } else if (key === "+" || key === "=") {
    vp.zoomAt(1.2);
  } else if (key === "-") {
    vp.zoomAt(1 / 1.2);
  } else if (key === "0") {
    vp.fit();
  } else if (key === "Enter" && event.target.classList && event.target.classList.contains("node")) {
    event.preventDefault();
    selectNode(event.target.dataset.nodeId, true);
  } else if (key.indexOf("Arrow") === 0 && selectedIds().length) {
    event.preventDefault();
    var step = event.shiftKey ? 1 : 20;
    var delta = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[key];
    if (delta) moveSelectionBy(delta[0], delta[1]);
  }
}

export function installKeyboard() {
  document.addEventListener("keydown", onKeyDown);
}
