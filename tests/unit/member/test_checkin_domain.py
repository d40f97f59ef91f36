"""The check-in rules: the merchant's calendar day, the cycle (a missed day restarts it,
after its last day it starts again), month and year boundaries, 29 February, the
calendar's streak and what today and tomorrow pay, and the points movement."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import InvalidArgument, Violations

from services.member.domain.checkin import (CheckIn, CheckInSettings, MemberCheckedIn, business_day, calendar,
                                            cause_id, current_streak, cycle_day, month_days, next_streak)
from services.member.domain.points_account import CHECK_IN, PointsBook, check_in_movement

UTC = timezone.utc
SHANGHAI = "Asia/Shanghai"
DEFAULT = CheckInSettings()


def made(day: date, previous: CheckIn | None = None, settings: CheckInSettings = DEFAULT) -> CheckIn:
    return CheckIn.make("mch_1", "mem_1", day, previous, settings, datetime(day.year, day.month, day.day, 2,
                                                                            tzinfo=UTC))


def run(days: list[date], settings: CheckInSettings = DEFAULT) -> list[CheckIn]:
    """Check-ins on these days in order, each continuing the one before."""
    out: list[CheckIn] = []
    for day in days:
        out.append(made(day, out[-1] if out else None, settings))
    return out


# ---- the merchant's day ---------------------------------------------------------------------

def test_half_past_eleven_at_night_in_shanghai_is_still_that_day_there_but_the_next_minutes_are_not():
    # 23:30 in Shanghai is 15:30 UTC of the same date.
    assert business_day(datetime(2026, 3, 10, 15, 30, tzinfo=UTC), SHANGHAI) == date(2026, 3, 10)
    # 16:30 UTC is 00:30 of the next day in Shanghai, while it is still the 10th in UTC.
    assert business_day(datetime(2026, 3, 10, 16, 30, tzinfo=UTC), SHANGHAI) == date(2026, 3, 11)
    assert business_day(datetime(2026, 3, 10, 16, 30, tzinfo=UTC), "UTC") == date(2026, 3, 10)
    # Midnight exactly belongs to the new day.
    assert business_day(datetime(2026, 3, 10, 16, 0, tzinfo=UTC), SHANGHAI) == date(2026, 3, 11)
    assert business_day(datetime(2026, 3, 10, 15, 59, 59, tzinfo=UTC), SHANGHAI) == date(2026, 3, 10)


def test_a_zone_behind_utc_is_still_on_the_day_before():
    assert business_day(datetime(2026, 1, 1, 3, 0, tzinfo=UTC), "America/Los_Angeles") == date(2025, 12, 31)


def test_an_instant_without_a_zone_is_refused():
    with pytest.raises(ValueError):
        business_day(datetime(2026, 1, 1), SHANGHAI)


# ---- the cycle ---------------------------------------------------------------------------------

def test_seven_days_in_a_row_pay_10_to_70_and_the_eighth_starts_the_cycle_again():
    start = date(2026, 4, 1)
    days = run([start + timedelta(days=i) for i in range(9)])
    assert [c.points for c in days] == [10, 20, 30, 40, 50, 60, 70, 10, 20]
    assert [c.cycle_day for c in days] == [1, 2, 3, 4, 5, 6, 7, 1, 2]
    assert [c.streak for c in days] == list(range(1, 10))
    assert {c.growth for c in days} == {1}


def test_a_missed_day_restarts_the_cycle():
    first = run([date(2026, 4, 1), date(2026, 4, 2), date(2026, 4, 3)])
    after_gap = made(date(2026, 4, 5), first[-1])
    assert (after_gap.streak, after_gap.cycle_day, after_gap.points) == (1, 1, 10)


def test_the_streak_goes_on_over_month_and_year_ends():
    days = run([date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 2)])
    assert [c.streak for c in days] == [1, 2, 3, 4]
    days = run([date(2026, 4, 30), date(2026, 5, 1)])
    assert days[-1].streak == 2


def test_29_february_is_a_day_like_any_other_in_a_leap_year():
    days = run([date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1)])
    assert [c.streak for c in days] == [1, 2, 3]
    # In other years 28 February is followed by 1 March: no day is missed.
    days = run([date(2027, 2, 28), date(2027, 3, 1)])
    assert days[-1].streak == 2


def test_a_merchants_own_cycle_with_a_single_day_and_zero_points():
    one = CheckInSettings((5,), 3)
    days = run([date(2026, 1, 1) + timedelta(days=i) for i in range(3)], one)
    assert [(c.cycle_day, c.points, c.growth) for c in days] == [(1, 5, 3)] * 3
    free = CheckInSettings((0, 100), 0)
    days = run([date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)], free)
    assert [c.points for c in days] == [0, 100, 0]


@given(streak=st.integers(1, 10_000), length=st.integers(1, 31))
def test_the_cycle_day_is_always_within_the_cycle_and_repeats_with_its_length(streak, length):
    day = cycle_day(streak, length)
    assert 1 <= day <= length
    assert cycle_day(streak + length, length) == day
    assert (day == 1) == ((streak - 1) % length == 0)


@given(gaps=st.lists(st.integers(1, 3), min_size=1, max_size=40),
       rewards=st.lists(st.integers(0, 100), min_size=1, max_size=31))
def test_any_run_of_check_ins_pays_the_cycle_day_of_its_streak(gaps, rewards):
    settings = CheckInSettings(tuple(rewards), 1)
    day, days = date(2027, 12, 20), [date(2027, 12, 20)]
    for gap in gaps:
        day += timedelta(days=gap)
        days.append(day)
    made_days = run(days, settings)
    expected = 0
    for i, c in enumerate(made_days):
        expected = expected + 1 if i and days[i] - days[i - 1] == timedelta(days=1) else 1
        assert c.streak == expected
        assert c.points == rewards[(expected - 1) % len(rewards)]


def test_next_streak_needs_yesterday_exactly():
    yesterday = made(date(2026, 6, 1))
    assert next_streak(date(2026, 6, 2), yesterday) == 2
    assert next_streak(date(2026, 6, 3), yesterday) == 1
    assert next_streak(date(2026, 6, 1), None) == 1


def test_a_check_in_records_its_event_once_and_is_keyed_by_member_and_day():
    c = made(date(2026, 6, 1))
    assert [type(e) for e in c.pull_events()] == [MemberCheckedIn]
    assert c.pull_events() == []
    assert c.id == "mch_1:mem_1:2026-06-01"
    assert cause_id("mem_1", date(2026, 6, 1)) == "mem_1:2026-06-01"


# ---- months -----------------------------------------------------------------------------------

@pytest.mark.parametrize("month, first, last", [
    ("2026-01", date(2026, 1, 1), date(2026, 1, 31)),
    ("2026-02", date(2026, 2, 1), date(2026, 2, 28)),
    ("2028-02", date(2028, 2, 1), date(2028, 2, 29)),
    ("2100-02", date(2100, 2, 1), date(2100, 2, 28)),  # not a leap year
    ("2000-02", date(2000, 2, 1), date(2000, 2, 29)),
    ("2026-04", date(2026, 4, 1), date(2026, 4, 30)),
    ("2026-12", date(2026, 12, 1), date(2026, 12, 31)),
])
def test_a_months_first_and_last_day(month, first, last):
    assert month_days(month) == (first, last)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-01", "2026-1", "", "2026-01-01", "0000-01"])
def test_what_is_not_a_month(month):
    with pytest.raises(ValueError):
        month_days(month)


# ---- the calendar -----------------------------------------------------------------------------

def test_the_calendar_before_and_after_todays_check_in():
    days = run([date(2026, 7, 30), date(2026, 7, 31)])
    today = date(2026, 8, 1)
    open_today = calendar("2026-08", [], today, None, days[-1], DEFAULT)
    assert (open_today.streak, open_today.checked_in_today, open_today.today_points,
            open_today.tomorrow_points) == (2, False, 30, 40)
    done = made(today, days[-1])
    after = calendar("2026-08", [done], today, done, days[-1], DEFAULT)
    assert (after.streak, after.checked_in_today, after.today_points, after.tomorrow_points) == (3, True, 30, 40)
    assert [c.day for c in after.check_ins] == [today]


def test_a_broken_streak_shows_0_and_today_pays_the_first_day():
    old = made(date(2026, 7, 1))
    page = calendar("2026-07", [old], date(2026, 7, 5), None, None, DEFAULT)
    assert (page.streak, page.today_points, page.tomorrow_points) == (0, 10, 20)
    assert current_streak(date(2026, 7, 5), None, old) == 0


def test_after_the_last_day_of_the_cycle_tomorrow_pays_the_first_again():
    days = run([date(2026, 7, 1) + timedelta(days=i) for i in range(7)])
    page = calendar("2026-07", days, date(2026, 7, 7), days[-1], days[-2], DEFAULT)
    assert (page.streak, page.today_points, page.tomorrow_points) == (7, 70, 10)


# ---- settings ---------------------------------------------------------------------------------

def test_settings_are_checked_and_kept_in_their_document_shape():
    v = Violations()
    CheckInSettings((), 1).check(v)
    CheckInSettings(tuple([1] * 32), -1).check(v)
    CheckInSettings((-1,), 2000).check(v)
    with pytest.raises(InvalidArgument) as refused:
        v.raise_if_any()
    fields = {f.field for f in refused.value.violations}
    assert fields == {"settings.day_rewards", "settings.growth"}
    ok = CheckInSettings((1, 2, 3), 5)
    ok.check(v2 := Violations())
    v2.raise_if_any()
    assert CheckInSettings.from_doc(ok.to_doc()) == ok
    assert CheckInSettings.from_doc(None) == DEFAULT


# ---- the points movement ---------------------------------------------------------------------

def test_the_check_in_movement_makes_points_available_at_once_and_pays_off_what_is_owed_first():
    book = PointsBook("mch_1", "mem_1")
    m = check_in_movement(book, "mem_1:2026-06-01", 30, 1, "e20271231")
    assert (m.cause.source, m.cause.kind, m.points, m.available, m.frozen, m.lots, m.growth) == (
        "CHECK_IN", CHECK_IN, 30, 30, 0, {"e20271231": 30}, 1)
    assert book.admits(m)
    book.apply(m)
    assert not book.admits(m)  # the same member and day: applied once
    assert book.consistent() == []
    owing = PointsBook("mch_1", "mem_1", owed=20)
    m = check_in_movement(owing, "mem_1:2026-06-02", 30, 1, "e20271231")
    assert (m.points, m.available, m.owed, m.lots) == (10, 10, -20, {"e20271231": 10})
    owing.apply(m)
    assert owing.consistent() == [] and owing.owed == 0
