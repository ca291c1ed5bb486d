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
def bench_environment(*, keep: bool = False, database_url: str | None = None):
    """Yield (workdir, redis_server); everything is stopped and removed on the way out, error or not.

    `database_url` (PostgreSQL) replaces the fresh SQLite file: the database is created when it
    does not exist, and dropped at the end unless `keep` (so a kept fixture can be measured again).
    """
    from tests.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="oneglanse-bench-"))
    redis_server = RedisServer()
    try:
        if database_url and database_url.startswith("postgres"):
            _postgres_database(database_url, create=True)
        redis_server.start()
        os.environ.update(
            DJANGO_SETTINGS_MODULE="bench.settings",
            REDIS_URL=redis_server.url,
            DATABASE_URL=database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
            AGENT_SIMULATED_LATENCY_MS="0",  # in-process runs (query counts, profiles) ask a 0 ms provider
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        yield workdir, redis_server
    finally:
        redis_server.stop()
        if database_url and database_url.startswith("postgres") and not keep:
            from django.db import connections

            connections.close_all()
            _postgres_database(database_url, create=False)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _postgres_database(url: str, *, create: bool) -> None:
    """Create the database named in `url` if missing, or drop it, through the server's `postgres` database."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if create and not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        elif not create and exists:
            connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
