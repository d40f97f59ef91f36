"""The points account's rules: lots and their expiry, what an order may use, and every
movement keeping balance = the sum of the ledger, never negative, under any sequence."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dataclasses import replace

from hypothesis import given, settings, strategies as st

from services.member.domain import points_settings as rules
from services.member.domain.points_account import (NEVER_KEY, PointsBook, Refused, entry_for, ledger_problems,
                                                   lot_expired, lot_expires_at, lot_key)
from services.member.domain.points_settings import PointsSettings
from siyu_kit.errors import Violations

TZ = "Asia/Shanghai"
NOW = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)


def test_a_lot_expires_at_the_end_of_the_year_after_it_was_earned_in_the_merchants_calendar():
    assert lot_key(NOW, TZ, 1) == "e20261231"
    # 31 Dec 2024 17:00 UTC is already 1 Jan 2025 in Shanghai.
    assert lot_key(datetime(2024, 12, 31, 17, 0, tzinfo=timezone.utc), TZ, 1) == "e20261231"
    assert lot_key(NOW, TZ, 0) == "e20251231" and lot_key(NOW, TZ, -1) == NEVER_KEY
    end = lot_expires_at("e20261231", TZ)
    assert end == datetime(2026, 12, 31, 16, 0, tzinfo=timezone.utc)
    assert not lot_expired("e20261231", TZ, end - timedelta(seconds=1)) and lot_expired("e20261231", TZ, end)
    assert lot_expires_at(NEVER_KEY, TZ) is None and not lot_expired(NEVER_KEY, TZ, NOW + timedelta(days=10**5))


def test_the_most_an_order_may_use_is_half_its_payable_in_whole_steps_above_the_floor():
    s = PointsSettings()
    assert rules.max_usable(s, 10_000, 10_000) == 5_000  # ¥100 payable: at most ¥50 = 5,000 points
    assert rules.max_usable(s, 3_456, 10_000) == 3_400
    assert rules.max_usable(s, 99, 10_000) == 0 and rules.max_usable(s, 10_000, 199) == 0
    assert rules.max_usable(s, 10_000, 0) == 0
    assert rules.value_fen(s, 3_400) == 3_400
    assert rules.refusal(s, 150, 1_000, 10_000) == "POINTS_STEP"
    assert rules.refusal(s, 50, 1_000, 10_000) == "POINTS_STEP"
    assert rules.refusal(s, 6_000, 9_000, 10_000) == "POINTS_OVER_LIMIT"
    assert rules.refusal(s, 500, 400, 10_000) == "POINTS_INSUFFICIENT"
    assert rules.refusal(s, 500, 500, 10_000) == ""


@given(st.integers(0, 10**7), st.integers(0, 10**9), st.sampled_from([1, 50, 100, 200]),
       st.sampled_from([1, 100, 500]), st.integers(0, 10_000))
def test_max_usable_never_exceeds_what_is_available_the_cap_or_misses_the_step(available, payable, per_yuan,
                                                                               step, share):
    s = PointsSettings(points_per_yuan=per_yuan, step=step, min_points=step, max_share_bp=share)
    usable = rules.max_usable(s, available, payable)
    assert 0 <= usable <= available and usable % step == 0
    assert rules.value_fen(s, usable) <= payable * share // 10_000


def test_settings_that_would_be_worth_fractions_of_a_fen_are_refused():
    v = Violations()
    rules.check(v, PointsSettings(points_per_yuan=300, step=100, min_points=150))
    assert {f.field for f in v.items} == {"settings.step", "settings.min_points"}


def _book() -> PointsBook:
    return PointsBook("mch_1", "mem_1")


def test_spending_takes_the_lots_that_expire_first_and_skips_expired_ones():
    book = _book()
    book.apply(book.adjust("a", 100, "r", "stf", "e20241231", TZ, NOW))
    book.apply(book.adjust("b", 100, "r", "stf", "e20251231", TZ, NOW))
    book.apply(book.adjust("c", 100, "r", "stf", "e20261231", TZ, NOW))
    assert book.spendable(TZ, NOW) == 200  # the 2024 lot has expired
    m = book.hold("ord_1", 150, TZ, NOW)
    assert m.lots == {"e20251231": -100, "e20261231": -50}
    book.apply(m)
    back = book.release("ord_1")
    assert back.lots == {"e20251231": 100, "e20261231": 50}


def test_an_earning_pays_what_is_owed_first():
    book = _book()
    book.owed = 30
    m = book.earn("ord_1", 100, 100, "e20261231")
    assert (m.points, m.frozen, m.owed, m.gross) == (70, 70, -30, 100)


def test_a_refund_takes_back_from_the_frozen_lot_then_available_then_records_owed():
    book = _book()
    book.apply(book.earn("ord_1", 100, 100, "e20261231"))
    m = book.reverse("rfd_1", "ord_1", 40, 0, "e20261231", TZ, NOW)
    assert (m.frozen, m.available, m.owed, m.take_frozen) == (-40, 0, 0, {"ord_1": 40})
    book.apply(m)
    m = book.reverse("rfd_2", "ord_1", 100, 0, "e20261231", TZ, NOW)
    assert (m.frozen, m.available, m.owed, m.drop_frozen) == (-60, 0, 40, {"ord_1": 60})
    book.apply(m)
    assert (book.balance, book.owed, book.frozen_lots) == (0, 40, {})
    # Spent points returned pay off what is owed first.
    m = book.reverse("rfd_3", "ord_2", 0, 100, "e20261231", TZ, NOW)
    assert (m.owed, m.available, m.points) == (-40, 60, 60)


def test_removing_more_than_available_is_refused():
    book = _book()
    try:
        book.adjust("k", -1, "r", "stf", "e20261231", TZ, NOW)
        raise AssertionError("removed points that were not there")
    except Refused as refused:
        assert refused.reason == "POINTS_INSUFFICIENT"


MOVES = st.lists(st.tuples(st.sampled_from(["earn", "complete", "unfreeze", "hold", "spend", "release", "refund",
                                           "adjust", "expire"]),
                           st.integers(0, 4), st.integers(0, 500), st.integers(0, 500)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(MOVES)
def test_any_sequence_of_movements_keeps_the_ledger_and_the_account_equal_and_nothing_negative(moves):
    book = _book()
    entries = []
    keys = ["e20241231", "e20251231", "e20261231"]
    for n, (kind, order, a, b) in enumerate(moves):
        order_id = f"ord_{order}"
        try:
            if kind == "earn":
                m = book.earn(order_id, a, a, keys[a % 3]) if order_id not in book.frozen_lots else None
            elif kind == "complete":
                lot = book.frozen_lots.get(order_id)
                if lot:
                    book.frozen_lots[order_id] = replace(lot, unfreeze_ms=1)
                m = None
            elif kind == "unfreeze":
                m = book.unfreeze(order_id, 10)
            elif kind == "hold":
                m = book.hold(order_id, max(a, 1), TZ, NOW)
            elif kind == "spend":
                m = book.spend(order_id)
            elif kind == "release":
                m = book.release(order_id)
            elif kind == "refund":
                m = book.reverse(f"rfd_{n}", order_id, a, b, keys[2], TZ, NOW)
            elif kind == "adjust":
                m = book.adjust(f"k{n}", a - 250, "r", "stf", keys[b % 3], TZ, NOW)
            else:
                m = book.expire(keys[a % 3])
        except Refused:
            continue
        if m is None or not book.admits(m):
            continue
        book.apply(m)
        entries.append(entry_for(m, f"pte_{n:04d}", NOW))
        assert ledger_problems(book, entries) == []
