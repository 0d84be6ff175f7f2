"""Frozen dataclass configs of a run, loaded from TOML with every key and type checked."""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from trainer.errors import UserError
from trainer.fileio import read_text
from trainer.schema import LAYER_LOCATIONS

# The eight per-layer activation locations that AbsTopK can sparsify (the paper's attn_in, q, k, v, attn_out, mlp_in,
# mlp_neuron, mlp_out): the model's node locations.
SPARSE_LOCATIONS = LAYER_LOCATIONS
# The residual stream after each sublayer's write: sparsified only in some released models.
RESID_LOCATIONS = ("resid.post_attn", "resid.post_mlp")


@dataclass(frozen=True)
class ModelConfig:
    """Shape and options of the GPT (the paper's model recipe)."""

    vocab_size: int = 2048
    n_layer: int = 4
    d_model: int = 128
    d_head: int = 16  # head size; n_head = d_model // d_head
    n_ctx: int = 256
    mlp_mult: int = 4  # MLP width = mlp_mult * d_model
    pos_emb: bool = False  # learned absolute position embedding (loss-neutral in the paper)
    bigram: bool = False  # dense vocab x vocab logit table; excluded from sparsity and decay
    attn_sink: bool = False  # per-head learnable logit of an extra key whose value is zero
    afrac: float = 0.25  # AbsTopK keeps ceil(afrac * dim) entries per token; 1.0 = off
    afrac_locations: tuple[str, ...] = SPARSE_LOCATIONS  # any of SPARSE_LOCATIONS and RESID_LOCATIONS
    # Options of the released openai/circuit_sparsity models (trainer/openai_import.py); defaults = the recipe.
    attn_width: int = 0  # width of q, k and v (n_head * d_head); 0 = d_model
    mlp_width: int = 0  # MLP hidden width; 0 = mlp_mult * d_model
    norm: str = "rms"  # "rms" (RMSNorm) or "layer" (LayerNorm with a bias)
    norm_eps: float = 1e-6
    activation: str = "gelu"  # MLP nonlinearity: "gelu" or "relu"
    resid_activation: str = "identity"  # applied to the residual stream after each sublayer: "identity" or "relu"
    d_pos_emb: int = 0  # > 0: the position embedding is this wide, normalized and concatenated to each sublayer's input
    tied_unembed: bool = False  # the unembedding reuses the token embedding matrix
    bigram_learnable: bool = True  # False: the bigram table is fixed (not trained)
    afrac_round: str = "ceil"  # k = max(1, ceil(afrac * dim)); "floor": k = int(afrac * dim), as the released code

    @property
    def d_attn(self) -> int:
        """Width of q, k and v (all heads side by side)."""
        return self.attn_width or self.d_model

    @property
    def n_head(self) -> int:
        """Number of attention heads."""
        return self.d_attn // self.d_head

    @property
    def d_mlp(self) -> int:
        """Width of the MLP hidden layer."""
        return self.mlp_width or self.mlp_mult * self.d_model

    @property
    def d_in(self) -> int:
        """Width of a sublayer's input: the residual, plus the concatenated position embedding."""
        return self.d_model + self.d_pos_emb


@dataclass(frozen=True)
class SparsityConfig:
    """Weight sparsity: per-matrix top-k by |w| after every step, L0 annealed (the paper's recipe)."""

    enabled: bool = True  # False trains the dense baseline with the same code
    l0: int = 100_000  # target count of nonzero weights over all sparsified tensors
    anneal_start: float = 0.01  # fraction of training where L0 starts falling from dense
    anneal_end: float = 0.5  # fraction of training where L0 reaches the target
    min_per_row: int = 4  # protect the top-n of each row (neuron / channel); 0 = off
    sparse_biases: bool = False  # released code: biases dense; paper text: sparse too
    embed_density_mult: float = 1.0  # embeddings get this times the block density (released: EF)
    split_qkv: bool = True  # W_Q, W_K, W_V (thirds of the fused c_attn) keep their nonzeros apart; false: one top-k,
    # under which V starved Q and K to the row floor in 3 of 4 layers of the d_model-128 demo (attention went uniform)


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule, batch and bookkeeping."""

    steps: int = 1000
    batch_size: int = 32  # global sequences per optimizer step (all ranks together)
    micro_batch: int = 32  # sequences per forward pass on one rank (gradient accumulation)
    lr: float = 1.28e-2  # peak LR before the sharkfin factor
    warmup_frac: float = 0.01
    weight_decay: float = 0.1  # decoupled, on matrices only
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 0.1  # large on purpose (recipe)
    grad_rms_norm: bool = True  # rescale the gradient to global RMS 1 every step
    seed: int = 0
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 4
    checkpoint_every: int = 200
    snapshot_every: int = 0  # also keep the weights every this many steps in snapshots/ (0 = off); for loss matching
    bf16: str = "auto"  # "auto" = bf16 autocast on CUDA only; "on" / "off" force it


@dataclass(frozen=True)
class DataConfig:
    """The training text (the standard library, generated simple Python, or a mixture) and the tokenizer."""

    tokenizer: str = "stdlib-2k"  # a tokenizer shipped in trainer/assets, or a path to a tokenizer.json
    include_tests: bool = False  # include the stdlib's test suites
    val_frac: float = 0.05  # fraction of files held out for validation (split by file)
    max_bytes: int = 0  # cap on corpus bytes (whole files, in corpus order); 0 = no cap
    strip_comments: bool = False  # the stdlib's files without comments and docstrings (trainer.pysource)
    tinypython: float = 0.0  # fraction of each batch's windows drawn from generated simple Python (trainer.tinypython)
    tinypython_seed: int = 0  # the generated text's seed (training and validation draw disjoint documents)
    tinypython_coined: float = 0.0  # share of the generated programs' new names that are made up (only copying predicts them)
    tinypython_repeat: float = 0.0  # share of the generated programs that copy-paste one of their definitions


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run."""

    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


NAME_RULE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")  # a run's name is one safe path component
SECTIONS = {"model": ModelConfig, "sparsity": SparsityConfig, "train": TrainConfig, "data": DataConfig}


def shipped_configs() -> list[str]:
    """Names of the configs shipped in the package."""
    folder = resources.files("trainer") / "configs"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_config(name_or_path: str, overrides: typing.Sequence[str] = ()) -> RunConfig:
    """Load a shipped config by name or a TOML file by path, then apply `section.key=value` overrides."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise UserError(f"config file {path} does not exist")
        text, source = read_text(path), str(path)
    elif name_or_path in shipped_configs():
        text = (resources.files("trainer") / "configs" / f"{name_or_path}.toml").read_text()
        source = f"{name_or_path}.toml"
    else:
        raise UserError(f"unknown config {name_or_path!r}: give a .toml path or one of {', '.join(shipped_configs())}")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{source}: not valid TOML ({e})") from None
    raw.setdefault("name", path.stem if source == str(path) else name_or_path)
    for item in overrides:
        _apply_override(raw, item)
    return from_dict(raw, source)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """Set raw[section][key] from one `section.key=value` string (value parsed as TOML)."""
    key, sep, value = item.partition("=")
    if not sep:
        raise UserError(f"--set {item!r}: expected section.key=value, e.g. train.steps=100")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word is a string
    *sections, leaf = key.strip().split(".")
    node = raw
    for s in sections:
        node = node.setdefault(s, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {item!r}: {s!r} is not a section")
    node[leaf] = parsed


def from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a RunConfig from nested dicts, naming the first unknown key or wrong type."""
    raw = dict(raw)
    raw.pop("format_version", None)
    raw.pop("provenance", None)
    unknown = sorted(set(raw) - set(SECTIONS) - {"name"})
    if unknown:
        raise UserError(f"{source}: unknown key {unknown[0]!r} (known: name, {', '.join(SECTIONS)})")
    name = raw.get("name", "run")
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise UserError(f"{source}: 'name' {name!r} must be letters, digits, '.', '_' or '-' (not starting with '.'): "
                        "it names the run's folder")
    parts = {}
    for section, cls in SECTIONS.items():
        values = raw.get(section, {})
        if not isinstance(values, dict):
            raise UserError(f"{source}: [{section}] must be a table")
        parts[section] = _build(cls, values, f"{source}: {section}")
    cfg = RunConfig(name=name, **parts)
    _check(cfg, source)
    return cfg


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate one section dataclass, checking names and types of every value."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise UserError(f"{where}.{key}: unknown key (known: {', '.join(fields)})")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Return value as the annotated type, or raise a UserError naming the field."""
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise UserError(f"{where}: expected a list of strings, got {value!r}")
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise UserError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return float(value) if hint is float else value


def _check(cfg: RunConfig, source: str) -> None:
    """Reject values that no model or schedule can have."""
    m, s, t, d = cfg.model, cfg.sparsity, cfg.train, cfg.data
    rules = [
        (m.d_model > 0 and m.d_head > 0 and (m.attn_width > 0 or m.d_model % m.d_head == 0), "model.d_model must be a positive multiple of model.d_head"),
        (m.n_layer > 0, "model.n_layer must be > 0"),
        (m.n_ctx > 1, "model.n_ctx must be > 1"),
        (m.vocab_size > 1, "model.vocab_size must be > 1"),
        (m.mlp_mult > 0, "model.mlp_mult must be > 0"),
        (m.vocab_size <= 65536, "model.vocab_size must be <= 65536 (tokens are stored as uint16)"),
        (m.attn_width >= 0 and m.d_head > 0 and m.attn_width % m.d_head == 0, "model.attn_width must be 0 or a positive multiple of model.d_head"),
        (m.mlp_width >= 0 and m.d_pos_emb >= 0, "model.mlp_width and model.d_pos_emb must be >= 0"),
        (m.d_pos_emb == 0 or m.pos_emb, "model.d_pos_emb > 0 needs model.pos_emb = true"),
        (m.norm in ("rms", "layer"), "model.norm must be 'rms' or 'layer'"),
        (m.norm_eps > 0, "model.norm_eps must be > 0"),
        (m.activation in ("gelu", "relu"), "model.activation must be 'gelu' or 'relu'"),
        (m.resid_activation in ("identity", "relu"), "model.resid_activation must be 'identity' or 'relu'"),
        (0 < m.afrac <= 1, "model.afrac must be in (0, 1]"),
        (m.afrac_round in ("ceil", "floor"), "model.afrac_round must be 'ceil' or 'floor'"),
        (set(m.afrac_locations) <= set(SPARSE_LOCATIONS + RESID_LOCATIONS),
         f"model.afrac_locations must be among {', '.join(SPARSE_LOCATIONS + RESID_LOCATIONS)}"),
        (s.l0 > 0, "sparsity.l0 must be > 0 (it is the target count of nonzero weights)"),
        (0 <= s.anneal_start <= s.anneal_end <= 1, "sparsity.anneal_start <= anneal_end must lie in [0, 1]"),
        (s.min_per_row >= 0, "sparsity.min_per_row must be >= 0"),
        (s.embed_density_mult > 0, "sparsity.embed_density_mult must be > 0"),
        (t.steps > 0, "train.steps must be > 0"),
        (0 < t.lr < math.inf, "train.lr must be > 0 and finite"),
        (0 <= t.warmup_frac <= 1, "train.warmup_frac must be in [0, 1]"),
        (0 <= t.weight_decay < math.inf, "train.weight_decay must be a finite number >= 0"),
        (0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, "train.beta1 and train.beta2 must be in [0, 1)"),
        (0 < t.eps < math.inf, "train.eps must be a finite number > 0"),
        (0 <= t.seed < 2**63, "train.seed must be in [0, 2**63)"),
        (t.batch_size > 0 and t.micro_batch > 0 and t.batch_size % t.micro_batch == 0, "train.batch_size must be a positive multiple of train.micro_batch"),
        (min(t.log_every, t.eval_every, t.eval_batches, t.checkpoint_every) > 0,
         "train.log_every, train.eval_every, train.eval_batches and train.checkpoint_every must be > 0"),
        (t.snapshot_every >= 0, "train.snapshot_every must be >= 0 (0 = no snapshots)"),
        (t.bf16 in ("auto", "on", "off"), "train.bf16 must be 'auto', 'on' or 'off'"),
        (0 < d.val_frac < 1, "data.val_frac must be in (0, 1)"),
        (d.max_bytes >= 0, "data.max_bytes must be >= 0"),
        (0 <= d.tinypython <= 1, "data.tinypython must be in [0, 1] (the fraction of windows of generated simple Python)"),
        (0 <= d.tinypython_seed < 2**63, "data.tinypython_seed must be in [0, 2**63)"),
        (0 <= d.tinypython_coined <= 1, "data.tinypython_coined must be in [0, 1] (the share of made-up names)"),
        (0 <= d.tinypython_repeat <= 1, "data.tinypython_repeat must be in [0, 1] (the share of programs with a copy)"),
    ]
    for ok, message in rules:
        if not ok:
            raise UserError(f"{source}: {message}")
    for section, values in (("model", m), ("sparsity", s), ("train", t), ("data", d)):
        for f in dataclasses.fields(values):
            v = getattr(values, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"{source}: {section}.{f.name} must be a finite number, not {v}")
            if isinstance(v, int) and not -2**63 <= v < 2**63:
                raise UserError(f"{source}: {section}.{f.name} = {v} does not fit in 64 bits")


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Nested plain dict of a config (tuples as lists), ready for JSON."""
    out = dataclasses.asdict(cfg)
    out["model"]["afrac_locations"] = list(cfg.model.afrac_locations)
    return out
