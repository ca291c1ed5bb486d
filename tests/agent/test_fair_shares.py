"""The fair split of a sweep's budget: a small backlog is served in full beside a huge one."""
from __future__ import annotations

from agent.fair_shares import fair_shares, fair_shares_nested


def test_a_small_claimant_gets_all_it_needs_and_the_big_one_the_rest() -> None:
    assert fair_shares({"big": 260_000, "small": 2}, 10_000) == {"big": 9_998, "small": 2}


def test_equal_claimants_share_equally_and_never_beyond_the_budget() -> None:
    shares = fair_shares({"a": 100, "b": 100, "c": 100}, 100)
    assert sum(shares.values()) == 100 and max(shares.values()) - min(shares.values()) <= 1


def test_a_budget_larger_than_every_demand_serves_every_demand() -> None:
    assert fair_shares({"a": 3, "b": 0, "c": 7}, 1000) == {"a": 3, "b": 0, "c": 7}


def test_more_claimants_than_budget_serves_the_first_in_order() -> None:
    demands = {f"run{i}": 1 for i in range(10)}
    assert [key for key, n in fair_shares(demands, 3).items() if n] == ["run0", "run1", "run2"]


def test_workspaces_share_first_so_many_runs_of_one_do_not_crowd_out_another() -> None:
    demands = {"big": {f"run{i}": 1000 for i in range(260)}, "small": {"claude": 2}}
    shares = fair_shares_nested(demands, 10_000)
    assert shares["claude"] == 2
    assert sum(shares.values()) == 10_000
    assert max(n for key, n in shares.items() if key != "claude") <= 39
