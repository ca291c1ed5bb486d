"""The visibility metrics as pure functions of counts (DESIGN.md "Visibility metrics").

Every figure is computed from numerators and denominators, so the same code serves one run,
one provider, one prompt or a year of runs added together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class BrandCounts:
    """A brand's numerators over one set of answers."""

    brand_id: int
    name: str
    is_own: bool
    mentioned: int = 0  # answers mentioning the brand
    rank_sum: int = 0  # sum of its rank over those answers
    cited: int = 0  # answers citing it


def brand_metrics(*, answers: int, brands: Sequence[BrandCounts]) -> list[dict]:
    """The contract's per-brand objects for one set of `answers` ok answers, in the given brand order."""
    voices = sum(brand.mentioned for brand in brands)
    rows = []
    for brand in brands:
        low, high = wilson_interval(brand.mentioned, answers)
        rows.append(
            {
                "id": brand.brand_id,
                "name": brand.name,
                "is_own": brand.is_own,
                "mentioned": brand.mentioned,
                "visibility": rounded(ratio(brand.mentioned, answers)),
                "visibility_low": rounded(low),
                "visibility_high": rounded(high),
                "share_of_voice": rounded(ratio(brand.mentioned, voices)),
                "avg_rank": rounded(brand.rank_sum / brand.mentioned) if brand.mentioned else None,
                "cited": brand.cited,
                "citation_rate": rounded(ratio(brand.cited, answers)),
            }
        )
    return rows


def top_domains(
    *, answers: int, domain_answers: Iterable[tuple[str, int]], limit: int = TOP_DOMAINS_LIMIT
) -> list[dict]:
    """Cited domains by the number of answers citing them (ties by name), with share = answers ÷ |A|."""
    ranked = sorted(domain_answers, key=lambda pair: (-pair[1], pair[0]))[:limit]
    return [{"domain": domain, "answers": n, "share": rounded(ratio(n, answers))} for domain, n in ranked]
