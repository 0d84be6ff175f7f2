// ONNX Runtime Web for the live panel, loaded only when the panel opens, the same way from file:// and over http:
// the runtime's classic script, its .mjs loader (as a Blob URL) and its wasm (gzipped) come from classic-script
// twins, the models as bytes from theirs, with the run's weights file as external data (file:// refuses fetching
// and module imports). The runtime runs with one wasm thread and no proxy in a worker of our own made from a Blob
// URL, so that creating a session (seconds of wasm on a slow machine) never freezes the page; where a worker cannot
// start, the same engine runs on the page's thread.
(function () {
  "use strict";
  const DIR = "assets/vendor/onnxruntime-web/";
  const ORT = "ort.wasm.min.js", WASM = "ort-wasm-simd-threaded.wasm", MJS = "ort-wasm-simd-threaded.mjs";
  const files = new Map(); // key -> Promise<Uint8Array>
  let started = null;

  // Sessions by name on one ONNX Runtime Web instance. Its source also runs in the worker: keep it self-contained.
  function engine(ort) {
    const sessions = {};
    return {
      init(wasm, mjs) {
        ort.env.wasm.numThreads = 1;
        ort.env.wasm.proxy = false;
        ort.env.wasm.wasmBinary = wasm;
        ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([mjs], { type: "text/javascript" })) };
        return { threads: ort.env.wasm.numThreads, version: ort.env.versions && ort.env.versions.web };
      },
      async create(name, model, weights, weightsName) {
        const t0 = performance.now();
        sessions[name] = await ort.InferenceSession.create(model, { executionProviders: ["wasm"],
          graphOptimizationLevel: "all", externalData: [{ path: weightsName, data: weights }] });
        return performance.now() - t0;
      },
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
      run: (...a) => call("run", ...a) }));
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

  // Create the session `name` of a model whose large tensors lie in the run's weights file (ONNX external data).
  async function session(name, model, weights) {
    const api = await load();
    const [m, w] = await Promise.all([bytes(model), bytes(weights)]);
    cx.runtime.timings[name] = await api.create(name, m, w, weights.name);
  }

  // Run session `name`: feeds {input: [type, data, dims]} -> {output: [data, dims]}.
  async function run(name, feeds) { return (await load()).run(name, feeds); }

  function load() { return started || (started = start()); }

  cx.runtime = { load, bytes, session, run, timings: {}, mode: null, info: null };
})();
