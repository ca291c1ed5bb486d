"""Simulated daily history for the demo workspace, so its dashboard shows a trend on first start.

Rows are written directly (no queue, no provider, no waiting), with backend "simulated" like every
simulated answer, then analysed and aggregated by the same services the consumers use.
"""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from agent.models import JobGroup, JobGroupProvider, JobItem
from agent.progress import progress_from_database
from agent.providers.simulated import SimulatedBrand, simulated_answer
from prompts.models import Prompt
from visibility.models import Brand
from visibility.services.aggregates import _aggregates_write
from visibility.services.analysis import items_analyse
from workspaces.models import Workspace

SIMULATED_FAILURE_SHARE = 0.03
# The own brand's mention rate moves by this much over the history, so the chart has a trend.
LIFT_FROM, LIFT_TO = -0.12, 0.12


def simulated_history_create(*, workspace: Workspace, days: int = 14, user=None, seed: int = 7) -> list[JobGroup]:
    """One finished, simulated run per day for the last `days` days (06:00 UTC), analysed and aggregated."""
    prompts = list(Prompt.objects.filter(workspace=workspace, is_active=True).order_by("id").values_list("id", "text"))
    providers = list(workspace.enabled_providers)
    samples = workspace.samples_per_run
    brands = tuple(
        SimulatedBrand(name=b.name, domains=tuple(b.domains), is_own=b.is_own)
        for b in Brand.objects.filter(workspace=workspace).order_by("id")
    )
    if not prompts or not providers:
        return []
    rng = random.Random(seed)
    today = timezone.now().date()
    groups = []
    with transaction.atomic():
        for day in range(days, 0, -1):
            at = dt.datetime.combine(today - dt.timedelta(days=day), dt.time(6, 0), tzinfo=dt.UTC)
            lift = LIFT_FROM + (LIFT_TO - LIFT_FROM) * (days - day) / max(1, days - 1)
            group = JobGroup.objects.create(
                workspace=workspace,
                triggered_by=user,
                status=JobGroup.Status.COMPLETED,
                providers=providers,
                total_prompts=len(prompts),
                expected_responses=len(prompts) * len(providers) * samples,
                samples=samples,
            )
            items = []
            for provider in providers:
                for prompt_id, text in prompts:
                    for sample in range(1, samples + 1):
                        finished = at + dt.timedelta(seconds=rng.randint(5, 600))
                        common = dict(
                            group=group, provider=provider, prompt_id=prompt_id, prompt_text=text, sample=sample,
                            attempts=1, backend=JobItem.Backend.SIMULATED, started_at=at, finished_at=finished,
                            heartbeat_at=finished, next_attempt_at=at,
                        )
                        if rng.random() < SIMULATED_FAILURE_SHARE:
                            items.append(JobItem(
                                **common, status=JobItem.Status.FAILED,
                                error=f"{provider}: simulated failure (demo history)",
                            ))
                            continue
                        answer, sources = simulated_answer(
                            provider, text, seed_text=f"history:{day}:{sample}", brands=brands, lift=lift
                        )
                        items.append(JobItem(
                            **common, status=JobItem.Status.OK, text=answer, sources=sources,
                            model=f"simulated-{provider}", latency_ms=rng.randint(800, 9000),
                            usage={"prompt_tokens": 12, "completion_tokens": 80, "total_tokens": 92},
                        ))
            JobItem.objects.bulk_create(items, batch_size=1000)
            JobGroupProvider.objects.bulk_create(
                JobGroupProvider(group=group, provider=p, status=JobGroupProvider.Status.COMPLETED,
                                 started_at=at, finished_at=at + dt.timedelta(minutes=10))
                for p in providers
            )
            JobGroup.objects.filter(id=group.id).update(created_at=at, finished_at=at + dt.timedelta(minutes=10))
            group.refresh_from_db()
            JobGroup.objects.filter(id=group.id).update(progress=progress_from_database(group))
            groups.append(group)
    item_ids = list(
        JobItem.objects.filter(group__in=groups, status=JobItem.Status.OK).values_list("id", flat=True)
    )
    for start in range(0, len(item_ids), 2000):
        items_analyse(item_ids=item_ids[start : start + 2000])
    _aggregates_write(groups)
    return groups
