"""Self-contained pieces the workspace and run pages include: the brands section and a run's summary."""

from __future__ import annotations

import orjson
from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from visibility.models import MAX_BRANDS_PER_WORKSPACE
from visibility.pages import run_summary
from visibility.selectors import brands_of_workspace, workspace_reanalysis_pending
from workspaces.models import MAX_SAMPLES_PER_RUN, MIN_SAMPLES_PER_RUN, Membership

register = template.Library()


@register.inclusion_tag("visibility/_brands_section.html", takes_context=True)
def visibility_brands_section(context, workspace) -> dict:
    request = context["request"]
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "workspace": workspace,
        "brands": list(brands_of_workspace(workspace=workspace)),
        "max_brands": MAX_BRANDS_PER_WORKSPACE,
        "pending": workspace_reanalysis_pending(workspace_id=workspace.id),
        "is_owner": Membership.objects.filter(
            user=request.user, workspace=workspace, role=Membership.Role.OWNER
        ).exists(),
        "sample_choices": range(MIN_SAMPLES_PER_RUN, MAX_SAMPLES_PER_RUN + 1),
    }


@register.inclusion_tag("visibility/_run_summary.html")
def visibility_run_summary(group) -> dict:
    return {"group": group, "summary": run_summary(group=group)}


@register.filter
def as_percent(value) -> str:
    """0.3456 → "35 %" (blank for None)."""
    return "" if value is None else f"{round(value * 100)} %"


@register.simple_tag
def interval(low, high) -> str:
    """A 95 % range as "42–52 %"."""
    if low is None or high is None:
        return ""
    return f"{round(low * 100)}–{round(high * 100)} %"


@register.filter
def join_terms(values) -> str:
    return ", ".join(values or [])


# The escapes of Django's json_script: the JSON can never close its <script> element.
_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


@register.filter
def figures_json_script(value, element_id: str) -> SafeString:
    """Django's json_script, encoded by orjson: a year of dashboard figures is half a megabyte."""
    encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode().translate(_SCRIPT_ESCAPES)
    return format_html('<script id="{}" type="application/json">{}</script>', element_id, mark_safe(encoded))
