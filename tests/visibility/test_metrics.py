"""The metric formulas against values computed by hand (Wilson bounds from the quadratic's roots)."""

from __future__ import annotations

import pytest

from visibility.metrics import BrandCounts, brand_metrics, top_domains, wilson_interval


@pytest.mark.parametrize(
    "successes, total, low, high",
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (1, 1, 0.2065, 1.0),
        (3, 4, 0.3006, 0.9544),
        (0, 0, 0.0, 0.0),
    ],
)
def test_wilson_interval_matches_known_values(successes: int, total: int, low: float, high: float) -> None:
    assert tuple(round(x, 4) for x in wilson_interval(successes, total)) == (low, high)


def test_brand_metrics_share_of_voice_sums_to_one_and_rank_is_a_mean() -> None:
    rows = brand_metrics(
        answers=4,
        brands=[
            BrandCounts(1, "Acme", True, mentioned=3, rank_sum=5, cited=2),
            BrandCounts(2, "Globex", False, mentioned=1, rank_sum=2, cited=0),
            BrandCounts(3, "Initech", False),
        ],
    )
    assert rows[0] == {
        "id": 1,
        "name": "Acme",
        "is_own": True,
        "mentioned": 3,
        "visibility": 0.75,
        "visibility_low": 0.3006,
        "visibility_high": 0.9544,
        "share_of_voice": 0.75,
        "avg_rank": 1.6667,
        "cited": 2,
        "citation_rate": 0.5,
    }
    assert rows[1]["share_of_voice"] == 0.25 and rows[1]["avg_rank"] == 2.0
    assert rows[2]["avg_rank"] is None and rows[2]["share_of_voice"] == 0.0 and rows[2]["visibility_high"] == 0.4899


def test_no_answers_and_no_mentions_give_zeros_not_errors() -> None:
    [row] = brand_metrics(answers=0, brands=[BrandCounts(1, "Acme", True)])
    assert (
        row["visibility"],
        row["visibility_low"],
        row["visibility_high"],
        row["share_of_voice"],
        row["citation_rate"],
    ) == (0, 0, 0, 0, 0)


def test_top_domains_by_answers_then_name_at_most_twenty() -> None:
    pairs = [(f"site{i:02}.com", 1) for i in range(30)] + [("g2.com", 3)]
    domains = top_domains(answers=4, domain_answers=pairs)
    assert len(domains) == 20
    assert domains[0] == {"domain": "g2.com", "answers": 3, "share": 0.75}
    assert domains[1] == {"domain": "site00.com", "answers": 1, "share": 0.25}
