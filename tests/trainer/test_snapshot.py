"""Tests of compact storage of sparse weights and of taking a kept snapshot out as a run."""

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from exporter.cli import main
from trainer.config import load_config
from trainer.errors import UserError
from trainer.run import load_run, load_tensors, save_tensors
from trainer.snapshot import matching_step, take_snapshot, val_losses
from trainer.train import TrainOptions, train


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """A tiny sparse run that kept its weights every 10 steps (evaluated every 10)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = load_config("tiny", ["train.snapshot_every=10"])
    train(cfg, TrainOptions(out=out, quiet=True, cache_dir=tmp_path_factory.mktemp("cache")))
    return out


def test_packing_is_lossless_and_smaller(tmp_path):
    g = torch.Generator().manual_seed(0)
    sparse = torch.randn(64, 96, generator=g) * (torch.rand(64, 96, generator=g) < 0.1)
    tensors = {"sparse": sparse, "dense": torch.randn(8, 8, generator=g), "bias": torch.zeros(5),
               "half": sparse.to(torch.bfloat16), "ids": torch.arange(6).view(2, 3)}
    save_tensors(tmp_path / "plain.safetensors", tensors)
    save_tensors(tmp_path / "packed.safetensors", tensors, pack=True)
    back = load_tensors(tmp_path / "packed.safetensors")
    assert sorted(back) == sorted(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t), name
    raw = load_file(tmp_path / "packed.safetensors")
    assert set(raw) == {"sparse::nonzero_bits", "sparse::nonzero_values", "sparse::shape", "half::nonzero_bits",
                        "half::nonzero_values", "half::shape", "dense", "bias", "ids"}
    assert raw["sparse::nonzero_values"].numel() == int(torch.count_nonzero(sparse))
    assert (tmp_path / "packed.safetensors").stat().st_size < (tmp_path / "plain.safetensors").stat().st_size / 2


def test_packed_file_with_inconsistent_parts_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_tensors(path, {"w": torch.eye(16)}, pack=True)
    raw = load_file(path)
    save_file({**raw, "w::nonzero_values": raw["w::nonzero_values"][:-1]}, path)
    with pytest.raises(UserError, match=r"m.safetensors: packed tensor 'w' has 15 values for 16 nonzeros"):
        load_tensors(path)
    save_file({"w::shape": raw["w::shape"], "w::nonzero_values": raw["w::nonzero_values"]}, path)
    with pytest.raises(UserError, match=r"packed tensor 'w' is incomplete"):
        load_tensors(path)


def test_trained_sparse_model_is_stored_packed(kept):
    raw = load_file(kept / "model.safetensors")
    assert any(k.endswith("::nonzero_bits") for k in raw)
    model = load_run(kept).model
    assert int(torch.count_nonzero(model.state_dict()["wte.weight"])) > 0


def test_snapshots_are_kept_and_taken_out(kept, tmp_path):
    assert sorted(p.name for p in (kept / "snapshots").iterdir()) == ["step-000010.safetensors", "step-000020.safetensors"]
    final = load_run(kept).model.state_dict()
    at20 = load_tensors(kept / "snapshots" / "step-000020.safetensors")
    assert all(torch.equal(final[k], at20[k]) for k in final)

    out = take_snapshot(kept, 10, tmp_path / "early")
    record = json.loads((out / "config.json").read_text())
    assert record["provenance"]["snapshot_of"] == "tiny" and record["provenance"]["snapshot_step"] == 10
    assert [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [5, 10]
    early = load_run(out).model.state_dict()
    assert not all(torch.equal(early[k], final[k]) for k in final)
    assert (out / "tokenizer.json").read_bytes() == (kept / "tokenizer.json").read_bytes()


def test_matching_step_picks_the_closest_val_loss(kept):
    losses = val_losses(kept)
    assert sorted(losses) == [10, 20]
    assert matching_step(kept, losses[10] + 1e-3) == 10
    assert matching_step(kept, losses[20] - 1.0) == 20


def test_snapshot_cli_match_and_errors(kept, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["snapshot", str(kept), "--match", str(kept), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "at step 20" in result.output and json.loads((tmp_path / "m" / "config.json").read_text())["provenance"]["snapshot_step"] == 20

    result = runner.invoke(main, ["snapshot", str(kept), "--step", "15", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "no snapshot at step 15 (snapshots with a validation loss: 10, 20)" in result.output
    assert not (tmp_path / "x").exists()
    result = runner.invoke(main, ["snapshot", str(kept), "--step", "10", "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and "exists and is not empty" in result.output
    assert json.loads((tmp_path / "m" / "config.json").read_text())["provenance"]["snapshot_step"] == 20
    result = runner.invoke(main, ["snapshot", str(kept), "--out", str(tmp_path / "y")])
    assert result.exit_code != 0 and "exactly one of --step and --match" in result.output
