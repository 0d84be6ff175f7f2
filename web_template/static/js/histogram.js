// Histogram of a node's nonzero activations over the sample (zeros counted apart).
cx.mount("histogram", (node) => {
  "use strict";
  const table = cx.get(node.dataset.key);
  if (!table || !table.hist) { node.append(cx.el("p", { class: "empty", text: "always zero on the sample" })); return; }
  const h = table.hist, W = 420, H = 180, m = { l: 44, r: 10, t: 10, b: 30 };
  const x = d3.scaleLinear().domain([h.edges[0], h.edges[h.edges.length - 1]]).range([m.l, W - m.r]);
  const y = d3.scaleLinear().domain([0, d3.max(h.counts) || 1]).nice().range([H - m.b, m.t]);
  const svg = d3.select(node).append("svg").attr("viewBox", `0 0 ${W} ${H}`).attr("class", "chart");
  svg.append("g").selectAll("rect").data(h.counts).join("rect")
    .attr("x", (_, i) => x(h.edges[i]) + 0.5).attr("width", (_, i) => Math.max(0.5, x(h.edges[i + 1]) - x(h.edges[i]) - 1))
    .attr("y", (c) => y(c)).attr("height", (c) => y(0) - y(c)).attr("class", "hbar")
    .append("title").text((c, i) => `${cx.fmt(h.edges[i], 3)} … ${cx.fmt(h.edges[i + 1], 3)}: ${c}`);
  svg.append("g").attr("transform", `translate(0,${H - m.b})`).call(d3.axisBottom(x).ticks(6));
  svg.append("g").attr("transform", `translate(${m.l},0)`).call(d3.axisLeft(y).ticks(4));
  node.append(cx.el("p", { class: "note", text: `${h.zeros.toLocaleString("en-US")} of ${table.stats.n.toLocaleString("en-US")} tokens are exactly zero (not drawn).` }));
});
