"""Reads of brands and visibility figures, always scoped to the caller's workspaces."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from django.db.models import QuerySet, Sum, TextField
from django.db.models.functions import Cast

from agent.models import JobGroup, JobItem
from oneglanse.exceptions import InvalidInput, NotFound
from oneglanse.provider_ids import PROVIDER_IDS
from visibility.detection import ANALYSIS_VERSION
from visibility.metrics import brand_metrics, top_domains
from visibility.models import ALL_PROVIDERS, AnalysisState, Brand, RunBrandStat, RunStat
from workspaces.models import Workspace

FINISHED_RUN_STATUSES = (JobGroup.Status.COMPLETED, JobGroup.Status.CANCELLED)


def brands_of_workspace(*, workspace: Workspace) -> QuerySet[Brand]:
    return Brand.objects.filter(workspace=workspace).order_by("-is_own", "name", "id")


def brand_get_for_user(*, user, brand_id: str) -> Brand:
    if not (str(brand_id).isascii() and str(brand_id).isdigit()):
        raise NotFound("Brand not found.")
    brand = Brand.objects.filter(id=int(brand_id), workspace__memberships__user=user).first()
    if brand is None:
        raise NotFound("Brand not found.")
    return brand


def workspace_reanalysis_pending(*, workspace_id) -> bool:
    """True while a brand change (or a new ANALYSIS_VERSION) waits for the visibility sweep."""
    state = AnalysisState.objects.filter(workspace_id=workspace_id).first()
    return state is not None and (
        state.reanalysed_revision < state.revision or state.reanalysed_version < ANALYSIS_VERSION
    )


@dataclass
class SetCounts:
    """Numerators and denominators of one set of answers (a run, a provider in it, a prompt...)."""

    answers: int = 0
    failed: int = 0  # failed and cancelled items, reported beside the set
    brands: dict[int, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0])
    )  # mentioned, rank sum, cited
    domains: Counter = field(default_factory=Counter)

    def add(self, other: SetCounts) -> None:
        self.answers += other.answers
        self.failed += other.failed
        for brand_id, (mentioned, rank_sum, cited) in other.brands.items():
            mine = self.brands[brand_id]
            mine[0] += mentioned
            mine[1] += rank_sum
            mine[2] += cited
        self.domains.update(other.domains)


def visibility_counts(*, group_ids: Iterable, by: tuple[str, ...]) -> dict[tuple, SetCounts]:
    """Counts of the given runs' answers grouped by `by` (fields of JobItem), from the answers' findings,
    in one query over the runs' items. Answers not analysed (yet) count in `answers` but mention nothing."""
    return counts_and_outdated(group_ids=group_ids, by=by)[0]


def counts_and_outdated(
    *, group_ids: Iterable, by: tuple[str, ...], revision: int = 0
) -> tuple[dict[tuple, SetCounts], list[int]]:
    """`visibility_counts`, and the ok answers whose findings are missing, of another ANALYSIS_VERSION or
    made with brands older than `revision` (which a run's close analyses again), in the same read."""
    from visibility.services.analysis import findings_decode

    sets: dict[tuple, SetCounts] = defaultdict(SetCounts)
    outdated: list[int] = []
    ok = JobItem.Status.OK
    rows = (
        JobItem.objects.filter(group_id__in=list(group_ids), status__in=JobItem.FINISHED)
        .order_by()
        # As stored, decoded here by orjson: a run's close reads every answer's findings, and the
        # JSON decoding was as costly as everything else the close does.
        .annotate(stored=Cast("findings", TextField()))
        .values_list(*by, "id", "status", "stored")
    )
    # Streamed: a run of 100,000 answers is never held in memory at once, only its counts are.
    for *key, item_id, status, stored in rows.iterator(chunk_size=2000):
        counts = sets[tuple(key)]
        if status != ok:
            counts.failed += 1
            continue
        counts.answers += 1
        findings = findings_decode(stored)
        if findings is None:
            outdated.append(item_id)
            continue
        if findings["revision"] < revision:
            outdated.append(item_id)
        brands = counts.brands
        for brand_id, mentions, _first_offset, rank, citations in findings["brands"]:
            numerators = brands[brand_id]
            if mentions:
                numerators[0] += 1
                numerators[1] += rank or 0
            if citations:
                numerators[2] += 1
        counts.domains.update(findings["domains"])
    return sets, outdated


_NO_COUNTS = (0, 0, 0)


def brand_counts(brands: list[Brand], counts: SetCounts) -> list[tuple]:
    """(id, name, is_own, mentioned, rank_sum, cited) of every brand: BrandCounts' fields, as plain tuples."""
    found = counts.brands
    return [(brand.id, brand.name, brand.is_own, *found.get(brand.id, _NO_COUNTS)) for brand in brands]


def _set_figures(
    brands: list[Brand], counts: SetCounts, *, with_domains: bool = True, with_failed: bool = True
) -> dict:
    body: dict = {"answers": counts.answers}
    if with_failed:
        body["failed"] = counts.failed
    body["brands"] = brand_metrics(answers=counts.answers, brands=brand_counts(brands, counts))
    if with_domains:
        body["top_domains"] = top_domains(answers=counts.answers, domain_answers=counts.domains.items())
    return body


def _provider_order(providers: Iterable[str]) -> list[str]:
    known = [p for p in PROVIDER_IDS if p in providers]
    return known + sorted(set(providers) - set(known))


def _provider_sets(group: JobGroup, found: dict[str, SetCounts]) -> tuple[SetCounts, dict[str, SetCounts]]:
    total = SetCounts()
    for counts in found.values():
        total.add(counts)
    return total, {p: found.get(p, SetCounts()) for p in _provider_order(set(group.providers) | set(found))}


def job_group_provider_sets(*, group: JobGroup) -> tuple[SetCounts, dict[str, SetCounts]]:
    """A run's counts over all its answers and per provider (every provider of the run, in the usual order)."""
    found = {key[0]: counts for key, counts in visibility_counts(group_ids=[group.id], by=("provider",)).items()}
    return _provider_sets(group, found)


def job_group_visibility(*, group: JobGroup) -> dict:
    """The run's visibility (DESIGN.md contract), computed from its answers' findings in one read."""
    brands = list(brands_of_workspace(workspace=group.workspace))
    per_prompt = visibility_counts(group_ids=[group.id], by=("prompt_id", "provider"))
    found: dict[str, SetCounts] = defaultdict(SetCounts)
    for (_prompt_id, provider), counts in per_prompt.items():
        found[provider].add(counts)
    total, per_provider = _provider_sets(group, found)
    prompt_texts = dict(
        JobItem.objects.filter(group=group).order_by().values_list("prompt_id", "prompt_text").distinct()
    )
    by_prompt: dict[int, dict] = {}
    for (prompt_id, provider), counts in sorted(per_prompt.items(), key=lambda pair: pair[0][0]):
        entry = by_prompt.setdefault(
            prompt_id, {"prompt": prompt_id, "prompt_text": prompt_texts.get(prompt_id, ""), "by_provider": {}}
        )
        entry["by_provider"][provider] = _set_figures(brands, counts, with_domains=False, with_failed=False)
    for entry in by_prompt.values():
        entry["by_provider"] = {p: entry["by_provider"][p] for p in _provider_order(entry["by_provider"])}
    return {
        "run": str(group.id),
        "analysis_version": ANALYSIS_VERSION,
        **_set_figures(brands, total),
        "by_provider": {p: _set_figures(brands, counts) for p, counts in per_provider.items()},
        "by_prompt": list(by_prompt.values()),
    }


class RunPoint(NamedTuple):
    """One point of the trend: a finished run's figures for one provider (or "all")."""

    group_id: object
    provider: str
    at: dt.datetime
    analysis_version: int


@dataclass(frozen=True)
class TrendFilter:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    provider: str | None = None
    brand_id: int | None = None


def trend_filter_parse(*, workspace: Workspace, params) -> TrendFilter:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD&provider=&brand= → TrendFilter; bad values are 400s naming the field."""
    dates = {}
    for name in ("from", "to"):
        raw = (params.get(name) or "").strip()
        if raw:
            try:
                dates[name] = dt.date.fromisoformat(raw)
            except ValueError:
                raise InvalidInput(f"{raw!r} is not a date like 2025-01-31.", field=name) from None
    if "from" in dates and "to" in dates and dates["from"] > dates["to"]:
        raise InvalidInput("'from' is after 'to'.", field="from")
    provider = (params.get("provider") or "").strip() or None
    if provider and provider not in (*PROVIDER_IDS, ALL_PROVIDERS):
        raise InvalidInput(
            f"Unknown provider {provider!r}; known: {', '.join(PROVIDER_IDS)}, {ALL_PROVIDERS}.", field="provider"
        )
    raw_brand = (params.get("brand") or "").strip()
    brand_id = None
    if raw_brand:
        if (
            not (raw_brand.isascii() and raw_brand.isdigit())
            or not Brand.objects.filter(id=int(raw_brand), workspace=workspace).exists()
        ):
            raise InvalidInput(f"This workspace tracks no brand with the id {raw_brand!r}.", field="brand")
        brand_id = int(raw_brand)
    return TrendFilter(date_from=dates.get("from"), date_to=dates.get("to"), provider=provider, brand_id=brand_id)


def _run_stats(*, workspace: Workspace, trend: TrendFilter) -> QuerySet[RunStat]:
    stats = RunStat.objects.filter(workspace=workspace)
    if trend.date_from:
        stats = stats.filter(at__gte=dt.datetime.combine(trend.date_from, dt.time.min, tzinfo=dt.UTC))
    if trend.date_to:
        stats = stats.filter(
            at__lt=dt.datetime.combine(trend.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        )
    if trend.provider:
        stats = stats.filter(provider=trend.provider)
    return stats


def workspace_visibility_points(
    *, workspace: Workspace, trend: TrendFilter
) -> tuple[list[Brand], list[tuple[RunPoint, SetCounts]]]:
    """The finished runs' stored figures in the range, oldest first ("all" before the providers)."""
    brands = list(brands_of_workspace(workspace=workspace))
    # Cited domains are summed in the database (see `_range_domains`): a year of runs has tens of
    # thousands of per-run domain rows, and no point of the series lists them. Plain rows, not
    # model instances: a year is 1,825 points and 15,000 brand rows.
    stats = _run_stats(workspace=workspace, trend=trend)
    rows = stats.values_list("id", "group_id", "provider", "at", "answers", "failed", "analysis_version")
    numerators: dict[int, dict[int, list[int]]] = defaultdict(dict)
    for stat_id, brand_id, mentioned, rank_sum, cited in RunBrandStat.objects.filter(
        run_stat__in=stats.values("id")
    ).values_list("run_stat_id", "brand_id", "mentioned", "rank_sum", "cited"):
        numerators[stat_id][brand_id] = [mentioned, rank_sum, cited]
    order = {p: i for i, p in enumerate((ALL_PROVIDERS, *PROVIDER_IDS))}
    points = []
    for stat_id, group_id, provider, at, answers, failed, version in rows:
        counts = SetCounts(answers=answers, failed=failed)
        counts.brands.update(numerators.get(stat_id, ()))
        points.append((RunPoint(group_id, provider, at, version), counts))
    points.sort(key=lambda p: (p[0].at, str(p[0].group_id), order.get(p[0].provider, len(order)), p[0].provider))
    return brands, points


def _range_domains(*, workspace: Workspace, trend: TrendFilter) -> dict[str, int]:
    """Answers citing each domain over the range's runs (for the trend's provider, or all), top 20."""
    from visibility.metrics import TOP_DOMAINS_LIMIT
    from visibility.models import RunDomainStat

    stats = _run_stats(workspace=workspace, trend=trend).filter(provider=trend.provider or ALL_PROVIDERS)
    rows = (
        RunDomainStat.objects.filter(run_stat__in=stats.values("id"))
        .values("domain")
        .annotate(n=Sum("answers"))
        .order_by("-n", "domain")[:TOP_DOMAINS_LIMIT]
    )
    return {row["domain"]: row["n"] for row in rows}


def workspace_visibility_trend(*, workspace: Workspace, trend: TrendFilter) -> dict:
    """The trend (DESIGN.md contract) plus totals over the range, from per-run figures only (never raw answers)."""
    brands, points = workspace_visibility_points(workspace=workspace, trend=trend)
    shown = [b for b in brands if trend.brand_id is None or b.id == trend.brand_id]
    series = []
    totals: dict[str, SetCounts] = defaultdict(SetCounts)
    for stat, counts in points:
        # Share of voice is over every tracked brand, so compute it before narrowing to ?brand=.
        figures = brand_metrics(answers=counts.answers, brands=brand_counts(brands, counts))
        series.append(
            {
                "run": str(stat.group_id),
                "at": stat.at.isoformat().replace("+00:00", "Z"),
                "provider": stat.provider,
                "answers": counts.answers,
                "failed": counts.failed,
                "brands": [f for f in figures if trend.brand_id is None or f["id"] == trend.brand_id],
            }
        )
        totals[stat.provider].add(counts)
    overall = totals.get(trend.provider or ALL_PROVIDERS, SetCounts())
    overall.domains.update(_range_domains(workspace=workspace, trend=trend))
    total_figures = _set_figures(brands, overall)
    total_figures["brands"] = [
        f for f in total_figures["brands"] if trend.brand_id is None or f["id"] == trend.brand_id
    ]
    return {
        "workspace": str(workspace.id),
        "analysis_version": ANALYSIS_VERSION,
        "from": trend.date_from.isoformat() if trend.date_from else None,
        "to": trend.date_to.isoformat() if trend.date_to else None,
        "provider": trend.provider,
        "brands_tracked": [{"id": b.id, "name": b.name, "is_own": b.is_own} for b in shown],
        "reanalysis_pending": workspace_reanalysis_pending(workspace_id=workspace.id),
        "series": series,
        "total": {
            "provider": trend.provider or ALL_PROVIDERS,
            "runs": sum(1 for s, _ in points if s.provider == (trend.provider or ALL_PROVIDERS)),
            **total_figures,
        },
    }
