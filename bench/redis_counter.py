"""Counts the Redis round trips of one process, for the progress-cost scenario (bench only).

One round trip is one send to the server: a single command, a whole pipeline, a script call
(EVALSHA) or a connection health-check PING each count once. Counts are split by phase:
`task` is everything inside Huey's `execute()` (the revoke check, our task body, its
progress scripts, any rate-limit check or heartbeat), `loop` is the rest (the worker's BRPOP
dequeue, the scheduler's poll). Each process writes its counters to
`$BENCH_REDIS_COUNT_DIR/<pid>.json` twice a second and at exit; bench/run.py reads the deltas.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

_counts: Counter = Counter()
_lock = threading.Lock()
_local = threading.local()  # .phase: "task" | "loop"; .sending: inside send_command
DUMP_INTERVAL_SECONDS = 0.5


def _label(args: tuple) -> str:
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    name = name.upper()
    if name == "EVALSHA" and len(args) > 1:
        sha = args[1].decode() if isinstance(args[1], bytes) else str(args[1])
        return f"EVALSHA:{sha[:8]}"
    if name == "EVAL" and len(args) > 1:
        script = args[1] if isinstance(args[1], bytes) else str(args[1]).encode()
        return f"EVALSHA:{hashlib.sha1(script).hexdigest()[:8]}"
    return name.split()[0]


def redis_counter_count(label: str) -> None:
    key = f"{getattr(_local, 'phase', 'loop')}:{label}"
    with _lock:
        _counts[key] += 1


def redis_counter_snapshot() -> dict[str, int]:
    with _lock:
        return dict(_counts)


def _dump(directory: Path) -> None:
    path = directory / f"{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(redis_counter_snapshot()))
    os.replace(tmp, path)


def redis_counter_install(*, dump: bool = True) -> None:
    """Patch redis-py's connection class and Huey's execute(); idempotent."""
    from huey.api import Huey
    from redis.connection import AbstractConnection

    if getattr(AbstractConnection, "_bench_counted", False):
        return
    AbstractConnection._bench_counted = True
    send_command, send_packed_command = AbstractConnection.send_command, AbstractConnection.send_packed_command

    def counted_send_command(self, *args, **kwargs):
        redis_counter_count(_label(args))
        outer = getattr(_local, "sending", False)
        _local.sending = True  # the send_packed_command below is this same round trip
        try:
            return send_command(self, *args, **kwargs)
        finally:
            _local.sending = outer

    def counted_send_packed_command(self, command, check_health=True):
        if not getattr(_local, "sending", False):
            redis_counter_count("PIPELINE")  # pipelines send their packed commands directly
        return send_packed_command(self, command, check_health)

    AbstractConnection.send_command = counted_send_command
    AbstractConnection.send_packed_command = counted_send_packed_command

    execute = Huey.execute

    def counted_execute(self, task, timestamp=None):
        _local.phase = "task"
        try:
            return execute(self, task, timestamp)
        finally:
            _local.phase = "loop"
            redis_counter_count("TASKS-EXECUTED")

    Huey.execute = counted_execute

    directory = os.environ.get("BENCH_REDIS_COUNT_DIR")
    if dump and directory:
        directory_path = Path(directory)
        directory_path.mkdir(parents=True, exist_ok=True)

        def dump_forever() -> None:
            while True:
                time.sleep(DUMP_INTERVAL_SECONDS)
                _dump(directory_path)

        threading.Thread(target=dump_forever, name="bench-redis-counter", daemon=True).start()
        atexit.register(_dump, directory_path)


def redis_counter_read(directory: Path, pids: set[int]) -> Counter:
    """The summed counters the given processes last wrote."""
    total: Counter = Counter()
    for pid in pids:
        path = directory / f"{pid}.json"
        if path.exists():
            total.update(json.loads(path.read_text()))
    return total


def redis_script_names() -> dict[str, str]:
    """sha1[:8] -> a readable name, for every Lua script the agent and Huey send."""
    import huey.storage

    import agent.progress_lua
    import agent.ratelimit

    names = {}
    for module in (agent.progress_lua, agent.ratelimit, huey.storage):
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                names[hashlib.sha1(value.encode()).hexdigest()[:8]] = f"{module.__name__.split('.')[-1]}.{name}"
    return names
