"""Tests of the run directory's tensor files and model loading: the streamed safetensors writer keeps every byte of
the shipped runs, and a model built on the meta device and loaded by assignment equals one loaded by copying."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save

from trainer.config import ModelConfig, RunConfig
from trainer.fileio import write_json
from trainer.model import GPT
from trainer.run import (
    MODEL, config_record, load_model_weights, load_run, load_tensors, read_config, save_tensors, write_safetensors,
)

ZOO_DIR = Path(__file__).resolve().parents[2] / "trainer" / "zoo"
ZOO = sorted(p.name for p in ZOO_DIR.iterdir() if (p / MODEL).is_file())


def header(raw: bytes) -> tuple[dict, bytes]:
    """A safetensors file's header, parsed, and its data section."""
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


@pytest.mark.parametrize("run", ZOO)
def test_shipped_files_are_rewritten_byte_for_byte(run, tmp_path):
    for name, pack in ((MODEL, True), ("means.safetensors", False)):
        path = ZOO_DIR / run / name
        raw = path.read_bytes()
        meta = header(raw)[0]["__metadata__"]
        save_tensors(tmp_path / name, load_tensors(path), {k: v for k, v in meta.items() if k != "format_version"}, pack=pack)
        again = (tmp_path / name).read_bytes()
        if len(meta) == 1:  # safetensors' own order of several metadata keys varies from run to run; ours is sorted
            assert again == raw, name
        assert header(again) == header(raw), name


def test_writer_matches_safetensors_for_every_dtype_and_sorts_metadata():
    dtypes = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16, torch.float16, torch.bfloat16,
              torch.int32, torch.uint32, torch.float32, torch.float64, torch.int64, torch.uint64]
    tensors = {f"t.{n}": torch.arange(6).view(2, 3).to(dt) for n, dt in enumerate(dtypes)}
    tensors |= {"scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4), "é": torch.ones(5)}
    f = io.BytesIO()
    write_safetensors(f, tensors, {"format_version": "1"})
    assert f.getvalue() == save(tensors, metadata={"format_version": "1"})
    f = io.BytesIO()
    write_safetensors(f, tensors, {"z": "1", "a": "2", "m": "3"})
    assert list(header(f.getvalue())[0]["__metadata__"]) == ["a", "m", "z"]


def tiny_run(tmp_path: Path, **model) -> tuple[Path, GPT]:
    """A run directory holding a random model with sparse blocks, and that model."""
    cfg = RunConfig(name="t", model=ModelConfig(vocab_size=64, n_layer=2, d_model=32, n_ctx=16, **model))
    torch.manual_seed(0)
    gpt = GPT(cfg.model).eval()
    with torch.no_grad():
        for name, p in gpt.named_parameters():
            p.add_(torch.randn_like(p) * 0.1)  # nonzero biases, gains, sinks and bigram table too
            if name.startswith("blocks.") and p.ndim == 2:
                p.mul_(torch.rand_like(p) < 0.2)
    write_json(tmp_path / "config.json", config_record(cfg, {}))
    save_tensors(tmp_path / MODEL, gpt.state_dict(), pack=True)
    return tmp_path, gpt


@pytest.mark.parametrize("model", [dict(tied_unembed=True, bigram=True, bigram_learnable=False, attn_sink=True),
                                   dict(pos_emb=True, d_pos_emb=8, norm="layer")])
def test_model_loaded_by_assignment_equals_one_loaded_by_copying(model, tmp_path):
    run_dir, gpt = tiny_run(tmp_path, **model)
    loaded = load_run(run_dir).model
    copied = GPT(gpt.cfg)
    load_model_weights(copied, run_dir / MODEL)
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    for (name, a), (_, b) in zip(loaded.named_parameters(), copied.named_parameters(), strict=True):
        assert torch.equal(a, b) and a.requires_grad == b.requires_grad, name
    if gpt.cfg.tied_unembed:
        assert loaded.lm_head.weight is loaded.wte.weight
    if gpt.cfg.bigram:
        assert not loaded.bigram.weight.requires_grad
    idx = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded(idx), gpt(idx)) and torch.equal(copied(idx), gpt(idx))


def test_packed_file_unpacks_to_the_saved_tensors(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {f"w{n}": torch.randn(*shape, generator=g) * (torch.rand(*shape, generator=g) < 0.05)
               for n, shape in enumerate([(7, 9), (64, 3), (1, 1, 13), (5, 8)])}
    save_tensors(tmp_path / "m.safetensors", tensors, pack=True)
    assert all(k.endswith(("::nonzero_bits", "::nonzero_values", "::shape")) for k in load_file(tmp_path / "m.safetensors"))
    back = load_tensors(tmp_path / "m.safetensors")
    assert all(torch.equal(back[k], t) for k, t in tensors.items())


def test_a_config_written_before_split_qkv_reads_as_the_fused_top_k_it_trained_with(tmp_path):
    record = config_record(RunConfig(), {})
    assert record["sparsity"]["split_qkv"] is True  # new runs record the switch
    del record["sparsity"]["split_qkv"]
    write_json(tmp_path / "config.json", record)
    assert read_config(tmp_path)[0].sparsity.split_qkv is False
