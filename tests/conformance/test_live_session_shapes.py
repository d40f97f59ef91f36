"""The query and update shapes of live sessions (services/content/adapters/live_store.py):
the insert under a unique idempotency key with its room events, the compare-and-set save,
keyset pages by the schedule key with `$in` on personas and state, the product filter on
the indexed `product_ids` array (`$in`, never equality), the like key under a unique `_id`
with a TTL index, the like counter's guarded `$inc`, the announcer's `$gt` scan and its
conditional update that `$inc`s the pending likes down."""
from __future__ import annotations

import pytest

from siyu_kit.aggregate import StaleVersion
from siyu_kit.events.outbox import decode
from siyu_kit.ids import new_id
from tests.support import new_merchant_id

from services.content.adapters.live_store import LiveLikeKeyDoc, LiveLikeStore, LiveSessionDoc, LiveSessionStore
from services.content.domain import live_sessions as rules
from services.content.domain.live_sessions import LineUpItem, LiveSession, SessionFields

NOW = 1_780_000_000_000
MINUTE = 60_000


def _indexes(coll, doc) -> None:
    """The document's declared indexes, on the test's collection."""
    for spec in doc._meta["index_specs"]:
        options = {k: v for k, v in spec.items() if k not in ("fields", "cls")}
        coll.create_index(spec["fields"], **options)


@pytest.fixture
def sessions(coll) -> LiveSessionStore:
    _indexes(coll, LiveSessionDoc)
    return LiveSessionStore(lambda: coll)


@pytest.fixture
def keys(db, request):
    collection = db[f"k_{new_id('c').lower()[-12:]}"]
    _indexes(collection, LiveLikeKeyDoc)
    yield collection
    collection.drop()


def new_session(merchant_id: str, persona_id: str = "per_a", scheduled_ms: int = NOW, key: str = "",
                product_id: str = "prd_a") -> LiveSession:
    fields = SessionFields(persona_id=persona_id, title="t", scheduled_ms=scheduled_ms,
                           line_up=(LineUpItem("sku_a", 100, product_id=product_id),))
    return LiveSession.schedule(new_id("liv"), merchant_id, fields, key or new_id("key"), NOW)


async def test_insert_is_unique_by_key_and_saves_are_compare_and_set_with_room_events(sessions, coll):
    m = new_merchant_id()
    first = new_session(m, key="k1")
    assert await sessions.add(first) is True
    assert await sessions.add(new_session(m, key="k1")) is False  # the unique key holds
    assert await sessions.add(new_session(new_merchant_id(), key="k1")) is True  # per merchant
    assert (await sessions.by_key(m, "k1")).id == first.id

    live = await sessions.get(m, first.id)
    stale = await sessions.get(m, first.id)
    live.change_state(rules.LIVE, NOW + 1)
    live.pin("sku_a", NOW + 2)
    await sessions.save(live)
    stale.change_state(rules.CANCELLED, NOW + 3)
    with pytest.raises(StaleVersion):
        await sessions.save(stale)
    stored = await sessions.get(m, first.id)
    assert (stored.state, stored.pinned_sku_id, stored.started_ms, stored.version) == (rules.LIVE, "sku_a",
                                                                                     NOW + 1, 2)
    assert stored.fields.line_up == first.fields.line_up  # the line-up survives as sub-documents
    doc = coll.find_one({"_id": first.id})
    subjects = {e["subject"] for e in doc["outbox"].values()}
    assert subjects == {f"siyu.live.room.{first.id}"} and len(doc["outbox"]) == 2
    assert {decode(e["data"]).aggregate_version for e in doc["outbox"].values()} == {2}
    assert await sessions.get("mch_other", first.id) is None


async def test_staff_pages_by_schedule_key_with_persona_and_state_filters(sessions):
    m = new_merchant_id()
    rows = [new_session(m, persona, NOW + i * MINUTE) for i, persona in enumerate(("per_a", "per_b", "per_a",
                                                                                 "per_c"))]
    for s in rows:
        await sessions.add(s)
    await sessions.add(new_session(new_merchant_id(), "per_a"))
    started = await sessions.get(m, rows[2].id)
    started.change_state(rules.LIVE, NOW)
    await sessions.save(started)

    everything = await sessions.page(m, None, "", "", 10)
    assert [s.id for s in everything] == [s.id for s in reversed(rows)]
    first = await sessions.page(m, ["per_a", "per_b"], "", "", 2)
    below = f"{first[-1].fields.scheduled_ms:015d}:{first[-1].id}"
    rest = await sessions.page(m, ["per_a", "per_b"], "", below, 2)
    assert [s.id for s in first + rest] == [rows[2].id, rows[1].id, rows[0].id]
    assert [s.id for s in await sessions.page(m, ["per_a"], rules.SCHEDULED, "", 10)] == [rows[0].id]


async def test_persona_and_product_reads_take_states_soonest_first(sessions):
    m = new_merchant_id()
    later = new_session(m, "per_a", NOW + 2 * MINUTE, product_id="prd_x")
    sooner = new_session(m, "per_a", NOW + MINUTE, product_id="prd_x")
    done = new_session(m, "per_a", NOW, product_id="prd_x")
    other = new_session(m, "per_b", NOW, product_id="prd_y")
    for s in (later, sooner, done, other):
        await sessions.add(s)
    done = await sessions.get(m, done.id)
    done.change_state(rules.CANCELLED, NOW)
    await sessions.save(done)
    assert [s.id for s in await sessions.of_persona(m, "per_a", rules.UPCOMING, 10)] == [sooner.id, later.id]
    assert [s.id for s in await sessions.of_product(m, "prd_x", rules.UPCOMING, 10)] == [sooner.id, later.id]
    assert [s.id for s in await sessions.of_product(m, "prd_x", rules.UPCOMING, 1)] == [sooner.id]
    assert await sessions.of_product(new_merchant_id(), "prd_x", rules.UPCOMING, 10) == []


async def test_likes_count_once_per_key_only_while_live_and_are_announced_by_one_conditional_update(
        sessions, coll, keys):
    m = new_merchant_id()
    likes = LiveLikeStore(lambda: coll, lambda: keys)
    s = new_session(m)
    await sessions.add(s)
    assert await likes.like(m, s.id, "mem_1", "k1", 3, NOW) is None  # SCHEDULED: nothing counted
    started = await sessions.get(m, s.id)
    started.change_state(rules.LIVE, NOW)
    await sessions.save(started)
    assert await likes.like(m, s.id, "mem_1", "k1", 3, NOW) == 3  # the key was freed again
    assert await likes.like(m, s.id, "mem_1", "k1", 3, NOW) == 3  # a repeat
    assert await likes.like(m, s.id, "mem_2", "k1", 2, NOW) == 5
    assert await likes.like("mch_other", s.id, "mem_1", "k9", 2, NOW) is None

    due = [d for d in await likes.due(100) if d.session_id == s.id]
    assert [(d.likes, d.announced, d.version) for d in due] == [(5, 0, 2)]
    assert await likes.like(m, s.id, "mem_3", "k1", 4, NOW) == 9  # arrives between the read and the write
    assert await likes.announce(due[0], NOW + 1000) is True
    assert await likes.announce(due[0], NOW + 1000) is False  # a second replica with the same read
    doc = coll.find_one({"_id": s.id})
    assert (doc["likes"], doc["likes_announced"], doc["likes_pending"]) == (9, 5, 4)
    # Longest unannounced first: a session never announced comes before this one.
    quiet = new_session(m, key="quiet")
    await sessions.add(quiet)
    coll.update_one({"_id": quiet.id}, {"$set": {"likes": 1, "likes_pending": 1}})
    assert [d.session_id for d in await likes.due(100) if d.session_id in (s.id, quiet.id)] == [quiet.id, s.id]
    coll.delete_one({"_id": quiet.id})
    again = [d for d in await likes.due(100) if d.session_id == s.id][0]
    assert await likes.announce(again, NOW + 2000) is True
    assert [d for d in await likes.due(100) if d.session_id == s.id] == []
    heard = [decode(e["data"]) for e in coll.find_one({"_id": s.id})["outbox"].values()
             if e["subject"] == f"siyu.live.room.{s.id}"]
    assert len(heard) == 3  # started, and two like totals
    # Staff edits are not disturbed by likes: the version only moves with them.
    assert (await sessions.get(m, s.id)).version == 2 and (await sessions.get(m, s.id)).likes == 9
