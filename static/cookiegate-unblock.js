/*
 * cookiegate-unblock.js: re-activates what cookiegate's server-side rewriter
 * (cookiegate.rewrite.HtmlRewriter) neutralised, once the visitor grants its
 * category. Hand-written, no dependencies, no build step, no inline script or
 * style (CSP-safe). Load it once, e.g.
 *   <script src="/static/cookiegate-unblock.js" defer></script>
 * (optional: data-cg-endpoint="/_cookiegate/consent" on that tag).
 *
 * It reads the consent state at load (window.cookiegate.state, or the
 * data-cg-state attribute of #cookiegate) and listens to
 *   document.addEventListener("cookiegate:consent", e => e.detail.categories)
 * ({category: true|false}). For every granted category it restores, in document
 * order:
 *  - <script data-cg-blocked=C>: (C may list several categories, space-separated:
 *    all of them must be granted) re-created (type from data-cg-type, src from
 *    data-cg-src, an SVG script's data-cg-href / data-cg-xlink:href, data-src
 *    or src, other attributes copied); external scripts
 *    are awaited one after the other so execution order is preserved;
 *  - <script type="text/plain" data-category=C> / data-cookiecategory=C (the
 *    convention of other consent tools, left untouched by the server): same;
 *  - <img>: srcset / src from data-cg-srcset / data-cg-src;
 *  - <iframe>: src / srcdoc restored, "hidden" removed if cookiegate added it
 *    (data-cg-unhide), the preceding placeholder [data-cg-placeholder] removed;
 *  - <link>: href from data-cg-href; <a>/<area>: ping from data-cg-ping;
 *  - SVG <image>, <source>, <input>, <video>, <audio>, <track>, <embed>,
 *    <object>: their URL attributes (src, srcset, poster, data, href,
 *    xlink:href); a <source> in <video>/<audio> reloads its media element.
 * A placeholder's button [data-cg-load=C] posts consent for C, merged with the
 * current state (the latest decision: a category withdrawn since stays refused), to the consent endpoint as JSON, then restores (focus moves to
 * the restored iframe) and tells the banner (window.cookiegate.decided).
 * Re-created scripts keep the nonce of the neutralised ones (a CSP nonce is
 * hidden from getAttribute once parsed). With data-cg-reload on this tag (the
 * gate narrows the page's CSP per consent) a newly granted category reloads the
 * page instead: the policy the page came with still refuses those hosts.
 * Withdrawing consent cannot stop code that already ran: the page must reload.
 */
(function () {
  "use strict";
  var root = document.documentElement;
  if (root.hasAttribute("data-cg-unblock")) return;
  root.setAttribute("data-cg-unblock", "");

  var me = document.currentScript;
  var ENDPOINT = (me && me.getAttribute("data-cg-endpoint")) || "/_cookiegate/consent";
  var RELOAD = !!(me && me.hasAttribute("data-cg-reload"));
  var started = false;
  var focusAfter = null;  // the placeholder whose button had focus when pressed
  var MARKERS = ["data-category", "data-cookiecategory"];
  var URL_ATTRS = ["srcset", "src", "poster", "data", "href", "ping"];
  var granted = {};
  var queue = Promise.resolve();

  function readState() {
    var api = window.cookiegate;
    if (api && api.state && api.state.categories) return api.state.categories;
    var el = document.getElementById("cookiegate");
    try {
      var s = JSON.parse((el && el.getAttribute("data-cg-state")) || "null");
      if (s && s.categories) return s.categories;
    } catch (e) { /* undecided */ }
    return {};
  }

  function categoryOf(el) {
    var c = el.getAttribute("data-cg-blocked");
    if (c) return c;
    for (var i = 0; i < MARKERS.length; i++) {
      c = el.getAttribute(MARKERS[i]);
      if (c) return c.replace(/^\s+|\s+$/g, "").toLowerCase();  // as the server reads it
    }
    return null;
  }

  function restore(el, name) {
    var v = el.getAttribute("data-cg-" + name);
    if (v !== null) {
      el.removeAttribute("data-cg-" + name);
      el.setAttribute(name, v);
    }
  }

  function done(el) {
    el.removeAttribute("data-cg-blocked");
    el.removeAttribute("data-cg-tracker");
  }

  function activateScript(old) {
    return new Promise(function (resolve) {
      if (!old.parentNode) { resolve(); return; }
      var s = document.createElement("script");
      var attrs = old.attributes;
      for (var i = 0; i < attrs.length; i++) {
        var n = attrs[i].name;
        if (n === "type" || n === "src" || n === "data-cg-blocked" || n === "data-cg-tracker" ||
            n === "data-cg-src" || n === "data-cg-type" || n === "data-cg-queued" ||
            n === "data-cg-href" || n === "data-cg-xlink:href") continue;
        s.setAttribute(n, attrs[i].value);
      }
      if (old.nonce) s.nonce = old.nonce;  // getAttribute("nonce") reads "" once parsed
      var type = old.getAttribute("data-cg-type");
      if (type) s.setAttribute("type", type);
      // a site-marked <script type="text/plain" src=...> is external too: awaited
      // an SVG <script> loads its href: re-created as an HTML script, it runs as one
      var src = old.getAttribute("data-cg-src") || old.getAttribute("data-cg-href") ||
        old.getAttribute("data-cg-xlink:href") || old.getAttribute("data-src") ||
        old.getAttribute("src");
      if (src) {
        s.async = false;
        s.onload = s.onerror = function () { resolve(); };
        s.setAttribute("src", src);
      } else {
        s.text = typeof old.text === "string" ? old.text : old.textContent;  // SVG: no .text
      }
      old.parentNode.replaceChild(s, old);
      if (!src) resolve();
    });
  }

  function apply(categories) {
    var names = [];
    var fresh = false;
    for (var k in categories) {
      if (!Object.prototype.hasOwnProperty.call(categories, k)) continue;
      if (categories[k] === true) {
        if (granted[k] !== true) fresh = true;
        names.push(k);
      }
      granted[k] = categories[k] === true;  // the latest state: a withdrawal clears it
    }
    if (!names.length) return;
    if (RELOAD && started && fresh && document.querySelector(
        "[data-cg-blocked], script[type='text/plain'][data-category]," +
        " script[type='text/plain'][data-cookiecategory]")) {
      // this page's CSP refuses what was just granted: fetch the page anew
      window.location.reload();
      return;
    }
    var isGranted = function (el) {
      // a script bundling several vendors lists each refused category: all of
      // them must be granted before it runs
      var c = categoryOf(el);
      if (c === null) return false;
      var all = c.split(/\s+/);
      for (var n = 0; n < all.length; n++) {
        if (all[n] && granted[all[n]] !== true) return false;
      }
      return true;
    };
    var scripts = document.querySelectorAll(
      "script[data-cg-blocked], script[type='text/plain'][data-category]," +
      " script[type='text/plain'][data-cookiecategory]");
    for (var i = 0; i < scripts.length; i++) {
      var el = scripts[i];
      if (el.hasAttribute("data-cg-queued") || !isGranted(el)) continue;
      el.setAttribute("data-cg-queued", "");  // not picked up twice
      queue = queue.then((function (node) {
        return function () { return activateScript(node); };
      })(el));
    }
    var others = document.querySelectorAll("[data-cg-blocked]:not(script)");
    for (var j = 0; j < others.length; j++) {
      var e = others[j];
      if (!isGranted(e)) continue;
      var tag = e.tagName.toLowerCase();
      if (tag === "img") { restore(e, "srcset"); restore(e, "src"); }
      else if (tag === "iframe") {
        var ph = e.previousElementSibling;
        var refocus = false;
        if (ph && ph.hasAttribute("data-cg-placeholder")) {
          refocus = ph === focusAfter || ph.contains(document.activeElement);
          ph.parentNode.removeChild(ph);
        }
        if (e.hasAttribute("data-cg-unhide")) {
          e.removeAttribute("data-cg-unhide");
          e.removeAttribute("hidden");
        }
        restore(e, "srcdoc"); restore(e, "src");
        if (refocus) e.focus();  // keyboard users keep their place
      }
      else {
        // link href, a/area ping, and what loads a URL without script: SVG
        // image (href, xlink:href), source, input, video (poster), audio,
        // track, embed (src), object (data)
        for (var a = 0; a < URL_ATTRS.length; a++) restore(e, URL_ATTRS[a]);
        var xl = e.getAttribute("data-cg-xlink:href");
        if (xl !== null) {
          e.removeAttribute("data-cg-xlink:href");
          e.setAttributeNS("http://www.w3.org/1999/xlink", "xlink:href", xl);
        }
        var media = e.parentNode;
        if (tag === "source" && media && typeof media.load === "function" &&
            /^(video|audio)$/i.test(media.tagName)) {
          media.load();  // a media element chose its source already
        }
      }
      done(e);
    }
  }

  function consentTo(category, button) {
    var current = readState();
    var merged = {};
    for (var k in current) {
      if (Object.prototype.hasOwnProperty.call(current, k)) merged[k] = current[k] === true;
    }
    for (var g in granted) {  // the latest decision this page saw (true or false)
      if (Object.prototype.hasOwnProperty.call(granted, g)) merged[g] = granted[g];
    }
    var adding = category.split(/\s+/);  // only this category (or these) is added
    for (var a = 0; a < adding.length; a++) if (adding[a]) merged[adding[a]] = true;
    if (button && button === document.activeElement) {
      // disabling the button below moves focus to <body>: remember where it was
      focusAfter = button.closest ? button.closest("[data-cg-placeholder]") : null;
    }
    if (button) button.disabled = true;
    return fetch(ENDPOINT, {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({categories: merged}),
      credentials: "same-origin",
      redirect: "manual"
    }).then(function (res) {
      if (!(res.ok || res.type === "opaqueredirect")) throw new Error("cookiegate: HTTP " + res.status);
      var api = window.cookiegate;
      if (api && typeof api === "object" && typeof api.decided === "function") {
        api.decided(merged);  // the banner hides, the settings control shows, the event fires
        return;
      }
      if (api && typeof api === "object" && "state" in api) {
        api.state = {decided: true, categories: merged};
      }
      document.dispatchEvent(new CustomEvent("cookiegate:consent", {detail: {categories: merged}}));
    }).catch(function () {
      if (button) button.disabled = false;
    });
  }

  document.addEventListener("cookiegate:consent", function (ev) {
    if (ev.detail && ev.detail.categories) apply(ev.detail.categories);
  });
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    while (t && t !== document && !(t.getAttribute && t.getAttribute("data-cg-load"))) t = t.parentNode;
    if (!t || t === document) return;
    ev.preventDefault();
    consentTo(t.getAttribute("data-cg-load"), t);
  });

  function start() { apply(readState()); started = true; }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
