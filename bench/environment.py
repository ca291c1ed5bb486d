"""A throwaway world for one benchmark run: its own redis-server, a fresh migrated SQLite file, Django set up."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))


@contextlib.contextmanager
def bench_environment(*, keep: bool = False):
    """Yield (workdir, redis_server); everything is stopped and removed on the way out, error or not."""
    from tests.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="oneglanse-bench-"))
    redis_server = RedisServer()
    try:
        redis_server.start()
        os.environ.update(
            DJANGO_SETTINGS_MODULE="bench.settings",
            REDIS_URL=redis_server.url,
            DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
            AGENT_SIMULATED_LATENCY_MS="0",  # in-process runs (query counts, profiles) ask a 0 ms provider
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        yield workdir, redis_server
    finally:
        redis_server.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
