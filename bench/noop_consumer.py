"""Raw Huey no-op tasks: the baseline of the overhead scenario.

`python -m bench.noop_consumer --queue chatgpt -w 4` runs a consumer exactly like
`manage.py run_huey` does (same Django settings and logging, same Redis pool, same storage
class, same ConsumerConfig), but its task does nothing, so its rate is what Huey and Redis
alone allow on this machine. Like the agent's queues, it skips Huey's revoke checks
(BulkRedisStorage.peek_many/delete_data).
"""
from __future__ import annotations

import argparse
import functools
import os

from huey import RedisHuey

NOOP_DONE_KEY = "bench:noop:done"


@functools.cache
def noop_huey(provider_id: str) -> RedisHuey:
    from agent.connections import redis_client, redis_pool
    from agent.queues import BulkRedisStorage

    huey = RedisHuey(
        name=f"bench-noop-{provider_id}", storage_class=BulkRedisStorage, connection_pool=redis_pool(),
        results=False, immediate=False, utc=True,
    )

    def noop() -> None:
        pass

    def marker() -> None:
        # The last task of a batch: the queue is drained (tasks already running take microseconds).
        redis_client().lpush(NOOP_DONE_KEY, provider_id)

    huey.noop_task = huey.task(name="bench.noop")(noop)
    huey.marker_task = huey.task(name="bench.marker")(marker)
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

    # The values run_huey passes: the given worker count, SIGTERM graceful, defaults otherwise.
    config = ConsumerConfig(workers=options.workers, graceful_signal="TERM")
    config.validate()
    # Huey names tasks after their module: take them from `bench.noop_consumer`, not `__main__`,
    # so they match the names the benchmark enqueues.
    from bench.noop_consumer import noop_huey as imported_noop_huey

    imported_noop_huey(options.queue).create_consumer(**config.values).run()


if __name__ == "__main__":
    main()
