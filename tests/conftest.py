"""Shared test fixtures: a real Redis for the whole session, real consumer processes on demand."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from agent.queues import queues_reset
from oneglanse.processes import processes_stop
from tests.redis_server import RedisServer

PROJECT_DIR = Path(__file__).resolve().parent.parent
_redis = RedisServer()


def pytest_configure(config) -> None:
    _redis.start()
    os.environ["REDIS_URL"] = _redis.url
    settings.REDIS_URL = _redis.url
    # Django's cache (the throttles' counters) lives in the same Redis as everything else.
    settings.CACHES["default"]["LOCATION"] = _redis.url
    from django.core.cache import caches

    caches._settings = caches.settings = caches.configure_settings(None)
    queues_reset()


def pytest_unconfigure(config) -> None:
    _redis.stop()


@pytest.fixture
def redis_url() -> str:
    return _redis.url


@pytest.fixture(autouse=True)
def _clean_redis():
    redis.Redis.from_url(_redis.url).flushdb()
    yield


def database_url() -> str:
    """The URL of the database this test run uses (the test database), for child processes."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Consumers:
    """Real `manage.py run_huey` processes pointed at the test database and the test Redis."""

    def __init__(self, tmp_path: Path) -> None:
        self.processes: dict[str, list[subprocess.Popen]] = {}
        self.tmp_path = tmp_path

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            REDIS_URL=_redis.url,
            DATABASE_URL=database_url(),
            AGENT_SIMULATED_LATENCY_MS="20",
            PYTHONUNBUFFERED="1",
        )
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def start(self, queue: str, *, workers: int = 4, args: tuple[str, ...] = (), **env: str) -> subprocess.Popen:
        log = open(self.tmp_path / f"consumer-{queue}-{len(self.processes.get(queue, []))}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_huey", "--queue", queue, "-w", str(workers), "-d", "0.05", "-m", "0.5", *args],
            cwd=PROJECT_DIR, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT,
        )
        self.processes.setdefault(queue, []).append(process)
        return process

    def start_all(self, *, workers: int = 4, **env: str) -> None:
        for queue in ("chatgpt", "perplexity", "gemini", "claude"):
            self.start(queue, workers=workers, **env)

    def stop(self) -> None:
        processes_stop([p for ps in self.processes.values() for p in ps], timeout=15)

    def logs(self) -> str:
        paths = sorted(self.tmp_path.glob("consumer-*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in paths)


@pytest.fixture
def consumers(tmp_path):
    running = Consumers(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="correct horse battery staple")


@pytest.fixture
def stranger(django_user_model):
    return django_user_model.objects.create_user(username="mallory", password="correct horse battery staple")


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def stranger_api(stranger) -> APIClient:
    client = APIClient()
    client.force_authenticate(stranger)
    return client
