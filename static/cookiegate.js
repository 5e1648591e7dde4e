/*
 * cookiegate.js: progressive enhancement of the cookie banner. Hand-written,
 * no dependencies, no build step. Everything works without it (plain forms).
 *
 * With it:
 *  - the banner's and the preference centre's forms are posted with fetch();
 *    the banner then hides and the "Cookie settings" control appears;
 *  - "Customise" / "Cookie settings" open the preference centre as a modal
 *    dialog (focus trapped, Escape closes without consenting, focus returns to
 *    the control that opened it);
 *  - every decision dispatches `cookiegate:consent` on `document`:
 *      document.addEventListener("cookiegate:consent", function (ev) {
 *        if (ev.detail.categories.performance) loadAnalytics();
 *      });
 *    detail = {categories: {<name>: true|false, ...}} (+ withdrawn: true);
 *  - window.cookiegate = {open(), close(), onConsent(fn), decided(categories),
 *    state}, where state is {decided, categories} (categories is null until
 *    known); decided() tells the banner of a choice saved elsewhere (a
 *    placeholder's "Load after consent"): it hides, the control shows;
 *  - while the banner shows, the page keeps room for it at its end and
 *    scrolls focused elements clear of it (WCAG 2.4.11);
 *  - a skip link to the banner (#cookiegate-skip, its title) is the first
 *    thing in the page's tab order while the banner shows.
 */
(function () {
  "use strict";
  var root = document.getElementById("cookiegate");
  // (window.cookiegate is the #cookiegate element until the API replaces it)
  if (!root || root.hasAttribute("data-cg-ready")) return;
  root.setAttribute("data-cg-ready", "");

  var optional = (root.getAttribute("data-cg-optional") || "").split(" ").filter(Boolean);
  var modal = document.getElementById("cookiegate-preferences");
  var dialog = modal ? modal.querySelector(".cg-dialog") : null;
  var listeners = [];
  var opener = null;
  var busy = false;
  var lastSubmitter = null;
  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select, textarea, " +
    "summary, [tabindex]:not([tabindex='-1'])";

  function readState() {
    try {
      var s = JSON.parse(root.getAttribute("data-cg-state") || "null");
      if (s && typeof s === "object") return {decided: !!s.decided, categories: s.categories || null};
    } catch (e) { /* fall through */ }
    return {decided: root.getAttribute("data-cg-mode") === "settings", categories: null};
  }

  var api = {
    state: readState(),
    open: function () { return open(null); },
    close: function () { close(); },
    onConsent: function (fn) {
      if (typeof fn === "function") listeners.push(fn);
      return function () { listeners = listeners.filter(function (f) { return f !== fn; }); };
    },
    decided: function (categories) {
      if (categories && typeof categories === "object") decided(categories, false);
    }
  };
  window.cookiegate = api;

  function each(list, fn) { Array.prototype.forEach.call(list, fn); }
  function byId(id) { return document.getElementById(id); }
  function isHidden(el) { return !el || !document.contains(el) || !!el.closest("[hidden]"); }

  function fields(form, submitter) {
    var params = new URLSearchParams();
    each(form.elements, function (el) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") return;
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) return;
      params.append(el.name, el.value);
    });
    if (submitter && submitter.name) params.append(submitter.name, submitter.value);
    return params;
  }

  function post(url, params) {
    return fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/x-www-form-urlencoded"},
      body: params.toString(),
      credentials: "same-origin",
      redirect: "manual"  // the 303 back to the page is not needed
    }).then(function (res) {
      if (res.type === "opaqueredirect" || res.ok) return res;
      throw new Error("cookiegate: HTTP " + res.status);
    });
  }

  function choice(params) {
    var action = params.get("action");
    var granted = params.getAll("category");
    var out = {};
    optional.forEach(function (name) {
      out[name] = action === "accept_all" || (action === "save" && granted.indexOf(name) !== -1);
    });
    return out;
  }

  function syncChecks(categories) {
    if (!categories) return;
    each(root.querySelectorAll("input[name='category']"), function (box) {
      box.checked = !!categories[box.value];
    });
  }

  function announce(text) {
    var live = root.querySelector("[data-cg-live]");
    if (!live || !text) return;
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  function decided(categories, withdrawn) {
    var copy = {};
    Object.keys(categories).forEach(function (k) { copy[k] = categories[k]; });
    api.state = {decided: true, categories: copy};
    syncChecks(copy);
    var focusWasInside = root.contains(document.activeElement);
    var banner = byId("cookiegate-banner");
    if (banner) banner.hidden = true;
    if (skip && skip.parentNode) skip.parentNode.removeChild(skip);
    keepRoom();
    var settings = byId("cookiegate-settings");
    if (settings) settings.hidden = false;
    var granted = Object.keys(copy).some(function (k) { return copy[k]; });
    each(root.querySelectorAll("[data-cg-form='withdraw']"), function (f) {
      f.hidden = f.hasAttribute("data-cg-quick-withdraw") ? !granted : false;
    });
    each(root.querySelectorAll("[data-cg-status]"), function (p) {
      p.textContent = p.getAttribute("data-cg-decided-text") || p.textContent;
    });
    close();
    var control = settings && settings.querySelector("[data-cg-open]");
    if (focusWasInside && control && isHidden(document.activeElement)) control.focus();
    announce(root.getAttribute("data-cg-saved"));
    var detail = {categories: copy};
    if (withdrawn) detail.withdrawn = true;
    document.dispatchEvent(new CustomEvent("cookiegate:consent", {detail: detail}));
    listeners.slice().forEach(function (fn) {
      try { fn(detail); } catch (e) { window.setTimeout(function () { throw e; }); }
    });
  }

  function applyTheme(theme) {
    each(document.querySelectorAll(".cg-root"), function (el) {
      el.classList.remove("cg-theme-light", "cg-theme-dark");
      if (theme === "light" || theme === "dark") el.classList.add("cg-theme-" + theme);
    });
    each(root.querySelectorAll("button[name='theme']"), function (b) {
      b.setAttribute("aria-pressed", String(b.value === (theme || "auto")));
    });
  }

  function nativeSubmit(form, submitter) {
    // fall back to the plain HTML form (the server redirects back)
    if (submitter && submitter.name) {
      var hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = submitter.name;
      hidden.value = submitter.value;
      form.appendChild(hidden);
    }
    HTMLFormElement.prototype.submit.call(form);
  }

  root.addEventListener("click", function (ev) {
    var target = ev.target.closest ? ev.target.closest("button, a") : null;
    if (!target || !root.contains(target)) return;
    if (target.type === "submit") lastSubmitter = target;
    if (target.hasAttribute("data-cg-close")) { ev.preventDefault(); close(); return; }
    if (!target.hasAttribute("data-cg-open")) return;
    if (ev.button || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;  // new tab
    ev.preventDefault();
    open(target);
  });

  root.addEventListener("submit", function (ev) {
    var form = ev.target;
    var kind = form.getAttribute("data-cg-form");
    if (!kind) return;
    ev.preventDefault();
    var submitter = ev.submitter || (lastSubmitter && lastSubmitter.form === form ? lastSubmitter : null);
    if (submitter && submitter.hasAttribute("data-cg-open")) { open(submitter); return; }
    if (busy) return;
    busy = true;
    var params = fields(form, submitter);
    form.setAttribute("aria-busy", "true");
    post(form.getAttribute("action"), params).then(function () {
      if (kind === "theme") applyTheme(params.get("theme"));
      else if (kind === "withdraw") decided(choice(new URLSearchParams("action=reject_all")), true);
      else decided(choice(params), false);
    }).catch(function () {
      nativeSubmit(form, submitter);
    }).then(function () {
      busy = false;
      form.removeAttribute("aria-busy");
    });
  });

  function loadPanel(slot) {
    // settings-only pages: take the panel from the preferences page
    var link = root.querySelector("a[data-cg-open]");
    if (!link) return Promise.reject(new Error("cookiegate: no preferences link"));
    return fetch(link.href, {credentials: "same-origin", headers: {Accept: "text/html"}})
      .then(function (res) {
        if (!res.ok) throw new Error("cookiegate: HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var panel = doc.querySelector("[data-cg-panel]");
        if (!panel) throw new Error("cookiegate: no preference panel");
        panel = document.importNode(panel, true);
        // the page's <h1>/<h2> become <h2>/<h3> in a dialog on the host's page
        each(panel.querySelectorAll("h1, h2"), function (h) {
          var n = document.createElement(h.tagName === "H1" ? "h2" : "h3");
          each(h.attributes, function (a) { n.setAttribute(a.name, a.value); });
          while (h.firstChild) n.appendChild(h.firstChild);
          h.parentNode.replaceChild(n, h);
        });
        slot.appendChild(panel);
        if (!api.state.categories) {
          var cats = {};
          each(slot.querySelectorAll("input[name='category']"), function (b) { cats[b.value] = b.checked; });
          api.state = {decided: api.state.decided, categories: cats};
        }
      });
  }

  function focusables() {
    return Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (el) {
      return !el.closest("[hidden]") && el.getClientRects().length > 0;
    });
  }

  function onKey(ev) {
    if (ev.key === "Escape" || ev.key === "Esc") { ev.preventDefault(); close(); return; }
    if (ev.key !== "Tab") return;
    var items = focusables();
    if (!items.length) { ev.preventDefault(); return; }
    var first = items[0], last = items[items.length - 1], active = document.activeElement;
    if (ev.shiftKey && (active === first || active === dialog || !dialog.contains(active))) {
      ev.preventDefault(); last.focus();
    } else if (!ev.shiftKey && (active === last || !dialog.contains(active))) {
      ev.preventDefault(); first.focus();
    }
  }

  function onFocusIn(ev) {
    if (modal && !modal.hidden && !dialog.contains(ev.target)) dialog.focus();
  }

  var opening = null;  // the open() under way (its panel is still loading)

  function open(from) {
    if (!modal || !dialog) return Promise.resolve(false);
    if (!modal.hidden) return Promise.resolve(true);
    if (opening) return opening;  // a second click while loading: one panel, not two
    opener = from || (document.activeElement !== document.body ? document.activeElement : null);
    var slot = modal.querySelector("[data-cg-slot]");
    var ready = slot.querySelector("[data-cg-panel]") ? Promise.resolve() : loadPanel(slot);
    opening = ready.then(function () {
      syncChecks(api.state.categories);  // show the saved choice, not an abandoned edit
      modal.hidden = false;
      document.addEventListener("keydown", onKey, true);
      document.addEventListener("focusin", onFocusIn, true);
      dialog.scrollTop = 0;
      dialog.focus();
      opening = null;
      return true;
    }, function () {
      opening = null;
      var link = root.querySelector("a[data-cg-open]");
      if (link) window.location.assign(link.href);
      return false;
    });
    return opening;
  }

  function close() {
    if (!modal || modal.hidden) return;
    modal.hidden = true;
    document.removeEventListener("keydown", onKey, true);
    document.removeEventListener("focusin", onFocusIn, true);
    syncChecks(api.state.categories);  // closing is not consenting: drop unsaved edits
    var back = opener;
    opener = null;
    if (isHidden(back)) back = byId("cookiegate-settings") && byId("cookiegate-settings").querySelector("[data-cg-open]");
    if (back && !isHidden(back)) back.focus();
  }

  // Room for the fixed banner (WCAG 2.4.11, focus not obscured): its height,
  // measured, in --cg-banner-space (the stylesheet reserves that much at the
  // end of the page and as scroll padding while the banner shows)
  function keepRoom() {
    var banner = byId("cookiegate-banner");
    var html = document.documentElement;
    var settings = byId("cookiegate-settings");
    if (settings && !settings.hidden) {  // the same room for the settings control
      var fixed = window.getComputedStyle(settings).position === "fixed";
      var top = settings.getBoundingClientRect().top;
      var room = fixed ? Math.max(0, Math.ceil(window.innerHeight - top)) : 0;
      html.style.setProperty("--cg-settings-space", room + "px");
    } else {
      html.style.removeProperty("--cg-settings-space");
    }
    if (!banner || banner.hidden) {
      html.style.removeProperty("--cg-banner-space");
      return;
    }
    if (window.getComputedStyle(banner).position !== "fixed") {
      html.style.setProperty("--cg-banner-space", "0px");  // in the flow: no overlap
      return;
    }
    var rect = banner.getBoundingClientRect();
    var space = Math.max(0, Math.ceil(window.innerHeight - rect.top));
    html.style.setProperty("--cg-banner-space", space + "px");
  }
  keepRoom();
  window.addEventListener("resize", keepRoom);
  if (window.ResizeObserver) {
    var watch = new ResizeObserver(keepRoom);  // also sees a control shown or hidden
    if (byId("cookiegate-banner")) watch.observe(byId("cookiegate-banner"));
    if (byId("cookiegate-settings")) watch.observe(byId("cookiegate-settings"));
  }

  // The banner is inserted at the end of the page, so a keyboard user would
  // reach it after every link of the page: a skip link, first in the page and
  // shown when focused, takes them to it (WCAG 2.4.1, 2.4.3). It goes with the
  // banner. (Without JavaScript the banner stays last in the tab order.)
  var skip = null;
  (function () {
    var banner = byId("cookiegate-banner");
    var title = byId("cg-banner-title");
    if (!banner || banner.hidden || !title || !document.body) return;
    skip = document.createElement("a");
    skip.id = "cookiegate-skip";
    skip.className = "cg-skip";
    skip.href = "#cookiegate-banner";
    skip.textContent = title.textContent;
    skip.setAttribute("lang", root.getAttribute("lang") || "");
    skip.setAttribute("dir", root.getAttribute("dir") || "auto");
    skip.addEventListener("click", function (ev) {
      ev.preventDefault();  // no #fragment in the address, no history entry
      if (!banner.hasAttribute("tabindex")) banner.setAttribute("tabindex", "-1");
      banner.focus();
    });
    document.body.insertBefore(skip, document.body.firstChild);
  })();

  if (modal) {
    var backdrop = modal.querySelector("[data-cg-backdrop]");
    if (backdrop) backdrop.addEventListener("click", function () { close(); });
  }
})();
