// Touchflow's page glue. htmx does the requests; this file only adds what every
// request needs: the session's CSRF token (read from <meta name="csrf-token">),
// sent as X-CSRF-Token on every htmx request to our own origin.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function sameOrigin(action) {
    try {
      return new URL(action, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  document.addEventListener("htmx:config:request", function (event) {
    var request = event.detail.ctx.request;
    if (sameOrigin(request.action)) {
      request.headers["X-CSRF-Token"] = csrfToken();
    }
  });

  // Errors come back as an alert in #flash (HX-Retarget); move focus there so
  // keyboard and screen-reader users notice.
  document.addEventListener("htmx:after:swap", function (event) {
    var ctx = event.detail && event.detail.ctx;
    if (ctx && ctx.target && ctx.target.id === "flash") {
      ctx.target.setAttribute("tabindex", "-1");
      ctx.target.focus();
    }
  });
})();
