"""Tests of --device: the pruner, the means and the build's tables keep everything on the model's device; the
chunked attribution and the means' error bar; a clear error for --device cuda without CUDA.

A CPU-only torch cannot run CUDA, so the device tests use a stand-in. FakeTensorMode does make tensors that say
cuda:0, but they hold no values (float(loss), nonzero() and int(last.max()) raise), and autograd on one aborts the
process (no CUDA device guard in a CPU build). So StandIn is a dispatch mode whose tensors hold real CPU values
but report the "meta" device: every op runs on CPU, and any CPU tensor (other than a 0-dim scalar, as CUDA allows)
mixed into an op on the stand-in device raises, as CUDA would; .numpy() on one raises too. (A Python list used as
an index of one becomes a real meta tensor, without values, outside the mode: index with a tensor on the device.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils._python_dispatch import TorchDispatchMode

from exporter.cli import main
from exporter.tables import TaskSample, class_activations, node_activations, task_examples
from tests.trainer.test_prune import PLANTED_CORE, planted_batch, planted_model
from trainer import data, means as means_module
from trainer.circuit import qk_pairs, resid_links, unembed_edges, weight_edges
from trainer.config import DataConfig, ModelConfig
from trainer.jobs import resolve_device
from trainer.masks import kept_from_ids, model_device
from trainer.means import MEANS_SEED, ablation_record, compute_mean_stats, compute_means, means_for_run
from trainer.model import GPT
from trainer.prune import Evaluator, PruneConfig, Splits, attribution_scores, learn_masks, prune_task, random_control
from trainer.run import MODEL, Run, save_tensors
from trainer.tasks import TaskBatch, pair_loss

STAND_IN = torch.device("meta")
aten = torch.ops.aten
MOVES = (aten._to_copy, aten.copy_)  # the ops that take data from one device to another


class OnStandIn(torch.Tensor):
    """A tensor on the stand-in device: real values in a CPU tensor inside."""

    inner: torch.Tensor

    @staticmethod
    def __new__(cls, inner: torch.Tensor) -> OnStandIn:
        return torch.Tensor._make_wrapper_subclass(cls, inner.size(), strides=inner.stride(), dtype=inner.dtype,
                                                   storage_offset=inner.storage_offset(), device=STAND_IN)

    def __init__(self, inner: torch.Tensor) -> None:
        self.inner = inner

    def tolist(self) -> Any:
        """As on CUDA: the values, copied to Python."""
        return self.inner.tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """As on CUDA: no numpy view of device memory."""
        raise TypeError(f"can't convert {STAND_IN} device type tensor to numpy; use Tensor.cpu() first")

    def __repr__(self) -> str:
        return f"OnStandIn({self.inner!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return run_op(func, args, kwargs or {})


def run_op(func, args: tuple, kwargs: dict) -> Any:
    """Run an op on the CPU values; raise on a device mix; put the result on the stand-in device where CUDA would."""
    tensors = list(_tensors((args, tuple(kwargs.values()))))
    boxed = [t for t in tensors if isinstance(t, OnStandIn)]
    plain = [t for t in tensors if not isinstance(t, OnStandIn)]
    if boxed and func.overloadpacket not in MOVES and any(t.dim() > 0 for t in plain):
        raise RuntimeError(f"{func}: Expected all tensors to be on the same device, but found at least two devices, "
                           f"{STAND_IN} and cpu!")
    device = kwargs.get("device")
    on_stand_in = bool(boxed) if device is None else torch.device(device) == STAND_IN
    if device is not None:
        kwargs = {**kwargs, "device": torch.device("cpu")}
    out = func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
    if not on_stand_in:
        return out
    by_inner, plain_ids = {id(t.inner): t for t in boxed}, {id(t) for t in plain}

    def place(t: Any) -> Any:
        if isinstance(t, (list, tuple)):
            return type(t)(place(v) for v in t)
        if not isinstance(t, torch.Tensor) or id(t) in plain_ids:  # an in-place op on a CPU tensor stays there
            return t
        return by_inner[id(t)] if id(t) in by_inner else OnStandIn(t)

    return place(out)


def _tensors(x: Any) -> Iterator[torch.Tensor]:
    """The tensors in an op's arguments (which hold tensors, lists of them, and scalars)."""
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)


def _unwrap(x: Any) -> Any:
    """The arguments with each stand-in tensor replaced by its CPU values."""
    if isinstance(x, OnStandIn):
        return x.inner
    return type(x)(_unwrap(v) for v in x) if isinstance(x, (list, tuple)) else x


class StandIn(TorchDispatchMode):
    """Every op (factories too) through run_op: device="meta" makes a tensor with values on the stand-in device."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return run_op(func, args, kwargs or {})


def test_the_stand_in_device_refuses_a_cpu_tensor_and_numpy():
    with StandIn():
        x = torch.arange(3.0).to(STAND_IN)
        assert x.device == STAND_IN and x.tolist() == [0.0, 1.0, 2.0] and float(x.sum()) == 3.0
        assert (x + torch.tensor(1.0)).tolist() == [1.0, 2.0, 3.0]  # a 0-dim CPU scalar is fine, as on CUDA
        with pytest.raises(RuntimeError, match="same device"):
            x + torch.ones(3)
        with pytest.raises(TypeError):
            x.numpy()
        assert x.cpu().numpy().tolist() == [0.0, 1.0, 2.0]


def tiny_model(seed: int = 0, n_ctx: int = 16) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(vocab_size=64, n_layer=2, d_model=32, n_ctx=n_ctx)).eval()


def random_batch(n_pairs: int, width: int, seed: int = 0) -> TaskBatch:
    """Pairs of random prompts of random lengths (rows 2i, 2i+1), answers 1 and 2."""
    gen = torch.Generator().manual_seed(seed)
    n = 2 * n_pairs
    correct = torch.tensor([1, 2] * n_pairs)
    return TaskBatch(tokens=torch.randint(0, 64, (n, width), generator=gen), last=torch.randint(2, width, (n,), generator=gen),
                     correct=correct, wrong=3 - correct)


def one_pass_attribution(model: GPT, means: dict[str, torch.Tensor], batch: TaskBatch) -> dict[str, torch.Tensor]:
    """The attribution of one forward and backward pass over the whole batch (the formula before chunking)."""
    acts, probes = {}, {}

    def probe(name):
        def add(x):
            acts[name] = x.detach()
            probes[name] = torch.zeros_like(x, requires_grad=True)
            return x + probes[name]
        return add

    with torch.enable_grad(), model.hooks({loc: probe(loc) for loc in model.node_locations()}):
        loss = pair_loss(model(batch.tokens, batch.last), batch)
        grads = torch.autograd.grad(loss, list(probes.values()))
    return {loc: ((means[loc] - acts[loc]) * g).sum(dim=(0, 1)).abs() for loc, g in zip(probes, grads)}


def test_chunked_attribution_equals_one_pass():
    model = tiny_model().requires_grad_(False)
    tokens = np.random.default_rng(0).integers(0, 64, 3000).astype(np.uint16)
    means = compute_means(model, tokens, 512, batch_size=8)
    batch = random_batch(11, 16)
    want = one_pass_attribution(model, means, batch)
    for chunk_pairs in (3, 4, 100):  # a short last chunk; whole chunks; one chunk
        got = attribution_scores(model, means, batch, chunk_pairs)
        scale = max(float(w.max()) for w in want.values())
        assert all(torch.allclose(got[loc], want[loc], rtol=1e-4, atol=1e-6 * scale) for loc in want), chunk_pairs
    assert not any(p.grad is not None for p in model.parameters())


def test_means_have_standard_errors_from_window_means():
    model = tiny_model(1)
    tokens = np.random.default_rng(1).integers(0, 64, 4000).astype(np.uint16)
    stats = compute_mean_stats(model, tokens, 100, batch_size=4)  # 100 tokens: 7 windows of 16, in batches of 4
    assert stats.tokens == 8 * 16
    windows = torch.cat([data.sample_batch(tokens, 16, 4, MEANS_SEED, i)[:, :-1] for i in range(2)])  # [8, 16]
    with torch.no_grad():
        _, cache = model.run_with_cache(windows)
    for loc, act in cache.items():
        per_window = act.double().mean(dim=1).numpy()  # [8, dim]
        assert np.allclose(stats.means[loc].numpy(), per_window.mean(0), atol=1e-6)
        sem = per_window.std(0, ddof=1) / np.sqrt(8)
        assert np.allclose(stats.sem[loc].numpy(), sem, rtol=1e-4, atol=1e-7)
    assert stats.sem_max() == pytest.approx(max(float(s.max()) for s in stats.sem.values()))
    fewest = compute_mean_stats(model, tokens, 1)
    assert fewest.tokens == 2 * 16 and fewest.sem_max() > 0  # at least two windows, so the error bar exists
    assert fewest.sem_max() > stats.sem_max()


def test_means_file_records_tokens_and_error_bar_and_is_not_recomputed(tmp_path, monkeypatch):
    model = tiny_model(2)
    save_tensors(tmp_path / MODEL, model.state_dict())
    run = Run(tmp_path, SimpleNamespace(data=DataConfig()), {}, model)
    tokens = np.random.default_rng(2).integers(0, 64, 4000).astype(np.uint16)
    monkeypatch.setattr(means_module, "load_text", lambda cfg, tok, cache, shards: SimpleNamespace(shards=SimpleNamespace(train=tokens)))
    monkeypatch.setattr(means_module, "load_tokenizer", lambda path: None)
    assert ablation_record(run, 300) == {"kind": "mean", "tokens": 300, "tokens_used": None, "mean_sem_max": None}
    first = means_for_run(run, 300)
    record = ablation_record(run, 300)
    stats = compute_mean_stats(model, tokens, 300)
    assert record == {"kind": "mean", "tokens": 300, "tokens_used": 32 * 16, "mean_sem_max": stats.sem_max()}  # whole batches
    monkeypatch.setattr(means_module, "compute_mean_stats", lambda *a, **k: pytest.fail("means recomputed"))
    again = means_for_run(run, 300)
    assert all(torch.equal(first[loc], again[loc]) for loc in first)


def test_a_long_means_pass_on_cpu_is_announced(monkeypatch, caplog):
    monkeypatch.setattr(means_module, "SLOW_SECONDS", 0.0)  # any pass counts as long
    tokens = np.random.default_rng(3).integers(0, 64, 2000).astype(np.uint16)
    with caplog.at_level("INFO", logger="trainer.means"):
        compute_mean_stats(tiny_model(3), tokens, 64, batch_size=2)
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "means over 64 tokens on cpu will take about" in warning.getMessage()
    assert "--device cuda" in warning.getMessage() and "--mean-tokens" in warning.getMessage()


@pytest.fixture(scope="module")
def planted_cpu():
    model = planted_model()
    corpus = np.tile(np.array([0, 1], dtype=np.uint16), 2000)
    means = compute_means(model, corpus, 256, batch_size=8)
    splits = Splits(planted_batch(32), planted_batch(16), planted_batch(16))
    return model, corpus, means, splits


SMALL = PruneConfig(steps=20, batch_pairs=8, k_coefs=(1e-3,), random_draws=2, attribution_pairs=8)


def test_pruner_pieces_keep_to_the_model_device(planted_cpu):
    cpu_model, corpus, cpu_means, splits = planted_cpu
    want = prune_task(cpu_model, cpu_means, splits, SMALL)
    assert want["prune"]["meets_target"] and want["counts"]["nodes"] == 4
    with StandIn():
        model = planted_model().to(STAND_IN)
        assert model_device(model) == STAND_IN
        means = compute_means(model, corpus, 256, batch_size=8)
        assert all(m.device == STAND_IN and torch.allclose(m.cpu(), cpu_means[loc]) for loc, m in means.items())
        ev = Evaluator(model, means, splits.test)
        assert ev.loss() == pytest.approx(Evaluator(cpu_model, cpu_means, splits.test).loss(), abs=1e-6)
        scores = learn_masks(model, means, splits.train, replace(SMALL, steps=2), 1e-2, 1e-3)
        assert all(s.device == STAND_IN for s in scores.values())
        attribution = attribution_scores(model, means, splits.train)
        assert all(a.device == STAND_IN for a in attribution.values())
        kept = kept_from_ids(model, sorted(PLANTED_CORE | {"0.mlp.post_act:0"}))
        assert kept["final_resid"].device == STAND_IN
        assert weight_edges(model, kept) == weight_edges(cpu_model, kept_from_ids(cpu_model, sorted(kept_ids_of(kept))))
        assert unembed_edges(model, kept, [2, 3]) and resid_links(model, kept) and qk_pairs(model, kept) == []
        assert random_control(model, means, kept, ev, SMALL)[0] > 0.5
        got = prune_task(model, means, splits, SMALL)  # everything at once: masks, bisection, greedy, faithfulness
    assert [n["id"] for n in got["nodes"]] == [n["id"] for n in want["nodes"]]
    assert got["edges"] == want["edges"] and got["counts"] == want["counts"]
    for key, value in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, abs=1e-5), key


def kept_ids_of(kept: dict[str, torch.Tensor]) -> list[str]:
    """The node ids of a keep-set on any device."""
    return [f"{loc}:{i}" for loc, k in kept.items() for i in k.cpu().nonzero().flatten().tolist()]


def test_build_tables_run_on_the_device_and_leave_the_model_on_cpu(planted_cpu):
    model, _, means, splits = planted_cpu
    batch = splits.test
    sample = TaskSample(tokens=batch.tokens, last=batch.last, correct=batch.correct, wrong=batch.wrong)
    ids = sorted(PLANTED_CORE)
    circuit = SimpleNamespace(kept=kept_from_ids(model, ids))
    windows = torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0]])
    want = (node_activations(model, windows, ids, 1), class_activations(model, sample, ids),
            task_examples(model, means, circuit, sample))
    with StandIn():
        got = (node_activations(model, windows, ids, 1, STAND_IN), class_activations(model, sample, ids, STAND_IN),
               task_examples(model, means, circuit, sample, device=STAND_IN))
    assert model_device(model) == torch.device("cpu")
    assert np.array_equal(got[0], want[0]) and got[1:] == want[1:]


def test_device_cuda_without_cuda_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    runner = CliRunner()
    for args in (["prune", str(tmp_path), "--device", "cuda"], ["build", str(tmp_path), "-o", str(tmp_path / "site"),
                                                                "--device", "cuda"]):
        result = runner.invoke(main, args)
        assert result.exit_code != 0
        lines = result.output.strip().splitlines()
        assert lines == ["Error: --device cuda: no CUDA device is available here; use --device cpu (or auto)"], lines
    assert not (tmp_path / "site").exists()
