"""Member statistics, RFM scoring and segment rules: day buckets and the 365-day window,
scores and the eight groups at their thresholds, lapsed and first-purchase, rule
validation and evaluation; the statistics use case over in-memory ports (one application
per cause whatever the replays, refunds net of the paid day, the recompute job's version
guard and daily pass)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from services.member.application.segments import MemberStatistics, OrderFact
from services.member.domain import segments as rules
from services.member.domain.segments import Condition, MemberStats, RfmSettings, Rule
from tests.fakes.member import FakeMerchants
from tests.fakes.segments import FakeFacts, FakeMemberSide, FakeRfmSettings, FakeStats, FakeSweep

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
MS = int(NOW.timestamp() * 1000)
DAY = rules.DAY_MS


def _stats(days: dict[str, tuple[int, int]], last_days_ago: int | None = None, paid_orders: int = 0) -> MemberStats:
    s = MemberStats("mer_1", "mem_1", days={d: {"o": o, "a": a} for d, (o, a) in days.items()},
                    paid_orders=paid_orders or sum(o for o, _ in days.values()))
    if last_days_ago is not None:
        s.first_paid_ms = s.last_paid_ms = MS - last_days_ago * DAY
    return s


# ---- statistics -------------------------------------------------------------------------------
def test_the_window_is_the_365_days_ending_today():
    start = rules.window_start(NOW)
    assert start == "20250602"
    before = (NOW - timedelta(days=365)).strftime("%Y%m%d")
    s = _stats({start: (1, 100), before: (2, 900), "20260601": (1, 50)})
    assert s.window(NOW) == (2, 150)
    assert s.expired_days(NOW) == [before]


def test_a_window_netted_below_zero_by_refunds_counts_zero():
    assert _stats({"20260501": (1, -10)}).window(NOW) == (1, 0)


def test_the_preferred_channel_has_most_paid_orders():
    s = MemberStats("m", "x", channels={"H5": 2, "WXMP": 3, "APP": 3})
    assert s.preferred_channel() == "APP"
    assert MemberStats("m", "x").preferred_channel() == ""


# ---- RFM ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("days,score", [(0, 5), (30, 5), (31, 4), (90, 4), (91, 3), (180, 3), (181, 2),
                                        (365, 2), (366, 1)])
def test_recency_scores_at_the_thresholds(days, score):
    assert rules.score_recency(days, RfmSettings().recency_days) == score


@pytest.mark.parametrize("count,score", [(0, 1), (1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (9, 4), (10, 5), (99, 5)])
def test_frequency_scores_at_the_thresholds(count, score):
    assert rules.score_at_least(count, RfmSettings().frequency_counts) == score


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_scores_never_fall_as_value_rises_and_stay_within_1_to_5(a, b):
    lo, hi = sorted((a, b))
    t = (10, 100, 1000, 5000)
    assert 1 <= rules.score_at_least(lo, t) <= rules.score_at_least(hi, t) <= 5
    assert 5 >= rules.score_recency(lo, t) >= rules.score_recency(hi, t) >= 1


@pytest.mark.parametrize("r_days,orders,amount,group", [
    (10, 6, 200_000, "重要价值客户"), (10, 1, 200_000, "重要发展客户"), (200, 6, 200_000, "重要保持客户"),
    (200, 1, 200_000, "重要挽留客户"), (10, 6, 100, "一般价值客户"), (10, 1, 100, "一般发展客户"),
    (200, 6, 100, "一般保持客户"), (200, 1, 100, "一般挽留客户")])
def test_the_eight_groups_by_high_or_low_against_the_midpoint(r_days, orders, amount, group):
    day = rules.day_key(NOW - timedelta(days=r_days))
    rfm = rules.rfm_of(_stats({day: (orders, amount)}, r_days), RfmSettings(), NOW)
    assert rfm.group == group
    assert all(1 <= v <= 5 for v in (rfm.r, rfm.f, rfm.m))


def test_a_member_without_a_paid_order_has_no_scores():
    assert rules.rfm_of(MemberStats("m", "x"), RfmSettings(), NOW) == rules.Rfm()


def test_a_merchants_midpoint_moves_the_groups():
    s = _stats({rules.day_key(NOW): (3, 60_000)}, 0)   # R5 F3 M3
    assert rules.rfm_of(s, RfmSettings(), NOW).group == "重要价值客户"
    assert rules.rfm_of(s, RfmSettings(midpoint=4), NOW).group == "一般发展客户"


def test_lapsed_after_n_days_without_an_order_and_first_purchase_after_exactly_one():
    settings = RfmSettings(lapsed_days=30)
    assert rules.auto_tags(_stats({"20260401": (1, 10)}, 29), settings, NOW) == ["first-purchase"]
    assert rules.auto_tags(_stats({"20260401": (1, 10)}, 30), settings, NOW) == ["lapsed", "first-purchase"]
    assert rules.auto_tags(_stats({"20260401": (2, 10)}, 5), settings, NOW) == []
    assert rules.auto_tags(MemberStats("m", "x"), settings, NOW) == []   # never bought: not lapsed


def test_rfm_settings_need_four_ascending_thresholds():
    assert RfmSettings().violations() == []
    bad = RfmSettings(recency_days=(30, 30, 90, 180), frequency_counts=(1, 2, 3), midpoint=6, lapsed_days=0)
    assert {f for f, _ in bad.violations()} == {"recency_days", "frequency_counts", "midpoint", "lapsed_days"}


# ---- rules -------------------------------------------------------------------------------------
FACTS = {"tags": ["vip", "lapsed"], "rfm_r": 4, "rfm_f": 2, "rfm_m": 5, "rfm_group": "重要发展客户", "tier": "gold",
         "spend_365": 80_000, "orders_365": 2, "last_paid_ms": MS - 40 * DAY, "registered_ms": MS - 400 * DAY,
         "channel": "WXMP", "birthday_month": 6, "consent": 1}


@pytest.mark.parametrize("condition,expected", [
    (Condition("tag", "any", ("vip", "x")), True), (Condition("tag", "all", ("vip", "x")), False),
    (Condition("tag", "all", ("vip", "lapsed")), True), (Condition("tag", "none", ("x",)), True),
    (Condition("tag", "none", ("vip",)), False), (Condition("rfm_r", "in", (4, 5)), True),
    (Condition("rfm_f", "gte", (3,)), False), (Condition("rfm_m", "lte", (5,)), True),
    (Condition("rfm_group", "in", ("重要价值客户",)), False), (Condition("tier", "in", ("gold",)), True),
    (Condition("spend_365", "gte", (80_000,)), True), (Condition("spend_365", "gte", (80_001,)), False),
    (Condition("last_order", "within", (40,)), True), (Condition("last_order", "within", (39,)), False),
    (Condition("last_order", "before", (39,)), True), (Condition("registered", "before", (365,)), True),
    (Condition("channel", "in", ("H5",)), False), (Condition("birthday_month", "in", (6,)), True),
    (Condition("marketing_consent", "gte", (1,)), True)])
def test_each_condition(condition, expected):
    assert rules.matches(Rule(conditions=(condition,)), FACTS, NOW) is expected


def test_never_bought_matches_neither_within_nor_before():
    facts = {**FACTS, "last_paid_ms": 0}
    assert not rules.matches(Rule(conditions=(Condition("last_order", "within", (10_000,)),)), facts, NOW)
    assert not rules.matches(Rule(conditions=(Condition("last_order", "before", (1,)),)), facts, NOW)


def test_and_or_and_nesting():
    yes, no = Condition("tier", "in", ("gold",)), Condition("tier", "in", ("silver",))
    assert not rules.matches(Rule(conditions=(yes, no)), FACTS, NOW)
    assert rules.matches(Rule(any_of=True, conditions=(yes, no)), FACTS, NOW)
    assert rules.matches(Rule(conditions=(yes,), rules=(Rule(any_of=True, conditions=(no, yes)),)), FACTS, NOW)
    assert rules.matches(Rule(), FACTS, NOW)


def test_rule_violations_name_the_field():
    rule = Rule(conditions=(Condition("nope", "in", ("x",)), Condition("tier", "gte", ("x",)),
                            Condition("spend_365", "gte", (-1,)), Condition("tag", "any", ())),
                rules=(Rule(rules=(Rule(rules=(Rule(),)),)),))
    assert [f for f, _ in rules.rule_violations(rule)] == [
        "rule.conditions[0].field", "rule.conditions[1].op", "rule.conditions[2].values",
        "rule.conditions[3].values", "rule.rules[0].rules[0].rules[0]"]


# ---- the statistics use case -----------------------------------------------------------------------
def _use_case(members=("mem_1", "mem_2")):
    stats, facts, settings, side = FakeStats(), FakeFacts(), FakeRfmSettings(), FakeMemberSide()
    for m in members:
        side.items[("mer_1", m)] = {"growth": 0, "registered_ms": MS - 10 * DAY, "birthday_month": 6, "consent": 1}
    uc = MemberStatistics(stats, facts, settings, side, FakeSweep(), FakeMerchants(), clock=lambda: NOW)
    return uc, stats, facts


def _paid(order_id: str, amount: int, days_ago: int, channel: str = "WXMP", member: str = "mem_1") -> OrderFact:
    return OrderFact("mer_1", member, order_id, NOW - timedelta(days=days_ago), amount, channel)


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 20_000), st.integers(0, 400)), max_size=8),
       st.lists(st.integers(0, 20), max_size=30))
@hsettings(max_examples=50, deadline=None)
def test_replays_in_any_order_give_the_exact_figures(orders, replays):
    async def run():
        uc, stats, facts = _use_case()
        events = [_paid(f"ord_{i}", amount, days) for i, (_, amount, days) in enumerate(orders)]
        for e in events:
            assert await uc.on_paid(e)
        for i in replays:
            if events:
                assert not await uc.on_paid(events[i % len(events)])
        await uc.recompute()
        inside = [e for e in events if (NOW - e.paid_at).days < rules.WINDOW_DAYS]
        f = facts.items.get(("mer_1", "mem_1"), {})
        assert f.get("orders_365", 0) == len(inside)
        assert f.get("spend_365", 0) == sum(e.amount for e in inside)
    asyncio.run(run())


def test_a_refund_comes_off_the_paid_day_once_and_recharges_are_the_callers_to_skip():
    async def run():
        uc, stats, facts = _use_case()
        await uc.on_paid(_paid("ord_1", 10_000, 3))
        refund = OrderFact("mer_1", "mem_1", "ord_1", NOW - timedelta(days=3), 4_000, refund_id="rf_1")
        assert await uc.on_refunded(refund)
        assert not await uc.on_refunded(refund)
        assert await uc.on_refunded(OrderFact("mer_1", "mem_1", "ord_1", NOW - timedelta(days=3), 1_000,
                                              refund_id="rf_2"))
        assert not await uc.on_refunded(OrderFact("mer_1", "mem_1", "ord_2", NOW, 0, refund_id="rf_3"))
        await uc.recompute()
        f = facts.items[("mer_1", "mem_1")]
        assert (f["orders_365"], f["spend_365"], f["refunds"]) == (1, 5_000, 2)
        assert f["tags"] == ["first-purchase"] and f["channel"] == "WXMP"
        assert f["rfm_r"] == 5 and f["rfm_group"]
    asyncio.run(run())


def test_the_job_takes_changed_members_then_the_daily_pass_and_drops_expired_days():
    async def run():
        uc, stats, facts = _use_case(("mem_1", "mem_2", "mem_3"))
        await uc.on_paid(_paid("ord_old", 500, 400, member="mem_1"))
        await uc.on_paid(_paid("ord_new", 700, 1, member="mem_1"))
        await uc.on_paid(_paid("ord_x", 900, 2, member="mem_2"))
        assert await uc.recompute() == 2 + 3      # the changed two, then the sweep over all three
        assert sorted(stats.items[("mer_1", "mem_1")].days) == [rules.day_key(NOW - timedelta(days=1))]
        assert facts.items[("mer_1", "mem_3")]["consent"] == 1   # never bought: facts all the same
        assert await uc.recompute() == 0          # nothing changed, swept today
        uc.side.items[("mer_1", "mem_4")] = {"growth": 0, "registered_ms": MS, "birthday_month": 0, "consent": 0}
        assert await uc.recompute() == 1          # a new member: the sweep goes on from where it was
        uc.clock = lambda: NOW + timedelta(days=1)
        assert await uc.recompute() == 4          # the next day: everyone again (recency moves)
        assert facts.items[("mer_1", "mem_1")]["rfm_day"] == rules.day_key(NOW + timedelta(days=1))
    asyncio.run(run())


def test_a_member_changed_during_the_recompute_stays_due():
    async def run():
        uc, stats, facts = _use_case()
        await uc.on_paid(_paid("ord_1", 500, 1))
        read_changed = stats.changed

        async def changed_then_event(limit):   # another replica's event lands after the batch is read
            rows = await read_changed(limit)
            stats.changed = read_changed
            await uc.on_paid(_paid("ord_2", 500, 1))
            return rows

        stats.changed = changed_then_event
        await uc.recompute()
        assert [s.version for s in await stats.changed(10)] == [2]   # not settled by the older read
        await uc.recompute()
        assert facts.items[("mer_1", "mem_1")]["orders_365"] == 2
        assert await stats.changed(10) == []
        assert not await facts.put("mer_1", "mem_1", 1, {"orders_365": 1})  # a slower replica loses
        assert facts.items[("mer_1", "mem_1")]["orders_365"] == 2
    asyncio.run(run())


def test_the_job_reads_and_writes_a_batch_at_a_time():
    async def run():
        members = [f"mem_{i:04d}" for i in range(1_200)]
        uc, stats, facts = _use_case(members)
        for i, m in enumerate(members[:1_100]):
            await uc.on_paid(_paid(f"ord_{i}", 100 + i, i % 400, member=m))
        assert await uc.recompute() == 1_100 + 1_200
        # Changed statistics: 500, 500, 100 (one settle each); the sweep: 500, 500, 200.
        assert facts.batches == [500, 500, 100, 500, 500, 200]
        assert stats.settle_calls == 3
        assert len(facts.items) == 1_200 and await stats.changed(10) == []
        assert facts.items[("mer_1", "mem_0007")]["spend_365"] == 107
    asyncio.run(run())
