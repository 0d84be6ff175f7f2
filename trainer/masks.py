"""Node masks with mean ablation: learnable gates (Heaviside forward, sigmoid backward) and fixed keep-sets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn as nn

from trainer.model import GPT, HookFn, mask_hook
from trainer.schema import node_id, parse_node_id

Kept = dict[str, torch.Tensor]  # location -> bool [dim]: True = kept, False = mean-ablated


def model_device(model: GPT) -> torch.device:
    """The device of the model's weights: where everything the pruner makes lives."""
    return next(model.parameters()).device


def heaviside_ste(tau: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Hard 0/1 gate (tau > 0) whose gradient is that of sigmoid(tau / T) (straight-through)."""
    soft = torch.sigmoid(tau / temperature)
    hard = (tau > 0).to(tau.dtype)
    return hard + (soft - soft.detach())


class NodeMasks(nn.Module):
    """One learnable tau per node at every location; gated-off nodes are replaced by their mean."""

    def __init__(self, model: GPT, means: Mapping[str, torch.Tensor], init_mean: float = 0.1,
                 init_sd: float = 0.01, temperature: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.locations = model.node_locations()
        self.temperature = temperature
        device = model_device(model)
        self.means = {loc: means[loc].detach().to(device) for loc in self.locations}
        # tau [dim] per location, drawn on CPU by a CPU generator so that every device starts from the same taus
        taus = {loc: init_mean + init_sd * torch.randn(model.location_dim(loc), generator=generator) for loc in self.locations}
        self.tau = nn.ParameterDict({_key(loc): nn.Parameter(t.to(device)) for loc, t in taus.items()})

    def gates(self) -> dict[str, torch.Tensor]:
        """The 0/1 gate of every location (straight-through gradients)."""
        return {loc: heaviside_ste(self.tau[_key(loc)], self.temperature) for loc in self.locations}

    def hooks(self) -> dict[str, HookFn]:
        """Mean-ablation hooks built from the current gates."""
        return {loc: mask_hook(g, self.means[loc]) for loc, g in self.gates().items()}

    def n_kept(self) -> torch.Tensor:
        """Number of kept nodes, differentiable through the straight-through gates."""
        return sum(g.sum() for g in self.gates().values())

    @torch.no_grad()
    def clamp_(self, low: float = -1.0, high: float = 1.0) -> None:
        """Clamp every tau to [low, high] (after each optimizer step)."""
        for p in self.tau.values():
            p.clamp_(low, high)

    def scores(self) -> dict[str, torch.Tensor]:
        """tau per location, detached (the ranking used to pick the k best nodes)."""
        return {loc: self.tau[_key(loc)].detach().clone() for loc in self.locations}


def _key(location: str) -> str:
    """ParameterDict keys may not contain '.'."""
    return location.replace(".", "_")


@contextmanager
def ablate(model: GPT, kept: Kept, means: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Run the model with every node outside `kept` replaced by its mean (locations absent = all kept)."""
    fns = {loc: mask_hook(k.to(means[loc].device, means[loc].dtype), means[loc]) for loc, k in kept.items()}
    with model.hooks(fns):
        yield


def all_kept(model: GPT, value: bool = True) -> Kept:
    """A keep-set with every node kept (or, with value=False, every node ablated), on the model's device."""
    device = model_device(model)
    return {loc: torch.full((model.location_dim(loc),), value, device=device) for loc in model.node_locations()}


def top_k_kept(scores: Mapping[str, torch.Tensor], k: int) -> Kept:
    """Keep the k nodes of highest score over all locations (ties broken by location order, then index)."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    chosen[order] = True
    out, start = {}, 0
    for loc, s in scores.items():
        out[loc] = chosen[start:start + s.numel()].clone()
        start += s.numel()
    return out


def kept_ids(kept: Kept) -> list[str]:
    """Node ids of a keep-set, in location then index order."""
    return [node_id(loc, i) for loc, k in kept.items() for i in k.nonzero().flatten().tolist()]


def kept_from_ids(model: GPT, ids: list[str]) -> Kept:
    """The keep-set holding exactly the given node ids."""
    kept = all_kept(model, False)
    for node in ids:
        loc, i = parse_node_id(node)
        if loc not in kept or not 0 <= i < kept[loc].numel():
            raise KeyError(node)
        kept[loc][i] = True
    return kept


def count(kept: Kept) -> int:
    """Number of kept nodes."""
    return int(sum(int(k.sum()) for k in kept.values()))
