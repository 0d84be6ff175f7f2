"""Tests of the pruner on a hand-built model whose answer flows through a planted set of nodes."""

import math

import numpy as np
import pytest
import torch

from trainer.circuit import (faithfulness_checks, offset_loss, qk_pairs, refit_offset, resid_links,
                             unembed_edges, weight_edges)
from trainer.config import ModelConfig
from trainer.masks import NodeMasks, ablate, all_kept, count, heaviside_ste, kept_from_ids, kept_ids, top_k_kept
from trainer.means import compute_means
from trainer.model import GPT
from trainer.prune import (Evaluator, PruneConfig, Splits, faithfulness, first_block, greedy_trim, prune_task,
                           smallest_circuit)
from trainer.tasks import TaskBatch
from trainer.tasks.base import binary_logits

X, Y, A, B = 0, 1, 2, 3  # context tokens and answer tokens
PLANTED_CORE = {"0.mlp.act_in:0", "0.mlp.resid_delta:1", "final_resid:1"}
COPIES = {"0.mlp.post_act:0", "0.mlp.post_act:1"}  # redundant: either one carries the answer alone


def planted_model() -> GPT:
    """One layer, no attention, no activation top-k; the answer flows act_in:0 -> post_act:0|1 -> resid_delta:1 -> final_resid:1."""
    model = GPT(ModelConfig(vocab_size=4, n_layer=1, d_model=16, n_ctx=4, afrac=1.0))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in (model.blocks[0].ln_1, model.blocks[0].ln_2, model.ln_f):
            norm.weight.fill_(1.0)
        model.wte.weight[X, 0], model.wte.weight[Y, 0] = 1.0, -1.0  # the decisive signal on channel 0
        model.wte.weight[:, 15] = 3.0  # a constant channel
        fc, fc_b, proj = model.blocks[0].mlp.c_fc.weight, model.blocks[0].mlp.c_fc.bias, model.blocks[0].mlp.c_proj.weight
        fc[0, 0], proj[1, 0] = 4.0, 1.0  # copy 1: fires on X, writes + to channel 1
        fc[1, 0], proj[1, 1] = -4.0, -1.0  # copy 2: fires on Y, writes - to channel 1
        fc[2, 0] = 4.0  # high variance, writes nowhere
        fc[3, 0], proj[3, 3] = 4.0, 1.0  # writes channel 3, which both answers read equally
        fc_b[4], proj[1, 4] = 1.0, 1.0  # constant neuron feeding the circuit's channel...
        model.blocks[0].mlp.c_proj.bias[1] = -torch.nn.functional.gelu(torch.tensor(1.0))  # ...cancelled: mean 0
        fc_b[5], proj[1, 5] = -10.0, 1.0  # dead neuron
        model.lm_head.weight[A, 1], model.lm_head.weight[B, 1] = 2.0, -2.0
        model.lm_head.weight[A, 3], model.lm_head.weight[B, 3] = 1.0, 1.0
    return model.eval()


def planted_batch(n_pairs: int, labels: torch.Tensor | None = None) -> TaskBatch:
    """Pairs ([X] -> A, [Y] -> B); with labels, answers flipped where labels == 1 (a random-label task)."""
    tokens = torch.tensor([[X], [Y]] * n_pairs)
    correct = torch.tensor([A, B] * n_pairs)
    if labels is not None:
        flip = labels.repeat_interleave(2).bool()
        correct = torch.where(flip, 5 - correct, correct)
    return TaskBatch(tokens=tokens, last=torch.zeros(2 * n_pairs, dtype=torch.long), correct=correct, wrong=5 - correct)


@pytest.fixture(scope="module")
def planted():
    model = planted_model()
    corpus = np.tile(np.array([X, Y], dtype=np.uint16), 2000)  # "pretraining": X and Y exactly alike
    means = compute_means(model, corpus, 2000, batch_size=8)
    splits = Splits(planted_batch(64), planted_batch(32), planted_batch(32))
    return model, means, splits


DEFAULTS = PruneConfig()  # the recipe as shipped: the planted circuit is found with the defaults


@pytest.fixture(scope="module")
def record(planted):
    model, means, splits = planted
    return prune_task(model, means, splits, DEFAULTS)


def test_recovers_exactly_the_planted_set(record):
    ids = {n["id"] for n in record["nodes"]}
    assert ids - COPIES == PLANTED_CORE
    assert len(ids & COPIES) == 1  # one copy of the redundant path
    assert record["counts"]["nodes"] == 4 and record["prune"]["meets_target"]


def test_circuit_meets_target_and_each_node_is_necessary(record):
    m = record["metrics"]
    assert m["loss_full"] < 0.01 and m["loss_circuit"] <= 0.15 and m["acc_circuit"] == 1.0
    assert all(m["loss_circuit"] + n["ablation_delta"] > 0.15 for n in record["nodes"])


def test_ablating_the_circuit_alone_gives_chance(record):
    m = record["metrics"]
    assert m["loss_inverse"] == pytest.approx(math.log(2), abs=0.02)
    assert m["loss_inverse_refit"] == pytest.approx(math.log(2), abs=0.02)  # no bias to refit: truly necessary
    assert m["loss_empty"] == pytest.approx(math.log(2), abs=0.02)
    assert m["loss_random_mean"] > 0.5  # random 4-node circuits fail
    assert m["loss_circuit_frozen_norm"] <= 0.15


def test_circuit_structure(record):
    edges = {(e["src"], e["dst"]) for e in record["edges"]}
    copy = ({n["id"] for n in record["nodes"]} & COPIES).pop()
    assert edges == {("0.mlp.act_in:0", copy), (copy, "0.mlp.resid_delta:1")}
    assert {(e["src"], e["token"]) for e in record["unembed_edges"]} == {("final_resid:1", A), ("final_resid:1", B)}
    assert record["resid_links"] == [{"src": "0.mlp.resid_delta:1", "dst": "final_resid:1"}]
    assert record["sweep"][0] == {"k": 0, "loss": pytest.approx(math.log(2), abs=0.02)}


def test_all_masks_on_equal_the_unmasked_model(planted):
    model, means, splits = planted
    masks = NodeMasks(model, means)
    batch = splits.test
    with model.hooks(masks.hooks()):
        masked = model(batch.tokens, batch.last)
    assert torch.equal(masked, model(batch.tokens, batch.last))


def test_all_masks_off_give_one_prediction_for_every_input(planted):
    model, means, _ = planted
    tokens = torch.tensor([[X, Y, A], [Y, Y, B], [B, A, X]])
    with torch.no_grad(), ablate(model, all_kept(model, False), means):
        logits = model(tokens)
    assert torch.allclose(logits, logits[0, 0].expand_as(logits), atol=1e-6)


def test_straight_through_gradient_is_the_sigmoid_derivative():
    tau = torch.tensor([-0.5, 0.0, 0.3, 0.9], requires_grad=True)
    gate = heaviside_ste(tau, temperature=0.5)
    assert gate.tolist() == [0.0, 0.0, 1.0, 1.0]
    gate.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    s = torch.sigmoid(tau.detach() / 0.5)
    assert torch.allclose(tau.grad, torch.tensor([1.0, 2.0, 3.0, 4.0]) * s * (1 - s) / 0.5)


def test_edge_counter_on_hand_made_weights():
    model = GPT(ModelConfig(vocab_size=8, n_layer=2, d_model=32, n_ctx=4))  # 2 heads of 16
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        attn = model.blocks[1].attn
        attn.c_attn.weight[3, 5] = 1.0  # act_in:5 -> q:3
        attn.c_attn.weight[32 + 3, 6] = -2.0  # act_in:6 -> k:3
        attn.c_attn.weight[64 + 20, 5] = 0.5  # act_in:5 -> v:20 (head 1)
        attn.c_attn.weight[64 + 21, 5] = 0.5  # to v:21, which is not kept
        attn.c_proj.weight[7, 20] = 1.5  # v:20 -> resid_delta:7
        model.blocks[0].mlp.c_fc.weight[100, 2] = 1.0  # act_in:2 -> post_act:100
        model.blocks[0].mlp.c_proj.weight[9, 100] = 1.0  # post_act:100 -> resid_delta:9
        model.lm_head.weight[4, 7] = 2.0
        model.ln_f.weight.fill_(1.0)
    ids = ["1.attn.act_in:5", "1.attn.act_in:6", "1.attn.q:3", "1.attn.k:3", "1.attn.v:20", "1.attn.resid_delta:7",
           "0.mlp.act_in:2", "0.mlp.post_act:100", "0.mlp.resid_delta:9", "1.attn.act_in:9", "final_resid:7", "1.attn.q:17"]
    kept = kept_from_ids(model, ids)
    edges = {(e["src"], e["dst"], e["weight"]) for e in weight_edges(model, kept)}
    assert edges == {
        ("1.attn.act_in:5", "1.attn.q:3", 1.0), ("1.attn.act_in:6", "1.attn.k:3", -2.0),
        ("1.attn.act_in:5", "1.attn.v:20", 0.5), ("1.attn.v:20", "1.attn.resid_delta:7", 1.5),
        ("0.mlp.act_in:2", "0.mlp.post_act:100", 1.0), ("0.mlp.post_act:100", "0.mlp.resid_delta:9", 1.0),
    }
    assert qk_pairs(model, kept) == [{"q": "1.attn.q:3", "k": "1.attn.k:3", "head": 0}]
    assert {(link["src"], link["dst"]) for link in resid_links(model, kept)} == {
        ("0.mlp.resid_delta:9", "1.attn.act_in:9"), ("1.attn.resid_delta:7", "final_resid:7")}
    assert [(e["src"], e["token"]) for e in unembed_edges(model, kept, [4, 5])] == [("final_resid:7", 4)]


class MockEvaluator:
    """Loss that falls with the number of kept nodes: 1 / (1 + k), counted per call."""

    def __init__(self):
        self.calls = 0

    def loss(self, kept):
        self.calls += 1
        return 1.0 / (1 + count(kept))


def test_bisection_finds_the_smallest_k_on_a_mocked_curve():
    scores = {"a": torch.rand(300, generator=torch.Generator().manual_seed(0)), "b": torch.rand(212)}
    ev = MockEvaluator()
    kept, sweep = smallest_circuit(scores, ev, target=1 / 38)  # 1/(1+k) <= 1/38  <=>  k >= 37
    assert count(kept) == 37
    assert ev.calls <= 11 + 6  # the coarse grid plus a bisection, not a scan
    assert [p["k"] for p in sweep] == sorted(p["k"] for p in sweep)
    top = top_k_kept(scores, 37)
    assert all(torch.equal(kept[k], top[k]) for k in kept)


class NeededNodesEvaluator:
    """Loss 0 while every needed node is kept, else 1 (removing nodes never lowers it); counts its trials."""

    def __init__(self, needed):
        self.needed, self.calls = needed, 0
        self.model = GPT(ModelConfig(vocab_size=4, n_layer=2, d_model=8, n_ctx=4))

    def run(self, kept):
        return None, []

    def loss_from(self, kept, start, before):
        self.calls += 1
        return (0.0 if all(bool(kept[loc][i]) for loc, i in self.needed) else 1.0), []


def test_greedy_trim_keeps_exactly_the_needed_nodes_in_few_evaluations():
    n = 2000
    a, b = "0.mlp.post_act", "1.mlp.post_act"
    scores = {a: torch.rand(n, generator=torch.Generator().manual_seed(1)), b: torch.rand(n)}
    kept = {a: torch.ones(n, dtype=torch.bool), b: torch.zeros(n, dtype=torch.bool)}
    kept[b][:10] = True
    order = sorted(range(n), key=lambda i: float(scores[a][i]))
    needed = [(a, order[3]), (a, order[700]), (a, order[701]), (a, order[-1]), (b, 4)]
    ev = NeededNodesEvaluator(needed)
    trimmed = greedy_trim(kept, scores, ev, target=0.5)
    assert sorted(kept_ids(trimmed)) == sorted(f"{loc}:{i}" for loc, i in needed)
    assert ev.calls <= 5 * 2 * math.log2(n + 10) + 2 * math.log2(n)  # not one evaluation per node (2,010 nodes)
    assert kept[a].all() and int(kept[b].sum()) == 10  # the input keep-set is left as it was


def test_circuit_ids_round_trip_to_the_same_loss(planted, record):
    model, means, splits = planted
    kept = kept_from_ids(model, [n["id"] for n in record["nodes"]])
    assert kept_ids(kept) == [n["id"] for n in record["nodes"]]
    assert Evaluator(model, means, splits.test).loss(kept) == pytest.approx(record["metrics"]["loss_circuit"], abs=1e-6)


def test_random_label_task_cannot_reach_the_target(planted):
    model, means, _ = planted
    gen = torch.Generator().manual_seed(3)
    splits = Splits(*(planted_batch(n, torch.randint(0, 2, (n,), generator=gen)) for n in (64, 32, 32)))
    rec = prune_task(model, means, splits, PruneConfig(steps=60, batch_pairs=16, lrs=(1e-2,), k_coefs=(1e-3,), random_draws=2))
    assert not rec["prune"]["meets_target"]
    assert rec["metrics"]["loss_full"] > 0.5


def test_evaluator_chunks_by_length_give_the_full_batch_logits():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=64, n_layer=2, d_model=32, n_ctx=40)).eval()
    n = 2 * Evaluator.CHUNK + 10  # three chunks, the last one short
    last = torch.randint(3, 40, (n,))
    batch = TaskBatch(tokens=torch.randint(0, 64, (n, 40)), last=last, correct=torch.zeros(n, dtype=torch.long),
                      wrong=torch.ones(n, dtype=torch.long))
    ev = Evaluator(model, {}, batch)
    assert len(ev.chunks) == 3 and all(int(last[c].max()) - int(last[c].min()) < 40 for c in ev.chunks)
    with torch.no_grad():
        want = model(batch.tokens, batch.last)  # [n, vocab], every prompt padded to 40 tokens
    assert torch.allclose(ev.logits(), want, atol=1e-5)


def test_a_run_from_a_later_block_gives_the_full_runs_loss_exactly():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=64, n_layer=3, d_model=32, n_ctx=40)).eval()
    n = Evaluator.CHUNK + 10
    batch = TaskBatch(tokens=torch.randint(0, 64, (n, 40)), last=torch.randint(3, 40, (n,)),
                      correct=torch.zeros(n, dtype=torch.long), wrong=torch.ones(n, dtype=torch.long))
    locs = model.node_locations()
    means = {loc: torch.randn(model.location_dim(loc)) for loc in locs}
    kept = {loc: torch.rand(model.location_dim(loc)) < 0.7 for loc in locs}
    ev = Evaluator(model, means, batch)
    _, bounds = ev.run(kept)
    for loc in locs:  # one node of every location, run from its own block: the same loss, bit for bit
        without = {loc_: k.clone() for loc_, k in kept.items()}
        i = int(kept[loc].nonzero()[0])
        without[loc][i] = False
        start = first_block([(loc, i)], 3)
        assert start == (3 if loc == "final_resid" else int(loc[0]))
        loss, after = ev.loss_from(without, start, bounds)
        assert loss == ev.loss(without)
        assert all(torch.equal(a, b) for a, b in zip(after[0], ev.run(without)[1][0]))
    without = {loc_: k.clone() for loc_, k in kept.items()}
    without["0.mlp.post_act"][int(kept["0.mlp.post_act"].nonzero()[0])] = False
    assert ev.loss_from(without, 1, bounds)[0] != ev.loss(without)  # a start after the change misses it


def test_bias_refit_verdict_fails_a_circuit_that_is_necessary_only_through_a_bias():
    """The planted model plus a bias path: final_resid:15 is 3 on every task prompt but 1 on average over pretraining
    (token A writes -3 there) and pushes the answers apart; the full model's logit biases cancel it. Ablating only
    that channel pushes every prompt towards B, so the loss rises ("necessary"), yet the task path is intact: once one
    logit offset is refit, the ablated model solves the task again, and the refit verdict fails."""
    model = planted_model()
    with torch.no_grad():
        model.wte.weight[A, 15] = -3.0
        model.lm_head.weight[A, 15], model.lm_head.weight[B, 15] = 20.0, -20.0
    batch = planted_batch(4)
    with torch.no_grad():
        two = binary_logits(model(batch.tokens, batch.last), batch)  # [8, 2]
    with torch.no_grad():
        model.lm_head.bias[A] += refit_offset(two)  # cancel the full model's bias towards A
    corpus = np.tile(np.array([X, Y, A], dtype=np.uint16), 2000)
    means = compute_means(model, corpus, 3000, batch_size=8)
    splits = Splits(planted_batch(64), planted_batch(32), planted_batch(32))
    test = Evaluator(model, means, splits.test)
    kept = kept_from_ids(model, ["final_resid:15"])
    m = faithfulness(model, means, kept, splits, test, DEFAULTS)
    checks = faithfulness_checks(m, 0.15)
    assert m["loss_full"] <= 0.15 and m["loss_inverse"] > 1.0 and checks["necessary"]
    assert m["loss_inverse_refit"] <= 0.15 and not checks["necessary_refit"]
    assert m["inverse_refit_offset"] > 5  # the refit offset undoes the ablation's push towards B


def test_refit_offset_minimizes_the_pair_loss():
    two = torch.tensor([[1.0, 0.0], [-2.0, 0.0], [0.5, 0.0], [-1.0, 0.0]])  # margins; rows 0, 2 are first answers
    b = refit_offset(two)
    best = min((offset_loss(two, x / 100), x / 100) for x in range(-500, 501))
    assert offset_loss(two, b) <= best[0] + 1e-9 and b == pytest.approx(best[1], abs=0.01)
    assert offset_loss(two, 0.0) == pytest.approx(float(torch.nn.functional.softplus(-two[:, 0]).mean()))


def test_summary_table_says_untried_tasks_were_not_pruned_only_after_pruning():
    from trainer.jobs import summary_table
    evaluated = [{"task": "a", "learned": True, "loss": 0.1, "accuracy": 0.99},
                 {"task": "b", "learned": False, "loss": 0.5, "accuracy": 0.7}]
    pruned = [{**evaluated[0], "nodes": 3, "edges": 2, "loss_circuit": 0.12, "loss_inverse": 0.9, "loss_random": 0.7,
               "checks": {"sufficient": True}, "written": True}, evaluated[1]]
    assert summary_table(evaluated, 0.15).splitlines()[-1] == "1 of 2 tasks learned (unpruned loss <= 0.15)"
    assert summary_table(pruned, 0.15).splitlines()[-1] == ("1 of 2 tasks learned (unpruned loss <= 0.15); "
                                                            "the others were not pruned")
    assert summary_table(pruned[:1], 0.15).splitlines()[-1] == "1 of 1 tasks learned (unpruned loss <= 0.15)"
