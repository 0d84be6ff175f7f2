// Model page: training curves from metrics.jsonl (train and validation loss; L0 on a second axis).
cx.mount("curves", (node) => {
  "use strict";
  const data = cx.get(node.dataset.key);
  const c = data && data.curves;
  if (!c || !c.step.length) { node.append(cx.el("p", { class: "empty", text: "No metrics.jsonl in this run." })); return; }
  const rows = c.step.map((s, i) => ({ step: s, loss: c.loss[i], val: c.val_loss[i], l0: c.l0[i] }));
  const W = 720, H = 260, m = { l: 48, r: 64, t: 12, b: 36 };
  const x = d3.scaleLinear().domain(d3.extent(rows, (r) => r.step)).range([m.l, W - m.r]);
  const losses = rows.flatMap((r) => [r.loss, r.val]).filter((v) => v !== null);
  const y = d3.scaleLinear().domain(d3.extent(losses)).nice().range([H - m.b, m.t]);
  const l0s = rows.map((r) => r.l0).filter((v) => v !== null);
  const y2 = d3.scaleLog().domain(l0s.length ? [d3.min(l0s) / 1.2, d3.max(l0s) * 1.2] : [1, 10]).range([H - m.b, m.t]);
  const svg = d3.select(node).append("svg").attr("viewBox", `0 0 ${W} ${H}`).attr("class", "chart");
  svg.append("g").attr("transform", `translate(0,${H - m.b})`).call(d3.axisBottom(x).ticks(8, "~s"));
  svg.append("g").attr("transform", `translate(${m.l},0)`).call(d3.axisLeft(y).ticks(5));
  if (l0s.length) svg.append("g").attr("transform", `translate(${W - m.r},0)`).call(d3.axisRight(y2).ticks(4, "~s"));
  const series = [["loss", "train loss", y], ["val", "val loss", y], ["l0", "L0", y2]];
  series.forEach(([k, label, scale], i) => {
    const pts = rows.filter((r) => r[k] !== null);
    if (!pts.length) return;
    svg.append("path").datum(pts).attr("class", "line s-" + k).attr("d", d3.line().x((r) => x(r.step)).y((r) => scale(r[k])));
    if (pts.length < 3) svg.append("g").selectAll("circle").data(pts).join("circle").attr("class", "dot s-" + k).attr("r", 3)
      .attr("cx", (r) => x(r.step)).attr("cy", (r) => scale(r[k]));
    svg.append("text").attr("class", "legend s-" + k).attr("x", m.l + 10 + i * 110).attr("y", m.t + 12).text(label);
  });
  svg.append("text").attr("class", "axis-label").attr("x", W - m.r).attr("y", H - 4).attr("text-anchor", "end").text("step");
});
