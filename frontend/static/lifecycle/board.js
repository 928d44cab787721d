// The touchpoint board's pointer work: drag a card along its timeline or onto
// another process's timeline. The server owns the order: each drop posts the
// card's new place with the revision it was shown at, then the page reloads.
// A stale revision comes back as 409 with a sentence, shown in the page.
// The buttons on each card do the same without a pointer.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function showError(message) {
    var box = document.getElementById("tp-drag-error");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    box.setAttribute("tabindex", "-1");
    box.focus();
  }

  function dropIndex(timeline, x, dragged) {
    var cards = Array.prototype.filter.call(
      timeline.querySelectorAll(".tp-card"),
      function (card) { return card !== dragged; }
    );
    for (var i = 0; i < cards.length; i++) {
      var box = cards[i].getBoundingClientRect();
      if (x < box.left + box.width / 2) return i;
    }
    return cards.length;
  }

  function move(card, processId, index) {
    var body = new URLSearchParams();
    body.set("revision", card.dataset.revision);
    body.set("process_id", processId);
    body.set("index", String(index));
    return fetch("/lifecycle/touchpoints/" + card.dataset.id + "/move", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" },
      body: body
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          showError(data && data.error ? data.error.message : response.statusText);
          return;
        }
        window.location.reload();
      });
    }).catch(function () {
      var box = document.getElementById("tp-drag-error");
      showError(box ? box.dataset.fallback : "");
    });
  }

  var dragged = null;

  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".tp-card[draggable='true']");
    if (!card) return;
    dragged = card;
    card.classList.add("tp-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.id);
  });

  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("tp-dragging");
    dragged = null;
    document.querySelectorAll(".tp-drop").forEach(function (el) { el.classList.remove("tp-drop"); });
  });

  document.addEventListener("dragover", function (event) {
    var timeline = event.target.closest && event.target.closest(".tp-timeline");
    if (!timeline || !dragged) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    timeline.classList.add("tp-drop");
  });

  document.addEventListener("dragleave", function (event) {
    var timeline = event.target.closest && event.target.closest(".tp-timeline");
    if (timeline && !timeline.contains(event.relatedTarget)) timeline.classList.remove("tp-drop");
  });

  document.addEventListener("drop", function (event) {
    var timeline = event.target.closest && event.target.closest(".tp-timeline");
    if (!timeline || !dragged) return;
    event.preventDefault();
    move(dragged, timeline.dataset.process, dropIndex(timeline, event.clientX, dragged));
  });
})();
