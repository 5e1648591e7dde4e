/*
 * cookiegate-consent-mode.js: Google Consent Mode v2 without inline script.
 * Hand-written, no dependencies, no build step.
 *
 * Include it SYNCHRONOUSLY (no async, no defer) as early as possible in <head>,
 * before any Google tag; cookiegate inserts it right after <head>:
 *
 *   <script src="/_cookiegate/static/cookiegate-consent-mode.js"
 *           data-cookiegate-consent-mode='{"default":{...},"update":{...}|null,
 *             "mapping":{"performance":["analytics_storage"],...},"signals":[...],
 *             "ads_data_redaction":true,"url_passthrough":false}'></script>
 *
 * It runs gtag('consent','default',...) (everything denied but
 * security_storage), the 'set' options, then gtag('consent','update',...) for a
 * visitor who already decided, and on every `cookiegate:consent` event of the
 * banner (detail.categories = {name: true|false}) another 'update'.
 */
(function () {
  "use strict";
  var me = document.currentScript;
  var cfg = null;
  try {
    cfg = JSON.parse((me && me.getAttribute("data-cookiegate-consent-mode")) || "null");
  } catch (e) { /* fall through */ }
  if (!cfg || typeof cfg !== "object" || !cfg["default"]) return;

  window.dataLayer = window.dataLayer || [];
  // Google's own definition; a site that defined gtag already keeps its own
  if (typeof window.gtag !== "function") {
    window.gtag = function () { window.dataLayer.push(arguments); };
  }
  var gtag = window.gtag;
  var mapping = cfg.mapping || {};
  var signals = cfg.signals || [];

  gtag("consent", "default", cfg["default"]);
  if (cfg.ads_data_redaction) gtag("set", "ads_data_redaction", true);
  if (cfg.url_passthrough) gtag("set", "url_passthrough", true);
  if (cfg.update) gtag("consent", "update", cfg.update);

  function signalsFor(categories) {
    var out = {}, i, k;
    for (i = 0; i < signals.length; i++) {
      out[signals[i]] = signals[i] === "security_storage" ? "granted" : "denied";
    }
    for (k in mapping) {
      if (Object.prototype.hasOwnProperty.call(mapping, k) && categories[k] === true) {
        for (i = 0; i < mapping[k].length; i++) out[mapping[k][i]] = "granted";
      }
    }
    return out;
  }

  document.addEventListener("cookiegate:consent", function (ev) {
    var categories = (ev.detail && ev.detail.categories) || {};
    gtag("consent", "update", signalsFor(categories));
  });
})();
