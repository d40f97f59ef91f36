"""The query shapes of the staff's member views (services/member/adapters/member_view_store.py)
and the order service's member summary: the member search's filters, each alone and
together, newest first with an `$lt` cursor and an `$in` batch; consent as a 0/1 flag some
members lack (`$nin: [1]`); facts over *indexed* arrays with `$all` and `$in` (equality on
an indexed array is not portable), paged by member id; the 360° view's small reads
(projections, a whole sub-document, count_documents)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pymongo import DESCENDING

from services.member.adapters.member_view_store import FACTS_INDEXES, MEMBER_INDEXES, facts_query, member_query
from services.member.application.member_view_ports import FactsFilter, SearchFilter
from siyu_kit.ids import new_id
from tests.support import new_merchant_id

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_member_search_filters_alone_and_together_with_a_cursor_and_a_batch(coll):
    for keys in MEMBER_INDEXES:
        coll.create_index(keys)
    merchant = new_merchant_id()
    ids = [new_id("mem") for _ in range(5)]
    coll.insert_many([
        {"_id": ids[0], "merchant_id": merchant, "phone_suffix": "1234", "growth": 0, "created_at": START,
         "registered_channel": "H5"},  # never answered consent: no field
        {"_id": ids[1], "merchant_id": merchant, "phone_suffix": "5678", "growth": 1500, "marketing_consent": 1,
         "created_at": START + timedelta(days=1), "registered_channel": "MINI_PROGRAM"},
        {"_id": ids[2], "merchant_id": merchant, "growth": 6000, "marketing_consent": 0,
         "created_at": START + timedelta(days=2), "registered_channel": "H5"},
        {"_id": ids[3], "merchant_id": merchant, "growth": 6000, "marketing_consent": 1,
         "created_at": START + timedelta(days=3), "registered_channel": "H5"},
        {"_id": ids[4], "merchant_id": new_merchant_id(), "phone_suffix": "5678", "growth": 1500,
         "marketing_consent": 1, "created_at": START, "registered_channel": "MINI_PROGRAM"},
    ])
    fields = {"nickname": 1, "growth": 1, "created_at": 1, "registered_channel": 1, "marketing_consent": 1}

    def find(after="", limit=10, **where):
        query = member_query(merchant, SearchFilter(**where))
        if after:
            query["_id"] = {"$lt": after}
        return [d["_id"] for d in coll.find(query, fields).sort("_id", DESCENDING).limit(limit)]

    assert find() == ids[3::-1]
    assert find(phone_suffix="5678") == [ids[1]]
    assert find(growth_min=1000, growth_below=5000) == [ids[1]]
    assert find(growth_min=5000) == [ids[3], ids[2]]
    assert find(registered_from=START + timedelta(days=1), registered_before=START + timedelta(days=3)) == \
        [ids[2], ids[1]]
    assert find(channel="H5") == [ids[3], ids[2], ids[0]]
    assert find(consent=True) == [ids[3], ids[1]]
    assert find(consent=False) == [ids[2], ids[0]]  # 0 and missing
    assert find(channel="H5", consent=False, growth_min=5000) == [ids[2]]
    assert find(limit=2) == [ids[3], ids[2]] and find(after=ids[2], limit=2) == [ids[1], ids[0]]
    assert find(after=ids[2], consent=False) == [ids[0]]
    batch = {**member_query(merchant, SearchFilter(channel="H5")), "_id": {"$in": [ids[0], ids[1], ids[3], ids[4]]}}
    assert [d["_id"] for d in coll.find(batch, fields).sort("_id", DESCENDING)] == [ids[3], ids[0]]
    one = coll.find_one({"_id": ids[1], "merchant_id": merchant}, {**fields, "merchant_id": 1, "version": 1})
    assert one["growth"] == 1500 and one["marketing_consent"] == 1 and one["created_at"] == START + timedelta(days=1)
    assert coll.find_one({"_id": ids[1], "merchant_id": new_merchant_id()}, fields) is None


def test_facts_over_indexed_arrays_with_all_and_in_paged_by_member_id(coll):
    for keys in FACTS_INDEXES:
        coll.create_index(keys)
    merchant = new_merchant_id()
    members = sorted(new_id("mem") for _ in range(4))
    coll.insert_many([
        {"_id": f"{merchant}:{members[0]}", "merchant_id": merchant, "member_id": members[0],
         "tags": ["vip", "coffee"], "rfm_r": 5, "rfm_f": 4, "rfm_m": 3, "rfm_group": "重要价值客户"},
        {"_id": f"{merchant}:{members[1]}", "merchant_id": merchant, "member_id": members[1], "tags": ["vip"],
         "rfm_group": "重要唤回客户"},
        {"_id": f"{merchant}:{members[2]}", "merchant_id": merchant, "member_id": members[2], "tags": []},
        {"_id": f"x:{members[3]}", "merchant_id": new_merchant_id(), "member_id": members[3], "tags": ["vip"]},
    ])

    def page(after="", limit=10, segment_rule=None, **where):
        query = facts_query(merchant, FactsFilter(**where), segment_rule)
        if after:
            query["member_id"] = {"$lt": after}
        return [d["member_id"] for d in coll.find(query, {"member_id": 1}).sort("member_id", DESCENDING).limit(limit)]

    assert page(tags=("vip",)) == [members[1], members[0]]
    assert page(tags=("coffee", "vip")) == [members[0]]
    assert page(tags=("tea",)) == []
    assert page(rfm_group="重要唤回客户") == [members[1]]
    # A saved segment's rule (segments.to_query) joins the search's own facts under $and.
    assert page(segment_rule={"rfm_r": {"$gte": 5}}) == [members[0]]
    assert page(segment_rule={"rfm_group": {"$in": ["重要唤回客户"]}}, tags=("vip",)) == [members[1]]
    assert page(segment_rule={"member_id": {"$in": []}}) == []
    assert page(tags=("vip",), limit=1) == [members[1]] and page(tags=("vip",), after=members[1]) == [members[0]]
    found = {d["member_id"]: d for d in coll.find({"merchant_id": merchant, "member_id": {"$in": members}},
                                                  {"member_id": 1, "tags": 1, "rfm_r": 1, "rfm_f": 1, "rfm_m": 1, "rfm_group": 1})}
    assert set(found) == set(members[:3])
    assert (found[members[0]]["rfm_r"], found[members[0]]["rfm_f"], found[members[0]]["rfm_m"]) == (5, 4, 3) and found[members[0]]["tags"] == ["vip", "coffee"]


def test_the_360_views_small_reads(coll):
    merchant, member, inviter = new_merchant_id(), new_id("mem"), new_id("mem")
    coll.insert_many([
        {"_id": new_id("cpn"), "merchant_id": merchant, "member_id": member, "state": "AVAILABLE"},
        {"_id": new_id("cpn"), "merchant_id": merchant, "member_id": member, "state": "USED"},
        {"_id": new_id("cpn"), "merchant_id": new_merchant_id(), "member_id": member, "state": "USED"},
    ])
    states = [d["state"] for d in coll.find({"merchant_id": merchant, "member_id": member}, {"state": 1})]
    assert sorted(states) == ["AVAILABLE", "USED"]
    # Referrals: who invited the member; how many they invited and the newest few.
    invitees = [new_id("mem") for _ in range(3)]
    coll.insert_many([{"_id": new_id("ref"), "merchant_id": merchant, "inviter_id": inviter, "invitee_id": member}]
                     + [{"_id": new_id("ref"), "merchant_id": merchant, "inviter_id": member, "invitee_id": i}
                        for i in invitees])
    assert coll.find_one({"merchant_id": merchant, "invitee_id": member}, {"inviter_id": 1})["inviter_id"] == inviter
    invited = {"merchant_id": merchant, "inviter_id": member}
    assert coll.count_documents(invited) == 3
    assert coll.count_documents({"merchant_id": new_merchant_id(), "inviter_id": member}) == 0
    newest = [d["invitee_id"] for d in coll.find(invited, {"invitee_id": 1}).sort("_id", DESCENDING).limit(2)]
    assert newest == invitees[:0:-1]
    # A balance account by its composed id; an order's whole sub-document projected.
    coll.insert_one({"_id": f"{merchant}:{member}", "merchant_id": merchant, "principal": 500, "bonus": 20})
    bal = coll.find_one({"_id": f"{merchant}:{member}", "merchant_id": merchant}, {"principal": 1, "bonus": 1})
    assert (bal["principal"], bal["bonus"]) == (500, 20)
    coll.insert_one({"_id": new_id("ord"), "merchant_id": merchant, "member_id": inviter, "state": "PAID",
                     "payable": 990, "created_at": START, "paid_at": START,
                     "stored_value": {"recharge": {"package_id": "p"}, "tender": {"balance": 0}}})
    order = coll.find_one({"merchant_id": merchant, "member_id": inviter},
                          {"state": 1, "payable": 1, "refunded_amount": 1, "created_at": 1, "paid_at": 1,
                           "payment_id": 1, "stored_value": 1})
    assert order["stored_value"]["recharge"] == {"package_id": "p"} and "refunded_amount" not in order
