"""The balance account's rules: proportional splits, holds, captures, releases, refunds
that return principal and bonus exactly, recharge refunds, and the ledger always equal to
the balance (property-tested over any sequence of movements)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit.errors import Violations
from siyu_kit.ids import new_id

from services.member.domain.stored_value import (CREDITED, REFUNDING, BalanceBook, PackageState, Part,
                                                 RechargePackage, Refused, check_package, entry_for,
                                                 ledger_problems, split)

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
ORDERS = [new_id("ord") for _ in range(4)]


def _move(book: BalanceBook, movement, entries: list) -> bool:
    if movement is None or not book.admits(movement):
        return False
    book.apply(movement)
    entry = entry_for(movement, new_id("bal"), NOW)
    if entry is not None:
        entries.append(entry)
    return True


def test_split_is_proportional_by_largest_remainder_and_adds_up():
    assert split(100, 100, 20) == (83, 17)  # 83.33 / 16.67
    assert split(1, 1, 1) == (1, 0)  # a tie goes to the principal
    assert split(3, 1, 1) == (2, 1)
    assert split(5, 0, 20) == (0, 5)
    assert split(0, 10, 10) == (0, 0)
    assert split(7, 0, 0) == (0, 0)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_split_never_takes_more_of_a_side_than_it_holds(principal, bonus, amount):
    amount = min(amount, principal + bonus)
    p, b = split(amount, principal, bonus)
    assert p + b == amount or principal + bonus == 0
    assert 0 <= p <= principal and 0 <= b <= bonus


def test_hold_takes_in_proportion_capture_spends_release_returns():
    book, entries = BalanceBook("mch", "mem"), []
    assert _move(book, book.credit("ord_r", "rch_1", "rcp_1", 10_000, 2_000, 0), entries)
    hold = book.hold(ORDERS[0], 6_000)
    assert hold.outcome == Part(5_000, 1_000)
    assert _move(book, hold, entries)
    assert (book.principal, book.bonus, book.held) == (5_000, 1_000, 6_000)
    assert _move(book, book.capture(ORDERS[0]), entries)
    assert (book.principal, book.bonus, book.held, book.total) == (5_000, 1_000, 0, 6_000)
    assert _move(book, book.hold(ORDERS[1], 100_000), entries)  # at most what is available
    assert book.holds[ORDERS[1]] == Part(5_000, 1_000) and book.available == 0
    assert _move(book, book.release(ORDERS[1]), entries)
    assert (book.principal, book.bonus, book.held) == (5_000, 1_000, 0)
    assert ledger_problems(book, entries) == []


def test_an_empty_balance_holds_nothing():
    assert BalanceBook("mch", "mem").hold(ORDERS[0], 100) is None


def test_a_release_of_an_order_holding_nothing_refuses_a_later_hold():
    book, entries = BalanceBook("mch", "mem"), []
    _move(book, book.credit("ord_r", "rch_1", "rcp_1", 1_000, 0, 0), entries)
    marker = book.release(ORDERS[0])
    assert marker.no_hold and _move(book, marker, entries)
    with pytest.raises(Refused) as refused:
        book.hold(ORDERS[0], 100)
    assert refused.value.reason == "BALANCE_HOLD_ENDED"


def test_a_hold_and_a_release_marker_racing_cannot_both_stand():
    book, entries = BalanceBook("mch", "mem"), []
    _move(book, book.credit("ord_r", "rch_1", "rcp_1", 1_000, 0, 0), entries)
    hold, marker = book.hold(ORDERS[0], 100), book.release(ORDERS[0])  # both decided on the same read
    assert _move(book, hold, entries)
    assert not book.admits(marker)  # the marker needs the order to hold nothing


def test_capture_needs_a_hold_and_a_captured_order_cannot_hold_again():
    book, entries = BalanceBook("mch", "mem"), []
    with pytest.raises(Refused) as refused:
        book.capture(ORDERS[0])
    assert refused.value.reason == "BALANCE_NOT_HELD"
    _move(book, book.credit("ord_r", "rch_1", "rcp_1", 1_000, 0, 0), entries)
    _move(book, book.hold(ORDERS[0], 100), entries)
    _move(book, book.capture(ORDERS[0]), entries)
    with pytest.raises(Refused) as refused:
        book.hold(ORDERS[0], 100)
    assert refused.value.reason == "BALANCE_HOLD_ENDED"
    assert book.release(ORDERS[0]) is None  # spent: nothing to release


def test_refunds_return_principal_and_bonus_exactly_what_the_order_spent():
    book, entries = BalanceBook("mch", "mem"), []
    _move(book, book.credit("ord_r", "rch_1", "rcp_1", 10_000, 2_000, 0), entries)
    _move(book, book.hold(ORDERS[0], 1_001), entries)
    spent = book.holds[ORDERS[0]]
    _move(book, book.capture(ORDERS[0]), entries)
    back = Part()
    for amount in (333, 333, 335):
        m = book.refund(ORDERS[0], new_id("rfd"), amount)
        assert _move(book, m, entries)
        back = Part(back.principal + m.principal, back.bonus + m.bonus)
    assert back == spent
    with pytest.raises(Refused) as refused:
        book.refund(ORDERS[0], new_id("rfd"), 1)
    assert refused.value.reason == "BALANCE_REFUND_TOO_LARGE"
    with pytest.raises(Refused):
        book.refund(ORDERS[1], new_id("rfd"), 1)  # spent nothing
    assert ledger_problems(book, entries) == []


def test_two_refunds_decided_on_the_same_read_cannot_both_stand():
    book, entries = BalanceBook("mch", "mem"), []
    _move(book, book.credit("ord_r", "rch_1", "rcp_1", 1_000, 1_000, 0), entries)
    _move(book, book.hold(ORDERS[0], 1_000), entries)
    _move(book, book.capture(ORDERS[0]), entries)
    first, second = book.refund(ORDERS[0], new_id("rfd"), 600), book.refund(ORDERS[0], new_id("rfd"), 600)
    assert _move(book, first, entries)
    assert not book.admits(second)


def test_a_recharge_refund_takes_its_principal_and_bonus_unless_spent():
    book, entries = BalanceBook("mch", "mem"), []
    _move(book, book.credit("ord_r", "rch_1", "rcp_1", 10_000, 2_000, 0), entries)
    _move(book, book.hold(ORDERS[0], 1), entries)
    with pytest.raises(Refused) as refused:
        book.refund_recharge("rch_1", "k", "asked", 0)
    assert refused.value.reason == "BALANCE_RECHARGE_SPENT"
    _move(book, book.release(ORDERS[0]), entries)
    m = book.refund_recharge("rch_1", "k", "asked", 5)
    assert _move(book, m, entries)
    assert (book.principal, book.bonus) == (0, 0)
    assert book.recharges["rch_1"].state == REFUNDING and book.recharges["rch_1"].refund_key == "k"
    with pytest.raises(Refused) as refused:
        book.refund_recharge("rch_1", "k2", "again", 6)
    assert refused.value.reason == "RECHARGE_ALREADY_REFUNDED"
    with pytest.raises(Refused) as refused:
        book.refund_recharge("rch_2", "k", "none", 6)
    assert refused.value.reason == "RECHARGE_NOT_FOUND"
    done = book.recharge_refunded("rch_1", "rfd_x")
    assert _move(book, done, entries)
    assert book.recharges["rch_1"].state == "REFUNDED" and book.recharges["rch_1"].refund_id == "rfd_x"
    assert book.recharge_refunded("rch_1", "rfd_y") is None
    assert ledger_problems(book, entries) == []
    assert [e.kind for e in entries] == ["RECHARGE", "RECHARGE_REFUND"]


def test_a_recharge_refund_decided_before_a_hold_loses_to_it():
    book, entries = BalanceBook("mch", "mem"), []
    _move(book, book.credit("ord_r", "rch_1", "rcp_1", 100, 0, 0), entries)
    refund, hold = book.refund_recharge("rch_1", "k", "r", 0), book.hold(ORDERS[0], 1)
    assert _move(book, hold, entries)
    assert not book.admits(refund)
    assert book.recharges["rch_1"].state == CREDITED


ops = st.lists(st.one_of(
    st.tuples(st.just("credit"), st.integers(0, 50_000), st.integers(0, 20_000)),
    st.tuples(st.just("hold"), st.integers(0, 3), st.integers(1, 60_000)),
    st.tuples(st.just("capture"), st.integers(0, 3)),
    st.tuples(st.just("release"), st.integers(0, 3)),
    st.tuples(st.just("refund"), st.integers(0, 3), st.integers(1, 30_000)),
    st.tuples(st.just("refund_recharge"), st.integers(0, 5)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_any_sequence_keeps_the_ledger_equal_to_the_balance_and_returns_exactly_what_was_spent(sequence):
    book, entries = BalanceBook("mch", "mem"), []
    recharges: list[str] = []
    for op in sequence:
        try:
            if op[0] == "credit":
                if op[1] + op[2] == 0:
                    continue
                rch = new_id("rch")
                recharges.append(rch)
                m = book.credit(new_id("ord"), rch, "rcp_1", op[1], op[2], 0)
            elif op[0] == "hold":
                m = book.hold(ORDERS[op[1]], op[2])
            elif op[0] == "capture":
                m = book.capture(ORDERS[op[1]])
            elif op[0] == "release":
                m = book.release(ORDERS[op[1]])
            elif op[0] == "refund":
                m = book.refund(ORDERS[op[1]], new_id("rfd"), op[2])
            else:
                if op[1] >= len(recharges):
                    continue
                m = book.refund_recharge(recharges[op[1]], "k", "r", 0)
        except Refused:
            continue
        if m is not None and m.cause in book.done:
            continue  # a replay: the use case answers what the first did
        assert m is None or book.admits(m)  # decided on the account as it is: its guards hold
        _move(book, m, entries)
        assert ledger_problems(book, entries) == []
        # A replay of the same movement is refused by its cause.
        assert m is None or not book.admits(m)
    # Refunding everything left returns exactly what each order spent, principal and bonus.
    for order_id, spend in list(book.orders.items()):
        left = spend.spent - spend.refunded
        if left:
            assert _move(book, book.refund(order_id, new_id("rfd"), left), entries)
        final = book.orders[order_id]
        assert (final.refunded_principal, final.refunded_bonus) == (final.spent_principal, final.spent_bonus)
    assert ledger_problems(book, entries) == []


def test_package_rules_and_states():
    v = Violations()
    check_package(v, "", 99, -1)
    assert {f.field for f in v.items} == {"name", "price", "bonus"}
    v = Violations()
    check_package(v, "充100送20", 10_000, 2_000)
    assert not v.items
    package = RechargePackage.create(new_id("rcp"), "mch", " 充100送20 ", 10_000, 2_000, "k", NOW)
    assert package.state == PackageState.ACTIVE and package.name == "充100送20"
    assert not package.set_state(PackageState.ACTIVE, NOW)
    assert package.set_state(PackageState.INACTIVE, NOW) and package.state == PackageState.INACTIVE
    assert package.set_state(PackageState.ACTIVE, NOW)

