"""Filters that show runs and answers the same way on the pages and in the admin (rules in agent/display.py)."""
from __future__ import annotations

from django import template

from agent import outcomes
from oneglanse.provider_ids import provider_label as _provider_label

register = template.Library()


@register.filter
def provider_label(provider_id: str) -> str:
    return _provider_label(provider_id)


@register.filter
def source_links(sources) -> list[dict]:
    """Sources safe to render as links: http(s) only.

    Sources come from provider answers, i.e. from outside; a `javascript:` URL must never
    become a clickable link, so anything else is shown as plain text by the templates.
    """
    links = []
    for source in sources or []:
        if not isinstance(source, dict):
            continue
        url = str(source.get("url") or "")
        safe = url.lower().startswith(("http://", "https://"))
        links.append({
            "url": url if safe else "",
            "text": str(source.get("title") or source.get("domain") or url),
            "domain": str(source.get("domain") or ""),
            "unsafe_url": "" if safe else url,
            "cited": source.get("cited"),  # True, False, or None for answers stored before it existed
        })
    return links


@register.filter
def percent(done: int, total: int) -> int:
    """Whole per cent for a progress bar's text; an empty run counts as done."""
    return outcomes.percent(done, total)


@register.inclusion_tag("runs/_bar.html")
def split_bar(bar, bar_id: str = "") -> dict:
    """A bar split into answered / failed / cancelled (an SVG: no inline style, so the CSP holds)."""
    widths = bar.widths
    return {"bar": bar, "bar_id": bar_id, "widths": widths,
            "x_failed": widths["ok"], "x_cancelled": widths["ok"] + widths["failed"]}


@register.filter
def outcome_label(outcome: str) -> str:
    return outcomes.outcome_label(outcome)


@register.inclusion_tag("runs/_time.html")
def local_time(value, format: str = "both") -> dict:
    """<time> in UTC text that the page script rewrites in the viewer's time zone (times.js)."""
    return {"value": value, "format": format}
