"""The staff's member views over in-memory ports: search filters (each alone and
together), cursor paging with and without facts filters, masking, GUIDE's reduced view,
merchant scoping, validation naming fields, and the 360° view's parts and read budget."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.member.application import member_views
from services.member.application.member_view_ports import MemberFacts, MemberRow, OrdersSummary
from services.member.application.member_views import MemberViews, SearchQuery
from services.member.domain.birthday import Birthday
from services.member.domain.merchants import Merchant
from services.member.domain.points_account import PointsBook
from services.member.domain.profile import Profile
from siyu_kit import paging
from siyu_kit.errors import InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id
from tests.fakes.member import FakeLedger, FakeMerchants, caller
from tests.fakes.member_views import (FakeFacts, FakeMemberViewStores, FakeOrderSummaries, FakeOverview, StoredFacts,
                                      StoredMember)
from tests.fakes.wechat import FakePhoneBook

NOW = datetime(2026, 6, 1, 4, tzinfo=timezone.utc)


class World:
    def __init__(self):
        self.stores = FakeMemberViewStores()
        self.merchants, self.ledger, self.phones = FakeMerchants(), FakeLedger(), FakePhoneBook()
        self.orders = FakeOrderSummaries()
        self.use = MemberViews(self.stores, FakeFacts(self.stores), FakeOverview(self.stores), self.merchants,
                               self.ledger, self.phones, self.orders)
        self.shop = Merchant.create(new_id("mch"), "shop", "shop", "Asia/Shanghai", NOW)
        self.other = Merchant.create(new_id("mch"), "other", "other", "Asia/Shanghai", NOW)
        for m in (self.shop, self.other):
            self.merchants.items[m.id] = m
        self.n = 0

    def add(self, merchant=None, *, nickname="小美", phone="", growth=0, channel="H5", consent=False, days_ago=0,
            tags=(), rfm_group="", segments=(), birthday=None, region="") -> str:
        merchant_id = (merchant or self.shop).id
        member_id = new_id("mem")
        row = MemberRow(member_id, nickname, "", growth, NOW - timedelta(days=days_ago), channel, consent)
        profile = Profile(member_id, merchant_id, 1, nickname=nickname, birthday=birthday, region_code=region,
                          marketing_consent=consent)
        self.stores.members[member_id] = StoredMember(merchant_id, row, profile, phone[-4:] if phone else "")
        if phone:
            self.phones.items[(merchant_id, phone)] = member_id
        if tags or rfm_group or segments:
            self.stores.facts[member_id] = StoredFacts(
                merchant_id, MemberFacts(member_id, tuple(tags), 4, 3, 5, rfm_group), tuple(segments))
        return member_id

    def staff(self, *roles: str, merchant=None):
        return caller((merchant or self.shop).id, staff_id=new_id("stf"), roles=roles or ("OPERATOR",))

    async def search(self, roles=("OPERATOR",), **q):
        with self.staff(*roles):
            return await self.use.search(SearchQuery(**q))

    async def everything(self, **q) -> list[str]:
        seen, token = [], ""
        for _ in range(100):
            cards, token = await self.search(page_token=token, **q)
            seen += [c.member_id for c in cards]
            if not token:
                return seen
        raise AssertionError("paging did not end")


@pytest.fixture
def w():
    return World()


# ---- search -------------------------------------------------------------------------------

async def test_search_by_phone_suffix_masks_the_phone_and_keeps_to_the_merchant(w):
    mine = w.add(phone="13800138000")
    w.add(phone="13900139001")
    w.add(w.other, phone="13700138000")
    cards, token = await w.search(phone_suffix="8000")
    assert [c.member_id for c in cards] == [mine] and token == ""
    assert cards[0].phone_masked == "138****8000"
    assert "13800138000" not in repr(cards)


async def test_each_member_filter_alone_and_together(w):
    gold = w.add(growth=6_000, channel="MINI_PROGRAM", consent=True, days_ago=3)
    silver = w.add(growth=1_500, channel="H5", consent=False, days_ago=10)
    regular = w.add(growth=0, channel="MINI_PROGRAM", days_ago=40)
    assert await w.everything(tier="GOLD") == [gold]
    assert await w.everything(tier="SILVER") == [silver]
    assert set(await w.everything(channel="MINI_PROGRAM")) == {gold, regular}
    assert await w.everything(consent=True) == [gold]
    assert set(await w.everything(consent=False)) == {silver, regular}
    assert set(await w.everything(registered_from=NOW - timedelta(days=20))) == {gold, silver}
    assert await w.everything(registered_before=NOW - timedelta(days=20)) == [regular]
    assert await w.everything(channel="MINI_PROGRAM", registered_from=NOW - timedelta(days=20)) == [gold]


async def test_facts_filters_tags_all_of_them_rfm_group_and_segment(w):
    seg = new_id("seg")
    both = w.add(tags=("vip", "coffee"), rfm_group="重要价值客户", segments=(seg,))
    vip = w.add(tags=("vip",), rfm_group="重要唤回客户")
    w.add()  # no facts: matches no facts filter
    w.add(w.other, tags=("vip", "coffee"), segments=(seg,))
    assert set(await w.everything(tags=("vip",))) == {both, vip}
    assert await w.everything(tags=("vip", "coffee")) == [both]
    assert await w.everything(rfm_group="重要唤回客户") == [vip]
    assert await w.everything(segment_id=seg) == [both]
    cards, _ = await w.search(tags=("coffee",))
    assert cards[0].tags == ("vip", "coffee") and cards[0].rfm_group == "重要价值客户"


async def test_a_member_without_facts_shows_no_tags(w):
    w.add()
    cards, _ = await w.search()
    assert cards[0].tags == () and cards[0].rfm_group == ""


async def test_facts_filters_combine_with_member_filters_over_many_batches(w, monkeypatch):
    monkeypatch.setattr(member_views, "FACTS_BATCH", 3)
    monkeypatch.setattr(member_views, "ROUNDS", 2)
    wanted = [w.add(tags=("vip",), growth=6_000) for _ in range(4)]
    for _ in range(9):
        w.add(tags=("vip",))  # regular tier: scanned, never shown
    found = await w.everything(tags=("vip",), tier="GOLD", page_size=2)
    assert sorted(found) == sorted(wanted) and len(found) == len(set(found))


@settings(max_examples=40, deadline=None)
@given(members=st.lists(st.tuples(st.booleans(), st.booleans(), st.sampled_from(["H5", "MINI_PROGRAM"])),
                        max_size=25),
       size=st.integers(1, 7), batch=st.integers(1, 5), rounds=st.integers(1, 3))
async def test_paging_returns_every_match_once_in_order(members, size, batch, rounds):
    w = World()
    member_views.FACTS_BATCH, member_views.ROUNDS = batch, rounds
    try:
        expected = []
        for tagged, consent, channel in members:
            member_id = w.add(tags=("t",) if tagged else (), consent=consent, channel=channel)
            if tagged and consent and channel == "H5":
                expected.append(member_id)
        found = await w.everything(tags=("t",), consent=True, channel="H5", page_size=size)
        assert found == sorted(expected, reverse=True)
        plain = await w.everything(consent=True, page_size=size)
        assert plain == sorted((m for m, s in w.stores.members.items() if s.row.consent), reverse=True)
    finally:
        member_views.FACTS_BATCH, member_views.ROUNDS = 200, 5


async def test_bad_filters_are_named_and_nothing_is_read(w):
    with pytest.raises(InvalidArgument) as refused:
        await w.search(phone_suffix="12a4", tier="PLATINUM", channel="FAX", tags=("a b",), segment_id="seg_x",
                       rfm_group="x" * 65, registered_from=NOW, registered_before=NOW, page_size=500,
                       page_token="nope")
    fields = {v.field for v in refused.value.violations}
    assert fields >= {"phone_suffix", "tier", "channel", "tags", "segment_id", "rfm_group", "registered_before",
                      "page_size", "page_token"}
    assert sum(w.stores.reads.values()) == 0


async def test_a_token_of_other_filters_is_refused(w):
    for _ in range(3):
        w.add(consent=True)
    _, token = await w.search(consent=True, page_size=1)
    assert token
    with pytest.raises(InvalidArgument):
        await w.search(consent=False, page_token=token)


@pytest.mark.parametrize("roles", [("FINANCE",), ("WAREHOUSE",)])
async def test_roles_without_member_access_are_denied(w, roles):
    with pytest.raises(PermissionDenied):
        await w.search(roles=roles)
    with w.staff(*roles), pytest.raises(PermissionDenied):
        await w.use.member_360(w.add())


async def test_members_and_guests_are_not_staff(w):
    member_id = w.add()
    with caller(w.shop.id, channel="H5", member_id=member_id), pytest.raises(Exception) as refused:
        await w.use.search(SearchQuery())
    assert type(refused.value).__name__ in {"Unauthenticated", "PermissionDenied"}


# ---- 360° ---------------------------------------------------------------------------------

def _seed_360(w: World) -> tuple[str, str, list[str]]:
    inviter = w.add(nickname="老王", phone="13600136000")
    member_id = w.add(nickname="小美", phone="13800138000", growth=1_200, tags=("vip",), rfm_group="重要价值客户",
                      birthday=Birthday(5, 20, 1990), region="310000")
    invitees = [w.add(nickname=f"朋友{i}", phone=f"1390013900{i}") for i in range(3)]
    w.stores.referrals += [(w.shop.id, inviter, member_id)] + [(w.shop.id, member_id, i) for i in invitees]
    w.stores.coupons[(w.shop.id, member_id)] = {"AVAILABLE": 2, "USED": 1}
    w.stores.balances[(w.shop.id, member_id)] = (5_000, 800)
    w.ledger.books[(w.shop.id, member_id)] = PointsBook(w.shop.id, member_id, balance=300, available=250, frozen=50,
                                                         lots={"e20271231": 250})
    last = NOW - timedelta(days=1)
    w.orders.items[member_id] = OrdersSummary(3, 2, 19_800, 0, new_id("ord"), last, "COMPLETED", 9_900)
    return member_id, inviter, invitees


async def test_the_360_view_gathers_every_part(w):
    member_id, inviter, invitees = _seed_360(w)
    with w.staff("OPERATOR"):
        view = await w.use.member_360(member_id)
    assert view.profile.phone_masked == "138****8000" and view.profile.birthday.year == 1990
    assert view.standing.level.tier == "SILVER" and view.standing.next_tier == "GOLD"
    assert view.standing.growth_needed == 5_000 - 1_200
    assert (view.points.balance, view.points.available, view.points.frozen) == (300, 250, 50)
    assert [e.points for e in view.points.expiring] == [250]
    assert view.coupons == {"AVAILABLE": 2, "LOCKED": 0, "USED": 1, "EXPIRED": 0}
    assert view.balance == (5_000, 800)
    assert view.facts.tags == ("vip",) and view.facts.rfm_group == "重要价值客户"
    assert view.orders.paid_count == 2 and view.orders.last_order_state == "COMPLETED"
    r = view.referral
    assert r.referrer.member_id == inviter and r.referrer.nickname == "老*" and r.referrer.phone_masked == "136****6000"
    assert r.invitee_count == 3 and [c.member_id for c in r.invitees] == invitees[::-1]
    assert all(c.nickname.endswith("*") for c in r.invitees)


async def test_the_360_view_keeps_to_a_read_budget(w):
    member_id, _, _ = _seed_360(w)
    w.stores.reads.clear()
    with w.staff("OPERATOR"):
        await w.use.member_360(member_id)
    # member, coupons, balance, facts, referral, and the referral's cards: six store reads
    # (plus the merchant, the points account and the phones outside these stores).
    assert sum(w.stores.reads.values()) <= 6
    assert w.orders.asked == [member_id]


async def test_a_guide_sees_no_birthday_year_region_or_balance(w):
    member_id, _, _ = _seed_360(w)
    with w.staff("GUIDE"):
        view = await w.use.member_360(member_id)
    assert view.balance is None and "balance" not in w.stores.reads
    assert view.profile.birthday == Birthday(5, 20, 0) and view.profile.region_code == ""
    assert view.profile.phone_masked == "138****8000"
    with w.staff("GUIDE", "OPERATOR"):
        assert (await w.use.member_360(member_id)).balance == (5_000, 800)


async def test_the_view_stands_when_the_order_service_does_not_answer(w):
    member_id, _, _ = _seed_360(w)
    w.orders.down = True
    with w.staff("OWNER"):
        view = await w.use.member_360(member_id)
    assert view.orders is None and view.points.balance == 300


async def test_a_member_of_another_merchant_is_not_found(w):
    theirs = w.add(w.other)
    with w.staff("OWNER"), pytest.raises(NotFound):
        await w.use.member_360(theirs)
    with w.staff("OWNER"), pytest.raises(NotFound):
        await w.use.member_360(new_id("mem"))


async def test_a_bad_member_id_is_named(w):
    with w.staff("OWNER"), pytest.raises(InvalidArgument) as refused:
        await w.use.member_360("mem_nope")
    assert [v.field for v in refused.value.violations] == ["member_id"]


async def test_a_new_member_has_an_empty_view(w):
    member_id = w.add(nickname="新人")
    with w.staff("OWNER"):
        view = await w.use.member_360(member_id)
    assert view.points.balance == 0 and view.facts is None and view.referral.invitee_count == 0
    assert view.referral.referrer is None and view.profile.phone_masked == ""


def test_paging_fingerprint_is_stable():
    assert paging.fingerprint(a=1) == paging.fingerprint(a=1)
