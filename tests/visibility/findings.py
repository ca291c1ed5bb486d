"""Reading what the analysis stored on an answer's row (JobItem.findings, visibility's key), for assertions."""
from __future__ import annotations

from agent.models import JobItem
from visibility.models import Brand
from visibility.services.analysis import FINDINGS_KEY, findings_unpack


def item_findings(item) -> dict | None:
    """The answer's current visibility findings (None when it has none at this ANALYSIS_VERSION)."""
    stored = JobItem.objects.filter(id=getattr(item, "id", item)).values_list("findings", flat=True).first()
    return findings_unpack(stored)


def item_raw_findings(item) -> dict | None:
    """Visibility's key of the stored findings whatever its version (None when absent)."""
    stored = JobItem.objects.filter(id=getattr(item, "id", item)).values_list("findings", flat=True).first()
    return stored.get(FINDINGS_KEY) if isinstance(stored, dict) else None


def brand_findings(item) -> dict[int, dict]:
    """brand id -> {"mentions", "first_offset", "rank", "citations", "mentioned", "cited"} for the brands
    the answer mentions or cites (absent brands: neither)."""
    found = item_findings(item)
    if found is None:
        return {}
    return {
        brand_id: {"mentions": mentions, "first_offset": first_offset, "rank": rank, "citations": citations,
                   "mentioned": mentions > 0, "cited": citations > 0}
        for brand_id, mentions, first_offset, rank, citations in found["brands"]
    }


def mentioned_names(item) -> set[str]:
    ids = [brand_id for brand_id, finding in brand_findings(item).items() if finding["mentioned"]]
    return set(Brand.objects.filter(id__in=ids).values_list("name", flat=True))


def cited_domains(item) -> list[str]:
    found = item_findings(item)
    return [] if found is None else list(found["domains"])
