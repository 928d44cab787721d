// The form editor's two panes: a compact list of fields (choose, reorder by drag or arrows,
// remove) beside the chosen field's settings, and a live preview of the form.
//
// Every field's settings stay in the page (hidden but the chosen one), so saving posts them
// all; the order travels in each field's hidden "position", a removal in its "remove".
(function () {
  "use strict";

  function editor() { return document.querySelector(".form-editor"); }
  function items() { return Array.prototype.slice.call(document.querySelectorAll("#field-list .field-item")); }
  function row(index) { return document.getElementById("field-row-" + index); }
  function value(index, name) {
    var input = document.getElementById("field-" + index + "-" + name);
    return input ? input.value.trim() : "";
  }

  function choose(index, focus) {
    items().forEach(function (item) {
      var chosen = item.dataset.index === String(index);
      item.classList.toggle("field-item-selected", chosen);
      item.querySelector(".field-pick").setAttribute("aria-pressed", String(chosen));
      row(item.dataset.index).hidden = !chosen;
    });
    if (focus) {
      var label = document.getElementById("field-" + index + "-label");
      if (label) label.focus();
    }
    renumber();
  }

  // Positions follow the list's order; the chosen field is sent as its place among those kept,
  // which is how the page comes back after saving.
  function renumber() {
    var kept = 0;
    items().forEach(function (item, position) {
      row(item.dataset.index).querySelector(".field-position").value = String(position);
      if (item.classList.contains("field-item-selected")) {
        document.getElementById("selected-field").value = String(kept);
      }
      kept += 1;
    });
    preview();
  }

  function move(item, step) {
    var list = item.parentNode;
    var all = items();
    var at = all.indexOf(item) + step;
    if (at < 0 || at >= all.length) return;
    list.insertBefore(item, step < 0 ? all[at] : all[at].nextSibling);
    renumber();
  }

  function remove(item) {
    var all = items();
    var next = all[all.indexOf(item) + 1] || all[all.indexOf(item) - 1];
    var fieldset = row(item.dataset.index);
    fieldset.querySelector(".field-remove").value = "1";
    fieldset.hidden = true;
    // The fieldset stays (its "remove" is posted); it leaves the list and the preview.
    document.getElementById("field-rows").appendChild(fieldset);
    fieldset.classList.add("field-row-removed");
    item.remove();
    if (item.classList.contains("field-item-selected") && next) choose(next.dataset.index, false);
    else renumber();
    var focus = next && next.querySelector(".field-pick");
    if (focus) focus.focus();
  }

  function control(type, options) {
    var el;
    if (type === "textarea") {
      el = document.createElement("textarea");
      el.rows = 3;
    } else if (type === "select") {
      el = document.createElement("select");
      el.appendChild(document.createElement("option"));
      options.forEach(function (text) {
        var option = document.createElement("option");
        option.textContent = text;
        el.appendChild(option);
      });
    } else {
      el = document.createElement("input");
      el.type = type;
    }
    el.tabIndex = -1;
    return el;
  }

  function preview() {
    var box = document.getElementById("form-preview");
    if (!box) return;
    box.replaceChildren();
    items().forEach(function (item) {
      var index = item.dataset.index;
      var type = value(index, "type") || "text";
      var text = value(index, "label") || value(index, "name");
      var required = document.querySelector('input[name="field-' + index + '-required"]');
      var label = document.createElement("label");
      var input = control(type, value(index, "options").split(/[\n,]/).map(function (o) { return o.trim(); }).filter(Boolean));
      if (type === "checkbox") {
        label.className = "choice";
        label.append(input, " " + text);
      } else {
        label.className = "preview-field";
        label.append(text + (required && required.checked ? " *" : ""), input);
      }
      box.appendChild(label);
      var pick = item.querySelector(".field-pick-label");
      if (pick && text) pick.textContent = text;
      // The arrows and the remove button say which field they act on, as named now.
      item.querySelectorAll("[data-label]").forEach(function (button) {
        if (text) button.setAttribute("aria-label", button.dataset.label.replace("{field}", text));
      });
    });
    var channel = document.getElementById("consent_channel");
    if (channel && channel.value) {
      var consent = document.createElement("label");
      consent.className = "choice";
      consent.append(control("checkbox", []), " " + document.getElementById("consent_label").value);
      box.appendChild(consent);
    }
    var send = document.createElement("span");
    send.className = "button button-primary";
    send.textContent = editor().dataset.sendLabel;
    box.appendChild(send);
  }

  var dragged = null;

  document.addEventListener("click", function (event) {
    if (!editor()) return;
    var pick = event.target.closest(".field-pick");
    var mover = event.target.closest("[data-move]");
    var remover = event.target.closest("[data-remove]");
    if (pick) choose(pick.dataset.index, true);
    else if (mover) {
      var item = mover.closest(".field-item");
      move(item, Number(mover.dataset.move));
      mover.focus();
    } else if (remover) remove(remover.closest(".field-item"));
  });

  document.addEventListener("input", function (event) {
    if (editor() && event.target.closest(".form-editor-form")) preview();
  });
  document.addEventListener("change", function (event) {
    if (editor() && event.target.closest(".form-editor-form")) preview();
  });

  document.addEventListener("dragstart", function (event) {
    var item = event.target.closest && event.target.closest(".field-item");
    if (!item) return;
    dragged = item;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.dataset.index);
  });
  document.addEventListener("dragover", function (event) {
    if (dragged && event.target.closest && event.target.closest("#field-list")) event.preventDefault();
  });
  document.addEventListener("drop", function (event) {
    var over = dragged && event.target.closest && event.target.closest(".field-item");
    if (!over || over === dragged) { dragged = null; return; }
    event.preventDefault();
    var box = over.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
    dragged = null;
    renumber();
  });

  function start() { if (editor()) renumber(); }
  document.addEventListener("htmx:after:swap", start);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
