// Home page: final pretraining (validation) loss against the geometric mean of circuit edges, one point per model.
cx.mount("pareto", (node) => {
  "use strict";
  const data = cx.get(node.dataset.key);
  if (!data || !data.points.length) return;
  const pts = data.points, W = 640, H = 300, m = { l: 56, r: 20, t: 14, b: 40 };
  const xd = d3.extent(pts, (p) => p.edges), yd = d3.extent(pts, (p) => p.loss);
  const x = d3.scaleLog().domain([Math.max(0.5, xd[0] / 2), xd[1] * 2]).range([m.l, W - m.r]);
  const y = d3.scaleLinear().domain([yd[0] - 0.1, yd[1] + 0.1]).nice().range([H - m.b, m.t]);
  const svg = d3.select(node).append("svg").attr("viewBox", `0 0 ${W} ${H}`).attr("class", "chart");
  svg.append("g").attr("transform", `translate(0,${H - m.b})`).call(d3.axisBottom(x).ticks(6, "~s"));
  svg.append("g").attr("transform", `translate(${m.l},0)`).call(d3.axisLeft(y).ticks(5));
  svg.append("text").attr("class", "axis-label").attr("x", W - m.r).attr("y", H - 6).attr("text-anchor", "end").text("circuit edges (geometric mean)");
  svg.append("text").attr("class", "axis-label").attr("x", m.l + 4).attr("y", m.t + 4).text("pretraining val loss");
  const g = svg.append("g").selectAll("g").data(pts).join("g").attr("transform", (p) => `translate(${x(p.edges)},${y(p.loss)})`);
  g.append("circle").attr("r", 5).attr("class", (p) => "dot " + p.kind);
  const right = (p) => x(p.edges) > (m.l + W - m.r) / 2;  // label on the side with room for it
  const labels = g.append("text").attr("x", (p) => (right(p) ? -8 : 8)).attr("y", 4)
    .attr("text-anchor", (p) => (right(p) ? "end" : "start")).attr("class", "point-label").text((p) => p.model);
  // A label that would cover a point or a label already placed (runs with about the same loss and size) moves down a
  // line at a time.
  const placed = pts.map((p) => ({ x: x(p.edges) - 5, y: y(p.loss) - 5, w: 10, h: 10 }));
  const order = (s, t) => y(s.__data__.loss) - y(t.__data__.loss) || x(s.__data__.edges) - x(t.__data__.edges);
  labels.nodes().sort(order).forEach((label) => {  // an array sort: the labels stay in their points' groups
    const p = label.__data__, b = label.getBBox();
    const box = { x: x(p.edges) + b.x, y: y(p.loss) + b.y, w: b.width, h: b.height };
    const hits = (o) => box.x < o.x + o.w && o.x < box.x + box.w && box.y < o.y + o.h && o.y < box.y + box.h;
    const top = box.y;
    for (let i = 0; i < pts.length && placed.some(hits); i++) box.y += b.height;
    d3.select(label).attr("y", 4 + box.y - top);
    placed.push(box);
  });
  g.append("title").text((p) => `${p.model}: loss ${cx.fmt(p.loss)}, ${cx.fmt(p.edges, 1)} edges over ${p.circuits} circuits`);
});
