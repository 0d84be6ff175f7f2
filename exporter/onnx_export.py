"""ONNX models of each run and each circuit, exported from PyTorch and checked against it with onnxruntime."""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

from exporter import weights as wt
from exporter.render import base64_twin
from trainer.errors import UserError
from trainer.schema import parse_node_id
from trainer.model import GPT, Sparsify

OPSET = 17
TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| over every output, else the build fails


class CircuitModel(nn.Module):
    """Token ids [B, T], a mask [N] over the circuit's nodes and the two answer token ids of each row [B, 2]
    -> those answers' logits [B, T, 2] and the circuit nodes' activations [B, T, N]; every node outside the
    circuit, and each masked-off (0) circuit node, is replaced by its mean activation."""

    def __init__(self, model: GPT, means: Mapping[str, torch.Tensor], node_ids: list[str]) -> None:
        super().__init__()
        self.model = model
        chans: dict[str, list[int]] = {loc: [] for loc in model.node_locations()}
        for node in node_ids:
            loc, i = parse_node_id(node)
            chans[loc].append(i)
        self.slots = []  # (location, first mask entry, channels), in forward order
        forward_order = []
        for loc, cs in chans.items():
            cs = sorted(cs)
            key = loc.replace(".", "_")
            self.register_buffer(f"mean_{key}", means[loc].detach().float().clone())  # [dim]
            self.register_buffer(f"idx_{key}", torch.tensor(cs, dtype=torch.long))  # [n] the circuit's channels here
            self.slots.append((loc, len(forward_order), key))
            forward_order += [f"{loc}:{c}" for c in cs]
        position = {node: j for j, node in enumerate(forward_order)}
        # mask entry j of the caller (file order) is entry perm[j] in forward order, and back again
        self.register_buffer("to_forward", torch.tensor([node_ids.index(n) for n in forward_order], dtype=torch.long))
        self.register_buffer("to_file", torch.tensor([position[n] for n in node_ids], dtype=torch.long))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, answers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T] int64, mask [N] float, answers [B, 2] int64 -> answer logits [B, T, 2], activations [B, T, N]."""
        B, T = tokens.shape
        mask_fwd = mask.index_select(0, self.to_forward)  # [N] in forward order
        acts: list[torch.Tensor] = []

        def hook(start: int, key: str):
            mean, idx = getattr(self, f"mean_{key}"), getattr(self, f"idx_{key}")

            def fn(x: torch.Tensor) -> torch.Tensor:
                if not idx.numel():  # no circuit node here: the whole location is its mean, whatever computed x
                    return mean.expand(B, T, mean.numel())  # (so the export drops what only fed x)
                # [dim]: the caller's mask on the circuit's channels (1 = the node's own value, 0 = its mean), 0 elsewhere
                keep = torch.zeros_like(mean).scatter(0, idx, mask_fwd[start:start + idx.numel()])
                y = keep * x + (1 - keep) * mean
                acts.append(y.index_select(-1, idx))  # [B, T, n]
                return y
            return fn

        with self.model.hooks({loc: hook(start, key) for loc, start, key in self.slots}):
            logits = self.model(tokens)  # [B, T, vocab]
        pick = answers.unsqueeze(1).expand(-1, T, -1)  # [B, T, 2]
        return logits.gather(-1, pick), torch.cat(acts, -1).index_select(-1, self.to_file)


def export_full(model: GPT, meta: Mapping[str, str]) -> onnx.ModelProto:
    """The whole model: tokens [B, T] -> logits [B, T, vocab]."""
    return _export(model, (torch.zeros(1, 4, dtype=torch.long),), ["tokens"], ["logits"], meta)


def export_circuit(module: CircuitModel, n_nodes: int, meta: Mapping[str, str]) -> onnx.ModelProto:
    """A circuit model (see CircuitModel)."""
    args = (torch.zeros(1, 4, dtype=torch.long), torch.ones(n_nodes), torch.zeros(1, 2, dtype=torch.long))
    return _export(module, args, ["tokens", "mask", "answers"], ["logits", "acts"], meta)


def _export(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str], meta: Mapping[str, str]) -> onnx.ModelProto:
    """Trace to ONNX (legacy exporter, opset 17) with batch and time as dynamic axes and metadata props. The weights are
    left out: each one the graph uses is a graph input named as in module.state_dict(), for OnnxSet.add to fill in (so
    no dense copy of a large model is ever serialized)."""
    dyn = {"tokens": {0: "batch", 1: "time"}, **{o: {0: "batch", 1: "time"} for o in outputs}}
    if "answers" in inputs:
        dyn["answers"] = {0: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, buf, dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=dyn, export_params=False, do_constant_folding=False)
    proto = onnx.load_from_string(buf.getvalue())
    for k, v in sorted(meta.items()):
        proto.metadata_props.add(key=k, value=v)
    return proto


@torch.no_grad()
def check_parity(model: bytes | str, module: nn.Module, feeds: list[tuple[torch.Tensor, ...]], name: str) -> float:
    """Max |onnxruntime - PyTorch| over every output and feed (model: bytes, or a path whose external data lies next to
    it); a UserError above TOLERANCE. A position over it is excused only where some AbsTopK at or before it in its
    sequence had its k-th and (k+1)-th |x| within float rounding of each other: either choice is right there, and the
    two runtimes round differently (a 413M model at 1/256 density: 1 position of 256 off by 1.5e-4, the rest by at
    most 3.4e-6). Every other position is held to the bar, so a real difference still fails."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    # Unoptimized, the sparse matrices are rebuilt on each run instead of folded into constants that are all held at
    # once (2-3x the dense model while a session starts): a check runs a few times, and the build's memory stays low.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.enable_cpu_mem_arena = False
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    worst = 0.0
    for args in feeds:
        got = sess.run(None, {n: a.numpy() for n, a in zip(names, args)})
        with NearTies(module) as ties:
            want = module(*args)
        want = want if isinstance(want, tuple) else (want,)
        B, T = args[0].shape
        excusable = ties.positions(B, T)  # [B, T]
        for g, w in zip(got, want):
            diff = np.abs(g - w.numpy()).reshape(B, T, -1).max(-1)  # [B, T] per position
            worst = max(worst, float(np.where(excusable & (diff > TOLERANCE), 0.0, diff).max()))
    if not worst <= TOLERANCE:
        raise UserError(f"ONNX parity failed for {name}: onnxruntime and PyTorch differ by {worst:.3g} > {TOLERANCE}; "
                        "the model was not shipped")
    return worst


class NearTies:
    """While installed (a with-block) on a module's AbsTopK layers, records the positions [B, T] where some AbsTopK's
    k-th and (k+1)-th largest |x| differ by at most `rel` of the k-th: where float rounding can change what it keeps."""

    def __init__(self, module: nn.Module, rel: float = 1e-5) -> None:
        self.layers = [m for m in module.modules() if isinstance(m, Sparsify)]
        self.rel, self.found, self.handles = rel, [], []

    def __enter__(self) -> NearTies:
        self.handles = [m.register_forward_hook(self._record) for m in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()

    def _record(self, layer: nn.Module, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
        """Forward hook: the near-ties of one AbsTopK call."""
        x = inputs[0]
        if layer.k < x.shape[-1] and x.dim() == 3:
            top = x.abs().topk(layer.k + 1, dim=-1).values  # [B, T, k + 1], largest first
            kth, next_ = top[..., -2], top[..., -1]  # [B, T] each (tied zeros keep the same values: no near-tie)
            self.found.append((kth > 0) & (kth - next_ <= self.rel * kth))

    def positions(self, batch: int, time: int) -> np.ndarray:
        """[B, T] bool: a near-tie at this position or an earlier one of its sequence (attention carries it on)."""
        near = torch.stack(self.found).any(0) if self.found else torch.zeros(batch, time, dtype=torch.bool)
        return near.cummax(-1).values.numpy()


def parity_masks(n: int, seed: int = 0) -> list[torch.Tensor]:
    """Masks that exercise the circuit input: all nodes on, and a random half off."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.ones(n), (torch.rand(n, generator=gen) < 0.5).float()]


INLINE_MAX = 64 * 1024  # bytes: vectors (biases, means, gains) up to this size stay inside the model file


@dataclass(frozen=True)
class ModelFiles:
    """Where one model lies on the site, and what running it in the page takes."""

    onnx: str  # site-relative path of the model file
    key: str  # the key of its .js twin (and of the model in the page)
    weights: tuple[str, ...]  # site-relative paths of the weights files it reads
    live_bytes: int  # its tensors as onnxruntime holds them once rebuilt (dense), in bytes
    fits: bool  # live_bytes within the page's budget: the page can run it, so it has .js twins

    def as_dict(self) -> dict[str, Any]:
        """What the pages and shards read."""
        twin = lambda path: {"path": path, "js": f"{path}.js", "key": path}  # noqa: E731
        return {"onnx": self.onnx, "js": f"{self.onnx}.js", "key": self.key, "weights": [twin(w) for w in self.weights],
                "live_bytes": self.live_bytes, "fits": self.fits}


def short_names(graph: onnx.GraphProto) -> None:
    """Name every intermediate value by its number and drop node names (the exporter's names, most of a graph's bytes)."""
    fixed = {v.name for v in (*graph.input, *graph.output)} | {t.name for t in graph.initializer}
    names: dict[str, str] = {}
    for node in graph.node:
        node.name = ""
        for k, name in enumerate(node.input):
            node.input[k] = names.get(name, name)
        for k, name in enumerate(node.output):
            if name and name not in fixed:
                node.output[k] = names.setdefault(name, f"v{len(names)}")
    del graph.value_info[:]


class OnnxSet:
    """The ONNX models of one run. Their large tensors are stored once each, in files under `weights/` next to them,
    sparse matrices as their nonzeros (exporter/weights.py); every model file refers to them as ONNX external data."""

    def __init__(self, folder: str, live_budget: int) -> None:
        self.folder = folder  # site-relative folder of the run's models
        self.live_budget = live_budget  # bytes of rebuilt tensors the page may hold for one model
        self.files: dict[str, tuple[wt.Stored, bytes]] = {}  # weights file (folder-relative) -> stored tensor, bytes
        self.cache: dict[tuple, wt.Stored] = {}  # tensor storage, shape, dtype -> its stored form
        self.models: list[tuple[str, onnx.ModelProto, nn.Module, list[tuple[torch.Tensor, ...]], ModelFiles]] = []

    def add(self, name: str, proto: onnx.ModelProto, module: nn.Module, feeds: list[tuple[torch.Tensor, ...]]) -> ModelFiles:
        """Fill in the weights of a model exported by _export and queue it as <folder>/<name>.onnx; returns its files."""
        state = module.state_dict()
        declared = {i.name for i in proto.graph.input if i.name not in state}
        used, live, rebuild = [], 0, []
        readers: dict[str, list[onnx.NodeProto]] = {}
        for node in proto.graph.node:
            for x in node.input:
                readers.setdefault(x, []).append(node)
        for inp in [i for i in proto.graph.input if i.name not in declared]:
            tensor_name, tensor = self._orientation(proto.graph, readers, inp.name, state[inp.name])
            array = tensor.detach().cpu().numpy()
            live += array.nbytes
            if array.nbytes <= (INLINE_MAX if array.ndim < 2 else wt.MIN_EXTERNAL):
                proto.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), tensor_name))
                continue
            stored = self._store(tensor, array)
            rebuild += wt.attach(proto.graph, tensor_name, stored)
            used.append(stored.file)
        kept = [i for i in proto.graph.input if i.name in declared]
        del proto.graph.input[:]
        proto.graph.input.extend(kept)
        nodes = rebuild + [n for n in proto.graph.node if n.output[0]]  # the weights first; no dropped transposes
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        short_names(proto.graph)
        stem = f"{self.folder}/{name}"
        files = ModelFiles(onnx=f"{stem}.onnx", key=stem, weights=tuple(f"{self.folder}/{f}" for f in sorted(set(used))),
                           live_bytes=live, fits=live <= self.live_budget)
        self.models.append((stem, proto, module, feeds, files))
        return files

    @staticmethod
    def _orientation(graph: onnx.GraphProto, readers: dict[str, list[onnx.NodeProto]], name: str,
                     tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
        """A weight the graph reads only through a transpose (a Linear's; `readers`: the ops reading each tensor) is
        stored transposed, as `<name>.T`, read where the transpose was: onnxruntime then holds one copy, not the matrix
        and its transpose (nor a copy made by an op in between)."""
        only = readers.get(name, [])
        if tensor.dim() != 2 or len(only) != 1 or only[0].op_type != "Transpose":
            return name, tensor
        if [list(a.ints) for a in only[0].attribute if a.name == "perm"] not in ([], [[1, 0]]):
            return name, tensor
        transposed, out = f"{name}.T", only[0].output[0]
        for node in readers.get(out, []):  # they read the stored transpose; the Transpose op is dropped in add
            node.input[:] = [transposed if x == out else x for x in node.input]
        only[0].output[0] = ""
        return transposed, tensor.t()

    def _store(self, tensor: torch.Tensor, array: np.ndarray) -> wt.Stored:
        """A tensor's stored form, made once per tensor (the circuit models share the full model's)."""
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if key not in self.cache:
            stored, blob = wt.store(array)
            self.files.setdefault(stored.file, (stored, blob))
            self.cache[key] = stored
        return self.cache[key]

    def write(self, site: Any) -> None:
        """Write the weights files, every model, the .js twins of what the page can run, then check each written
        model against PyTorch."""
        in_page = {w for *_, files in self.models if files.fits for w in files.weights}
        for file, (stored, blob) in sorted(self.files.items()):
            path = f"{self.folder}/{file}"
            site.write(path, blob)
            if path in in_page:
                site.write(f"{path}.js", wt.twin_text(path, stored, blob))
        for stem, proto, module, feeds, files in self.models:
            data = proto.SerializeToString()
            site.write(files.onnx, data)
            if files.fits:
                site.write(f"{files.onnx}.js", base64_twin(files.key, data))
            check_parity(str(site.root / files.onnx), module, feeds, stem)

    def stats(self) -> dict[str, int]:
        """Bytes of the weights files, and how many values they hold stored whole and as sparse nonzeros."""
        stored = [s for s, _ in self.files.values()]
        return {"files": len(stored), "bytes": sum(len(b) for _, b in self.files.values()),
                "nonzero": sum(s.nonzero for s in stored if s.block),
                "dense_values": sum(int(np.prod(s.shape)) for s in stored if not s.block)}
