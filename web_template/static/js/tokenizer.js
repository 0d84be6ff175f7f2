// Byte-level BPE equal to the run's Python tokenizer (HF tokenizers, trainer/tokenizer.py): special tokens first, the
// split regex, GPT-2's byte-to-unicode map, then merges by rank. The same file runs in the page (cx.bpe) and in node
// (require), so the parity test runs it on thousands of snippets. Data: the run's tokenizer shard (exporter/live.py).
(function (root) {
  "use strict";
  // Oniguruma's \s (Unicode White_Space). JavaScript's \s differs: it adds U+FEFF and lacks U+0085.
  const WS = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  // trainer/tokenizer.py SPLIT_PATTERN, with \s and \S spelled out as above.
  const PATTERN = "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const SPLIT = new RegExp(`[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|[${WS}]*[\\r\\n]+|` +
    `[${WS}]+(?![^${WS}])|[${WS}]+`, "gu");

  // GPT-2's printable stand-ins for the 256 bytes: [byte -> char] and back.
  function byteMap() {
    const keep = [];
    for (let b = 33; b <= 126; b++) keep.push(b);
    for (let b = 161; b <= 172; b++) keep.push(b);
    for (let b = 174; b <= 255; b++) keep.push(b);
    const toChar = new Array(256), toByte = new Map();
    let extra = 0;
    for (let b = 0; b < 256; b++) {
      const cp = keep.includes(b) ? b : 256 + extra++;
      toChar[b] = String.fromCodePoint(cp);
      toByte.set(toChar[b], b);
    }
    return { toChar, toByte };
  }

  // The text split into pieces the way the pre-tokenizer does ("isolated": matches and the gaps between them).
  function pieces(text) {
    const out = [];
    let at = 0;
    for (const m of text.matchAll(SPLIT)) {
      if (m.index > at) out.push(text.slice(at, m.index));
      out.push(m[0]);
      at = m.index + m[0].length;
    }
    if (at < text.length) out.push(text.slice(at));
    return out;
  }

  // A tokenizer from a shard: {vocab: [token string by id], merges: [[left id, right id] by rank], special: {text: id},
  // ignore_merges}.
  function fromShard(shard) {
    if (shard.pattern !== PATTERN) throw new Error("unsupported tokenizer: its split pattern is not circexport's");
    const bytes = byteMap();
    const vocab = new Map(shard.vocab.map((s, i) => [s, i]));
    const V = shard.vocab.length;
    const ranks = new Map(); // left * V + right -> [rank, merged id]
    shard.merges.forEach(([l, r], rank) => ranks.set(l * V + r, [rank, vocab.get(shard.vocab[l] + shard.vocab[r])]));
    const byteId = bytes.toChar.map((c) => vocab.get(c));
    const special = Object.entries(shard.special || {}).sort((a, b) => b[0].length - a[0].length);
    const cache = new Map();
    const utf8 = new TextEncoder();

    function bpe(piece) {
      const hit = cache.get(piece);
      if (hit) return hit;
      const bs = utf8.encode(piece);
      if (shard.ignore_merges) { // a piece that is a token is taken whole (tiktoken's rule; imported tokenizers)
        const whole = vocab.get(Array.from(bs, (b) => bytes.toChar[b]).join(""));
        if (whole !== undefined) return [whole];
      }
      const syms = Array.from(bs, (b) => byteId[b]);
      for (;;) {
        let best = -1, bestRank = Infinity;
        for (let i = 0; i + 1 < syms.length; i++) {
          const m = ranks.get(syms[i] * V + syms[i + 1]);
          if (m && m[0] < bestRank) { bestRank = m[0]; best = i; }
        }
        if (best < 0) break;
        syms.splice(best, 2, ranks.get(syms[best] * V + syms[best + 1])[1]);
      }
      if (cache.size < 50000) cache.set(piece, syms);
      return syms;
    }

    function encodePlain(text, out) {
      for (const p of pieces(text)) for (const id of bpe(p)) out.push(id);
    }

    // Token ids of a text; special tokens (e.g. <|endoftext|>) written in the text become their own id.
    function encode(text) {
      const out = [];
      let rest = text;
      while (rest) {
        let at = -1, hit = null;
        for (const [s, id] of special) {
          const i = rest.indexOf(s);
          if (i >= 0 && (at < 0 || i < at)) { at = i; hit = [s, id]; }
        }
        if (!hit) { encodePlain(rest, out); break; }
        encodePlain(rest.slice(0, at), out);
        out.push(hit[1]);
        rest = rest.slice(at + hit[0].length);
      }
      return out;
    }

    const specialById = new Map(special.map(([s, id]) => [id, s]));
    const decoder = new TextDecoder("utf-8");
    // The text of one token, as Python's tok.decode([id]) shows it (a partial UTF-8 sequence becomes U+FFFD).
    function decode(id) {
      if (specialById.has(id)) return specialById.get(id);
      const s = shard.vocab[id];
      if (s === undefined) return `<${id}>`;
      return decoder.decode(Uint8Array.from(Array.from(s), (c) => bytes.toByte.get(c)));
    }

    return { encode, decode, size: V };
  }

  const api = { fromShard, pieces, PATTERN };
  if (typeof module === "object" && module.exports) module.exports = api;
  else if (root.cx) root.cx.bpe = api;
})(typeof window === "undefined" ? globalThis : window);
