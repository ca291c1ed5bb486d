"""var/ and the SQLite database are readable by this user only (they hold password hashes, tokens, sessions)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_var_directory_is_0700_and_the_database_files_0600(tmp_path) -> None:
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    var.chmod(0o755)  # as an older checkout left it
    old_umask = os.umask(0o022)
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update(DJANGO_SETTINGS_MODULE="tests.settings", ONEGLANSE_VAR_DIR=str(var))
        # A write through Django (migrate) so SQLite creates its -wal and -shm files too.
        script = ("import django; django.setup(); from django.core.management import call_command; "
                  "from django.db import connection; call_command('migrate', verbosity=0); "
                  "import pathlib, os; db = pathlib.Path(connection.settings_dict['NAME']); "
                  "print({p.name: oct(p.stat().st_mode & 0o777) for p in db.parent.glob(db.name + '*')})")
        result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True,
                                text=True, timeout=120)
    finally:
        os.umask(old_umask)
    assert result.returncode == 0, result.stderr
    assert _mode(var) == 0o700
    # Seen while the connection was open: WAL mode, so the -wal and -shm files existed then.
    modes = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert modes == {"db.sqlite3": "0o600", "db.sqlite3-wal": "0o600", "db.sqlite3-shm": "0o600"}


def test_an_existing_world_readable_database_is_tightened(tmp_path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    database = var / "db.sqlite3"
    database.write_bytes(b"")
    database.chmod(0o644)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", ONEGLANSE_VAR_DIR=str(var))
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert _mode(database) == 0o600 and _mode(var) == 0o700
