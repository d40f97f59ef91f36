"""The check-in use cases over in-memory ports: once per member and day in the merchant's
time zone, many simultaneous taps pay once, a crash between the check-in and its payment
is paid once by a repeat or by the repair job, growth follows, the calendar, and the
staff's settings (versioned, audited, role-checked, validated with nothing written)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from siyu_kit.ids import new_id

from services.member.application.checkin import CheckIns
from services.member.domain import admin as audit_rules
from services.member.domain.checkin import CheckInSettings
from services.member.domain.members import Member
from services.member.domain.merchants import Merchant
from services.member.domain.points import PointsMoved
from tests.fakes.checkin import FakeCheckIns, FakeCheckInSettings
from tests.fakes.member import FakeAuditLog, FakeLedger, FakeMembers, FakeMerchants, caller

# 09:00 in Shanghai, 1 June 2026.
START = datetime(2026, 6, 1, 1, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class World:
    pass


async def world(time_zone: str = "Asia/Shanghai") -> World:
    w = World()
    w.merchants, w.members, w.ledger, w.audit = FakeMerchants(), FakeMembers(), FakeLedger(), FakeAuditLog()
    w.store, w.settings = FakeCheckIns(), FakeCheckInSettings()
    w.clock = Clock()
    w.checkin = CheckIns(w.store, w.settings, w.members, w.merchants, w.ledger, w.audit, w.clock)
    w.m = Merchant.create(new_id("mch"), "shop", "Shop", time_zone, START)
    await w.merchants.add(w.m)
    w.member = new_id("mem")
    await w.members.add(Member.register(w.member, w.m.id, "H5", "", START))
    return w


@pytest.fixture
async def w():
    return await world()


def member(w, member_id: str | None = None):
    return caller(w.m.id, member_id=member_id or w.member, channel="H5")


def operator(w, role: str = "OPERATOR"):
    return caller(w.m.id, staff_id=new_id("stf"), roles=(role,))


async def check_in(w):
    with member(w):
        return await w.checkin.check_in()


async def balance(w) -> tuple[int, int]:
    book = await w.ledger.book(w.m.id, w.member)
    growth = (await w.ledger.account(w.m.id, w.member)).growth
    return (book.available if book else 0), growth


async def test_a_week_of_check_ins_pays_10_to_70_and_growth_then_starts_again(w):
    paid = []
    for _ in range(8):
        done, repeat = await check_in(w)
        assert not repeat and done.paid
        paid.append(done.points)
        w.clock.now += timedelta(days=1)
    assert paid == [10, 20, 30, 40, 50, 60, 70, 10]
    assert await balance(w) == (290, 8)
    entries = await w.ledger.entries(w.m.id, w.member)
    assert {(e.source, e.kind) for e in entries} == {("CHECK_IN", "CHECK_IN")}
    assert all(not e.frozen for e in entries)
    assert (await w.ledger.book(w.m.id, w.member)).consistent() == []
    # Each check-in stored its event; each payment its points movement.
    assert len(w.store.events) == 8
    assert sum(isinstance(e, PointsMoved) for e in w.ledger.events) == 8


async def test_a_second_check_in_the_same_day_is_a_repeat_that_pays_nothing(w):
    first, repeat = await check_in(w)
    assert not repeat
    w.clock.now += timedelta(hours=14)  # 23:00 in Shanghai: still the same day there
    again, repeat = await check_in(w)
    assert repeat and (again.day, again.points) == (first.day, first.points)
    assert await balance(w) == (10, 1)
    w.clock.now += timedelta(hours=1)  # midnight in Shanghai (16:00 UTC, still 1 June in UTC)
    next_day, repeat = await check_in(w)
    assert not repeat and next_day.streak == 2 and str(next_day.day) == "2026-06-02"


async def test_the_day_is_the_merchants_not_utcs():
    w = await world("UTC")
    w.clock.now = datetime(2026, 6, 1, 15, 30, tzinfo=timezone.utc)  # 23:30 in Shanghai, 15:30 in UTC
    first, _ = await check_in(w)
    w.clock.now = datetime(2026, 6, 1, 16, 30, tzinfo=timezone.utc)  # 00:30 on 2 June in Shanghai
    second, repeat = await check_in(w)
    # In UTC both are 1 June: one check-in.
    assert repeat and str(first.day) == str(second.day) == "2026-06-01"


async def test_many_simultaneous_taps_store_one_check_in_and_pay_once(w):
    results = await asyncio.gather(*(check_in(w) for _ in range(20)))
    assert sum(not repeat for _, repeat in results) == 1
    assert {c.points for c, _ in results} == {10}
    assert len(w.store.items) == 1 and len(w.store.events) == 1
    assert await balance(w) == (10, 1)
    assert len(await w.ledger.entries(w.m.id, w.member)) == 1


async def test_a_crash_between_check_in_and_payment_is_paid_once_by_the_repeat(w):
    w.ledger.lose_moves = 100  # every movement loses: the payment fails after the check-in is stored
    with pytest.raises(Conflict):
        await check_in(w)
    assert len(w.store.items) == 1 and not next(iter(w.store.items.values())).paid
    assert await balance(w) == (0, 0)
    w.ledger.lose_moves = 0
    again, repeat = await check_in(w)
    assert repeat and again.paid
    assert await balance(w) == (10, 1)
    await check_in(w)
    assert await balance(w) == (10, 1)


async def test_the_repair_job_pays_what_a_crash_left_unpaid_once_even_when_the_mark_was_lost(w):
    w.ledger.lose_moves = 100
    with pytest.raises(Conflict):
        await check_in(w)
    w.ledger.lose_moves = 0
    # Too fresh: a check-in still under way is left alone.
    assert await w.checkin.repair() == 0
    w.clock.now += timedelta(minutes=1)
    # The payment is written, but the note that it was is lost (a crash after the move).
    w.store.lose_payment_marks = 1
    assert await w.checkin.repair() == 1
    assert await balance(w) == (10, 1)
    # The next pass pays again: the movement applies once, so nothing more moves.
    assert await w.checkin.repair() == 1
    assert await balance(w) == (10, 1)
    assert await w.checkin.repair() == 0
    assert len(await w.ledger.entries(w.m.id, w.member)) == 1


async def test_a_missed_day_restarts_the_cycle_and_the_calendar_shows_the_month(w):
    for _ in range(3):
        await check_in(w)
        w.clock.now += timedelta(days=1)
    w.clock.now += timedelta(days=1)  # 4 June missed; now 5 June
    restarted, _ = await check_in(w)
    assert (restarted.streak, restarted.points) == (1, 10)
    with member(w):
        page = await w.checkin.calendar("")
        assert page.month == "2026-06"
        assert [str(c.day) for c in page.check_ins] == ["2026-06-01", "2026-06-02", "2026-06-03", "2026-06-05"]
        assert (page.streak, page.checked_in_today, page.today_points, page.tomorrow_points) == (1, True, 10, 20)
        assert (await w.checkin.calendar("2026-05")).check_ins == []
        w.clock.now += timedelta(days=1)
        tomorrow = await w.checkin.calendar("2026-06")
        assert (tomorrow.streak, tomorrow.checked_in_today, tomorrow.today_points) == (1, False, 20)
        w.clock.now += timedelta(days=1)
        broken = await w.checkin.calendar("2026-06")
        assert (broken.streak, broken.today_points) == (0, 10)


async def test_the_calendar_reads_across_a_month_end(w):
    w.clock.now = datetime(2026, 6, 30, 1, 0, tzinfo=timezone.utc)
    await check_in(w)
    w.clock.now += timedelta(days=1)
    july, _ = await check_in(w)
    assert july.streak == 2
    with member(w):
        assert [str(c.day) for c in (await w.checkin.calendar("2026-06")).check_ins] == ["2026-06-30"]
        assert [str(c.day) for c in (await w.checkin.calendar("2026-07")).check_ins] == ["2026-07-01"]


async def test_bad_input_and_strangers_are_refused_with_nothing_written(w):
    with member(w):
        with pytest.raises(InvalidArgument) as bad:
            await w.checkin.calendar("2026-13")
        assert [v.field for v in bad.value.violations] == ["month"]
    stranger = new_id("mem")
    with member(w, stranger):
        with pytest.raises(NotFound):
            await w.checkin.check_in()
        with pytest.raises(NotFound):
            await w.checkin.calendar("")
    with operator(w):
        with pytest.raises(Unauthenticated):
            await w.checkin.check_in()
    assert w.store.items == {}


async def test_settings_are_versioned_audited_and_apply_to_the_next_check_in(w):
    with operator(w):
        settings, version = await w.checkin.settings()
        assert (settings, version) == (CheckInSettings(), 0)
        changed, version = await w.checkin.update_settings(CheckInSettings((5, 15), 2), 0)
        assert version == 1
        with pytest.raises(Conflict) as stale:
            await w.checkin.update_settings(CheckInSettings((1,), 0), 0)
        assert stale.value.reason == "VERSION_CONFLICT"
        assert await w.checkin.settings() == (CheckInSettings((5, 15), 2), 1)
    first, _ = await check_in(w)
    w.clock.now += timedelta(days=1)
    second, _ = await check_in(w)
    w.clock.now += timedelta(days=1)
    third, _ = await check_in(w)
    assert [(c.points, c.growth) for c in (first, second, third)] == [(5, 2), (15, 2), (5, 2)]
    assert await balance(w) == (25, 6)
    [entry] = w.audit.entries
    assert entry.action == audit_rules.CHECKIN_SETTINGS_UPDATED and entry.action in audit_rules.ACTIONS
    assert entry.before == {"day_rewards": "10,20,30,40,50,60,70", "growth": "1"}
    assert entry.after == {"day_rewards": "5,15", "growth": "2"}


async def test_settings_refuse_bad_values_and_wrong_roles_with_nothing_written(w):
    with operator(w):
        with pytest.raises(InvalidArgument) as bad:
            await w.checkin.update_settings(CheckInSettings(tuple(range(32)), -1), -1)
        assert {v.field for v in bad.value.violations} == {"settings.day_rewards", "settings.growth",
                                                           "expected_version"}
    for role in ("FINANCE", "GUIDE"):
        with operator(w, role):
            with pytest.raises(PermissionDenied):
                await w.checkin.settings()
            with pytest.raises(PermissionDenied):
                await w.checkin.update_settings(CheckInSettings(), 0)
    with member(w):
        with pytest.raises(Unauthenticated):
            await w.checkin.settings()
    assert w.settings.items == {} and w.audit.entries == []
