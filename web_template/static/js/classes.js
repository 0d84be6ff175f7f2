// The node's activation at the prediction position on the task's prompts, one strip per answer class.
cx.mount("classes", (node) => {
  "use strict";
  const table = cx.get(node.dataset.key);
  if (!table || !table.classes) {
    node.append(cx.el("p", { class: "empty", text: "No task pairs: the task is not in this install's task suite." }));
    return;
  }
  const all = table.classes.flatMap((c) => c.values);
  const W = 420, rowH = 34, m = { l: 120, r: 12, t: 8, b: 28 }, H = m.t + m.b + rowH * table.classes.length;
  const ext = d3.extent(all.length ? all : [0, 1]);
  const x = d3.scaleLinear().domain(ext[0] === ext[1] ? [ext[0] - 1, ext[1] + 1] : ext).nice().range([m.l, W - m.r]);
  const svg = d3.select(node).append("svg").attr("viewBox", `0 0 ${W} ${H}`).attr("class", "chart");
  table.classes.forEach((c, i) => {
    const g = svg.append("g").attr("transform", `translate(0,${m.t + i * rowH})`).attr("class", "class-row " + c.role);
    g.append("text").attr("x", m.l - 8).attr("y", rowH / 2 + 4).attr("text-anchor", "end")
      .text(`${cx.tokenText(c.text)} (${c.role})`);
    g.selectAll("circle").data(c.values).join("circle").attr("cx", (v) => x(v))
      .attr("cy", (_, j) => rowH / 2 + ((j * 7) % 13) - 6).attr("r", 3).attr("class", "dot " + c.role);
    const mean = d3.mean(c.values);
    if (mean !== undefined) g.append("line").attr("x1", x(mean)).attr("x2", x(mean)).attr("y1", 3).attr("y2", rowH - 3).attr("class", "mean");
  });
  svg.append("g").attr("transform", `translate(0,${H - m.b})`).call(d3.axisBottom(x).ticks(6));
});
