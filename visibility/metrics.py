"""The visibility metrics as pure functions of counts (DESIGN.md "Visibility metrics").

Every figure is computed from numerators and denominators, so the same code serves one run,
one provider, one prompt or a year of runs added together.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

Z_95 = 1.96
TOP_DOMAINS_LIMIT = 20
DIGITS = 4


def wilson_interval(successes: int, total: int, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of successes/total; (0, 0) when total is 0."""
    if total <= 0:
        return 0.0, 0.0
    p = successes / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS)


class BrandCounts(NamedTuple):
    """A brand's numerators over one set of answers (a tuple: a year's trend builds tens of thousands)."""

    brand_id: int
    name: str
    is_own: bool
    mentioned: int = 0  # answers mentioning the brand
    rank_sum: int = 0  # sum of its rank over those answers
    cited: int = 0  # answers citing it


@functools.lru_cache(maxsize=8192)
def brand_rates(mentioned: int, rank_sum: int, cited: int, answers: int, voices: int) -> tuple:
    """The rounded rates of one brand's counts: visibility, its low and high bounds, share of voice,
    average rank, citation rate. Cached: a run's thousands of prompt × provider cells
    (a few samples each) repeat the same few count combinations over and over."""
    low, high = wilson_interval(mentioned, answers)
    return (
        rounded(ratio(mentioned, answers)),
        rounded(low),
        rounded(high),
        rounded(ratio(mentioned, voices)),
        rounded(rank_sum / mentioned) if mentioned else None,
        rounded(ratio(cited, answers)),
    )


def brand_metrics(*, answers: int, brands: Sequence[BrandCounts | tuple]) -> list[dict]:
    """The contract's per-brand objects for one set of `answers` ok answers, in the given brand order.

    Takes BrandCounts or plain tuples in its field order (a year's trend passes 15,000 of them)."""
    voices = sum(brand[3] for brand in brands)
    rows = []
    for brand_id, name, is_own, mentioned, rank_sum, cited in brands:
        visibility, low, high, share, rank, citation_rate = brand_rates(mentioned, rank_sum, cited, answers, voices)
        rows.append(
            {
                "id": brand_id,
                "name": name,
                "is_own": is_own,
                "mentioned": mentioned,
                "visibility": visibility,
                "visibility_low": low,
                "visibility_high": high,
                "share_of_voice": share,
                "avg_rank": rank,
                "cited": cited,
                "citation_rate": citation_rate,
            }
        )
    return rows


def top_domains(
    *, answers: int, domain_answers: Iterable[tuple[str, int]], limit: int = TOP_DOMAINS_LIMIT
) -> list[dict]:
    """Cited domains by the number of answers citing them (ties by name), with share = answers ÷ |A|."""
    ranked = sorted(domain_answers, key=lambda pair: (-pair[1], pair[0]))[:limit]
    return [{"domain": domain, "answers": n, "share": rounded(ratio(n, answers))} for domain, n in ranked]
