"""Checkpoints shaped like the paper's released models, in openai/circuit_sparsity's format, with a planted circuit.

Writes a model folder as they publish it: beeg_config.json (their GPTConfig keys), final_model.pt (their state-dict
names, dense float32 tensors) and their tokenizer files vocab.bpe + encoder.json (tinypython_2k's data-gym format, made
from our shipped stdlib-2k BPE). The config follows the paper's recipe as far as import-openai reads it: AbsTopK keeps
1/4 of every residual read and write, attention channel and MLP neuron (afrac 0.25 at all eight locations); RMSNorm;
Linear biases stored and sparse like the weights (the paper sparsifies biases too); a sink per head; an untied
unembedding. Every weight matrix, embedding and bias keeps `density` of its entries at random positions, values
N(0, sd) with sd = 1 / sqrt(density * fan_in) (residual writes / sqrt(2 * n_layer)); RMSNorm gains are ones, sinks
N(0, 1). Tensors are made one at a time from one seeded torch.Generator: writing needs one dense copy in memory.

One task, single_double_quote, is planted in layer 0 so that the full model solves it through a known handful of nodes:
the opener tokens `("` and `('` write "a quote is open" (channel QUOTE) and its kind (+ double, - single: channel KIND)
into their embedding; one attention head has a constant query (its q bias), a key reading QUOTE and a value reading
KIND, so the last position attends to the opener (the head's sink takes the attention while there is none); the head
writes the kind into channel ANSWER, which the unembedding reads as `")` against `')`. A constant channel ANCHOR in
every token's embedding sets the scale of each RMSNorm, so the planted values keep their size at any width. The random
weights never read or write the four planted channels, nor the planted head's q, k and v channels.

Usage: python bench/paper_scale_models.py --shape small|csp_yolo1|csp_yolo2 --density 64 --out DIR [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree, not an older installed copy

from trainer.model import GPT  # noqa: E402
from trainer.openai_import import CHECKPOINT, SOURCE_CONFIG, read_source_config, their_names  # noqa: E402
from trainer.tasks.base import answer_id  # noqa: E402
from trainer.tiktoken_convert import ENCODER_JSON, VOCAB_BPE, byte_chars, byte_order, convert  # noqa: E402
from trainer.tokenizer import DEFAULT_NAME, EOT, SHIPPED_DIR  # noqa: E402

TASK = "single_double_quote"
PLANTED = "planted.json"  # what write_checkpoint returns, next to their files (import-openai reads only its own)
OPENERS, CLOSERS = ('("', "('"), ('")', "')")  # double, single: the token that decides and the answer it asks for
# Their GPTConfig fields shared by every shape: the paper's recipe as far as circexport import-openai reads it.
BASE_CONFIG: dict[str, Any] = {
    "vocab_size": 2048, "dropout": 0.0, "bias": True, "ln_bias": True, "rms_norm": True,
    "residual_activation_type": "identity", "activation_type": "gelu", "afrac": 0.25,
    "afrac_loctypes": "attn_in,attn_out,mlp_in,mlp_out,mlp_neuron,attn_q,attn_k,attn_v", "debug_nans": False,
    "tied_unembed": False, "tokenizer_name": "tinypython_2k", "grad_checkpointing": True, "enable_bigram_table": False,
    "learnable_bigram_table": False, "d_pos_emb": None, "dropout_cat_pos_emb": False, "sinusoidal_cat_pos_emb": False,
    "enable_sparse_kernels": False, "flash": True, "sink": True, "bigram_table_rank": None,
}
# Sizes of the planted path (normalized units: the ANCHOR makes each RMSNorm's scale about 1).
EMBED = 4.0  # QUOTE and KIND in an opener's embedding
QUERY = 4.0  # the head's constant query (q bias)
SINK = 3.0  # the head's sink logit: where its attention goes when no opener is in view
OPENER_LOGIT = 16.0  # the head's attention logit of an opener (every other key's is 0): its weight is about 1
UNEMBED = 1.5  # lm_head weight of `")` (+) and `')` (-) on ANSWER
BIAS_SD = 0.1  # random Linear biases


@dataclass(frozen=True)
class Shape:
    """Their GPTConfig fields that set a model's size."""

    n_layer: int
    d_model: int
    n_head: int
    d_head: int
    d_mlp: int
    block_size: int


SHAPES = {
    "small": Shape(n_layer=2, d_model=128, n_head=16, d_head=8, d_mlp=512, block_size=256),  # 0.96M: smoke tests
    "csp_yolo1": Shape(n_layer=12, d_model=1024, n_head=128, d_head=8, d_mlp=4096, block_size=1024),  # 156.4M
    # 413.3M with these fields; their README's 475M would take e.g. n_head 192 (q/k/v 3072 wide): 480.5M, tied 476.3M
    "csp_yolo2": Shape(n_layer=8, d_model=2048, n_head=128, d_head=16, d_mlp=8192, block_size=1024),
}


@dataclass(frozen=True)
class Plant:
    """Where the circuit sits: residual channels, the head and its q/k and v channels, and the token ids."""

    anchor: int  # residual channel: constant in every embedding
    quote: int  # residual channel: an opener is here
    kind: int  # residual channel: +1 double, -1 single
    answer: int  # residual channel the head writes and the unembedding reads
    head: int  # layer-0 head
    qk: int  # its q and k channel (the same offset in the head: they meet in the dot product)
    v: int  # its value channel
    openers: tuple[int, int]  # token ids of `("` and `('`
    closers: tuple[int, int]  # token ids of `")` and `')`

    def nodes(self) -> list[str]:
        """Node ids the answer flows through (mean-ablating any one of them breaks the task)."""
        return [f"0.attn.act_in:{self.quote}", f"0.attn.act_in:{self.kind}", f"0.attn.k:{self.qk}",
                f"0.attn.v:{self.v}", f"0.attn.resid_delta:{self.answer}", f"final_resid:{self.answer}"]

    def constant_nodes(self) -> list[str]:
        """Planted nodes whose value never changes, so mean ablation leaves them as they are (a circuit may drop them)."""
        return [f"0.attn.q:{self.qk}", f"final_resid:{self.anchor}"]

    def channels(self) -> list[int]:
        """The four planted residual channels."""
        return [self.anchor, self.quote, self.kind, self.answer]


def their_config(shape: Shape) -> dict[str, Any]:
    """The beeg_config.json of a shape."""
    return {**BASE_CONFIG, **asdict(shape)}


def dense_params(shape: Shape) -> int:
    """Parameters of the shape's model, zeros included (embeddings, blocks, norms, sinks, unembedding)."""
    d, d_attn, v = shape.d_model, shape.n_head * shape.d_head, BASE_CONFIG["vocab_size"]
    block = (3 * d_attn * (d + 1) + d * (d_attn + 1) + shape.d_mlp * (d + 1) + d * (shape.d_mlp + 1)  # Linears
             + 2 * d + shape.n_head)  # ln_1, ln_2, sink
    return v * d + shape.block_size * d + shape.n_layer * block + d + v * d + v  # wte, wpe, blocks, ln_f, lm_head, bias


def write_tokenizer(folder: Path) -> None:
    """vocab.bpe and encoder.json of our stdlib-2k merges, as tiktoken's data-gym loader reads them."""
    shipped = json.loads((resources.files("trainer") / SHIPPED_DIR / f"{DEFAULT_NAME}.json").read_text(encoding="utf-8"))
    merges = [m.split(" ") if isinstance(m, str) else m for m in shipped["model"]["merges"]]  # HF ByteLevel characters
    chars = byte_chars()  # data-gym writes each byte as the same character as HF ByteLevel
    encoder = {chars[b]: rank for rank, b in enumerate(byte_order())}
    for a, b in merges:
        encoder[a + b] = len(encoder)
    encoder[EOT] = len(encoder)
    (folder / VOCAB_BPE).write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (folder / ENCODER_JSON).write_text(json.dumps(encoder), encoding="utf-8")


def choose_plant(shape: Shape, folder: Path, seed: int) -> Plant:
    """Random planted channels and head (from the seed); token ids from the tokenizer files in folder."""
    g = torch.Generator().manual_seed(seed + 1)
    tok = convert(folder)
    anchor, quote, kind, answer = torch.randperm(shape.d_model, generator=g)[:4].tolist()
    head = int(torch.randint(shape.n_head, (1,), generator=g))
    qk, v = (head * shape.d_head + i for i in torch.randperm(shape.d_head, generator=g)[:2].tolist())
    return Plant(anchor, quote, kind, answer, head, qk, v,
                 openers=tuple(answer_id(tok, t, TASK) for t in OPENERS),  # the id of a single-token string
                 closers=tuple(answer_id(tok, t, TASK) for t in CLOSERS))


def sparse_normal(shape: torch.Size, density: float, sd: float, g: torch.Generator) -> torch.Tensor:
    """A tensor with round(density * numel) entries N(0, sd) at random positions, zeros elsewhere."""
    numel = math.prod(shape)
    keep = round(density * numel)
    out = torch.zeros(numel)  # [numel]
    out[torch.randperm(numel, generator=g)[:keep]] = torch.randn(keep, generator=g) * sd
    return out.view(shape)


def random_tensor(name: str, shape: torch.Size, density: float, n_layer: int, g: torch.Generator) -> torch.Tensor:
    """One tensor of their state dict before planting: norm gains ones, sinks N(0, 1), the rest sparse."""
    if ".ln_" in name:  # ln_1, ln_2, ln_f
        return torch.ones(shape)
    if name.endswith("sink_logit"):  # a scalar per head, dense
        return torch.randn(shape, generator=g)
    if name.endswith(".bias"):
        return sparse_normal(shape, density, BIAS_SD, g)
    if name.startswith("transformer.w"):  # embeddings: entries of size one, like the normalized residual
        return sparse_normal(shape, density, 1.0, g)
    sd = 1 / math.sqrt(density * shape[1])  # a unit-size output from unit-size inputs, at any density
    if name.endswith("c_proj.weight"):  # residual writes, scaled down with depth as in GPT-2
        sd /= math.sqrt(2 * n_layer)
    return sparse_normal(shape, density, sd, g)


def plant(name: str, t: torch.Tensor, p: Plant, shape: Shape) -> None:
    """Keep the random weights off the planted channels and set the planted path's weights, in place."""
    planted = p.channels()
    d_attn = shape.n_head * shape.d_head
    head = slice(p.head * shape.d_head, (p.head + 1) * shape.d_head)
    layer0 = name.startswith("transformer.h.0.")
    if name == "transformer.wte.weight":  # [vocab, d]
        t[:, planted] = 0
        t[:, p.anchor] = math.sqrt(shape.d_model)  # the anchor alone gives the embedding an RMS of 1
        t[list(p.openers), p.quote] = EMBED
        t[p.openers[0], p.kind], t[p.openers[1], p.kind] = EMBED, -EMBED
    elif name in ("transformer.wpe.weight", "lm_head.weight") or name.endswith(("c_attn.weight", "c_fc.weight")):
        t[:, planted] = 0  # [out, d]: no random reads of the planted channels
    elif name.endswith(("c_proj.weight", "c_proj.bias")):
        t[planted] = 0  # [d, in] or [d]: no random writes
    if name == "lm_head.weight":
        t[p.closers[0], p.answer], t[p.closers[1], p.answer] = UNEMBED, -UNEMBED
    elif layer0 and name.endswith("c_attn.weight"):  # [3 * d_attn, d]: rows q, k, v
        for part in range(3):
            t[part * d_attn:(part + 1) * d_attn][head] = 0
        t[d_attn + p.qk, p.quote] = OPENER_LOGIT * math.sqrt(shape.d_head) / (QUERY * EMBED)  # q.k / sqrt(d_head)
        t[2 * d_attn + p.v, p.kind] = 1.0
    elif layer0 and name.endswith("c_attn.bias"):  # [3 * d_attn]
        for part in range(3):
            t[part * d_attn:(part + 1) * d_attn][head] = 0
        t[p.qk] = QUERY
    elif layer0 and name.endswith("attn.c_proj.weight"):  # [d, d_attn]
        t[:, head] = 0
        t[p.answer, p.v] = 1.0
    elif layer0 and name.endswith("sink_logit"):  # [n_head]
        t[p.head] = SINK


def their_shapes(shape: Shape, config_path: Path) -> dict[str, torch.Size]:
    """Their state-dict names (as trainer/openai_import.py reads them) and shapes, from a model built on meta."""
    source = read_source_config(config_path)
    with torch.device("meta"):
        ours = {k: v.shape for k, v in GPT(source.model).state_dict().items()}
    names = {theirs: ours[mine] for theirs, mine in their_names(source.model, source.bias, source.ln_bias).items()}
    return names | {"final_logits_bias": ours["lm_head.bias"]}


def write_checkpoint(folder: Path, shape: Shape | str, density: float, seed: int = 0) -> dict[str, Any]:
    """Write beeg_config.json, final_model.pt, vocab.bpe and encoder.json into folder; return what was written."""
    t0 = time.perf_counter()
    name = shape if isinstance(shape, str) else "custom"
    shape = SHAPES[shape] if isinstance(shape, str) else shape
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SOURCE_CONFIG).write_text(json.dumps(their_config(shape), indent=2), encoding="utf-8")
    write_tokenizer(folder)
    p = choose_plant(shape, folder, seed)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, size in their_shapes(shape, folder / SOURCE_CONFIG).items():  # tensor by tensor: one dense copy in all
        t = torch.zeros(size) if key == "final_logits_bias" else random_tensor(key, size, density, shape.n_layer, g)
        plant(key, t, p, shape)
        state[key] = t
    torch.save(state, folder / CHECKPOINT)
    info = {
        "folder": str(folder), "shape": name, **asdict(shape), "density": density, "seed": seed,
        "params": sum(t.numel() for t in state.values()), "nonzero": sum(int(torch.count_nonzero(t)) for t in state.values()),
        "bytes": {f.name: f.stat().st_size for f in sorted(folder.iterdir())},
        "planted": {"task": TASK, "nodes": p.nodes(), "constant_nodes": p.constant_nodes(), **asdict(p)},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (folder / PLANTED).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def main() -> None:
    """Write one checkpoint and print what was written."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    ap.add_argument("--density", type=int, default=64, help="keep 1 in this many weights")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    info = write_checkpoint(args.out, args.shape, 1 / args.density, args.seed)
    print(f"{info['shape']}: {info['params']:,} parameters ({dense_params(SHAPES[args.shape]):,} expected), "
          f"{info['nonzero']:,} nonzero ({info['nonzero'] / info['params']:.2%}), density 1/{args.density}, "
          f"{info['seconds']} s")
    for fname, size in info["bytes"].items():
        print(f"  {args.out / fname}: {size / 1e6:.1f} MB")
    planted = info["planted"]
    print(f"planted {planted['task']}: head {planted['head']} of layer 0; nodes {', '.join(planted['nodes'])}; "
          f"constant {', '.join(planted['constant_nodes'])}")


if __name__ == "__main__":
    main()
