"""The weights of a run's ONNX models on the site: every large tensor in a file of its own under `weights/`, named by
its content; a sparse matrix stored as its nonzero values and their positions, which a few standard ONNX ops in the
graph turn back into the dense matrix (so onnxruntime in Python and in the page loads each model file as it is);
and a compressed .js twin of each file, from which the page rebuilds the file's bytes when opened from file://.

Positions: the matrix, flattened, is cut into blocks of BLOCK entries (256 or 65,536, whichever stores fewer bytes);
each nonzero keeps its offset in its block (uint8 or uint16) and each block its count of nonzeros, so a matrix at
density 1/64 costs 4 + 1.25 bytes per nonzero and at 1/256 4 + 2 bytes. The twin stores the same bytes gzipped, after
a transform that makes them compress: the bytes of each float32 split into four planes, offsets as differences.
Values round-trip exactly, but for the sign of zero (-0.0 is stored as no entry).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

TWIN_FORMAT = 1
MIN_EXTERNAL = 1024  # bytes: smaller tensors stay inside the model file
SPARSE_MAX_DENSITY = 0.5  # a float32 tensor of 2+ dims with at most this fraction nonzero is stored as its nonzeros
BLOCKS = (256, 65536)  # block sizes of the position code (offsets of one or two bytes)
ALIGN = 64  # bytes: each part of a weights file starts at a multiple of this
FOLDER = "weights"


@dataclass(frozen=True)
class Part:
    """One stored array of a weights file: the graph tensor `<name>::<suffix>` (or `<name>` for a dense tensor)."""

    suffix: str  # "values", "offsets", "counts"; "" for a tensor stored whole
    array: np.ndarray  # 1-D for a sparse tensor's parts; the tensor itself when stored whole
    codec: str  # how the twin transforms it before gzip: "planes" (the bytes of 4-byte numbers in four planes), "diff8" / "diff16" (differences), "raw"


@dataclass(frozen=True)
class Stored:
    """A tensor as the site stores it: its file (under the model folder), the parts in it and their offsets."""

    file: str  # "weights/<sha256 prefix>.bin"
    shape: tuple[int, ...]
    elem_type: int  # onnx TensorProto data type of the tensor
    block: int  # block size of a sparse tensor's offsets (0: stored whole)
    parts: tuple[Part, ...]
    offsets: tuple[int, ...]  # byte offset of each part in the file
    dense_bytes: int  # what the tensor takes once rebuilt (what onnxruntime holds in memory)

    @property
    def nonzero(self) -> int:
        """Number of stored nonzero values of a sparse tensor (numel for a tensor stored whole)."""
        return int(self.parts[0].array.size)


def codec_of(array: np.ndarray) -> str:
    """The twin transform of an array stored whole: byte planes for 4-byte numbers, else the bytes as they are."""
    return "planes" if array.dtype.itemsize == 4 else "raw"


def encode(array: np.ndarray) -> tuple[int, tuple[Part, ...]]:
    """(block, parts) of a tensor: (0, [whole]) unless it is a sparse float32 matrix, else values, offsets, counts."""
    flat = array.reshape(-1)  # [numel]
    if array.dtype != np.float32 or array.ndim < 2:
        return 0, (Part("", array, codec_of(array)),)
    nz = np.flatnonzero(flat)  # [nnz] int64, ascending
    if nz.size > SPARSE_MAX_DENSITY * flat.size:
        return 0, (Part("", array, codec_of(array)),)
    counts_by_block = {b: np.bincount(nz // b, minlength=-(-flat.size // b)) for b in BLOCKS}  # [n_blocks] each
    block = min(BLOCKS, key=lambda b: _position_bytes(nz.size, b, counts_by_block[b]))
    counts = counts_by_block[block]
    offsets = (nz % block).astype(np.uint8 if block == 256 else np.uint16)  # [nnz]
    return block, (Part("values", flat[nz], "planes"), Part("offsets", offsets, "diff8" if block == 256 else "diff16"),
                   Part("counts", counts.astype(_count_type(counts)), "raw"))


def _position_bytes(nnz: int, block: int, counts: np.ndarray) -> int:
    """Bytes of the position code with this block size: nnz offsets plus one count per block."""
    return nnz * (1 if block == 256 else 2) + counts.size * np.dtype(_count_type(counts)).itemsize


def _count_type(counts: np.ndarray) -> type:
    """The narrowest integer type that holds every block's count of nonzeros."""
    most = int(counts.max(initial=0))
    return np.uint8 if most < 1 << 8 else np.uint16 if most < 1 << 16 else np.int32


def store(array: np.ndarray) -> tuple[Stored, bytes]:
    """A tensor as stored on the site, and the bytes of its weights file."""
    block, parts = encode(np.ascontiguousarray(array))
    blob, offsets = bytearray(), []
    for part in parts:
        blob += b"\0" * (-len(blob) % ALIGN)
        offsets.append(len(blob))
        blob += part.array.tobytes()
    header = json.dumps([list(array.shape), str(array.dtype), block]).encode()
    name = hashlib.sha256(header + bytes(blob)).hexdigest()[:20]
    elem = helper.np_dtype_to_tensor_dtype(array.dtype)
    return Stored(file=f"{FOLDER}/{name}.bin", shape=tuple(array.shape), elem_type=elem, block=block, parts=parts,
                  offsets=tuple(offsets), dense_bytes=array.nbytes), bytes(blob)


def attach(graph, name: str, stored: Stored) -> list:
    """Make graph tensor `name` the stored tensor: an external initializer, or external parts; returns the ops that
    rebuild it from its parts (none for a tensor stored whole), to run before the graph's own."""
    parts = []
    for part, offset in zip(stored.parts, stored.offsets):
        t = TensorProto(name=f"{name}::{part.suffix}" if part.suffix else name,
                        data_type=helper.np_dtype_to_tensor_dtype(part.array.dtype), dims=part.array.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", stored.file), ("offset", str(offset)), ("length", str(part.array.nbytes))):
            t.external_data.add(key=k, value=v)
        parts.append(t)
    graph.initializer.extend(parts)
    if not stored.block:
        return []
    graph.initializer.extend(_constants(name, stored))
    return rebuild_nodes(name, stored)


def _constants(name: str, stored: Stored) -> list[TensorProto]:
    """The small int64 constants the rebuilding ops read."""
    nnz, numel = stored.nonzero, int(np.prod(stored.shape))
    values = {"nnz1": [nnz + 1], "nnz": [nnz], "n_blocks": [stored.parts[2].array.size], "numel": [numel],
              "shape": list(stored.shape), "zero": [0], "one": 1, "axis": 0, "block": stored.block}
    return [numpy_helper.from_array(np.array(v, dtype=np.int64), f"{name}::{k}") for k, v in values.items()]


def rebuild_nodes(name: str, stored: Stored) -> list:
    """Ops that rebuild a sparse tensor from its parts: the block of each nonzero from the counts, its position in the
    flattened tensor = block * BLOCK + offset, then a scatter of the values into zeros (folded to a constant when the
    session starts; each tensor has zeros of its own, since onnxruntime may scatter into them in place)."""
    p = f"{name}::"
    zeros = lambda dtype, v: helper.make_tensor("", dtype, [1], [v])  # noqa: E731
    node = helper.make_node
    return [
        node("Cast", [p + "counts"], [p + "c"], to=TensorProto.INT64),  # [n_blocks]
        node("CumSum", [p + "c", p + "axis"], [p + "ends"]),
        node("Sub", [p + "ends", p + "c"], [p + "starts"]),  # [n_blocks] index of each block's first nonzero
        node("ConstantOfShape", [p + "nnz1"], [p + "z"], value=zeros(TensorProto.INT64, 0)),
        node("ConstantOfShape", [p + "n_blocks"], [p + "ones"], value=zeros(TensorProto.INT64, 1)),
        node("ScatterElements", [p + "z", p + "starts", p + "ones"], [p + "marks"], axis=0, reduction="add"),
        node("CumSum", [p + "marks", p + "axis"], [p + "run"]),  # [nnz + 1] blocks started so far
        node("Slice", [p + "run", p + "zero", p + "nnz"], [p + "run_nnz"]),
        node("Sub", [p + "run_nnz", p + "one"], [p + "block_of"]),  # [nnz] block of each nonzero
        node("Mul", [p + "block_of", p + "block"], [p + "base"]),
        node("Cast", [p + "offsets"], [p + "o"], to=TensorProto.INT64),
        node("Add", [p + "base", p + "o"], [p + "position"]),  # [nnz] in the flattened tensor
        node("ConstantOfShape", [p + "numel"], [p + "empty"], value=zeros(stored.elem_type, 0)),
        node("ScatterElements", [p + "empty", p + "position", p + "values"], [p + "flat"], axis=0),
        node("Reshape", [p + "flat", p + "shape"], [name]),
    ]


def decode(stored: Stored, blob: bytes) -> np.ndarray:
    """The tensor back from its weights file (what the ops of rebuild_nodes compute; used by tests and checks)."""
    arrays = [np.frombuffer(blob, part.array.dtype, part.array.size, off) for part, off in zip(stored.parts, stored.offsets)]
    if not stored.block:
        return arrays[0].reshape(stored.shape)
    values, offsets, counts = arrays
    block_of = np.repeat(np.arange(counts.size), counts.astype(np.int64))  # [nnz]
    flat = np.zeros(int(np.prod(stored.shape)), values.dtype)
    flat[block_of * stored.block + offsets] = values
    return flat.reshape(stored.shape)


def twin_text(key: str, stored: Stored, blob: bytes) -> str:
    """A weights file as a classic script for file://: its parts transformed (see module doc), gzipped, base64."""
    packed = b"".join(_transform(part) for part in stored.parts)
    record = {"format_version": TWIN_FORMAT, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
              "parts": [[off, part.array.nbytes, part.codec] for part, off in zip(stored.parts, stored.offsets)],
              "gzip": base64.b64encode(gzip.compress(packed, compresslevel=6, mtime=0)).decode("ascii")}
    return f"cx.register({json.dumps(key)},{json.dumps(record, sort_keys=True, separators=(',', ':'))});\n"


def _transform(part: Part) -> bytes:
    """A part's bytes as the twin stores them before gzip."""
    a = part.array.reshape(-1)
    if part.codec == "planes":
        return a.view(np.uint8).reshape(-1, 4).T.tobytes()  # byte planes: the exponents' plane compresses
    if part.codec in ("diff8", "diff16"):
        d = np.diff(a, prepend=a.dtype.type(0))  # wraps around: undone by a running sum of the same width
        return d.view(np.uint8).reshape(-1, a.dtype.itemsize).T.tobytes()
    return a.tobytes()


def untwin(record: dict) -> bytes:
    """A weights file's bytes from its twin's record (the page's runtime.js does the same)."""
    packed = gzip.decompress(base64.b64decode(record["gzip"]))
    out, src = bytearray(record["bytes"]), 0
    for off, length, codec in record["parts"]:
        chunk = np.frombuffer(packed, np.uint8, length, src)
        src += length
        if codec == "planes":
            chunk = chunk.reshape(4, -1).T
        elif codec in ("diff8", "diff16"):
            width = np.uint8 if codec == "diff8" else np.uint16
            chunk = np.cumsum(chunk.reshape(np.dtype(width).itemsize, -1).T.copy().view(width).reshape(-1), dtype=width)
        elif codec != "raw":
            raise ValueError(f"unknown weights codec {codec!r}")
        out[off:off + length] = np.ascontiguousarray(chunk).tobytes()
    return bytes(out)
