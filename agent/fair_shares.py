"""Max-min fair split of a budget (pure): how many lost items each workspace, then each run, gets per sweep.

A sweep puts back at most AGENT_RECOVERY_BATCH items, so a workspace with a huge backlog must
not take the whole budget while another waits: every claimant gets an equal share, a claimant
that needs less gives its rest to the others, and when the budget is smaller than the number
of claimants, the first ones in the caller's order get one each (the caller orders the oldest
first; what they got is no longer overdue at the next sweep, so the others come next).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)


def fair_shares(demands: Mapping[Key, int], budget: int) -> dict[Key, int]:
    """{key: share} with sum(shares) == min(budget, sum(demands)) and no share above its demand."""
    shares = dict.fromkeys(demands, 0)
    remaining = max(0, budget)
    wanting = sorted((key for key, demand in demands.items() if demand > 0), key=lambda key: demands[key])
    for position, key in enumerate(wanting):
        level = remaining // (len(wanting) - position)
        if demands[key] > level:  # this one and every bigger one get the same level
            for bigger in wanting[position:]:
                shares[bigger] = level
            remaining -= level * (len(wanting) - position)
            break
        shares[key] = demands[key]
        remaining -= demands[key]
    for key in demands:  # what integer division left over: one more each, in the caller's order
        if remaining <= 0:
            break
        if shares[key] < demands[key]:
            shares[key] += 1
            remaining -= 1
    return shares


def fair_shares_nested(demands: Mapping[Hashable, Mapping[Key, int]], budget: int) -> dict[Key, int]:
    """Fair between the outer keys (workspaces) first, then between the inner keys (runs) of each."""
    outer = fair_shares({key: sum(inner.values()) for key, inner in demands.items()}, budget)
    shares: dict[Key, int] = {}
    for key, inner in demands.items():
        shares.update(fair_shares(inner, outer[key]))
    return shares
