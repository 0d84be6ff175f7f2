// The circuit as a layered graph: one row per layer × location (q, k, v share a row, grouped by head), bottom to top,
// answer tokens on top. Hover shows a card; a click selects a node (kept in location.hash) and lists its wiring, or,
// with the live panel open, toggles it between kept and mean-ablated (drawn hollow).
(function () {
  "use strict";
  const KINDS = ["attn.act_in", "attn.qkv", "attn.resid_delta", "mlp.act_in", "mlp.post_act", "mlp.resid_delta"];
  const QKV = { "attn.q": 0, "attn.k": 1, "attn.v": 2 };
  const W = 1000, ROW = 58, M = { l: 175, r: 20, t: 30, b: 20 };
  const MAX_DRAWN_EDGES = 3000; // a dense circuit has tens of thousands: past this the picture is ink and the page slow

  function drawnEdges(g) { // the strongest edges by |weight| (all of them in a circuit that has few)
    if (g.edges.length <= MAX_DRAWN_EDGES) return g.edges;
    return g.edges.map((e, i) => [Math.abs(e[2]), i]).sort((a, b) => b[0] - a[0] || a[1] - b[1])
      .slice(0, MAX_DRAWN_EDGES).map(([, i]) => g.edges[i]);
  }

  function rowKey(n) {
    if (n.layer === null) return n.loc;
    return n.layer + "." + (n.kind in QKV ? "attn.qkv" : n.kind);
  }

  function layout(g) {
    const rows = [];
    for (let L = 0; L < g.n_layer; L++) KINDS.forEach((k) => rows.push({ key: L + "." + k, label: "L" + L + " " + k.replace("attn.qkv", "attn.q/k/v") }));
    rows.push({ key: "final_resid", label: "final_resid" });
    const byRow = d3.group(g.nodes.map((n, j) => j), (j) => rowKey(g.nodes[j]));
    const shown = rows.filter((r) => byRow.has(r.key)).map((r) => Object.assign(r, { nodes: byRow.get(r.key) }));
    shown.push({ key: "answers", label: "answer logits", nodes: [] });
    const H = M.t + M.b + ROW * (shown.length - 1);
    const pos = new Map();
    shown.forEach((r, ri) => {
      r.y = H - M.b - ri * ROW;
      r.nodes.sort((a, b) => {
        const A = g.nodes[a], B = g.nodes[b];
        return (A.head ?? 0) - (B.head ?? 0) || (QKV[A.kind] ?? 0) - (QKV[B.kind] ?? 0) || A.i - B.i;
      });
      const step = (W - M.l - M.r) / Math.max(1, r.nodes.length);
      r.nodes.forEach((j, k) => pos.set(j, { x: M.l + (k + 0.5) * step, y: r.y }));
    });
    const top = shown[shown.length - 1];
    const slot = (W - M.l - M.r) / Math.max(1, g.answers.length);
    const answers = g.answers.map((a, k) => ({ x: M.l + (k + 0.5) * slot, y: top.y, w: Math.min(150, slot - 8), a }));
    return { rows: shown, pos, answers, H };
  }

  function curve(s, d) {
    const my = (s.y + d.y) / 2;
    return `M${s.x},${s.y}C${s.x},${my} ${d.x},${my} ${d.x},${d.y}`;
  }

  function draw(container, g) {
    const lay = layout(g);
    const maxW = d3.max(g.edges.concat(g.unembed_edges), (e) => Math.abs(e[2])) || 1;
    const width = (w) => 0.6 + 3.4 * Math.abs(w) / maxW;
    const sign = (w) => (w >= 0 ? "pos" : "neg");
    const maxDelta = d3.max(g.nodes, (n) => n.ablation_delta) || 1;
    const fill = d3.scaleSequential(d3.interpolateYlOrRd).domain([0, maxDelta]).clamp(true);
    const svg = d3.select(container).append("svg").attr("viewBox", `0 0 ${W} ${lay.H}`).attr("class", "graph")
      .attr("role", "img").attr("aria-label", `circuit graph: ${g.counts.nodes} nodes, ${g.counts.edges} edges`);
    const bg = svg.append("rect").attr("class", "bg").attr("width", W).attr("height", lay.H);
    const rowsG = svg.append("g").attr("class", "rows");
    lay.rows.forEach((r) => {
      rowsG.append("line").attr("x1", M.l - 10).attr("x2", W - M.r).attr("y1", r.y).attr("y2", r.y).attr("class", "row-line");
      rowsG.append("text").attr("x", M.l - 16).attr("y", r.y + 4).attr("text-anchor", "end").attr("class", "row-label").text(r.label);
      if (r.key.endsWith("attn.qkv")) {
        d3.groups(r.nodes, (j) => g.nodes[j].head).forEach(([head, js]) => {
          const xs = js.map((j) => lay.pos.get(j).x);
          rowsG.append("rect").attr("class", "head-box").attr("x", d3.min(xs) - 9).attr("y", r.y - 14)
            .attr("width", d3.max(xs) - d3.min(xs) + 18).attr("height", 28).attr("rx", 6);
          rowsG.append("text").attr("class", "head-label").attr("x", (d3.min(xs) + d3.max(xs)) / 2).attr("y", r.y - 17)
            .attr("text-anchor", "middle").text("h" + head);
        });
      }
    });
    const links = svg.append("g").attr("class", "links").selectAll("path").data(g.resid_links).join("path")
      .attr("class", "link").attr("d", (e) => curve(lay.pos.get(e[0]), lay.pos.get(e[1])));
    const edges = svg.append("g").attr("class", "edges").selectAll("path").data(drawnEdges(g)).join("path")
      .attr("class", (e) => "edge " + sign(e[2])).attr("stroke-width", (e) => width(e[2]))
      .attr("d", (e) => curve(lay.pos.get(e[0]), lay.pos.get(e[1])));
    edges.append("title").text((e) => `${g.nodes[e[0]].id} → ${g.nodes[e[1]].id}: ${cx.fmt(e[2], 3)}`);
    const unembed = svg.append("g").attr("class", "unembeds").selectAll("path").data(g.unembed_edges).join("path")
      .attr("class", (e) => "unembed " + sign(e[2])).attr("stroke-width", (e) => width(e[2]))
      .attr("d", (e) => curve(lay.pos.get(e[0]), lay.answers[e[1]]));
    const ans = svg.append("g").attr("class", "answers").selectAll("g").data(lay.answers).join("g")
      .attr("transform", (a) => `translate(${a.x},${a.y})`);
    ans.append("rect").attr("x", (a) => -a.w / 2).attr("y", -12).attr("width", (a) => a.w).attr("height", 24).attr("rx", 4)
      .attr("class", (a) => "answer " + a.a.role);
    ans.append("text").attr("text-anchor", "middle").attr("y", 4).attr("class", "answer-text")
      .text((a) => (a.a.role === "answer" ? cx.tokenText(a.a.text) : `${cx.tokenText(a.a.text)} (${a.a.role})`));
    const nodes = svg.append("g").attr("class", "nodes").selectAll("circle").data(g.nodes).join("circle")
      .attr("class", "node").attr("data-id", (n) => n.id).attr("tabindex", 0).attr("role", "button")
      .attr("aria-label", (n) => n.id)
      .attr("cx", (n, j) => lay.pos.get(j).x).attr("cy", (n, j) => lay.pos.get(j).y).attr("r", 7)
      .attr("fill", (n) => (n.ablation_delta === null ? "#bbb" : fill(Math.max(0, n.ablation_delta))));
    return { svg, bg, nodes, edges, links, unembed };
  }

  function adjacency(g) {
    const ins = g.nodes.map(() => []), outs = g.nodes.map(() => []);
    g.edges.forEach((e) => { ins[e[1]].push(e); outs[e[0]].push(e); });
    return { ins, outs };
  }

  function hoverCard(box, n, event, container) {
    box.replaceChildren(cx.el("strong", { text: n.id }), cx.el("br"),
      `ablation Δloss ${cx.fmt(n.ablation_delta)} · τ ${cx.fmt(n.tau)} · rank ${n.rank + 1}`);
    const r = container.getBoundingClientRect();
    box.style.left = (event.clientX - r.left + 14) + "px";
    box.style.top = (event.clientY - r.top + 14) + "px";
    box.hidden = false;
  }

  function wireList(title, items) {
    const ul = cx.el("ul", { class: "wires" });
    items.forEach((it) => ul.append(cx.el("li", {}, it)));
    if (!items.length) ul.append(cx.el("li", { class: "note", text: "none" }));
    return [cx.el("h3", { text: `${title} (${items.length})` }), ul];
  }

  function nodeButton(g, j, extra) {
    return [cx.el("button", { class: "link-button", type: "button", onclick: () => cx.setState({ node: g.nodes[j].id }), text: g.nodes[j].id }),
      extra === undefined ? "" : " ", extra === undefined ? "" : extra];
  }

  function weightSpan(w) { return cx.el("span", { class: "w " + (w >= 0 ? "pos" : "neg"), text: cx.fmt(w, 3) }); }

  function showCard(card, g, adj, j) {
    const n = g.nodes[j];
    card.replaceChildren();
    card.append(cx.el("h3", {}, cx.el("a", { href: n.file + ".html", class: "node-link", text: n.id })));
    card.append(cx.el("p", { class: "numbers", text:
      `${n.loc} · channel ${n.i}${n.head === null ? "" : " · head " + n.head} · Δloss ${cx.fmt(n.ablation_delta)} · τ ${cx.fmt(n.tau)} · mean ${cx.fmt(n.mean, 4)}` }));
    card.append(...wireList("inputs", adj.ins[j].slice().sort((a, b) => Math.abs(b[2]) - Math.abs(a[2])).map((e) => nodeButton(g, e[0], weightSpan(e[2])))));
    card.append(...wireList("outputs", adj.outs[j].slice().sort((a, b) => Math.abs(b[2]) - Math.abs(a[2])).map((e) => nodeButton(g, e[1], weightSpan(e[2])))
      .concat(g.unembed_edges.filter((e) => e[0] === j).map((e) => [`logit of ${cx.tokenText(g.answers[e[1]].text)} `, weightSpan(e[2])]))));
    const res = g.resid_links.filter((e) => e[0] === j || e[1] === j).map((e) => nodeButton(g, e[0] === j ? e[1] : e[0], e[0] === j ? "(reads this write)" : "(writes this channel)"));
    card.append(...wireList("residual links", res));
    const ex = cx.el("div", { class: "card-examples" }, cx.el("p", { class: "note", text: "loading activation examples…" }));
    card.append(cx.el("h3", { text: "top activations" }), ex);
    const key = `${g.model}/${g.circuit}/${n.id}`;
    cx.load(key, `data/${g.model}/${g.circuit}/nodes/${n.file}.js`)
      .then((t) => cx.heatmap(ex, t, 3), () => ex.replaceChildren(cx.el("p", { class: "empty", text: "examples unavailable" })));
    card.hidden = false;
  }

  function sweepPoints(g) { return g.sweep.map((p) => ({ k: p[0], loss: p[1] })).filter((p) => p.k < g.nodes.length); }

  cx.mount("graph", (container) => {
    const g = cx.get(container.dataset.key);
    if (!g) return;
    const parts = draw(container, g);
    const adj = adjacency(g);
    const card = document.getElementById("card"), hover = document.getElementById("hover");
    const counts = document.getElementById("graph-counts");
    const shown = parts.edges.size();
    counts.textContent = `${g.counts.nodes} nodes, ${g.counts.edges} edges` +
      (shown < g.edges.length ? ` (the ${shown} strongest drawn; a node's card lists all of its own)` : "");
    counts.dataset.nodes = g.counts.nodes; counts.dataset.edges = g.counts.edges;
    const wrap = container.closest(".graph-panel") || container;
    parts.nodes.on("mouseenter", (event, n) => hoverCard(hover, n, event, wrap)).on("mouseleave", () => { hover.hidden = true; })
      .on("click", (event, n) => { // with the live panel open a click toggles the node's ablation; shift-click selects
        event.stopPropagation();
        if (!(cx.nodeAction && cx.nodeAction(n.id, event))) cx.setState({ node: n.id });
      })
      .on("keydown", (event, n) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        if (!(cx.nodeAction && cx.nodeAction(n.id, event))) cx.setState({ node: n.id });
      });
    parts.bg.on("click", () => cx.setState({ node: null }));

    const points = sweepPoints(g);
    const range = document.getElementById("k-range"), label = document.getElementById("k-label");
    range.max = points.length; // the last stop is the whole circuit
    range.addEventListener("input", () => cx.setState({ k: +range.value === points.length ? null : points[+range.value].k }));
    const links = document.getElementById("show-links");
    links.addEventListener("change", () => parts.links.classed("hidden", !links.checked));

    const index = new Map(g.nodes.map((n, j) => [n.id, j]));
    let drawn = null; // the view state last drawn: node and k (the live panel's ablations only restyle nodes)
    function render(state) {
      const off = new Set(state.off || []);
      parts.nodes.classed("ablated", (n) => off.has(n.id));
      if (drawn && drawn.node === state.node && drawn.k === state.k) return;
      drawn = { node: state.node, k: state.k };
      const j = index.has(state.node) ? index.get(state.node) : null;
      const at = points.findIndex((p) => p.k === state.k);
      const k = at < 0 ? Infinity : points[at].k;
      range.value = at < 0 ? points.length : at;
      const kept = g.nodes.filter((n) => n.rank < k).length;
      label.textContent = at < 0 ? `whole circuit: ${g.nodes.length} nodes` :
        `k = ${k}: loss ${cx.fmt(points[at].loss)} · ${kept} of ${g.nodes.length} circuit nodes among the top k`;
      parts.nodes.classed("gone", (n) => n.rank >= k).classed("selected", (n, i) => i === j);
      const touches = (e) => j !== null && (e[0] === j || e[1] === j);
      parts.edges.classed("gone", (e) => g.nodes[e[0]].rank >= k || g.nodes[e[1]].rank >= k).classed("hi", touches);
      parts.unembed.classed("hi", (e) => j !== null && e[0] === j);
      parts.links.classed("hi", touches);
      parts.svg.classed("focus", j !== null);
      if (j === null) { card.hidden = true; card.replaceChildren(); } else showCard(card, g, adj, j);
    }
    cx.onState(render);
    render(cx.readState());
    window.cxGraphPainted = performance.now();
  });
})();
