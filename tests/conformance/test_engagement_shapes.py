"""The query and update shapes of engagement (services/content/adapters/engagement_store.py):
unique keys on insert (views, reports, clicks, share codes and their dedup key), the like
flipped only from the other value, counters by upserting `$inc`, comments' visible page
(an `$or` of published and the member's own held ones) and review page by `$in`, the hide
guard on a report count, settings' insert and version compare-and-set, and erasure."""
from __future__ import annotations

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.ids import new_id
from tests.support import new_merchant_id

from services.content.adapters import engagement_store as store
from services.content.domain.engagement import (HELD, HIDDEN, PUBLISHED, REJECTED, Comment, EngagementSettings,
                                                ShareCode, ShareTarget, WordFilter)


@pytest.fixture
def cols(db, request):
    """Fresh collections for one test, indexed as the store's documents are."""
    tag = f"{request.node.name[:30]}_{new_id('c').lower()[-8:]}"
    made = {name: db[f"{name}_{tag}"] for name in ("views", "likes", "stats", "comments", "reports", "settings",
                                                     "codes", "opens", "days", "member_opens")}
    made["comments"].create_index([("merchant_id", ASCENDING), ("key", ASCENDING)], unique=True)
    made["comments"].create_index([("merchant_id", ASCENDING), ("content_id", ASCENDING)])
    made["comments"].create_index([("merchant_id", ASCENDING), ("status", ASCENDING)])
    made["codes"].create_index([("dedup_key", ASCENDING)], unique=True)
    yield made
    for c in made.values():
        c.drop()


def test_a_view_is_inserted_once_per_member_and_day_and_counts_once(cols):
    m, content, member = new_merchant_id(), new_id("cnt"), new_id("mem")
    args = (cols["views"], cols["stats"])
    assert store.add_view(*args, m, content, member, "2026-12-01", 1)
    assert not store.add_view(*args, m, content, member, "2026-12-01", 2)
    assert store.add_view(*args, m, content, member, "2026-12-02", 3)
    assert store.add_view(*args, m, content, new_id("mem"), "2026-12-01", 4)
    assert store.read_counts(cols["stats"], m, [content])[content].views == 3
    assert store.read_counts(cols["stats"], new_merchant_id(), [content]) == {}


def test_a_like_moves_only_from_the_other_state(cols):
    m, content, member = new_merchant_id(), new_id("cnt"), new_id("mem")
    args = (cols["likes"], cols["stats"], m, content)
    assert not store.set_like(*args, member, False, 1)
    assert store.set_like(*args, member, True, 2)
    assert not store.set_like(*args, member, True, 3)
    assert store.set_like(*args, new_id("mem"), True, 4)
    assert store.set_like(*args, member, False, 5)
    assert not store.set_like(*args, member, False, 6)
    assert store.set_like(*args, member, True, 7)
    assert store.read_counts(cols["stats"], m, [content])[content].likes == 2
    assert store.erase_reactions(cols["views"], cols["likes"], m, member) == [content]
    assert store.erase_reactions(cols["views"], cols["likes"], m, member) == []


def test_counters_upsert_and_increment_by_merchant(cols):
    m, a, b = new_merchant_id(), new_id("cnt"), new_id("cnt")
    store.bump_stat(cols["stats"], m, a, "comments", 1)
    store.bump_stat(cols["stats"], m, a, "comments", 1)
    store.bump_stat(cols["stats"], m, a, "comments", -1)
    store.bump_stat(cols["stats"], m, b, "shares", 2)
    counts = store.read_counts(cols["stats"], m, [a, b, new_id("cnt")])
    assert (counts[a].comments, counts[b].shares, counts[b].comments, len(counts)) == (1, 2, 0, 2)


def _comment(m: str, content: str, member: str, text: str, key: str, words=("微信",)) -> Comment:
    return Comment.post(new_id("cmt"), m, content, member, text, WordFilter(words), 1000, key)


def test_visible_page_shows_published_and_only_the_members_own_held(cols):
    c = cols["comments"]
    m, content, author, other = new_merchant_id(), new_id("cnt"), new_id("mem"), new_id("mem")
    rows = [_comment(m, content, author, "好看", "k1"), _comment(m, content, author, "加微信", "k2"),
            _comment(m, content, other, "加微信", "k3"), _comment(m, content, other, "不错", "k4"),
            _comment(m, new_id("cnt"), author, "好", "k5"), _comment(new_merchant_id(), content, author, "好", "k1")]
    rejected = _comment(m, content, author, "x", "k6")
    rejected.status = REJECTED
    for row in rows + [rejected]:
        c.insert_one(store.comment_doc(row))

    def page(member: str, after: str = "", limit: int = 10) -> list[str]:
        return [d["_id"] for d in c.find(store.visible_query(m, content, member, after))
                .sort("_id", DESCENDING).limit(limit)]

    assert page(author) == sorted([rows[0].id, rows[1].id, rows[3].id], reverse=True)
    assert page("") == sorted([rows[0].id, rows[3].id], reverse=True)
    first = page(author, limit=2)
    assert first + page(author, after=first[-1]) == page(author)
    assert store.comment_of(c.find_one({"_id": rows[1].id})) == rows[1]


def test_one_comment_per_member_key_and_the_review_page_by_status(cols):
    c = cols["comments"]
    m, content, member = new_merchant_id(), new_id("cnt"), new_id("mem")
    first = _comment(m, content, member, "加微信", "k1")
    c.insert_one(store.comment_doc(first))
    with pytest.raises(DuplicateKeyError):
        c.insert_one(store.comment_doc(_comment(m, content, member, "again", "k1")))
    hidden = _comment(m, content, member, "好", "k2")
    hidden.status = HIDDEN
    c.insert_one(store.comment_doc(hidden))
    c.insert_one(store.comment_doc(_comment(m, content, member, "好", "k3")))
    found = [d["_id"] for d in c.find(store.review_query(m, (HELD, HIDDEN), "")).sort("_id", ASCENDING)]
    assert found == sorted([first.id, hidden.id])
    assert [d["_id"] for d in c.find(store.review_query(m, (HELD, HIDDEN), found[0]))] == found[1:]
    assert list(c.find(store.review_query(new_merchant_id(), (HELD,), ""))) == []


def test_reports_count_once_each_and_hide_at_the_threshold(cols):
    c, r = cols["comments"], cols["reports"]
    m, content = new_merchant_id(), new_id("cnt")
    comment = _comment(m, content, new_id("mem"), "好", "k1")
    c.insert_one(store.comment_doc(comment))
    a, b = new_id("mem"), new_id("mem")
    assert store.add_report(r, c, m, comment.id, a, "spam", 1)
    assert not store.add_report(r, c, m, comment.id, a, "spam", 2)
    assert c.update_one(store.hide_query(m, comment.id, 2), store.HIDE_UPDATE).modified_count == 0
    assert store.add_report(r, c, m, comment.id, b, "", 3)
    assert c.update_one(store.hide_query(new_merchant_id(), comment.id, 2), store.HIDE_UPDATE).modified_count == 0
    assert c.update_one(store.hide_query(m, comment.id, 2), store.HIDE_UPDATE).modified_count == 1
    assert c.update_one(store.hide_query(m, comment.id, 2), store.HIDE_UPDATE).modified_count == 0
    doc = c.find_one({"_id": comment.id})
    assert (doc["status"], doc["report_count"], doc["version"]) == (HIDDEN, 2, 2)


def test_erasing_a_member_clears_their_comments_once(cols):
    c, r = cols["comments"], cols["reports"]
    m, content, member = new_merchant_id(), new_id("cnt"), new_id("mem")
    mine = _comment(m, content, member, "好", "k1")
    theirs = _comment(m, content, new_id("mem"), "好", "k1")
    for row in (mine, theirs):
        c.insert_one(store.comment_doc(row))
    store.add_report(r, c, m, theirs.id, member, "x", 1)
    assert store.erase_comments(c, r, m, member) == [(content, PUBLISHED)]
    assert store.erase_comments(c, r, m, member) == []
    doc = c.find_one({"_id": mine.id})
    assert (doc["member_id"], doc["text"], doc["status"]) == ("", "", REJECTED)
    assert r.count_documents({"merchant_id": m, "member_id": member}) == 0
    assert c.find_one({"_id": theirs.id})["text"] == "好"


def test_settings_insert_once_then_compare_and_set(cols):
    s, m = cols["settings"], new_merchant_id()
    assert store.settings_of(s.find_one({"_id": m, "merchant_id": m})) == (EngagementSettings(), 0)
    assert store.save_settings(s, m, EngagementSettings(("微信",), 2, 7), 0, 1)
    assert not store.save_settings(s, m, EngagementSettings(("x",), 2, 7), 0, 2)
    assert not store.save_settings(s, m, EngagementSettings(("x",), 2, 7), 2, 2)
    assert store.save_settings(s, m, EngagementSettings(("x", "y"), 5, 30), 1, 3)
    assert store.settings_of(s.find_one({"_id": m, "merchant_id": m})) == (EngagementSettings(("x", "y"), 5, 30), 2)


def _share(m: str, code: str, sharer: str, day: str = "2026-12-01") -> ShareCode:
    return ShareCode(code, m, ShareTarget("CONTENT", "cnt_1", "per_1", "cnt_1"), "member", sharer, 1000, day)


def test_share_codes_are_unique_by_code_and_by_sharer_target_and_day(cols):
    codes, m, sharer = cols["codes"], new_merchant_id(), new_id("mem")
    first = _share(m, "ABCDEFGH23", sharer)
    assert store.add_share(codes, first) == "added"
    assert store.add_share(codes, _share(m, "ABCDEFGH24", sharer)) == "key_taken"
    assert store.add_share(codes, _share(m, "ABCDEFGH23", new_id("mem"))) == "code_taken"
    assert store.add_share(codes, _share(m, "ABCDEFGH25", sharer, "2026-12-02")) == "added"
    assert store.share_of(codes.find_one({"dedup_key": first.dedup_key})) == first


def test_opens_log_every_time_and_count_once_per_opener_and_day(cols):
    m, member = new_merchant_id(), new_id("mem")
    store.add_share(cols["codes"], _share(m, "ABCDEFGH23", new_id("mem")))
    args = (cols["codes"], cols["opens"], cols["days"], cols["member_opens"], m, "ABCDEFGH23")
    assert store.record_open(*args, f"member:{member}", member, "2026-12-01", 10, new_id("sho"))
    assert not store.record_open(*args, f"member:{member}", member, "2026-12-01", 20, new_id("sho"))
    assert store.record_open(*args, "address:10.0.0.1", "", "2026-12-01", 30, new_id("sho"))
    assert store.record_open(*args, f"member:{member}", member, "2026-12-02", 40, new_id("sho"))
    assert cols["codes"].find_one({"_id": "ABCDEFGH23"})["click_count"] == 3
    assert cols["opens"].count_documents({"merchant_id": m}) == 4
    assert cols["member_opens"].find_one({"_id": f"{m}:ABCDEFGH23:{member}", "merchant_id": m})["last_ms"] == 40
    store.erase_shares(cols["codes"], cols["opens"], cols["days"], cols["member_opens"], m, member)
    assert cols["opens"].count_documents({"merchant_id": m}) == 1
    assert cols["member_opens"].count_documents({"merchant_id": m}) == 0


def test_erasing_a_sharer_keeps_the_code_without_them(cols):
    m, sharer = new_merchant_id(), new_id("mem")
    store.add_share(cols["codes"], _share(m, "ABCDEFGH23", sharer))
    store.erase_shares(cols["codes"], cols["opens"], cols["days"], cols["member_opens"], m, sharer)
    doc = cols["codes"].find_one({"_id": "ABCDEFGH23", "merchant_id": m})
    assert (doc["sharer_id"], doc["dedup_key"]) == ("", "erased:ABCDEFGH23")
    # The sharer's (now anonymous) key is free again: sharing anew gives a new code.
    assert store.add_share(cols["codes"], _share(m, "ABCDEFGH24", sharer)) == "added"
