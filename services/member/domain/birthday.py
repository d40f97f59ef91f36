"""Birthdays and the birthday benefit: when a member's birthday falls in a given year, and
which birthdays a daily run in the merchant's time zone is due to reward.

A member born on 29 February celebrates on 28 February in other years. A run rewards
birthdays from the last CATCH_UP_DAYS days up to today (local), so a run that was late
(the service was down over a birthday) still rewards it, while a birthday set after it
passed is not rewarded for this year. The reward's key is the member and the year of the
birthday it celebrates, so runs repeated, late or on several replicas reward it once.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from siyu_kit.errors import Violations

# Birthdays up to this many days back (today included) are still rewarded by a late run.
CATCH_UP_DAYS = 7
EARLIEST_YEAR = 1900


@dataclass(frozen=True)
class Birthday:
    month: int
    day: int
    year: int = 0  # 0: not given

    @property
    def month_day(self) -> str:
        """The stored and indexed form, "MM-DD" (sorts and compares as text)."""
        return f"{self.month:02d}-{self.day:02d}"

    @classmethod
    def from_month_day(cls, month_day: str, year: int = 0) -> "Birthday":
        month, day = month_day.split("-")
        return cls(int(month), int(day), int(year or 0))


def check_birthday(v: Violations, at: str, birthday: Birthday, today: date) -> None:
    """A real calendar day (29 February allowed without a year); a year, when given, makes
    a real date not after today and not before EARLIEST_YEAR."""
    if not v.check(1 <= birthday.month <= 12, f"{at}.month", "1 to 12"):
        return
    # 2000 is a leap year: 29 February is a day a birthday may fall on.
    longest = calendar.monthrange(2000, birthday.month)[1]
    if not v.check(1 <= birthday.day <= longest, f"{at}.day", f"1 to {longest} in month {birthday.month}"):
        return
    if birthday.year:
        if not v.check(EARLIEST_YEAR <= birthday.year <= today.year, f"{at}.year",
                       f"{EARLIEST_YEAR} to {today.year}, or 0 when not given"):
            return
        real = birthday.day <= calendar.monthrange(birthday.year, birthday.month)[1]
        if v.check(real, f"{at}.day", f"{birthday.year} has no {birthday.month_day}"):
            v.check(date(birthday.year, birthday.month, birthday.day) <= today, f"{at}.year",
                    "the birthday is in the future")


def celebrated_on(month_day: str, year: int) -> date:
    """The day the birthday is celebrated in `year`: 29 February on 28 February in a year
    without it."""
    month, day = (int(p) for p in month_day.split("-"))
    if month == 2 and day == 29 and not calendar.isleap(year):
        day = 28
    return date(year, month, day)


def due_window(today: date, catch_up_days: int = CATCH_UP_DAYS) -> list[date]:
    """The local days whose birthdays a run on `today` rewards, oldest first."""
    return [today - timedelta(days=n) for n in range(catch_up_days - 1, -1, -1)]


def month_days_due(today: date, catch_up_days: int = CATCH_UP_DAYS) -> list[str]:
    """The stored month-days to look members up by: every day of the window, plus 02-29
    when the window holds 28 February of a year without 29 February."""
    found: list[str] = []
    for day in due_window(today, catch_up_days):
        found.append(f"{day.month:02d}-{day.day:02d}")
        if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
            found.append("02-29")
    return sorted(set(found))


def due_year(month_day: str, today: date, catch_up_days: int = CATCH_UP_DAYS) -> int | None:
    """The year whose birthday a run on `today` rewards for this month-day, or None when it
    is not in the window. Across New Year a late run on 2 January still rewards a
    birthday of 30 December as last year's."""
    window = due_window(today, catch_up_days)
    for year in sorted({d.year for d in window}, reverse=True):
        if window[0] <= celebrated_on(month_day, year) <= today:
            return year
    return None


def reward_key(member_id: str, year: int) -> str:
    """One birthday reward per member and year."""
    return f"{member_id}:{year}"
