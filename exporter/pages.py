"""The site's content: the pages and data shards of the home page, each model, each circuit and each circuit node."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from exporter import live
from exporter import onnx_export as ox
from exporter.inputs import CircuitInput, RunInput
from exporter.render import SiteWriter
from exporter.tables import (TaskSample, class_activations, context_ids, embedding_view, node_activations, node_table,
                             task_examples, token_strings)
from trainer.circuit import control_threshold, faithfulness_checks
from trainer.config import to_dict
from trainer.fileio import significant
from trainer.schema import bibtex_key, node_file, node_place, parse_node_id


@dataclass(frozen=True)
class Samples:
    """The text a run's tables are computed on."""

    windows: torch.Tensor  # [N, W] pretraining windows
    tasks: dict[str, TaskSample | None]  # per circuit slug: its task's pairs, None without the task suite
    chars: str = ""  # every distinct character of the training text (the live panel flags the others)
    corpus_sha256: str = ""  # the fingerprint of the text the windows were drawn from (TrainingText.record)


def write_model(site: SiteWriter, run: RunInput, samples: Samples, options: Any, bar: tqdm) -> dict[str, Any]:
    """Every page and shard of one run: model page, circuit pages, node pages, ONNX models; returns its summary."""
    m, model = run.slug, run.run.model
    strings = token_strings(run.tokenizer, model.cfg.vocab_size)
    summary = model_summary(run)
    embed = embedding_view(model)
    for side in embed.values():
        for ch in side:
            for sign in ch:
                ch[sign] = [[strings[i], v] for i, v in ch[sign]]
    site.shard(f"data/{m}/model.js", f"{m}/model", {"curves": curves(run.metrics), "embed": embed})
    if run.circuits:
        site.shard(f"data/{m}/tokenizer.js", f"{m}/tokenizer", live.tokenizer_data(run.tokenizer, samples.chars))
    onnx_set = ox.OnnxSet(f"onnx/{m}", options.live_budget) if options.onnx else None
    onnx_files = None
    if onnx_set is not None:
        proto = ox.export_full(model, {"circexport.model_sha256": run.model_sha})
        onnx_files = onnx_set.add("full-model", proto, model, [(samples.windows[:4],)]).as_dict()
    bar.update(1)
    union = sorted({n for c in run.circuits for n in c.node_ids}, key=lambda n: _node_order(model, n))
    acts = node_activations(model, samples.windows, union, options.tables.batch, options.device)  # [n, N, W]
    windows = samples.windows.numpy()
    shards = {n: node_shard(acts[j], windows, strings, options.tables) for j, n in enumerate(union)}
    del acts  # the build's largest array: freed before the pages and ONNX models
    bar.update(1)
    for c in run.circuits:
        summary["circuits"].append(write_circuit(site, run, c, samples, shards, strings, options, onnx_set, onnx_files))
        bar.update(1)
    if onnx_set is not None:
        onnx_set.write(site)  # the weights files, the models and their twins, each model checked against PyTorch
        onnx_files["stats"] = onnx_set.stats()
    summary["task_rows"] = task_rows(summary)
    site.page(f"{m}/index.html", "model.html", model=summary, config=config_rows(run), weights=weight_rows(model),
              provenance=sorted(run.run.provenance.items()), onnx=onnx_files)
    return summary


def task_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task: from tasks.json (learned or not) and from the circuit files."""
    rows = {name: dict(r) for name, r in summary["tasks"].items()}
    for c in summary["circuits"]:
        rows.setdefault(c["task"], {"name": c["task"]})["circuit"] = c
    return [{"learned": None, "loss": None, "accuracy": None, "circuit": None, **r} for _, r in sorted(rows.items())]


def _node_order(model: Any, node: str) -> tuple[int, int]:
    """Sort key of a node id: forward order of its location, then index."""
    loc, i = parse_node_id(node)
    return model.node_locations().index(loc), i


def model_summary(run: RunInput) -> dict[str, Any]:
    """What the home page and the model page show of a run."""
    cfg, model = run.run.cfg, run.run.model
    mats = [p for p in model.state_dict().values() if p.dim() >= 2]
    val = [r["val_loss"] for r in run.metrics if r["val_loss"] is not None]
    last = run.metrics[-1] if run.metrics else {"loss": None, "step": None, "tokens": None}  # an imported run: no log
    tasks = {name: {"name": name, **row} for name, row in sorted(run.task_table.items())}
    return {"slug": run.slug, "name": cfg.name, "kind": model_kind(cfg),
            "layers": cfg.model.n_layer, "d_model": cfg.model.d_model,
            "params": sum(p.numel() for p in model.state_dict().values()),
            "matrix_weights": sum(p.numel() for p in mats), "nonzero": sum(int(torch.count_nonzero(p)) for p in mats),
            "val_loss": val[-1] if val else last["loss"], "steps": last["step"], "tokens": last["tokens"],
            "model_sha": run.model_sha, "circuits": [], "tasks": tasks}


def model_kind(cfg: Any) -> str:
    """How the site tags a model: "sparse" (sparse weights), "activation-sparse" (dense weights, AbsTopK) or "dense"."""
    if cfg.sparsity.enabled:
        return "sparse"
    return "activation-sparse" if cfg.model.afrac < 1 else "dense"


def config_rows(run: RunInput) -> list[tuple[str, Any]]:
    """The run's config flattened to `section.key` rows."""
    rows = []
    for section, values in to_dict(run.run.cfg).items():
        if isinstance(values, dict):
            rows += [(f"{section}.{k}", v) for k, v in sorted(values.items())]
        else:
            rows.append((section, values))
    return sorted(rows, key=lambda r: r[0])


def weight_rows(model: Any) -> list[dict[str, Any]]:
    """Per weight tensor: shape, nonzero count and density (the model's L0, tensor by tensor)."""
    out = []
    for name, p in model.state_dict().items():
        nz = int(torch.count_nonzero(p))
        out.append({"name": name, "shape": "×".join(map(str, p.shape)), "nonzero": nz, "total": p.numel(),
                    "density": nz / max(1, p.numel())})
    return out


def curves(metrics: list[dict[str, Any]]) -> dict[str, list]:
    """Training curves as columns (step, tokens, loss, val_loss, l0, lr)."""
    cols = ("step", "tokens", "loss", "val_loss", "l0", "lr")
    return {c: [None if r[c] is None else (significant(r[c], 6) if isinstance(r[c], float) else r[c]) for r in metrics] for c in cols}


def answer_ids(run: RunInput, c: CircuitInput) -> tuple[int | None, int | None]:
    """Token ids of the task's target and alternative, or None for an answer that is a label (one that varies
    per pair, such as "right argument")."""
    out = []
    for role in ("target", "alternative"):
        ids = run.tokenizer.encode(c.record["task"][role]).ids
        out.append(ids[0] if len(ids) == 1 else None)
    return out[0], out[1]


def write_circuit(site: SiteWriter, run: RunInput, c: CircuitInput, samples: Samples,
                  shards: dict[str, NodeShard], strings: list[str], options: Any, onnx_set: ox.OnnxSet | None,
                  full_onnx: dict[str, Any] | None) -> dict[str, Any]:
    """The circuit page, its shards (graph, live panel), one page and shard per node, and the circuit's ONNX model
    (`shards`: every node of the run's circuits, by id)."""
    m, t, model, rec = run.slug, c.slug, run.run.model, c.record
    answers = answer_ids(run, c)
    sample = samples.tasks.get(c.slug)
    classes = class_activations(model, sample, c.node_ids, options.device) if sample is not None else None
    examples = task_examples(model, run.means, c, sample, device=options.device) if sample is not None else []
    nodes = node_views(model, c)
    graph = graph_data(run, c, nodes, answers, strings)
    indexed = {**graph, "by_node": wiring_index(graph, len(nodes))}
    onnx_files = circuit_onnx(onnx_set, run, c, answers, sample, samples.windows[:4]) if onnx_set is not None else None
    labels = [answer_label(rec, role, a, strings) for role, a in zip(("target", "alternative"), answers)]
    scales = []  # per node, max |activation| over the sample: the live panel's color scale
    for j, n in enumerate(nodes):
        shard = shards[n["id"]]
        table = {**shard.table, "classes": None if classes is None else
                 [{**lab, "values": v} for lab, v in zip(labels, classes[n["id"]])]}
        scales.append(table["stats"]["scale"])
        site.shard(f"data/{m}/{t}/nodes/{n['file']}.js", f"{m}/{t}/{n['id']}", table)
        site.page(f"{m}/{t}/{n['file']}.html", "node.html", model=m, circuit=t, task=rec["task"], node=n,
                  wiring=wiring(j, indexed, nodes), stats=table["stats"], snippet=shard.snippet, onnx=onnx_files,
                  n_nodes=len(nodes), node_index=j, cite=cite(m, t, n, run, options.site_url),
                  model_sha=run.model_sha, answers=answers)
    site.shard(f"data/{m}/{t}/circuit.js", f"{m}/{t}/circuit", graph)
    site.shard(f"data/{m}/{t}/live.js", f"{m}/{t}/live",
               live.circuit_data(run, c, labels, answer_pair(answers, sample), examples, scales, onnx_files, full_onnx,
                                 options.live_budget))
    shown = [{"prompt": "".join(strings[i] for i in e["prompt"][-32:]), "cut": len(e["prompt"]) > 32,
              "correct": strings[e["correct"]], "wrong": strings[e["wrong"]], "p_full": e["p_full"],
              "p_circuit": e["p_circuit"], "role": e["role"]} for e in examples]
    standalone = None
    if options.standalone:
        from exporter.standalone import write_standalone

        standalone = write_standalone(site, f"{m}/{t}/standalone.html", graph)
    site.page(f"{m}/{t}/index.html", "circuit.html", model=m, circuit=t, rec=rec, nodes=nodes, examples=shown,
              has_tasks=sample is not None, faith=faithfulness_rows(rec), onnx=onnx_files, labels=labels,
              standalone=standalone)
    met = rec["metrics"]
    return {"slug": t, "task": rec["task"]["name"], "nodes": rec["counts"]["nodes"], "edges": rec["counts"]["edges"],
            "loss_full": met["loss_full"], "loss_circuit": met["loss_circuit"], "meets_target": rec["prune"]["meets_target"]}


@dataclass(frozen=True)
class NodeShard:
    """What a node's page and shard show of it over the pretraining windows, the same in every circuit that holds it."""

    table: dict[str, Any]  # node_table's, its examples' tokens as text
    snippet: dict[str, Any] | None  # the top example's context ids and value, for the page's recompute snippet


def node_shard(acts: np.ndarray, windows: np.ndarray, strings: list[str], cfg: Any) -> NodeShard:
    """A node's table and snippet from its activations over the windows (acts [N, W], windows [N, W])."""
    table = node_table(acts, windows, cfg)
    top = table["top"][0] if table["top"] else None
    snippet = None if top is None else {"ids": context_ids(windows, top), "value": significant(acts[top["w"], top["p"]], 6)}
    for side in ("top", "bottom"):
        for ex in table[side]:
            ex["t"] = [strings[i] for i in ex["t"]]
    return NodeShard(table, snippet)


def answer_label(rec: dict[str, Any], role: str, token: int | None, strings: list[str]) -> dict[str, Any]:
    """How an answer is shown: its token text, or the task's label for answers that vary per pair."""
    return {"role": role, "text": strings[token] if token is not None else rec["task"][role], "is_token": token is not None}


def answer_pair(answers: tuple[int | None, int | None], sample: TaskSample | None) -> list[int]:
    """The answer token ids a circuit's live panel and ONNX check start from: the task's, else those of its first
    pair (for answers that vary per pair), else 0 and 1."""
    if None not in answers:
        return [int(a) for a in answers]
    if sample is not None:
        return [int(sample.correct[0]), int(sample.wrong[0])]
    return [0, 1]


def circuit_onnx(onnx_set: ox.OnnxSet, run: RunInput, c: CircuitInput, answers: tuple[int | None, int | None],
                 sample: TaskSample | None, windows: torch.Tensor) -> dict[str, Any]:
    """Export the circuit model; it is written (and checked against PyTorch) with the run's other models."""
    module = ox.CircuitModel(run.run.model, run.means, c.node_ids).eval()
    pair = torch.tensor([answer_pair(answers, sample)], dtype=torch.long)
    meta = {"circexport.nodes": ",".join(c.node_ids), "circexport.model_sha256": run.model_sha,
            "circexport.task": c.record["task"]["name"]}
    if None not in answers:
        meta["circexport.answers"] = f"{answers[0]},{answers[1]}"
    proto = ox.export_circuit(module, len(c.node_ids), meta)
    feeds = [(windows, mask, pair.expand(windows.size(0), 2)) for mask in ox.parity_masks(len(c.node_ids))]
    return {**onnx_set.add(f"{c.slug}.circuit", proto, module, feeds).as_dict(), "answers": [int(a) for a in pair[0]]}


def node_views(model: Any, c: CircuitInput) -> list[dict[str, Any]]:
    """The circuit's nodes with their position in the graph (layer, kind, head) and rank by mask score."""
    order = sorted(range(len(c.record["nodes"])), key=lambda j: (-c.record["nodes"][j]["tau"], j))
    rank = {j: r for r, j in enumerate(order)}
    out = []
    for j, n in enumerate(c.record["nodes"]):
        place = node_place(n["id"], model.cfg.d_head)
        out.append({"id": n["id"], "loc": place.location, "layer": place.layer, "kind": place.kind, "i": place.index,
                    "head": place.head, "tau": n["tau"], "mean": n["mean"], "ablation_delta": n["ablation_delta"],
                    "rank": rank[j],
                    "file": node_file(n["id"])})
    return out


MAX_ANSWERS = 12  # answer tokens drawn in a graph (tasks whose answers vary per pair can have many)


def graph_data(run: RunInput, c: CircuitInput, nodes: list[dict[str, Any]], answers: tuple[int | None, int | None],
               strings: list[str]) -> dict[str, Any]:
    """The circuit shard: nodes, weighted edges, residual links, unembedding edges, q-k pairs, sweep, metrics."""
    rec, cfg = c.record, run.run.cfg.model
    index = {n["id"]: j for j, n in enumerate(nodes)}
    edges = [[index[e["src"]], index[e["dst"]], significant(e["weight"])] for e in rec["edges"]]  # ends: checked nodes
    links = [[index[e["src"]], index[e["dst"]]] for e in rec["resid_links"]]
    unembed_raw = rec["unembed_edges"]
    mass: dict[int, float] = {}
    for e in unembed_raw:
        mass[e["token"]] = mass.get(e["token"], 0.0) + abs(e["weight"])
    fixed = [a for a in answers if a is not None]
    tokens = fixed + sorted((t for t in mass if t not in fixed), key=lambda t: (-mass[t], t))[:MAX_ANSWERS - len(fixed)]
    role = {a: r for a, r in zip(answers, ("target", "alternative")) if a is not None}
    slot = {t: k for k, t in enumerate(tokens)}
    unembed = [[index[e["src"]], slot[e["token"]], significant(e["weight"])] for e in unembed_raw if e["token"] in slot]
    qk = [[index[p["q"]], index[p["k"]], p["head"]] for p in rec["qk_pairs"]]
    keys = ("id", "loc", "layer", "kind", "i", "head", "tau", "mean", "ablation_delta", "rank", "file")
    return {"model": run.slug, "circuit": c.slug, "task": rec["task"], "n_layer": cfg.n_layer, "d_head": cfg.d_head,
            "answers": [{"token": t, "text": strings[t], "role": role.get(t, "answer")} for t in tokens],
            "nodes": [{k: (significant(n[k], 5) if isinstance(n[k], float) else n[k]) for k in keys} for n in nodes],
            "edges": edges, "resid_links": links, "unembed_edges": unembed, "qk_pairs": qk, "counts": rec["counts"],
            "sweep": [[p["k"], significant(p["loss"])] for p in rec["sweep"]],
            "target_loss": rec["task"]["target_loss"], "metrics": dict(rec["metrics"])}


def wiring(j: int, graph: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, list]:
    """Node j's inputs and outputs (weight edges, strongest first), residual links, q-k partners and unembedding edges;
    `graph` is graph_data's with "by_node" from wiring_index."""
    ref = lambda k, **kw: {"id": nodes[k]["id"], "file": nodes[k]["file"], **kw}  # noqa: E731
    mine = graph["by_node"][j]
    return {
        "inputs": [ref(s, weight=w) for s, d, w in mine["edges"] if d == j],
        "outputs": [ref(d, weight=w) for s, d, w in mine["edges"] if s == j],
        "links_in": [ref(s) for s, d in mine["resid_links"] if d == j],
        "links_out": [ref(d) for s, d in mine["resid_links"] if s == j],
        "qk": [ref(k if q == j else q, head=h) for q, k, h in mine["qk_pairs"]],
        "unembed": [{"text": graph["answers"][a]["text"], "role": graph["answers"][a]["role"], "weight": w}
                    for s, a, w in mine["unembed_edges"]],
    }


def wiring_index(graph: dict[str, Any], n_nodes: int) -> list[dict[str, list]]:
    """Per node, the graph's edges (strongest first), links, q-k pairs and unembedding edges that touch it."""
    out: list[dict[str, list]] = [{"edges": [], "resid_links": [], "qk_pairs": [], "unembed_edges": []} for _ in range(n_nodes)]
    for e in sorted(graph["edges"], key=lambda e: (-abs(e[2]), e[0], e[1])):
        for j in {e[0], e[1]}:
            out[j]["edges"].append(e)
    for key, ends in (("resid_links", 2), ("qk_pairs", 2), ("unembed_edges", 1)):
        for e in graph[key]:
            for j in set(e[:ends]):
                out[j][key].append(e)
    return out


def cite(m: str, t: str, n: dict[str, Any], run: RunInput, site_url: str) -> dict[str, str]:
    """A BibTeX entry and a permalink for a node page."""
    rel = f"{m}/{t}/{n['file']}.html"
    url = f"{site_url.rstrip('/')}/{rel}" if site_url else ""
    key = bibtex_key(m, t, n["id"])
    bib = (f"@misc{{{key},\n  title = {{Node {n['id']} of the {t} circuit of {m}}},\n"
           f"  howpublished = {{\\url{{{url or rel}}}}},\n"
           f"  note = {{circexport circuit site; model.safetensors sha256 {run.model_sha[:16]}}}\n}}")
    return {"bibtex": bib, "permalink": url, "rel": rel}


FAITHFULNESS = (
    ("full model", "loss_full", "acc_full", "nothing ablated"),
    ("circuit", "loss_circuit", "acc_circuit", "every node outside the circuit mean-ablated"),
    ("inverse", "loss_inverse", None, "only the circuit's nodes mean-ablated"),
    ("inverse, bias refit", "loss_inverse_refit", None,
     "the inverse with one logit offset between the answers refit on the eval split (what a bias alone restores)"),
    ("empty", "loss_empty", None, "every node mean-ablated"),
    ("random", "loss_random_mean", None, "random circuits with as many nodes per location (mean ± sd)"),
    ("attribution", "loss_attribution_same_k", None, "as many nodes, chosen by gradient attribution"),
    ("circuit, frozen norms", "loss_circuit_frozen_norm", None, "RMSNorm scales frozen to the full model's"),
)


def faithfulness_rows(rec: dict[str, Any]) -> dict[str, Any]:
    """The faithfulness panel: one row per ablation, with the frozen-norm check."""
    met, target = rec["metrics"], rec["task"]["target_loss"]
    rows = []
    for label, loss_key, acc_key, what in FAITHFULNESS:
        if met[loss_key] is not None:  # the bias-refit row is absent from circuits pruned before it existed
            sd = met["loss_random_sd"] if loss_key == "loss_random_mean" else None
            rows.append({"label": label, "loss": met[loss_key], "sd": sd, "acc": met[acc_key] if acc_key else None,
                         "what": what})
    top = max([r["loss"] for r in rows] + [math.log(2), target])
    for r in rows:
        r["width"] = round(100 * r["loss"] / top, 1)
    frozen = met["loss_circuit_frozen_norm"]
    ablation = rec["ablation"]
    return {"rows": rows, "target": target, "target_width": round(100 * target / top, 1),
            "check": {"ok": frozen <= target, "frozen": frozen, "target": target},
            "means": {"tokens": ablation["tokens_used"] or ablation["tokens"], "sem": ablation["mean_sem_max"]},
            "verdicts": faithfulness_checks(met, target), "control": control_threshold(target),
            "attribution_nodes": met["attribution_nodes_at_target"], "attribution_edges": met["attribution_edges_at_target"]}


def write_home(site: SiteWriter, models: list[dict[str, Any]]) -> None:
    """The home page (every model and task) and its Pareto plot data."""
    points = []
    for s in models:
        edges = [c["edges"] for c in s["circuits"]]
        if edges and s["val_loss"] is not None:
            geo = math.exp(sum(math.log(max(1, e)) for e in edges) / len(edges))
            points.append({"model": s["slug"], "kind": s["kind"], "loss": significant(s["val_loss"]), "edges": significant(geo), "circuits": len(edges)})
    site.shard("data/home.js", "home", {"points": points})
    site.page("index.html", "home.html", models=models, points=points)
