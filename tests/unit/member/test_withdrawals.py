"""Withdrawals over in-memory ports: the request's guards (minimum, balance, daily limit,
idempotency), FINANCE's approval through the payout port (paid, failed, later), rejection,
the job finishing what a crash or a slow provider left, concurrent requests on one
balance, the settings, and the roles."""
from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta, timezone

import pytest

from services.member.application.commission_ports import Transfer
from services.member.application.withdrawals import Withdrawals
from services.member.domain.commissions import CommissionBook, entry_for, hold_movement
from services.member.domain.withdrawals import (FAILED, HOLDING, PAID, PAYING, REJECTED, REQUESTED, Withdrawal,
                                                WithdrawalSettings, business_day)
from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id
from tests.fakes.callers import caller
from tests.fakes.commissions import FakeCommissions, FakePayouts, FakeWithdrawals, FakeWithdrawalSettings

NOW = datetime(2026, 3, 1, 15, 30, tzinfo=timezone.utc)  # 23:30 in Shanghai
MERCHANT = new_id("mch")


class World:
    def __init__(self, available: int = 10_000, *answers: Transfer, settings: WithdrawalSettings | None = None):
        self.now = NOW
        self.balances = FakeCommissions()
        self.store = FakeWithdrawals()
        self.settings = FakeWithdrawalSettings(settings)
        self.payouts = FakePayouts(*answers)
        self.w = Withdrawals(self.store, self.settings, self.balances, self.payouts, clock=lambda: self.now)
        self.member = new_id("mem")
        self.balances.books[(MERCHANT, self.member)] = CommissionBook(MERCHANT, self.member, available=available)

    def as_member(self, member_id: str | None = None):
        return caller(MERCHANT, member_id=member_id or self.member, channel="MINI_PROGRAM")

    def as_finance(self, role: str = "FINANCE"):
        return caller(MERCHANT, staff_id=new_id("stf"), roles=(role,))

    async def request(self, amount: int, key: str = "") -> Withdrawal:
        with self.as_member():
            return (await self.w.request(amount, key or new_id("key")))[0]

    def book(self) -> CommissionBook:
        return self.balances.books[(MERCHANT, self.member)]


async def test_a_request_takes_the_money_and_waits_for_finance():
    world = World(10_000, settings=WithdrawalSettings(fee_bp=60))
    w = await world.request(5_000, "k1")
    assert (w.state, w.fee, w.payout) == (REQUESTED, 30, 4_970)
    assert (world.book().available, world.book().withdrawing) == (5_000, 5_000)
    again = await world.request(5_000, "k1")
    assert again.id == w.id and world.book().available == 5_000
    with pytest.raises(FailedPrecondition) as reused:
        await world.request(4_000, "k1")
    assert reused.value.reason == "WITHDRAWAL_KEY_REUSED"


async def test_the_minimum_the_balance_and_the_day_limit_refuse():
    world = World(900_000, settings=WithdrawalSettings(min_amount=200, daily_limit=10_000))
    for amount, reason in ((199, "WITHDRAWAL_BELOW_MINIMUM"), (10_001, "WITHDRAWAL_DAILY_LIMIT")):
        with pytest.raises(FailedPrecondition) as refused:
            await world.request(amount)
        assert refused.value.reason == reason
    await world.request(6_000)
    for _ in range(2):  # the same key answers the same refusal
        with pytest.raises(FailedPrecondition) as refused:
            await world.request(4_001, "over")
        assert refused.value.reason == "WITHDRAWAL_DAILY_LIMIT"
    await world.request(4_000)
    assert world.book().days == {business_day(NOW): 10_000} and business_day(NOW) == "2026-03-01"
    world.now = NOW + timedelta(minutes=31)  # a new business day in Shanghai
    await world.request(4_000)
    poor = World(500)
    with pytest.raises(FailedPrecondition) as refused:
        await poor.request(501)
    assert refused.value.reason == "WITHDRAWAL_INSUFFICIENT"
    assert poor.book().available == 500
    with poor.as_member():
        assert (await poor.w.my_withdrawals(0, ""))[0] == []
        with pytest.raises(InvalidArgument):
            await poor.w.request(0, "k")
        with pytest.raises(InvalidArgument):
            await poor.w.request(100, "bad key!")


async def test_approval_pays_out_through_the_provider_keyed_by_the_withdrawal():
    world = World(10_000, Transfer("SUCCEEDED", provider_transfer_id="tb-1"))
    w = await world.request(3_000)
    with world.as_finance():
        paid = await world.w.approve(w.id)
        assert (paid.state, paid.provider_transfer_id, paid.booked) == (PAID, "tb-1", True)
        assert world.payouts.calls == [(w.id, world.member, 3_000)]
        assert (await world.w.approve(w.id)).state == PAID  # again: as it is
        with pytest.raises(FailedPrecondition) as late:
            await world.w.reject(w.id, "too late")
        assert late.value.reason == "WITHDRAWAL_STATE"
    book = world.book()
    assert (book.available, book.withdrawing, book.withdrawn) == (7_000, 0, 3_000)
    assert len(world.payouts.calls) == 1


async def test_a_failed_transfer_and_a_rejection_return_the_money():
    world = World(10_000, Transfer("FAILED", failure_reason="NO_AUTH"))
    first, second = await world.request(3_000), await world.request(2_000)
    with world.as_finance():
        failed = await world.w.approve(first.id)
        rejected = await world.w.reject(second.id, "not this month")
    assert (failed.state, failed.reason) == (FAILED, "NO_AUTH")
    assert (rejected.state, rejected.reason) == (REJECTED, "not this month")
    book = world.book()
    assert (book.available, book.withdrawing, book.withdrawn) == (10_000, 0, 0)
    with world.as_finance():
        with pytest.raises(FailedPrecondition):
            await world.w.approve(second.id)
        listed, _ = await world.w.list(REJECTED, 0, "")
        assert [x.id for x in listed] == [second.id]


async def test_a_returned_withdrawal_pays_debt_first():
    world = World(1_000)
    w = await world.request(1_000)
    world.book().debt = 300  # a clawback came meanwhile
    with world.as_finance():
        await world.w.reject(w.id, "no")
    assert (world.book().available, world.book().debt, world.book().withdrawing) == (700, 0, 0)


async def test_an_unanswered_transfer_stays_paying_until_the_job_hears_back():
    world = World(10_000, Transfer("LATER"), Transfer("PROCESSING"), Transfer("SUCCEEDED", provider_transfer_id="t"))
    w = await world.request(1_000)
    with world.as_finance():
        assert (await world.w.approve(w.id)).state == PAYING
    assert world.book().withdrawing == 1_000
    world.now += timedelta(minutes=1)
    await world.w.resume()
    assert world.store.items[w.id].state == PAYING
    world.now += timedelta(minutes=1)
    await world.w.resume()
    assert world.store.items[w.id].state == PAID and world.book().withdrawn == 1_000
    assert [c[0] for c in world.payouts.calls] == [w.id] * 3


async def test_the_job_finishes_a_hold_and_a_booking_a_crash_left():
    world = World(10_000)
    day = business_day(NOW)
    held = Withdrawal(id=new_id("wdr"), merchant_id=MERCHANT, version=1, member_id=world.member, amount=2_000,
                      fee=0, state=HOLDING, idempotency_key="crashed", day=day, created_at=NOW, updated_at=NOW)
    await world.store.add(held)
    world.now = NOW + timedelta(minutes=5)
    await world.w.resume()
    assert world.store.items[held.id].state == REQUESTED and world.book().withdrawing == 2_000
    with world.as_finance():
        stored = world.store.items[held.id]
        stored.state, stored.booked = PAID, False  # paid, the process died before the balance moved
    world.now += timedelta(minutes=5)
    await world.w.resume()
    assert world.store.items[held.id].booked and world.book().withdrawn == 2_000
    await world.w.resume()
    assert world.book().withdrawn == 2_000


async def test_concurrent_requests_never_overdraw_one_balance():
    world = World(10_000)

    async def one(i: int):
        try:
            return await world.request(700, f"k{i}")
        except (FailedPrecondition, Conflict):
            return None

    with world.as_member():
        done = [w for w in await asyncio.gather(*(one(i) for i in range(30))) if w is not None]
    book = world.book()
    assert len(done) == 14 and book.available == 10_000 - 14 * 700 and book.withdrawing == 14 * 700
    assert book.available >= 0


async def test_settings_need_finance_and_the_version_read():
    world = World()
    with world.as_finance():
        settings, version = await world.w.settings()
        assert (settings, version) == (WithdrawalSettings(), 1)
        _, v2 = await world.w.update_settings(WithdrawalSettings(min_amount=500, fee_bp=100, daily_limit=90_000), 1)
        with pytest.raises(Conflict):
            await world.w.update_settings(WithdrawalSettings(), 1)
        with pytest.raises(InvalidArgument) as bad:
            await world.w.update_settings(WithdrawalSettings(min_amount=99, fee_bp=6000, daily_limit=50), v2)
        assert {v.field for v in bad.value.violations} == {"settings.min_amount", "settings.fee_bp",
                                                           "settings.daily_limit"}
    with world.as_finance("OPERATOR"):
        with pytest.raises(PermissionDenied):
            await world.w.settings()
        with pytest.raises(PermissionDenied):
            await world.w.list("", 0, "")
    other = World()
    w = await other.request(1_000)
    with caller(new_id("mch"), staff_id=new_id("stf"), roles=("FINANCE",)):
        with pytest.raises(NotFound):
            await other.w.approve(w.id)


async def test_a_hold_left_under_way_is_finished_once_and_one_key_asked_twice_at_once_takes_once():
    world = World(10_000)
    with world.as_member():
        (a, _), (b, _) = await asyncio.gather(world.w.request(2_000, "same"), world.w.request(2_000, "same"))
    assert a.id == b.id and world.book().withdrawing == 2_000 and world.book().moving == {}
    # The balance moved for a hold, then the process died before the withdrawal said so.
    held = Withdrawal(id=new_id("wdr"), merchant_id=MERCHANT, version=1, member_id=world.member, amount=3_000,
                      fee=0, state=HOLDING, idempotency_key="crashed", day=business_day(NOW), created_at=NOW,
                      updated_at=NOW)
    await world.store.add(held)
    movement = hold_movement(copy.deepcopy(world.book()), held.id, 3_000, held.day, 500_000)
    assert await world.balances.move(MERCHANT, movement, entry_for(movement, new_id("cme"), NOW))
    assert world.book().moving == {f"hold:{held.id}": f"hold:{held.id}"}
    world.now = NOW + timedelta(minutes=5)
    await world.w.resume()
    assert world.store.items[held.id].state == REQUESTED
    assert (world.book().available, world.book().withdrawing, world.book().moving) == (5_000, 5_000, {})
    assert world.book().days == {business_day(NOW): 5_000}
