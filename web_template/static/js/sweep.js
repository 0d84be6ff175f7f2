// Task loss against k, the number of nodes kept by mask score, over the pruning sweep; the current k is marked.
cx.mount("sweep", (node) => {
  "use strict";
  const g = cx.get(node.dataset.key);
  if (!g || !g.sweep.length) { node.append(cx.el("p", { class: "empty", text: "no sweep recorded" })); return; }
  const pts = g.sweep.map((p) => ({ k: p[0], loss: p[1] }));
  const W = 640, H = 240, m = { l: 48, r: 16, t: 12, b: 36 };
  const x = d3.scaleSymlog().domain([0, d3.max(pts, (p) => p.k) || 1]).range([m.l, W - m.r]);
  const y = d3.scaleLinear().domain([0, Math.max(d3.max(pts, (p) => p.loss), g.target_loss || 0)]).nice().range([H - m.b, m.t]);
  const svg = d3.select(node).append("svg").attr("viewBox", `0 0 ${W} ${H}`).attr("class", "chart");
  svg.append("g").attr("transform", `translate(0,${H - m.b})`).call(d3.axisBottom(x).ticks(8, "~s"));
  svg.append("g").attr("transform", `translate(${m.l},0)`).call(d3.axisLeft(y).ticks(5));
  svg.append("text").attr("x", W - m.r).attr("y", H - 4).attr("text-anchor", "end").attr("class", "axis-label").text("k (nodes kept)");
  if (g.target_loss !== null && g.target_loss !== undefined) {
    svg.append("line").attr("class", "target").attr("x1", m.l).attr("x2", W - m.r).attr("y1", y(g.target_loss)).attr("y2", y(g.target_loss));
    svg.append("text").attr("class", "axis-label").attr("x", W - m.r).attr("y", y(g.target_loss) - 4).attr("text-anchor", "end").text("target");
  }
  svg.append("line").attr("class", "size-mark").attr("x1", x(g.nodes.length)).attr("x2", x(g.nodes.length)).attr("y1", m.t).attr("y2", H - m.b);
  svg.append("path").datum(pts).attr("class", "line").attr("d", d3.line().x((p) => x(p.k)).y((p) => y(p.loss)));
  const dots = svg.append("g").selectAll("circle").data(pts).join("circle").attr("class", "dot")
    .attr("cx", (p) => x(p.k)).attr("cy", (p) => y(p.loss)).attr("r", 3.5)
    .on("click", (_, p) => cx.setState({ k: p.k < g.nodes.length ? p.k : null }));
  dots.append("title").text((p) => `k = ${p.k}: loss ${cx.fmt(p.loss)}`);
  const show = (s) => dots.classed("current", (p) => p.k === s.k);
  cx.onState(show);
  show(cx.readState());
});
