"""CSV cells that a spreadsheet would run as a formula are neutralised (OWASP "CSV injection").

Every CSV the service writes passes its cells through `spreadsheet_safe_row`.
"""
from __future__ import annotations

from collections.abc import Iterable

# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and Sheets.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell that starts like a formula gets a leading apostrophe; anything else is unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def spreadsheet_safe_row(values: Iterable) -> list:
    return [spreadsheet_safe(value) for value in values]
