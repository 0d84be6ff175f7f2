// ONNX Runtime Web for the live panel, loaded only when the panel opens, the same way from file:// and over http:
// the runtime's classic script, its .mjs loader (as a Blob URL) and its wasm (gzipped) come from classic-script
// twins, the models as bytes from theirs, and the weights files a model reads (ONNX external data) from their
// compressed twins, rebuilt byte for byte as exporter/weights.py describes (file:// refuses fetching and module
// imports). The runtime runs with one wasm thread and no proxy in a worker of our own made from a Blob URL, so that
// rebuilding weights and creating a session (seconds of wasm on a slow machine) never freeze the page; where a
// worker cannot start, the same engine runs on the page's thread.
(function () {
  "use strict";
  const DIR = "assets/vendor/onnxruntime-web/";
  const ORT = "ort.wasm.min.js", WASM = "ort-wasm-simd-threaded.wasm", MJS = "ort-wasm-simd-threaded.mjs";
  const files = new Map(); // key -> Promise<Uint8Array>
  let started = null;

  // Byte helpers of the page and the worker. Their source also runs in the worker: keep them self-contained.
  function codec() {
    function fromBase64(b64) {
      if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);
      const bin = atob(b64), out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    }

    async function gunzip(bytes) {
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      return new Uint8Array(await new Response(stream).arrayBuffer());
    }

    // A weights file from its twin's record: gunzip, then undo each part's transform (the bytes of 4-byte numbers in
    // four planes, offsets as differences); the gaps between parts stay zero, as in the file.
    async function untwin(rec) {
      const packed = await gunzip(fromBase64(rec.gzip)), out = new Uint8Array(rec.bytes);
      let src = 0;
      for (const [off, len, codec] of rec.parts) {
        const part = packed.subarray(src, src + len);
        src += len;
        if (codec === "raw") out.set(part, off);
        else if (codec === "planes") {
          const n = len >> 2;
          for (let b = 0; b < 4; b++) for (let i = 0, j = b * n; i < n; i++, j++) out[off + 4 * i + b] = part[j];
        } else if (codec === "diff8") {
          for (let i = 0, acc = 0; i < len; i++) { acc = (acc + part[i]) & 255; out[off + i] = acc; }
        } else if (codec === "diff16") {
          const n = len >> 1;
          for (let i = 0, acc = 0; i < n; i++) {
            acc = (acc + (part[i] | (part[n + i] << 8))) & 65535;
            out[off + 2 * i] = acc & 255; out[off + 2 * i + 1] = acc >> 8;
          }
        } else throw new Error("unknown weights codec " + codec);
      }
      return out;
    }

    return { fromBase64, gunzip, untwin };
  }

  // Sessions by name on one ONNX Runtime Web instance. Its source also runs in the worker: keep it self-contained.
  function engine(ort) {
    const sessions = {};
    const weights = new Map(); // weights file path -> its bytes, kept while sessions are being made
    const { untwin } = codec();
    return {
      init(wasm, mjs) {
        ort.env.wasm.numThreads = 1;
        ort.env.wasm.proxy = false;
        ort.env.wasm.wasmBinary = wasm;
        ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([mjs], { type: "text/javascript" })) };
        return { threads: ort.env.wasm.numThreads, version: ort.env.versions && ort.env.versions.web };
      },
      // model: the model file's bytes; files: [{path (as the model names it), record (its twin's)}]
      async create(name, model, files) {
        const t0 = performance.now();
        const externalData = [];
        for (const f of files) {
          if (!weights.has(f.path)) weights.set(f.path, await untwin(f.record));
          externalData.push({ path: f.path, data: weights.get(f.path) });
        }
        const t1 = performance.now();
        sessions[name] = await ort.InferenceSession.create(model, { executionProviders: ["wasm"],
          graphOptimizationLevel: "all", externalData });
        return { total_ms: performance.now() - t0, weights_ms: t1 - t0 };
      },
      release() { weights.clear(); return null; },
      // feeds {input: [type, data, dims]} -> {output: [data, dims]}
      async run(name, feeds) {
        const inputs = {}, out = {};
        Object.entries(feeds).forEach(([k, [type, data, dims]]) => { inputs[k] = new ort.Tensor(type, data, dims); });
        const r = await sessions[name].run(inputs);
        Object.entries(r).forEach(([k, t]) => { out[k] = [t.data, t.dims]; });
        return out;
      },
    };
  }

  const WORKER = `"use strict";
const codec = ${codec.toString()};
const engine = ${engine.toString()};
let api = null;
self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  try {
    if (op === "boot") {
      importScripts(URL.createObjectURL(new Blob([args[0]], { type: "text/javascript" })));
      api = engine(self.ort);
      postMessage({ id, result: null });
    } else postMessage({ id, result: await api[op](...args) });
  } catch (err) { postMessage({ id, error: String((err && err.message) || err) }); }
};`;

  // The engine in a worker: the same calls, as messages.
  function inWorker(ortText) {
    const w = new Worker(URL.createObjectURL(new Blob([WORKER], { type: "text/javascript" })));
    const waiting = new Map();
    let next = 0;
    w.onmessage = (e) => {
      const p = waiting.get(e.data.id);
      waiting.delete(e.data.id);
      if (e.data.error !== undefined) p.reject(new Error(e.data.error)); else p.resolve(e.data.result);
    };
    w.onerror = (e) => {
      e.preventDefault();
      waiting.forEach((p) => p.reject(new Error("the runtime's worker failed" + (e.message ? ": " + e.message : ""))));
      waiting.clear();
    };
    const call = (op, ...args) => new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      w.postMessage({ id, op, args });
    });
    return call("boot", ortText).then(() => ({ init: (...a) => call("init", ...a), create: (...a) => call("create", ...a),
      release: () => call("release"), run: (...a) => call("run", ...a) }));
  }

  function script(path) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = cx.root + path;
      s.onload = resolve;
      s.onerror = () => reject(new Error("cannot load " + path));
      document.head.append(s);
    });
  }

  const { fromBase64, gunzip } = codec();

  function twin(name) { return cx.load(`vendor/onnxruntime-web/${name}`, `${DIR}${name}.js`); }

  async function start() {
    const t0 = performance.now();
    const [ortText, gz, mjs] = await Promise.all([twin(ORT), twin(WASM + ".gz"), twin(MJS)]);
    const wasm = await gunzip(fromBase64(gz));
    let api;
    try {
      api = await inWorker(ortText);
      cx.runtime.mode = "worker";
    } catch (e) { // no worker here: the page's own thread
      if (!window.ort) await script(DIR + ORT);
      api = engine(window.ort);
      cx.runtime.mode = "page";
    }
    cx.runtime.info = await api.init(wasm, mjs);
    cx.runtime.timings.load_ms = performance.now() - t0;
    return api;
  }

  // The bytes of a site file from its .js twin ({js: the twin's path, key: its key}).
  function bytes(file) {
    if (!files.has(file.key)) files.set(file.key, cx.load(file.key, file.js).then(fromBase64));
    return files.get(file.key);
  }

  // Create the session `name` of a model ({onnx, js, key, weights: [{path, js, key}]}) whose large tensors lie in
  // weights files next to it (ONNX external data, named relative to the model file).
  async function session(name, model) {
    const api = await load();
    const dir = model.onnx.slice(0, model.onnx.lastIndexOf("/") + 1);
    const [m, ...records] = await Promise.all([bytes(model), ...model.weights.map((w) => cx.load(w.key, w.js))]);
    const weights = model.weights.map((w, i) => ({ path: w.path.slice(dir.length), record: records[i] }));
    model.weights.forEach((w) => cx.drop(w.key)); // the engine keeps what it rebuilt until release()
    cx.runtime.timings[name] = await api.create(name, m, weights);
  }

  // Let go of the weights kept for making sessions (the sessions hold their own copies).
  async function release() { await (await load()).release(); }

  // Run session `name`: feeds {input: [type, data, dims]} -> {output: [data, dims]}.
  async function run(name, feeds) { return (await load()).run(name, feeds); }

  function load() { return started || (started = start()); }

  cx.runtime = { load, bytes, session, release, run, timings: {}, mode: null, info: null };
})();
