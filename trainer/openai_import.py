"""Import an openai/circuit_sparsity model (beeg_config.json, final_model.pt, tinypython_2k) as a circexport run.

Their GPTConfig and state-dict names are those of `circuit_sparsity/inference/gpt.py`; every option that changes
the forward pass maps onto a ModelConfig field or is refused by name. Their attention sink is applied as in their
flash path (SDPAWithSink); their non-flash path drops it. Absent Linear / LayerNorm biases become zeros, their
`final_logits_bias` buffer becomes the unembedding bias: the forward pass is the same.
"""

from __future__ import annotations

import os
import platform
import re
import reprlib
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import trainer
from trainer.config import DataConfig, ModelConfig, RunConfig, SparsityConfig, from_dict, to_dict
from trainer.errors import UserError
from trainer.fileio import atomic_write_bytes, check_destination, file_sha256, overlaps, read_json, write_json
from trainer.model import GPT
from trainer.run import check_tensors, config_record, empty_model, save_tensors
from trainer.schema import CONFIG, MODEL, TOKENIZER
from trainer.tiktoken_convert import convert
from trainer.tokenizer import tokenizer_sha256

SOURCE_CONFIG, CHECKPOINT = "beeg_config.json", "final_model.pt"
# Their GPTConfig defaults, for the keys a beeg_config.json leaves out (None: derived, as in their __post_init__).
DEFAULTS: dict[str, Any] = {
    "block_size": 1024, "vocab_size": 50304, "n_layer": 12, "n_head": 12, "d_head": None, "d_model": 768,
    "bias": True, "ln_bias": True, "rms_norm": False, "residual_activation_type": "identity",
    "activation_type": "gelu", "afrac": None, "afrac_loctypes": "attn_in,attn_out,mlp_in,mlp_out",
    "tied_unembed": True, "tokenizer_name": "tinypython_2k", "d_mlp": None, "enable_bigram_table": False,
    "learnable_bigram_table": False, "d_pos_emb": None, "sink": False,
}
# Keys that do not change the forward pass of a loaded model (training, kernels, dropout, their loader's extras).
INERT = ("dropout", "debug_nans", "grad_checkpointing", "flash", "enable_sparse_kernels", "dropout_cat_pos_emb",
         "sinusoidal_cat_pos_emb", "bigram_table_rank", "use_tied_aux_matrix", "n_mlp")
# Their AbsTopK location types -> our location names.
LOCTYPES = {
    "attn_in": "attn.act_in", "attn_q": "attn.q", "attn_k": "attn.k", "attn_v": "attn.v",
    "attn_out": "attn.resid_delta", "mlp_in": "mlp.act_in", "mlp_neuron": "mlp.post_act",
    "mlp_out": "mlp.resid_delta", "resid_post_attn": "resid.post_attn", "resid_post_mlp": "resid.post_mlp",
}
LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
ANCHOR = "transformer.h.0.attn.c_attn.weight"  # present in every model; locates the state dict's prefix


@dataclass(frozen=True)
class Source:
    """What their config says, as our model config plus the options that only decide which tensors exist."""

    model: ModelConfig
    bias: bool  # Linear biases stored (else zeros)
    ln_bias: bool  # LayerNorm biases stored (else zeros)
    raw: dict[str, Any]  # beeg_config.json as read
    notes: tuple[str, ...]  # warnings: keys and tensors ignored


@dataclass(frozen=True)
class Imported:
    """A run written by import_openai."""

    path: Path
    cfg: RunConfig
    notes: tuple[str, ...]


def import_openai(src: Path, out: Path, tokenizer_dir: Path | None = None, data: DataConfig = DataConfig()) -> Imported:
    """Read and check everything, then write OUT as a run: config.json, model.safetensors, tokenizer.json."""
    src, out = Path(src), Path(out)
    _check_out(out, src)
    source = read_source_config(src / SOURCE_CONFIG)
    state = read_checkpoint(src / CHECKPOINT)
    model = empty_model(source.model, src / SOURCE_CONFIG)  # takes the checkpoint's tensors as they are: no dense
    # copy, no random init
    tensors, notes = map_weights(state, source, {k: v.shape for k, v in model.state_dict().items()}, src / CHECKPOINT)
    tok = convert(Path(tokenizer_dir) if tokenizer_dir else src)
    if tok.get_vocab_size() > source.model.vocab_size:
        raise UserError(f"the tokenizer has {tok.get_vocab_size()} tokens, more than vocab_size {source.model.vocab_size} "
                        f"in {src / SOURCE_CONFIG}; give --tokenizer the model's own vocab.bpe and encoder.json")
    expected = model.state_dict()
    tensors = {k: v.to(expected[k].dtype) if v.is_floating_point() and k in expected else v for k, v in tensors.items()}
    check_tensors(src / CHECKPOINT, tensors, expected)  # names, shapes, dtypes (bf16 checkpoints read as fp32), finite
    model.load_state_dict(tensors, assign=True)
    name = src.resolve().name or out.name
    data = replace(data, tokenizer=str(source.raw.get("tokenizer_name", DEFAULTS["tokenizer_name"])))  # its name only
    cfg = RunConfig(name=name, model=source.model, sparsity=_sparsity(model), data=data)
    cfg = from_dict(to_dict(cfg), f"{src / SOURCE_CONFIG} (as circexport config)")  # our own checks, by field
    notes = source.notes + notes
    provenance = {
        "code_version": trainer.__version__, "python": platform.python_version(), "torch": torch.__version__,
        "imported_from": "openai/circuit_sparsity", "source_config": source.raw,
        "checkpoint_sha256": file_sha256(src / CHECKPOINT), "tokenizer_sha256": tokenizer_sha256(tok),
        "import_notes": list(notes),
    }
    _write_run(out, config_record(cfg, provenance), model.state_dict(), tok.to_str())
    return Imported(out, cfg, notes)


def read_source_config(path: Path) -> Source:
    """Their beeg_config.json as a Source, refusing by name any option we cannot express."""
    if not path.is_file():
        raise UserError(f"{path}: file not found; give the folder of a circuit_sparsity model (beeg_config.json, final_model.pt)")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object of GPTConfig fields")
    notes = [f"{path.name}: unknown key {k!r} ignored" for k in sorted(set(raw) - set(DEFAULTS) - set(INERT))]
    if raw.get("use_tied_aux_matrix"):
        raise UserError(f"{path}: 'use_tied_aux_matrix' is true; such models are not supported (their own loader refuses them)")
    c = {**DEFAULTS, **{k: v for k, v in raw.items() if k in DEFAULTS}}
    if "n_mlp" in raw:  # their loader renames it
        c["d_mlp"] = raw["n_mlp"]
    for key in ("block_size", "vocab_size", "n_layer", "n_head", "d_model", "d_head", "d_mlp", "d_pos_emb"):
        if c[key] is None and key in ("block_size", "vocab_size", "n_layer", "n_head", "d_model"):
            raise UserError(f"{path}: {key!r} must be set")
        _expect(c, key, int, path, positive=True)
    for key in ("bias", "ln_bias", "rms_norm", "tied_unembed", "enable_bigram_table", "learnable_bigram_table", "sink"):
        _expect(c, key, bool, path)
    for key, allowed in (("residual_activation_type", ("identity", "relu")), ("activation_type", ("gelu", "relu"))):
        if c[key] not in allowed:
            raise UserError(f"{path}: {key!r} is {c[key]!r}; circexport supports {' or '.join(map(repr, allowed))}")
    _expect(c, "afrac", float, path)
    if c["afrac"] is not None and not 0 < c["afrac"] <= 1:
        raise UserError(f"{path}: 'afrac' is {c['afrac']!r}; it must lie in (0, 1]")
    if not isinstance(c["afrac_loctypes"], str):
        raise UserError(f"{path}: 'afrac_loctypes' must be a comma-separated string, got {c['afrac_loctypes']!r}")
    if c["d_model"] % c["n_head"]:
        raise UserError(f"{path}: 'd_model' {c['d_model']} is not a multiple of 'n_head' {c['n_head']}")
    if c["tokenizer_name"] != "tinypython_2k":
        notes.append(f"{path.name}: tokenizer_name is {c['tokenizer_name']!r}; make sure the tokenizer files are that one")
    model, loc_notes = _model_config(c)
    return Source(model=model, bias=c["bias"], ln_bias=c["ln_bias"], raw=raw, notes=tuple(notes + loc_notes))


def _expect(c: dict[str, Any], key: str, kind: type, path: Path, positive: bool = False) -> None:
    """A UserError naming key unless c[key] is None or of the kind (and > 0 when positive)."""
    v = c[key]
    if v is None:
        return
    ok = isinstance(v, bool) if kind is bool else isinstance(v, (int, float) if kind is float else kind) and not isinstance(v, bool)
    if not ok:
        raise UserError(f"{path}: {key!r} must be {'a number' if kind is float else kind.__name__}, got {v!r}")
    if positive and not 0 < v < 2**63:
        raise UserError(f"{path}: {key!r} must be > 0 and fit in 64 bits, got {v!r}")


def _model_config(c: dict[str, Any]) -> tuple[ModelConfig, list[str]]:
    """Our ModelConfig for their (defaults-filled, type-checked) GPTConfig fields."""
    d_head = c["d_head"] or c["d_model"] // c["n_head"]
    d_attn, d_mlp = c["n_head"] * d_head, c["d_mlp"] or 4 * c["d_model"]
    types = c["afrac_loctypes"].split(",")  # unstripped, as their maybe_activation_sparsity compares them
    notes = [f"{SOURCE_CONFIG}: afrac_loctypes entry {t!r} is not a location their model sparsifies; ignored"
             for t in types if t and t not in LOCTYPES]
    locations = tuple(LOCTYPES[t] for t in LOCTYPES if t in types) if c["afrac"] is not None else ()
    model = ModelConfig(
        vocab_size=c["vocab_size"], n_layer=c["n_layer"], d_model=c["d_model"], d_head=d_head, n_ctx=c["block_size"],
        pos_emb=True,  # their wpe always exists: added to the residual, or concatenated when d_pos_emb is set
        bigram=c["enable_bigram_table"], attn_sink=c["sink"],
        afrac=1.0 if c["afrac"] is None else float(c["afrac"]), afrac_locations=locations,
        attn_width=0 if d_attn == c["d_model"] else d_attn, mlp_width=0 if d_mlp == 4 * c["d_model"] else d_mlp,
        norm="rms" if c["rms_norm"] else "layer",
        norm_eps=torch.finfo(torch.float32).eps if c["rms_norm"] else 1e-5,  # nn.RMSNorm(eps=None); their LayerNorm
        activation=c["activation_type"], resid_activation=c["residual_activation_type"], d_pos_emb=c["d_pos_emb"] or 0,
        tied_unembed=c["tied_unembed"], bigram_learnable=c["learnable_bigram_table"], afrac_round="floor",
    )
    return model, notes


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Flat name -> tensor of final_model.pt, loaded with weights_only=True (never unpickling code); a zip-format
    file (any torch.save since 1.6) is memory-mapped, so its tensors are read from the page cache, never copied."""
    if not path.is_file():
        raise UserError(f"{path}: file not found; give the folder of a circuit_sparsity model (beeg_config.json, final_model.pt)")
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu", mmap=zipfile.is_zipfile(path))
    except Exception as e:  # noqa: BLE001 - torch raises many types for a file that is not a checkpoint
        found = re.search(r"(?i:unsupported) (?:global: )?GLOBAL ([\w.]+)", str(e))  # either of torch's wordings
        if found:  # the weights-only unpickler refused an object
            raise UserError(f"{path}: holds an object of class {found.group(1)}, not only tensors, and "
                            "torch.load(weights_only=True) never rebuilds objects; save model.state_dict() instead") from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(e))
        reason = detail.group(1) if detail else (str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    return _flatten(obj, path, "")


def _flatten(obj: Any, path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """name -> tensor of a (nested) dict of tensors, names joined with '.'; anything else is a UserError naming it."""
    if isinstance(obj, torch.Tensor) and prefix:
        return {prefix: obj}
    if not isinstance(obj, Mapping):
        where = f"{prefix!r} is" if prefix else "the file holds"
        raise UserError(f"{path}: {where} {type(obj).__name__} {reprlib.repr(obj)}, not a tensor; "
                        "expected a state dict (a dict of tensors)")
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(key, str):
            raise UserError(f"{path}: key {name!r} is a {type(key).__name__}, not a string; expected a state dict")
        out.update(_flatten(value, path, name))
    return out


def strip_prefix(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Their names without `_orig_mod.` (torch.compile) and without the prefix the model was saved under."""
    state = {re.sub(r"(^|\.)_orig_mod\.", r"\1", k): v for k, v in state.items()}
    prefixes = sorted({p for p in (k[: -len(ANCHOR)] for k in state if k.endswith(ANCHOR)) if p == "" or p.endswith(".")})
    if not prefixes:
        raise UserError(f"{path}: tensor {ANCHOR!r} is missing (under any prefix); is this a circuit_sparsity final_model.pt?")
    if len(prefixes) > 1:
        raise UserError(f"{path}: holds several models (prefixes {', '.join(map(repr, prefixes))}); save one state dict")
    prefix = prefixes[0]
    notes = [f"{path.name}: tensor {k!r} is outside the model ({prefix!r}); ignored" for k in sorted(state) if not k.startswith(prefix)]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, notes


def their_names(m: ModelConfig, bias: bool, ln_bias: bool) -> dict[str, str]:
    """Our tensor name for each of their state-dict names that the config implies (lm_head.bias comes apart)."""
    names = {"transformer.wte.weight": "wte.weight", "transformer.wpe.weight": "wpe.weight"}
    norm_params = ("weight", "bias") if m.norm == "layer" and ln_bias else ("weight",)
    norms = ("ln_1", "ln_2", "ln_p1", "ln_p2") if m.d_pos_emb else ("ln_1", "ln_2")
    for i in range(m.n_layer):
        names |= {f"transformer.h.{i}.{n}.{p}": f"blocks.{i}.{n}.{p}" for n in norms for p in norm_params}
        names |= {f"transformer.h.{i}.{lin}.{p}": f"blocks.{i}.{lin}.{p}" for lin in LINEARS
                  for p in (("weight", "bias") if bias else ("weight",))}
        if m.attn_sink:
            names[f"transformer.h.{i}.attn.attn_imp.sink_logit"] = f"blocks.{i}.attn.sink"
    names |= {f"transformer.ln_f.{p}": f"ln_f.{p}" for p in norm_params}
    if not m.tied_unembed:
        names["lm_head.weight"] = "lm_head.weight"
    if m.bigram:
        names["bigram_table"] = "bigram.weight"
    return names


def map_weights(state: dict[str, torch.Tensor], source: Source, expected: Mapping[str, torch.Size],
                path: Path) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """Our state dict (float32, shapes as `expected`) from theirs, naming any missing or misshapen tensor."""
    theirs, notes = strip_prefix(state, path)
    m = source.model
    out = {}
    names = their_names(m, source.bias, source.ln_bias)
    if m.tied_unembed:
        _tie(theirs, path)
    for their, ours in names.items():
        if their not in theirs:
            raise UserError(f"{path}: tensor {their!r} is missing; {SOURCE_CONFIG} describes a model that has it")
        t = theirs[their].detach().to(torch.float32)
        if ours.endswith("attn.sink") and tuple(t.shape) == (1,):  # one sink logit shared by every head
            t = t.expand(m.n_head)
        if t.shape != expected[ours]:
            raise UserError(f"{path}: tensor {their!r} has shape {tuple(t.shape)}, {SOURCE_CONFIG} implies {tuple(expected[ours])}")
        out[ours] = t.contiguous()
    flb = theirs.get("final_logits_bias", torch.zeros(m.vocab_size))  # their loader, too, fills it with zeros
    if tuple(flb.shape) != (m.vocab_size,):
        raise UserError(f"{path}: tensor 'final_logits_bias' has shape {tuple(flb.shape)}, {SOURCE_CONFIG} implies ({m.vocab_size},)")
    out["lm_head.bias"] = flb.detach().to(torch.float32)
    for ours in sorted(set(expected) - set(out)):  # Linear and LayerNorm biases the config leaves out
        assert ours.endswith(".bias"), ours
        out[ours] = torch.zeros(expected[ours])
    known = set(names) | {"final_logits_bias", "lm_head.weight", "transformer.wte.weight"}
    known |= {f"transformer.h.{i}.attn.bias" for i in range(m.n_layer)}  # their non-flash causal-mask buffer
    notes += [f"{path.name}: tensor {k!r} is not part of the model {SOURCE_CONFIG} describes; ignored"
              for k in sorted(set(theirs) - known)]
    return out, tuple(notes)


def _tie(theirs: dict[str, torch.Tensor], path: Path) -> None:
    """With a tied unembedding either name may hold the matrix; both must agree when both are saved."""
    wte, head = theirs.get("transformer.wte.weight"), theirs.get("lm_head.weight")
    if wte is None and head is not None:
        theirs["transformer.wte.weight"] = head
    elif wte is not None and head is not None and (wte.shape != head.shape or not torch.equal(wte, head)):
        raise UserError(f"{path}: tied_unembed is true but tensor 'lm_head.weight' differs from 'transformer.wte.weight'")


def _sparsity(model: GPT) -> SparsityConfig:
    """The imported weights' sparsity: enabled when under half the block weights are nonzero; l0 = their nonzeros."""
    matrices = {n: p for n, p in model.named_parameters() if p.ndim == 2 and n != "bigram.weight"}
    nonzero = {n: int(torch.count_nonzero(p)) for n, p in matrices.items()}
    blocks = [n for n in matrices if n.startswith("blocks.")]
    total = sum(matrices[n].numel() for n in blocks)
    l0 = sum(nonzero.values())
    return SparsityConfig(enabled=sum(nonzero[n] for n in blocks) < total / 2, l0=max(1, l0))


def _check_out(out: Path, src: Path) -> None:
    """OUT must be new (or an empty folder), apart from SRC, and not under a regular file."""
    if overlaps(out, src):
        raise UserError(f"{out} overlaps the model folder {src}; choose a run directory outside it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; choose a new run directory")
    check_destination(out, "OUT")


def _write_run(out: Path, record: dict[str, Any], tensors: dict[str, torch.Tensor], tokenizer_json: str) -> None:
    """Write the run's three files into a temporary folder, then move it to OUT in one step."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.import-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        write_json(tmp / CONFIG, record)
        save_tensors(tmp / MODEL, tensors, {"imported_from": "openai/circuit_sparsity"}, pack=True)
        atomic_write_bytes(tmp / TOKENIZER, tokenizer_json.encode())
        if out.is_dir():
            out.rmdir()  # empty, checked before
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
