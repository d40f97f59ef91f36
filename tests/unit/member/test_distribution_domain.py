"""Distribution rules without storage: the settings refuse a third level and rates past
50%; a binding is never to oneself, never a cycle, first wins or latest wins, an expired
one is replaced under either rule; an order is credited to two levels at most; and, for
any sequence of shares and activations, the upline chains never form a cycle."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings as hsettings, strategies as st

from services.member.domain import distribution as rules
from services.member.domain.distribution import (Binding, DistributionSettings, Distributor,
                                                 DistributorLevel)

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
ON = DistributionSettings(enabled=True)


def mem(n: int) -> str:
    return f"mem_{n:026d}"


def active(member_id: str, upline: Distributor | None = None) -> Distributor:
    d = Distributor.applied(f"dst_{member_id[4:]}", "mch_1", member_id, "", NOW)
    d.activate(upline, NOW)
    return d


def problems(**changes) -> dict[str, str]:
    return dict(DistributionSettings(**changes).problems())


def test_the_defaults_are_lawful():
    assert DistributionSettings().problems() == []
    assert (ON.level1_rate_bp, ON.level2_rate_bp, ON.binding_days, ON.binding_rule) == (1000, 500, 30, "FIRST_WINS")


def test_a_third_level_is_refused_as_unlawful():
    assert "unlawful" in problems(levels=3)["settings.levels"]
    assert "unlawful" in problems(levels=7)["settings.levels"]
    assert problems(levels=0)["settings.levels"] == "1 or 2"
    assert problems(levels=1, level2_rate_bp=0) == {}


def test_rates_past_half_of_the_sale_are_refused():
    assert "settings.level2_rate_bp" in problems(level1_rate_bp=4000, level2_rate_bp=1001)
    assert problems(level1_rate_bp=4000, level2_rate_bp=1000) == {}
    assert "settings.level2_rate_bp" in problems(levels=1, level2_rate_bp=500)
    assert "settings.binding_days" in problems(binding_days=0)
    assert "settings.binding_rule" in problems(binding_rule="NEWEST")
    assert rules.level_problems("金牌", 3000, 2001) and not rules.level_problems("金牌", 3000, 2000)


def test_a_share_binds_only_to_an_active_distributor_of_a_merchant_with_distribution_on():
    d = active(mem(1))
    assert rules.binding_decision(DistributionSettings(), Binding(), mem(2), d, NOW_MS) == rules.OFF
    assert rules.binding_decision(ON, Binding(), mem(2), None, NOW_MS) == rules.NOT_DISTRIBUTOR
    pending = Distributor.applied("dst_x", "mch_1", mem(3), "", NOW)
    assert rules.binding_decision(ON, Binding(), mem(2), pending, NOW_MS) == rules.NOT_DISTRIBUTOR
    d.disable(NOW)
    assert rules.binding_decision(ON, Binding(), mem(2), d, NOW_MS) == rules.NOT_DISTRIBUTOR


def test_nobody_binds_to_themself_or_to_someone_below_them():
    top = active(mem(1))
    middle = active(mem(2), top)
    bottom = active(mem(3), middle)
    assert bottom.ancestors == (mem(2), mem(1))
    assert rules.binding_decision(ON, Binding(), mem(3), bottom, NOW_MS) == rules.SELF
    assert rules.binding_decision(ON, Binding(), mem(1), bottom, NOW_MS) == rules.CYCLE
    assert rules.binding_decision(ON, Binding(), mem(2), bottom, NOW_MS) == rules.CYCLE
    assert rules.binding_decision(ON, Binding(), mem(3), top, NOW_MS) == rules.BOUND


def test_first_wins_keeps_an_unexpired_binding_and_latest_wins_replaces_it():
    other = active(mem(9))
    bound = Binding(mem(1), NOW_MS - 29 * DAY_MS)
    assert rules.binding_decision(ON, bound, mem(5), other, NOW_MS) == rules.KEPT
    latest = DistributionSettings(enabled=True, binding_rule=rules.LATEST_WINS)
    assert rules.binding_decision(latest, bound, mem(5), other, NOW_MS) == rules.BOUND


def test_an_expired_binding_is_replaced_under_either_rule():
    other = active(mem(9))
    expired = Binding(mem(1), NOW_MS - 30 * DAY_MS)  # bound_at + 30 days == now: expired
    assert not expired.live(30, NOW_MS)
    assert Binding(mem(1), NOW_MS - 30 * DAY_MS + 1).live(30, NOW_MS)
    for rule in (rules.FIRST_WINS, rules.LATEST_WINS):
        s = DistributionSettings(enabled=True, binding_rule=rule)
        assert rules.binding_decision(s, expired, mem(5), other, NOW_MS) == rules.BOUND


def test_the_same_distributor_again_keeps_or_renews():
    d = active(mem(1))
    assert rules.binding_decision(ON, Binding(mem(1), NOW_MS - DAY_MS), mem(5), d, NOW_MS) == rules.KEPT
    assert rules.binding_decision(ON, Binding(mem(1), NOW_MS - 31 * DAY_MS), mem(5), d, NOW_MS) == rules.RENEWED


def test_an_order_is_credited_to_two_levels_at_most():
    top = active(mem(1))
    middle = active(mem(2), top)
    bottom = active(mem(3), middle)
    bound = Binding(mem(3), NOW_MS - DAY_MS)
    credit = rules.credit_for(ON, bound, bottom, None, middle, NOW_MS)
    assert (credit.distributor_id, credit.distributor_rate_bp) == (mem(3), 1000)
    assert (credit.upline_distributor_id, credit.upline_rate_bp) == (mem(2), 500)
    assert mem(1) not in (credit.distributor_id, credit.upline_distributor_id)
    one = DistributionSettings(enabled=True, levels=1, level2_rate_bp=0)
    assert rules.credit_for(one, bound, bottom, None, middle, NOW_MS).upline_distributor_id == ""


def test_the_credit_uses_the_level_and_skips_what_is_not_active_or_expired():
    top = active(mem(1))
    seller = active(mem(2), top)
    level = DistributorLevel("dlv_1", "mch_1", "金牌", 1500, 300)
    bound = Binding(mem(2), NOW_MS - DAY_MS)
    credit = rules.credit_for(ON, bound, seller, level, top, NOW_MS)
    assert (credit.distributor_rate_bp, credit.upline_rate_bp) == (1500, 300)
    top.disable(NOW)
    assert rules.credit_for(ON, bound, seller, None, top, NOW_MS).upline_distributor_id == ""
    assert rules.credit_for(ON, Binding(mem(2), NOW_MS - 30 * DAY_MS), seller, None, None, NOW_MS) == rules.Credit()
    seller.disable(NOW)
    assert rules.credit_for(ON, bound, seller, None, None, NOW_MS) == rules.Credit()
    assert rules.credit_for(DistributionSettings(), bound, active(mem(2)), None, None, NOW_MS) == rules.Credit()


def test_the_upline_is_fixed_at_the_first_activation():
    first, second = active(mem(1)), active(mem(2))
    d = Distributor.applied("dst_z", "mch_1", mem(3), "", NOW)
    d.activate(first, NOW)
    d.disable(NOW)
    d.activate(second, NOW)
    assert (d.upline_id, d.ancestors) == (mem(1), (mem(1),))


def test_guide_rules():
    assert rules.guide_decision("", "stf_1") == rules.BOUND
    assert rules.guide_decision("stf_1", "stf_2") == rules.KEPT
    last = DistributionSettings(guide_rule=rules.LAST_SHARE_WINS)
    assert rules.credited_guide(DistributionSettings(), "stf_1", "stf_2") == "stf_1"
    assert rules.credited_guide(last, "stf_1", "stf_2") == "stf_2"
    assert rules.credited_guide(last, "stf_1", "") == "stf_1"
    assert rules.credited_guide(DistributionSettings(), "", "stf_2") == "stf_2"


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["share", "activate"]), st.integers(0, 7), st.integers(0, 7)),
                max_size=60),
       st.sampled_from([rules.FIRST_WINS, rules.LATEST_WINS]))
def test_no_sequence_of_shares_and_activations_forms_a_cycle(steps, rule):
    settings = DistributionSettings(enabled=True, binding_rule=rule)
    distributors: dict[str, Distributor] = {}
    bindings: dict[str, Binding] = {}
    clock = NOW_MS
    for kind, a, b in steps:
        clock += DAY_MS * 7  # some bindings expire along the way
        if kind == "activate":
            member = mem(a)
            if member in distributors:
                continue
            bound = bindings.get(member, Binding())
            upline = distributors.get(bound.distributor_id) if bound.live(settings.binding_days, clock) else None
            distributors[member] = active(member, upline)
        else:
            sharer, customer = distributors.get(mem(a)), mem(b)
            outcome = rules.binding_decision(settings, bindings.get(customer, Binding()), customer, sharer, clock)
            if rules.changes_binding(outcome):
                bindings[customer] = Binding(sharer.member_id, clock)
    for d in distributors.values():
        assert d.member_id not in d.ancestors
        seen, at = set(), d
        while at.upline_id:  # following uplines ends, within as many steps as distributors
            assert at.member_id not in seen
            seen.add(at.member_id)
            at = distributors[at.upline_id]
        assert len(d.ancestors) <= rules.CHAIN_DEPTH
    for customer, binding in bindings.items():
        if binding.distributor_id:
            assert binding.distributor_id != customer
