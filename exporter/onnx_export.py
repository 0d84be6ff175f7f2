"""ONNX models of each run and each circuit, exported from PyTorch and checked against it with onnxruntime."""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from exporter.render import base64_twin
from trainer.errors import UserError
from trainer.masks import parse_node_id
from trainer.model import GPT

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
        mask_fwd = mask.index_select(0, self.to_forward)  # [N] in forward order
        acts: list[torch.Tensor] = []

        def hook(start: int, key: str):
            mean, idx = getattr(self, f"mean_{key}"), getattr(self, f"idx_{key}")

            def fn(x: torch.Tensor) -> torch.Tensor:
                if not idx.numel():  # no circuit node here: the whole location is its mean
                    return mean.expand_as(x)
                # [dim]: the caller's mask on the circuit's channels (1 = the node's own value, 0 = its mean), 0 elsewhere
                keep = torch.zeros_like(mean).scatter(0, idx, mask_fwd[start:start + idx.numel()])
                y = keep * x + (1 - keep) * mean
                acts.append(y.index_select(-1, idx))  # [B, T, n]
                return y
            return fn

        with self.model.hooks({loc: hook(start, key) for loc, start, key in self.slots}):
            logits = self.model(tokens)  # [B, T, vocab]
        pick = answers.unsqueeze(1).expand(-1, tokens.size(1), -1)  # [B, T, 2]
        return logits.gather(-1, pick), torch.cat(acts, -1).index_select(-1, self.to_file)


def export_full(model: GPT, meta: Mapping[str, str]) -> bytes:
    """The whole model: tokens [B, T] -> logits [B, T, vocab]."""
    return _export(model, (torch.zeros(1, 4, dtype=torch.long),), ["tokens"], ["logits"], meta)


def export_circuit(module: CircuitModel, n_nodes: int, meta: Mapping[str, str]) -> bytes:
    """A circuit model (see CircuitModel)."""
    args = (torch.zeros(1, 4, dtype=torch.long), torch.ones(n_nodes), torch.zeros(1, 2, dtype=torch.long))
    return _export(module, args, ["tokens", "mask", "answers"], ["logits", "acts"], meta)


def _export(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str], meta: Mapping[str, str]) -> bytes:
    """Trace to ONNX (legacy exporter, opset 17), with batch and time as dynamic axes and metadata props."""
    import onnx

    dyn = {"tokens": {0: "batch", 1: "time"}, **{o: {0: "batch", 1: "time"} for o in outputs}}
    if "answers" in inputs:
        dyn["answers"] = {0: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, buf, dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=dyn, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    for k, v in sorted(meta.items()):
        proto.metadata_props.add(key=k, value=v)
    return proto.SerializeToString()


@torch.no_grad()
def check_parity(model: bytes | str, module: nn.Module, feeds: list[tuple[torch.Tensor, ...]], name: str) -> float:
    """Max |onnxruntime - PyTorch| over every output and feed (model: bytes, or a path whose external data
    lies next to it); a UserError above TOLERANCE."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    worst = 0.0
    for args in feeds:
        got = sess.run(None, {n: a.numpy() for n, a in zip(names, args)})
        want = module(*args)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            worst = max(worst, float(np.abs(g - w.numpy()).max()))
    if not worst <= TOLERANCE:
        raise UserError(f"ONNX parity failed for {name}: onnxruntime and PyTorch differ by {worst:.3g} > {TOLERANCE}; "
                        "the model was not shipped")
    return worst


def parity_masks(n: int, seed: int = 0) -> list[torch.Tensor]:
    """Masks that exercise the circuit input: all nodes on, and a random half off."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.ones(n), (torch.rand(n, generator=gen) < 0.5).float()]


class OnnxSet:
    """The ONNX models of one run. Their large tensors are stored once, in `weights.bin` next to them, as ONNX
    external data (every circuit model holds the whole model's weights, so this keeps the site small)."""

    WEIGHTS = "weights.bin"
    MIN_EXTERNAL = 1024  # bytes: smaller tensors stay inside the model file

    def __init__(self, folder: str) -> None:
        self.folder = folder  # site-relative folder of the run's models
        self.blob = bytearray()
        self.offsets: dict[str, int] = {}  # sha256 of a tensor's bytes -> its offset in weights.bin
        self.models: list[tuple[str, bytes, nn.Module, list[tuple[torch.Tensor, ...]]]] = []

    def add(self, name: str, onnx_bytes: bytes, module: nn.Module, feeds: list[tuple[torch.Tensor, ...]]) -> dict[str, str]:
        """Queue a model (self-contained bytes) to be written as <folder>/<name>.onnx; returns its paths."""
        import onnx
        from onnx import external_data_helper, numpy_helper

        proto = onnx.load_from_string(onnx_bytes)
        for init in proto.graph.initializer:
            raw = numpy_helper.to_array(init).tobytes()
            if len(raw) < self.MIN_EXTERNAL:
                continue
            key = hashlib.sha256(raw).hexdigest()
            if key not in self.offsets:
                self.blob += b"\0" * (-len(self.blob) % 64)  # aligned tensors
                self.offsets[key] = len(self.blob)
                self.blob += raw
            for field in ("float_data", "int32_data", "int64_data", "double_data"):
                init.ClearField(field)
            init.raw_data = raw
            external_data_helper.set_external_data(init, self.WEIGHTS, self.offsets[key], len(raw))
            init.ClearField("raw_data")
        stem = f"{self.folder}/{name}"
        self.models.append((stem, proto.SerializeToString(), module, feeds))
        return {"onnx": f"{stem}.onnx", "js": f"{stem}.onnx.js", "key": stem,
                "weights": f"{self.folder}/{self.WEIGHTS}", "weights_js": f"{self.folder}/{self.WEIGHTS}.js"}

    def write(self, site: Any) -> dict[str, int]:
        """Write weights.bin, every model and their .js twins, then check each written model against PyTorch."""
        if not self.models:
            return {}
        site.write(f"{self.folder}/{self.WEIGHTS}", bytes(self.blob))
        site.write(f"{self.folder}/{self.WEIGHTS}.js", base64_twin(f"{self.folder}/{self.WEIGHTS}", bytes(self.blob)))
        sizes = {}
        for stem, data, module, feeds in self.models:
            site.write(f"{stem}.onnx", data)
            site.write(f"{stem}.onnx.js", base64_twin(stem, data))
            check_parity(str(site.root / f"{stem}.onnx"), module, feeds, stem)
            sizes[stem] = len(data)
        return sizes
