// Model page: per residual channel, the tokens that write to it (embedding) and the logits it moves (unembedding).
cx.mount("embed", (node) => {
  "use strict";
  const data = cx.get(node.dataset.key);
  if (!data) return;
  const e = data.embed, n = e.reads.length;
  const input = cx.el("input", { type: "number", min: 0, max: n - 1, value: 0, id: "channel" });
  const body = cx.el("div", { class: "embed-body" });
  node.append(cx.el("label", {}, `residual channel (0–${n - 1}) `, input), body);
  function list(title, items) {
    const ul = cx.el("ul", { class: "toklist" });
    items.forEach(([tok, v]) => ul.append(cx.el("li", {}, cx.el("span", { class: "tok", text: cx.tokenText(tok) }), " ",
      cx.el("span", { class: "w " + (v >= 0 ? "pos" : "neg"), text: cx.fmt(v, 3) }))));
    if (!items.length) ul.append(cx.el("li", { class: "note", text: "none (all zero)" }));
    return cx.el("div", {}, cx.el("h3", { text: title }), ul);
  }
  function render(state) {
    const c = Math.min(n - 1, state.channel || 0);
    input.value = c;
    body.replaceChildren(list("tokens writing + to it", e.reads[c].pos), list("tokens writing − to it", e.reads[c].neg),
      list("logits it raises", e.writes[c].pos), list("logits it lowers", e.writes[c].neg));
  }
  input.addEventListener("change", () => cx.setState({ channel: parseInt(input.value, 10) }));
  cx.onState(render);
  render(cx.readState());
});
