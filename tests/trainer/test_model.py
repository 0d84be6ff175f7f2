"""Tests of the GPT: hook names and shapes, AbsTopK, cache vs manual computation, interventions, save/load."""

import math
import threading

import pytest
import torch
import torch.nn.functional as F

from trainer.config import ModelConfig
from trainer.model import GPT, abs_topk, mask_hook, replace_hook, scale_hook, topk_mask
from trainer.run import load_model_weights, save_tensors

CFG = ModelConfig(vocab_size=64, n_layer=2, d_model=32, d_head=16, n_ctx=16)


def make(cfg: ModelConfig = CFG, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():  # nonzero biases and gains so the manual check covers them
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def tokens(cfg: ModelConfig = CFG, B: int = 3, T: int = 10) -> torch.Tensor:
    return torch.randint(0, cfg.vocab_size, (B, T), generator=torch.Generator().manual_seed(1))


def test_hook_names_follow_the_design_table():
    model = make()
    assert model.node_locations() == [
        "0.attn.act_in", "0.attn.q", "0.attn.k", "0.attn.v", "0.attn.resid_delta",
        "0.mlp.act_in", "0.mlp.post_act", "0.mlp.resid_delta",
        "1.attn.act_in", "1.attn.q", "1.attn.k", "1.attn.v", "1.attn.resid_delta",
        "1.mlp.act_in", "1.mlp.post_act", "1.mlp.resid_delta",
        "final_resid",
    ]
    assert set(model.node_locations()) | {"0.ln_1.scale", "0.ln_2.scale", "1.ln_1.scale", "1.ln_2.scale", "ln_f.scale"} == set(model.hook_points)
    assert all(model.hook_points[n].name == n for n in model.hook_points)


def test_cache_shapes_per_location():
    model = make()
    _, cache = model.run_with_cache(tokens())
    assert list(cache) == model.node_locations()
    for name, act in cache.items():
        assert act.shape == (3, 10, model.location_dim(name)), name
    assert model.location_dim("1.mlp.post_act") == 128


def test_abs_topk_keeps_exactly_k_largest_magnitudes():
    x = torch.randn(4, 7, 40)
    y = abs_topk(x, 10)
    assert ((y != 0).sum(-1) == 10).all()
    kept = y != 0
    assert torch.equal(y[kept], x[kept])
    smallest_kept = torch.where(kept, x.abs(), torch.inf).amin(-1)
    largest_dropped = torch.where(kept, -torch.inf, x.abs()).amax(-1)
    assert (smallest_kept > largest_dropped).all()


def test_abs_topk_keeps_ties_first_by_index_on_every_path_and_passes_gradients_of_kept_entries():
    rows = torch.tensor([[0.5, -0.5, 0.5, 0.5, 1.0, -2.0],  # 2 above the k-th |x|, 4 tied at it: indices 0 kept
                         [0.0, 0.0, 3.0, 0.0, 0.0, 0.0],  # fewer nonzeros than k: the first zeros by index
                         [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    want = torch.tensor([[1, 0, 0, 0, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    x = rows.clone().requires_grad_(True)
    y = abs_topk(x, 3)  # the CPU path (numpy)
    assert torch.equal(y, torch.where(want, rows, 0.0))
    y.sum().backward()
    assert torch.equal(x.grad, want.float())  # the gradient flows through the kept entries only, zeros included
    assert torch.equal(topk_mask(rows, 3), want.float())  # the device path (torch ops) agrees
    big = torch.randn(64, 512).round(decimals=1)  # many ties at the k-th value
    assert torch.equal(abs_topk(big, 128) != 0, topk_mask(big, 128).bool() & (big != 0))
    assert torch.equal(abs_topk(big.double(), 128), abs_topk(big, 128).double())


def test_every_sparse_location_keeps_k_per_token_and_qkv_topk_spans_heads():
    model = make()
    _, cache = model.run_with_cache(tokens())
    for name, act in cache.items():
        k = math.ceil(0.25 * act.shape[-1]) if name != "final_resid" else act.shape[-1]
        assert ((act != 0).sum(-1) == k).all(), name
    q = cache["0.attn.q"].view(3, 10, 2, 16)  # per head counts differ: top-k ran over both heads
    assert (q != 0).sum(-1).ne(4).any()


def test_afrac_locations_switch_off_topk():
    cfg = ModelConfig(vocab_size=64, n_layer=1, d_model=32, n_ctx=16, afrac_locations=("mlp.post_act",))
    _, cache = make(cfg).run_with_cache(tokens(cfg))
    assert ((cache["0.mlp.post_act"] != 0).sum(-1) == 32).all()
    assert ((cache["0.attn.q"] != 0).sum(-1) == 32).all()


def test_cache_equals_manual_forward():
    model = make()
    idx = tokens()
    logits, cache = model.run_with_cache(idx)
    b = model.blocks[0]

    def rms(x, ln):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * ln.weight

    x = model.wte.weight[idx]
    act_in = abs_topk(rms(x, b.ln_1), 8)
    q, k, v = (abs_topk(t, 8) for t in (act_in @ b.attn.c_attn.weight.T + b.attn.c_attn.bias).split(32, -1))
    torch.testing.assert_close(cache["0.attn.act_in"], act_in)
    torch.testing.assert_close(cache["0.attn.v"], v)
    heads = lambda t: t.view(3, 10, 2, 16).transpose(1, 2)
    att = heads(q) @ heads(k).transpose(-1, -2) / 4.0
    att = att.masked_fill(torch.ones(10, 10).triu(1).bool(), -torch.inf).softmax(-1)
    y = (att @ heads(v)).transpose(1, 2).reshape(3, 10, 32)
    delta = abs_topk(y @ b.attn.c_proj.weight.T + b.attn.c_proj.bias, 8)
    torch.testing.assert_close(cache["0.attn.resid_delta"], delta)
    x = x + delta
    m_in = abs_topk(rms(x, b.ln_2), 8)
    post = abs_topk(F.gelu(m_in @ b.mlp.c_fc.weight.T + b.mlp.c_fc.bias), 32)
    torch.testing.assert_close(cache["0.mlp.post_act"], post)
    x = x + abs_topk(post @ b.mlp.c_proj.weight.T + b.mlp.c_proj.bias, 8)
    x = x + cache["1.attn.resid_delta"] + cache["1.mlp.resid_delta"]
    torch.testing.assert_close(cache["final_resid"], x)
    torch.testing.assert_close(logits, rms(x, model.ln_f) @ model.lm_head.weight.T + model.lm_head.bias)


def test_interventions_mask_scale_replace():
    model = make()
    idx = tokens()
    base, cache = model.run_with_cache(idx)
    ones, zeros = torch.ones(32), torch.zeros(32)
    with model.hooks({"0.attn.v": mask_hook(ones, torch.randn(32))}):
        assert torch.equal(model(idx), base)
    with model.hooks({"0.mlp.resid_delta": scale_hook(ones)}):
        assert torch.equal(model(idx), base)
    mean = torch.arange(32.0)
    with model.hooks({"0.attn.v": mask_hook(zeros, mean)}):
        _, ablated = model.run_with_cache(idx, ["0.attn.v"])
        assert torch.equal(ablated["0.attn.v"], mean.expand(3, 10, 32))
    with model.hooks({"1.mlp.post_act": replace_hook(5, 3.0)}):
        out, c = model.run_with_cache(idx, ["1.mlp.post_act", "final_resid"])
    assert (c["1.mlp.post_act"][..., 5] == 3.0).all()
    assert not torch.equal(out, base)
    assert model.hook_points["0.attn.v"].fn is None  # hooks are removed after the block


def test_intervention_changes_downstream_only():
    model = make()
    idx = tokens()
    _, before = model.run_with_cache(idx)
    with model.hooks({"1.attn.act_in": replace_hook(0, 9.0)}):
        _, after = model.run_with_cache(idx)
    assert torch.equal(before["0.mlp.resid_delta"], after["0.mlp.resid_delta"])
    assert not torch.equal(before["1.attn.q"], after["1.attn.q"])


def test_unknown_hook_name_is_an_error():
    with pytest.raises(KeyError, match="9.attn.q"):
        with make().hooks({"9.attn.q": lambda x: x}):
            pass


def test_save_load_gives_identical_logits(tmp_path):
    cfg = ModelConfig(vocab_size=64, n_layer=2, d_model=32, n_ctx=16, pos_emb=True, bigram=True, attn_sink=True)
    model = make(cfg, seed=3)
    save_tensors(tmp_path / "model.safetensors", model.state_dict())
    other = make(cfg, seed=4)
    load_model_weights(other, tmp_path / "model.safetensors")
    idx = tokens(cfg)
    assert torch.equal(model(idx), other.eval()(idx))


def test_options_change_parameters_and_outputs():
    plain = make()
    full = make(ModelConfig(vocab_size=64, n_layer=2, d_model=32, n_ctx=16, pos_emb=True, bigram=True, attn_sink=True))
    names = set(dict(full.named_parameters())) - set(dict(plain.named_parameters()))
    assert names == {"wpe.weight", "bigram.weight", "blocks.0.attn.sink", "blocks.1.attn.sink"}
    assert full.bigram.weight.abs().sum() == 0  # the bigram table starts at zero


def test_attention_sink_takes_probability_mass():
    cfg = ModelConfig(vocab_size=64, n_layer=1, d_model=32, n_ctx=16, attn_sink=True, afrac=1.0)
    model = make(cfg)
    ref = make(ModelConfig(vocab_size=64, n_layer=1, d_model=32, n_ctx=16, afrac=1.0))
    idx = tokens(cfg)
    with torch.no_grad():
        model.blocks[0].attn.sink.fill_(-1e4)  # a sink with no mass is plain attention
    _, a = model.run_with_cache(idx, ["0.attn.resid_delta"])
    _, b = ref.run_with_cache(idx, ["0.attn.resid_delta"])
    torch.testing.assert_close(a["0.attn.resid_delta"], b["0.attn.resid_delta"])
    with torch.no_grad():
        model.blocks[0].attn.sink.fill_(1e4)  # all mass on the zero value: only the bias remains
    _, c = model.run_with_cache(idx, ["0.attn.resid_delta"])
    torch.testing.assert_close(c["0.attn.resid_delta"], model.blocks[0].attn.c_proj.bias.expand(3, 10, 32))


def test_context_length_is_enforced():
    with pytest.raises(ValueError, match="longer than the context of 16"):
        make()(torch.zeros(1, 17, dtype=torch.long))


def test_last_position_readout_equals_full_logits():
    cfg = ModelConfig(vocab_size=64, n_layer=2, d_model=32, n_ctx=16, bigram=True)
    model = make(cfg)
    with torch.no_grad():
        model.bigram.weight.normal_()
    idx = tokens(cfg)
    last = torch.tensor([9, 0, 4])
    torch.testing.assert_close(model(idx, last), model(idx)[torch.arange(3), last])


def test_sink_attention_equals_softmax_over_the_keys_and_the_sink():
    attn = GPT(ModelConfig(vocab_size=64, n_layer=1, d_model=32, n_ctx=128, attn_sink=True)).blocks[0].attn
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        attn.sink.copy_(torch.tensor([-3.0, 2.5]))
    q, k, v = (torch.randn(3, 2, 100, 16, generator=g, requires_grad=True) for _ in range(3))
    scores = (q @ k.transpose(-2, -1) / 4).masked_fill(torch.ones(100, 100, dtype=torch.bool).triu(1), float("-inf"))
    sink = attn.sink.view(1, 2, 1, 1).expand(3, 2, 100, 1)
    want = torch.cat([scores, sink], dim=-1).softmax(-1)[..., :100] @ v  # the sink's value is zero
    got = attn._attend_with_sink(q, k, v)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(got.square().sum(), [q, k, v, attn.sink]),
                    torch.autograd.grad(want.square().sum(), [q, k, v, attn.sink])):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_abs_topk_split_over_threads_and_blocks_equals_one_pass_and_raises_errors(monkeypatch):
    import trainer.model as model_module

    x = torch.randn(5000, 64).round(decimals=1).requires_grad_(True)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    one = abs_topk(x, 16)  # blocks of 4,096 and 904 rows (BLOCK_BYTES)
    assert torch.equal(one != 0, topk_mask(x.detach(), 16).bool() & (x.detach() != 0))
    one.sum().backward()
    grad_one, x.grad = x.grad.clone(), None
    torch.set_num_threads(3)
    monkeypatch.setattr(model_module, "ROWS_PER_THREAD", 1000)
    try:
        many = abs_topk(x, 16)
        many.sum().backward()
        assert torch.equal(one, many) and torch.equal(grad_one, x.grad)
        keep_rows = model_module._keep_rows

        def fail_off_main(a, k):
            if threading.current_thread() is not threading.main_thread():
                raise ZeroDivisionError("in a helper thread")
            return keep_rows(a, k)

        monkeypatch.setattr(model_module, "_keep_rows", fail_off_main)
        with pytest.raises(ZeroDivisionError, match="in a helper thread"):  # raised here, never half a result
            abs_topk(x.detach(), 16)
    finally:
        torch.set_num_threads(before)
