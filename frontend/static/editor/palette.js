// The palette: search, click to add at the centre (drags are pointer.js's).
import { canvas, graph } from "./state.js";
import { edit } from "./requests.js";
import { vp } from "./view.js";

export function addAt(type, point) {
  return edit("/nodes", { type: type, x: Math.round(point.x), y: Math.round(point.y) });
}

function addAtCenter(type) {
  var rect = canvas.getBoundingClientRect();
  var count = graph().querySelectorAll(".node").length;
  var center = vp.toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2);
  // Stagger keyboard-added nodes so they do not land on top of each other.
  addAt(type, { x: center.x - 110 + (count % 5) * 24, y: center.y - 36 + (count % 5) * 24 });
}

export function installPalette() {
  var search = document.getElementById("palette-search");
  if (search) {
    search.addEventListener("input", function () {
      var terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      var any = false;
      document.querySelectorAll(".palette-group").forEach(function (group) {
        var shown = 0;
        group.querySelectorAll(".palette-item").forEach(function (item) {
          var hay = item.dataset.search;
          var match = terms.every(function (t) { return hay.indexOf(t) !== -1; });
          item.parentElement.hidden = !match;
          if (match) shown += 1;
        });
        group.hidden = shown === 0;
        any = any || shown > 0;
      });
      document.querySelector(".palette-none").hidden = any;
    });
  }

  document.addEventListener("click", function (event) {
    var item = event.target.closest(".palette-item");
    if (!item) return;
    if (item.dataset.dragged) { delete item.dataset.dragged; return; }
    addAtCenter(item.dataset.type);
  });
}
