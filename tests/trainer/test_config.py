"""Tests of config loading: shipped configs, overrides, and one clear error per bad input."""

import pytest

from trainer.config import RunConfig, from_dict, load_config, shipped_configs, to_dict
from trainer.errors import UserError


def test_shipped_configs_load():
    assert shipped_configs() == ["demo", "demo-dense", "demo-dense-topk", "frontier", "paper-1x", "tiny"]
    demo = load_config("demo")
    assert (demo.name, demo.model.n_layer, demo.model.d_model, demo.sparsity.enabled) == ("demo", 4, 128, True)
    dense = load_config("demo-dense")
    assert not dense.sparsity.enabled and dense.model.afrac == 1.0
    topk = load_config("demo-dense-topk")  # dense weights, the demo's AbsTopK: only the weight sparsity differs
    assert not topk.sparsity.enabled and topk.model == demo.model and topk.data == demo.data
    assert load_config("frontier", ["model.d_model=96"]).model.d_model == 96
    paper = load_config("paper-1x")
    assert (paper.model.n_layer, paper.model.d_model, paper.model.n_head) == (8, 256, 16)


def test_overrides_are_parsed_as_toml_values():
    cfg = load_config("tiny", ["train.steps=7", "model.pos_emb=true", "train.lr=1e-3", "data.tokenizer=other"])
    assert (cfg.train.steps, cfg.model.pos_emb, cfg.train.lr, cfg.data.tokenizer) == (7, True, 1e-3, "other")
    assert isinstance(cfg.train.lr, float)


def test_round_trip_through_dict():
    cfg = load_config("demo", ["model.afrac_locations=['attn.q', 'mlp.post_act']"])
    assert from_dict(to_dict(cfg)) == cfg
    assert cfg.model.afrac_locations == ("attn.q", "mlp.post_act")


@pytest.mark.parametrize("overrides, message", [
    (["model.d_modle=64"], "tiny.toml: model.d_modle: unknown key"),
    (["train.steps=ten"], "train.steps: expected int, got str 'ten'"),
    (["train.steps=1.5"], "train.steps: expected int, got float"),
    (["model.pos_emb=1"], "model.pos_emb: expected bool, got int"),
    (["sparsity.l0=0"], "sparsity.l0 must be > 0"),
    (["sparsity.l0=-5"], "sparsity.l0 must be > 0"),
    (["model.d_model=40"], "model.d_model must be a positive multiple of model.d_head"),
    (["model.afrac_locations=['attn.z']"], "model.afrac_locations must be among"),
    (["model.d_pos_emb=8"], "model.d_pos_emb > 0 needs model.pos_emb = true"),
    (["model.attn_width=40"], "model.attn_width must be 0 or a positive multiple of model.d_head"),
    (["model.norm='batch'"], "model.norm must be 'rms' or 'layer'"),
    (["model.afrac_round='round'"], "model.afrac_round must be 'ceil' or 'floor'"),
    (["train.batch_size=10"], "train.batch_size must be a positive multiple of train.micro_batch"),
    (["sparsity.anneal_start=0.6"], "anneal_start <= anneal_end"),
    (["steps=3"], "tiny.toml: unknown key 'steps'"),
    (["train.steps"], "expected section.key=value"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config("tiny", overrides)


def test_unknown_config_name_and_missing_or_corrupt_file(tmp_path):
    with pytest.raises(UserError, match="unknown config 'huge': give a .toml path or one of demo, demo-dense, demo-dense-topk"):
        load_config("huge")
    with pytest.raises(UserError, match="config file .*nope.toml does not exist"):
        load_config(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nn_layer = 2")
    with pytest.raises(UserError, match="bad.toml: not valid TOML"):
        load_config(str(bad))


def test_config_file_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[model]\nn_layer = 3\n")
    cfg = load_config(str(path))
    assert cfg.name == "mine" and cfg.model.n_layer == 3 and cfg.train == RunConfig().train


def test_configs_are_frozen():
    cfg = load_config("tiny")
    with pytest.raises(AttributeError):
        cfg.model.n_layer = 5
