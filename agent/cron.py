"""Cron arithmetic for schedules: validation and the slots of a five-field crontab in an IANA time zone.

Built on `cronsim`, which follows Debian cron on daylight-saving changes: a slot that falls in
the hour skipped in spring runs once, right after the change (02:30 runs at 03:00); a slot in
the hour repeated in autumn runs once, on its first occurrence. Every value returned is in UTC.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CRON_MAX_LENGTH = 100


class CronInvalid(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


def cron_validate(expression: str) -> str:
    """The expression, whitespace-normalised, if it is a valid five-field crontab."""
    normalised = " ".join(str(expression).split())
    if not normalised:
        raise CronInvalid("Give a five-field cron expression, e.g. \"0 6 * * 1-5\".")
    if len(normalised) > CRON_MAX_LENGTH:
        raise CronInvalid(f"A cron expression is at most {CRON_MAX_LENGTH} characters.")
    if len(normalised.split(" ")) != 5:
        raise CronInvalid(
            "Give exactly five fields (minute hour day-of-month month day-of-week), e.g. \"0 6 * * 1-5\"."
        )
    if normalised.startswith("@"):
        raise CronInvalid("Write the five fields out; @-shortcuts are not accepted.")
    try:
        CronSim(normalised, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:
        raise CronInvalid(f"Not a valid cron expression: {exc}.") from None
    return normalised


def timezone_validate(name: str) -> ZoneInfo:
    """The zone for an IANA name ("Europe/Berlin", "UTC")."""
    name = str(name).strip()
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise CronInvalid(f"{name!r} is not an IANA time zone name, e.g. \"Europe/Berlin\" or \"UTC\".")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronInvalid(f"{name!r} is not an IANA time zone name, e.g. \"Europe/Berlin\" or \"UTC\".") from None


def slot_next(expression: str, zone_name: str, *, after: datetime) -> datetime:
    """The first slot strictly after `after` (an aware datetime), in UTC."""
    zone = timezone_validate(zone_name)
    return next(CronSim(expression, after.astimezone(zone))).astimezone(UTC)


def slot_latest(expression: str, zone_name: str, *, at_or_before: datetime) -> datetime:
    """The last slot at or before `at_or_before`, in UTC (the one a catch-up run is for)."""
    zone = timezone_validate(zone_name)
    # cronsim walks backwards from strictly before its start; a second later includes `at_or_before`.
    start = (at_or_before + timedelta(seconds=1)).astimezone(zone)
    return next(CronSim(expression, start, reverse=True)).astimezone(UTC)
