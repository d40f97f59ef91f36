"""Cohort retention, repeat-purchase rate and lifetime value: properties and examples."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st

from services.content.domain import cohorts
from services.content.domain.cohorts import FirstPurchase, PaidOrder

MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]

members = st.integers(min_value=0, max_value=9)
orders = st.lists(st.tuples(members, st.sampled_from(MONTHS), st.integers(0, 10_000), st.integers(0, 12_000)),
                  max_size=40)


def _world(items):
    facts = [PaidOrder(f"mem_{m}", f"o{i}", month, paid, min(refunded, paid)) for i, (m, month, paid, refunded)
             in enumerate(items)]
    first: dict[str, str] = {}
    for o in facts:
        first[o.member_id] = min(first.get(o.member_id, o.month), o.month)
    firsts = [FirstPurchase(m, month, "H5" if m[-1] in "02468" else "LIVE", "") for m, month in first.items()]
    return firsts, facts


@settings(deadline=None)
@given(orders, st.sampled_from(cohorts.GROUPINGS))
def test_groups_partition_the_members_and_rates_stay_within_bounds(items, grouping):
    firsts, facts = _world(items)
    groups = cohorts.report(firsts, facts, "2025-01", "2025-12", "2025-12", grouping)
    assert sum(g.members for g in groups) == len(firsts)
    for g in groups:
        assert sum(c.members for c in g.cohorts) == g.members
        assert 0 <= g.repeat_rate_bp <= 10_000 and 0 <= g.repeat_members <= g.members
        for c in g.cohorts:
            assert len(c.retention_bp) == cohorts.month_index("2025-12") - cohorts.month_index(c.month)
            assert all(0 <= r <= 10_000 for r in c.retention_bp)
            assert c.lifetime_value >= 0


@settings(deadline=None)
@given(orders)
def test_lifetime_value_is_the_floor_of_net_paid_per_member(items):
    firsts, facts = _world(items)
    [everyone] = cohorts.report(firsts, facts, "2025-01", "2025-12", "2025-12") or [None]
    if everyone is None:
        assert not firsts
        return
    net = sum(max(0, o.paid - o.refunded) for o in facts)
    assert everyone.lifetime_value == net // len(firsts)


@settings(deadline=None)
@given(orders)
def test_retention_in_a_month_counts_cohort_members_who_bought_in_it(items):
    firsts, facts = _world(items)
    [everyone] = cohorts.report(firsts, facts, "2025-01", "2025-12", "2025-12") or [None]
    if everyone is None:
        return
    for c in everyone.cohorts:
        size = sum(1 for f in firsts if f.month == c.month)
        for k, rate in enumerate(c.retention_bp, start=1):
            month = cohorts.month_name(cohorts.month_index(c.month) + k)
            back = {o.member_id for o in facts if o.month == month and o.purchase
                    and any(f.member_id == o.member_id and f.month == c.month for f in firsts)}
            assert rate == len(back) * 10_000 // size


def test_months_in_the_merchants_zone_and_across_years():
    assert cohorts.month_of(datetime(2025, 12, 31, 16, 0, tzinfo=timezone.utc)) == "2026-01"
    assert cohorts.month_of(datetime(2025, 12, 31, 15, 59, tzinfo=timezone.utc)) == "2025-12"
    assert cohorts.month_name(cohorts.month_index("2025-12") + 1) == "2026-01"
    assert cohorts.parse_month("2025-13") is None and cohorts.parse_month("2025-1") is None
    assert cohorts.month_start("2026-01").astimezone(timezone.utc) == datetime(2025, 12, 31, 16, tzinfo=timezone.utc)


def test_a_cohort_outside_the_window_and_orders_after_through_are_left_out():
    firsts = [FirstPurchase("mem_1", "2025-01", "H5", ""), FirstPurchase("mem_2", "2025-03", "H5", "")]
    facts = [PaidOrder("mem_1", "o1", "2025-01", 100, 0), PaidOrder("mem_1", "o2", "2025-02", 100, 0),
             PaidOrder("mem_1", "o3", "2025-05", 100, 0), PaidOrder("mem_2", "o4", "2025-03", 100, 0)]
    [g] = cohorts.report(firsts, facts, "2025-01", "2025-02", "2025-04")
    assert (g.members, g.repeat_members, g.lifetime_value) == (1, 1, 200)
    assert g.cohorts[0].retention_bp == [10_000, 0, 0]
