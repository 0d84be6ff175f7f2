// The live panel: the circuit and the full model run in the page (ONNX Runtime Web, loaded when the panel opens) on a
// prompt the reader edits or picks; it shows both models' probabilities of the two answers and every circuit node's
// activation on every token. A click on a graph node toggles it between kept and mean-ablated. State in the URL:
// live=1, prompt, off (ablated node ids), ans (answer token ids when not the task's).
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

  function setup(section, data, tok, $) {
    const nodes = data.nodes, index = new Map(nodes.map((n, j) => [n, j]));
    const defaults = data.answers || [0, 1];
    const out = { version: 0, pending: null, busy: null, shown: {}, fullCache: new Map(), tok };
    let fullMode = "loading"; // the full model's numbers: "loading", "live" (in the page), "build" (too large: the build's)
    window.cxLive = out;

    data.ready.forEach((r, i) => {
      const head = r.kind === "example" ? `task example ${i + 1}, answer ${JSON.stringify(tok.decode(r.answers[0]))} (${r.role})` : "adversarial";
      const tail = r.prompt.length > 48 ? "…" + r.prompt.slice(-48) : r.prompt;
      $.ready.append(cx.el("option", { value: i, text: `${head}: ${cx.tokenText(tail)}` }));
    });
    $.ready.prepend(cx.el("option", { value: "", text: data.ready.length ? "(pick one)" : "(none for this task)" }));

    function answersOf(state) {
      const m = /^(\d+),(\d+)$/.exec(state.ans || "");
      return m && +m[1] < data.vocab_size && +m[2] < data.vocab_size ? [+m[1], +m[2]] : defaults;
    }
    function offOf(state) { return new Set((state.off || "").split(",").filter((id) => index.has(id))); }
    function promptOf(state) { return state.prompt === undefined ? "" : state.prompt; }
    function ansParam(a) { return a[0] === defaults[0] && a[1] === defaults[1] ? null : a.join(","); }

    const wellFormed = (t) => (t.toWellFormed ? t.toWellFormed() : t); // a lone surrogate cannot go in a URL
    $.prompt.addEventListener("input", () => cx.setState({ prompt: wellFormed($.prompt.value), live: 1 }));
    $.ready.addEventListener("change", () => {
      const r = data.ready[+$.ready.value];
      if (!r) return;
      const same = new Set(r.answers).size === 2 && r.answers.every((a) => defaults.includes(a));
      cx.setState({ prompt: r.prompt, ans: same ? null : ansParam(r.answers), live: 1 });
    });
    const onAnswer = () => {
      const ids = [$.a, $.b].map((x) => tok.encode(unescapeText(x.value)));
      if (ids.every((t) => t.length === 1)) cx.setState({ ans: ansParam([ids[0][0], ids[1][0]]) });
      else render(cx.readState(), ids);
    };
    $.a.addEventListener("change", onAnswer);
    $.b.addEventListener("change", onAnswer);
    $.reset.addEventListener("click", () => cx.setState({ off: null }));

    function toggle(id) {
      const off = offOf(cx.readState());
      if (off.has(id)) off.delete(id); else off.add(id);
      const ids = Array.from(off).sort((x, y) => index.get(x) - index.get(y));
      cx.setState({ off: ids.length ? ids.join(",") : null, live: 1 });
    }
    out.toggle = toggle;
    cx.nodeAction = (id, event) => {
      if (event && (event.shiftKey || event.altKey || event.metaKey || event.ctrlKey) || !index.has(id)) return false;
      toggle(id);
      return true;
    };

    // Inputs of one update from the URL state: token ids, answers, mask; or the message that stops it.
    function inputs(state, badAnswers) {
      const prompt = promptOf(state), answers = answersOf(state), off = offOf(state);
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

    function fullKey(x) { return x.ids.join(",") + "|" + x.answers.join(","); }

    function tokens(x) { return ["int64", BigInt64Array.from(x.ids, BigInt), [1, x.ids.length]]; }

    async function full(x) {
      const key = fullKey(x);
      if (!out.fullCache.has(key)) {
        const T = x.ids.length;
        const [logits, dims] = (await cx.runtime.run("full", { tokens: tokens(x) })).logits;
        const V = dims[2], last = logits.subarray((T - 1) * V, T * V);
        out.fullCache.clear();
        out.fullCache.set(key, [last[x.answers[0]], last[x.answers[1]]]);
      }
      return out.fullCache.get(key);
    }

    async function compute(x) {
      const T = x.ids.length, N = nodes.length;
      const mask = Float32Array.from(nodes, (n) => (x.off.has(n) ? 0 : 1));
      const t0 = performance.now();
      const r = await cx.runtime.run("circuit", { tokens: tokens(x), mask: ["float32", mask, [N]],
        answers: ["int64", BigInt64Array.from(x.answers, BigInt), [1, 2]] });
      const logits = Array.from(r.logits[0].subarray((T - 1) * 2, T * 2));
      const fullLogits = fullMode !== "live" ? null : out.fullCache.has(fullKey(x)) ? await full(x) : await breathe().then(() => full(x));
      return { logits, fullLogits, acts: r.acts[0], T, N, run_ms: performance.now() - t0 };
    }

    // The full model's p(A) on this prompt from the build (ready prompts only), or null.
    function fullFromBuild(x) {
      const r = data.ready.find((e) => e.prompt === x.prompt && e.p_full !== null && new Set(e.answers).size === 2 &&
        e.answers.every((a) => x.answers.includes(a)) && x.answers[0] !== x.answers[1]);
      return r ? (r.answers[0] === x.answers[0] ? r.p_full : 1 - r.p_full) : null;
    }

    function pair(l) { const p = 1 / (1 + Math.exp(l[1] - l[0])); return [p, 1 - p]; }

    // The full model's row: live, loading, or (too large for the page) the build's number where it has one.
    function fullRow(x, res) {
      if (fullMode !== "build") return ["full", res.fullLogits ? "full model" : "full model (loading…)", res.fullLogits && pair(res.fullLogits), res.fullLogits];
      const p = fullFromBuild(x), mb = (data.models.full.live_bytes / 1e6).toFixed(0);
      const label = `full model (${mb} MB: too large for the page; ${p === null ? "no build-time number for this prompt" : "from the build"})`;
      return ["full", label, p === null ? null : [p, 1 - p], null]; // the build keeps p(A), not the logits
    }

    function showProbs(x, res) {
      const names = x.answers.map((a, i) => JSON.stringify(tok.decode(a)) + (a === defaults[i] && data.labels[i] ? `, ${data.labels[i].role}` : ""));
      const kept = nodes.length - x.off.size;
      const rows = [["circuit", `circuit (${kept} of ${nodes.length} nodes kept)`, pair(res.logits), res.logits], fullRow(x, res)];
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

    let tokensShown = null;
    function showTokens(x) {
      tokensShown = x.ids.join();
      $.tokens.replaceChildren(...x.ids.map((id, t) => cx.el("span", { class: t === x.ids.length - 1 ? "t last" : "t", "data-t": t,
        title: `token ${t}: id ${id}`, text: cx.tokenText(tok.decode(id)) })));
    }

    // The heatmap: one pixel per (node, token) in an ImageData, scaled up without smoothing (fast for n_ctx tokens),
    // then the node labels and a box around the last token.
    function heat(x, res) {
      const { T, N, acts } = res, c = $.canvas, dpr = window.devicePixelRatio || 1;
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

    function cellAt(event) {
      const r = $.canvas.getBoundingClientRect(), res = out.result;
      if (!res) return null;
      const px = event.clientX - r.left, py = event.clientY - r.top;
      const j = Math.floor((py - HEAT.head) / HEAT.row), t = Math.floor((px - HEAT.label) / HEAT.col);
      if (j < 0 || j >= res.N) return null;
      return { j, t: px < HEAT.label ? null : t < res.T ? t : null };
    }
    $.canvas.addEventListener("mousemove", (event) => {
      const cell = cellAt(event), res = out.result;
      $.tokens.querySelectorAll(".t.hover").forEach((e) => e.classList.remove("hover"));
      if (!cell || cell.t === null) return;
      const v = res.acts[cell.t * res.N + cell.j], id = nodes[cell.j];
      $.readout.textContent = `${id} on token ${cell.t} “${cx.tokenText(tok.decode(out.shown.ids[cell.t]))}”: ${v.toFixed(4)}` +
        (out.shown.off.has(id) ? " (mean-ablated: its mean)" : "");
      const span = $.tokens.querySelector(`.t[data-t="${cell.t}"]`);
      if (span) span.classList.add("hover");
    });
    $.canvas.addEventListener("click", (event) => {
      const cell = cellAt(event);
      if (cell && cell.t === null) toggle(nodes[cell.j]);
    });

    function fail(text) {
      $.message.textContent = text;
      $.message.hidden = false;
      $.results.classList.add("stale");
    }

    // One update: the latest state wins; runs never overlap (a session runs one call at a time).
    async function update(state, badAnswers) {
      const x = inputs(state, badAnswers);
      $.warning.hidden = !x.warning;
      $.warning.textContent = x.warning || "";
      if (document.activeElement !== $.prompt && $.prompt.value !== x.prompt) $.prompt.value = x.prompt;
      [$.a, $.b].forEach((el, i) => { if (document.activeElement !== el && !badAnswers) el.value = escapeText(tok.decode(x.answers[i])); });
      if (x.error) { fail(x.error); out.shown = x; out.result = null; out.version++; return; }
      const t0 = performance.now();
      const res = await compute(x);
      const t1 = performance.now();
      if (!out.result) await breathe(); // the first results: let the page breathe after the warm-up runs
      $.message.hidden = true;
      $.results.classList.remove("stale");
      showProbs(x, res);
      if (tokensShown !== x.ids.join()) showTokens(x);
      heat(x, res);
      out.shown = x;
      out.result = res;
      out.last_ms = performance.now() - t0;
      out.phases = { tokenize_run: t1 - t0, draw: performance.now() - t1 };
      out.version++;
      $.status.textContent = fullMode === "loading" ? "circuit ready · loading the full model…" :
        `ready · ${fullMode === "live" ? "models" : "circuit"} loaded in ${(out.session_ms / 1000).toFixed(2)} s · last update ${out.last_ms.toFixed(0)} ms`;
    }

    function render(state, badAnswers) {
      out.pending = [state, badAnswers];
      if (!out.busy) {
        out.busy = (async () => {
          while (out.pending) {
            const [s, b] = out.pending;
            out.pending = null;
            try { await update(s, b); } catch (e) { fail("The live model failed on this input: " + (e && e.message ? e.message : e)); out.version++; }
          }
          out.busy = null;
        })();
      }
      return out.busy;
    }
    let loaded = null;
    // Resolves once both models are loaded and the latest update is drawn.
    out.idle = async () => { await loaded; while (out.busy) await out.busy; };

    // The circuit first (its results show while the full model loads), then the full model; a pause between the
    // steps keeps the page responsive.
    async function start() {
      const t0 = performance.now();
      $.status.textContent = "loading ONNX Runtime Web and the circuit…";
      await breathe(); // the status paints first
      await cx.runtime.session("circuit", data.models.circuit);
      out.circuit_ms = performance.now() - t0;
      cx.onState((s) => render(s));
      const state = cx.readState();
      if (state.prompt === undefined && data.ready.length) cx.setState({ prompt: data.ready[0].prompt, live: 1 });
      else render(state);
      while (out.busy) await out.busy;
      await breathe();
      if (data.models.full.fits) {
        await cx.runtime.session("full", data.models.full);
        fullMode = "live";
      } else fullMode = "build";
      await cx.runtime.release();
      out.session_ms = performance.now() - t0;
      await breathe();
      render(cx.readState());
    }
    return () => (loaded = start());
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
        await setup(section, data, tok, $)();
      } catch (e) {
        $.status.textContent = "";
        $.message.textContent = "The live panel could not start: " + (e && e.message ? e.message : e);
        $.message.hidden = false;
        $.results.hidden = true;
      }
    }
    open.addEventListener("click", () => { cx.setState({ live: 1 }); openPanel(); });
    section.cxOpen = openPanel;
    const s = cx.readState();
    if (s.live || s.prompt !== undefined || s.off) setTimeout(openPanel, 0); // a shared link: open after the page painted
  });
})();
