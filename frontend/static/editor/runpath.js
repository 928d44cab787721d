// "Show on canvas": keeps a run's path marked on the canvas.
//
// The server draws the path on the first render (nodes visited, ports left
// through). A later answer that redraws the canvas (an edit, a refresh)
// knows nothing of the run, so the path is put back after every swap; the
// toggle hides and shows it. The path comes from #run-note's data-path:
// {"visited": [node ids], "taken": [[source, port], ...]}.
import { nodeEl } from "./state.js";

const note = document.getElementById("run-note");
const toggle = document.getElementById("run-path-toggle");

function path() {
  try {
    return JSON.parse(note.dataset.path);
  } catch (e) {
    return { visited: [], taken: [] };
  }
}

function edges(source, port) {
  const selector = '.edge[data-source="' + CSS.escape(source) + '"][data-port="' + CSS.escape(port) + '"]';
  return document.querySelectorAll(selector);
}

function mark(on) {
  const { visited, taken } = path();
  visited.forEach(function (id) {
    const el = nodeEl(id);
    if (el) el.classList.toggle("node-visited", on);
  });
  taken.forEach(function (pair) {
    edges(pair[0], pair[1]).forEach(function (el) { el.classList.toggle("edge-taken", on); });
  });
  document.querySelectorAll(".node-steps").forEach(function (el) { el.hidden = !on; });
}

function shown() { return toggle.dataset.shown === "true"; }

if (note && toggle) {
  const showLabel = toggle.textContent;
  toggle.addEventListener("click", function () {
    const next = !shown();
    toggle.dataset.shown = next ? "true" : "false";
    toggle.textContent = next ? showLabel : toggle.dataset.labelHidden;
    mark(next);
  });
  document.addEventListener("htmx:after:swap", function () { mark(shown()); });
  mark(true);
}
