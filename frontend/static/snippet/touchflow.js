/*! Touchflow web snippet: page views, events, identify and personalized slots.
 *
 * The embed code (Personalization page) puts an inline style in <head> that hides only
 * [data-touchflow-slot] elements, with a hard cap, then loads this script:
 * <style id="touchflow-hide">[data-touchflow-slot]{visibility:hidden!important}</style>
 * <script>setTimeout(function(){var s=document.getElementById("touchflow-hide");if(s)s.remove()},800)</script>
 * <script async src="https://touchflow.example.com/static/snippet/touchflow.<hash>.js"
 *   data-site-key="tfs_..."        public site key (required)
 *   data-anti-flicker="400"        (without the inline style) hide slots from load, at most this long
 *   data-consent="required"></script>  no cookie, no storage, no events until touchflow.consent(true)
 *
 * Global Privacy Control (navigator.globalPrivacyControl) counts as "no consent yet".
 * Without consent the visitor id, the campaign (UTM) and decisions live in memory only and
 * only slot decisions are asked for; consent given later stores them then.
 * With consent, each page's last decision is kept and painted at once on the next visit.
 * identify({token}) verifies with a token the site's backend signed; identify({email}) is a
 * claim that shows nothing of that contact. A link Touchflow emailed adds ?tf_verify=...,
 * which is redeemed here and removed from the address bar.
 * Calls made before the script loads are queued: window.touchflow = {q: [["track", "x"]]}.
 */
(function (w, d) {
  "use strict";
  var script = d.currentScript;
  if (!script || (w.touchflow && w.touchflow.ready)) return;
  var key = script.getAttribute("data-site-key");
  var base = script.getAttribute("data-api") || new URL(script.src).origin;
  var baseOrigin = new URL(base).origin;
  var wait = +script.getAttribute("data-anti-flicker") || 0;
  var consented = script.getAttribute("data-consent") !== "required" && navigator.globalPrivacyControl !== true;
  var ID = /^[A-Za-z0-9_-]{16,64}$/;
  var NAME = "tf_vid";
  var UTM = "tf_utm";
  var SEEN = "tf_seen"; // last decision per page, painted first on the next visit
  var SEEN_MAX_AGE = 864e5;
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
    try { [NAME, UTM, SEEN].forEach(function (name) { localStorage.removeItem(name); }); } catch (e) { /* nothing stored */ }
  }

  var vid = (consented && stored()) || random();
  if (consented) persist(vid);

  // UTM parameters of this URL, else those remembered from the landing page.
  var utm = {};
  var params = new URLSearchParams(location.search);
  params.forEach(function (value, name) {
    if (name.indexOf("utm_") === 0) utm[name] = value;
  });
  function keepUtm() {
    try { if (Object.keys(utm).length) localStorage.setItem(UTM, JSON.stringify(utm)); } catch (e) { /* memory only */ }
  }
  try {
    if (Object.keys(utm).length) { if (consented) keepUtm(); }
    else if (consented) utm = JSON.parse(localStorage.getItem(UTM) || "{}");
  } catch (e) { /* memory only */ }

  // A link Touchflow emailed proves who this browser is; the proof leaves the address bar.
  var proof = params.get("tf_verify");
  if (proof) {
    params.delete("tf_verify");
    var rest = params.toString();
    try { history.replaceState(history.state, "", location.pathname + (rest ? "?" + rest : "") + location.hash); } catch (e) { /* keep the URL */ }
  }

  function renew(id) {
    // The old id was forgotten (its contact erased): carry on as a new visitor.
    vid = id;
    try { localStorage.removeItem(SEEN); } catch (e) { /* nothing stored */ }
    if (consented) persist(vid);
  }

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
    }).then(function (r) { return r.ok ? r.json() : null; }).then(function (answer) {
      if (answer && ID.test(answer.vid || "") && answer.vid !== vid) renew(answer.vid);
      return answer;
    }).catch(function () { return null; });
  }

  function reveal() {
    if (hider) { hider.remove(); hider = null; }
    var inline = d.getElementById("touchflow-hide");
    if (inline) inline.remove();
  }

  function seenKey() {
    return location.pathname + "|" + (utm.utm_source || "");
  }

  function recall() {
    if (!consented) return null;
    try {
      var all = JSON.parse(localStorage.getItem(SEEN) || "{}");
      var entry = all[seenKey()];
      return entry && entry.v === vid && Date.now() - entry.t < SEEN_MAX_AGE ? entry.slots : null;
    } catch (e) { return null; }
  }

  function remember(slots) {
    if (!consented) return;
    try {
      var all = JSON.parse(localStorage.getItem(SEEN) || "{}");
      all[seenKey()] = { v: vid, t: Date.now(), slots: slots };
      var names = Object.keys(all);
      if (names.length > 20) delete all[names[0]];
      localStorage.setItem(SEEN, JSON.stringify(all));
    } catch (e) { /* memory only */ }
  }

  function slotElements() {
    return [].slice.call(d.querySelectorAll("[data-touchflow-slot]"));
  }

  function paint(elements, slots) {
    elements.forEach(function (el) {
      var chosen = slots[el.getAttribute("data-touchflow-slot")];
      if (chosen && el.getAttribute("data-touchflow-variant") !== chosen.variant) {
        el.innerHTML = chosen.html; // sanitised by Touchflow when saved
        el.setAttribute("data-touchflow-variant", chosen.variant);
      }
    });
  }

  function fill() {
    var elements = slotElements();
    var names = elements.map(function (el) { return el.getAttribute("data-touchflow-slot"); })
      .filter(function (name, i, all) { return all.indexOf(name) === i; });
    if (!names.length) { reveal(); return Promise.resolve(null); }
    return post("decide", { slots: names.slice(0, 20) }).then(function (answer) {
      var slots = (answer && answer.slots) || {};
      paint(elements, slots);
      reveal();
      if (answer) remember(slots);
      d.dispatchEvent(new CustomEvent("touchflow:decided", { detail: answer }));
      return answer;
    });
  }

  function send(type, properties) {
    var body = { type: type, properties: properties || {}, id: random() };
    if (!consented) { pending.push(body); return Promise.resolve(null); }
    return post("events", body);
  }

  function redeem() {
    if (!proof || !consented) return Promise.resolve(null);
    var token = proof;
    proof = null;
    return post("identify", { verify: token });
  }

  // An embedded Touchflow form (iframe) asks for the visitor id, so its submission stitches.
  function handFrames(target) {
    if (!consented) return;
    var frames = target ? [target] : [].slice.call(d.querySelectorAll("iframe")).map(function (f) { return f.contentWindow; });
    frames.forEach(function (frame) {
      try { if (frame) frame.postMessage({ touchflowVisitor: vid }, baseOrigin); } catch (e) { /* closed */ }
    });
  }
  w.addEventListener("message", function (event) {
    if (event.origin === baseOrigin && event.data && event.data.touchflow === "visitor?") handFrames(event.source);
  });

  var api = {
    ready: true,
    track: function (type, properties) { return send(type, properties); },
    page: function () { return Promise.all([send("page.viewed"), redeem().then(fill)]); },
    identify: function (traits) {
      if (!consented) return Promise.resolve(null);
      return post("identify", Object.assign({}, traits)).then(function (answer) {
        return fill().then(function () { return answer; });
      });
    },
    consent: function (granted) {
      if (!granted) { consented = false; forget(); vid = random(); pending = []; return; }
      if (consented) return;
      consented = true;
      var known = stored();
      if (known) vid = known; else persist(vid);
      keepUtm(); // the landing page's campaign, held in memory until now
      try { if (!Object.keys(utm).length) utm = JSON.parse(localStorage.getItem(UTM) || "{}"); } catch (e) { /* memory only */ }
      pending.splice(0).forEach(function (body) { post("events", body); });
      handFrames();
      if (proof) redeem().then(fill);
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
    // A repeat visit paints this page's last decision at once; the fresh one follows.
    var seen = recall();
    if (seen) { paint(slotElements(), seen); reveal(); }
    api.page();
    handFrames();
    queued.forEach(function (call) { api[call[0]].apply(api, call.slice(1)); });
  }
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", start); else start();
})(window, document);
