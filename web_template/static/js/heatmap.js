// Token heatmaps: a node's top and bottom activation examples, each a line of tokens colored by activation.
(function () {
  "use strict";
  const pos = d3.interpolateRgb("#ffffff", "#2166ac");
  const neg = d3.interpolateRgb("#ffffff", "#b2182b");

  function color(q) { // q: quantized activation in [-127, 127]
    const t = Math.min(1, Math.abs(q) / 127);
    return q >= 0 ? pos(t * 0.85) : neg(t * 0.85);
  }

  function line(ex, scale, idx, side) {
    const row = cx.el("div", { class: "ex", "data-example": side + idx, tabindex: "0" });
    row.append(cx.el("span", { class: "ex-val", text: cx.fmt(ex.v, 3) }));
    const text = cx.el("span", { class: "ex-text" });
    ex.t.forEach((tok, j) => {
      const a = ex.a[j] * scale / 127;
      const span = cx.el("span", { class: j === ex.o ? "t hit" : "t", title: cx.fmt(a, 3), text: cx.tokenText(tok) });
      span.style.background = color(ex.a[j]);
      text.append(span);
    });
    row.append(text);
    row.addEventListener("click", () => cx.setState({ example: side + idx }));
    return row;
  }

  // Draw a node table's examples into container; `limit` keeps only the first few of each side.
  function draw(container, table, limit) {
    container.replaceChildren();
    const scale = table.stats.scale;
    [["top", "highest"], ["bottom", "lowest"]].forEach(([side, label]) => {
      const list = (table[side] || []).slice(0, limit || undefined);
      const block = cx.el("div", { class: "ex-block" }, cx.el("h3", { text: label + " activations" }));
      if (!list.length) block.append(cx.el("p", { class: "empty", text: "none" }));
      list.forEach((ex, i) => block.append(line(ex, scale, i, side)));
      container.append(block);
    });
  }

  function select(container, state) {
    container.querySelectorAll(".ex.selected").forEach((e) => e.classList.remove("selected"));
    if (!state.example) return;
    const e = container.querySelector(`.ex[data-example="${CSS.escape(state.example)}"]`);
    if (e) { e.classList.add("selected"); e.scrollIntoView({ block: "nearest" }); }
  }

  cx.heatmap = draw;
  cx.mount("examples", (node) => {
    const table = cx.get(node.dataset.key);
    if (!table) return;
    draw(node, table);
    select(node, cx.readState());
    cx.onState((s) => select(node, s));
  });
})();
