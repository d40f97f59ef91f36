"""The query and update shapes of the member service's WeChat storage
(services/member/adapters/wechat_store.py), against the conformance store."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError
import pytest

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_upsert_set_by_id_creates_then_replaces_the_fields(coll):
    for secret in ("sealed-1", "sealed-2"):
        coll.update_one({"_id": "mch_a:H5"}, {"$set": {"merchant_id": "mch_a", "appid": "wx1",
                                                       "secret_sealed": secret}}, upsert=True)
    assert list(coll.find({"merchant_id": "mch_a"}, {"appid": 1})) == [{"_id": "mch_a:H5", "appid": "wx1"}]
    assert coll.find_one({"_id": "mch_a:H5", "merchant_id": "mch_a"})["secret_sealed"] == "sealed-2"
    assert coll.find_one({"_id": "mch_a:H5", "merchant_id": "mch_b"}) is None


def test_insert_with_a_taken_id_is_refused_and_keeps_the_first(coll):
    coll.insert_one({"_id": "hash-1", "merchant_id": "mch_a", "member_id": "mem_1"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "hash-1", "merchant_id": "mch_a", "member_id": "mem_2"})
    assert coll.find_one({"_id": "hash-1", "merchant_id": "mch_a"})["member_id"] == "mem_1"


def test_max_update_only_raises_counters_and_flags(coll):
    coll.insert_one({"_id": "sms_1", "merchant_id": "mch_a", "attempts": 0, "used": 0})
    coll.update_one({"_id": "sms_1", "merchant_id": "mch_a"}, {"$max": {"attempts": 3, "used": 0}})
    coll.update_one({"_id": "sms_1", "merchant_id": "mch_a"}, {"$max": {"attempts": 2, "used": 1}})
    doc = coll.find_one({"_id": "sms_1"})
    assert (doc["attempts"], doc["used"]) == (3, 1)


def test_latest_by_created_at_with_an_equality_filter(coll):
    coll.create_index([("merchant_id", 1), ("member_id", 1), ("phone_index", 1), ("created_at", -1)])
    for i in range(3):
        coll.insert_one({"_id": f"sms_{i}", "merchant_id": "mch_a", "member_id": "mem_1", "phone_index": "p",
                         "created_at": T0 + timedelta(seconds=i)})
    coll.insert_one({"_id": "sms_other", "merchant_id": "mch_a", "member_id": "mem_2", "phone_index": "p",
                     "created_at": T0 + timedelta(seconds=9)})
    found = list(coll.find({"merchant_id": "mch_a", "member_id": "mem_1", "phone_index": "p"})
                 .sort("created_at", DESCENDING).limit(1))
    assert [d["_id"] for d in found] == ["sms_2"]


def test_newest_by_id_with_three_equalities_and_a_projection(coll):
    """IdentityRepository.openid_of: the member's newest openid in one channel."""
    coll.create_index([("merchant_id", 1), ("member_id", 1)])
    for i, (member, channel) in enumerate((("mem_1", "H5"), ("mem_1", "H5"), ("mem_1", "MINI_PROGRAM"),
                                           ("mem_2", "H5"))):
        coll.insert_one({"_id": f"idn_0{i}", "merchant_id": "mch_a", "member_id": member, "channel": channel,
                         "openid": f"o-{i}"})
    coll.insert_one({"_id": "idn_09", "merchant_id": "mch_b", "member_id": "mem_1", "channel": "H5",
                     "openid": "o-elsewhere"})
    found = list(coll.find({"merchant_id": "mch_a", "member_id": "mem_1", "channel": "H5"}, {"openid": 1})
                 .sort("_id", -1).limit(1))
    assert found == [{"_id": "idn_01", "openid": "o-1"}]
    assert list(coll.find({"merchant_id": "mch_a", "member_id": "mem_1", "channel": "LIVE"}).limit(1)) == []


def test_set_guarded_by_nin_on_a_missing_or_different_value_writes_once(coll):
    """MemberRepository.set_phone_suffix: the field is set when absent or different, and a
    repeat matches nothing."""
    coll.insert_one({"_id": "mem_1", "merchant_id": "mch_a"})
    query = {"_id": "mem_1", "merchant_id": "mch_a", "phone_suffix": {"$nin": ["8000"]}}
    assert coll.update_one(query, {"$set": {"phone_suffix": "8000"}}).modified_count == 1
    assert coll.update_one(query, {"$set": {"phone_suffix": "8000"}}).matched_count == 0
    other = {"_id": "mem_1", "merchant_id": "mch_b", "phone_suffix": {"$nin": ["1234"]}}
    assert coll.update_one(other, {"$set": {"phone_suffix": "1234"}}).matched_count == 0
    assert coll.find_one({"_id": "mem_1"})["phone_suffix"] == "8000"
    coll.create_index([("merchant_id", 1), ("phone_suffix", 1)])
    coll.insert_one({"_id": "mem_2", "merchant_id": "mch_a"})
    assert [d["_id"] for d in coll.find({"merchant_id": "mch_a", "phone_suffix": "8000"}).sort("_id", -1)] == \
        ["mem_1"]


def test_find_by_in_list_with_a_projection(coll):
    """PhoneBookRepository.phones_of: the phones of a page of members in one read."""
    coll.create_index([("merchant_id", 1), ("member_id", 1)], unique=True)
    for i in range(3):
        coll.insert_one({"_id": f"h{i}", "merchant_id": "mch_a", "member_id": f"mem_{i}", "phone_sealed": f"s{i}"})
    coll.insert_one({"_id": "hx", "merchant_id": "mch_b", "member_id": "mem_0", "phone_sealed": "elsewhere"})
    found = coll.find({"merchant_id": "mch_a", "member_id": {"$in": ["mem_0", "mem_2", "mem_9"]}},
                      {"member_id": 1, "phone_sealed": 1})
    assert sorted((d["member_id"], d["phone_sealed"]) for d in found) == [("mem_0", "s0"), ("mem_2", "s2")]
