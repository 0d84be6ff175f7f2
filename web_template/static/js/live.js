// The live panel: the circuit and the full model run in the page (ONNX Runtime Web, loaded when the panel opens) on a
// prompt the reader edits or picks; it shows both models' probabilities of the two answers and every circuit node's
// activation on every token. A click on a graph node toggles it between kept and mean-ablated. State in the URL
// (cx.js's HASH_KEYS): live, prompt, off (ablated node ids), ans (answer token ids when not the task's).
(function () {
  "use strict";
  const HEAT = { row: 14, col: 18, label: 150, head: 6 };
  const pos = d3.interpolateRgb("#ffffff", "#2166ac"), neg = d3.interpolateRgb("#ffffff", "#b2182b");
  const LUT = d3.range(201).map((i) => { const q = i / 100 - 1, c = d3.rgb(q >= 0 ? pos(q * 0.9) : neg(-q * 0.9)); return [c.r, c.g, c.b]; });
  const OFF = [228, 228, 228];
  const cells = document.createElement("canvas"); // the heatmap at one pixel per cell

  // Let the page handle input and paint between the long steps of loading and running (one thread, no worker).
  function breathe() { return new Promise((resolve) => setTimeout(resolve, 0)); }

  function escapeText(s) { return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/\r/g, "\\r"); }
  function unescapeText(s) { return s.replace(/\\(.)/g, (_, c) => ({ n: "\n", t: "\t", r: "\r" }[c] || c)); }
  function codepoint(c) { return "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0"); }

  // The panel's DOM, built once.
  function build(section) {
    const $ = {};
    $.prompt = cx.el("textarea", { id: "live-prompt", rows: 5, spellcheck: "false", "aria-label": "prompt" });
    $.ready = cx.el("select", { id: "live-ready", "aria-label": "ready prompts" });
    $.a = cx.el("input", { id: "live-answer-a", size: 10, "aria-label": "answer A" });
    $.b = cx.el("input", { id: "live-answer-b", size: 10, "aria-label": "answer B" });
    $.reset = cx.el("button", { id: "live-keep-all", type: "button", text: "keep every node" });
    $.status = cx.el("p", { id: "live-status", class: "note", role: "status" });
    $.message = cx.el("p", { id: "live-message", class: "message", role: "alert", hidden: true });
    $.warning = cx.el("p", { id: "live-warning", class: "warning", hidden: true });
    $.probs = cx.el("table", { id: "live-probs", class: "live-probs" });
    $.build = cx.el("p", { id: "live-build", class: "note", hidden: true });
    $.tokens = cx.el("div", { id: "live-tokens", class: "live-tokens" });
    $.canvas = cx.el("canvas", { id: "live-heat" });
    $.readout = cx.el("p", { id: "live-readout", class: "note", text: "Hover the heatmap for a value; click a row's label to toggle its node." });
    $.results = cx.el("div", { class: "live-results" }, $.probs, $.build, cx.el("h3", { text: "tokens" }), $.tokens,
      cx.el("h3", { text: "circuit node activations (rows) on every token (columns)" }),
      cx.el("p", { class: "note", text: "Color: activation over the node's largest |activation| on pretraining text " +
        "(blue +, red −); gray rows: mean-ablated nodes; boxed: the last token, where the answer is predicted." }),
      cx.el("div", { class: "live-heat-wrap" }, $.canvas), $.readout);
    const body = cx.el("div", { id: "live-body", class: "live-body" },
      cx.el("div", { class: "live-inputs" }, cx.el("label", {}, "ready prompts ", $.ready),
        cx.el("label", { class: "live-prompt-label" }, "prompt (the models predict the token after it)", $.prompt),
        cx.el("p", { class: "live-answers" }, "answers ", $.a, " vs ", $.b, " ", $.reset,
          cx.el("span", { class: "note", text: " (one token each; write a newline as \\n, a tab as \\t)" }))),
      $.status, $.message, $.warning, $.results);
    section.append(body);
    return $;
  }

  // The panel's inputs and running state, shared by the functions below; `out` is window.cxLive, for tests and benches.
  function panelState(data, tok, $) {
    const nodes = data.nodes;
    return { data, tok, $, nodes, index: new Map(nodes.map((n, j) => [n, j])), defaults: data.answers || [0, 1],
      out: { version: 0, pending: null, busy: null, shown: {}, fullCache: new Map(), tok },
      fullMode: "loading", // the full model's numbers: "loading", "live" (in the page), "build" (too large: the build's)
      tokensShown: null, loaded: null };
  }

  // The answers in the URL state when both are in the vocabulary, else the task's.
  function answersOf(live, state) {
    const a = state.ans, V = live.data.vocab_size;
    return a && a[0] < V && a[1] < V ? a : live.defaults;
  }

  // The circuit's nodes that the URL state ablates.
  function offOf(live, state) { return new Set((state.off || []).filter((id) => live.index.has(id))); }

  // The prompt in the URL state ("" when none).
  function promptOf(state) { return state.prompt === undefined ? "" : state.prompt; }

  // The answers as the URL keeps them: nothing for the task's own.
  function ansParam(live, a) { return a[0] === live.defaults[0] && a[1] === live.defaults[1] ? null : a; }

  // The ready-prompts picker's options.
  function fillReady(live) {
    const { data, tok, $ } = live;
    data.ready.forEach((r, i) => {
      const head = r.kind === "example" ? `task example ${i + 1}, answer ${JSON.stringify(tok.decode(r.answers[0]))} (${r.role})` : "adversarial";
      const tail = r.prompt.length > 48 ? "…" + r.prompt.slice(-48) : r.prompt;
      $.ready.append(cx.el("option", { value: i, text: `${head}: ${cx.tokenText(tail)}` }));
    });
    $.ready.prepend(cx.el("option", { value: "", text: data.ready.length ? "(pick one)" : "(none for this task)" }));
  }

  // The prompt box and the ready-prompts picker write the prompt (and a ready prompt's answers) to the URL.
  function bindPrompt(live) {
    const { data, defaults, $ } = live;
    const wellFormed = (t) => (t.toWellFormed ? t.toWellFormed() : t); // a lone surrogate cannot go in a URL
    $.prompt.addEventListener("input", () => cx.setState({ prompt: wellFormed($.prompt.value), live: true }));
    $.ready.addEventListener("change", () => {
      const r = data.ready[+$.ready.value];
      if (!r) return;
      const same = new Set(r.answers).size === 2 && r.answers.every((a) => defaults.includes(a));
      cx.setState({ prompt: r.prompt, ans: same ? null : ansParam(live, r.answers), live: true });
    });
  }

  // The answer boxes write two one-token answers to the URL, or show why they cannot.
  function bindAnswers(live) {
    const { tok, $ } = live;
    const onAnswer = () => {
      const ids = [$.a, $.b].map((x) => tok.encode(unescapeText(x.value)));
      if (ids.every((t) => t.length === 1)) cx.setState({ ans: ansParam(live, [ids[0][0], ids[1][0]]) });
      else render(live, cx.readState(), ids);
    };
    $.a.addEventListener("change", onAnswer);
    $.b.addEventListener("change", onAnswer);
  }

  // Toggle one node between kept and mean-ablated in the URL state.
  function toggle(live, id) {
    const off = offOf(live, cx.readState());
    if (off.has(id)) off.delete(id); else off.add(id);
    cx.setState({ off: Array.from(off).sort((x, y) => live.index.get(x) - live.index.get(y)), live: true });
  }

  // Graph clicks (without a modifier key) and the keep-all button change which nodes are ablated.
  function bindToggles(live) {
    live.out.toggle = (id) => toggle(live, id);
    cx.nodeAction = (id, event) => {
      if (event && (event.shiftKey || event.altKey || event.metaKey || event.ctrlKey) || !live.index.has(id)) return false;
      toggle(live, id);
      return true;
    };
    live.$.reset.addEventListener("click", () => cx.setState({ off: null }));
  }

  // Inputs of one update from the URL state: token ids, answers, mask; or the message that stops it.
  function inputs(live, state, badAnswers) {
    const { data, tok } = live;
    const prompt = promptOf(state), answers = answersOf(live, state), off = offOf(live, state);
    const x = { prompt, answers, off, ids: tok.encode(prompt), error: null, warning: null };
    if (badAnswers) {
      const which = badAnswers.map((t, i) => (t.length === 1 ? null : `answer ${"AB"[i]} is ${t.length} tokens`)).filter(Boolean);
      x.error = `Each answer must be exactly one token: ${which.join(", ")}. Pick a token of the vocabulary.`;
    } else if (!prompt) x.error = "The prompt is empty: type some Python (or pick a ready prompt), and the models predict the token after it.";
    else if (x.ids.length > data.n_ctx) {
      x.error = `The prompt is ${x.ids.length} tokens, longer than this model's context of ${data.n_ctx} tokens: ` +
        `shorten it by ${x.ids.length - data.n_ctx} tokens.`;
    }
    const unseen = Array.from(new Set(Array.from(prompt))).filter((c) => !tok.chars.has(c));
    if (unseen.length) {
      x.warning = `Not in the model's training text: ${unseen.slice(0, 8).map((c) => `“${cx.tokenText(c)}” (${codepoint(c)})`).join(", ")}` +
        `${unseen.length > 8 ? ` and ${unseen.length - 8} more` : ""}. The model never saw these characters, so its output on them means little.`;
    }
    return x;
  }

  // The full model's cache key: token ids and answers.
  function fullKey(x) { return x.ids.join(",") + "|" + x.answers.join(","); }

  // The prompt's token ids as the models' input tensor.
  function tokens(x) { return ["int64", BigInt64Array.from(x.ids, BigInt), [1, x.ids.length]]; }

  // The full model's logits of the two answers at the last token (the last prompt's are cached).
  async function full(live, x) {
    const key = fullKey(x), cache = live.out.fullCache;
    if (!cache.has(key)) {
      const T = x.ids.length;
      const [logits, dims] = (await cx.runtime.run("full", { tokens: tokens(x) })).logits;
      const V = dims[2], last = logits.subarray((T - 1) * V, T * V);
      cache.clear();
      cache.set(key, [last[x.answers[0]], last[x.answers[1]]]);
    }
    return cache.get(key);
  }

  // Run the circuit (and the full model, when live) on one update's inputs.
  async function compute(live, x) {
    const T = x.ids.length, N = live.nodes.length;
    const mask = Float32Array.from(live.nodes, (n) => (x.off.has(n) ? 0 : 1));
    const t0 = performance.now();
    const r = await cx.runtime.run("circuit", { tokens: tokens(x), mask: ["float32", mask, [N]],
      answers: ["int64", BigInt64Array.from(x.answers, BigInt), [1, 2]] });
    const logits = Array.from(r.logits[0].subarray((T - 1) * 2, T * 2));
    const fullLogits = live.fullMode !== "live" ? null : live.out.fullCache.has(fullKey(x)) ? await full(live, x) :
      await breathe().then(() => full(live, x));
    return { logits, fullLogits, acts: r.acts[0], T, N, run_ms: performance.now() - t0 };
  }

  // The full model's p(A) on this prompt from the build (ready prompts only), or null.
  function fullFromBuild(live, x) {
    const r = live.data.ready.find((e) => e.prompt === x.prompt && e.p_full !== null && new Set(e.answers).size === 2 &&
      e.answers.every((a) => x.answers.includes(a)) && x.answers[0] !== x.answers[1]);
    return r ? (r.answers[0] === x.answers[0] ? r.p_full : 1 - r.p_full) : null;
  }

  // Probabilities of the two answers from their logits.
  function pair(l) { const p = 1 / (1 + Math.exp(l[1] - l[0])); return [p, 1 - p]; }

  // The full model's row: live, loading, or (too large for the page) the build's number where it has one.
  function fullRow(live, x, res) {
    if (live.fullMode !== "build") return ["full", res.fullLogits ? "full model" : "full model (loading…)", res.fullLogits && pair(res.fullLogits), res.fullLogits];
    const p = fullFromBuild(live, x), mb = (live.data.models.full.live_bytes / 1e6).toFixed(0);
    const label = `full model (${mb} MB: too large for the page; ${p === null ? "no build-time number for this prompt" : "from the build"})`;
    return ["full", label, p === null ? null : [p, 1 - p], null]; // the build keeps p(A), not the logits
  }

  // The answer rows: each model's probabilities of the two answers, and the build's numbers for a task example.
  function showProbs(live, x, res) {
    const { data, tok, nodes, defaults, $ } = live;
    const names = x.answers.map((a, i) => JSON.stringify(tok.decode(a)) + (a === defaults[i] && data.labels[i] ? `, ${data.labels[i].role}` : ""));
    const kept = nodes.length - x.off.size;
    const rows = [["circuit", `circuit (${kept} of ${nodes.length} nodes kept)`, pair(res.logits), res.logits], fullRow(live, x, res)];
    $.probs.replaceChildren(cx.el("thead", {}, cx.el("tr", {}, cx.el("th", { text: "" }), cx.el("th", { text: `p(A = ${names[0]})` }),
      cx.el("th", { text: `p(B = ${names[1]})` }), cx.el("th", { text: "logit A − B" }), cx.el("th", { text: "" }))));
    const body = cx.el("tbody");
    rows.forEach(([key, label, p, l]) => {
      const bar = cx.el("span", { class: "bar" });
      bar.style.width = p ? (100 * p[0]).toFixed(1) + "%" : "0";
      body.append(cx.el("tr", { "data-model": key }, cx.el("th", { text: label }),
        cx.el("td", { id: `live-p-${key}-a`, text: p ? p[0].toFixed(4) : "…" }),
        cx.el("td", { id: `live-p-${key}-b`, text: p ? p[1].toFixed(4) : "…" }),
        cx.el("td", { text: l ? (l[0] - l[1]).toFixed(3) : p ? "–" : "…" }), cx.el("td", { class: "barcell" }, bar)));
    });
    $.probs.append(body);
    const r = data.ready.find((e) => e.kind === "example" && e.prompt === x.prompt && e.answers[0] === x.answers[0] && e.answers[1] === x.answers[1]);
    $.build.hidden = !r || x.off.size > 0;
    if (r) {
      $.build.textContent = `At build time (PyTorch) this example gave p(A) ${cx.fmt(r.p_full, 3)} in the full model ` +
        `and ${cx.fmt(r.p_circuit, 3)} in the circuit.`;
    }
  }

  // The prompt's tokens, the last one marked.
  function showTokens(live, x) {
    live.tokensShown = x.ids.join();
    live.$.tokens.replaceChildren(...x.ids.map((id, t) => cx.el("span", { class: t === x.ids.length - 1 ? "t last" : "t", "data-t": t,
      title: `token ${t}: id ${id}`, text: cx.tokenText(live.tok.decode(id)) })));
  }

  // The heatmap: one pixel per (node, token) in an ImageData, scaled up without smoothing (fast for n_ctx tokens),
  // then the node labels and a box around the last token.
  function heat(live, x, res) {
    const { data, nodes } = live;
    const { T, N, acts } = res, c = live.$.canvas, dpr = window.devicePixelRatio || 1;
    const W = HEAT.label + T * HEAT.col, H = HEAT.head + N * HEAT.row;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
      c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); c.style.width = W + "px"; c.style.height = H + "px";
    }
    if (!N) return; // a circuit without nodes: nothing to draw
    const img = new ImageData(T, N), px = img.data;
    for (let j = 0; j < N; j++) {
      const top = data.scales[j] || 1, off = x.off.has(nodes[j]); // scale: the node's max |activation| on pretraining text
      for (let t = 0; t < T; t++) {
        const rgb = off ? OFF : LUT[Math.round((Math.max(-1, Math.min(1, acts[t * N + j] / top)) + 1) * 100)];
        const k = 4 * (j * T + t);
        px[k] = rgb[0]; px[k + 1] = rgb[1]; px[k + 2] = rgb[2]; px[k + 3] = 255;
      }
    }
    cells.width = T; cells.height = N;
    cells.getContext("2d").putImageData(img, 0, 0);
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.imageSmoothingEnabled = false;
    g.drawImage(cells, HEAT.label, HEAT.head, T * HEAT.col, N * HEAT.row);
    g.font = "11px ui-monospace, monospace";
    g.textBaseline = "middle";
    for (let j = 0; j < N; j++) {
      const off = x.off.has(nodes[j]);
      g.fillStyle = off ? "#999" : "#222";
      g.fillText((off ? "⊘ " : "") + nodes[j], 2, HEAT.head + j * HEAT.row + HEAT.row / 2);
    }
    g.strokeStyle = "#333";
    g.strokeRect(HEAT.label + (T - 1) * HEAT.col - 0.5, HEAT.head - 1, HEAT.col, N * HEAT.row + 1);
  }

  // The heatmap cell under the pointer: {j: node row, t: token column, or null over the labels}, or null.
  function cellAt(live, event) {
    const r = live.$.canvas.getBoundingClientRect(), res = live.out.result;
    if (!res) return null;
    const px = event.clientX - r.left, py = event.clientY - r.top;
    const j = Math.floor((py - HEAT.head) / HEAT.row), t = Math.floor((px - HEAT.label) / HEAT.col);
    if (j < 0 || j >= res.N) return null;
    return { j, t: px < HEAT.label ? null : t < res.T ? t : null };
  }

  // Hovering the heatmap reads out a cell's value and marks its token; a click on a row's label toggles its node.
  function bindHeatmap(live) {
    const { nodes, tok, out, $ } = live;
    $.canvas.addEventListener("mousemove", (event) => {
      const cell = cellAt(live, event), res = out.result;
      $.tokens.querySelectorAll(".t.hover").forEach((e) => e.classList.remove("hover"));
      if (!cell || cell.t === null) return;
      const v = res.acts[cell.t * res.N + cell.j], id = nodes[cell.j];
      $.readout.textContent = `${id} on token ${cell.t} “${cx.tokenText(tok.decode(out.shown.ids[cell.t]))}”: ${v.toFixed(4)}` +
        (out.shown.off.has(id) ? " (mean-ablated: its mean)" : "");
      const span = $.tokens.querySelector(`.t[data-t="${cell.t}"]`);
      if (span) span.classList.add("hover");
    });
    $.canvas.addEventListener("click", (event) => {
      const cell = cellAt(live, event);
      if (cell && cell.t === null) toggle(live, nodes[cell.j]);
    });
  }

  // Show a message that stops the update and mark the last results stale.
  function fail(live, text) {
    live.$.message.textContent = text;
    live.$.message.hidden = false;
    live.$.results.classList.add("stale");
  }

  // The status line: what is loaded and how long the last update took.
  function showStatus(live) {
    const { out, fullMode } = live;
    live.$.status.textContent = fullMode === "loading" ? "circuit ready · loading the full model…" :
      `ready · ${fullMode === "live" ? "models" : "circuit"} loaded in ${(out.session_ms / 1000).toFixed(2)} s · last update ${out.last_ms.toFixed(0)} ms`;
  }

  // One update: the latest state wins; runs never overlap (a session runs one call at a time).
  async function update(live, state, badAnswers) {
    const { tok, out, $ } = live;
    const x = inputs(live, state, badAnswers);
    $.warning.hidden = !x.warning;
    $.warning.textContent = x.warning || "";
    if (document.activeElement !== $.prompt && $.prompt.value !== x.prompt) $.prompt.value = x.prompt;
    [$.a, $.b].forEach((el, i) => { if (document.activeElement !== el && !badAnswers) el.value = escapeText(tok.decode(x.answers[i])); });
    if (x.error) { fail(live, x.error); out.shown = x; out.result = null; out.version++; return; }
    const t0 = performance.now();
    const res = await compute(live, x);
    const t1 = performance.now();
    if (!out.result) await breathe(); // the first results: let the page breathe after the warm-up runs
    $.message.hidden = true;
    $.results.classList.remove("stale");
    showProbs(live, x, res);
    if (live.tokensShown !== x.ids.join()) showTokens(live, x);
    heat(live, x, res);
    out.shown = x;
    out.result = res;
    out.last_ms = performance.now() - t0;
    out.phases = { tokenize_run: t1 - t0, draw: performance.now() - t1 };
    out.version++;
    showStatus(live);
  }

  // Queue an update for this state; resolves once the queue is drained.
  function render(live, state, badAnswers) {
    const out = live.out;
    out.pending = [state, badAnswers];
    if (!out.busy) {
      out.busy = (async () => {
        while (out.pending) {
          const [s, b] = out.pending;
          out.pending = null;
          try { await update(live, s, b); } catch (e) { fail(live, "The live model failed on this input: " + (e && e.message ? e.message : e)); out.version++; }
        }
        out.busy = null;
      })();
    }
    return out.busy;
  }

  // The circuit first (its results show while the full model loads), then the full model; a pause between the
  // steps keeps the page responsive.
  async function start(live) {
    const { data, out, $ } = live;
    const t0 = performance.now();
    $.status.textContent = "loading ONNX Runtime Web and the circuit…";
    await breathe(); // the status paints first
    await cx.runtime.session("circuit", data.models.circuit);
    out.circuit_ms = performance.now() - t0;
    cx.onState((s) => render(live, s));
    const state = cx.readState();
    if (state.prompt === undefined && data.ready.length) cx.setState({ prompt: data.ready[0].prompt, live: true });
    else render(live, state);
    while (out.busy) await out.busy;
    await breathe();
    if (data.models.full.fits) {
      await cx.runtime.session("full", data.models.full);
      live.fullMode = "live";
    } else live.fullMode = "build";
    await cx.runtime.release();
    out.session_ms = performance.now() - t0;
    await breathe();
    render(live, cx.readState());
  }

  // Wire the panel's controls to the URL state; returns the function that loads the models and draws the first update.
  function setup(data, tok, $) {
    const live = panelState(data, tok, $);
    window.cxLive = live.out;
    fillReady(live);
    bindPrompt(live);
    bindAnswers(live);
    bindToggles(live);
    bindHeatmap(live);
    // Resolves once both models are loaded and the latest update is drawn.
    live.out.idle = async () => { await live.loaded; while (live.out.busy) await live.out.busy; };
    return () => (live.loaded = start(live));
  }

  cx.mount("live", (section) => {
    const open = section.querySelector("#live-open");
    let opened = false;
    async function openPanel() {
      if (opened) return;
      opened = true;
      open.hidden = true;
      const $ = build(section);
      try {
        const data = await cx.load(section.dataset.key, section.dataset.path);
        if (!data.models) throw new Error("this site was built without ONNX models (circexport build --no-onnx), so nothing can run here");
        if (!data.models.circuit.fits) {
          throw new Error(`this circuit's model takes ${(data.models.circuit.live_bytes / 1e6).toFixed(0)} MB once its weights are ` +
            `rebuilt, over this site's budget of ${(data.models.budget / 1e6).toFixed(0)} MB for the page (circexport build ` +
            "--live-budget). The task examples above show its numbers from the build; the node pages show how to run it in Python.");
        }
        const shard = await cx.load(data.tokenizer.key, data.tokenizer.path);
        if (shard.unsupported) throw new Error(`the run's tokenizer cannot be reproduced in the page: ${shard.unsupported}`);
        const tok = cx.bpe.fromShard(shard);
        tok.chars = new Set(Array.from(shard.chars));
        if (!window.WebAssembly) throw new Error("this browser has no WebAssembly");
        await setup(data, tok, $)();
      } catch (e) {
        $.status.textContent = "";
        $.message.textContent = "The live panel could not start: " + (e && e.message ? e.message : e);
        $.message.hidden = false;
        $.results.hidden = true;
      }
    }
    open.addEventListener("click", () => { cx.setState({ live: true }); openPanel(); });
    section.cxOpen = openPanel;
    const s = cx.readState();
    if (s.live || s.prompt !== undefined || s.off) setTimeout(openPanel, 0); // a shared link: open after the page painted
  });
})();
