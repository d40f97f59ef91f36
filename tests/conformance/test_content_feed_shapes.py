"""The query and update shapes of follows, follower counts, the feed's and persona pages'
reads and the publishing job (services/content/adapters/feed_store.py), and the guide
filters of the staff lists (adapters/repositories.py): unique follow per pair, the
conditional flips, the guarded count, keyset paging by string keys with `$in` filters on
scalar and array fields, and the due range on epoch milliseconds."""
from __future__ import annotations

from services.content.adapters.feed_store import FollowerCountStore, FollowStore, PublishedStore, follow_id
from services.content.domain.contents import feed_key
from siyu_kit.ids import new_id
from tests.support import new_merchant_id

NOW = 1_780_000_000_000


def content_doc(merchant_id: str, persona_id: str, status: str, published_ms: int = 0, visible_on=("H5",),
                publish_at_ms: int = 0) -> dict:
    cid = new_id("cnt")
    return {"_id": cid, "merchant_id": merchant_id, "code": cid.lower(), "persona_id": persona_id,
            "type": "ARTICLE", "title": "t", "status": status, "version": 1, "published_at_ms": published_ms,
            "visible_on": list(visible_on), "channels": [], "publish_at_ms": publish_at_ms,
            "feed_key": feed_key(published_ms, cid) if status == "PUBLISHED" else "", "created_ms": NOW,
            "updated_ms": NOW}


def test_a_follow_is_one_document_per_pair_flipped_by_conditional_updates(coll):
    store, m = FollowStore(lambda: coll), new_merchant_id()
    assert store._follow(m, "mem_1", "per_a", NOW)
    assert not store._follow(m, "mem_1", "per_a", NOW + 1)  # the unique _id holds
    assert store._unfollow(m, "mem_1", "per_a", NOW + 2) and not store._unfollow(m, "mem_1", "per_a", NOW + 3)
    assert store._follow(m, "mem_1", "per_a", NOW + 4)  # flipped back on its version
    doc = coll.find_one({"_id": follow_id(m, "mem_1", "per_a")})
    assert (doc["active"], doc["version"], doc["followed_ms"], len(doc["outbox"])) == (1, 3, NOW + 4, 3)
    assert not store._unfollow("mch_other", "mem_1", "per_a", NOW + 5)  # the merchant is in every filter


def test_the_members_follows_page_by_key_and_erasure_removes_active_ones_once(coll):
    store, m = FollowStore(lambda: coll), new_merchant_id()
    for i, persona in enumerate(("per_a", "per_b", "per_c")):
        store._follow(m, "mem_1", persona, NOW + i)
    store._unfollow(m, "mem_1", "per_b", NOW + 9)
    store._follow(m, "mem_2", "per_a", NOW)
    first = store._page(m, "mem_1", "", 1)
    rest = store._page(m, "mem_1", first[-1][0], 10)
    assert [f.persona_id for _, f in first + rest] == ["per_c", "per_a"]
    assert sorted(store._remove_member(m, "mem_1")) == ["per_a", "per_c"]
    assert store._remove_member(m, "mem_1") == []
    assert [d["member_id"] for d in coll.find({"merchant_id": m})] == ["mem_2"]


def test_the_follower_count_moves_by_one_guarded_increment(coll):
    counts, m = FollowerCountStore(lambda: coll), new_merchant_id()
    coll.insert_one({"_id": "per_a", "merchant_id": m, "follower_count": 0})
    assert counts._add(m, "per_a", +1) == 1 and counts._add(m, "per_a", +1) == 2
    assert counts._add(m, "per_a", -1) == 1 and counts._add(m, "per_a", -1) == 0
    assert counts._add(m, "per_a", -1) == 0  # never below zero
    assert coll.find_one({"_id": "per_a"})["follower_count"] == 0
    assert counts._add("mch_other", "per_a", +1) == 0


def test_published_content_pages_by_feed_key_with_persona_and_channel_filters(coll):
    store, m = PublishedStore(lambda: coll), new_merchant_id()
    docs = [content_doc(m, "per_a", "PUBLISHED", NOW + i) for i in range(3)]
    docs += [content_doc(m, "per_b", "PUBLISHED", NOW + 10), content_doc(m, "per_a", "PUBLISHED", NOW + 11,
                                                                         visible_on=("MINI_PROGRAM",)),
             content_doc(m, "per_a", "ARCHIVED"), content_doc(new_merchant_id(), "per_a", "PUBLISHED", NOW + 12)]
    coll.insert_many(docs)
    everything = store._published(m, "H5", None, "", 10)
    assert [c.id for c in everything] == [docs[3]["_id"], docs[2]["_id"], docs[1]["_id"], docs[0]["_id"]]
    first = store._published(m, "H5", ["per_a"], "", 2)
    rest = store._published(m, "H5", ["per_a"], first[-1].feed_key, 2)
    assert [c.id for c in first + rest] == [docs[2]["_id"], docs[1]["_id"], docs[0]["_id"]]
    assert [c.id for c in store._published(m, "MINI_PROGRAM", ["per_a", "per_x"], "", 10)] == [docs[4]["_id"]]
    assert len(store._published(m, "", None, "", 10)) == 5


def test_due_scheduled_content_is_found_by_its_epoch_ms_over_merchants(coll):
    store = PublishedStore(lambda: coll)
    early, late = content_doc(new_merchant_id(), "per_a", "SCHEDULED", publish_at_ms=NOW - 5), \
        content_doc(new_merchant_id(), "per_a", "SCHEDULED", publish_at_ms=NOW)
    later = content_doc(new_merchant_id(), "per_a", "SCHEDULED", publish_at_ms=NOW + 1)
    done = content_doc(new_merchant_id(), "per_a", "PUBLISHED", NOW - 9, publish_at_ms=NOW - 9)
    coll.insert_many([later, late, done, early])
    assert [c.id for c in store._due(NOW, 10)] == [early["_id"], late["_id"]]
    # The publishing write: conditional on the version it read, so a second replica loses.
    guard = {"_id": early["_id"], "merchant_id": early["merchant_id"], "version": 1}
    change = {"$set": {"status": "PUBLISHED", "published_at_ms": NOW}, "$inc": {"version": 1}}
    assert coll.update_one(guard, change).modified_count == 1
    assert coll.update_one(guard, change).modified_count == 0
    assert [c.id for c in store._due(NOW, 10)] == [late["_id"]]


def test_guide_filters_of_the_staff_lists(coll):
    m = new_merchant_id()
    coll.insert_many([{"_id": "per_1", "merchant_id": m, "guide_ids": ["stf_g", "stf_h"]},
                      {"_id": "per_2", "merchant_id": m, "guide_ids": ["stf_h"]},
                      {"_id": "per_3", "merchant_id": m, "guide_ids": []}])
    assert [d["_id"] for d in coll.find({"merchant_id": m, "guide_ids": {"$in": ["stf_g"]}}).sort("_id", -1)] == [
        "per_1"]
    assert [d["_id"] for d in coll.find({"merchant_id": m, "guide_ids": {"$in": ["stf_h"]}, "_id": {"$lt": "per_2"}})
            .sort("_id", -1)] == ["per_1"]
    assert [d["_id"] for d in coll.find({"merchant_id": m, "_id": {"$in": ["per_2", "per_3"]}}).sort("_id", -1)] == [
        "per_3", "per_2"]
