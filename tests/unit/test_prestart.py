"""When does a scheduled prestart run?"""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from classroom_hub.prestart import next_run, parse_schedule

PARIS = ZoneInfo("Europe/Paris")


def test_the_next_run_is_the_soonest_scheduled_time_after_now():
    monday_9 = datetime(2026, 11, 23, 9, 0, tzinfo=PARIS)  # a Monday
    assert next_run(monday_9, ["mon,wed 09:50"]) == datetime(2026, 11, 23, 9, 50, tzinfo=PARIS)
    assert next_run(monday_9, ["mon,wed 08:50"]) == datetime(2026, 11, 25, 8, 50, tzinfo=PARIS)
    assert next_run(monday_9, ["mon 08:00", "daily 12:00"]) == datetime(2026, 11, 23, 12, 0, tzinfo=PARIS)


def test_a_time_just_passed_waits_a_week():
    at = datetime(2026, 11, 23, 9, 50, tzinfo=PARIS)
    assert next_run(at, ["mon 09:50"]) == datetime(2026, 11, 30, 9, 50, tzinfo=PARIS)


def test_a_malformed_entry_names_itself_and_the_expected_form():
    with pytest.raises(SystemExit, match="'monday 9h'.*DAYS HH:MM"):
        parse_schedule("monday 9h")
