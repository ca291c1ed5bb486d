"""Cron slots of schedules: validation, time zones and daylight-saving changes."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.cron import CronInvalid, cron_validate, slot_latest, slot_next, timezone_validate

BERLIN = "Europe/Berlin"


def _slots(expression: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    slots, at = [], start
    while True:
        at = slot_next(expression, zone, after=at)
        if at >= end:
            return slots
        slots.append(at)


@pytest.mark.parametrize("expression", ["61 * * * *", "0 6 * *", "0 6 * * * *", "", "@daily", "0 25 * * *", "x y z a b"])
def test_bad_cron_expressions_are_refused_with_a_reason(expression: str) -> None:
    with pytest.raises(CronInvalid) as refused:
        cron_validate(expression)
    assert str(refused.value)


def test_cron_expression_is_normalised() -> None:
    assert cron_validate("  0  6 * *   1-5 ") == "0 6 * * 1-5"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "utc+2"])
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(CronInvalid):
        timezone_validate(name)


def test_slots_are_computed_in_the_schedules_time_zone_and_returned_in_utc() -> None:
    after = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)  # a Monday
    # 06:00 in Berlin in winter is 05:00 UTC.
    assert slot_next("0 6 * * 1-5", BERLIN, after=after) == datetime(2025, 1, 6, 5, 0, tzinfo=UTC)
    assert slot_next("0 6 * * 1-5", "UTC", after=after) == datetime(2025, 1, 6, 6, 0, tzinfo=UTC)


def test_slot_in_the_hour_skipped_in_spring_runs_once_right_after_the_change() -> None:
    # 2025-03-30: Berlin's clocks jump from 02:00 to 03:00; 02:30 does not exist that day.
    day = _slots("30 2 * * *", BERLIN, datetime(2025, 3, 29, 12, tzinfo=UTC), datetime(2025, 3, 31, 0, tzinfo=UTC))
    assert day == [datetime(2025, 3, 30, 1, 0, tzinfo=UTC)]  # 03:00 CEST, once
    assert day[0].astimezone(ZoneInfo(BERLIN)).hour == 3


def test_slot_in_the_hour_repeated_in_autumn_runs_once() -> None:
    # 2025-10-26: Berlin's clocks go back from 03:00 to 02:00; 02:30 happens twice on the wall.
    day = _slots("30 2 * * *", BERLIN, datetime(2025, 10, 25, 12, tzinfo=UTC), datetime(2025, 10, 27, 0, tzinfo=UTC))
    assert day == [datetime(2025, 10, 26, 0, 30, tzinfo=UTC)]


def test_daily_schedule_keeps_its_local_time_across_both_changes() -> None:
    slots = _slots("0 6 * * *", BERLIN, datetime(2025, 3, 28, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC))
    assert len(slots) == (datetime(2025, 11, 1) - datetime(2025, 3, 28)).days
    assert {s.astimezone(ZoneInfo(BERLIN)).hour for s in slots} == {6}


def test_latest_slot_includes_the_instant_itself_and_finds_the_last_missed_one() -> None:
    six = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    assert slot_latest("0 * * * *", "UTC", at_or_before=six) == six
    assert slot_latest("0 * * * *", "UTC", at_or_before=six + timedelta(minutes=59)) == six
    assert slot_latest("0 * * * *", "UTC", at_or_before=six - timedelta(seconds=1)) == six - timedelta(hours=1)


def test_latest_slot_on_the_spring_forward_day_is_the_shifted_one() -> None:
    after_change = datetime(2025, 3, 30, 1, 10, tzinfo=UTC)  # 03:10 CEST
    assert slot_latest("30 2 * * *", BERLIN, at_or_before=after_change) == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)


def test_every_minute_is_allowed() -> None:
    start = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    assert len(_slots("* * * * *", "UTC", start, start + timedelta(hours=1))) == 59
