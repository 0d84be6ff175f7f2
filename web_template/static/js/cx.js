// cx: the pages' small runtime. Data shards are classic scripts that call cx.register(key, data) (JSONP), so the
// site works from file:// where fetching is refused; view state lives in location.hash; untrusted text (tokens,
// task strings) only ever reaches the page through textContent.
(function () {
  "use strict";
  const store = {};
  const waiting = {};
  const listeners = [];
  const root = document.documentElement.getAttribute("data-root") || "";

  function register(key, value) {
    store[key] = value;
    (waiting[key] || []).forEach((resolve) => resolve(value));
    delete waiting[key];
  }

  // Load a shard on demand by adding a script tag; resolves with its data.
  function load(key, path) {
    if (Object.prototype.hasOwnProperty.call(store, key)) return Promise.resolve(store[key]);
    return new Promise((resolve, reject) => {
      const first = !waiting[key];
      (waiting[key] = waiting[key] || []).push(resolve);
      if (!first) return;
      const s = document.createElement("script");
      s.src = root + path;
      s.onerror = () => { delete waiting[key]; reject(new Error("cannot load " + path)); };
      document.head.appendChild(s);
    });
  }

  function get(key) { return store[key]; }

  // Forget a loaded shard (large data the page has handed on, such as a weights file's twin).
  function drop(key) { delete store[key]; }

  // "#node=3.attn.v:17&k=64" <-> {node: "3.attn.v:17", k: "64"}
  function readState() {
    const out = {};
    location.hash.replace(/^#/, "").split("&").forEach((part) => {
      if (!part) return;
      const i = part.indexOf("=");
      const k = i < 0 ? part : part.slice(0, i);
      try { out[decodeURIComponent(k)] = i < 0 ? "" : decodeURIComponent(part.slice(i + 1)); } catch (e) { /* ignore bad escapes */ }
    });
    return out;
  }

  function encode(s) { return encodeURIComponent(s).replace(/%3A/g, ":"); }

  function setState(patch) {
    const state = Object.assign(readState(), patch);
    const hash = Object.keys(state).sort().filter((k) => state[k] !== null && state[k] !== undefined && state[k] !== "")
      .map((k) => encode(k) + "=" + encode(String(state[k]))).join("&");
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
    listeners.forEach((fn) => fn(readState()));
  }

  function onState(fn) { listeners.push(fn); }
  window.addEventListener("hashchange", () => listeners.forEach((fn) => fn(readState())));

  // el("a", {href: "x.html", class: "n"}, "text", child...): children that are strings become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === null || v === undefined || v === false) return;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    });
    children.flat().forEach((c) => { if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c))); });
    return e;
  }

  function fmt(x, digits) {
    if (x === null || x === undefined) return "–";
    if (Number.isInteger(x)) return x.toLocaleString("en-US");
    return Number(x).toFixed(digits === undefined ? 3 : digits);
  }

  // Token text as shown: newlines and tabs made visible.
  function tokenText(s) { return s.replace(/\n/g, "↵").replace(/\t/g, "→"); }

  // Run fn once the DOM is ready, for the element with this id, if the page has one.
  function mount(id, fn) {
    const go = () => { const node = document.getElementById(id); if (node) fn(node); };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go); else go();
  }

  window.cx = { register, load, get, drop, readState, setState, onState, el, fmt, tokenText, mount, root };
})();
