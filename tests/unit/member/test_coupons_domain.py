"""Coupon rules without storage: what a template accepts, the discount maths and its
allocation over lines, the template's lifecycle and a member coupon's moves."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu_kit.errors import FailedPrecondition

from services.member.domain import coupons as rules
from services.member.domain.coupons import (CouponKind, CouponLine, CouponRule, CouponState, CouponTemplate, Scope,
                                            TemplateDraft, TemplateState, Validity, best, discount_for)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
PAY_BY = NOW + timedelta(minutes=30)

FULL_200_OFF_30 = CouponRule(CouponKind.AMOUNT_OFF, threshold=20_000, amount_off=3_000)
TWENTY_PERCENT_CAP_50 = CouponRule(CouponKind.PERCENT_OFF, percent_off_bp=2_000, cap=5_000)
TEN_OFF = CouponRule(CouponKind.NO_THRESHOLD, amount_off=1_000)


def line(sku: str, price: int, qty: int = 1, product: str = "", path: tuple[str, ...] = ("cat_food",),
         amount: int | None = None) -> CouponLine:
    return CouponLine(sku, product or "prd_" + sku, path, price, qty, amount)


def draft(rule: CouponRule = FULL_200_OFF_30, **kw) -> TemplateDraft:
    values = dict(name="Spring 200-30", rule=rule, validity=Validity(days=7), total=100, per_member_limit=1)
    values.update(kw)
    return TemplateDraft(**values)


# ---- what a template accepts ---------------------------------------------------------------------

def test_a_valid_draft_has_no_problems():
    assert draft().problems() == []
    assert draft(TWENTY_PERCENT_CAP_50, total=None).problems() == []
    assert draft(TEN_OFF, validity=Validity(NOW, NOW + timedelta(days=1))).problems() == []


@pytest.mark.parametrize("rule, field", [
    (CouponRule(CouponKind.AMOUNT_OFF, threshold=0, amount_off=100), "rule.threshold"),
    (CouponRule(CouponKind.AMOUNT_OFF, threshold=100, amount_off=0), "rule.amount_off"),
    (CouponRule(CouponKind.NO_THRESHOLD, threshold=100, amount_off=100), "rule.threshold"),
    (CouponRule(CouponKind.PERCENT_OFF, percent_off_bp=10_000, cap=100), "rule.percent_off_bp"),
    (CouponRule(CouponKind.PERCENT_OFF, percent_off_bp=1_000, cap=0), "rule.cap"),
    (CouponRule(CouponKind.PERCENT_OFF, percent_off_bp=1_000, cap=10, amount_off=5), "rule.amount_off"),
    (CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, scope=Scope.CATEGORIES), "rule.category_ids"),
    (CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, scope=Scope.PRODUCTS), "rule.product_ids"),
    (CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, product_ids=("p",)), "rule.product_ids"),
    (CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, scope=Scope.PRODUCTS, product_ids=("p",),
                excluded_product_ids=("p",)), "rule.excluded_product_ids"),
    (CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, order_kinds=()), "rule.order_kinds"),
    (CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, order_kinds=("PRESALE",)), "rule.order_kinds"),
])
def test_a_bad_rule_names_its_field(rule, field):
    assert field in {p.field for p in draft(rule).problems()}


@pytest.mark.parametrize("changes, field", [
    (dict(name=" "), "name"),
    (dict(validity=Validity(days=0)), "validity.days"),
    (dict(validity=Validity(NOW, NOW)), "validity.ends_at"),
    (dict(validity=Validity(NOW, NOW + timedelta(days=1), days=3)), "validity.days"),
    (dict(total=0), "total"),
    (dict(per_member_limit=0), "per_member_limit"),
])
def test_a_bad_draft_names_its_field(changes, field):
    assert field in {p.field for p in draft(**changes).problems()}


# ---- the maths -------------------------------------------------------------------------------------

def test_amount_off_applies_from_the_threshold_on_and_spreads_by_largest_remainder():
    lines = [line("a", 10_000), line("b", 5_000, 2)]
    result = discount_for(FULL_200_OFF_30, lines)
    assert (result.applies, result.amount, result.shares, result.eligible_subtotal) == (True, 3_000, (1_500, 1_500),
                                                                                         20_000)
    below = discount_for(FULL_200_OFF_30, [line("a", 19_999)])
    assert (below.applies, below.reason, below.shortfall, below.shares) == (False, rules.BELOW_THRESHOLD, 1, (0,))


def test_percent_off_rounds_down_and_stops_at_the_cap():
    assert discount_for(TWENTY_PERCENT_CAP_50, [line("a", 999)]).amount == 199
    assert discount_for(TWENTY_PERCENT_CAP_50, [line("a", 100_000)]).amount == 5_000


def test_no_threshold_never_takes_more_than_the_lines_in_scope():
    result = discount_for(TEN_OFF, [line("a", 300), line("b", 400)])
    assert (result.amount, result.shares) == (700, (300, 400))


def test_the_threshold_counts_only_lines_in_scope_and_only_they_get_a_share():
    rule = CouponRule(CouponKind.AMOUNT_OFF, threshold=10_000, amount_off=1_000, scope=Scope.CATEGORIES,
                      category_ids=("cat_drinks",))
    tea = line("tea", 6_000, path=("cat_drinks", "cat_tea"))  # a sub-category counts
    bread = line("bread", 50_000, path=("cat_food",))
    assert discount_for(rule, [tea, bread]).reason == rules.BELOW_THRESHOLD
    result = discount_for(rule, [tea, bread, line("juice", 4_000, path=("cat_drinks",))])
    assert (result.amount, result.shares, result.eligible) == (1_000, (600, 0, 400), (True, False, True))


def test_products_scope_and_exclusions():
    only = CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, scope=Scope.PRODUCTS, product_ids=("prd_a",))
    assert discount_for(only, [line("a", 500), line("b", 500)]).shares == (100, 0)
    assert discount_for(only, [line("b", 500)]).reason == rules.OUT_OF_SCOPE
    excluded = CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, excluded_product_ids=("prd_a",))
    assert discount_for(excluded, [line("a", 500), line("b", 500)]).shares == (0, 100)


def test_order_kinds_refuse_coupons_unless_the_template_accepts_them():
    assert discount_for(TEN_OFF, [line("a", 5_000)], rules.FLASH_SALE).reason == rules.WRONG_ORDER_KIND
    assert discount_for(TEN_OFF, [line("a", 5_000)], rules.GROUP_BUY).reason == rules.WRONG_ORDER_KIND
    accepting = CouponRule(CouponKind.NO_THRESHOLD, amount_off=100, order_kinds=(rules.NORMAL, rules.BARGAIN))
    assert discount_for(accepting, [line("a", 5_000)], rules.BARGAIN).applies


def test_the_amount_left_after_a_threshold_reduction_is_what_counts():
    result = discount_for(FULL_200_OFF_30, [line("a", 10_000, 2, amount=19_000)])
    assert result.reason == rules.BELOW_THRESHOLD


def test_equal_remainders_go_to_the_earlier_line():
    result = discount_for(TEN_OFF, [line("a", 1_500), line("b", 1_500), line("c", 1_500)])
    assert result.shares == (334, 333, 333)


PATHS = (("cat_food",), ("cat_drinks", "cat_tea"), ("cat_drinks",))
# (sku index, price, quantity, path index, percent left after a threshold reduction) per
# line: plain tuples draw fast.
lines_strategy = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50_000), st.integers(1, 20),
                                    st.integers(0, 2), st.integers(0, 100)), min_size=1, max_size=8)
# (kind, threshold, amount or rate, cap, excluding product b)
rules_strategy = st.tuples(st.sampled_from(list(CouponKind)), st.integers(0, 200_000), st.integers(1, 200_000),
                           st.integers(1, 500_000), st.booleans())


def rule_of(kind: CouponKind, threshold: int, value: int, cap: int, exclude: bool) -> CouponRule:
    if kind == CouponKind.AMOUNT_OFF:
        return CouponRule(kind, threshold=max(threshold, 1), amount_off=value)
    if kind == CouponKind.PERCENT_OFF:
        return CouponRule(kind, threshold=threshold, percent_off_bp=value % 9_999 + 1, cap=cap)
    return CouponRule(kind, amount_off=value, scope=Scope.CATEGORIES, category_ids=("cat_drinks",),
                      excluded_product_ids=("prd_b",) if exclude else ())


@settings(max_examples=40, derandomize=True, deadline=None)
@given(drawn_rule=rules_strategy, drawn_lines=lines_strategy)
def test_allocation_adds_up_never_goes_negative_and_skips_lines_out_of_scope(drawn_rule, drawn_lines):
    rule = rule_of(*drawn_rule)
    assert rule.problems() == []
    lines = [line("abcde"[sku], price, qty, path=PATHS[path], amount=price * qty * left // 100)
             for sku, price, qty, path, left in drawn_lines]
    result = discount_for(rule, lines)
    assert sum(result.shares) == result.amount
    assert len(result.shares) == len(lines)
    for share, ok, each in zip(result.shares, result.eligible, lines):
        assert 0 <= share <= each.subtotal  # the line's paid amount never goes below zero
        if not ok:
            assert share == 0
    assert result.amount <= result.eligible_subtotal
    assert result.applies == (result.amount > 0)
    if result.reason:
        assert result.amount == 0
    assert discount_for(rule, lines) == result  # deterministic


# ---- the template's lifecycle ------------------------------------------------------------------------

def template(**kw) -> CouponTemplate:
    t = CouponTemplate.create("cpt_1", "mer_1", draft(**kw), NOW)
    t.pull_events()
    return t


def test_lifecycle_draft_active_paused_ended_and_repeats_change_nothing():
    t = template()
    assert t.move(TemplateState.ACTIVE, NOW) and not t.move(TemplateState.ACTIVE, NOW)
    assert t.move(TemplateState.PAUSED, NOW) and t.move(TemplateState.ACTIVE, NOW)
    assert t.move(TemplateState.ENDED, NOW)
    assert [e.state for e in t.pull_events()] == [TemplateState.ACTIVE, TemplateState.PAUSED, TemplateState.ACTIVE,
                                                  TemplateState.ENDED]
    with pytest.raises(FailedPrecondition) as refused:
        t.move(TemplateState.ACTIVE, NOW)
    assert refused.value.reason == "STATUS_TRANSITION"
    with pytest.raises(FailedPrecondition):
        template().move(TemplateState.PAUSED, NOW)


def test_only_a_draft_is_edited_and_the_total_never_goes_below_issued():
    t = template()
    t.edit(draft(name="Renamed"), NOW)
    assert t.name == "Renamed"
    t.move(TemplateState.ACTIVE, NOW)
    with pytest.raises(FailedPrecondition) as refused:
        t.edit(draft(), NOW)
    assert refused.value.reason == rules.NOT_EDITABLE
    t.issued = 40
    with pytest.raises(FailedPrecondition) as refused:
        t.change_total(39, NOW)
    assert refused.value.reason == rules.TOTAL_BELOW_ISSUED
    assert t.change_total(40, NOW) and not t.change_total(40, NOW) and t.change_total(None, NOW)


def test_claimable_needs_active_self_claim_a_window_not_over_and_units_left():
    t = template(validity=Validity(NOW, NOW + timedelta(days=1)))
    with pytest.raises(FailedPrecondition) as refused:
        t.claimable(NOW)
    assert refused.value.reason == rules.NOT_CLAIMABLE
    t.move(TemplateState.ACTIVE, NOW)
    t.claimable(NOW)
    with pytest.raises(FailedPrecondition):
        t.claimable(NOW + timedelta(days=1))
    t.issued = 100
    with pytest.raises(FailedPrecondition) as refused:
        t.claimable(NOW)
    assert refused.value.reason == rules.SOLD_OUT
    staff_only = template(self_claim=False)
    staff_only.move(TemplateState.ACTIVE, NOW)
    with pytest.raises(FailedPrecondition):
        staff_only.claimable(NOW)
    staff_only.claimable(NOW, by_staff=True)


# ---- a member's coupon ---------------------------------------------------------------------------------

SEVEN_DAYS = Validity(days=7)


def coupon(validity: Validity = SEVEN_DAYS, rule: CouponRule = TEN_OFF):
    t = template(rule=rule, validity=validity)
    c = rules.MemberCoupon.claiming("cpn_1", t, "mem_1", 1, "k", rules.CLAIM, "", NOW)
    assert c.confirm(NOW) and not c.confirm(NOW)
    c.pull_events()
    return c


def applied(c, now=NOW):
    return c.applicability([line("a", 5_000)], rules.NORMAL, now)


def test_a_coupon_claimed_for_n_days_is_valid_from_the_claim():
    c = coupon()
    assert (c.valid_from, c.valid_until) == (NOW, NOW + timedelta(days=7))
    assert applied(c, NOW + timedelta(days=7)).reason == rules.EXPIRED_REASON
    fixed = coupon(Validity(NOW + timedelta(days=1), NOW + timedelta(days=2)))
    assert applied(fixed).reason == rules.NOT_STARTED
    assert applied(fixed, NOW + timedelta(days=1)).applies


def test_lock_use_and_their_repeats():
    c = coupon()
    assert c.lock("ord_1", applied(c), NOW, PAY_BY) and not c.lock("ord_1", applied(c), NOW, PAY_BY)
    with pytest.raises(FailedPrecondition) as refused:
        c.lock("ord_2", applied(c), NOW, PAY_BY)
    assert refused.value.reason == rules.IN_USE
    with pytest.raises(FailedPrecondition):
        c.use("ord_2", NOW)
    assert c.use("ord_1", NOW) and not c.use("ord_1", NOW)
    assert not c.lock("ord_1", applied(c), NOW, PAY_BY)  # the same order placed again
    with pytest.raises(FailedPrecondition) as refused:
        c.lock("ord_2", applied(c), NOW, PAY_BY)
    assert refused.value.reason == rules.NOT_AVAILABLE
    assert [type(e).__name__ for e in c.pull_events()] == ["CouponLocked", "CouponUsed"]


def test_a_coupon_that_does_not_apply_is_not_locked():
    c = coupon(rule=FULL_200_OFF_30)
    with pytest.raises(FailedPrecondition) as refused:
        c.lock("ord_1", applied(c), NOW, PAY_BY)
    assert refused.value.reason == rules.BELOW_THRESHOLD
    assert c.state == CouponState.AVAILABLE


def test_release_returns_a_valid_coupon_expires_a_stale_one_and_is_idempotent():
    c = coupon()
    c.lock("ord_1", applied(c), NOW, PAY_BY)
    # An order that does not hold it leaves only a note (its late lock is refused).
    assert c.release("ord_other", NOW) and c.state == CouponState.LOCKED and c.order_id == "ord_1"
    assert not c.release("ord_other", NOW)
    assert c.release("ord_1", NOW) and c.state == CouponState.AVAILABLE
    assert not c.release("ord_1", NOW)
    with pytest.raises(FailedPrecondition) as refused:
        c.lock("ord_1", applied(c), NOW, PAY_BY)  # a late replay of the cancelled order
    assert refused.value.reason == rules.LOCK_ENDED
    c.lock("ord_2", applied(c), NOW, PAY_BY)
    assert c.release("ord_2", NOW + timedelta(days=8)) and c.state == CouponState.EXPIRED
    assert [e.state for e in c.pull_events() if type(e).__name__ == "CouponReleased"] == [
        CouponState.AVAILABLE, CouponState.EXPIRED]


def test_a_paid_order_cannot_release_but_a_refund_restores_while_valid():
    c = coupon()
    c.lock("ord_1", applied(c), NOW, PAY_BY)
    c.use("ord_1", NOW)
    with pytest.raises(FailedPrecondition):
        c.release("ord_1", NOW)
    assert not c.restore("ord_1", NOW + timedelta(days=8))  # no longer valid: stays used
    assert c.restore("ord_1", NOW) and c.state == CouponState.AVAILABLE and not c.restore("ord_1", NOW)


def test_a_lock_past_its_payment_deadline_is_released_by_the_sweep():
    c = coupon()
    c.lock("ord_1", applied(c), NOW, PAY_BY)
    assert not c.release_overdue(PAY_BY - timedelta(seconds=1))
    assert c.release_overdue(PAY_BY) and c.state == CouponState.AVAILABLE and c.returned_by == ("ord_1",)
    assert not c.release_overdue(PAY_BY)
    paid = coupon()
    paid.lock("ord_2", applied(paid), NOW, PAY_BY)
    paid.use("ord_2", NOW)
    assert not paid.release_overdue(PAY_BY + timedelta(days=1))


def test_expiry_moves_only_available_coupons_past_their_end():
    c = coupon()
    assert not c.expire(NOW)
    assert c.expire(NOW + timedelta(days=7)) and not c.expire(NOW + timedelta(days=8))
    locked = coupon()
    locked.lock("ord_1", applied(locked), NOW, PAY_BY)
    assert not locked.expire(NOW + timedelta(days=30))


def test_best_takes_the_largest_discount_then_the_first_to_expire():
    a, b, c = coupon(), coupon(Validity(days=3)), coupon(rule=FULL_200_OFF_30)
    a.id, b.id, c.id = "cpn_a", "cpn_b", "cpn_c"
    lines = [line("x", 5_000)]
    chosen = best([(x, x.applicability(lines, rules.NORMAL, NOW)) for x in (a, b, c)])
    assert chosen is not None and chosen[0].id == "cpn_b"
    assert best([(c, c.applicability(lines, rules.NORMAL, NOW))]) is None
