"""The stored-value use cases over in-memory ports: packages, crediting paid recharge
orders, the order service's holds, captures, releases and refunds, racing holds,
finance's recharge refunds with the order service away and back, and the reads."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st
from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from siyu_kit.events.consumer import Poison
from siyu_kit.ids import new_id

from services.member.application.stored_value import RechargePaid, StoredValue, UnknownMember
from services.member.domain.members import Member
from services.member.domain.stored_value import PackageState, ledger_problems
from services.member.entrypoint.stored_value_wiring import recharge_paid
from tests.fakes.member import FakeMembers, caller
from tests.fakes.stored_value import FakeBalances, FakeOrderRefunds, FakeRechargePackages

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)


class World:
    def __init__(self):
        self.packages, self.balances, self.members = FakeRechargePackages(), FakeBalances(), FakeMembers()
        self.orders = FakeOrderRefunds()
        self.sv = StoredValue(self.packages, self.balances, self.members, self.orders, lambda: NOW)
        self.merchant = new_id("mch")
        self.member = new_id("mem")

    async def add_member(self, merchant_id=None) -> str:
        member_id = new_id("mem")
        await self.members.add(Member.register(member_id, merchant_id or self.merchant, "H5", "", NOW))
        return member_id

    def service(self):
        return caller(self.merchant, service="order")

    def staff(self, role="OPERATOR", merchant_id=None):
        return caller(merchant_id or self.merchant, staff_id=new_id("stf"), roles=(role,))

    def me(self, member_id=None):
        return caller(self.merchant, channel="H5", member_id=member_id or self.member)

    async def recharge(self, principal=10_000, bonus=2_000, member_id=None, order_id=None):
        return await self.sv.on_recharge_paid(RechargePaid(self.merchant, member_id or self.member,
                                                           order_id or new_id("ord"), new_id("rcp"), principal,
                                                           bonus))

    async def book(self, member_id=None):
        return await self.balances.book(self.merchant, member_id or self.member)


@pytest.fixture
async def w():
    world = World()
    await world.members.add(Member.register(world.member, world.merchant, "H5", "", NOW))
    return world


# ---- packages ----------------------------------------------------------------------------------

async def test_a_package_is_created_once_per_key_and_offered_cheapest_first(w):
    with w.staff():
        big = await w.sv.create_package("充500送150", 50_000, 15_000, "big")
        again = await w.sv.create_package("other", 100, 0, "big")
        small = await w.sv.create_package("充100送20", 10_000, 2_000, "small")
    assert again.id == big.id and again.price == 50_000
    assert big.state == PackageState.ACTIVE
    with w.me():
        balance, offered = await w.sv.my_balance()
    assert [p.id for p in offered] == [small.id, big.id] and balance.available == 0
    with w.staff():
        await w.sv.set_package_state(small.id, "INACTIVE")
    with w.me():
        _, offered = await w.sv.my_balance()
    assert [p.id for p in offered] == [big.id]
    with w.service():
        with pytest.raises(NotFound) as error:
            await w.sv.get_package(small.id)
        assert error.value.reason == "RECHARGE_PACKAGE_NOT_FOUND"
        assert (await w.sv.get_package(big.id)).bonus == 15_000


async def test_bad_packages_are_refused_with_every_field_and_nothing_written(w):
    with w.staff():
        with pytest.raises(InvalidArgument) as error:
            await w.sv.create_package("", 99, -1, "bad key!")
    assert {v.field for v in error.value.violations} == {"name", "price", "bonus", "idempotency_key"}
    assert w.packages.items == {}


async def test_packages_need_the_roles_and_stay_within_their_merchant(w):
    with w.staff("GUIDE"):
        with pytest.raises(PermissionDenied):
            await w.sv.create_package("a", 100, 0, "k")
    with w.staff("FINANCE"):
        with pytest.raises(PermissionDenied):
            await w.sv.create_package("a", 100, 0, "k")
        assert (await w.sv.list_packages(0, ""))[0] == []
    with w.staff():
        package = await w.sv.create_package("a", 100, 0, "k")
    with w.staff(merchant_id=new_id("mch")):
        with pytest.raises(NotFound):
            await w.sv.set_package_state(package.id, "INACTIVE")
        assert (await w.sv.list_packages(0, ""))[0] == []


async def test_packages_page_newest_first_with_the_kits_cursor(w):
    with w.staff():
        made = [await w.sv.create_package(f"p{i}", 100 + i, 0, f"k{i}") for i in range(5)]
        first, token = await w.sv.list_packages(2, "")
        second, token2 = await w.sv.list_packages(2, token)
        third, token3 = await w.sv.list_packages(2, token2)
        with pytest.raises(InvalidArgument):
            await w.sv.list_packages(2, "garbage")
    assert [p.id for p in first + second + third] == [p.id for p in reversed(made)] and token3 == ""


# ---- crediting -------------------------------------------------------------------------------------

async def test_a_paid_recharge_is_credited_once(w):
    order_id = new_id("ord")
    first = await w.recharge(order_id=order_id)
    again = await w.recharge(order_id=order_id)
    assert again.id == first.id and first.id.startswith("rch_") and first.state == "CREDITED"
    book = await w.book()
    assert (book.principal, book.bonus) == (10_000, 2_000)
    assert [e.kind for _, e in w.balances.rows] == ["RECHARGE"]
    assert w.balances.recharge_index[(w.merchant, first.id)] == w.member


async def test_a_recharge_for_an_unknown_member_is_refused(w):
    with pytest.raises(UnknownMember):
        await w.recharge(member_id=new_id("mem"))
    assert w.balances.books == {}


# ---- the order service ---------------------------------------------------------------------------

async def test_hold_capture_release_and_refund_answer_replays_as_the_first(w):
    await w.recharge(10_000, 2_000)
    paid, unpaid = new_id("ord"), new_id("ord")
    with w.service():
        held, applied = await w.sv.hold(w.member, paid, 6_000)
        assert (held.principal, held.bonus, applied) == (5_000, 1_000, True)
        held, applied = await w.sv.hold(w.member, paid, 9_999)
        assert (held.amount, applied) == (6_000, False)
        assert await w.sv.capture(w.member, paid) == (6_000, True)
        assert await w.sv.capture(w.member, paid) == (6_000, False)
        with pytest.raises(FailedPrecondition) as error:
            await w.sv.hold(w.member, paid, 100)
        assert error.value.reason == "BALANCE_HOLD_ENDED"
        assert (await w.sv.hold(w.member, unpaid, 100))[0].amount == 100
        assert await w.sv.release(w.member, unpaid) == (100, True)
        assert await w.sv.release(w.member, unpaid) == (100, False)
        refund = new_id("rfd")
        part, applied = await w.sv.refund_to_balance(w.member, paid, refund, 3_000)
        assert (part.principal, part.bonus, applied) == (2_500, 500, True)
        assert await w.sv.refund_to_balance(w.member, paid, refund, 3_000) == (part, False)
        with pytest.raises(FailedPrecondition) as error:
            await w.sv.refund_to_balance(w.member, paid, new_id("rfd"), 3_001)
        assert error.value.reason == "BALANCE_REFUND_TOO_LARGE"
        with pytest.raises(FailedPrecondition) as error:
            await w.sv.capture(w.member, new_id("ord"))
        assert error.value.reason == "BALANCE_NOT_HELD"
    book = await w.book()
    assert (book.principal, book.bonus, book.held) == (7_500, 1_500, 0)
    assert ledger_problems(book, [e for _, e in w.balances.rows]) == []


async def test_a_release_before_the_hold_refuses_the_late_hold(w):
    await w.recharge()
    order_id = new_id("ord")
    with w.service():
        assert await w.sv.release(w.member, order_id) == (0, True)
        with pytest.raises(FailedPrecondition) as error:
            await w.sv.hold(w.member, order_id, 100)
    assert error.value.reason == "BALANCE_HOLD_ENDED"
    assert (await w.book()).available == 12_000


async def test_an_empty_balance_holds_nothing_and_others_members_are_not_found(w):
    with w.service():
        held, applied = await w.sv.hold(w.member, new_id("ord"), 100)
        assert (held.amount, applied) == (0, False)
        with pytest.raises(NotFound):
            await w.sv.hold(new_id("mem"), new_id("ord"), 100)
    other = await w.add_member(new_id("mch"))
    with w.service():
        with pytest.raises(NotFound):
            await w.sv.release(other, new_id("ord"))
    assert w.balances.books == {}


async def test_bad_order_calls_are_refused_with_field_violations_and_nothing_written(w):
    await w.recharge()
    before = w.balances.moves
    with w.service():
        with pytest.raises(InvalidArgument) as error:
            await w.sv.hold("mem_x", "ord_y", 0)
        assert {v.field for v in error.value.violations} == {"member_id", "order_id", "max_amount"}
        with pytest.raises(InvalidArgument) as error:
            await w.sv.refund_to_balance(w.member, new_id("ord"), "rfd_1", 0)
        assert {v.field for v in error.value.violations} == {"refund_id", "amount"}
    assert w.balances.moves == before


async def test_concurrent_holds_never_take_the_balance_below_zero(w):
    await w.recharge(7_000, 3_001)
    orders = [new_id("ord") for _ in range(40)]
    with w.service():
        results = await asyncio.gather(*(w.sv.hold(w.member, o, 700) for o in orders))
    held = sum(part.amount for part, _ in results)
    book = await w.book()
    assert held == 10_001 and book.available == 0 and book.held == 10_001
    assert book.principal >= 0 and book.bonus >= 0
    assert book.held_principal == 7_000 and book.held_bonus == 3_001
    assert ledger_problems(book, [e for _, e in w.balances.rows]) == []


async def test_a_movement_that_keeps_losing_its_guard_is_aborted(w):
    await w.recharge()
    w.balances.lose_moves = 100
    with w.service():
        with pytest.raises(Conflict):
            await w.sv.hold(w.member, new_id("ord"), 100)


# ---- finance: refund a recharge -------------------------------------------------------------------

async def test_a_recharge_refund_debits_then_the_order_service_refunds_it(w):
    recharge = await w.recharge(10_000, 2_000)
    with w.staff("FINANCE"):
        done, balance = await w.sv.refund_recharge(recharge.id, "member asked", "key1")
    assert done.state == "REFUNDED" and done.refund_id.startswith("rfd_")
    assert (balance.principal, balance.bonus) == (0, 0)
    refund_id, order_id, amount, reason = w.orders.refunds[recharge.id]
    assert (order_id, amount, reason) == (recharge.order_id, 10_000, "member asked")
    with w.staff("FINANCE"):
        again, _ = await w.sv.refund_recharge(recharge.id, "member asked", "key1")
        assert again.state == "REFUNDED" and again.refund_id == refund_id
        with pytest.raises(FailedPrecondition) as error:
            await w.sv.refund_recharge(recharge.id, "twice", "key2")
        assert error.value.reason == "RECHARGE_ALREADY_REFUNDED"
    assert [e.kind for _, e in w.balances.rows] == ["RECHARGE", "RECHARGE_REFUND"]
    assert w.orders.calls == 1  # a finished refund is not asked for again


async def test_a_recharge_refund_stays_refunding_until_the_order_service_confirms(w):
    recharge = await w.recharge()
    w.orders.failures = 2
    with w.staff("FINANCE"):
        done, balance = await w.sv.refund_recharge(recharge.id, "asked", "k")
    assert done.state == "REFUNDING" and balance.available == 0
    assert await w.sv.retry_refunds() == 0  # still away
    w.balances.leases.clear()  # the lease ran out
    assert await w.sv.retry_refunds() == 1
    assert (await w.book()).recharges[recharge.id].state == "REFUNDED"
    w.balances.leases.clear()
    assert await w.sv.retry_refunds() == 0 and w.orders.calls == 3


async def test_a_partly_spent_recharge_is_not_refunded_and_nothing_changes(w):
    recharge = await w.recharge(10_000, 2_000)
    with w.service():
        await w.sv.hold(w.member, new_id("ord"), 1)
    before = w.balances.moves
    with w.staff("FINANCE"):
        with pytest.raises(FailedPrecondition) as error:
            await w.sv.refund_recharge(recharge.id, "asked", "k")
    assert error.value.reason == "BALANCE_RECHARGE_SPENT"
    assert w.balances.moves == before and w.orders.calls == 0


async def test_recharge_refunds_need_finance_and_stay_within_the_merchant(w):
    recharge = await w.recharge()
    for role in ("OPERATOR", "GUIDE"):
        with w.staff(role):
            with pytest.raises(PermissionDenied):
                await w.sv.refund_recharge(recharge.id, "asked", "k")
    with w.staff("FINANCE", merchant_id=new_id("mch")):
        with pytest.raises(NotFound) as error:
            await w.sv.refund_recharge(recharge.id, "asked", "k")
    assert error.value.reason == "RECHARGE_NOT_FOUND"
    with w.staff("FINANCE"):
        with pytest.raises(InvalidArgument) as error:
            await w.sv.refund_recharge("rch_bad", " ", "")
    assert {v.field for v in error.value.violations} == {"recharge_id", "reason", "idempotency_key"}
    assert (await w.book()).recharges[recharge.id].state == "CREDITED"


# ---- reads -----------------------------------------------------------------------------------------

async def test_history_pages_newest_first_and_staff_see_balance_and_recharges(w):
    first = await w.recharge(1_000, 0)
    second = await w.recharge(2_000, 500)
    order_id = new_id("ord")
    with w.service():
        await w.sv.hold(w.member, order_id, 300)
        await w.sv.capture(w.member, order_id)
    with w.me():
        page, token = await w.sv.my_history(2, "")
        rest, end = await w.sv.my_history(2, token)
    assert [e.kind for e in page + rest] == ["ORDER_PAYMENT", "RECHARGE", "RECHARGE"] and end == ""
    assert sum(e.principal + e.bonus for e in page + rest) == 3_500 - 300
    with w.staff("FINANCE"):
        balance, recharges = await w.sv.member_balance(w.member)
        staff_page, _ = await w.sv.member_history(w.member, 0, "")
        with pytest.raises(InvalidArgument):
            await w.sv.member_history(w.member, 0, token + "x")
    assert balance.available == 3_200 and [r.id for r in recharges] == [second.id, first.id]
    assert len(staff_page) == 3
    with w.staff("FINANCE", merchant_id=new_id("mch")):
        with pytest.raises(NotFound):
            await w.sv.member_balance(w.member)
    with w.staff("GUIDE"):
        with pytest.raises(PermissionDenied):
            await w.sv.member_balance(w.member)


async def test_three_copies_of_the_refund_job_ask_the_order_service_once_per_recharge(w):
    first, second = await w.recharge(1_000, 0), await w.recharge(2_000, 100)
    w.orders.failures = 2
    with w.staff("FINANCE"):
        await w.sv.refund_recharge(first.id, "asked", "k1")
        await w.sv.refund_recharge(second.id, "asked", "k2")
    assert w.orders.calls == 2 and not w.orders.refunds
    w.balances.leases.clear()
    finished = await asyncio.gather(w.sv.retry_refunds(), w.sv.retry_refunds(), w.sv.retry_refunds())
    assert sum(finished) == 2 and w.orders.calls == 4  # one copy took the account; the others found it leased
    book = await w.book()
    assert {r.state for r in book.recharges.values()} == {"REFUNDED"}
    assert (book.principal, book.bonus) == (0, 0)


def test_an_order_paid_event_becomes_a_recharge_or_is_poison():
    envelope = common_pb2.EventEnvelope(merchant_id="mch_1", event_id="evt_1")
    paid = order_events.OrderPaid(order=order_pb2.Order(order_id="ord_1", member_id="mem_1"),
                                  recharge=order_events.RechargeDetail(package_id="rcp_1", principal=10_000,
                                                                       bonus=2_000))
    got = recharge_paid(envelope, paid)
    assert (got.merchant_id, got.member_id, got.order_id, got.principal, got.bonus) == \
        ("mch_1", "mem_1", "ord_1", 10_000, 2_000)
    for bad in (order_events.RechargeDetail(principal=-1, bonus=5), order_events.RechargeDetail()):
        paid.recharge.CopyFrom(bad)
        with pytest.raises(Poison):
            recharge_paid(envelope, paid)
    with pytest.raises(Poison):
        recharge_paid(common_pb2.EventEnvelope(), paid)


RACE_OPS = st.lists(st.one_of(
    st.tuples(st.just("recharge"), st.integers(1, 20_000), st.integers(0, 5_000)),
    st.tuples(st.just("hold"), st.integers(0, 3), st.integers(1, 20_000)),
    st.tuples(st.just("capture"), st.integers(0, 3)),
    st.tuples(st.just("release"), st.integers(0, 3)),
    st.tuples(st.just("refund"), st.integers(0, 3), st.integers(1, 10_000)),
), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(RACE_OPS)
def test_any_movements_racing_keep_the_ledger_equal_to_the_balance_and_refunds_exact(ops):
    async def run() -> None:
        w = World()
        await w.members.add(Member.register(w.member, w.merchant, "H5", "", NOW))
        orders = [new_id("ord") for _ in range(4)]

        async def one(op) -> None:
            try:
                if op[0] == "recharge":
                    await w.recharge(op[1], op[2])
                    return
                with w.service():
                    if op[0] == "hold":
                        await w.sv.hold(w.member, orders[op[1]], op[2])
                    elif op[0] == "capture":
                        await w.sv.capture(w.member, orders[op[1]])
                    elif op[0] == "release":
                        await w.sv.release(w.member, orders[op[1]])
                    else:
                        await w.sv.refund_to_balance(w.member, orders[op[1]], new_id("rfd"), op[2])
            except (FailedPrecondition, Conflict):
                pass  # refused or outraced: nothing of it stood

        await asyncio.gather(*(one(op) for op in ops))
        book = await w.book()
        if book is None:
            return
        assert ledger_problems(book, [e for _, e in w.balances.rows]) == []
        with w.service():
            for order_id, spend in list(book.orders.items()):
                if spend.spent > spend.refunded:
                    await w.sv.refund_to_balance(w.member, order_id, new_id("rfd"), spend.spent - spend.refunded)
        book = await w.book()
        for spend in book.orders.values():
            assert (spend.refunded_principal, spend.refunded_bonus) == (spend.spent_principal, spend.spent_bonus)
        assert ledger_problems(book, [e for _, e in w.balances.rows]) == []

    asyncio.run(run())
