"""Commission records and balances from order events over in-memory ports: the lifecycle,
lateness, duplicates and any order of events, clawback into debt and its repayment, the
reads, and a property test over any sequence of events."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import event as event_note, given, settings, strategies as st
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2

from services.member.adapters.commission_messages import NotCommission, order_commissions

from services.member.application.commission_ports import Liability
from services.member.application.commissions import CommissionLedger
from services.member.application.withdrawals import Withdrawals
from services.member.domain.commissions import (BUCKETS, FROZEN, GUIDE, LEVEL_1, LEVEL_2, PENDING, SETTLED, VOID,
                                                CommissionBook, CommissionLine, OrderCommissions, entry_for,
                                                bucket_of, hold_movement, merged, paid_movement, record_movement,
                                                release)
from siyu_kit.errors import InvalidArgument, PermissionDenied, Unauthenticated
from siyu_kit.ids import new_id
from siyu_kit.protos import money, timestamp
from tests.fakes.callers import caller
from services.member.domain.withdrawals import business_day
from tests.fakes.commissions import (FakeCommissions, FakePayouts, FakeStoredValueTotals, FakeWithdrawals,
                                    FakeWithdrawalSettings)

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
MERCHANT = new_id("mch")
D1, D2, G = new_id("mem"), new_id("mem"), new_id("stf")
BUYER = new_id("mem")


def event(order_id: str, stage: str, voided: tuple[int, ...] = (0, 0, 0), base: int = 9999,
          rates=(1000, 500, 200)) -> OrderCommissions:
    lines = []
    for (level, who, rate), v in zip(((LEVEL_1, D1, rates[0]), (LEVEL_2, D2, rates[1]), (GUIDE, G, rates[2])),
                                     voided):
        amount = base * rate // 10_000
        lines.append(CommissionLine("ln_1", level, who, rate, base, amount, min(v, amount)))
    return OrderCommissions(MERCHANT, order_id, BUYER, stage, tuple(lines), NOW)


def world(**kw) -> tuple[FakeCommissions, CommissionLedger]:
    store = FakeCommissions()
    return store, CommissionLedger(store, FakeStoredValueTotals(Liability(300, 50, 2)), clock=lambda: NOW)


async def balanced(store: FakeCommissions, beneficiary: str) -> CommissionBook:
    """The balance, after checking it equals the sum of its ledger entries."""
    book = await store.book(MERCHANT, beneficiary)
    entries = await store.entries(MERCHANT, beneficiary)
    sums = {k: sum(getattr(e, k) for e in entries) for k in ("available", "debt", "withdrawing", "withdrawn")}
    assert sums == {"available": book.available, "debt": book.debt, "withdrawing": book.withdrawing,
                    "withdrawn": book.withdrawn}
    assert book.available >= 0 and book.debt >= 0 and not (book.available > 0 and book.debt > 0)
    return book


def test_a_record_only_moves_forward_and_voided_only_grows():
    paid = event("ord_1", PENDING)
    record = merged(None, paid, paid.lines[0])
    assert (record.stage, record.amount, record.voided, record.state) == (PENDING, 999, 0, PENDING)
    settled = merged(record, event("ord_1", SETTLED, (100, 0, 0)), event("ord_1", SETTLED, (100, 0, 0)).lines[0])
    assert (settled.stage, settled.voided) == (SETTLED, 100)
    late = event("ord_1", FROZEN, (50, 0, 0))
    assert merged(settled, late, late.lines[0]) is None
    full = event("ord_1", FROZEN, (999, 0, 0))
    assert merged(record, full, full.lines[0]).state == VOID


async def test_paid_completed_settled_credits_each_level_once():
    store, ledger = world()
    for stage in (PENDING, FROZEN, SETTLED, SETTLED, PENDING):
        await ledger.on_order(event("ord_a", stage))
    assert {r.state for r in store.records_by_id.values()} == {SETTLED}
    assert (await balanced(store, D1)).available == 999
    assert (await balanced(store, D2)).available == 499
    assert (await balanced(store, G)).available == 199
    assert len(store.ledger) == 3


async def test_refunded_before_paid_creates_the_record_from_the_refund():
    store, ledger = world()
    await ledger.on_order(event("ord_b", PENDING, (500, 250, 0)))
    await ledger.on_order(event("ord_b", PENDING))  # the late paid event changes nothing
    r1 = store.records_by_id["ord_b:ln_1:LEVEL_1"]
    assert (r1.voided, r1.state) == (500, PENDING)
    await ledger.on_order(event("ord_b", SETTLED, (500, 250, 0)))
    assert (await balanced(store, D1)).available == 499


async def test_a_void_after_settlement_claws_back_then_becomes_debt_paid_by_the_next_credit():
    store, ledger = world()
    await ledger.on_order(event("ord_c", SETTLED))
    # D1 withdraws most of it: only 99 stay available.
    book = store.books[(MERCHANT, D1)]
    book.available, book.withdrawn = 99, 900
    await ledger.on_order(event("ord_c", SETTLED, (999, 0, 0)))
    book = store.books[(MERCHANT, D1)]
    assert (book.available, book.debt) == (0, 900)
    assert store.records_by_id["ord_c:ln_1:LEVEL_1"].state == VOID
    await ledger.on_order(event("ord_d", SETTLED, base=20000))  # 2000 more for D1
    book = store.books[(MERCHANT, D1)]
    assert (book.available, book.debt) == (1100, 0)
    kinds = sorted(e.kind for e in store.ledger.values() if e.beneficiary_id == D1)
    assert kinds == ["CLAWBACK", "SETTLE", "SETTLE"]


async def test_partial_voids_claw_back_each_step_once():
    store, ledger = world()
    await ledger.on_order(event("ord_e", SETTLED))
    for v in (100, 100, 300, 200, 300):
        await ledger.on_order(event("ord_e", SETTLED, (v, v // 2, 0)))
    assert (await balanced(store, D1)).available == 999 - 300
    assert (await balanced(store, D2)).available == 499 - 150


async def test_concurrent_deliveries_of_one_order_apply_once():
    store, ledger = world()
    await asyncio.gather(*(ledger.on_order(event("ord_f", s, v)) for s, v in (
        (SETTLED, (10, 0, 0)), (SETTLED, (20, 0, 0)), (PENDING, (0, 0, 0)), (SETTLED, (20, 0, 0)),
        (FROZEN, (5, 0, 0)))))
    await ledger.on_order(event("ord_f", SETTLED, (20, 0, 0)))
    assert (await balanced(store, D1)).available == 999 - 20


async def test_a_record_write_lost_to_another_writer_is_decided_again():
    store, ledger = world()
    store.lost_writes = 2
    await ledger.on_order(event("ord_g", FROZEN))
    assert store.records_by_id["ord_g:ln_1:LEVEL_1"].stage == FROZEN


async def test_reads_of_the_member_and_of_finance():
    store, ledger = world()
    h, i, j, k = (new_id("ord") for _ in range(4))
    await ledger.on_order(event(h, PENDING))
    await ledger.on_order(event(i, FROZEN, (100, 0, 0)))
    await ledger.on_order(event(j, SETTLED))
    await ledger.on_order(event(k, PENDING, (999, 499, 199)))
    with caller(MERCHANT, member_id=D1, channel="H5"):
        totals, book = await ledger.my_summary()
        assert (totals.pending, totals.frozen, totals.settled, totals.void) == (999, 899, 999, 1099)
        assert book.available == 999
        page, token = await ledger.my_records("", 2, "")
        assert len(page) == 2 and token
        rest, token2 = await ledger.my_records("", 2, token)
        assert len(rest) == 2 and not token2
        assert {r.order_id for r in page + rest} == {h, i, j, k}
        voided, _ = await ledger.my_records(VOID, 0, "")
        assert [r.order_id for r in voided] == [k]
        with pytest.raises(InvalidArgument):
            await ledger.my_records(VOID, 0, token)  # a token of other filters
        with pytest.raises(InvalidArgument):
            await ledger.my_records("NOPE", 0, "")
    with caller(MERCHANT, staff_id=new_id("stf"), roles=("FINANCE",)):
        balances, states, payees, token = await ledger.payable(2, "")
        assert (balances.available, states.frozen, states.pending) == (999 + 499 + 199, 899 + 499 + 199,
                                                                       999 + 499 + 199)
        assert len(payees) == 2 and token
        more, _ = (await ledger.payable(2, token))[2:]
        assert {b.beneficiary_id for b in payees + more} == {D1, D2, G}
        assert (await ledger.stored_value_liability()).principal == 300
    with caller(MERCHANT, staff_id=new_id("stf"), roles=("OPERATOR",)):
        with pytest.raises(PermissionDenied):
            await ledger.payable(0, "")
        with pytest.raises(PermissionDenied):
            await ledger.stored_value_liability()
    with caller(MERCHANT, channel="H5"):
        with pytest.raises(Unauthenticated):
            await ledger.my_summary()


def test_the_balance_splits_a_clawback_between_available_and_debt():
    paid = event("ord_x", SETTLED)
    record = merged(None, paid, paid.lines[0])
    book = CommissionBook(MERCHANT, D1, available=0, debt=50)
    m = record_movement(book, record)
    assert (m.available, m.debt, m.exact_debt) == (949, -50, 50)


# ---- the property: any events, in any order, any number of times ------------------------------

STAGES = st.sampled_from([PENDING, FROZEN, SETTLED])


@st.composite
def histories(draw):
    """For a few orders: each line's paid amount, and the refunds that happen (cumulative)."""
    orders = []
    for i in range(draw(st.integers(1, 3))):
        base = draw(st.integers(0, 50_000))
        refunds = sorted(draw(st.lists(st.integers(0, base), max_size=3)))
        orders.append((f"ord_{i}", base, refunds))
    return orders


@settings(max_examples=120, deadline=None)
@given(histories(), st.data())
def test_any_sequence_of_events_balances_to_the_fen(orders, data):
    async def run():
        store, ledger = world()
        events = []
        truth: dict[str, tuple[str, int]] = {}
        for order_id, base, refunds in orders:
            rates = (1000, 500, 300)
            amounts = [base * r // 10_000 for r in rates]

            def voids(refunded):
                return tuple(a if refunded == base else a * refunded // base if base else 0 for a in amounts)

            story = [(PENDING, 0)] + [(PENDING, r) for r in refunds[:1]] + [(FROZEN, refunds[0] if refunds else 0)]
            story += [(SETTLED, r) for r in refunds] or [(SETTLED, 0)]
            for stage, refunded in story:
                events.append(event(order_id, stage, voids(refunded), base=base, rates=rates))
            truth[order_id] = (SETTLED, voids(max([0] + refunds)))
        shuffled = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=4))))
        # Between events, D1 withdraws what is available now and then (held, some paid out),
        # so later voids meet a balance that no longer holds the commission: debt.
        withdraw_after = data.draw(st.sets(st.integers(0, max(0, len(shuffled) - 1)), max_size=3))
        for i, e in enumerate(shuffled):
            await ledger.on_order(e)
            if i in withdraw_after:
                book = await store.book(MERCHANT, D1)
                if book.available > 0:
                    wid = new_id("wdr")
                    held = hold_movement(book, wid, book.available, "2026-03-01", 10**12)
                    assert await store.move(MERCHANT, held, entry_for(held, new_id("cme"), NOW))
                    if data.draw(st.booleans()):
                        paid = paid_movement(await store.book(MERCHANT, D1), wid, held.withdrawing)
                        assert await store.move(MERCHANT, paid, entry_for(paid, new_id("cme"), NOW))
        # Nothing beyond the truth: the final state is settled with the largest void.
        for order_id, base, _ in orders:
            for level, who, rate in ((LEVEL_1, D1, 1000), (LEVEL_2, D2, 500), (GUIDE, G, 300)):
                r = store.records_by_id.get(f"{order_id}:ln_1:{level}")
                assert r is not None and r.amount <= base * rate // 10_000
                assert r.stage == SETTLED
                assert r.voided == truth[order_id][1][[LEVEL_1, LEVEL_2, GUIDE].index(level)]
        for who in (D1, D2, G):
            book = await balanced(store, who)
            owed = sum(r.net for r in store.records_by_id.values() if r.beneficiary_id == who)
            assert book.available + book.withdrawing + book.withdrawn - book.debt == owed
            event_note("debt" if book.debt else "no debt")
    asyncio.run(run())


# ---- the order events, read as commissions ------------------------------------------------------

def _order(state, settled=False, **commission):
    c = {"line_id": "oln_1", "level": common_pb2.COMMISSION_LEVEL_2, "beneficiary_id": D2, "rate_bp": 500,
         "base": money(2_000), "amount": money(100), "voided": money(40), **commission}
    order = order_pb2.Order(order_id=new_id("ord"), member_id=BUYER, state=state,
                            commissions=[order_pb2.OrderCommission(**c)])
    if settled:
        order.settled_at.CopyFrom(timestamp(NOW))
    return order


def test_an_order_event_is_read_as_its_commissions_and_stage():
    at = Timestamp(seconds=1_700_000_000)
    got = order_commissions(MERCHANT, _order(order_pb2.ORDER_STATE_SHIPPED), at)
    assert got.stage == PENDING and got.lines[0].level == LEVEL_2 and got.lines[0].voided == 40
    assert order_commissions(MERCHANT, _order(order_pb2.ORDER_STATE_COMPLETED), at).stage == FROZEN
    assert order_commissions(MERCHANT, _order(order_pb2.ORDER_STATE_COMPLETED, settled=True), at).stage == SETTLED
    assert order_commissions(MERCHANT, _order(order_pb2.ORDER_STATE_COMPLETED), at, settled=True).stage == SETTLED
    # A paid order cancelled because its units were gone: its records end VOID (the order voids them all).
    assert order_commissions(MERCHANT, _order(order_pb2.ORDER_STATE_CANCELLED), at).stage == PENDING
    assert order_commissions(MERCHANT, _order(order_pb2.ORDER_STATE_PENDING_PAYMENT), at) is None
    assert order_commissions(MERCHANT, order_pb2.Order(order_id=new_id("ord")), at) is None  # no commissions
    with pytest.raises(NotCommission):
        order_commissions(MERCHANT, _order(order_pb2.ORDER_STATE_PAID, beneficiary_id=""), at)
    with pytest.raises(NotCommission):
        order_commissions("", _order(order_pb2.ORDER_STATE_PAID), at)


async def test_a_record_read_before_a_later_void_never_gives_the_clawback_back():
    store, ledger = world()
    await ledger.on_order(event("ord_s", SETTLED))
    stale = store.records_by_id["ord_s:ln_1:LEVEL_1"]
    await ledger.on_order(event("ord_s", SETTLED, (600, 0, 0)))
    await ledger.square(stale)  # a slower delivery of the settled event squares with what it read
    assert (await balanced(store, D1)).available == 399


# ---- a bounded book: what a record credited lives on the record ----------------------------------

async def test_a_crash_after_the_balance_moved_is_finished_by_a_replay_or_the_job():
    store, ledger = world()
    store.crash_after_move = 1  # D1's credit moved the balance, then the process died
    await ledger.on_order(event("ord_h", SETTLED))
    r1 = store.records_by_id["ord_h:ln_1:LEVEL_1"]
    assert store.books[(MERCHANT, D1)].moving == {r1.id: f"settle:{r1.id}"} and r1.credited is None
    await ledger.on_order(event("ord_h", SETTLED))  # the redelivery finishes it and credits nothing more
    assert r1.credited == 999 and (await balanced(store, D1)).available == 999
    assert store.books[(MERCHANT, D1)].moving == {}
    store.crash_after_move = 1
    await ledger.on_order(event("ord_h", SETTLED, (300, 0, 0)))  # the clawback's turn to be left under way
    assert (await ledger.repair()) == 1
    assert store.records_by_id[r1.id].credited == 699 and (await balanced(store, D1)).available == 699
    await ledger.on_order(event("ord_h", SETTLED, (300, 0, 0)))
    assert (await balanced(store, D1)).available == 699 and len(store.ledger) == 4


async def test_a_decision_made_before_another_movement_of_the_record_finished_loses():
    store, ledger = world()
    await ledger.on_order(event("ord_i", FROZEN))
    book = await store.book(MERCHANT, D1)  # a slow consumer reads the book ...
    await ledger.on_order(event("ord_i", SETTLED))  # ... a faster one credits the record and releases it ...
    stale = store.records_by_id["ord_i:ln_1:LEVEL_1"]
    stale = stale.__class__(**{**stale.__dict__, "credited": None})  # ... and the slow one read it before
    movement = record_movement(book, stale)
    assert movement is not None and movement.kind == "SETTLE"
    assert not await store.move(MERCHANT, movement, entry_for(movement, new_id("cme"), NOW))
    assert (await balanced(store, D1)).available == 999


async def test_the_book_stays_bounded_after_200_settled_orders_and_50_withdrawals():
    store, ledger = world()
    for i in range(200):
        await ledger.on_order(event(f"ord_{i:03d}", SETTLED))
    now = [NOW]
    withdrawals = Withdrawals(FakeWithdrawals(), FakeWithdrawalSettings(), store, FakePayouts(), clock=lambda: now[0])
    with caller(MERCHANT, member_id=D1, channel="MINI_PROGRAM"):
        await asyncio.gather(*(withdrawals.request(1_000, f"k{i}") for i in range(25)))
    for i in range(25):
        now[0] = NOW + timedelta(days=1 + i // 10)
        with caller(MERCHANT, member_id=D1, channel="MINI_PROGRAM"):
            w, _ = await withdrawals.request(1_000, f"later{i}")
        with caller(MERCHANT, staff_id=new_id("stf"), roles=("FINANCE",)):
            await (withdrawals.approve(w.id) if i % 2 else withdrawals.reject(w.id, "no"))
    book = await balanced(store, D1)
    assert (book.available, book.withdrawing, book.withdrawn) == (200 * 999 - 37 * 1_000, 25 * 1_000, 12 * 1_000)
    assert book.moving == {} and list(book.days) == [business_day(now[0])]
    assert len(book.cleared) <= BUCKETS and sum(book.cleared.values()) == 200 + 25 + 2 * 25
    assert all(r.credited == r.net for r in store.records_by_id.values())


def test_a_late_release_never_ends_the_next_movement_of_the_record():
    book = CommissionBook(MERCHANT, D1, moving={"ord_j:ln_1:LEVEL_1": "void:ord_j:ln_1:LEVEL_1:300"})
    assert not release(book, "ord_j:ln_1:LEVEL_1", "settle:ord_j:ln_1:LEVEL_1")
    assert book.moving and book.cleared == {}
    assert release(book, "ord_j:ln_1:LEVEL_1", "void:ord_j:ln_1:LEVEL_1:300")
    assert book.moving == {} and book.cleared == {bucket_of("ord_j:ln_1:LEVEL_1"): 1}


# ---- the community leader's level ----------------------------------------------------------------

async def test_a_community_leaders_commission_runs_the_same_lifecycle_to_a_withdrawable_balance():
    """The leader is a member but not a distributor: the record is read from the order event
    at its level, pending at paid, voided by a refund, credited once at settlement."""
    from services.member.adapters.commission_messages import LEVEL_BACK
    from services.member.domain.commissions import COMMUNITY_LEADER
    leader = new_id("mem")
    at = Timestamp(seconds=1_700_000_000)
    read = order_commissions(MERCHANT, _order(order_pb2.ORDER_STATE_PAID,
                                              level=common_pb2.COMMISSION_LEVEL_COMMUNITY_LEADER,
                                              beneficiary_id=leader, voided=money(0)), at)
    assert read.lines[0].level == COMMUNITY_LEADER and read.stage == PENDING
    assert LEVEL_BACK[COMMUNITY_LEADER] == common_pb2.COMMISSION_LEVEL_COMMUNITY_LEADER

    def leader_event(stage: str, voided: int = 0) -> OrderCommissions:
        return OrderCommissions(MERCHANT, "ord_cl", BUYER, stage,
                                (CommissionLine("ln_1", COMMUNITY_LEADER, leader, 1000, 5000, 500, voided),), NOW)

    store, ledger = world()
    await ledger.on_order(leader_event(PENDING))
    record = store.records_by_id["ord_cl:ln_1:COMMUNITY_LEADER"]
    assert (record.state, record.beneficiary_id) == (PENDING, leader)
    assert (await balanced(store, leader)).available == 0
    await ledger.on_order(leader_event(PENDING, voided=100))  # a partial refund
    await ledger.on_order(leader_event(FROZEN, voided=100))
    await ledger.on_order(leader_event(SETTLED, voided=100))
    await ledger.on_order(leader_event(SETTLED, voided=100))  # redelivered
    assert (await balanced(store, leader)).available == 400
