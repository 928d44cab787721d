// The one viewport of this page's canvas, shared by every editor module.
import { base, box, canvas, graph, nodeEl, world } from "./state.js";
import { createViewport } from "./viewport.js";

export const vp = createViewport({
  canvas: canvas,
  world: world,
  minimap: document.getElementById("minimap"),
  graph: graph,
  box: box,
  storageKey: "touchflow-view:" + base,
});

export function centerOn(id) {
  var el = nodeEl(id);
  if (el) vp.centerOnBox(box(el));
}
