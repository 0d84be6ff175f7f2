"""The live panel's data: each run's tokenizer as the page's tokenizer.js reads it, and per circuit the prompts,
answers and ONNX files the panel runs in the browser with ONNX Runtime Web."""

from __future__ import annotations

import json
from typing import Any

import torch
from tokenizers import Tokenizer

from exporter.inputs import CircuitInput, RunInput
from exporter.tables import answer_probabilities
from trainer.fileio import significant
from trainer.tokenizer import SPLIT_PATTERN

LIVE_FORMAT = 1


def tokenizer_data(tok: Tokenizer, chars: str) -> dict[str, Any]:
    """The tokenizer shard: vocab by id, merges as id pairs by rank, special tokens, and the characters of the
    training text (`chars`, for the "never seen in training" message); {"unsupported": reason} when tokenizer.js
    cannot reproduce this tokenizer."""
    spec = json.loads(tok.to_str())
    reason = unsupported(spec)
    if reason:
        return {"format_version": LIVE_FORMAT, "unsupported": reason}
    vocab_map: dict[str, int] = spec["model"]["vocab"]
    vocab = [""] * len(vocab_map)
    for s, i in vocab_map.items():
        vocab[i] = s
    merges = [m.split(" ", 1) if isinstance(m, str) else m for m in spec["model"]["merges"]]
    special = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    return {"format_version": LIVE_FORMAT, "pattern": SPLIT_PATTERN, "vocab": vocab,
            "merges": [[vocab_map[left], vocab_map[right]] for left, right in merges], "special": special,
            "ignore_merges": bool(spec["model"].get("ignore_merges")), "chars": chars}


def unsupported(spec: dict[str, Any]) -> str:
    """Why tokenizer.js cannot reproduce a tokenizer.json ("" when it can): it implements the byte-level BPE of
    trainer/tokenizer.py (and of trainer/tiktoken_convert.py, which adds ignore_merges) only."""
    pre, model = spec.get("pre_tokenizer") or {}, spec.get("model") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    split_ok = (len(steps) == 2 and steps[0].get("type") == "Split" and steps[0].get("pattern") == {"Regex": SPLIT_PATTERN}
                and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert"))
    if not split_ok or steps[1].get("type") != "ByteLevel" or steps[1].get("use_regex") or steps[1].get("add_prefix_space"):
        return "its pre-tokenizer is not circexport's split pattern followed by a byte-level map"
    if spec.get("normalizer") is not None:
        return "it has a normalizer"
    if model.get("type") != "BPE" or model.get("dropout") or model.get("byte_fallback") or model.get("continuing_subword_prefix") \
            or model.get("end_of_word_suffix"):
        return "its model is not a plain byte-level BPE"
    vocab = model.get("vocab", {})
    if sorted(vocab.values()) != list(range(len(vocab))):
        return "its vocabulary ids are not 0..n-1"
    for t in spec.get("added_tokens", []):
        if not t.get("special") or t.get("normalized") or t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
            return f"its added token {t.get('content')!r} is not a plain special token"
    return ""


def circuit_data(run: RunInput, c: CircuitInput, labels: list[dict[str, Any]], answers: list[int],
                 examples: list[dict[str, Any]], scales: list[float], circuit_files: dict[str, Any] | None,
                 full_files: dict[str, Any] | None, budget: int) -> dict[str, Any]:
    """A circuit's live shard: its nodes in mask order with their color scales, default answers (token ids), ready
    prompts (task examples with the build's probabilities, adversarial prompts) and the ONNX files of the circuit and
    the full model (None in a site built without ONNX), each with the memory it takes in the page and whether that is
    within the page's budget (bytes)."""
    n_ctx = run.run.cfg.model.n_ctx
    ready = [{"kind": "example", "prompt": run.tokenizer.decode(e["prompt"]), "answers": [e["correct"], e["wrong"]],
              "role": e["role"], "p_full": e["p_full"], "p_circuit": e["p_circuit"]} for e in examples]
    ready = [r for r, e in zip(ready, examples) if run.tokenizer.encode(r["prompt"]).ids == e["prompt"]]
    if all(lab["is_token"] for lab in labels):  # adversarial prompts need fixed answers
        ready += adversarial(run, c, answers, n_ctx)
    models = None
    if circuit_files and full_files:
        keys = ("onnx", "js", "key", "weights", "live_bytes", "fits")
        models = {"circuit": {k: circuit_files[k] for k in keys}, "full": {k: full_files[k] for k in keys},
                  "budget": budget}
    return {"format_version": LIVE_FORMAT, "model": run.slug, "circuit": c.slug, "nodes": c.node_ids, "scales": scales,
            "n_ctx": n_ctx, "vocab_size": run.run.cfg.model.vocab_size, "answers": answers, "labels": labels,
            "ready": ready, "models": models,
            "tokenizer": {"key": f"{run.slug}/tokenizer", "path": f"data/{run.slug}/tokenizer.js"}}


def adversarial(run: RunInput, c: CircuitInput, answers: list[int], n_ctx: int) -> list[dict[str, Any]]:
    """The task's adversarial prompts (predicted to break the circuit) that fit the context, with the default answers
    and the probability of the first against the second in the full model and in the circuit (the numbers the page
    shows where a model is too large to run in it)."""
    from trainer.tasks import TASKS

    task = TASKS.get(c.record["task"]["name"])
    encoded = [(p, run.tokenizer.encode(p).ids) for p in (task.adversarial if task is not None else ())]
    prompts, ids = [p for p, i in encoded if 0 < len(i) <= n_ctx], [i for _, i in encoded if 0 < len(i) <= n_ctx]
    if not prompts:
        return []
    tokens = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)  # [n, T], padded on the right
    for r, row in enumerate(ids):
        tokens[r, :len(row)] = torch.tensor(row)
    last = torch.tensor([len(row) - 1 for row in ids])  # [n]
    first, second = (torch.full((len(ids),), a) for a in answers)
    pf, pc = answer_probabilities(run.run.model, run.means, c.kept, tokens, last, first, second)
    return [{"kind": "adversarial", "prompt": p, "answers": answers, "role": None, "p_full": significant(f, 3),
             "p_circuit": significant(q, 3)} for p, f, q in zip(prompts, pf.tolist(), pc.tolist())]
