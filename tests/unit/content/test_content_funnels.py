"""Funnel maths and the daily bucket keys."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from services.content.domain import funnels
from services.content.domain.funnels import Counters

counts = st.integers(min_value=0, max_value=10**9)
buckets = st.lists(st.builds(Counters, counts, counts, counts, counts, counts), max_size=40)


@given(buckets)
def test_total_is_the_fieldwise_sum_of_the_buckets(items):
    result = funnels.total(items)
    for index, name in enumerate(("unique_viewers", "product_clicks", "orders", "paid_orders", "gmv")):
        assert getattr(result, name) == sum(b.as_tuple()[index] for b in items)
    assert min(result.as_tuple()) >= 0


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**7))
def test_conversion_rate_is_floor_of_paid_over_viewers_in_basis_points(paid, viewers):
    rate = Counters(unique_viewers=viewers, paid_orders=paid).conversion_rate_bp
    if viewers == 0:
        assert rate == 0
    else:
        assert rate * viewers <= paid * 10_000 < (rate + 1) * viewers


def test_conversion_rate_examples():
    assert Counters(unique_viewers=1000, paid_orders=80).conversion_rate_bp == 800  # 8%
    assert Counters(unique_viewers=3, paid_orders=1).conversion_rate_bp == 3333
    assert Counters(unique_viewers=0, paid_orders=5).conversion_rate_bp == 0


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=30))
def test_gmv_of_paid_orders_adds_up(amounts):
    result = funnels.total(funnels.order_paid(a) for a in amounts)
    assert result.gmv == sum(amounts)
    assert result.paid_orders == len(amounts)
    assert result.orders == 0


def test_order_events_move_only_their_counters():
    assert funnels.order_placed().as_increments() == {"orders": 1}
    assert funnels.order_paid(12345).as_increments() == {"paid_orders": 1, "gmv": 12345}
    assert funnels.order_paid(0).as_increments() == {"paid_orders": 1}


def test_a_negative_payable_is_refused():
    with pytest.raises(ValueError):
        funnels.order_paid(-1)


def test_business_day_in_shanghai_across_midnight_utc():
    # Shanghai is UTC+8: its day turns at 16:00 UTC.
    before = datetime(2024, 3, 31, 15, 59, 59, tzinfo=timezone.utc)
    assert funnels.business_day(before) == "2024-03-31"
    assert funnels.business_day(before + timedelta(seconds=1)) == "2024-04-01"
    # Just after midnight UTC it is already morning of the same day in Shanghai.
    assert funnels.business_day(datetime(2024, 4, 1, 0, 30, tzinfo=timezone.utc)) == "2024-04-01"
    # A naive time is UTC.
    assert funnels.business_day(datetime(2024, 12, 31, 16, 0)) == "2025-01-01"


def test_business_day_in_another_zone():
    at = datetime(2024, 3, 31, 23, 0, tzinfo=timezone.utc)
    assert funnels.business_day(at, "Europe/London") == "2024-04-01"  # BST, UTC+1
    assert funnels.business_day(at, "America/New_York") == "2024-03-31"


def test_bucket_key():
    day = funnels.business_day(datetime(2024, 3, 31, 16, 0, tzinfo=timezone.utc))
    assert funnels.bucket_key("mch_A", "persona", "per_1", day) == "mch_A:persona:per_1:2024-04-01"


def test_attribution_feeds_only_present_well_formed_ids():
    assert funnels.attributed("per_1", "cnt_2", "liv_3") == [
        ("persona", "per_1"), ("content", "cnt_2"), ("live_session", "liv_3")]
    assert funnels.attributed("", "cnt_2", "") == [("content", "cnt_2")]
    assert funnels.attributed("per:1", "x" * 65, "a.b") == []
