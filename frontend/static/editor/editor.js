// Touchflow's canvas editor: pointer work only (DESIGN principle 8).
//
// The server owns the graph. These modules turn drags, clicks and keys into
// edit requests (htmx.ajax, one at a time, each carrying the draft revision it
// was made on) and let the server's fragments redraw the canvas. While a node
// is being dragged they redraw that node's curves, with the same formula as
// backend/web/editor/geometry.py. No framework, no build step: plain ES modules.
//
//   state.js      shared state, DOM and geometry helpers
//   viewport.js   pan, zoom, fit, minimap        view.js     this page's viewport
//   requests.js   the edit queue                 selection.js  what is selected
//   arrange.js    move, copy, paste              palette.js  search and add
//   pointer.js    drag, connect, pan, zoom       actions.js  buttons and forms
//   keyboard.js   shortcuts                      tools.js    room, find a step, help
//   rename.js     rename a step in place (double-click, F2)
//   runpath.js    a run's path on the canvas (loaded by "Show on canvas" only)
//   connect.js    connect steps from the keyboard (C)
import { root } from "./state.js";
import { installResync } from "./requests.js";
import { installPalette } from "./palette.js";
import { installPointer } from "./pointer.js";
import { installActions } from "./actions.js";
import { installKeyboard } from "./keyboard.js";
import { installTools } from "./tools.js";
import { installRename } from "./rename.js";
import { installConnect } from "./connect.js";
import { vp } from "./view.js";

if (root && window.htmx) {
  installResync();
  installPalette();
  installPointer();
  installActions();
  installKeyboard();
  installTools();
  installRename();
  installConnect();
  vp.restore();
  root.classList.add("editor-ready");
}
