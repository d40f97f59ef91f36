"""Repeat purchase, monthly cohort retention and member lifetime value, from paid orders.

A member belongs to the cohort of the month (in the merchant's time zone) of their first
paid order, and to the channel and persona that order came from: "by channel" and "by
persona" group members by where they were won. An order counts as a purchase while its
payment was not refunded in full; lifetime value is what a member paid less what was
refunded, over all their orders.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from siyu_kit.money import BASIS_POINTS

from services.content.domain.funnels import DEFAULT_TIME_ZONE

ALL, BY_CHANNEL, BY_PERSONA = "all", "channel", "persona"
GROUPINGS = (ALL, BY_CHANNEL, BY_PERSONA)
# The most cohort months one report covers, and the most groups it lists.
MAX_COHORT_MONTHS = 24
MAX_GROUPS = 50


def month_of(at: datetime, time_zone: str = DEFAULT_TIME_ZONE) -> str:
    """The merchant's calendar month (yyyy-mm) of an instant."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(ZoneInfo(time_zone or DEFAULT_TIME_ZONE)).strftime("%Y-%m")


def parse_month(text: str) -> tuple[int, int] | None:
    if len(text) != 7 or text[4] != "-" or not (text[:4].isdigit() and text[5:].isdigit()):
        return None
    year, month = int(text[:4]), int(text[5:])
    return (year, month) if 1 <= month <= 12 and year >= 1970 else None


def month_index(month: str) -> int:
    year, number = parse_month(month) or (0, 0)
    return year * 12 + number - 1


def month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_start(month: str, time_zone: str = DEFAULT_TIME_ZONE) -> datetime:
    """The first instant of a month in the merchant's zone."""
    year, number = parse_month(month) or (1970, 1)
    return datetime(year, number, 1, tzinfo=ZoneInfo(time_zone or DEFAULT_TIME_ZONE))


@dataclass(frozen=True)
class FirstPurchase:
    """A member's first paid order: their cohort and where they were won."""
    member_id: str
    month: str
    channel: str
    persona_id: str


@dataclass(frozen=True)
class PaidOrder:
    member_id: str
    order_id: str
    month: str
    paid: int  # minor units
    refunded: int  # minor units

    @property
    def net(self) -> int:
        return max(0, self.paid - self.refunded)

    @property
    def purchase(self) -> bool:
        """Still a purchase: not refunded in full."""
        return self.paid > 0 and self.refunded < self.paid


@dataclass(frozen=True)
class Cohort:
    month: str
    members: int
    # retention_bp[k-1]: share of the cohort that bought again in month +k, up to `through`.
    retention_bp: list[int]
    repeat_members: int  # with at least two purchases
    lifetime_value: int  # average net paid per member, minor units (floor)


@dataclass(frozen=True)
class Group:
    key: str  # "" for all members; a channel name or a persona id (""-persona: none)
    members: int
    repeat_members: int
    # repeat members / members with a purchase (one not refunded in full)
    repeat_rate_bp: int
    lifetime_value: int
    cohorts: list[Cohort]


def _rate(part: int, whole: int) -> int:
    return part * BASIS_POINTS // whole if whole > 0 else 0


def _group_key(first: FirstPurchase, grouping: str) -> str:
    if grouping == BY_CHANNEL:
        return first.channel
    if grouping == BY_PERSONA:
        return first.persona_id
    return ""


def report(firsts: Iterable[FirstPurchase], orders: Iterable[PaidOrder], from_month: str, to_month: str,
           through_month: str, grouping: str = ALL) -> list[Group]:
    """Cohorts whose first purchase falls in [from_month, to_month], with their orders up to
    `through_month` (the current month). Groups are listed largest first, at most MAX_GROUPS."""
    lo, hi, through = month_index(from_month), month_index(to_month), month_index(through_month)
    cohort_of = {f.member_id: f for f in firsts if lo <= month_index(f.month) <= hi}
    bought_months: dict[str, set[int]] = {m: set() for m in cohort_of}
    purchases: dict[str, int] = dict.fromkeys(cohort_of, 0)
    value: dict[str, int] = dict.fromkeys(cohort_of, 0)
    for order in orders:
        if order.member_id not in cohort_of or month_index(order.month) > through:
            continue
        value[order.member_id] += order.net
        if order.purchase:
            purchases[order.member_id] += 1
            bought_months[order.member_id].add(month_index(order.month))
    grouped: dict[str, dict[int, list[str]]] = {}
    for member_id, first in cohort_of.items():
        grouped.setdefault(_group_key(first, grouping), {}).setdefault(month_index(first.month), []).append(member_id)
    groups = []
    for key, by_month in grouped.items():
        cohorts = []
        for index in sorted(by_month):
            members = by_month[index]
            retention = [_rate(sum(1 for m in members if index + k in bought_months[m]), len(members))
                         for k in range(1, through - index + 1)]
            cohorts.append(Cohort(month=month_name(index), members=len(members), retention_bp=retention,
                                  repeat_members=sum(1 for m in members if purchases[m] >= 2),
                                  lifetime_value=sum(value[m] for m in members) // len(members)))
        everyone = [m for ms in by_month.values() for m in ms]
        repeat = sum(1 for m in everyone if purchases[m] >= 2)
        buyers = sum(1 for m in everyone if purchases[m] >= 1)
        groups.append(Group(key=key, members=len(everyone), repeat_members=repeat,
                            repeat_rate_bp=_rate(repeat, buyers),
                            lifetime_value=sum(value[m] for m in everyone) // len(everyone), cohorts=cohorts))
    groups.sort(key=lambda g: (-g.members, g.key))
    return groups[:MAX_GROUPS]
