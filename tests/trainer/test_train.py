"""Tests of the training loop: the run directory, sparsity during training, resume, DDP, bad input."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from exporter.cli import main
from trainer import sparsity
from trainer.config import load_config
from trainer.errors import UserError
from trainer.run import load_run, load_tensors
from trainer.train import Interrupted, TrainOptions, train


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def tiny(*overrides):
    return load_config("tiny", list(overrides))


def run(cfg, out, cache, **kw):
    return train(cfg, TrainOptions(out=out, quiet=True, cache_dir=cache, **kw.pop("opts", {})), **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run(tiny(), out, cache)
    return out


def test_run_directory_contents(finished):
    assert sorted(p.name for p in finished.iterdir()) == ["config.json", "metrics.jsonl", "model.safetensors", "state", "tokenizer.json"]
    text = (finished / "config.json").read_text()
    record = json.loads(text)
    assert text == json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert record["format_version"] == 1 and record["name"] == "tiny"
    prov = record["provenance"]
    assert set(prov) == {"code_version", "corpus_sha256", "python", "seed", "tokenizer_sha256", "torch"}
    assert len(prov["corpus_sha256"]) == 64 and len(prov["tokenizer_sha256"]) == 64
    rows = [json.loads(line) for line in (finished / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert [r["val_loss"] is not None for r in rows] == [False, True, False, True]
    assert rows[-1]["tokens"] == 20 * 8 * 64
    assert rows[-1]["loss"] < rows[0]["loss"] < 8.0  # learning; ln(2048) = 7.6 at the start


def test_trained_weights_hold_the_target_l0(finished):
    r = load_run(finished)
    params = dict(r.model.named_parameters())
    plan = sparsity.plan_sparsity(params, r.cfg.sparsity)
    assert sparsity.count_nonzero(plan.tensors(params)) == plan.target
    assert {"blocks.0.attn.c_attn.weight[q]", "blocks.0.attn.c_attn.weight[v]"} <= set(plan.target)  # split_qkv
    assert plan.total_target == 20000
    assert rows_min(params["blocks.0.mlp.c_fc.weight"]) >= 4
    assert json.loads((finished / "metrics.jsonl").read_text().splitlines()[-1])["l0"] == 20000


def rows_min(w):
    return int((w != 0).sum(1).min())


def test_same_seed_gives_identical_weights(finished, tmp_path, cache):
    run(tiny(), tmp_path / "again", cache)
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (finished / "model.safetensors").read_bytes()


def test_interrupted_then_resumed_equals_uninterrupted(finished, tmp_path, cache):
    out = tmp_path / "resumed"

    def ctrl_c(step):
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="checkpoint saved at step 7; continue with `circexport train --resume"):
        run(tiny(), out, cache, on_step=ctrl_c)
    assert not (out / "model.safetensors").exists()
    assert int(load_tensors(out / "state" / "checkpoint.safetensors")["train_step"]) == 7
    run(tiny(), out, cache, opts={"resume": True})
    a, b = load_tensors(out / "model.safetensors"), load_tensors(finished / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in b)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20]


def test_ctrl_c_in_the_last_step_writes_the_finished_run(finished, tmp_path, cache):
    out = tmp_path / "last"
    run(tiny(), out, cache, on_step=lambda s: s == 20 and os.kill(os.getpid(), signal.SIGINT))  # no Interrupted
    assert (out / "model.safetensors").read_bytes() == (finished / "model.safetensors").read_bytes()


def test_dense_run_has_no_zero_weights(tmp_path, cache):
    out = tmp_path / "dense"
    run(tiny("sparsity.enabled=false", "train.steps=5"), out, cache)
    w = load_run(out).model.blocks[0].attn.c_attn.weight
    assert (w != 0).all()


def test_bf16_autocast_matches_fp32(tmp_path, cache):
    cfg = tiny()
    model = load_run_model(cfg)
    idx = torch.randint(0, 2048, (4, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = torch.log_softmax(model(idx), -1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = torch.log_softmax(model(idx).float(), -1)
    assert (ref - low).abs().mean() < 0.02
    run(tiny("train.bf16='on'"), tmp_path / "bf16", cache)
    run(tiny("train.bf16='off'"), tmp_path / "fp32", cache)
    last = lambda p: json.loads((p / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"]
    assert abs(last(tmp_path / "bf16") - last(tmp_path / "fp32")) < 0.1


def load_run_model(cfg):
    from trainer.model import GPT
    torch.manual_seed(0)
    return GPT(cfg.model).eval()


def snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_out_dir_protection(finished, tmp_path, cache):
    before = snapshot(finished)
    with pytest.raises(UserError, match="already holds a different run"):
        run(load_config("tiny", ["train.steps=3"]), finished, cache)
    with pytest.raises(UserError, match="already holds this run; add --resume"):
        run(tiny(), finished, cache)
    with pytest.raises(UserError, match="has finished training"):
        run(tiny(), finished, cache, opts={"resume": True})
    assert snapshot(finished) == before
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="is not empty and is not a run"):
        run(tiny(), junk, cache)
    with pytest.raises(UserError, match="holds no run"):
        run(tiny(), tmp_path / "nothing", cache, opts={"resume": True})
    assert not (tmp_path / "nothing").exists()


def test_impossible_sparsity_writes_nothing(tmp_path, cache):
    with pytest.raises(UserError, match="sparsity.l0 = 999999999 exceeds"):
        run(tiny("sparsity.l0=999999999"), tmp_path / "x", cache)
    assert not (tmp_path / "x").exists()


def test_corrupt_checkpoint_is_refused(tmp_path, cache):
    out = tmp_path / "c"
    with pytest.raises(Interrupted):
        run(tiny(), out, cache, on_step=lambda s: s == 3 and os.kill(os.getpid(), signal.SIGINT))
    (out / "state" / "checkpoint.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="checkpoint.safetensors: not a readable safetensors file"):
        run(tiny(), out, cache, opts={"resume": True})


def test_cli_reports_one_line_and_creates_nothing(tmp_path):
    out = tmp_path / "bad"
    result = CliRunner().invoke(main, ["train", "--config", "tiny", "--set", "model.d_modle=64", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output == ("Error: tiny.toml: model.d_modle: unknown key (known: vocab_size, n_layer, d_model, d_head, n_ctx, "
                             "mlp_mult, pos_emb, bigram, attn_sink, afrac, afrac_locations, attn_width, mlp_width, norm, "
                             "norm_eps, activation, resid_activation, d_pos_emb, tied_unembed, bigram_learnable, afrac_round)\n")
    assert not out.exists()
    result = CliRunner().invoke(main, ["train", "--config", "tiny", "--set", "train.steps=many", "--out", str(out)])
    assert result.exit_code == 1 and "train.steps: expected int" in result.output


def test_cli_imports_no_torch():
    code = "import sys, exporter.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torchrun_two_processes_match_one(tmp_path, cache):
    overrides = ["--set", "train.steps=6", "--set", "train.micro_batch=2"]
    env = {**os.environ, "CIRCEXPORT_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "exporter.cli", "train", "--config", "tiny", "--out", str(tmp_path / "ddp"), "--quiet", *overrides]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    single = tmp_path / "single"
    run(load_config("tiny", ["train.steps=6", "train.micro_batch=2"]), single, cache)
    a, b = load_tensors(tmp_path / "ddp" / "model.safetensors"), load_tensors(single / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    assert torch.equal(a["blocks.0.attn.c_attn.weight"] != 0, b["blocks.0.attn.c_attn.weight"] != 0)


def test_ctrl_c_exits_130_with_one_line(monkeypatch):
    import trainer.train as train_module

    def interrupted(*args, **kwargs):
        raise Interrupted("interrupted: checkpoint saved at step 3; continue with `circexport train --resume --out x`")

    monkeypatch.setattr(train_module, "run_training", interrupted)
    result = CliRunner().invoke(main, ["train", "--config", "tiny", "-q"])
    assert result.exit_code == 130 and result.output.strip().splitlines() == [
        "Error: interrupted: checkpoint saved at step 3; continue with `circexport train --resume --out x`"]
    monkeypatch.setattr(train_module, "run_training", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    result = CliRunner().invoke(main, ["train", "--config", "tiny", "-q"])
    assert result.exit_code == 130 and result.output.strip() == "Error: interrupted"


def test_every_option_of_every_command_has_help_text():
    import click

    commands = [(name, cmd) for name, cmd in main.commands.items() if not isinstance(cmd, click.Group)]
    commands += [(f"corpus {n}", c) for n, c in main.commands["corpus"].commands.items()]
    missing = [f"{name} {p.name}" for name, cmd in commands for p in cmd.params
               if isinstance(p, click.Option) and not p.help]
    assert not missing
    for name in ("train", "prune", "tasks", "build"):
        assert "-q" in {o for p in main.commands[name].params for o in p.opts}, name
    for name in ("train", "snapshot", "build"):
        assert "-o" in {o for p in main.commands[name].params for o in p.opts}, name


@pytest.mark.parametrize("override, message", [
    ("train.lr=inf", "train.lr must be > 0"), ("train.weight_decay=nan", "train.weight_decay must be a finite number"),
    ("train.beta2=1.0", "train.beta1 and train.beta2 must be in [0, 1)"), ("train.eps=-0.1", "train.eps must be"),
    ("train.seed=99999999999999999999", "train.seed must be in"), ("name=\"../../x\"", "'name' '../../x' must be"),
])
def test_impossible_numbers_and_unsafe_names_are_refused(override, message, tmp_path):
    with pytest.raises(UserError, match=re.escape(message)):
        tiny(override)


def test_a_loss_gone_non_finite_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, cache, monkeypatch):
    import trainer.train as train_module

    out = tmp_path / "nan"
    forward_backward = train_module.forward_backward

    def poisoned(net, batch, ddp, micro, autocast):
        loss = forward_backward(net, batch, ddp, micro, autocast)
        if step_of[0] >= 12:  # from step 13 on the weights blow up
            for p in net.parameters():
                p.grad.fill_(float("nan"))
        step_of[0] += 1
        return loss if step_of[0] < 13 else loss * float("nan")

    step_of = [0]
    monkeypatch.setattr(train_module, "forward_backward", poisoned)
    with pytest.raises(UserError, match=r"step 15: the training loss is nan; lower train.lr .* last good checkpoint"):
        run(tiny(), out, cache)  # tiny: log every 5 steps, checkpoint every 10
    state = load_tensors(out / "state" / "checkpoint.safetensors")
    assert int(state["train_step"]) == 10 and all(torch.isfinite(v).all() for v in state.values())
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("target", ["0", "0.7", "inf", "nan"])
def test_target_loss_outside_zero_to_ln2_is_one_error_line(target):
    result = CliRunner().invoke(main, ["tasks", "--target-loss", target, "-q"])  # checked before any run is read
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"--target-loss {float(target)}: must be in (0, ln 2 = 0.693)" in lines[0]


def test_resume_refuses_a_run_that_recorded_another_corpus(tmp_path, cache):
    out = tmp_path / "moved"
    with pytest.raises(Interrupted):
        run(tiny(), out, cache, on_step=lambda s: s == 3 and os.kill(os.getpid(), signal.SIGINT))
    config = json.loads((out / "config.json").read_text())
    config["provenance"].update(corpus_sha256="f" * 64, python="3.9.0")  # as if started on another Python's stdlib
    (out / "config.json").write_text(json.dumps(config))
    before = sorted((p.name, p.read_bytes()) for p in out.rglob("*") if p.is_file())
    with pytest.raises(UserError, match=r"--resume: .*config.json records the corpus sha256 ffffffffffff… \(Python "
                                        r"3.9.0\), this machine reads .* the run would go on with other text"):
        run(tiny(), out, cache, opts={"resume": True})
    assert sorted((p.name, p.read_bytes()) for p in out.rglob("*") if p.is_file()) == before
