// Touchflow's canvas editor: pointer work only (DESIGN principle 8).
//
// The server owns the graph. This module turns drags, clicks and keys into
// edit requests (htmx.ajax, one at a time, each carrying the draft revision it
// was made on) and lets the server's fragments redraw the canvas. While a node
// is being dragged it redraws that node's curves itself, with the same
// formula as backend/web/editor/geometry.py. No framework, no build step.
(function () {
  "use strict";

  var root = document.getElementById("editor");
  if (!root || !window.htmx || !window.TouchflowViewport) return;

  var base = root.dataset.base;
  var readonly = root.dataset.readonly === "true";
  var canvas = document.getElementById("canvas");
  var world = document.getElementById("world");
  var MIN_HANDLE = 60;
  var DRAG_THRESHOLD = 4;
  var flowId = base.split("/")[2];
  var CLIPBOARD_KEY = "touchflow-clipboard";
  var selection = null; // {kind: "nodes", ids: [...]} or {kind: "edge", source, port}
  var queue = Promise.resolve();
  var gesture = null; // the pointer gesture in progress

  // ---------------------------------------------------------------- helpers

  function graph() { return document.getElementById("graph"); }
  // The status bar carries the revision: every edit's answer includes it, a move's only that.
  function revision() { return document.getElementById("editor-status").dataset.revision; }
  function nodeEl(id) { return document.getElementById("node-" + id); }
  function num(value) { return parseFloat(value) || 0; }
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function edgePath(x1, y1, x2, y2) {
    var handle = Math.max(MIN_HANDLE, Math.abs(x2 - x1) / 2);
    return "M " + x1 + " " + y1 + " C " + (x1 + handle) + " " + y1 + ", " +
      (x2 - handle) + " " + y2 + ", " + x2 + " " + y2;
  }

  function box(el) {
    return { x: num(el.style.left), y: num(el.style.top), w: num(el.style.width), h: num(el.style.height) };
  }

  function outputAnchor(el, port) {
    var b = box(el);
    var dot = el.querySelector('.port-out[data-port="' + CSS.escape(port) + '"]');
    return { x: b.x + b.w, y: b.y + (dot ? num(dot.dataset.offset) : b.h / 2) };
  }

  function inputAnchor(el) {
    var b = box(el);
    return { x: b.x, y: b.y + b.h / 2 };
  }

  var vp = window.TouchflowViewport({
    canvas: canvas,
    world: world,
    minimap: document.getElementById("minimap"),
    graph: graph,
    box: box,
    storageKey: "touchflow-view:" + base,
  });
  var toWorld = vp.toWorld, zoomAt = vp.zoomAt, fit = vp.fit;

  function centerOn(id) {
    var el = nodeEl(id);
    if (el) vp.centerOnBox(box(el));
  }

  // ------------------------------------------------------------------ edits

  // One request at a time: each edit is sent with the revision the previous
  // answer brought, so our own edits never conflict with each other.
  function request(method, url, target, values) {
    queue = queue.then(function () {
      var options = { target: target, swap: "outerHTML" };
      if (method === "POST") options.values = Object.assign({}, values || {}, { revision: revision() });
      return htmx.ajax(method, url, options);
    }).catch(function (error) {
      if (window.console) console.error("touchflow editor:", error);
    }).then(afterUpdate);
    return queue;
  }

  function edit(path, values, target) {
    if (readonly) return queue;
    return request("POST", base + path, target || "#graph", values);
  }

  function openPanel(id) {
    return request("GET", base + "/nodes/" + encodeURIComponent(id), "#panel");
  }

  // After a refused or conflicting edit, fetch the draft as it really is.
  function resync() {
    return request("GET", base + "/canvas", "#graph");
  }

  document.addEventListener("htmx:response:error", function (event) {
    var ctx = event.detail && event.detail.ctx;
    var action = ctx && ctx.request && ctx.request.action;
    if (action && action.indexOf(base) !== -1 && ctx.request.method === "POST") {
      setTimeout(resync, 0);
    }
  });

  function selectedIds() {
    return selection && selection.kind === "nodes" ? selection.ids.slice() : [];
  }

  function isSelected(id) { return selectedIds().indexOf(id) !== -1; }

  var lastPanel = document.getElementById("panel");

  function afterUpdate() {
    // A freshly swapped-in panel (a dropped or pasted node) selects its node.
    var panel = document.getElementById("panel");
    var shown = panel && panel.dataset.nodeId;
    if (panel !== lastPanel && shown && !isSelected(shown)) selection = { kind: "nodes", ids: [shown] };
    lastPanel = panel;
    if (selection && selection.kind === "nodes") {
      selection.ids = selection.ids.filter(function (id) { return nodeEl(id); });
      if (!selection.ids.length) selection = null;
    }
    paintSelection();
    vp.drawMinimap();
  }

  function paintSelection() {
    graph().querySelectorAll(".selected").forEach(function (el) { el.classList.remove("selected"); });
    if (!selection) return;
    if (selection.kind === "nodes") {
      selection.ids.forEach(function (id) {
        var el = nodeEl(id);
        if (el) el.classList.add("selected");
      });
    } else {
      var edge = graph().querySelector('.edge[data-source="' + CSS.escape(selection.source) +
        '"][data-port="' + CSS.escape(selection.port) + '"]');
      if (edge) edge.classList.add("selected"); else selection = null;
    }
  }

  function selectNode(id, focus) {
    selection = { kind: "nodes", ids: [id] };
    paintSelection();
    if (focus && nodeEl(id)) nodeEl(id).focus({ preventScroll: true });
    return openPanel(id);
  }

  function toggleNode(id) {
    var ids = selectedIds();
    var at = ids.indexOf(id);
    if (at === -1) ids.push(id); else ids.splice(at, 1);
    selection = ids.length ? { kind: "nodes", ids: ids } : null;
    paintSelection();
  }

  function clearSelection() {
    var hadPanel = document.getElementById("panel").dataset.nodeId;
    selection = null;
    paintSelection();
    if (hadPanel) request("GET", base + "/nodes/-", "#panel");
  }

  function deleteSelection() {
    if (!selection || readonly) return;
    var ids = selectedIds();
    if (selection.kind === "edge") {
      edit("/edges/delete", { source: selection.source, port: selection.port });
    } else if (ids.length === 1) {
      edit("/nodes/" + encodeURIComponent(ids[0]) + "/delete", {});
    } else {
      edit("/selection/delete", { ids: JSON.stringify(ids) });
    }
    selection = null;
  }

  // Save where the nodes in ``ids`` now stand (one request for the whole group).
  function saveMoves(ids) {
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

  function moveSelectionBy(dx, dy) {
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

  function copySelection() {
    var ids = selectedIds();
    if (!ids.length) return;
    try {
      localStorage.setItem(CLIPBOARD_KEY, JSON.stringify({ flow: flowId, ids: ids }));
    } catch (e) { /* storage disabled: nothing to paste later */ }
  }

  function pasteClipboard() {
    var copied = null;
    try { copied = JSON.parse(localStorage.getItem(CLIPBOARD_KEY) || "null"); } catch (e) { copied = null; }
    if (!copied || !copied.ids || !copied.ids.length || readonly) return;
    var rect = canvas.getBoundingClientRect();
    var at = toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2);
    edit("/paste", {
      source: copied.flow, ids: JSON.stringify(copied.ids), x: Math.round(at.x - 110), y: Math.round(at.y - 36),
    });
  }

  // Redraw the curves touching node ``id`` while it moves (the server redraws them after).
  function redrawEdges(id) {
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

  // ------------------------------------------------------------- the palette

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

  function addAt(type, point) {
    return edit("/nodes", { type: type, x: Math.round(point.x), y: Math.round(point.y) });
  }

  function addAtCenter(type) {
    var rect = canvas.getBoundingClientRect();
    var count = graph().querySelectorAll(".node").length;
    var center = toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2);
    // Stagger keyboard-added nodes so they do not land on top of each other.
    addAt(type, { x: center.x - 110 + (count % 5) * 24, y: center.y - 36 + (count % 5) * 24 });
  }

  document.addEventListener("click", function (event) {
    var item = event.target.closest(".palette-item");
    if (!item) return;
    if (item.dataset.dragged) { delete item.dataset.dragged; return; }
    addAtCenter(item.dataset.type);
  });

  // ------------------------------------------------------------- pointer work

  document.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    var target = event.target;
    var item = target.closest(".palette-item");
    if (item && !readonly) {
      gesture = { kind: "palette", item: item, startX: event.clientX, startY: event.clientY, ghost: null };
      return;
    }
    if (target.closest(".minimap")) {
      gesture = { kind: "minimap" };
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
      gesture = { kind: "connect", source: node.dataset.nodeId, port: port.dataset.port, path: draft };
      return;
    }
    if (node) {
      var id = node.dataset.nodeId;
      // Dragging a node of a multi-selection moves the whole selection.
      var group = isSelected(id) && selectedIds().length > 1 ? selectedIds() : [id];
      gesture = {
        kind: "node", id: id, group: group, startX: event.clientX, startY: event.clientY,
        starts: group.map(function (gid) { return box(nodeEl(gid)); }), moved: false, shift: event.shiftKey,
      };
      return;
    }
    if (edge) {
      selection = { kind: "edge", source: edge.dataset.source, port: edge.dataset.port };
      paintSelection();
      canvas.focus({ preventScroll: true });
      return;
    }
    if (event.shiftKey) {
      var frame = document.createElement("div");
      frame.className = "select-box";
      canvas.appendChild(frame);
      gesture = { kind: "box", startX: event.clientX, startY: event.clientY, frame: frame };
      return;
    }
    gesture = { kind: "pan", startX: event.clientX, startY: event.clientY, origin: vp.offset(), moved: false };
    canvas.classList.add("panning");
  });

  document.addEventListener("pointermove", function (event) {
    if (!gesture) return;
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
      var to = toWorld(event.clientX, event.clientY);
      gesture.path.setAttribute("d", edgePath(from.x, from.y, to.x, to.y));
    } else if (gesture.kind === "node") {
      if (readonly) return;
      if (!gesture.moved && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
      gesture.moved = true;
      gesture.group.forEach(function (gid, i) {
        var el = nodeEl(gid);
        el.classList.add("dragging");
        el.style.left = gesture.starts[i].x + dx / vp.scale() + "px";
        el.style.top = gesture.starts[i].y + dy / vp.scale() + "px";
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
  });

  document.addEventListener("pointerup", function (event) {
    var g = gesture;
    gesture = null;
    if (!g) return;
    canvas.classList.remove("panning");
    if (g.kind === "palette") {
      if (!g.ghost) return; // a plain click: the click handler adds it at the centre
      g.ghost.remove();
      g.item.dataset.dragged = "1";
      var rect = canvas.getBoundingClientRect();
      var inside = event.clientX >= rect.left && event.clientX <= rect.right &&
        event.clientY >= rect.top && event.clientY <= rect.bottom;
      if (inside) {
        var at = toWorld(event.clientX, event.clientY);
        addAt(g.item.dataset.type, { x: at.x - 110, y: at.y - 36 });
      }
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
        if (g.group.length === 1) selection = { kind: "nodes", ids: [g.id] };
        paintSelection();
        saveMoves(g.group);
      } else if (g.shift) {
        toggleNode(g.id);
      } else {
        selectNode(g.id, true);
      }
    } else if (g.kind === "box") {
      g.frame.remove();
      var a = toWorld(Math.min(event.clientX, g.startX), Math.min(event.clientY, g.startY));
      var z = toWorld(Math.max(event.clientX, g.startX), Math.max(event.clientY, g.startY));
      var inside = [];
      graph().querySelectorAll(".node").forEach(function (el) {
        var nb = box(el);
        if (nb.x < z.x && nb.x + nb.w > a.x && nb.y < z.y && nb.y + nb.h > a.y) inside.push(el.dataset.nodeId);
      });
      selection = inside.length ? { kind: "nodes", ids: inside } : null;
      paintSelection();
    } else if (g.kind === "pan") {
      vp.apply();
      if (!g.moved) clearSelection();
    }
  });

  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    if (event.ctrlKey || event.metaKey) {
      // Pinch on a trackpad arrives as ctrl+wheel with small deltas.
      zoomAt(Math.exp(-event.deltaY * 0.01), event.clientX, event.clientY);
    } else {
      var at = vp.offset();
      vp.panTo(at.x - event.deltaX, at.y - event.deltaY);
    }
  }, { passive: false });

  // ------------------------------------------------- buttons, links, the form

  var ACTIONS = {
    "zoom-in": function () { zoomAt(1.2); },
    "zoom-out": function () { zoomAt(1 / 1.2); },
    "fit": fit,
    "undo": function () { edit("/undo", {}); },
    "redo": function () { edit("/redo", {}); },
    "publish": function (button) {
      if (!button.dataset.dialog) {
        edit("/publish", {}, "#editor-status");
        return;
      }
      // Customers are in the flow: the panel says how many could move, and asks.
      selection = null;
      paintSelection();
      request("GET", base + "/publish", "#panel");
    },
    "close-panel": function () {
      selection = null;
      paintSelection();
      request("GET", base + "/nodes/-", "#panel");
    },
    "test": function () {
      selection = null;
      paintSelection();
      request("GET", base + "/test", "#panel");
    },
    "compare": function (button) {
      selection = null;
      paintSelection();
      request("GET", base + "/compare?a=" + encodeURIComponent(button.dataset.a) +
        "&b=" + encodeURIComponent(button.dataset.b), "#panel");
    },
    "delete-node": function (button) {
      selection = null;
      edit("/nodes/" + encodeURIComponent(button.dataset.nodeId) + "/delete", {});
    },
    "tidy": function () { edit("/tidy", {}).then(fit); },
    "restore": function (button) {
      if (!window.confirm(button.dataset.confirm)) return;
      edit("/versions/" + encodeURIComponent(button.dataset.value) + "/restore", {});
    },
    "lifecycle": function (button) {
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      edit("/lifecycle", { action: button.dataset.value }, "#editor-status");
    },
  };

  root.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (button && ACTIONS[button.dataset.action]) {
      event.preventDefault();
      ACTIONS[button.dataset.action](button);
      return;
    }
    var link = event.target.closest("[data-select-node]");
    if (link) {
      event.preventDefault();
      centerOn(link.dataset.selectNode);
      selectNode(link.dataset.selectNode, true);
    }
  });

  root.addEventListener("submit", function (event) {
    var form = event.target.closest(".config-form, .test-form, .publish-form");
    if (!form) return;
    event.preventDefault();
    if (form.classList.contains("publish-form")) {
      var choices = {};
      new FormData(form).forEach(function (value, key) { choices[key] = value; });
      edit("/publish", choices, "#editor-status");
      return;
    }
    if (readonly && form.classList.contains("config-form")) return;
    var values = {};
    new FormData(form).forEach(function (value, key) { values[key] = value; });
    request("POST", form.getAttribute("action"), "#panel", values);
  });

  // Connecting from the panel (keyboard users): pick what an output leads to.
  root.addEventListener("change", function (event) {
    var select = event.target.closest(".port-target");
    if (!select || readonly) return;
    var source = select.dataset.source, port = select.dataset.port;
    if (select.value) {
      edit("/edges", { source: source, port: port, target: select.value });
    } else {
      edit("/edges/delete", { source: source, port: port });
    }
  });

  // Import: the file is read here and sent as text, like any other edit.
  var importFile = document.getElementById("import-file");
  if (importFile) {
    importFile.addEventListener("change", function () {
      var file = importFile.files && importFile.files[0];
      if (!file) return;
      file.text().then(function (text) {
        importFile.value = "";
        selection = null;
        edit("/import", { graph: text }).then(fit);
      });
    });
  }

  // --------------------------------------------------------------- keyboard

  document.addEventListener("keydown", function (event) {
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
      selection = all.length ? { kind: "nodes", ids: all } : null;
      paintSelection();
    } else if (mod && (key === "c" || key === "C")) {
      copySelection();
    } else if (mod && (key === "v" || key === "V")) {
      event.preventDefault();
      pasteClipboard();
    } else if (mod) {
      return;
    } else if (key === "Delete" || key === "Backspace") {
      if (selection) { event.preventDefault(); deleteSelection(); }
    } else if (key === "Escape") {
      clearSelection();
    } else if (key === "+" || key === "=") {
      zoomAt(1.2);
    } else if (key === "-") {
      zoomAt(1 / 1.2);
    } else if (key === "0") {
      fit();
    } else if (key === "Enter" && event.target.classList && event.target.classList.contains("node")) {
      event.preventDefault();
      selectNode(event.target.dataset.nodeId, true);
    } else if (key.indexOf("Arrow") === 0 && selectedIds().length) {
      event.preventDefault();
      var step = event.shiftKey ? 1 : 20;
      var delta = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[key];
      if (delta) moveSelectionBy(delta[0], delta[1]);
    }
  });

  // ------------------------------------------------------------------- start

  vp.restore();
  root.classList.add("editor-ready");
})();
