// Touchflow's canvas viewport: pan, zoom, fit, and the minimap (no framework).
//
// The world (nodes and curves, drawn by the server in flow coordinates) is
// moved with one CSS transform. The view is kept per flow in sessionStorage so
// a reload, or an edit's fresh fragments, never lose the marketer's place.
export function createViewport(options) {
  var canvas = options.canvas, world = options.world, minimap = options.minimap;
  var graph = options.graph, box = options.box;
  var MIN_SCALE = 0.2, MAX_SCALE = 2.5;
  // The first view of a flow never goes below this: the steps' names stay readable.
  var LEGIBLE_SCALE = 0.85;
  var MINI_W = 180, MINI_H = 120, MINI_PAD = 6;
  var view = { x: 40, y: 40, scale: 1 };
  var mini = null; // how the last minimap drawing maps back to the world

  function toWorld(clientX, clientY) {
    var rect = canvas.getBoundingClientRect();
    return { x: (clientX - rect.left - view.x) / view.scale, y: (clientY - rect.top - view.y) / view.scale };
  }

  // Every node as a small rectangle, and the part of the flow in view.
  function drawMinimap() {
    var nodes = graph().querySelectorAll(".node");
    if (!minimap || !nodes.length) {
      if (minimap) minimap.hidden = true;
      return;
    }
    var rect = canvas.getBoundingClientRect();
    var seen = { x: -view.x / view.scale, y: -view.y / view.scale, w: rect.width / view.scale, h: rect.height / view.scale };
    var minX = seen.x, minY = seen.y, maxX = seen.x + seen.w, maxY = seen.y + seen.h;
    var boxes = [];
    var allSeen = true;
    nodes.forEach(function (el) {
      var b = box(el);
      b.invalid = el.classList.contains("node-invalid");
      boxes.push(b);
      allSeen = allSeen && b.x >= seen.x && b.y >= seen.y && b.x + b.w <= seen.x + seen.w && b.y + b.h <= seen.y + seen.h;
      minX = Math.min(minX, b.x); minY = Math.min(minY, b.y);
      maxX = Math.max(maxX, b.x + b.w); maxY = Math.max(maxY, b.y + b.h);
    });
    // The overview only helps when part of the flow is out of view; then it earns its corner.
    if (allSeen) {
      minimap.hidden = true;
      return;
    }
    var s = Math.min((MINI_W - 2 * MINI_PAD) / (maxX - minX), (MINI_H - 2 * MINI_PAD) / (maxY - minY));
    mini = { minX: minX, minY: minY, s: s };
    function r(b, cls) {
      return '<rect class="' + cls + '" x="' + (MINI_PAD + (b.x - minX) * s) + '" y="' + (MINI_PAD + (b.y - minY) * s) +
        '" width="' + Math.max(1, b.w * s) + '" height="' + Math.max(1, b.h * s) + '"></rect>';
    }
    minimap.firstElementChild.innerHTML = boxes.map(function (b) {
      return r(b, b.invalid ? "mm-node mm-invalid" : "mm-node");
    }).join("") + r(seen, "mm-view");
    minimap.hidden = false;
  }

  function apply(save) {
    world.style.transform = "translate(" + view.x + "px, " + view.y + "px) scale(" + view.scale + ")";
    canvas.dataset.zoom = view.scale.toFixed(2);
    drawMinimap();
    if (save !== false) {
      try { sessionStorage.setItem(options.storageKey, JSON.stringify(view)); } catch (e) { /* private mode */ }
    }
  }

  // Put world point (wx, wy) in the middle of the canvas.
  function centerAt(wx, wy) {
    var rect = canvas.getBoundingClientRect();
    view.x = rect.width / 2 - wx * view.scale;
    view.y = rect.height / 2 - wy * view.scale;
    apply();
  }

  function minimapTo(event) {
    if (!mini) return;
    var rect = minimap.getBoundingClientRect();
    centerAt(mini.minX + (event.clientX - rect.left - MINI_PAD) / mini.s,
      mini.minY + (event.clientY - rect.top - MINI_PAD) / mini.s);
  }

  function zoomAt(factor, clientX, clientY) {
    var rect = canvas.getBoundingClientRect();
    var cx = clientX === undefined ? rect.width / 2 : clientX - rect.left;
    var cy = clientY === undefined ? rect.height / 2 : clientY - rect.top;
    var scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, view.scale * factor));
    view.x = cx - ((cx - view.x) / view.scale) * scale;
    view.y = cy - ((cy - view.y) / view.scale) * scale;
    view.scale = scale;
    apply();
  }

  // Fit the whole flow in view; ``legible`` (the first view) keeps the names readable and,
  // when the flow is wider than that, starts at its left, where the triggers are.
  function fit(legible) {
    var nodes = graph().querySelectorAll(".node");
    var rect = canvas.getBoundingClientRect();
    if (!nodes.length) {
      view = { x: 40, y: 40, scale: 1 };
      return apply();
    }
    var minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    nodes.forEach(function (el) {
      var b = box(el);
      minX = Math.min(minX, b.x); minY = Math.min(minY, b.y);
      maxX = Math.max(maxX, b.x + b.w + 60); maxY = Math.max(maxY, b.y + b.h + 30);
    });
    var pad = 48;
    var scale = Math.min((rect.width - 2 * pad) / (maxX - minX), (rect.height - 2 * pad) / (maxY - minY), 1.2);
    view.scale = Math.max(legible === true ? LEGIBLE_SCALE : MIN_SCALE, scale);
    view.x = (rect.width - (maxX - minX) * view.scale) / 2 - minX * view.scale;
    view.y = (rect.height - (maxY - minY) * view.scale) / 2 - minY * view.scale;
    if ((maxX - minX) * view.scale > rect.width - 2 * pad) view.x = pad - minX * view.scale;
    if ((maxY - minY) * view.scale > rect.height - 2 * pad) view.y = pad - minY * view.scale;
    apply();
  }

  function restore() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(options.storageKey) || "null");
      if (saved && isFinite(saved.x) && isFinite(saved.y) && isFinite(saved.scale)) {
        view = saved;
        return apply(false);
      }
    } catch (e) { /* unreadable: fit instead */ }
    fit(true);
  }

  return {
    toWorld: toWorld,
    apply: apply,
    zoomAt: zoomAt,
    fit: fit,
    restore: restore,
    drawMinimap: drawMinimap,
    minimapTo: minimapTo,
    scale: function () { return view.scale; },
    offset: function () { return { x: view.x, y: view.y }; },
    panTo: function (x, y, save) { view.x = x; view.y = y; apply(save); },
    centerOnBox: function (b) { centerAt(b.x + b.w / 2, b.y + b.h / 2); },
  };
}
