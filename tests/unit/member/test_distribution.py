"""Distribution use cases over in-memory ports: settings (versioned, audited, a third level
refused), levels, applying and the OPERATOR's decision, distributors made by their spend
(once, also on replays; a refund lowers the spend), bindings from share codes and orders
(with a lost race read again), who an order is credited to and in how many reads, the
exclusive guide (first wins, OPERATOR reassigns, the guide's customers), and the views."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from services.member.application.distribution import Distribution
from services.member.application.distribution_ports import MemberCard
from services.member.domain import distribution as rules
from services.member.domain.distribution import DistributionSettings
from tests.fakes.callers import caller
from tests.fakes.distribution import (FakeCards, FakeCustomers, FakeDistributionSettings, FakeDistributors,
                                      FakeGuideProfiles, FakeGuides, FakeHistory, FakeLevels, FakeSpend)
from tests.fakes.member import FakeAuditLog

SHOP, OTHER = "mch_" + "S" * 26, "mch_" + "T" * 26
OPERATOR, GUIDE, GUIDE2, FINANCE = "stf_" + "O" * 26, "stf_" + "G" * 26, "stf_" + "H" * 26, "stf_" + "F" * 26
START = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def mem(n: int) -> str:
    return f"mem_{n:026d}"


class World:
    def __init__(self):
        self.now = START
        self.settings, self.levels, self.distributors = FakeDistributionSettings(), FakeLevels(), FakeDistributors()
        self.customers, self.history, self.profiles = FakeCustomers(), FakeHistory(), FakeGuideProfiles()
        self.spend, self.cards, self.guides, self.audit = FakeSpend(), FakeCards(), FakeGuides(), FakeAuditLog()
        self.guides.guides |= {(SHOP, GUIDE), (SHOP, GUIDE2)}
        for n in range(1, 10):
            self.cards.add(SHOP, MemberCard(mem(n), f"会员{n}号", f"1380000000{n}", ("vip",), 0))
        self.cases = Distribution(self.settings, self.levels, self.distributors, self.customers, self.history,
                                  self.profiles, self.spend, self.cards, self.guides, self.audit,
                                  clock=lambda: self.now)

    def operator(self, merchant: str = SHOP):
        return caller(merchant, staff_id=OPERATOR, roles=("OPERATOR",))

    def member(self, n: int, merchant: str = SHOP):
        return caller(merchant, member_id=mem(n), channel="MINI_PROGRAM")

    def service(self, merchant: str = SHOP):
        return caller(merchant, service="order")

    async def turn_on(self, **changes) -> None:
        with self.operator():
            _, version = await self.cases.get_settings()
            await self.cases.update_settings(DistributionSettings(enabled=True, **changes), version)

    async def distributor(self, n: int, via: int = 0) -> None:
        """Member n becomes ACTIVE (bound first to distributor `via` when given)."""
        if via:
            await self.share(via, n)
        with self.member(n):
            await self.cases.apply("")
        with self.operator():
            await self.cases.approve(mem(n))

    async def share(self, sharer: int, customer: int) -> str:
        return await self.cases.on_share_opened(SHOP, mem(customer), mem(sharer))

    async def resolve(self, customer: int, sharer: str = ""):
        with self.service():
            return await self.cases.resolve(mem(customer), sharer)


@pytest.fixture
def w() -> World:
    return World()


async def test_settings_are_versioned_audited_and_refuse_a_third_level(w):
    with w.operator():
        settings, version = await w.cases.get_settings()
        assert (settings.enabled, version) == (False, 0)
        with pytest.raises(InvalidArgument) as refused:
            await w.cases.update_settings(DistributionSettings(enabled=True, levels=3), 0)
        assert any(v.field == "settings.levels" and "unlawful" in v.description for v in refused.value.violations)
        assert await w.settings.get(SHOP) == (DistributionSettings(), 0)
        _, version = await w.cases.update_settings(DistributionSettings(enabled=True, binding_days=7), 0)
        assert version == 1
        with pytest.raises(Conflict):
            await w.cases.update_settings(DistributionSettings(enabled=True), 0)
    assert [e.action for e in w.audit.entries] == ["DISTRIBUTION_SETTINGS_UPDATED"]
    assert w.audit.entries[0].after["binding_days"] == "7"
    with caller(SHOP, staff_id=GUIDE, roles=("GUIDE",)), pytest.raises(PermissionDenied):
        await w.cases.get_settings()


async def test_levels_are_created_once_per_key_and_updated_on_their_version(w):
    with w.operator():
        level, created = await w.cases.create_level("k1", "金牌", 1500, 500)
        again, created_again = await w.cases.create_level("k1", "金牌", 1500, 500)
        assert created and not created_again and again.id == level.id
        with pytest.raises(InvalidArgument):
            await w.cases.create_level("k2", "钻石", 4000, 1500)
        updated = await w.cases.update_level(level.id, "金牌+", 1600, 400, 1)
        assert (updated.name, updated.version) == ("金牌+", 2)
        with pytest.raises(Conflict):
            await w.cases.update_level(level.id, "x", 1, 1, 1)
    with w.operator(OTHER), pytest.raises(NotFound):
        await w.cases.update_level(level.id, "x", 1, 1, 2)


async def test_apply_approve_reject_and_apply_again(w):
    with w.member(1), pytest.raises(FailedPrecondition) as off:
        await w.cases.apply("")
    assert off.value.reason == "DISTRIBUTION_DISABLED"
    await w.turn_on()
    with w.member(1):
        applied = await w.cases.apply("我有很多朋友")
        assert (applied.state, applied.apply_reason) == (rules.PENDING, "我有很多朋友")
        assert (await w.cases.apply("again")).id == applied.id
    with w.operator():
        with pytest.raises(InvalidArgument):
            await w.cases.reject(mem(1), " ")
        rejected = await w.cases.reject(mem(1), "资料不全")
        assert (rejected.state, rejected.reject_reason) == (rules.REJECTED, "资料不全")
        with pytest.raises(FailedPrecondition):
            await w.cases.approve(mem(1))
    with w.member(1):
        assert (await w.cases.apply("补充资料")).state == rules.PENDING
    with w.operator():
        approved = await w.cases.approve(mem(1))
        assert approved.state == rules.ACTIVE and approved.upline_id == ""
        assert (await w.cases.approve(mem(1))).version == approved.version  # a repeat changes nothing
        disabled = await w.cases.set_enabled(mem(1), False)
        assert disabled.state == rules.DISABLED
    with w.member(1), pytest.raises(FailedPrecondition) as refused:
        await w.cases.apply("")
    assert refused.value.reason == "DISTRIBUTOR_DISABLED"
    with w.operator():
        assert (await w.cases.set_enabled(mem(1), True)).state == rules.ACTIVE
    with w.operator(OTHER), pytest.raises(NotFound):
        await w.cases.approve(mem(1))
    assert {e.action for e in w.audit.entries} >= {"DISTRIBUTOR_CHANGED"}


async def test_a_new_distributors_upline_is_who_they_were_bound_to(w):
    await w.turn_on()
    await w.distributor(1)
    await w.distributor(2, via=1)
    await w.distributor(3, via=2)
    d3 = await w.distributors.of_member(SHOP, mem(3))
    assert (d3.upline_id, d3.ancestors) == (mem(2), (mem(2), mem(1)))
    # A customer of 3 credits 3 and 2, never 1 (no third level).
    assert await w.share(3, 4) == rules.BOUND
    credit = await w.resolve(4)
    assert (credit.distributor_id, credit.upline_distributor_id) == (mem(3), mem(2))
    assert (credit.distributor_rate_bp, credit.upline_rate_bp) == (1000, 500)


async def test_binding_rules_self_cycle_first_and_latest(w):
    await w.turn_on()
    await w.distributor(1)
    await w.distributor(2, via=1)
    assert await w.share(1, 1) == rules.SELF
    assert await w.share(2, 1) == rules.CYCLE
    assert await w.share(5, 3) == rules.NOT_DISTRIBUTOR
    assert await w.share(1, 3) == rules.BOUND
    assert await w.share(2, 3) == rules.KEPT  # first wins
    w.now += timedelta(days=30)
    assert await w.share(2, 3) == rules.BOUND  # expired: replaced
    await w.turn_on(binding_rule=rules.LATEST_WINS)
    assert await w.share(1, 3) == rules.BOUND  # latest wins
    changes = [(e[3], e[4]) for e in w.history.entries if e[1] == mem(3)]
    assert changes == [("", mem(1)), (mem(1), mem(2)), (mem(2), mem(1))]


async def test_a_lost_binding_race_is_read_again(w):
    await w.turn_on()
    await w.distributor(1)
    w.customers.lose_next = True
    assert await w.share(1, 3) == rules.BOUND
    assert (await w.customers.of(SHOP, mem(3))).binding.distributor_id == mem(1)


async def test_resolve_binds_through_the_orders_sharer_and_costs_few_reads(w):
    await w.turn_on()
    await w.distributor(1)
    await w.distributor(2, via=1)
    with w.operator():
        level, _ = await w.cases.create_level("k", "金牌", 1200, 300)
        await w.cases.set_level(mem(2), level.id)
    w.customers.reads = w.distributors.reads = 0
    credit = await w.resolve(5, mem(2))
    assert (credit.distributor_id, credit.distributor_rate_bp) == (mem(2), 1200)
    assert (credit.upline_distributor_id, credit.upline_rate_bp) == (mem(1), 300)
    # The customer's ties once; the distributors involved (sharer, bound, upline) in one read,
    # and the new upline in one more as the binding changed at this order.
    assert (w.customers.reads, w.distributors.reads) == (1, 2)
    w.customers.reads = w.distributors.reads = 0
    assert (await w.resolve(5)).distributor_id == mem(2)
    assert (w.customers.reads, w.distributors.reads) == (1, 1)


async def test_resolve_gives_no_distributor_when_off_expired_or_disabled(w):
    await w.turn_on()
    await w.distributor(1)
    await w.share(1, 5)
    with w.operator():
        await w.cases.set_enabled(mem(1), False)
    assert (await w.resolve(5)).distributor_id == ""
    with w.operator():
        await w.cases.set_enabled(mem(1), True)
    assert (await w.resolve(5)).distributor_id == mem(1)
    w.now += timedelta(days=30)
    assert (await w.resolve(5)).distributor_id == ""
    await w.share(1, 5)
    await w.turn_on(levels=1, level2_rate_bp=0)
    assert (await w.resolve(5)).upline_distributor_id == ""
    with w.operator():
        _, version = await w.cases.get_settings()
        await w.cases.update_settings(DistributionSettings(enabled=False), version)
    assert await w.resolve(5) == rules.Credit()


async def test_a_member_becomes_a_distributor_by_their_spend_once(w):
    await w.turn_on(auto_threshold=10_000)
    await w.distributor(1)
    await w.share(1, 5)
    assert not await w.cases.on_spend(SHOP, mem(5), "ord_1", 6_000)
    assert not await w.cases.on_spend(SHOP, mem(5), "ord_1", 6_000)  # a replay counts nothing
    assert not await w.cases.on_spend(SHOP, mem(5), "ord_1", 4_000)  # refunded in part
    assert not await w.cases.on_spend(SHOP, mem(5), "ord_1", 6_000)  # a late paid event: still 4,000
    assert not await w.cases.on_spend(SHOP, mem(5), "ord_2", 5_000)  # 9,000
    assert await w.cases.on_spend(SHOP, mem(5), "ord_3", 1_000)
    made = await w.distributors.of_member(SHOP, mem(5))
    assert (made.state, made.automatic, made.upline_id) == (rules.ACTIVE, True, mem(1))
    assert not await w.cases.on_spend(SHOP, mem(5), "ord_3", 1_000)
    with w.operator():
        await w.cases.set_enabled(mem(5), False)
    assert not await w.cases.on_spend(SHOP, mem(5), "ord_4", 50_000)
    assert (await w.distributors.of_member(SHOP, mem(5))).state == rules.DISABLED


async def test_a_pending_application_is_activated_by_the_spend(w):
    await w.turn_on(auto_threshold=100)
    with w.member(6):
        await w.cases.apply("")
    assert await w.cases.on_spend(SHOP, mem(6), "ord_1", 100)
    assert (await w.distributors.of_member(SHOP, mem(6))).state == rules.ACTIVE


async def test_exclusive_guides_first_binding_wins_and_the_operator_reassigns(w):
    with w.member(1):
        with pytest.raises(NotFound) as unknown:
            await w.cases.bind_guide("stf_" + "Z" * 26)
        assert unknown.value.reason == "GUIDE_NOT_FOUND"
        assert await w.cases.bind_guide(GUIDE) == (GUIDE, True)
        assert await w.cases.bind_guide(GUIDE2) == (GUIDE, False)
    assert await w.cases.on_share_opened(SHOP, mem(1), GUIDE2) == rules.KEPT
    with w.operator():
        with pytest.raises(NotFound):
            await w.cases.reassign_guide(mem(1), FINANCE)
        assert await w.cases.reassign_guide(mem(1), GUIDE2) == GUIDE2
    assert (await w.customers.of(SHOP, mem(1))).guide_id == GUIDE2
    assert [e[5] for e in w.history.entries if e[2] == "GUIDE"] == ["STORE_CODE", "STAFF"]
    with w.member(1, OTHER), pytest.raises(NotFound):
        await w.cases.bind_guide(GUIDE)


async def test_the_order_credits_the_guide_by_the_merchants_rule(w):
    with w.operator():
        await w.cases.set_guide_store(GUIDE, "南京西路店")
    await w.turn_on(guide_rate_bp=200)
    first = await w.resolve(1, GUIDE)  # a guide's share code binds the first guide
    assert (first.guide_id, first.guide_rate_bp, first.guide_store) == (GUIDE, 200, "南京西路店")
    assert (await w.resolve(1, GUIDE2)).guide_id == GUIDE  # binding wins
    await w.turn_on(guide_rate_bp=200, guide_rule=rules.LAST_SHARE_WINS)
    assert (await w.resolve(1, GUIDE2)).guide_id == GUIDE2
    assert (await w.resolve(1)).guide_id == GUIDE
    assert (await w.resolve(1, "stf_" + "Z" * 26)).guide_id == GUIDE  # not a guide: ignored


async def test_views_of_the_distributor_and_the_guide(w):
    await w.turn_on()
    await w.distributor(1)
    await w.distributor(2, via=1)
    for n in (3, 4, 5):
        await w.share(1, n)
        w.now += timedelta(minutes=1)
    with w.member(1):
        mine = await w.cases.mine()
        assert (mine.bound_customers, mine.team_distributors, mine.rates) == (4, 1, (1000, 500))
        page, token = await w.cases.my_team("CUSTOMER", 2, "")
        assert [r.nickname_masked for r in page] == ["会***", "会***"] and token
        rest, last = await w.cases.my_team("CUSTOMER", 2, token)
        assert len(rest) == 2 and last == ""
        team, _ = await w.cases.my_team("DISTRIBUTOR", 10, "")
        assert [r.kind for r in team] == ["DISTRIBUTOR"]
        with pytest.raises(InvalidArgument):
            await w.cases.my_team("DISTRIBUTOR", 10, token)  # a token of another listing
    with w.member(2):
        assert (await w.cases.mine()).upline_nickname_masked == "会***"
    with w.member(7), pytest.raises(NotFound):
        await w.cases.mine()
    with w.member(3):
        await w.cases.bind_guide(GUIDE)
    with caller(SHOP, staff_id=GUIDE, roles=("GUIDE",)):
        customers, _ = await w.cases.my_guide_customers(10, "")
        assert [(c.member_id, c.phone_masked, c.tags) for c in customers] == [(mem(3), "138****0003", ("vip",))]
    with caller(SHOP, staff_id=FINANCE, roles=("FINANCE",)):
        with pytest.raises(PermissionDenied):
            await w.cases.my_guide_customers(10, "")
        rows, _ = await w.cases.listing("ACTIVE", 10, "")
        assert {d.member_id for d, _ in rows} == {mem(1), mem(2)}
        with pytest.raises(PermissionDenied):
            await w.cases.listing("", 10, "", applications=True)
