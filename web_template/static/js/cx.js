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

  // The URL hash's keys: what each holds (and which script reads it), its parse (the URL's text -> value; undefined
  // where malformed, so the page's default applies) and its format (value -> text; "" leaves the key out). Published
  // links use these spellings and the forms the pages write, keys in this order: "#k=64&node=3.attn.v:17",
  // "#ans=12%2C34&live=1&off=3.attn.v:17%2C0.mlp.post_act:5&prompt=x%20%3D%201" (a plain "," reads the same).
  const count = { // a non-negative integer: "64"
    parse: (s) => (/^\d+$/.test(s) && Number.isSafeInteger(+s) ? +s : undefined),
    format: (n) => (Number.isSafeInteger(n) && n >= 0 ? String(n) : "") };
  const HASH_KEYS = {
    ans: { // live panel: the answers' token ids when not the task's, "12,34" (live.js)
      parse: (s) => { const m = /^(\d+),(\d+)$/.exec(s); return m ? [+m[1], +m[2]] : undefined; },
      format: (ids) => ids.join(",") },
    channel: count, // model page: the residual channel shown (embed.js)
    example: { // node page: the selected activation example, "top2" or "bottom0" (heatmap.js)
      parse: (s) => (/^(top|bottom)\d+$/.test(s) ? s : undefined), format: String },
    k: count, // circuit page: the sweep stop shown, in nodes kept; absent: the whole circuit (graph.js, sweep.js)
    live: { // circuit page: the live panel is open, "1" (live.js)
      parse: (s) => (s === "1" ? true : undefined), format: (on) => (on ? "1" : "") },
    node: { // circuit page: the selected node's id (graph.js; node pages link to it)
      parse: (s) => s || undefined, format: String },
    off: { // live panel: the mean-ablated nodes' ids, comma-separated (graph.js, live.js)
      parse: (s) => { const ids = s.split(",").filter(Boolean); return ids.length ? ids : undefined; },
      format: (ids) => ids.join(",") },
    prompt: { parse: (s) => s, format: String }, // live panel: the prompt's text (live.js)
  };

  // The view state in location.hash, parsed: {node: "3.attn.v:17", k: 64}; keys absent, unknown or malformed in
  // the URL are left out.
  function readState() {
    const text = new Map();
    location.hash.replace(/^#/, "").split("&").forEach((part) => {
      if (!part) return;
      const i = part.indexOf("=");
      const k = i < 0 ? part : part.slice(0, i);
      try { text.set(decodeURIComponent(k), i < 0 ? "" : decodeURIComponent(part.slice(i + 1))); } catch (e) { /* ignore bad escapes */ }
    });
    const out = {};
    Object.entries(HASH_KEYS).forEach(([k, key]) => {
      const v = text.has(k) ? key.parse(text.get(k)) : undefined;
      if (v !== undefined) out[k] = v;
    });
    return out;
  }

  function encode(s) { return encodeURIComponent(s).replace(/%3A/g, ":"); }

  // Change the view state: patch holds declared keys only, valued as readState gives them (null removes one).
  function setState(patch) {
    const undeclared = Object.keys(patch).filter((k) => !Object.prototype.hasOwnProperty.call(HASH_KEYS, k));
    if (undeclared.length) throw new Error("not a URL hash key: " + undeclared.join(", "));
    const state = Object.assign(readState(), patch);
    const hash = Object.keys(HASH_KEYS).sort()
      .map((k) => [k, state[k] === null || state[k] === undefined ? "" : HASH_KEYS[k].format(state[k])])
      .filter(([, s]) => s !== "").map(([k, s]) => k + "=" + encode(s)).join("&");
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
