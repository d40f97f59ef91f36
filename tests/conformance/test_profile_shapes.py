"""The query and update shapes of member profiles and the birthday benefit
(services/member/adapters/profile_store.py): the profile's versioned $set on the member
document read back (flags as ints, times as epoch ms), the birthday job's look-up by
merchant and month-day with its index and paging, the unique birthday reward and its
finish, and the clear phone's removal by the member-phone-seal backfill (with the look-up
by phone_key it replaces)."""
from __future__ import annotations

from datetime import datetime, timezone

from pymongo.errors import DuplicateKeyError

from siyu_kit.ids import new_id
from tests.support import new_merchant_id

from services.member.adapters.profile_store import (BIRTHDAY_INDEX, PROFILE_FIELDS, profile_of, born_on_query,
                                                   gives_birthday_coupons, profile_fields)
from services.member.domain.birthday import Birthday
from services.member.domain.profile import Profile

AT = datetime(2026, 6, 1, 4, 0, 0, 123000, tzinfo=timezone.utc)


def test_a_profile_change_is_one_versioned_set_read_back_as_written(coll):
    merchant, member = new_merchant_id(), new_id("mem")
    coll.insert_one({"_id": member, "merchant_id": merchant, "nickname": "n", "version": 1, "growth": 0})
    assert profile_of(coll.find_one({"_id": member, "merchant_id": merchant})).personalised_recommendations
    profile = Profile(member, merchant, 1, nickname="小美", birthday=Birthday(2, 29, 2000), birthday_set_by="member",
                      gender="FEMALE", region_code="310000", marketing_consent=True, consent_changed_at=AT,
                      personalised_recommendations=False)
    update = {"$set": profile_fields(profile), "$inc": {"version": 1}}
    assert coll.update_one({"_id": member, "merchant_id": merchant, "version": 1}, update).modified_count == 1
    assert coll.update_one({"_id": member, "merchant_id": merchant, "version": 1}, update).modified_count == 0
    doc = coll.find_one({"_id": member, "merchant_id": merchant}, {name: 1 for name in PROFILE_FIELDS + ("merchant_id",)})
    read = profile_of(doc)
    assert (read.nickname, read.birthday, read.gender, read.region_code, read.marketing_consent,
            read.consent_changed_at, read.personalised_recommendations, read.version) == \
        ("小美", Birthday(2, 29, 2000), "FEMALE", "310000", True, AT, False, 2)
    # Turned back on: the int flag written by $set reads as on again.
    profile.version, profile.personalised_recommendations, profile.marketing_consent = 2, True, False
    coll.update_one({"_id": member, "merchant_id": merchant, "version": 2},
                    {"$set": profile_fields(profile), "$inc": {"version": 1}})
    read = profile_of(coll.find_one({"_id": member}))
    assert read.personalised_recommendations and not read.marketing_consent


def test_members_are_found_by_merchant_and_month_days_in_id_pages(coll):
    coll.create_index(BIRTHDAY_INDEX)
    mine, other = new_merchant_id(), new_merchant_id()
    born = {}
    for md in ("02-28", "02-29", "03-01", "02-28", "02-29", "12-31"):
        member = new_id("mem")
        born[member] = md
        coll.insert_one({"_id": member, "merchant_id": mine, "birthday_md": md, "version": 1})
    coll.insert_one({"_id": new_id("mem"), "merchant_id": other, "birthday_md": "02-28", "version": 1})
    coll.insert_one({"_id": new_id("mem"), "merchant_id": mine, "version": 1})  # no birthday
    wanted = sorted(m for m, md in born.items() if md in ("02-28", "02-29"))
    found, after = [], ""
    while True:
        page = list(coll.find(born_on_query(mine, ["02-28", "02-29"], after), {"birthday_md": 1})
                    .sort("_id", 1).limit(2))
        found += [(d["_id"], d["birthday_md"]) for d in page]
        if len(page) < 2:
            break
        after = page[-1]["_id"]
    assert [m for m, _ in found] == wanted
    assert all(md == born[m] for m, md in found)
    assert [d["_id"] for d in coll.find(born_on_query(mine, ["12-31"], "")).sort("_id", 1)] == \
        [m for m, md in born.items() if md == "12-31"]


def test_a_birthday_reward_is_claimed_once_and_finished_once(coll):
    merchant, member = new_merchant_id(), new_id("mem")
    reward_id = f"{merchant}:{member}:2026"
    coll.insert_one({"_id": reward_id, "merchant_id": merchant, "member_id": member, "template_id": "cpt_A",
                     "done": 0})
    try:
        coll.insert_one({"_id": reward_id, "merchant_id": merchant, "member_id": member, "template_id": "cpt_B",
                         "done": 0})
        raise AssertionError("a second claim must be a duplicate")
    except DuplicateKeyError:
        pass
    assert coll.find_one({"_id": reward_id, "merchant_id": merchant})["template_id"] == "cpt_A"
    finish = {"$set": {"done": 1, "coupon_id": "cpn_1"}}
    assert coll.update_one({"_id": reward_id, "merchant_id": merchant, "done": {"$nin": [1]}}, finish).modified_count == 1
    assert coll.update_one({"_id": reward_id, "merchant_id": merchant, "done": {"$nin": [1]}}, finish).modified_count == 0
    assert coll.find_one({"_id": reward_id})["done"] == 1


def test_a_clear_phone_is_found_by_its_key_until_unset_and_the_walk_sees_every_member(coll):
    coll.create_index("phone_key", unique=True, sparse=True)
    merchant = new_merchant_id()
    legacy, sealed = new_id("mem"), new_id("mem")
    coll.insert_one({"_id": legacy, "merchant_id": merchant, "phone": "13800138000",
                     "phone_key": f"{merchant}:13800138000", "version": 1})
    coll.insert_one({"_id": sealed, "merchant_id": merchant, "version": 1})
    key = {"phone_key": f"{merchant}:13800138000", "merchant_id": merchant}
    assert coll.find_one(key, {"_id": 1})["_id"] == legacy
    walk = list(coll.find({"_id": {"$gt": ""}}, {"merchant_id": 1, "phone": 1}).sort("_id", 1).limit(10))
    assert [(d["_id"], d.get("phone") or "") for d in walk] == sorted([(legacy, "13800138000"), (sealed, "")])
    coll.update_one({"_id": legacy, "merchant_id": merchant},
                    {"$set": {"phone_suffix": "8000"}, "$unset": {"phone": "", "phone_key": ""}})
    doc = coll.find_one({"_id": legacy})
    assert "phone" not in doc and "phone_key" not in doc and doc["phone_suffix"] == "8000"
    assert coll.find_one(key) is None
    # With the key gone, another member may hold the same key later (the sparse index).
    coll.insert_one({"_id": new_id("mem"), "merchant_id": merchant, "phone_key": f"{merchant}:13800138000"})


def test_merchants_are_read_with_their_whole_config_to_pick_those_with_birthday_coupons(coll):
    with_coupon, without, older = new_merchant_id(), new_merchant_id(), new_merchant_id()
    coll.insert_one({"_id": with_coupon, "merchant_id": with_coupon, "time_zone": "Asia/Shanghai",
                     "config": {"tier_thresholds": [0, 1, 2, 3], "birthday_coupon_template_ids": ["", "cpt_A", "", ""]}})
    coll.insert_one({"_id": without, "merchant_id": without, "time_zone": "Asia/Tokyo",
                     "config": {"birthday_coupon_template_ids": ["", "", "", ""]}})
    coll.insert_one({"_id": older, "merchant_id": older, "time_zone": "Asia/Shanghai", "config": {}})
    docs = list(coll.find({}, {"time_zone": 1, "config": 1}).sort("_id", 1))
    assert [d["_id"] for d in docs] == sorted([with_coupon, without, older])
    picked = [(d["_id"], d["time_zone"]) for d in docs if gives_birthday_coupons(d)]
    assert picked == [(with_coupon, "Asia/Shanghai")]
