"""Tests of `circexport import-openai`: random models written in openai/circuit_sparsity's format (names and config
fields of their gpt.py) are imported and checked against a forward pass written here from their code's semantics;
their tiktoken files convert to a tokenizer that encodes like tiktoken's BPE; bad input is refused in one line."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from exporter.cli import main
from trainer.config import DataConfig
from trainer.errors import UserError
from trainer.openai_import import import_openai
from trainer.run import load_run
from trainer.tiktoken_convert import convert
from trainer.tokenizer import SPLIT_PATTERN

V = 2048  # the tinypython_2k vocabulary: 2047 BPE tokens, end-of-text 2047
ALL_LOCTYPES = "attn_in,attn_q,attn_k,attn_v,attn_out,mlp_in,mlp_neuron,mlp_out"


# --- their tokenizer files, from our shipped BPE written the way tiktoken's data-gym loader reads them ---

def data_gym_bytes() -> list[int]:
    """Bytes in tiktoken's data-gym rank order: printable (not space) first, then the rest."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    return printable + [b for b in range(256) if b not in printable]


def data_gym_char() -> dict[int, str]:
    """The character data-gym writes for each byte."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    rest = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(rest)}}


def write_data_gym(folder: Path, merges: list[tuple[bytes, bytes]]) -> dict[bytes, int]:
    """vocab.bpe and encoder.json for these merges; returns the mergeable ranks tiktoken would build."""
    ch = data_gym_char()
    text = lambda b: "".join(ch[x] for x in b)  # noqa: E731
    ranks = {bytes([b]): i for i, b in enumerate(data_gym_bytes())}
    for a, b in merges:
        ranks[a + b] = len(ranks)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.bpe").write_text("#version: 0.2\n" + "".join(f"{text(a)} {text(b)}\n" for a, b in merges), encoding="utf-8")
    encoder = {text(t): r for t, r in ranks.items()} | {"<|endoftext|>": len(ranks)}
    (folder / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    return ranks


@pytest.fixture(scope="module")
def tinypython(tmp_path_factory) -> tuple[Path, dict[bytes, int]]:
    """A 2048-token tokenizer in tinypython_2k's format (our stdlib-2k merges) and its ranks."""
    shipped = json.loads((Path(__file__).parents[2] / "trainer" / "assets" / "stdlib-2k.json").read_text())
    back = {c: b for b, c in data_gym_char().items()}  # HF ByteLevel uses the same byte characters
    to_bytes = lambda s: bytes(back[c] for c in s)  # noqa: E731
    merges = [m.split(" ") if isinstance(m, str) else m for m in shipped["model"]["merges"]]
    folder = tmp_path_factory.mktemp("tinypython")
    return folder, write_data_gym(folder, [(to_bytes(a), to_bytes(b)) for a, b in merges])


def reference_encode(text: str, ranks: dict[bytes, int]) -> list[int]:
    """tiktoken's encode_ordinary: split by the pattern, then merge the lowest-ranked adjacent pair, leftmost first."""
    regex = pytest.importorskip("regex")
    ids = []
    for piece in regex.findall(SPLIT_PATTERN, text):
        parts = [bytes([b]) for b in piece.encode("utf-8")]
        if piece.encode("utf-8") in ranks:
            parts = [piece.encode("utf-8")]
        while len(parts) > 1:
            found = [(ranks[parts[i] + parts[i + 1]], i) for i in range(len(parts) - 1) if parts[i] + parts[i + 1] in ranks]
            if not found:
                break
            _, i = min(found)
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        ids += [ranks[p] for p in parts]
    return ids


SAMPLES = [
    "def f(x):\n    return x ** 2  # square\n\n\nclass A(B):\n\tpass\r\n",
    "    if a == 1:\n        b = [1, 2, 3]]\n    elif c:\n        d = {'k': \"v\"}\n",
    "números 12345 ünïcödé — “quotes” 日本語 🙂\u00a0\u00ad tabs\t\t and   spaces   \n\n\n",
    "x=None;y=.5e-3//2 ;;; /* */ <|endoftext|-like text ]]\n]\n",
]


def stdlib_text() -> str:
    """About 100 kB of real Python source."""
    import argparse
    import dataclasses
    import textwrap

    return "".join(Path(m.__file__).read_text(encoding="utf-8") for m in (argparse, dataclasses, textwrap))


def test_converted_tokenizer_encodes_like_tiktoken_bpe(tinypython):
    folder, ranks = tinypython
    tok = convert(folder)
    assert tok.get_vocab_size() == V and tok.token_to_id("<|endoftext|>") == 2047
    for text in SAMPLES + [stdlib_text()]:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert ids == reference_encode(text, ranks)
        assert tok.decode(ids) == text


def test_converted_tokenizer_matches_tiktoken_itself(tinypython, monkeypatch):
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    folder, _ = tinypython
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the files, never a cached copy
    ranks = data_gym_to_mergeable_bpe_ranks(str(folder / "vocab.bpe"), str(folder / "encoder.json"))
    enc = tiktoken.Encoding("tinypython_2k", pat_str=SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 2047})
    tok = convert(folder)
    for text in SAMPLES + [stdlib_text()]:
        assert tok.encode(text, add_special_tokens=False).ids == enc.encode_ordinary(text)
    text = "x = 1<|endoftext|>def"  # the end-of-text marker in text is the special token, as tiktoken allows it
    assert tok.encode(text, add_special_tokens=False).ids == enc.encode(text, allowed_special="all")


def test_merges_beyond_the_listed_ones_are_made_as_tiktoken_does(tmp_path):
    # abc is listed as a + bc, yet tiktoken reaches it from ab + c (any split whose parts are tokens)
    ranks = write_data_gym(tmp_path, [(b"a", b"b"), (b"b", b"c"), (b"a", b"bc")])
    tok = convert(tmp_path)
    assert tok.encode("abcd", add_special_tokens=False).ids == reference_encode("abcd", ranks) == [ranks[b"abc"], ranks[b"d"]]


def test_tokenizer_files_that_disagree_are_refused(tmp_path):
    write_data_gym(tmp_path, [(b"a", b"b")])
    enc = json.loads((tmp_path / "encoder.json").read_text())
    enc["ab"] = 7
    (tmp_path / "encoder.json").write_text(json.dumps(enc))
    with pytest.raises(UserError, match=r"encoder.json: token b'ab' has id 7, vocab.bpe gives 256"):
        convert(tmp_path)
    (tmp_path / "vocab.bpe").unlink()
    with pytest.raises(UserError, match=r"vocab.bpe: file not found"):
        convert(tmp_path)


# --- their models: config, random weights under their names, and their forward pass ---

def their_config(**kw) -> dict:
    """A beeg_config.json as their training writes it: GPTConfig fields plus their loader's extra keys."""
    base = dict(block_size=16, vocab_size=V, n_layer=2, n_head=2, d_head=16, d_model=24, d_mlp=40, dropout=0.0,
                bias=True, ln_bias=True, rms_norm=True, residual_activation_type="identity", activation_type="gelu",
                afrac=0.25, afrac_loctypes=ALL_LOCTYPES, debug_nans=False, tied_unembed=False,
                tokenizer_name="tinypython_2k", grad_checkpointing=True, enable_bigram_table=False,
                learnable_bigram_table=False, d_pos_emb=None, dropout_cat_pos_emb=False, sinusoidal_cat_pos_emb=False,
                enable_sparse_kernels=False, flash=True, sink=False, bigram_table_rank=None)
    return base | kw


def dims(c: dict) -> tuple[int, int, int, int]:
    """d_head, q/k/v width, MLP width and sublayer input width, as their GPTConfig derives them."""
    d_head = c["d_head"] or c["d_model"] // c["n_head"]
    return d_head, c["n_head"] * d_head, c["d_mlp"] or 4 * c["d_model"], c["d_model"] + (c["d_pos_emb"] or 0)


def their_state(c: dict, seed: int = 0, shared_sink: bool = False) -> dict[str, torch.Tensor]:
    """Random weights with the names and shapes of their GPT's state_dict (nonzero biases, gains, sinks, tables)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, std=0.3: torch.randn(*shape, generator=g) * std  # noqa: E731
    d, d_pos = c["d_model"], c["d_pos_emb"]
    d_head, d_attn, d_mlp, d_in = dims(c)
    sd = {"transformer.wte.weight": r(V, d), "transformer.wpe.weight": r(c["block_size"], d_pos or d)}

    def norm(name: str, dim: int) -> None:
        sd[f"{name}.weight"] = 1 + r(dim, std=0.2)
        if not c["rms_norm"] and c["ln_bias"]:
            sd[f"{name}.bias"] = r(dim, std=0.2)

    for i in range(c["n_layer"]):
        h = f"transformer.h.{i}."
        for ln, dim in (("ln_1", d), ("ln_2", d)) + ((("ln_p1", d_pos), ("ln_p2", d_pos)) if d_pos else ()):
            norm(h + ln, dim)
        for lin, (n_out, n_in) in {"attn.c_attn": (3 * d_attn, d_in), "attn.c_proj": (d, d_attn),
                                   "mlp.c_fc": (d_mlp, d_in), "mlp.c_proj": (d, d_mlp)}.items():
            sd[f"{h}{lin}.weight"] = r(n_out, n_in, std=n_in ** -0.5)
            if c["bias"]:
                sd[f"{h}{lin}.bias"] = r(n_out, std=0.2)
        if c["sink"]:
            sd[f"{h}attn.attn_imp.sink_logit"] = r(1 if shared_sink else c["n_head"], std=1.0)
    norm("transformer.ln_f", d)
    sd["lm_head.weight"] = sd["transformer.wte.weight"] if c["tied_unembed"] else r(V, d)
    sd["final_logits_bias"] = r(V, std=0.2)
    if c["enable_bigram_table"]:
        sd["bigram_table"] = r(V, V, std=0.2)
    return sd


def their_forward(c: dict, sd: dict[str, torch.Tensor], idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and hooked activations of their gpt.py (flash path, eval mode), written from its code."""
    B, T = idx.shape
    d_head, d_attn, _, _ = dims(c)
    n_head, types = c["n_head"], c["afrac_loctypes"].split(",")
    hooks = {}

    def sparsity(x, loctype):  # GPTConfig.maybe_activation_sparsity
        if c["afrac"] is None or loctype not in types:
            return x
        _, inds = torch.topk(x.abs(), int(c["afrac"] * x.shape[-1]), dim=-1, sorted=False)
        return torch.zeros_like(x).scatter_(-1, inds, x.gather(-1, inds))

    def norm(x, name):
        w = sd[f"{name}.weight"]
        if c["rms_norm"]:
            return F.rms_norm(x, w.shape, w)  # nn.RMSNorm(eps=None)
        return F.layer_norm(x, w.shape, w, sd.get(f"{name}.bias"), 1e-5)

    def linear(x, name):
        return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))

    def resid(x, loctype):
        return sparsity(torch.relu(x) if c["residual_activation_type"] == "relu" else x, loctype)

    def attend(q, k, v, sink):  # F.scaled_dot_product_attention, or SDPAWithSink
        if sink is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / math.sqrt(d_head))
        k = torch.cat([torch.zeros(B, n_head, 1, d_head), k], dim=2)
        v = torch.cat([torch.zeros(B, n_head, 1, d_head), v], dim=2)
        allow = torch.cat([torch.ones(T, 1, dtype=torch.bool), torch.ones(T, T, dtype=torch.bool).tril()], dim=1)
        mask = torch.where(allow, 0.0, torch.finfo(torch.float32).min)
        mask = mask + F.pad(torch.ones(1, 1, 1, 1), (0, T)) * sink.view(1, -1, 1, 1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1 / math.sqrt(d_head))

    pos = sd["transformer.wpe.weight"][:T].unsqueeze(0)  # [1, T, d or d_pos]
    cat = c["d_pos_emb"] is not None
    x = sd["transformer.wte.weight"][idx] + (0 if cat else pos)
    for i in range(c["n_layer"]):
        h = f"transformer.h.{i}."
        with_pos = lambda x, ln: torch.cat([x, norm(pos, h + ln).expand(B, -1, -1)], -1) if cat else x  # noqa: E731
        a = hooks[f"{i}.attn.act_in"] = sparsity(with_pos(norm(x, h + "ln_1"), "ln_p1"), "attn_in")
        q, k, v = linear(a, h + "attn.c_attn").split(d_attn, dim=2)
        k, q, v = sparsity(k, "attn_k"), sparsity(q, "attn_q"), sparsity(v, "attn_v")
        hooks[f"{i}.attn.q"], hooks[f"{i}.attn.k"], hooks[f"{i}.attn.v"] = q, k, v
        q, k, v = (t.view(B, T, n_head, d_head).transpose(1, 2) for t in (q, k, v))
        y = attend(q, k, v, sd.get(f"{h}attn.attn_imp.sink_logit") if c["sink"] else None)
        y = y.transpose(1, 2).reshape(B, T, d_attn)
        delta = hooks[f"{i}.attn.resid_delta"] = sparsity(linear(y, h + "attn.c_proj"), "attn_out")
        x = resid(x + delta, "resid_post_attn")
        a = hooks[f"{i}.mlp.act_in"] = sparsity(with_pos(norm(x, h + "ln_2"), "ln_p2"), "mlp_in")
        act = {"gelu": F.gelu, "relu": F.relu}[c["activation_type"]]
        z = hooks[f"{i}.mlp.post_act"] = sparsity(act(linear(a, h + "mlp.c_fc")), "mlp_neuron")
        delta = hooks[f"{i}.mlp.resid_delta"] = sparsity(linear(z, h + "mlp.c_proj"), "mlp_out")
        x = resid(x + delta, "resid_post_mlp")
    hooks["final_resid"] = x
    logits = F.linear(norm(x, "transformer.ln_f"), sd["lm_head.weight"]) + sd.get("final_logits_bias", 0)
    if c["enable_bigram_table"]:
        logits = logits + sd["bigram_table"][idx]
    return logits, hooks


def write_model(folder: Path, config: dict, state: dict, tokenizer: Path | None = None) -> Path:
    """A model folder as they publish it: beeg_config.json, final_model.pt (and the tokenizer files)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "beeg_config.json").write_text(json.dumps(config))
    torch.save(state, folder / "final_model.pt")
    for name in ("vocab.bpe", "encoder.json") if tokenizer else ():
        (folder / name).write_bytes((tokenizer / name).read_bytes())
    return folder


def tokens(c: dict, B: int = 3) -> torch.Tensor:
    return torch.randint(0, V, (B, c["block_size"]), generator=torch.Generator().manual_seed(1))


def assert_same_forward(run_dir: Path, c: dict, sd: dict) -> None:
    """Our imported model's logits and every hook activation equal their forward pass within 1e-5."""
    model = load_run(run_dir).model
    idx = tokens(c)
    logits, cache = model.run_with_cache(idx)
    ref_logits, ref = their_forward(c, sd, idx)
    assert set(ref) == set(model.node_locations())
    for name in model.node_locations():
        assert cache[name].shape == ref[name].shape, name
        assert (cache[name] - ref[name]).abs().max() <= 1e-5, name
    assert (logits - ref_logits).abs().max() <= 1e-5


CASES = {  # option -> their config fields (on top of their_config's: RMSNorm, untied, d_head 16 apart from d_model 24)
    "rmsnorm_untied_all_locations": {},
    "layernorm_relu_tied_dense": dict(rms_norm=False, activation_type="relu", tied_unembed=True, afrac=None),
    "layernorm_without_biases": dict(rms_norm=False, ln_bias=False, bias=False, d_head=None, d_mlp=None,
                                     afrac_loctypes="attn_in,attn_out,mlp_in,mlp_out"),
    "position_embedding_concatenated": dict(d_pos_emb=8, sinusoidal_cat_pos_emb=True, rms_norm=False),
    "relu_residual_with_topk": dict(residual_activation_type="relu", afrac=0.5,
                                    afrac_loctypes="attn_q,attn_k,attn_v,mlp_neuron,resid_post_attn,resid_post_mlp"),
    "bigram_buffer_and_sink": dict(enable_bigram_table=True, sink=True, afrac=0.3),
    "learnable_bigram_and_shared_sink": dict(enable_bigram_table=True, learnable_bigram_table=True, sink=True),
}


@pytest.mark.parametrize("case", CASES)
def test_imported_model_computes_their_forward_pass(case, tinypython, tmp_path):
    c = their_config(**CASES[case])
    sd = their_state(c, shared_sink=case.startswith("learnable"))
    src = write_model(tmp_path / "src", c, sd, tinypython[0])
    imported = import_openai(src, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert imported.notes == ()  # every key of a real beeg_config.json is understood
    assert_same_forward(tmp_path / "run", c, sd)


def test_config_options_map_to_model_fields(tinypython, tmp_path):
    c = their_config(**CASES["position_embedding_concatenated"], tied_unembed=True, enable_bigram_table=True)
    src = write_model(tmp_path / "src", c, their_state(c), tinypython[0])
    m = import_openai(src, tmp_path / "run").cfg.model
    assert (m.d_head, m.n_head, m.d_attn, m.d_mlp, m.d_in, m.n_ctx) == (16, 2, 32, 40, 32, 16)
    assert (m.norm, m.norm_eps, m.tied_unembed, m.bigram, m.bigram_learnable, m.afrac_round) == ("layer", 1e-5, True, True, False, "floor")
    model = load_run(tmp_path / "run").model
    assert [model.location_dim(f"0.{loc}") for loc in ("attn.act_in", "attn.q", "attn.resid_delta", "mlp.act_in", "mlp.post_act")] == [32, 32, 24, 32, 40]
    assert "lm_head.weight" not in model.state_dict() and model.lm_head.weight is model.wte.weight  # stored once
    assert not model.bigram.weight.requires_grad  # their buffer stays a fixed table


def test_circuit_structure_on_imported_shapes(tinypython, tmp_path):
    from trainer.circuit import resid_links, weight_edges
    from trainer.masks import all_kept

    c = their_config(d_pos_emb=8)  # q/k/v 32 wide, d_model 24, sublayer inputs 24 + 8
    sd = their_state(c)
    sd["transformer.h.0.attn.c_attn.weight"][32 + 5, 30] = 0.0  # act_in:30 (a position channel) -> k:5 cut
    import_openai(write_model(tmp_path / "src", c, sd, tinypython[0]), tmp_path / "run")
    model = load_run(tmp_path / "run").model
    kept = all_kept(model)
    edges = weight_edges(model, kept)
    q_edges = [e for e in edges if e["dst"].startswith("0.attn.q:")]
    assert len(q_edges) == 32 * 32 and {e["src"] for e in q_edges} == {f"0.attn.act_in:{i}" for i in range(32)}
    assert {"src": "0.attn.act_in:30", "dst": "0.attn.k:5"} not in [{k: e[k] for k in ("src", "dst")} for e in edges]
    assert len(edges) == 2 * (3 * 32 * 32 + 24 * 32 + 40 * 32 + 24 * 40) - 1
    links = resid_links(model, kept)  # residual channels only: never a position channel of act_in
    assert {int(link["dst"].rpartition(":")[2]) for link in links} == set(range(24))


def test_compiled_prefixed_checkpoint_with_extra_keys_imports_with_warnings(tinypython, tmp_path):
    c = their_config(enable_bigram_table=True)
    sd = their_state(c)
    del sd["final_logits_bias"]  # older checkpoints lack it: zeros, as their loader fills in
    nested = {"model": {f"_orig_mod.{k}": v for k, v in sd.items()}}
    src = write_model(tmp_path / "src", c | {"wandb_project": "x", "afrac_loctypes": ALL_LOCTYPES + ",attn_y"}, nested, tinypython[0])
    result = CliRunner().invoke(main, ["import-openai", str(src), str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "warning: beeg_config.json: unknown key 'wandb_project' ignored" in result.output
    assert "afrac_loctypes entry 'attn_y'" in result.output
    assert result.output.rstrip().endswith(f"run written to {tmp_path / 'run'}")
    assert_same_forward(tmp_path / "run", c, sd)
    provenance = json.loads((tmp_path / "run" / "config.json").read_text())["provenance"]
    assert provenance["imported_from"] == "openai/circuit_sparsity" and provenance["source_config"]["wandb_project"] == "x"


def test_checkpoint_in_either_torch_format_imports_to_the_same_bytes(tinypython, tmp_path):
    c = their_config(sink=True, tied_unembed=True)
    sd = their_state(c)
    src = write_model(tmp_path / "src", c, sd, tinypython[0])  # zip format: memory-mapped
    legacy = write_model(tmp_path / "legacy", c, sd, tinypython[0])
    torch.save(sd, legacy / "final_model.pt", _use_new_zipfile_serialization=False)  # torch < 1.6 format: read whole
    runs = [import_openai(folder, tmp_path / f"run{n}").path for n, folder in enumerate((src, src, legacy))]
    first = (runs[0] / "model.safetensors").read_bytes()
    assert all((run / "model.safetensors").read_bytes() == first for run in runs[1:])  # deterministic, metadata too
    assert_same_forward(runs[2], c, sd)


class Payload:
    """Not a tensor: torch.load(weights_only=True) must refuse to rebuild it."""


def _set(key, value):
    return lambda c, sd: sd.__setitem__(key, value)


BAD = {  # case -> (change to their config / state dict, text the one error line must contain)
    "non_tensor": (_set("step", 1000), "'step' is int 1000, not a tensor"),
    "pickled_object": (_set("extra", Payload()), "test_import_openai.Payload, not only tensors"),
    "missing_key": (lambda c, sd: sd.pop("transformer.h.1.mlp.c_fc.weight"), "tensor 'transformer.h.1.mlp.c_fc.weight' is missing"),
    "shape_mismatch": (lambda c, sd: c.update(d_mlp=48), "tensor 'transformer.h.0.mlp.c_fc.weight' has shape (40, 24), beeg_config.json implies (48, 24)"),
    "unsupported_activation": (lambda c, sd: c.update(activation_type="silu"), "'activation_type' is 'silu'; circexport supports 'gelu' or 'relu'"),
    "unsupported_aux_matrix": (lambda c, sd: c.update(use_tied_aux_matrix=True), "'use_tied_aux_matrix' is true"),
    "wrong_type": (lambda c, sd: c.update(n_layer="2"), "'n_layer' must be int, got '2'"),
    "not_a_model": (lambda c, sd: [sd.clear(), sd.update(weights=torch.zeros(3))], "tensor 'transformer.h.0.attn.c_attn.weight' is missing (under any prefix)"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_writes_nothing(case, tinypython, tmp_path):
    change, message = BAD[case]
    c, sd = their_config(), their_state(their_config())
    change(c, sd)
    src = write_model(tmp_path / "src", c, sd, tinypython[0])
    out = tmp_path / "runs" / "imported"
    result = CliRunner().invoke(main, ["import-openai", str(src), str(out)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert message in result.output
    assert not out.exists() and not list(tmp_path.glob("runs/.*"))  # no run, no leftover temporary folder


def test_corrupt_checkpoint_and_occupied_output_are_refused(tinypython, tmp_path):
    src = write_model(tmp_path / "src", their_config(), their_state(their_config()), tinypython[0])
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["import-openai", str(src), str(out)])
    assert result.exit_code == 1 and "already exists and is not an empty folder" in result.output
    (src / "final_model.pt").write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["import-openai", str(src), str(tmp_path / "other")])
    assert result.exit_code == 1 and "final_model.pt: not a readable PyTorch checkpoint" in result.output
    assert not (tmp_path / "other").exists()


class RunsACommand:
    """An object whose unpickling would run a shell command (a hostile checkpoint)."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_a_checkpoint_that_would_run_code_is_refused_naming_the_global(tinypython, tmp_path):
    src = write_model(tmp_path / "src", their_config(), their_state(their_config()), tinypython[0])
    torch.save({"model": RunsACommand()}, src / "final_model.pt")
    result = CliRunner().invoke(main, ["import-openai", str(src), str(tmp_path / "run")])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1
    assert "final_model.pt: holds an object of class posix.system, not only tensors" in lines[0]
    assert not (tmp_path / "run").exists()


# --- an imported run goes through prune and build like our own ---

def plant_task(c: dict, sd: dict, tok, task) -> None:
    """Make the model answer a task from its last token: that token's embedding points along the target's unembedding."""
    from trainer.tasks import encode_pairs

    target = tok.encode(task.target, add_special_tokens=False).ids
    assert len(target) == 1
    u = torch.randn(c["d_model"], generator=torch.Generator().manual_seed(3))
    u = u - u.mean()
    u = u / u.norm()
    signs: dict[int, float] = {}
    for split in ("train", "eval", "test"):
        batch = encode_pairs(task.pairs(split, 16, 0), tok, c["block_size"])
        for row, last in enumerate(batch.last.tolist()):
            sign = 1.0 if batch.correct[row] == target[0] else -1.0
            assert signs.setdefault(int(batch.tokens[row, last]), sign) == sign
    for t, sign in signs.items():
        sd["transformer.wte.weight"][t] = sign * 4 * math.sqrt(c["d_model"]) * u
    sd["lm_head.weight"][target[0]] = 4 * u


def test_imported_run_is_pruned_and_built(tinypython, tmp_path, monkeypatch):
    from exporter.build import build
    from tests.conftest import fast_options
    from trainer import jobs
    from trainer.jobs import JobConfig, prune_run, summary_table
    from trainer.prune import PruneConfig
    from trainer.tasks import TASKS

    monkeypatch.setenv("CIRCEXPORT_CACHE", str(tmp_path / "cache"))
    c = their_config(block_size=64, rms_norm=False, d_pos_emb=8, sink=True, afrac=0.5,
                     afrac_loctypes="attn_in,attn_out,mlp_in,mlp_out")  # their default locations
    sd = their_state(c)
    for name, w in sd.items():  # weight-sparse blocks, as their released models
        if name.startswith("transformer.h.") and name.endswith("weight") and w.ndim == 2:
            w.mul_(torch.rand(w.shape, generator=torch.Generator().manual_seed(5)) < 0.25)
    task = TASKS["else_elif"]
    plant_task(c, sd, convert(tinypython[0]), task)
    src = write_model(tmp_path / "csp_tiny", c, sd, tinypython[0])
    run_dir = tmp_path / "runs" / "csp_tiny"
    imported = import_openai(src, run_dir, data=DataConfig(max_bytes=300_000))
    assert imported.cfg.sparsity.enabled and imported.cfg.name == "csp_tiny"

    cfg = JobConfig(prune=PruneConfig(target_loss=0.3, steps=20, batch_pairs=8, k_coefs=(1e-3,), random_draws=2),
                    train_pairs=16, eval_pairs=16, test_pairs=16, mean_tokens=1024, quiet=True)
    with monkeypatch.context() as m:  # --faithful-only: a circuit failing a check is reported, not written
        m.setattr(jobs, "faithfulness_checks", lambda metrics, target: {"sufficient": True, "necessary": False})
        [row] = prune_run(run_dir, [task.name], dataclasses.replace(cfg, faithful_only=True))
    assert row["learned"] and not row["written"] and not (run_dir / "circuits" / "else_elif.json").exists()
    assert "fails: necessary (not written)" in summary_table([row], 0.3)
    assert sorted(json.loads((run_dir / "tasks.json").read_text())["tasks"]) == sorted(TASKS)  # all, not just one
    [row] = prune_run(run_dir, [task.name], cfg)
    assert row["learned"] and row["meets_target"] and row["nodes"] > 0, row
    circuit = json.loads((run_dir / "circuits" / "else_elif.json").read_text())
    assert circuit["counts"]["nodes"] == row["nodes"]

    report = build([run_dir], tmp_path / "site", fast_options())  # ONNX models included, checked against PyTorch
    assert (report.models, report.circuits) == (1, 1)
    assert (tmp_path / "site" / "csp_tiny" / "else_elif" / "index.html").is_file()
