"""The service's own files are private: var/ is 0700, the SQLite database (and its -wal/-shm) 0600.

They hold password hashes, session keys and API tokens, so no other local user may read them.
"""
from __future__ import annotations

import os
from pathlib import Path

SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_directory(path: Path) -> None:
    """Create `path` (and parents) for this user only; tighten it if it exists with looser modes."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError:  # not ours to change (a read-only deployment): leave it as the operator set it
        pass


def sqlite_database_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does, and tighten existing files.

    SQLite gives its -wal and -shm files the mode of the database file, so a 0600 database
    keeps them private too.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        return
    for suffix in SQLITE_COMPANIONS:
        companion = Path(f"{path}{suffix}")
        try:
            if companion.exists() and companion.stat().st_mode & 0o077:
                companion.chmod(0o600)
        except OSError:
            pass
