// Edits leave as htmx requests, one at a time, each carrying the draft revision it was made on.
import { base, readonly, revision } from "./state.js";
import { afterUpdate } from "./selection.js";

var queue = Promise.resolve();

// One request at a time: each edit is sent with the revision the previous
// answer brought, so our own edits never conflict with each other.
export function request(method, url, target, values) {
  queue = queue.then(function () {
    var options = { target: target, swap: "outerHTML" };
    if (method === "POST") options.values = Object.assign({}, values || {}, { revision: revision() });
    return window.htmx.ajax(method, url, options);
  }).catch(function (error) {
    if (window.console) console.error("touchflow editor:", error);
  }).then(afterUpdate);
  return queue;
}

export function edit(path, values, target) {
  if (readonly) return queue;
  // The step whose panel is open: an edit that changes what leads to it redraws its problems.
  var panel = document.getElementById("panel");
  var shown = { panel: (panel && panel.dataset.nodeId) || "" };
  return request("POST", base + path, target || "#graph", Object.assign(shown, values || {}));
}

export function openPanel(id) {
  return request("GET", base + "/nodes/" + encodeURIComponent(id), "#panel");
}

// After a refused or conflicting edit, fetch the draft as it really is.
function resync() {
  return request("GET", base + "/canvas", "#graph");
}

export function installResync() {
  document.addEventListener("htmx:response:error", function (event) {
    var ctx = event.detail && event.detail.ctx;
    var action = ctx && ctx.request && ctx.request.action;
    if (action && action.indexOf(base) !== -1 && ctx.request.method === "POST") {
      setTimeout(resync, 0);
    }
  });
}
