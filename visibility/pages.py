"""What the visibility pages show, read from the stored per-run figures (RunStat), never from raw answers,
except for one run's prompt × provider table and the answers a cell of it links to."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from agent.models import JobGroup, JobItem
from oneglanse.provider_ids import PROVIDER_IDS, provider_label
from visibility.metrics import BrandCounts, brand_metrics, brand_rates, top_domains
from visibility.models import ALL_PROVIDERS, Brand, RunBrandStat, RunDomainStat, RunStat
from visibility.selectors import FINISHED_RUN_STATUSES, brands_of_workspace
from visibility.services.analysis import _state_get, findings_unpack
from visibility.services.matchers import matcher_at
from workspaces.models import Workspace

_NO_COUNTS = (0, 0, 0)
PERIODS = {"30": 30, "90": 90, "365": 365, "all": None}
DEFAULT_PERIOD = "90"


def period_start(period: str) -> dt.datetime | None:
    days = PERIODS.get(period, PERIODS[DEFAULT_PERIOD])
    return None if days is None else timezone.now() - dt.timedelta(days=days)


def _provider_order(providers) -> list[str]:
    return [p for p in (ALL_PROVIDERS, *PROVIDER_IDS) if p in providers]


def dashboard_data(*, workspace: Workspace, since: dt.datetime | None) -> dict:
    """Everything the dashboard draws, in four queries over the per-run figures:
    one point per finished run and provider, totals per brand, top cited domains."""
    brands = list(brands_of_workspace(workspace=workspace))
    stats = RunStat.objects.filter(workspace=workspace)
    if since is not None:
        stats = stats.filter(at__gte=since)
    rows = list(stats.order_by("at", "group_id").values_list("id", "group_id", "provider", "at", "answers", "failed"))
    brand_rows = RunBrandStat.objects.filter(run_stat__in=stats.values("id")).values_list(
        "run_stat_id", "brand_id", "mentioned", "rank_sum", "cited"
    )
    numerators: dict[int, dict[int, tuple[int, int, int]]] = defaultdict(dict)
    for stat_id, brand_id, mentioned, rank_sum, cited in brand_rows:
        numerators[stat_id][brand_id] = (mentioned, rank_sum, cited)

    runs: list[str] = []
    run_at: list[int] = []
    run_index: dict = {}
    for _stat_id, group_id, _provider, at, _answers, _failed in rows:
        if group_id not in run_index:
            run_index[group_id] = len(runs)
            runs.append(str(group_id))
            run_at.append(int(at.timestamp()))
    providers = _provider_order({row[2] for row in rows})
    # series[provider] = {"answers": [...], "brands": {brand_id: {"v", "lo", "hi", "sov", "rank"}}}, one slot per run
    series: dict[str, dict] = {}
    totals: dict[str, list] = {p: [0, 0, defaultdict(lambda: [0, 0, 0])] for p in providers}
    brand_keys = [(b.id, b.name, b.is_own) for b in brands]
    for stat_id, group_id, provider, _at, answers, failed in rows:
        entry = series.get(provider)
        if entry is None:
            entry = series[provider] = {
                "label": "All assistants" if provider == ALL_PROVIDERS else provider_label(provider),
                "answers": [None] * len(runs),
                "brands": {
                    b.id: {key: [None] * len(runs) for key in ("v", "lo", "hi", "sov", "rank")} for b in brands
                },
            }
        slot = run_index[group_id]
        entry["answers"][slot] = answers
        found = numerators.get(stat_id, {})
        counts = [found.get(brand_id, _NO_COUNTS) for brand_id, _name, _own in brand_keys]
        total = totals[provider]
        total[0] += answers
        total[1] += failed
        for (brand_id, _name, _own), (mentioned, rank_sum, cited) in zip(brand_keys, counts, strict=True):
            mine = total[2][brand_id]
            mine[0] += mentioned
            mine[1] += rank_sum
            mine[2] += cited
        if not answers:
            continue
        voices = sum(count[0] for count in counts)
        for (brand_id, _name, _own), (mentioned, rank_sum, cited) in zip(brand_keys, counts, strict=True):
            values = entry["brands"][brand_id]
            # The same rounded rates as the API's figures (brand_metrics), without building its objects.
            v, lo, hi, sov, rank, _citation_rate = brand_rates(mentioned, rank_sum, cited, answers, voices)
            values["v"][slot] = v
            values["lo"][slot] = lo
            values["hi"][slot] = hi
            values["sov"][slot] = sov
            values["rank"][slot] = rank

    def summary(provider: str) -> dict:
        answers, failed, per_brand = totals.get(provider, [0, 0, {}])
        counts = [(b.id, b.name, b.is_own, *per_brand.get(b.id, _NO_COUNTS)) for b in brands]
        return {
            "provider": provider,
            "label": "All assistants" if provider == ALL_PROVIDERS else provider_label(provider),
            "answers": answers,
            "failed": failed,
            "brands": brand_metrics(answers=answers, brands=counts),
        }

    domain_stats = RunDomainStat.objects.filter(run_stat__in=stats.filter(provider=ALL_PROVIDERS).values("id"))
    domains = domain_stats.values("domain").annotate(n=Sum("answers")).order_by("-n", "domain")[:20]
    all_answers = totals.get(ALL_PROVIDERS, [0])[0]
    return {
        "brands": [{"id": b.id, "name": b.name, "is_own": b.is_own} for b in brands],
        "runs": runs,
        "at": run_at,
        "providers": providers,
        "series": series,
        "summaries": [summary(p) for p in providers],
        "top_domains": top_domains(answers=all_answers, domain_answers=[(d["domain"], d["n"]) for d in domains]),
    }


def latest_finished_run(*, workspace: Workspace) -> JobGroup | None:
    """The newest run whose figures are written (a finished run with a RunStat)."""
    group_id = (
        RunStat.objects.filter(workspace=workspace, provider=ALL_PROVIDERS)
        .order_by("-at")
        .values_list("group_id", flat=True)
        .first()
    )
    return JobGroup.objects.filter(id=group_id).first() if group_id else None


PROMPT_TABLE_ROWS = 100


def prompt_provider_table(*, group: JobGroup, brand: Brand | None, limit: int = PROMPT_TABLE_ROWS) -> dict:
    """One run's "mentioned in k of n samples" per prompt (rows, the first `limit`) and provider
    (columns) for one brand, from the findings of the shown prompts' answers."""
    prompt_ids = sorted(
        JobItem.objects.filter(group=group).order_by().values_list("prompt_id", flat=True).distinct()
    )
    shown = prompt_ids[:limit]
    providers = [p for p in PROVIDER_IDS if p in group.providers]
    # One read of the shown prompts' answers: n from their count, k from their findings.
    answered: Counter = Counter()
    mentioned: Counter = Counter()
    for prompt_id, provider, stored in JobItem.objects.filter(
        group=group, status=JobItem.Status.OK, prompt_id__in=shown
    ).values_list("prompt_id", "provider", "findings" if brand is not None else "status"):
        answered[prompt_id, provider] += 1
        if brand is not None and (findings := findings_unpack(stored)) is not None:
            if any(brand_id == brand.id and mentions for brand_id, mentions, *_ in findings["brands"]):
                mentioned[prompt_id, provider] += 1
    texts = dict(
        JobItem.objects.filter(group=group, prompt_id__in=shown)
        .order_by()
        .values_list("prompt_id", "prompt_text")
        .distinct()
    )
    # Links and labels made here, once per row and column: 400 cells of {% url %} and filters were
    # most of the dashboard's rendering time.
    answers_url = reverse("visibility-answers", args=[group.id])
    labels = {p: provider_label(p) for p in providers}
    rows = []
    for prompt_id in shown:
        text = texts.get(prompt_id, "")
        short = Truncator(text).chars(40)
        cells = []
        for provider in providers:
            n = answered.get((prompt_id, provider), 0)
            k = mentioned.get((prompt_id, provider), 0)
            cells.append({
                "provider": provider, "k": k, "n": n, "level": _level(k, n),
                "href": f"{answers_url}?prompt={prompt_id}&provider={provider}",
                "label": f"{short} on {labels[provider]}: mentioned in {k} of {n} answers",
            })
        rows.append({"prompt_id": prompt_id, "text": text, "cells": cells})
    return {"providers": [(p, provider_label(p)) for p in providers], "rows": rows,
            "prompts": len(prompt_ids), "shown": len(shown)}


def _level(k: int, n: int) -> str:
    """A cell's shade: none, some or most of the samples mention the brand."""
    if not n:
        return "empty"
    if k == 0:
        return "none"
    return "all" if k == n else ("most" if k * 2 >= n else "some")


def run_summary(*, group: JobGroup) -> dict | None:
    """A finished run's brand figures over all its answers, from its stored RunStat ("all")."""
    if group.status not in FINISHED_RUN_STATUSES:
        return None
    stat = RunStat.objects.filter(group=group, provider=ALL_PROVIDERS).first()
    if stat is None:
        return None
    brands = list(brands_of_workspace(workspace=group.workspace))
    if not brands:
        return {"brands": [], "answers": stat.answers, "failed": stat.failed}
    rows = {r.brand_id: r for r in stat.brand_stats.all()}
    counts = [
        BrandCounts(b.id, b.name, b.is_own, *((rows[b.id].mentioned, rows[b.id].rank_sum, rows[b.id].cited)
                                             if b.id in rows else (0, 0, 0)))
        for b in brands
    ]
    return {"brands": brand_metrics(answers=stat.answers, brands=counts), "answers": stat.answers, "failed": stat.failed}


def highlighted(text: str, *, workspace_id, brand_names: dict[int, tuple[str, bool]]) -> list[tuple[str, str, bool]]:
    """The answer text cut into (piece, brand name or "", is own) so a template can mark each mention."""
    revision = _state_get(workspace_id).revision
    matcher = matcher_at(workspace_id=workspace_id, revision=revision)
    pieces, last = [], 0
    for start, end, indexes in matcher.matches(text or ""):
        if start > last:
            pieces.append((text[last:start], "", False))
        brand_id = matcher.brands[indexes[0]].brand_id
        name, is_own = brand_names.get(brand_id, ("", False))
        pieces.append((text[start:end], name, is_own))
        last = end
    if last < len(text or ""):
        pieces.append((text[last:], "", False))
    return pieces
