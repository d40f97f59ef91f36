"""The birthday benefit: the calendar rules (29 February, the catch-up window, New Year)
and the job over in-memory ports — time zones, a late run, runs repeated or on three
replicas at once, a tier without a coupon, a refused issue tried again."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.member.application.birthday import BirthdayBenefit
from services.member.domain import birthday as rules
from services.member.domain.merchants import Merchant
from siyu_kit.ids import new_id
from tests.fakes.member import FakeLedger, FakeMerchants
from tests.fakes.profile import FakeBirthdayCoupons, FakeBirthdayStore

TEMPLATES = ("cpt_REGULAR", "", "cpt_GOLD", "cpt_BLACK")


# ---- the calendar ---------------------------------------------------------------------------

def test_29_february_is_celebrated_on_28_february_in_other_years():
    assert rules.celebrated_on("02-29", 2027) == date(2027, 2, 28)
    assert rules.celebrated_on("02-29", 2028) == date(2028, 2, 29)
    assert rules.due_year("02-29", date(2027, 2, 28), 1) == 2027
    assert rules.due_year("02-29", date(2028, 2, 28), 1) is None
    assert rules.due_year("02-29", date(2028, 2, 29), 1) == 2028
    assert "02-29" in rules.month_days_due(date(2027, 2, 28), 1)
    assert "02-29" not in rules.month_days_due(date(2028, 2, 28), 1)


def test_a_late_run_catches_up_within_the_window_and_across_new_year():
    assert rules.due_year("12-30", date(2027, 1, 2)) == 2026
    assert rules.due_year("12-30", date(2026, 12, 30)) == 2026
    assert rules.due_year("12-24", date(2026, 12, 30)) == 2026  # 6 days back: in the window
    assert rules.due_year("12-23", date(2026, 12, 30)) is None  # 7 days back: too late
    assert rules.due_year("12-31", date(2026, 12, 30)) is None  # tomorrow: not yet
    assert set(rules.month_days_due(date(2027, 1, 2))) == {"12-27", "12-28", "12-29", "12-30", "12-31",
                                                            "01-01", "01-02"}


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31)),
       st.dates(min_value=date(2000, 1, 1), max_value=date(2000, 12, 31)))
def test_every_birthday_is_due_on_exactly_catch_up_days_consecutive_days_each_year(today, born):
    month_day = f"{born.month:02d}-{born.day:02d}"
    year = rules.due_year(month_day, today)
    looked_up = month_day in rules.month_days_due(today)
    if year is None:
        return
    assert looked_up
    celebrated = rules.celebrated_on(month_day, year)
    assert 0 <= (today - celebrated).days < rules.CATCH_UP_DAYS


def test_birthday_validation_names_the_field():
    from siyu_kit.errors import Violations
    today = date(2026, 12, 1)
    for bad, field in ((rules.Birthday(13, 1), "b.month"), (rules.Birthday(2, 30), "b.day"),
                       (rules.Birthday(2, 29, 2026), "b.day"), (rules.Birthday(1, 1, 1800), "b.year"),
                       (rules.Birthday(12, 2, 2026), "b.year"), (rules.Birthday(4, 31), "b.day")):
        v = Violations()
        rules.check_birthday(v, "b", bad, today)
        assert [i.field for i in v.items] == [field], bad
    for good in (rules.Birthday(2, 29), rules.Birthday(2, 29, 2000), rules.Birthday(12, 1, 2026)):
        v = Violations()
        rules.check_birthday(v, "b", good, today)
        assert v.items == []


# ---- the job ------------------------------------------------------------------------------------

class World:
    def __init__(self, now: datetime, zone: str = "Asia/Shanghai"):
        self.now = now
        self.merchants, self.ledger = FakeMerchants(), FakeLedger()
        self.store, self.coupons = FakeBirthdayStore(), FakeBirthdayCoupons()
        merchant = Merchant.create(new_id("mch"), "shop", "shop", zone, now)
        merchant.config = dataclasses.replace(merchant.config, birthday_coupon_template_ids=TEMPLATES)
        self.merchants.items[merchant.id] = merchant
        self.store.zones[merchant.id] = zone
        self.merchant = merchant

    def benefit(self) -> BirthdayBenefit:
        return BirthdayBenefit(self.store, self.merchants, self.ledger, self.coupons, clock=lambda: self.now)

    def born(self, month_day: str) -> str:
        member_id = new_id("mem")
        self.store.birthdays[member_id] = (self.merchant.id, month_day)
        return member_id


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


async def test_a_member_gets_their_tiers_coupon_once_on_their_birthday_whatever_the_repeats():
    w = World(_utc(2026, 6, 1, 4))  # 12:00 in Shanghai
    today, other = w.born("06-01"), w.born("06-02")
    assert await w.benefit().run() == 1
    assert await w.benefit().run() == 0
    w.now += timedelta(days=3)  # later runs inside the window: still once
    assert await w.benefit().run() == 1  # the other member's birthday came
    assert sorted((m, t, c) for _, m, t, c in w.coupons.issued.values()) == sorted(
        [(today, "cpt_REGULAR", "2026"), (other, "cpt_REGULAR", "2026")])


async def test_the_day_is_the_merchants_not_utc():
    # 17:00 UTC on 31 May is 01:00 on 1 June in Shanghai, 10:00 on 31 May in Los Angeles.
    shanghai = World(_utc(2026, 5, 31, 17), "Asia/Shanghai")
    shanghai.born("06-01")
    assert await shanghai.benefit().run() == 1
    la = World(_utc(2026, 5, 31, 17), "America/Los_Angeles")
    la.born("06-01")
    assert await la.benefit().run() == 0
    la.now += timedelta(hours=14)  # 00:00 on 1 June in Los Angeles
    assert await la.benefit().run() == 1


async def test_29_february_members_get_it_on_28_february_in_other_years_and_once():
    w = World(_utc(2027, 2, 28, 4))
    leapling = w.born("02-29")
    assert await w.benefit().run() == 1
    w.now = _utc(2027, 3, 1, 4)
    assert await w.benefit().run() == 0
    assert [v[1:] for v in w.coupons.issued.values()] == [(leapling, "cpt_REGULAR", "2027")]


async def test_a_late_run_catches_up_and_a_new_year_belongs_to_the_year_of_the_birthday():
    w = World(_utc(2027, 1, 2, 4))  # the job did not run over New Year
    dec30, dec20 = w.born("12-30"), w.born("12-20")
    assert await w.benefit().run() == 1
    assert [v[1:] for v in w.coupons.issued.values()] == [(dec30, "cpt_REGULAR", "2026")]
    assert dec20 not in {v[1] for v in w.coupons.issued.values()}  # past the window: not this year
    w.now = _utc(2027, 12, 30, 4)  # the next birthday is the next year's reward
    assert await w.benefit().run() == 1


async def test_three_replicas_at_once_issue_one_coupon_each():
    w = World(_utc(2026, 6, 1, 4))
    members = [w.born("06-01") for _ in range(5)]
    results = await asyncio.gather(*(w.benefit().run() for _ in range(3)))
    assert sum(results) == 5
    assert sorted(v[1] for v in w.coupons.issued.values()) == sorted(members)


async def test_the_template_is_the_one_claimed_first_even_when_the_tier_changed_since():
    w = World(_utc(2026, 6, 1, 4))
    w.born("06-01")
    w.store.lose_claims = 1  # another replica claimed it first, for a member then of another tier
    assert await w.benefit().run() == 1
    assert [v[2] for v in w.coupons.issued.values()] == ["cpt_OTHER_REPLICAS_CHOICE"]
    assert await w.benefit().run() == 0


async def test_a_tier_without_a_coupon_gets_none_and_a_refusal_is_tried_again():
    w = World(_utc(2026, 6, 1, 4))
    w.merchant.config = dataclasses.replace(w.merchant.config, birthday_coupon_template_ids=("",) * 4)
    w.born("06-01")
    assert await w.benefit().run() == 0 and w.store.rewards == {}
    w.merchant.config = dataclasses.replace(w.merchant.config, birthday_coupon_template_ids=TEMPLATES)
    w.coupons.refuse = "COUPON_SOLD_OUT"
    assert await w.benefit().run() == 0
    assert [r.done for r in w.store.rewards.values()] == [False]
    w.coupons.refuse = ""
    assert await w.benefit().run() == 1
    assert [r.done for r in w.store.rewards.values()] == [True]


@pytest.mark.parametrize("zone", ["Not/AZone"])
async def test_a_merchant_with_an_unknown_time_zone_is_skipped(zone):
    w = World(_utc(2026, 6, 1, 4))
    w.store.zones[w.merchant.id] = zone
    w.born("06-01")
    assert await w.benefit().run() == 0


# ---- the tier configuration's birthday coupons ------------------------------------------------

async def test_each_tier_names_a_birthday_template_of_the_merchant_kept_in_its_config():
    from services.member.application.admin import StaffAdmin
    from services.member.domain.admin import TierLevel, levels_of
    from services.member.domain.config import MerchantConfig
    from siyu_kit.errors import InvalidArgument
    from tests.fakes.member import FakeApiKeys, FakeAuditLog, FakePasswords, FakeStaff, caller

    class Templates:
        async def get(self, merchant_id: str, template_id: str):
            return object() if (merchant_id, template_id) == (w.merchant.id, mine) else None

    w = World(_utc(2026, 6, 1, 4))
    w.merchant.config = MerchantConfig()
    mine, theirs = new_id("cpt"), new_id("cpt")
    admin = StaffAdmin(w.merchants, FakeApiKeys(), FakeStaff(), FakePasswords(), FakeAuditLog(), w.ledger,
                       coupon_templates=Templates())
    levels = [TierLevel("REGULAR", 0, 10_000, 10_000), TierLevel("SILVER", 100, 9_800, 11_000, mine),
              TierLevel("GOLD", 500, 9_500, 13_000), TierLevel("BLACK_GOLD", 2_000, 9_000, 20_000, mine)]
    with caller(w.merchant.id, staff_id=new_id("stf"), roles=("OPERATOR",)):
        with pytest.raises(InvalidArgument) as bad:
            await admin.update_tier_config([*levels[:2], TierLevel("GOLD", 500, 9_500, 13_000, theirs),
                                            TierLevel("BLACK_GOLD", 2_000, 9_000, 20_000, "nope")], 1)
        assert {v.field for v in bad.value.violations} == {"levels[3].birthday_coupon_template_id"}
        with pytest.raises(InvalidArgument) as unknown:
            await admin.update_tier_config([*levels[:2], TierLevel("GOLD", 500, 9_500, 13_000, theirs),
                                            levels[3]], 1)
        assert {v.field for v in unknown.value.violations} == {"levels[2].birthday_coupon_template_id"}
        saved = await admin.update_tier_config(levels, 1)
    assert [lv.birthday_coupon_template_id for lv in saved.levels] == ["", mine, "", mine]
    stored = w.merchants.items[w.merchant.id].config
    assert MerchantConfig.from_doc(stored.to_doc()) == stored
    assert [lv.birthday_coupon_template_id for lv in levels_of(stored)] == ["", mine, "", mine]
    # A config stored before birthday coupons existed has none.
    assert MerchantConfig.from_doc({"tier_thresholds": [0, 1, 2, 3]}).birthday_coupon_template_ids == ("",) * 4
