// Connecting with the keyboard alone: C on a selected step lists its outputs and the steps
// each can lead to; arrow keys choose, Enter connects, and choosing nothing removes the
// connection. The same edits as a drag from a port (/edges, /edges/delete).
import { graph, nodeEl, readonly } from "./state.js";
import { selectedIds } from "./selection.js";
import { edit } from "./requests.js";

var dialog = document.getElementById("connect-dialog");
var portList = document.getElementById("connect-port");
var targetList = document.getElementById("connect-target");

function option(value, text) {
  var el = document.createElement("option");
  el.value = value;
  el.textContent = text;
  return el;
}

function leadsTo(source, port) {
  var edge = graph().querySelector('.edge[data-source="' + CSS.escape(source) + '"][data-port="' + CSS.escape(port) + '"]');
  return edge ? edge.dataset.target : "";
}

function fillTargets() {
  var source = dialog.dataset.source;
  targetList.replaceChildren(option("", targetList.dataset.nothing));
  graph().querySelectorAll(".node").forEach(function (el) {
    var id = el.dataset.nodeId;
    if (id === source || !el.querySelector(".port-in")) return;
    var title = el.querySelector(".node-title");
    targetList.appendChild(option(id, (title ? title.textContent : id) + " (" + id + ")"));
  });
  targetList.value = leadsTo(source, portList.value);
}

// Opens the list for the one selected step; false when there is nothing to connect.
export function openConnect() {
  var ids = selectedIds();
  var el = ids.length === 1 && nodeEl(ids[0]);
  if (readonly || !dialog || !el) return false;
  var ports = el.querySelectorAll(".port-out");
  if (!ports.length) return false;
  dialog.dataset.source = ids[0];
  var title = el.querySelector(".node-title");
  document.getElementById("connect-title").textContent =
    dialog.dataset.title.replace("{step}", title ? title.textContent : ids[0]);
  portList.replaceChildren();
  ports.forEach(function (port) { portList.appendChild(option(port.dataset.port, port.title || port.dataset.port)); });
  fillTargets();
  dialog.showModal();
  (ports.length > 1 ? portList : targetList).focus();
  return true;
}

function connect() {
  var source = dialog.dataset.source, port = portList.value, target = targetList.value;
  dialog.close();
  var done;
  if (target) done = edit("/edges", { source: source, port: port, target: target });
  else if (leadsTo(source, port)) done = edit("/edges/delete", { source: source, port: port });
  else return;
  // The canvas is redrawn: give the keyboard back to the step it started from.
  done.then(function () { var el = nodeEl(source); if (el) el.focus({ preventScroll: true }); });
}

export function installConnect() {
  if (!dialog) return;
  portList.addEventListener("change", fillTargets);
  document.getElementById("connect-form").addEventListener("submit", function (event) {
    event.preventDefault();
    connect();
  });
  document.getElementById("connect-cancel").addEventListener("click", function () { dialog.close(); });
  // A list box does not submit its form on Enter by itself.
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.tagName === "SELECT") {
      event.preventDefault();
      connect();
    }
  });
}
