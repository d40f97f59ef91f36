"""Counting into a day's funnel bucket once per cause, against collections that behave as
MongoDB documents them (services/content/adapters/funnel_store.Buckets).

MongoDB runs an upsert as "match, then insert when nothing matched", and two upserts of a
new `_id` can both find nothing: the second insert then fails with a duplicate key on
`_id`, and nothing of it is applied. The embedded server serialises writes, so this never
shows there; the stand-in below lets a test put another writer between the two steps."""
from __future__ import annotations

import copy
from dataclasses import dataclass

from hypothesis import given, settings, strategies as st
from pymongo.errors import DuplicateKeyError

from services.content.adapters.funnel_store import Buckets, guard_id
from services.content.domain.funnels import Counters

KEY = "mch_A:live_session:liv_1:2026-06-01"
FIELDS = {"merchant_id": "mch_A", "dimension": "live_session", "ref_id": "liv_1", "day": "2026-06-01",
          "currency": "CNY"}
ONE = Counters(orders=1)


@dataclass
class Result:
    matched_count: int
    modified_count: int
    upserted_id: object = None


def _get(doc: dict, path: str):
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


_MISSING = object()


def _matches(doc: dict, query: dict) -> bool:
    for path, cond in query.items():
        value = _get(doc, path)
        if isinstance(cond, dict) and "$exists" in cond:
            if (value is not _MISSING) != cond["$exists"]:
                return False
        elif value is _MISSING or value != cond:
            return False
    return True


def _apply(doc: dict, update: dict) -> None:
    for path, amount in update.get("$inc", {}).items():
        doc[path] = doc.get(path, 0) + amount
    for path, value in update.get("$set", {}).items():
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    for path in update.get("$unset", {}):
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target.get(part, {})
        target.pop(last, None)


class Collection:
    """Documents by `_id`, with the unique `_id` index. `between_match_and_insert` holds
    writes of other writers to run after an upsert found nothing and before it inserts;
    `before_update` holds writes to run before the next update starts."""

    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.between_match_and_insert: list = []
        self.before_update: list = []

    def find_one(self, query: dict, projection: dict | None = None):
        for doc in self.docs.values():
            if _matches(doc, query):
                return copy.deepcopy(doc)
        return None

    def insert_one(self, doc: dict):
        if doc["_id"] in self.docs:
            raise DuplicateKeyError("E11000 duplicate key error collection: _id_ dup key")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def update_one(self, query: dict, update: dict, upsert: bool = False) -> Result:
        while self.before_update:
            self.before_update.pop(0)()
        for doc in self.docs.values():
            if _matches(doc, query):
                _apply(doc, update)
                return Result(1, 1)
        if not upsert:
            return Result(0, 0)
        while self.between_match_and_insert:
            self.between_match_and_insert.pop(0)()
        if query["_id"] in self.docs:
            raise DuplicateKeyError("E11000 duplicate key error collection: _id_ dup key")
        doc = {k: v for k, v in query.items() if not isinstance(v, dict) and "." not in k}
        _apply(doc, update)
        self.docs[doc["_id"]] = doc
        return Result(0, 0, doc["_id"])


def world(mark_limit: int = 200) -> tuple[Buckets, Collection, Collection]:
    buckets, guards = Collection(), Collection()
    return Buckets(buckets, guards, mark_limit=mark_limit), buckets, guards


def orders(buckets: Collection) -> int:
    return buckets.docs[KEY]["orders"]


def test_two_first_writes_to_a_new_bucket_both_count():
    counting, buckets, _ = world()
    # B's whole first write lands between A's match (no bucket) and A's insert.
    buckets.between_match_and_insert.append(lambda: counting.apply_once(KEY, FIELDS, "evt_B", ONE))
    assert counting.apply_once(KEY, FIELDS, "evt_A", ONE) is True
    assert orders(buckets) == 2
    assert set(buckets.docs[KEY]["marks"]) == {"evt_A", "evt_B"}


def test_the_race_loses_a_count_when_a_duplicate_key_is_taken_for_already_counted():
    """What the stand-in reproduces: the former single upsert, which took the duplicate key
    for "counted before", acks B's event without counting it."""
    buckets = Collection()

    def old_apply(cause: str) -> bool:
        try:
            buckets.update_one({"_id": KEY, f"seen.{cause}": {"$exists": False}},
                               {"$inc": {"orders": 1}, "$set": {f"seen.{cause}": 1}}, upsert=True)
        except DuplicateKeyError:
            return False
        return True

    buckets.between_match_and_insert.append(lambda: old_apply("evt_A"))
    assert old_apply("evt_B") is False
    assert buckets.docs[KEY]["orders"] == 1  # two events, one count


def test_a_replay_counts_once():
    counting, buckets, _ = world()
    assert counting.apply_once(KEY, FIELDS, "evt_A", ONE) is True
    assert counting.apply_once(KEY, FIELDS, "evt_A", ONE) is False
    assert orders(buckets) == 1


def test_a_replay_racing_the_first_delivery_of_a_new_bucket_counts_once():
    counting, buckets, _ = world()
    buckets.between_match_and_insert.append(lambda: counting.apply_once(KEY, FIELDS, "evt_A", ONE))
    assert counting.apply_once(KEY, FIELDS, "evt_A", ONE) is False
    assert orders(buckets) == 1


def test_marks_move_out_to_guards_and_a_replay_of_a_moved_cause_still_counts_once():
    counting, buckets, guards = world(mark_limit=3)
    for i in range(10):
        assert counting.apply_once(KEY, FIELDS, f"evt_{i}", ONE) is True
    bucket = buckets.docs[KEY]
    assert len(bucket["marks"]) < 3 and bucket["marks_n"] == len(bucket["marks"])
    assert bucket["gen"] == 3
    assert guard_id(KEY, "evt_0") in guards.docs
    assert guards.docs[guard_id(KEY, "evt_0")]["merchant_id"] == "mch_A"
    for i in range(10):
        assert counting.apply_once(KEY, FIELDS, f"evt_{i}", ONE) is False
    assert orders(buckets) == 10


def test_a_writer_that_read_the_bucket_before_its_mark_moved_out_reads_again():
    counting, buckets, guards = world(mark_limit=1000)
    counting.apply_once(KEY, FIELDS, "evt_A", ONE)
    # The replay reads the generation and finds no guard; then the marks move out (the
    # replay's cause with them) before its update runs.
    buckets.before_update.append(lambda: counting.settle(KEY, "mch_A"))
    assert counting.apply_once(KEY, FIELDS, "evt_A", ONE) is False
    assert orders(buckets) == 1
    assert guard_id(KEY, "evt_A") in guards.docs and buckets.docs[KEY]["marks"] == {}


def test_a_bucket_keeps_at_most_its_mark_limit_however_busy_the_day():
    counting, buckets, guards = world(mark_limit=50)
    for i in range(1000):
        counting.apply_once(KEY, FIELDS, f"c:{i}", Counters(product_clicks=1))
    bucket = buckets.docs[KEY]
    assert bucket["product_clicks"] == 1000
    assert len(bucket["marks"]) < 50
    assert len(guards.docs) + len(bucket["marks"]) == 1000


def test_a_settle_that_stopped_half_way_is_finished_by_the_next_one():
    counting, buckets, guards = world(mark_limit=1000)
    for cause in ("evt_A", "evt_B"):
        counting.apply_once(KEY, FIELDS, cause, ONE)
    guards.insert_one({"_id": guard_id(KEY, "evt_A"), "merchant_id": "mch_A"})  # the first guard, then a crash
    assert counting.settle(KEY, "mch_A") == 2
    assert counting.settle(KEY, "mch_A") == 0
    assert set(guards.docs) == {guard_id(KEY, "evt_A"), guard_id(KEY, "evt_B")}


def test_a_bucket_from_before_generations_gets_one():
    counting, buckets, _ = world()
    buckets.insert_one({"_id": KEY, "orders": 4, "seen": {"evt_old": 1}})
    assert counting.apply_once(KEY, FIELDS, "evt_new", ONE) is True
    assert orders(buckets) == 5 and buckets.docs[KEY]["gen"] == 0


# Deliveries: (cause, a racing delivery to run inside its upsert, settle before its update).
deliveries = st.lists(st.tuples(st.integers(0, 15), st.one_of(st.none(), st.integers(0, 15)), st.booleans()),
                      min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(deliveries, st.integers(min_value=1, max_value=6))
def test_any_interleaving_of_deliveries_replays_and_settles_counts_each_cause_once(items, mark_limit):
    counting, buckets, guards = world(mark_limit=mark_limit)
    delivered: set[str] = set()

    def deliver(cause: str) -> None:
        delivered.add(cause)
        counting.apply_once(KEY, FIELDS, cause, ONE)

    for cause, racing, settle_first in items:
        if racing is not None:
            buckets.between_match_and_insert.append(lambda r=racing: deliver(f"evt_{r}"))
        if settle_first and KEY in buckets.docs:
            buckets.before_update.append(lambda: counting.settle(KEY, "mch_A"))
        deliver(f"evt_{cause}")
        buckets.between_match_and_insert.clear()
        buckets.before_update.clear()
    bucket = buckets.docs[KEY]
    marked, guarded = set(bucket.get("marks", {})), {g.split("|")[1] for g in guards.docs}
    assert bucket["orders"] == len(delivered)  # every cause delivered, each once
    assert marked | guarded == delivered
    assert bucket["marks_n"] == len(marked) < mark_limit + 1
