"""Test databases on SQLite behave like a stock SQLite build, whatever build this machine has.

Debian's SQLite allows 250,000 bound variables in one statement, a stock build 32,766: a query
that passes a long id list would work here and fail on a stock build (and in production at a
larger size), so every test connection, the consumers' included, gets the stock limit.
"""
from __future__ import annotations

import sqlite3

from django.db.backends.signals import connection_created

SQLITE_STOCK_VARIABLE_LIMIT = 32_766


def _stock_limits(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_STOCK_VARIABLE_LIMIT)


def sqlite_stock_limits_apply() -> None:
    connection_created.connect(_stock_limits, dispatch_uid="tests.sqlite_stock_limits")
