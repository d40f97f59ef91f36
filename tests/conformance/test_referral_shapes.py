"""The query and update shapes of referral storage (services/member/adapters/referral_store.py):
invite codes unique per merchant, one referral per invitee, the first completed order
claimed once, the invitees' keyset pages, the monthly cap's one guarded update (also under
concurrent takers), the farm guard's look-up and the settings' upsert."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.ids import new_id
from siyu_kit.repository import insert_new, save_change
from siyu_kit.aggregate import StaleVersion
from tests.support import new_merchant_id

from services.member.adapters.referral_store import (claim_first, guard_add, guard_holders, invitees_page,
                                                     referral_of, settings_doc, take_place)
from services.member.domain.referral import ReferralSettings

AT = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def test_invite_codes_are_unique_per_merchant_and_found_both_ways(coll):
    coll.create_index([("merchant_id", ASCENDING), ("code", ASCENDING)], unique=True)
    a, b = new_merchant_id(), new_merchant_id()
    assert insert_new(coll, {"_id": f"{a}:mem_1", "merchant_id": a, "member_id": "mem_1", "code": "ABCDEF"})
    assert not insert_new(coll, {"_id": f"{a}:mem_2", "merchant_id": a, "member_id": "mem_2", "code": "ABCDEF"})
    assert not insert_new(coll, {"_id": f"{a}:mem_1", "merchant_id": a, "member_id": "mem_1", "code": "GHJKMN"})
    assert insert_new(coll, {"_id": f"{b}:mem_2", "merchant_id": b, "member_id": "mem_2", "code": "ABCDEF"})
    assert coll.find_one({"merchant_id": a, "code": "ABCDEF"})["member_id"] == "mem_1"
    assert coll.find_one({"merchant_id": b, "code": "ABCDEF"})["member_id"] == "mem_2"
    assert coll.find_one({"_id": f"{a}:mem_1", "merchant_id": a})["code"] == "ABCDEF"
    assert coll.find_one({"_id": f"{a}:mem_1", "merchant_id": b}) is None


def _referral(merchant: str, invitee: str, inviter: str = "mem_inviter") -> dict:
    return {"_id": new_id("ref"), "merchant_id": merchant, "inviter_id": inviter, "invitee_id": invitee,
            "code": "ABCDEF", "bound_at": AT, "unionid_hash": "h", "state": "BOUND", "first_order_id": "",
            "completed_ms": 0, "inviter_reward": {}, "invitee_reward": {}, "version": 1}


def test_one_referral_per_invitee_and_the_first_order_is_claimed_once(coll):
    coll.create_index([("merchant_id", ASCENDING), ("invitee_id", ASCENDING)], unique=True)
    m = new_merchant_id()
    doc = _referral(m, "mem_b")
    assert insert_new(coll, doc)
    assert not insert_new(coll, _referral(m, "mem_b", inviter="mem_other"))  # the first binding wins
    terms = settings_doc(ReferralSettings(enabled=True, inviter_points=100))
    assert not claim_first(coll, new_merchant_id(), doc["_id"], "ord_1", terms, 5)  # another merchant's
    assert claim_first(coll, m, doc["_id"], "ord_1", terms, 1_772_352_000_000)
    assert not claim_first(coll, m, doc["_id"], "ord_2", terms, 6)
    stored = referral_of(coll.find_one({"merchant_id": m, "invitee_id": "mem_b"}))
    assert (stored.first_order_id, stored.state, stored.version) == ("ord_1", "REWARDING", 2)
    assert stored.terms == ReferralSettings(enabled=True, inviter_points=100)
    assert stored.completed_at == datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
    # the versioned save marking it rewarded: a stale version changes nothing
    update = {"$set": {"state": "REWARDED", "inviter_reward": {"outcome": "PAID", "points": 100, "coupon_id": ""},
                       "invitee_reward": {"outcome": "NONE", "points": 0, "coupon_id": ""}}}
    with pytest.raises(StaleVersion):
        save_change(coll, {"_id": doc["_id"], "merchant_id": m}, update, version=1)
    save_change(coll, {"_id": doc["_id"], "merchant_id": m}, update, version=2)
    stored = referral_of(coll.find_one({"merchant_id": m, "invitee_id": "mem_b"}))
    assert (stored.state, stored.inviter_reward.points, stored.invitee_reward.outcome) == ("REWARDED", 100, "NONE")


def test_invitees_page_newest_first_by_id(coll):
    coll.create_index([("merchant_id", ASCENDING), ("inviter_id", ASCENDING)])
    m = new_merchant_id()
    docs = [_referral(m, f"mem_{i}") for i in range(5)]
    for d in docs:
        coll.insert_one(d)
    coll.insert_one(_referral(m, "mem_x", inviter="mem_someone_else"))
    coll.insert_one(_referral(new_merchant_id(), "mem_y"))
    ids = sorted((d["_id"] for d in docs), reverse=True)
    first = invitees_page(coll, m, "mem_inviter", "", 3)
    assert [d["_id"] for d in first] == ids[:3]
    rest = invitees_page(coll, m, "mem_inviter", first[-1]["_id"], 3)
    assert [d["_id"] for d in rest] == ids[3:]


def test_the_monthly_cap_is_one_guarded_update_exact_under_concurrent_takers(coll):
    m = new_merchant_id()
    refs = [new_id("ref") for _ in range(12)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        took = list(pool.map(lambda r: take_place(coll, m, "mem_a", "202603", r, 5), refs))
    assert sum(took) == 5
    doc = coll.find_one({"_id": f"{m}:mem_a:202603", "merchant_id": m})
    assert doc["count"] == 5 and sorted(doc["taken"]) == sorted(r for r, t in zip(refs, took) if t)
    winner = next(r for r, t in zip(refs, took) if t)
    assert take_place(coll, m, "mem_a", "202603", winner, 5)  # a replay keeps its place …
    assert coll.find_one({"_id": f"{m}:mem_a:202603"})["count"] == 5  # … and takes no other
    assert take_place(coll, m, "mem_a", "202604", refs[0], 5)  # another month, another counter
    assert not take_place(coll, m, "mem_a", "202603", new_id("ref"), 5)


def test_the_farm_guard_finds_any_of_a_persons_hashes_per_merchant(coll):
    m = new_merchant_id()
    guard_add(coll, m, ["phone-hash", "union-hash"], "mem_old")
    guard_add(coll, m, ["phone-hash"], "mem_new")  # kept already: the first holder stays
    assert guard_holders(coll, m, ["union-hash", "other"]) == {"mem_old"}
    assert guard_holders(coll, m, ["phone-hash"]) == {"mem_old"}
    assert guard_holders(coll, m, ["other"]) == set()
    assert guard_holders(coll, new_merchant_id(), ["phone-hash"]) == set()


def test_settings_upsert_and_read_back(coll):
    m = new_merchant_id()
    for cap in (20, 7):
        coll.update_one({"_id": m}, {"$set": {"merchant_id": m, "settings": settings_doc(
            ReferralSettings(enabled=True, monthly_cap=cap, inviter_points=10))}}, upsert=True)
    doc = coll.find_one({"_id": m, "merchant_id": m})
    assert doc["settings"]["monthly_cap"] == 7 and bool(doc["settings"]["enabled"])
    assert coll.count_documents({"merchant_id": m}) == 1
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": m, "merchant_id": m})
