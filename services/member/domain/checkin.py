"""Daily check-in (签到 / 打卡): once per calendar day in the merchant's time zone, paying
the day of a cycle; a missed day restarts the cycle, and after its last day the cycle
starts again.

A check-in is identified by its member and day, so two check-ins of one member on one day
cannot both be stored: that key, not a read before the write, is what makes a double tap,
a retry or a second device pay once. Its points are one movement of the points account
whose cause is the same member and day (points_account.check_in_movement).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import Violations

DEFAULT_DAY_REWARDS = (10, 20, 30, 40, 50, 60, 70)
DEFAULT_GROWTH = 1
MAX_CYCLE_DAYS = 31
MAX_DAY_POINTS = 100_000
MAX_GROWTH = 1_000
MONTH = re.compile(r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class CheckInSettings:
    """A merchant's check-in terms: each cycle day's points and the growth per check-in."""
    day_rewards: tuple[int, ...] = DEFAULT_DAY_REWARDS
    growth: int = DEFAULT_GROWTH

    def check(self, v: Violations, prefix: str = "settings.") -> None:
        v.check(1 <= len(self.day_rewards) <= MAX_CYCLE_DAYS, prefix + "day_rewards",
                f"1 to {MAX_CYCLE_DAYS} days")
        v.check(all(0 <= n <= MAX_DAY_POINTS for n in self.day_rewards), prefix + "day_rewards",
                f"each day 0..{MAX_DAY_POINTS} points")
        v.check(0 <= self.growth <= MAX_GROWTH, prefix + "growth", f"0..{MAX_GROWTH}")

    def reward(self, streak: int) -> tuple[int, int]:
        """(cycle day, points) of the check-in that makes the streak `streak` (≥ 1)."""
        day = cycle_day(streak, len(self.day_rewards))
        return day, self.day_rewards[day - 1]

    def to_doc(self) -> dict:
        return {"day_rewards": list(self.day_rewards), "growth": self.growth}

    @classmethod
    def from_doc(cls, doc: dict | None) -> "CheckInSettings":
        if not doc:
            return cls()
        return cls(tuple(int(n) for n in doc.get("day_rewards") or DEFAULT_DAY_REWARDS),
                   int(doc.get("growth", DEFAULT_GROWTH)))

    def summary(self) -> dict[str, str]:
        """For the audit trail."""
        return {"day_rewards": ",".join(str(n) for n in self.day_rewards), "growth": str(self.growth)}


def cycle_day(streak: int, length: int) -> int:
    """The day of the cycle a streak of `streak` days ends on: 1..length, then 1 again."""
    if streak < 1 or length < 1:
        raise ValueError("a streak and a cycle are at least one day")
    return (streak - 1) % length + 1


def business_day(at: datetime, time_zone: str) -> date:
    """The merchant's calendar day at the instant `at` (23:30 in Shanghai is 15:30 UTC of
    the same day; 16:30 UTC is already the next day there)."""
    if at.tzinfo is None:
        raise ValueError("an instant needs its time zone")
    return at.astimezone(ZoneInfo(time_zone)).date()


def day_key(day: date) -> str:
    return day.isoformat()


def parse_day(text: str) -> date:
    return date.fromisoformat(text)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_days(month: str) -> tuple[date, date]:
    """The first and the last day of a month given as YYYY-MM (29 February in leap years)."""
    if not MONTH.match(month):
        raise ValueError(f"not a month: {month!r}")
    year, number = int(month[:4]), int(month[5:7])
    first = date(year, number, 1)
    following = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return first, following - timedelta(days=1)


def next_streak(day: date, previous: "CheckIn | None") -> int:
    """The streak a check-in on `day` makes: one more than yesterday's check-in, or 1
    when yesterday has none (a missed day restarts the cycle)."""
    if previous is not None and previous.day == day - timedelta(days=1):
        return previous.streak + 1
    return 1


def current_streak(today: date, today_check_in: "CheckIn | None", yesterday_check_in: "CheckIn | None") -> int:
    """The streak as the calendar shows it: today's, or yesterday's while today is still
    open, else 0 (broken)."""
    if today_check_in is not None:
        return today_check_in.streak
    if yesterday_check_in is not None and yesterday_check_in.day == today - timedelta(days=1):
        return yesterday_check_in.streak
    return 0


@dataclass(frozen=True)
class MemberCheckedIn:
    """The domain event of a check-in (written with it)."""
    check_in: "CheckIn"


@dataclass
class CheckIn(Aggregate):
    """One member's check-in for one day, and what it pays. `paid` turns true once the
    points movement is written; until then a repeat or the repair job pays it (the
    movement's cause is the member and day, so paying twice pays once)."""
    merchant_id: str
    member_id: str
    day: date
    streak: int
    cycle_day: int
    points: int
    growth: int
    checked_in_at: datetime
    paid: bool = False
    channel: str = ""  # where the member checked in
    version: int = 0

    @property
    def id(self) -> str:
        return check_in_id(self.merchant_id, self.member_id, self.day)

    @classmethod
    def make(cls, merchant_id: str, member_id: str, day: date, previous: "CheckIn | None",
             settings: CheckInSettings, at: datetime, channel: str = "") -> "CheckIn":
        """The check-in for `day`, continuing `previous` (the member's check-in of the day
        before, if any)."""
        streak = next_streak(day, previous)
        number, points = settings.reward(streak)
        made = cls(merchant_id, member_id, day, streak, number, points, settings.growth, at, channel=channel)
        made.record(MemberCheckedIn(made))
        return made


def check_in_id(merchant_id: str, member_id: str, day: date) -> str:
    """The unique key of a check-in: merchant, member and day."""
    return f"{merchant_id}:{member_id}:{day_key(day)}"


def cause_id(member_id: str, day: date) -> str:
    """The source id of the check-in's points movement: member and day, so it is paid once."""
    return f"{member_id}:{day_key(day)}"


@dataclass(frozen=True)
class Calendar:
    """The member's month as the check-in page shows it."""
    month: str
    check_ins: list[CheckIn]
    today: date
    checked_in_today: bool
    streak: int
    today_points: int
    tomorrow_points: int
    settings: CheckInSettings


def calendar(month: str, in_month: list[CheckIn], today: date, today_check_in: CheckIn | None,
             yesterday_check_in: CheckIn | None, settings: CheckInSettings) -> Calendar:
    """What the page shows: today pays what its check-in paid (or the next day of the
    streak, when not made yet), tomorrow the day after today's."""
    streak = current_streak(today, today_check_in, yesterday_check_in)
    if today_check_in is not None:
        today_points, today_streak = today_check_in.points, today_check_in.streak
    else:
        today_streak = streak + 1
        today_points = settings.reward(today_streak)[1]
    tomorrow_points = settings.reward(today_streak + 1)[1]
    return Calendar(month, sorted(in_month, key=lambda c: c.day), today, today_check_in is not None, streak,
                    today_points, tomorrow_points, settings)
