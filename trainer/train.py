"""The training loop: the paper's recipe on CPU, one GPU, or many through torchrun."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import trainer
from trainer import sparsity
from trainer.config import RunConfig, load_config, to_dict
from trainer.cputune import keep_freed_memory
from trainer.errors import Interrupted, UserError
from trainer.mixture import TrainingText, load_text
from trainer.model import GPT
from trainer.fileio import atomic_write_bytes, check_destination, require_file, write_json
from trainer.run import (check_tensors, config_record, load_tensors, read_config, read_run_tokenizer, save_tensors,
                         snapshot_name, truncate_metrics)
from trainer.schema import CHECKPOINT, CONFIG, METRICS, MODEL, SNAPSHOTS, STATE, TOKENIZER
from trainer.tokenizer import load_tokenizer, tokenizer_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    """How to run training; none of it changes the result."""

    out: Path
    resume: bool = False
    device: str = "auto"  # auto | cpu | cuda
    quiet: bool = False
    cache_dir: Path | None = None  # token shards; default data.default_cache_dir()


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (world 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the process that writes files and shows progress."""
        return self.rank == 0


def train(cfg: RunConfig, opts: TrainOptions, on_step: Callable[[int], None] | None = None) -> Path:
    """Train (or resume) a run and write its directory; returns the run path."""
    ddp = _init_distributed(opts.device)
    try:
        device = _device(opts.device, ddp)
        if device.type == "cpu":
            keep_freed_memory()
        cfg, stored = _check_out_dir(cfg, opts)  # stored: the resumed run's provenance (None for a new run)
        _check_batch(cfg, ddp.world)
        if stored is not None:  # the run's own tokenizer.json, checked against the sha256 its config.json records
            tok = read_run_tokenizer(opts.out, cfg, stored)
        else:
            tok = load_tokenizer(cfg.data.tokenizer)
        if tok.get_vocab_size() != cfg.model.vocab_size:
            raise UserError(f"model.vocab_size = {cfg.model.vocab_size} but tokenizer {cfg.data.tokenizer!r} has {tok.get_vocab_size()} tokens")
        text = _training_text(cfg, tok, opts, ddp)
        record = text.record()
        torch.manual_seed(cfg.train.seed)
        model = _build_model(cfg, device)
        plan = sparsity.plan_sparsity(dict(model.named_parameters()), cfg.sparsity) if cfg.sparsity.enabled else None
        optimizer = make_optimizer(model, cfg, device)
        provenance = {
            "code_version": trainer.__version__, "corpus_sha256": record["sha256"], "python": platform.python_version(),
            "seed": cfg.train.seed, "tokenizer_sha256": tokenizer_sha256(tok), "torch": torch.__version__,
        }
        if set(record["components"]) != {"stdlib"}:
            provenance["corpus"] = record["components"]  # the mixture's parts: fingerprints and shares
        if stored is not None:
            _check_same_corpus(opts.out, stored, provenance)
        if ddp.main and not opts.resume:
            _start_run_dir(opts.out, cfg, provenance, tok.to_str())
        _barrier(ddp)
        start = _load_checkpoint(opts.out, model, optimizer, cfg.train.steps) if opts.resume else 0
        if ddp.main:
            truncate_metrics(opts.out / METRICS, start)  # a resumed run logs each step once
        _loop(cfg, opts, ddp, model, optimizer, plan, text, start, on_step)
        if ddp.main:
            save_tensors(opts.out / MODEL, model.state_dict(), pack=True)
            log.info("wrote %s", opts.out / MODEL)
        return opts.out
    finally:
        if ddp.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _loop(cfg, opts, ddp, model, optimizer, plan, text, start, on_step) -> None:
    """Run steps start..steps-1 with logging, evaluation, checkpoints and Ctrl-C handling."""
    t = cfg.train
    net = DistributedDataParallel(model) if ddp.world > 1 else model
    params = dict(model.named_parameters())
    budgeted = plan.tensors(params) if plan else {}  # what each top-k budget applies to
    autocast = _autocast(t.bf16, next(model.parameters()).device)
    bar = tqdm(total=t.steps, initial=start, disable=opts.quiet or not ddp.main, unit="step", dynamic_ncols=True)
    tokens_per_step = t.batch_size * cfg.model.n_ctx
    dense_total = sum(v.numel() for k, v in params.items() if sparsity.is_sparsified(k, v, False))  # a dense run's L0
    t0, stopped = time.perf_counter(), False
    with _sigint_flag() as interrupted:
        for step in range(start, t.steps):
            progress = sparsity.anneal_progress(step + 1, t.steps, cfg.sparsity.anneal_start, cfg.sparsity.anneal_end)
            l0_now = plan.l0_at(progress) if plan else dense_total  # host numbers: no device read in a step
            l0_target = plan.total_target if plan else dense_total
            lr = sparsity.lr_at(step, t.steps, t.lr, t.warmup_frac, l0_now, l0_target)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = text.batch("train", cfg.model.n_ctx, t.batch_size, t.seed, step)
            loss = forward_backward(net, batch, ddp, t.micro_batch, autocast)
            if t.grad_rms_norm:
                sparsity.normalize_grad_rms_(model.parameters())
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if plan:
                sparsity.apply_topk_(budgeted, plan.k_at(progress), cfg.sparsity.min_per_row)
            done = step + 1
            bar.update(1)
            logged = done % t.log_every == 0 or done == t.steps
            saving = done % t.checkpoint_every == 0 and done < t.steps
            if logged or saving:  # the only steps where the host reads device values
                loss_value = _finite_loss(loss, ddp, done, opts.out)
            if logged:
                val = _val_loss(model, text, cfg, autocast) if done % t.eval_every == 0 or done == t.steps else None
                l0_value = l0_now if plan else _dense_l0(params)
                seconds = time.perf_counter() - t0
                row = {"step": done, "tokens": done * tokens_per_step, "loss": round(loss_value, 5), "lr": lr,
                       "l0": l0_value, "val_loss": None if val is None else round(val, 5), "seconds": round(seconds, 2)}
                bar.set_postfix(loss=f"{loss_value:.3f}", l0=l0_value, tok_s=f"{(done - start) * tokens_per_step / seconds:.0f}")
                if ddp.main:
                    with open(opts.out / METRICS, "a") as f:
                        f.write(json.dumps(row, sort_keys=True) + "\n")
            if on_step is not None:
                on_step(done)
            if logged or saving or ddp.world == 1:  # ranks agree on Ctrl-C at log and checkpoint steps
                stopped = _any_rank(interrupted(), ddp, params['wte.weight'].device)
            stopped = stopped and done < t.steps  # Ctrl-C in the last step: the run is complete, written as usual
            if t.snapshot_every and done % t.snapshot_every == 0 and ddp.main:
                save_tensors(opts.out / SNAPSHOTS / snapshot_name(done), model.state_dict(), pack=True)
            if stopped and not (logged or saving):
                _finite_loss(loss, ddp, done, opts.out)  # never checkpoint weights gone non-finite
            if (saving or stopped) and done < t.steps and ddp.main:
                _save_checkpoint(opts.out, model, optimizer, done)
            if stopped:
                break
    bar.close()
    if stopped:
        _barrier(ddp)
        raise Interrupted(f"interrupted: checkpoint saved at step {done}; continue with "
                          f"`circexport train --resume --out {opts.out}`")


def _build_model(cfg: RunConfig, device: torch.device) -> GPT:
    """The initialised model on the device; a UserError naming its size fields when it does not fit in memory."""
    try:
        return GPT(cfg.model).to(device)
    except (RuntimeError, MemoryError):  # torch's allocators raise RuntimeError (OutOfMemoryError on CUDA)
        m = cfg.model
        raise UserError(f"the model (model.d_model {m.d_model}, model.n_layer {m.n_layer}, model.vocab_size "
                        f"{m.vocab_size}) does not fit in memory on {device}; choose a smaller model") from None


def forward_backward(net, batch: torch.Tensor, ddp: Dist, micro: int, autocast) -> torch.Tensor:
    """Forward and backward over this rank's rows of the global batch [B, T+1]; returns this rank's mean loss, a 0-dim
    tensor on the device (read it at log steps only: reading waits for the device)."""
    per_rank = batch.size(0) // ddp.world
    rows = batch[ddp.rank * per_rank:(ddp.rank + 1) * per_rank]
    device = next(net.parameters()).device
    chunks = rows.split(micro)
    total = torch.zeros((), device=device)
    for i, chunk in enumerate(chunks):
        chunk = chunk.to(device)
        x, y = chunk[:, :-1], chunk[:, 1:]  # [b, T]
        sync = i == len(chunks) - 1 or not isinstance(net, DistributedDataParallel)
        with (nullcontext() if sync else net.no_sync()), autocast:
            logits = net(x)  # [b, T, vocab]
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten()) / len(chunks)
        loss.backward()
        total += loss.detach()
    return total


def _finite_loss(loss: torch.Tensor, ddp: Dist, step: int, out: Path) -> float:
    """The global batch's mean loss; a UserError when it is not finite (the last good checkpoint stays as it is)."""
    value = _mean_over_ranks(loss, ddp)
    if not math.isfinite(value):
        raise UserError(f"step {step}: the training loss is {value}; lower train.lr (or check the data); the run's "
                        f"last good checkpoint is kept in {out / STATE}")
    return value


def _mean_over_ranks(loss: torch.Tensor, ddp: Dist) -> float:
    """The global batch's mean loss from each rank's (all ranks call this at the same steps)."""
    if ddp.world > 1:
        loss = loss.clone()
        dist.all_reduce(loss)
    return float(loss) / ddp.world


@torch.no_grad()
def _val_loss(model: GPT, text: TrainingText, cfg: RunConfig, autocast) -> float:
    """Mean loss on a fixed set of validation windows (the same at every evaluation)."""
    model.eval()
    losses = []
    for i in range(cfg.train.eval_batches):
        batch = text.batch("val", cfg.model.n_ctx, cfg.train.micro_batch, cfg.train.seed + 1, i)
        batch = batch.to(next(model.parameters()).device)
        with autocast:
            logits = model(batch[:, :-1])
        losses.append(F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten()).item())
    model.train()
    return sum(losses) / len(losses)


def _dense_l0(params: dict[str, torch.Tensor]) -> int:
    """Nonzero count of a dense run, over the tensors a sparse run would sparsify."""
    return sum(sparsity.count_nonzero({k: v for k, v in params.items() if sparsity.is_sparsified(k, v, False)}).values())


def make_optimizer(model: GPT, cfg: RunConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on matrices only (never the bigram table)."""
    decay, other = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() == 2 and name != "bigram.weight" else other).append(p)
    t = cfg.train
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps, fused=device.type == "cuda")


def _autocast(mode: str, device: torch.device):
    """bf16 autocast: on CUDA with 'auto', anywhere with 'on', never with 'off'."""
    on = mode == "on" or (mode == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if on else nullcontext()


def _check_out_dir(cfg: RunConfig, opts: TrainOptions) -> tuple[RunConfig, dict[str, Any] | None]:
    """Validate --out before anything is written; with --resume, return the stored config and provenance."""
    out = opts.out
    if opts.resume:
        if not (out / CONFIG).is_file():
            raise UserError(f"--resume: {out} holds no run ({CONFIG} missing); start it without --resume")
        stored, provenance = read_config(out)
        if stored != cfg:
            diff = _first_difference(to_dict(stored), to_dict(cfg))
            raise UserError(f"--resume: the config differs from the one stored in {out / CONFIG} at {diff}; "
                            "resume without --config/--set, or train into another --out")
        if (out / MODEL).is_file():
            raise UserError(f"{out} has finished training ({MODEL} exists); nothing to resume")
        require_file(out / STATE / CHECKPOINT, "the run saved no checkpoint yet, so it cannot be resumed")
        check_destination(out, "--out")
        return stored, provenance
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; choose a directory")
    check_destination(out, "--out")
    if out.is_dir() and any(out.iterdir()):
        if (out / CONFIG).is_file():
            stored, _ = read_config(out)
            if stored == cfg:
                raise UserError(f"--out {out} already holds this run; add --resume to continue it, or choose another --out")
            raise UserError(f"--out {out} already holds a different run ({stored.name!r}); choose another --out")
        raise UserError(f"--out {out} is not empty and is not a run; choose another --out")
    return cfg, None


def _check_same_corpus(out: Path, stored: dict[str, Any], provenance: dict[str, Any]) -> None:
    """A resumed run must read the corpus it started on (the stdlib differs between Python versions), or its batches
    would silently change; its tokenizer was checked when it was read (read_run_tokenizer)."""
    recorded = stored.get("corpus_sha256")
    if recorded not in (None, provenance["corpus_sha256"]):
        raise UserError(f"--resume: {out / CONFIG} records the corpus sha256 {str(recorded)[:12]}… (Python "
                        f"{stored.get('python', '?')}), this machine reads {provenance['corpus_sha256'][:12]}… (Python "
                        f"{provenance['python']}): the run would go on with other text; resume it where its "
                        "corpus is the same")


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    """Dotted key of the first difference between two nested dicts."""
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            return f"{prefix}{key} ({a.get(key)!r} stored, {b.get(key)!r} given)"
    return "?"


def _start_run_dir(out: Path, cfg: RunConfig, provenance: dict, tokenizer_json: str) -> None:
    """Create the run directory with config.json and tokenizer.json."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / TOKENIZER, tokenizer_json.encode())
    write_json(out / CONFIG, config_record(cfg, provenance))


def _save_checkpoint(out: Path, model: GPT, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Write weights, Adam moments and the step into one safetensors file under state/."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                tensors[f"{key}.{names[id(p)]}"] = value.reshape(-1) if key == "step" else value
    tensors["train_step"] = torch.tensor([step])
    save_tensors(out / STATE / CHECKPOINT, tensors)
    log.info("checkpoint at step %d", step)


def _load_checkpoint(out: Path, model: GPT, optimizer: torch.optim.Optimizer, steps: int) -> int:
    """Restore weights and Adam moments from state/, every tensor checked first (names, shapes, finite values) and
    its step one the run has yet to finish; returns the next step."""
    path = out / STATE / CHECKPOINT
    tensors = load_tensors(path)
    params = dict(model.named_parameters())
    expected = {f"model.{k}": v for k, v in model.state_dict().items()} | {"train_step": torch.zeros(1, dtype=torch.long)}
    for name, p in params.items():
        expected |= {f"exp_avg.{name}": p, f"exp_avg_sq.{name}": p, f"step.{name}": torch.zeros(1)}
    check_tensors(path, tensors, expected)
    start = int(tensors["train_step"])
    if not 0 < start < steps:
        raise UserError(f"{path}: tensor 'train_step' is {start}, not a step of a run of {steps} steps; it cannot be "
                        "resumed")
    device = next(model.parameters()).device
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    for name, p in params.items():
        state = {key: tensors[f"{key}.{name}"].to(device) for key in ("exp_avg", "exp_avg_sq", "step")}
        state["step"] = state["step"].reshape(()).float()
        optimizer.state[p] = state
    return start



def _training_text(cfg: RunConfig, tok, opts: TrainOptions, ddp: Dist) -> TrainingText:
    """The run's training text; its token shards are built once by rank 0 while the other ranks wait."""
    if ddp.main:
        text = load_text(cfg.data, tok, opts.cache_dir)
    _barrier(ddp)
    return text if ddp.main else load_text(cfg.data, tok, opts.cache_dir)


@contextmanager
def _sigint_flag() -> Iterator[Callable[[], bool]]:
    """While active, Ctrl-C (or SIGTERM) sets a flag the loop checks after each step instead of raising mid-step."""
    hit = [False]

    def handler(signum, frame) -> None:
        hit[0] = True

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave the signals alone
        yield lambda: False
        return
    try:
        yield lambda: hit[0]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _init_distributed(device: str) -> Dist:
    """Join the torchrun process group if launched by torchrun (gloo on CPU, NCCL on CUDA)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    world = int(os.environ["WORLD_SIZE"])
    ddp = Dist(rank=int(os.environ["RANK"]), world=world, local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    if world > 1:
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(ddp.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return ddp


def _device(name: str, ddp: Dist) -> torch.device:
    """The torch device for --device auto|cpu|cuda."""
    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {name!r}: use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available; use --device cpu")
    cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    return torch.device(f"cuda:{ddp.local_rank}") if cuda else torch.device("cpu")


def _barrier(ddp: Dist) -> None:
    """Wait for all ranks (no-op on one process)."""
    if ddp.world > 1:
        dist.barrier()


def _any_rank(flag: bool, ddp: Dist, device: torch.device) -> bool:
    """True if the flag is set on any rank, so all ranks stop at the same step."""
    if ddp.world == 1:
        return flag
    t = torch.tensor(int(flag), device=device)
    dist.all_reduce(t)
    return bool(t.item())


def _check_batch(cfg: RunConfig, world: int) -> None:
    """The global batch must split evenly over ranks, and each rank's rows into micro-batches."""
    per_rank, micro = divmod(cfg.train.batch_size, world)
    if micro or per_rank % min(cfg.train.micro_batch, per_rank):
        raise UserError(f"train.batch_size = {cfg.train.batch_size} does not split over {world} processes "
                        f"in micro-batches of {cfg.train.micro_batch}; change train.batch_size or train.micro_batch")


def run_training(config: str | None, out: Path | None, overrides: tuple[str, ...] | list[str] = (), *,
                 resume: bool = False, device: str = "auto", quiet: bool = False) -> Path:
    """Resolve the config (a name, a file, or the one stored in --out with --resume) and train."""
    if config is None and not resume:
        raise UserError("give --config NAME|FILE (or --resume --out DIR to continue a run)")
    if config is None:
        if out is None:
            raise UserError("--resume needs --out DIR")
        if overrides:
            raise UserError("--set changes a config: give --config too (with --resume it must match the stored one)")
        cfg, _ = read_config(out)
    else:
        cfg = load_config(config, overrides)
    return train(cfg, TrainOptions(out=out or Path("runs") / cfg.name, resume=resume, device=device, quiet=quiet))
