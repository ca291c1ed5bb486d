"""A throwaway PostgreSQL server of a test's own (initdb + pg_ctl in a temporary folder, free port).

A fault test may stop and start it at will; the machine's own server is never touched. When
the tests run as root, the server runs as the `postgres` user (PostgreSQL refuses root).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import psycopg

from tests.redis_server import free_port


def postgres_bin_dir() -> str | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(found)
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(folder, "initdb")) and os.path.exists(os.path.join(folder, "pg_ctl")):
            return folder
    return None


def postgres_unavailable_reason() -> str | None:
    """Why a throwaway server cannot run here, or None when it can."""
    if postgres_bin_dir() is None:
        return "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run a server as"
    return None


class PostgresServer:
    """`start()` once (initdb), then `stop()` / `start()` as often as a test likes; `destroy()` at the end."""

    def __init__(self, port: int | None = None) -> None:
        self.bin_dir = postgres_bin_dir()
        if self.bin_dir is None:
            raise RuntimeError(postgres_unavailable_reason())
        self.port = port or free_port()
        self.root = tempfile.mkdtemp(prefix="oneglanse-postgres-")
        self.data_dir = os.path.join(self.root, "data")
        self.log_file = os.path.join(self.root, "server.log")
        self._run_as: str | None = "postgres" if os.geteuid() == 0 else None
        if self._run_as:
            info = pwd.getpwnam(self._run_as)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        self._initialised = False

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _command(self, *args: str) -> list[str]:
        command = [os.path.join(self.bin_dir, args[0]), *args[1:]]
        return ["runuser", "-u", self._run_as, "--", *command] if self._run_as else command

    def _run(self, *args: str) -> None:
        result = subprocess.run(self._command(*args), cwd=self.root, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        if not self._initialised:
            self._run("initdb", "-D", self.data_dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
            self._initialised = True
        # Unix sockets in our own folder, TCP on our own port only: nothing shared with another server.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-o", options, "-w", "-t", "60", "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """A fast shutdown: every open connection is cut, as in a crash or a restart of the server."""
        self._run("pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            subprocess.run(self._command("pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop"),
                           capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            with open(self.log_file, errors="replace") as log:
                return log.read()[-chars:]
        except OSError:
            return ""
