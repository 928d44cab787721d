/*! Touchflow web snippet: page views, events, identify and personalized slots.
 *
 * <script async src="https://touchflow.example.com/static/snippet/touchflow.js"
 *   data-site-key="tfs_..."        public site key (required)
 *   data-anti-flicker="400"        hide only [data-touchflow-slot] elements, at most this many ms
 *   data-consent="required"></script>  no cookie, no storage, no events until touchflow.consent(true)
 *
 * Global Privacy Control (navigator.globalPrivacyControl) counts as "no consent yet".
 * Without consent the visitor id lives in memory only and only slot decisions are asked for.
 * Calls made before the script loads are queued: window.touchflow = {q: [["track", "x"]]}.
 */
(function (w, d) {
  "use strict";
  var script = d.currentScript;
  if (!script || (w.touchflow && w.touchflow.ready)) return;
  var key = script.getAttribute("data-site-key");
  var base = script.getAttribute("data-api") || new URL(script.src).origin;
  var wait = +script.getAttribute("data-anti-flicker") || 0;
  var consented = script.getAttribute("data-consent") !== "required" && navigator.globalPrivacyControl !== true;
  var ID = /^[A-Za-z0-9_-]{16,64}$/;
  var NAME = "tf_vid";
  var UTM = "tf_utm";
  var pending = [];
  var hider;

  function random() {
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    return btoa(String.fromCharCode.apply(null, bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function stored() {
    var found = (d.cookie.match(/(?:^|; )tf_vid=([^;]+)/) || [])[1];
    try { found = found || localStorage.getItem(NAME); } catch (e) { /* storage blocked */ }
    return ID.test(found || "") ? found : null;
  }

  function persist(id) {
    var secure = location.protocol === "https:" ? "; Secure" : "";
    d.cookie = NAME + "=" + id + "; Max-Age=31536000; Path=/; SameSite=Lax" + secure;
    try { localStorage.setItem(NAME, id); } catch (e) { /* cookie alone */ }
  }

  function forget() {
    d.cookie = NAME + "=; Max-Age=0; Path=/";
    try { localStorage.removeItem(NAME); localStorage.removeItem(UTM); } catch (e) { /* nothing stored */ }
  }

  var vid = (consented && stored()) || random();
  if (consented) persist(vid);

  // UTM parameters of this URL, else those remembered from the landing page.
  var utm = {};
  new URLSearchParams(location.search).forEach(function (value, name) {
    if (name.indexOf("utm_") === 0) utm[name] = value;
  });
  try {
    if (Object.keys(utm).length) { if (consented) localStorage.setItem(UTM, JSON.stringify(utm)); }
    else if (consented) utm = JSON.parse(localStorage.getItem(UTM) || "{}");
  } catch (e) { /* memory only */ }

  function post(path, body) {
    body.key = key;
    body.vid = vid;
    body.page = { url: location.href, title: d.title, referrer: d.referrer };
    body.utm = utm;
    // text/plain keeps this a "simple" CORS request: no preflight round trip.
    return fetch(base + "/p/v1/" + path, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Content-Type": "text/plain" },
      credentials: "omit",
      keepalive: true
    }).then(function (r) { return r.ok ? r.json() : null; }).catch(function () { return null; });
  }

  function reveal() {
    if (hider) { hider.remove(); hider = null; }
  }

  function fill() {
    var elements = [].slice.call(d.querySelectorAll("[data-touchflow-slot]"));
    var names = elements.map(function (el) { return el.getAttribute("data-touchflow-slot"); })
      .filter(function (name, i, all) { return all.indexOf(name) === i; });
    if (!names.length) { reveal(); return Promise.resolve(null); }
    return post("decide", { slots: names.slice(0, 20) }).then(function (answer) {
      var slots = (answer && answer.slots) || {};
      elements.forEach(function (el) {
        var chosen = slots[el.getAttribute("data-touchflow-slot")];
        if (chosen) {
          el.innerHTML = chosen.html; // sanitised by Touchflow when saved
          el.setAttribute("data-touchflow-variant", chosen.variant);
        }
      });
      reveal();
      d.dispatchEvent(new CustomEvent("touchflow:decided", { detail: answer }));
      return answer;
    });
  }

  function send(type, properties) {
    var body = { type: type, properties: properties || {}, id: random() };
    if (!consented) { pending.push(body); return Promise.resolve(null); }
    return post("events", body);
  }

  var api = {
    ready: true,
    track: function (type, properties) { return send(type, properties); },
    page: function () { return Promise.all([send("page.viewed"), fill()]); },
    identify: function (traits) {
      if (!consented) return Promise.resolve(null);
      return post("identify", Object.assign({}, traits)).then(fill);
    },
    consent: function (granted) {
      if (!granted) { consented = false; forget(); vid = random(); pending = []; return; }
      if (consented) return;
      consented = true;
      var known = stored();
      if (known) vid = known; else persist(vid);
      pending.splice(0).forEach(function (body) { post("events", body); });
    },
    visitorId: function () { return vid; },
    refresh: fill
  };

  // Forms posting to Touchflow carry the visitor id, so a sign-up is stitched to the visit.
  d.addEventListener("submit", function (event) {
    var form = event.target;
    if (!consented || !form.hasAttribute || !(form.hasAttribute("data-touchflow-form") ||
        (form.getAttribute("action") || "").indexOf(base) === 0)) return;
    var input = form.querySelector("input[name=visitor_id]") || d.createElement("input");
    input.type = "hidden";
    input.name = "visitor_id";
    input.value = vid;
    form.appendChild(input);
  }, true);

  if (wait > 0) {
    hider = d.createElement("style");
    hider.textContent = "[data-touchflow-slot]{visibility:hidden!important}";
    d.head.appendChild(hider);
    setTimeout(reveal, wait);
  }

  var queued = (w.touchflow && w.touchflow.q) || [];
  w.touchflow = api;

  function start() {
    api.page();
    queued.forEach(function (call) { api[call[0]].apply(api, call.slice(1)); });
  }
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", start); else start();
})(window, document);
