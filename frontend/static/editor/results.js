// The canvas's "Results" overlay: per node who reached it, who waits there now and who
// failed (with sent, delivered, opened, clicked, bounced, unsubscribed and their rates on
// message nodes), and per connection how many went that way.
//
// The server sends every label and number translated and formatted for the reader
// (backend/web/editor/results.py); this module only fetches them for the chosen dates and
// version and places them in a layer of the canvas's world, so they pan and zoom with it.
// Edits redraw the graph; the overlay follows from the last answer.
import { box, graph, nodeEl, world } from "./state.js";

var tools = document.getElementById("results-tools");
var toggle = document.getElementById("results-toggle");
var form = document.getElementById("results-filter");
var summary = document.getElementById("results-summary");
var layer = null;
var last = null;

function ensureLayer() {
  if (!layer) {
    layer = document.createElement("div");
    layer.id = "results-layer";
    layer.className = "results-layer";
    layer.setAttribute("role", "group");
    layer.setAttribute("aria-label", toggle.textContent.trim());
    world.appendChild(layer);
  }
  return layer;
}

function nodeCard(node) {
  var el = nodeEl(node.id);
  if (!el) return null; // a step of the draft the chosen version does not have
  var b = box(el);
  var card = document.createElement("dl");
  card.className = "result-card";
  card.dataset.nodeId = node.id;
  card.style.left = b.x + "px";
  card.style.top = b.y + b.h + 6 + "px";
  card.style.minWidth = b.w + "px";
  node.items.forEach(function (item) {
    var row = document.createElement("div");
    row.dataset.metric = item.metric;
    var term = document.createElement("dt");
    term.textContent = item.label;
    var value = document.createElement("dd");
    value.textContent = item.text;
    value.dataset.value = item.value;
    row.append(term, value);
    card.appendChild(row);
  });
  return card;
}

function edgeTag(edge) {
  var selector = '.edge[data-source="' + CSS.escape(edge.source) + '"][data-port="' + CSS.escape(edge.port) + '"] .edge-line';
  var line = graph().querySelector(selector);
  if (!line) return null;
  // A third of the way along, clear of the port name the editor shows halfway.
  var at = line.getPointAtLength(line.getTotalLength() / 3);
  var tag = document.createElement("span");
  tag.className = "result-edge";
  tag.dataset.source = edge.source;
  tag.dataset.port = edge.port;
  tag.dataset.value = edge.value;
  tag.title = edge.label;
  tag.style.left = at.x + "px";
  tag.style.top = at.y + "px";
  tag.textContent = edge.text;
  var spoken = document.createElement("span");
  spoken.className = "visually-hidden";
  spoken.textContent = " " + edge.label;
  tag.appendChild(spoken);
  return tag;
}

function draw() {
  var into = ensureLayer();
  into.replaceChildren();
  if (!last) return;
  last.nodes.map(nodeCard).concat(last.edges.map(edgeTag)).forEach(function (el) {
    if (el) into.appendChild(el);
  });
}

function load() {
  var query = new URLSearchParams(new FormData(form)).toString();
  summary.textContent = "…";
  return fetch(tools.dataset.url + "?" + query, { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
        return body;
      });
    })
    .then(function (body) {
      last = body;
      if (!form.elements.from.value) form.elements.from.value = body.from;
      if (!form.elements.to.value) form.elements.to.value = body.to;
      summary.textContent = body.summary;
      draw();
    }, function (error) {
      summary.textContent = error.message;
    });
}

function show(on) {
  toggle.setAttribute("aria-pressed", on ? "true" : "false");
  form.hidden = !on;
  ensureLayer().hidden = !on;
  tools.classList.toggle("results-on", on);
  if (on) load();
}

if (tools && world) {
  // The canvas pans on a press anywhere in it; pressing in this toolbar is not panning.
  tools.addEventListener("pointerdown", function (event) { event.stopPropagation(); });
  toggle.addEventListener("click", function () { show(toggle.getAttribute("aria-pressed") !== "true"); });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    load();
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (toggle.getAttribute("aria-pressed") === "true") draw();
  });
}
