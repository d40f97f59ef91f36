"""The cut algorithm and the bargain's rules: the floor is reached exactly by the last
needed helper, never crossed, every cut at least one fen, the same seed the same cuts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit.errors import FailedPrecondition

from services.order.domain import bargains as bg
from services.order.domain.bargains import (ActivityState, ActivityTerms, Attribution, Bargain, BargainActivity,
                                            BargainState, cuts)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


@st.composite
def bargains(draw):
    helpers = draw(st.integers(1, 100))
    floor = draw(st.integers(1, 10_000_000))
    start = floor + draw(st.integers(helpers, 10_000_000))
    return start, floor, helpers, draw(st.integers(0, 2 ** 48))


@settings(max_examples=400, deadline=None)
@given(bargains())
def test_cuts_reach_the_floor_exactly_by_the_last_helper(case):
    start, floor, helpers, seed = case
    drawn = cuts(start, floor, helpers, seed)
    assert len(drawn) == helpers
    assert sum(drawn) == start - floor
    assert all(c >= 1 for c in drawn)
    # Never crossing the floor and never reaching it before the last helper.
    price = start
    for position, c in enumerate(drawn):
        price -= c
        assert price >= floor
        if position < helpers - 1:
            assert price >= floor + (helpers - 1 - position)
    assert price == floor
    assert cuts(start, floor, helpers, seed) == drawn


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 100), st.integers(0, 2 ** 48))
def test_the_tightest_pair_gives_everyone_one_fen(helpers, seed):
    assert cuts(1000 + helpers, 1000, helpers, seed) == (1,) * helpers


def test_one_helper_cuts_straight_to_the_floor():
    assert cuts(9900, 4900, 1, 7) == (5000,)


def test_cuts_feel_natural_no_early_helper_takes_almost_everything():
    # Each draw is at most twice the fair share of what is left.
    for seed in range(200):
        drawn = cuts(10_000, 0 + 100, 10, seed)
        assert drawn[0] <= 2 * (9_900 // 10)


def test_different_seeds_give_different_sequences():
    assert len({cuts(10_000, 100, 10, seed) for seed in range(20)}) > 1


@pytest.mark.parametrize("start,floor,helpers", [(100, 100, 1), (100, 95, 6), (100, 50, 0), (100, -1, 3)])
def test_impossible_pairs_are_refused(start, floor, helpers):
    with pytest.raises(ValueError):
        cuts(start, floor, helpers, 1)


def terms(**over) -> ActivityTerms:
    base = dict(product_id="prd_1", sku_id="sku_1", title="t", start_price=10_000, floor_price=1_000,
                helpers_needed=3, time_limit_s=86_400, starts_at=NOW - timedelta(hours=1),
                ends_at=NOW + timedelta(days=3), units=10, per_member_limit=1)
    base.update(over)
    return ActivityTerms(**base)


def activity(**over) -> BargainActivity:
    return BargainActivity(id="bga_1", merchant_id="m1", version=1, terms=terms(**over), pool_id="fls_1",
                           list_price=12_000, state=ActivityState.ACTIVE, created_at=NOW)


def started(**over) -> Bargain:
    return Bargain.start(bargain_id="bgn_1", activity=activity(**over), member_id="mem_starter", seed=42, now=NOW,
                         attribution=Attribution(channel="MINI_PROGRAM", share_code="s1"))


def test_a_bargain_runs_to_the_floor_and_succeeds_with_the_last_help():
    b = started()
    assert b.state == BargainState.ACTIVE and b.price == 10_000
    assert b.expires_at == NOW + timedelta(hours=24)
    for n, m in enumerate(["a", "b", "c"], 1):
        h = b.help(m, "x**", NOW + timedelta(minutes=n))
        assert h.cut == b.cuts[n - 1]
    assert b.state == BargainState.SUCCEEDED and b.price == 1_000
    names = [type(e).__name__ for e in b.pull_events()]
    assert names == ["BargainStarted", "BargainHelped", "BargainHelped", "BargainHelped", "BargainSucceeded"]


def test_expiry_is_capped_at_the_activitys_end():
    b = started(ends_at=NOW + timedelta(hours=2))
    assert b.expires_at == NOW + timedelta(hours=2)


@pytest.mark.parametrize("who,setup,reason", [
    ("mem_starter", lambda b: None, bg.OWN_BARGAIN),
    ("a", lambda b: b.help("a", "", NOW), bg.ALREADY_HELPED),
    ("z", lambda b: [b.help(m, "", NOW) for m in "abc"], bg.BARGAIN_FINISHED),
    ("z", lambda b: setattr(b, "expires_at", NOW), bg.BARGAIN_EXPIRED),
    ("z", lambda b: (setattr(b, "expires_at", NOW), b.fail(NOW)), bg.BARGAIN_EXPIRED),
])
def test_every_refusal_to_help_names_its_reason(who, setup, reason):
    b = started()
    setup(b)
    with pytest.raises(FailedPrecondition) as e:
        b.help(who, "", NOW)
    assert e.value.reason == reason


def test_ordering_needs_the_floor_unless_the_activity_allows_earlier():
    b = started()
    with pytest.raises(FailedPrecondition) as e:
        b.ordered("ord_1", NOW)
    assert e.value.reason == bg.BARGAIN_NOT_REACHED
    early = started(buy_before_floor=True)
    early.help("a", "", NOW)
    early.ordered("ord_1", NOW)
    assert early.state == BargainState.ORDERED and early.order_id == "ord_1"
    with pytest.raises(FailedPrecondition) as e:
        early.ordered("ord_2", NOW)
    assert e.value.reason == bg.BARGAIN_FINISHED


def test_an_expired_bargain_fails_once_and_cannot_be_ordered():
    b = started()
    for m in "abc":
        b.help(m, "", NOW)
    assert not b.fail(NOW)
    later = b.expires_at
    with pytest.raises(FailedPrecondition) as e:
        b.ordered("ord_1", later)
    assert e.value.reason == bg.BARGAIN_EXPIRED
    assert b.fail(later) and b.state == BargainState.FAILED
    assert not b.fail(later)
    b.pull_events()
    assert b.pull_events() == []


def test_an_ordered_bargain_never_fails():
    b = started()
    for m in "abc":
        b.help(m, "", NOW)
    b.ordered("ord_1", NOW)
    assert not b.fail(NOW + timedelta(days=2))
    assert b.state == BargainState.ORDERED


def test_activity_terms_are_checked_field_by_field():
    from siyu_kit.errors import Violations
    v = Violations()
    bg.check_terms(v, terms(start_price=100, floor_price=95, helpers_needed=10, time_limit_s=5), list_price=90,
                   prefix="activity.")
    assert {f.field for f in v.items} == {"activity.helpers_needed", "activity.time_limit_s", "activity.start_price",
                                          "activity.floor_price"}


def test_masked_nicknames_keep_only_the_first_character():
    assert bg.mask_nickname("张小明") == "张**"
    assert bg.mask_nickname("alice") == "a****"
    assert bg.mask_nickname("") == "***"


def test_business_day_is_shanghai_calendar_day():
    assert bg.business_day(datetime(2026, 5, 1, 16, 30, tzinfo=timezone.utc)) == "20260502"
