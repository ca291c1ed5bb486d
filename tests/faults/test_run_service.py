"""`run_service` (what bin/run starts) supervises its children: kills, persistence, Ctrl-C, a taken port."""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
import requests

from agent.management.commands import run_service
from tests.redis_server import free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]
START_SECONDS = 180.0  # migrations, collectstatic and five children on a busy 2-core machine


class Service:
    """A real `manage.py run_service` on a free port, with its own var/ (database, embedded Redis)."""

    def __init__(self, var_dir: Path, port: int) -> None:
        self.var_dir, self.port = var_dir, port
        self.log_path = var_dir.parent / f"run_service-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # unset: the embedded Redis
        env.update(DJANGO_SETTINGS_MODULE="tests.settings", ONEGLANSE_VAR_DIR=str(var_dir),
                   DATABASE_URL=f"sqlite:///{var_dir / 'db.sqlite3'}", PYTHONUNBUFFERED="1")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run_service", "--port", str(port), "--workers", "2", "--web-workers", "1"],
            cwd=PROJECT_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.redis_socket = var_dir / "redis" / "redis.sock"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no {text!r} in run_service's output:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def page(self) -> int:
        return requests.get(f"http://127.0.0.1:{self.port}/login/", timeout=10).status_code

    def child(self, needle: str) -> psutil.Process | None:
        for process in psutil.Process(self.process.pid).children(recursive=False):
            try:
                if needle in " ".join(process.cmdline()):
                    return process
            except psutil.NoSuchProcess:
                continue
        return None

    def redis(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.redis_socket), socket_timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for process in psutil.process_iter():
            try:
                if str(self.var_dir) in " ".join(process.cmdline()) or f"--port {self.port}" in " ".join(process.cmdline()):
                    process.kill()
            except psutil.Error:
                continue
        self.log.close()


@pytest.fixture
def services(tmp_path):
    started: list[Service] = []

    def start(port: int) -> Service:
        service = Service(tmp_path / "var", port)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def _wait_child(service: Service, needle: str, other_than: int | None = None, timeout: float = 60.0) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = service.child(needle)
        if child and child.pid != other_than:
            return child
        time.sleep(0.1)
    raise AssertionError(f"no child {needle!r} came back:\n{service.output()[-4000:]}")


@pytest.mark.consumers
def test_killed_consumer_and_redis_come_back_and_the_web_server_stays_up(services) -> None:
    port = free_port()
    service = services(port)
    service.wait_for("OneGlanse Agent is running", timeout=START_SECONDS)
    assert service.page() == 200

    # gunicorn's control socket is this instance's own, under var/ (not the per-user default).
    assert f"gunicorn-{port}.ctl" in " ".join(service.child("gunicorn").cmdline())
    assert str(service.var_dir) in " ".join(service.child("gunicorn").cmdline())

    gemini = service.child("--queue gemini")
    gemini.kill()
    service.wait_for("consumer gemini exited (-9); restarting in 1 s")
    assert service.page() == 200
    assert _wait_child(service, "--queue gemini", other_than=gemini.pid).is_running()

    # Queued work written to the embedded Redis survives its SIGKILL (append-only file, fsync each second).
    service.redis().rpush("queued-work", "item-1", "item-2")
    time.sleep(1.5)
    server = service.child("redis-server")
    server.kill()
    service.wait_for("embedded Redis exited (-9); restarting in 1 s")
    assert service.page() == 200, "the web server stays up while Redis is away"
    _wait_child(service, "redis-server", other_than=server.pid)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert service.redis().lrange("queued-work", 0, -1) == [b"item-1", b"item-2"]
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, service.output()[-4000:]
            time.sleep(0.2)
    assert service.page() == 200
    assert service.process.poll() is None, "run_service itself kept running"
    assert (service.var_dir / "redis").stat().st_mode & 0o777 == 0o700

    # Ctrl-C: a graceful stop that says so, ends with "stopped" and exits 0, without a traceback.
    before_stop = len(service.output())
    service.process.send_signal(signal.SIGINT)
    assert service.process.wait(timeout=90) == 0, service.output()[-4000:]
    output = service.output()[before_stop:]  # (consumers log tracebacks while Redis was away: not ours)
    assert "stopping gracefully… press Ctrl-C again to force" in output
    assert output.rstrip().endswith("stopped") and "Traceback" not in output

    # A new run_service on the same var/ finds the queued work again (a restart keeps it).
    again = services(port)
    again.wait_for("OneGlanse Agent is running", timeout=START_SECONDS)
    assert again.redis().lrange("queued-work", 0, -1) == [b"item-1", b"item-2"]

    # Two Ctrl-C: forced, no traceback, a word about the recovery sweep, then "stopped".
    again.process.send_signal(signal.SIGINT)
    again.wait_for("stopping gracefully")
    again.process.send_signal(signal.SIGINT)
    assert again.process.wait(timeout=30) != 0
    output = again.output()
    assert "recovery sweep" in output and output.rstrip().endswith("stopped") and "Traceback" not in output
    time.sleep(0.5)
    assert not psutil.Process().children(recursive=True) or all(
        str(again.var_dir) not in " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)
    )


def test_a_taken_port_is_refused_before_anything_starts(services) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        service = services(port)
        assert service.process.wait(timeout=60) != 0
    output = service.output()
    assert f"port {port} is in use; try --port" in output
    assert "is running" not in output and "Address already in use" not in output


def test_a_child_that_keeps_crashing_is_given_up_with_a_clear_message(monkeypatch) -> None:
    monkeypatch.setattr(run_service, "RESTART_FIRST_DELAY", 0.05)
    command = run_service.Command(stdout=io.StringIO(), stderr=io.StringIO())
    command.children, command.interrupts = [], 0
    command._start(run_service.Child("consumer claude", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ)))
    started = time.monotonic()
    command._supervise()  # returns once every child is given up
    assert time.monotonic() - started < 30
    messages = command.stderr._out.getvalue()
    assert messages.count("consumer claude exited (3); restarting in") == run_service.CRASH_LOOP_EXITS - 1
    assert "consumer claude exited (3) 5 times in a row" in messages and "giving up on it" in messages
