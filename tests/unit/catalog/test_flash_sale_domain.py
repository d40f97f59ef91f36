"""The flash-sale rules: window states, why a take is refused, the default limit, the sort
key of listings and what the SKU's stock still has to follow of its pool."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from siyu_kit.ids import new_id
from services.catalog.domain import flash_sales as rules

T0 = datetime(2026, 6, 18, 20, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=30)


@pytest.mark.parametrize("now, state, reason", [
    (T0 - timedelta(milliseconds=1), rules.SCHEDULED, rules.NOT_STARTED),
    (T0, rules.RUNNING, rules.SOLD_OUT),
    (T1 - timedelta(milliseconds=1), rules.RUNNING, rules.SOLD_OUT),
    (T1, rules.ENDED, rules.ENDED_REASON),
])
def test_the_window_is_closed_at_the_start_and_open_at_the_end(now, state, reason):
    assert rules.state(T0, T1, now) == state
    assert rules.refusal(T0, T1, now) == reason


def test_every_refusal_has_a_message_for_the_member():
    for reason in (rules.NOT_STARTED, rules.ENDED_REASON, rules.SOLD_OUT, rules.LIMIT_REACHED):
        assert rules.MESSAGES[reason]


def test_an_unset_per_member_limit_is_the_default_of_one():
    assert rules.per_member_limit(0) == rules.DEFAULT_PER_MEMBER_LIMIT == 1
    assert rules.per_member_limit(3) == 3


@given(st.lists(st.integers(0, 10**13 - 1), min_size=2, max_size=30))
def test_sort_keys_order_like_start_then_id(starts_ms):
    sales = [(ms, new_id("fls")) for ms in starts_ms]
    by_key = sorted(sales, key=lambda s: rules.sort_key(*s))
    assert by_key == sorted(sales)


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000))
def test_catch_up_is_what_the_stock_has_not_seen(pool_sold, pool_returned, seen_sold, seen_returned):
    if pool_sold < seen_sold or pool_returned < seen_returned:
        with pytest.raises(ValueError):
            rules.catch_up(pool_sold, pool_returned, seen_sold, seen_returned)
        return
    todo = rules.catch_up(pool_sold, pool_returned, seen_sold, seen_returned)
    assert (seen_sold + todo.sold, seen_returned + todo.returned) == (pool_sold, pool_returned)
    assert todo.nothing == (pool_sold == seen_sold and pool_returned == seen_returned)
