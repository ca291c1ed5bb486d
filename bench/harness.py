"""The processes a benchmark run starts (consumers, gunicorn), each stopped on exit, error or Ctrl-C."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from oneglanse.processes import processes_stop

PROJECT_DIR = Path(__file__).resolve().parent.parent
QUEUES = ("chatgpt", "perplexity", "gemini", "claude")


class BenchError(RuntimeError):
    """A scenario could not run (a process died, a wait ran out); the message says which."""


def deadline_wait(done, *, timeout: float, what: str, interval: float = 0.02, alive=()) -> None:
    """Poll `done()` until true; every wait in the benchmark is bounded and watches its processes."""
    deadline = time.monotonic() + timeout
    while not done():
        for process in alive:
            if process.poll() is not None:
                raise BenchError(f"{what}: {process.args[2:6]} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(interval)


class Harness:
    """Starts processes with one shared environment and stops every one of them at the end."""

    def __init__(self, *, workdir: Path, redis_url: str, database_url: str) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.counter_dir = workdir / "redis-counts"
        self.redis_url = redis_url
        self.database_url = database_url
        self.running: list[subprocess.Popen] = []

    def env(self, **overrides) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RATE_LIMIT_")}  # no provider rate limit
        env.update(
            DJANGO_SETTINGS_MODULE="bench.settings", REDIS_URL=self.redis_url, DATABASE_URL=self.database_url,
            AGENT_SIMULATED_FAILURE_RATE="0", PYTHONUNBUFFERED="1", BENCH_REDIS_COUNT_DIR=str(self.counter_dir),
        )
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def _start(self, argv: list[str], name: str, **env) -> subprocess.Popen:
        log = open(self.logs / f"{name}-{len(self.running)}.log", "wb")
        process = subprocess.Popen(argv, cwd=PROJECT_DIR, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.running.append(process)
        return process

    def consumers(
        self, *, workers: int, latency_ms: int, settings: str = "bench.settings", noop: bool = False
    ) -> list[subprocess.Popen]:
        """One consumer process per queue: `manage.py run_huey`, or the raw Huey no-op consumer."""
        started = []
        for queue in QUEUES:
            program = ["-m", "bench.noop_consumer"] if noop else ["manage.py", "run_huey"]
            argv = [sys.executable, *program, "--queue", queue, "-w", str(workers)]
            name = f"{'noop' if noop else 'agent'}-{queue}"
            started.append(self._start(argv, name, DJANGO_SETTINGS_MODULE=settings, AGENT_SIMULATED_LATENCY_MS=latency_ms))
        return started

    def gunicorn(self, *, port: int, workers: int, settings: str = "bench.settings") -> subprocess.Popen:
        # gthread keeps connections alive: a sync worker closes each one, and the thousands of
        # sockets left in TIME_WAIT slow whichever endpoint runs later.
        argv = [sys.executable, "-m", "gunicorn", "oneglanse.wsgi:application", "-b", f"127.0.0.1:{port}",
                "-w", str(workers), "-k", "gthread", "--threads", "1", "--keep-alive", "10", "--log-level", "warning"]
        process = self._start(argv, "gunicorn", DJANGO_SETTINGS_MODULE=settings)

        def answering() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/trivial/", timeout=1)
            except urllib.error.HTTPError:
                return True  # 401/403: it answers
            except OSError:
                return False
            return True

        deadline_wait(answering, timeout=30, what="gunicorn start", interval=0.1, alive=[process])
        return process

    def stop(self, processes: list[subprocess.Popen]) -> None:
        """SIGTERM (graceful for Huey and gunicorn), then SIGKILL after 15 s."""
        processes_stop(processes, timeout=15)
        for process in processes:
            if process in self.running:
                self.running.remove(process)

    def close(self) -> None:
        self.stop(list(self.running))

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in sorted(self.logs.glob("*.log")))


def rss_bytes(processes: list[subprocess.Popen]) -> list[int]:
    return [psutil.Process(p.pid).memory_info().rss for p in processes]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (and their children)."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total
