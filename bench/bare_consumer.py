"""A bare Huey task doing an answer's essential work: the baseline of the overhead scenario.

What a Django developer would write for the same job without our engine: read the item, mark it
running, ask the same (simulated) provider, analyse the answer for the workspace's brands (the same
`answer_findings` as ours: a product feature, not engine overhead), write the answer with its
findings, and count it in Redis with one command.
Same settings, Redis pool, storage class and `ConsumerConfig` as `manage.py run_huey`, so the CPU
it needs per answer is the floor ours is compared with (goal: bare ÷ ours ≥ 0.9).
What ours does beyond it: the checks that make an answer exactly-once (provider, duplicate
delivery, cancelled group), heartbeats, the rate-limit check, the atomic progress script and
closing providers and groups.

`python -m bench.bare_consumer --queue chatgpt -w 4`; items are pushed by bench/run.py.
"""
from __future__ import annotations

import argparse
import functools
import os

from huey import RedisHuey

BARE_PROGRESS_KEY = "bench:bare:{group_id}"


@functools.cache
def bare_huey(provider_id: str) -> RedisHuey:
    from agent.connections import redis_pool
    from agent.queues import BulkRedisStorage

    huey = RedisHuey(
        name=f"bench-bare-{provider_id}", storage_class=BulkRedisStorage, connection_pool=redis_pool(),
        results=False, immediate=False, utc=True,
    )

    def answer(item_id: int) -> None:
        from django.db import close_old_connections
        from django.db.models import F
        from django.utils import timezone

        from agent.connections import redis_client
        from agent.models import JobItem
        from agent.providers.registry import provider_for
        from visibility.services.analysis import FINDINGS_KEY, answer_findings

        close_old_connections()
        row = JobItem.objects.filter(id=item_id).values("group_id", "prompt_text").first()
        now = timezone.now()
        JobItem.objects.filter(id=item_id, status=JobItem.Status.QUEUED).update(
            status=JobItem.Status.RUNNING, attempts=F("attempts") + 1, started_at=now, heartbeat_at=now)
        reply = provider_for(provider_id).ask(row["prompt_text"])
        findings = answer_findings(group_id=str(row["group_id"]), text=reply.text, sources=reply.sources)
        done = timezone.now()
        JobItem.objects.filter(id=item_id, status=JobItem.Status.RUNNING).update(
            status=JobItem.Status.OK, backend="simulated", text=reply.text, sources=reply.sources, usage=reply.usage,
            latency_ms=reply.latency_ms, model=reply.model, finished_at=done, heartbeat_at=done,
            findings=None if findings is None else {FINDINGS_KEY: findings})
        redis_client().hincrby(BARE_PROGRESS_KEY.format(group_id=row["group_id"]), f"ok:{provider_id}", 1)

    huey.answer_task = huey.task(name="bench.bare_answer")(answer)
    return huey


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue", required=True)
    parser.add_argument("-w", "--workers", type=int, default=1)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    from huey.consumer_options import ConsumerConfig

    config = ConsumerConfig(workers=options.workers, graceful_signal="TERM")
    config.validate()
    from bench.bare_consumer import bare_huey as imported_bare_huey  # task names from the module, not __main__

    imported_bare_huey(options.queue).create_consumer(**config.values).run()


if __name__ == "__main__":
    main()
