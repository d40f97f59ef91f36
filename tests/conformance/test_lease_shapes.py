"""The query and update shapes of leases (siyu_kit/lease.py) and of the relay's sweep
(siyu_kit/events/relay.py), one test each."""
from __future__ import annotations

import threading

from siyu_kit.events.outbox import OUTBOX, PENDING, SEQ, SINCE
from siyu_kit.events.relay import _left_pending
from siyu_kit.lease import MongoLeases

TTL = 10_000


def test_acquire_creates_a_missing_lease_with_token_one(coll):
    leases = MongoLeases(coll)
    assert leases.acquire("job", "a", 1_000, TTL) == 1
    doc = coll.find_one({"_id": "job"})
    assert (doc["holder"], doc["token"], doc["expires_ms"]) == ("a", 1, 1_000 + TTL)


def test_acquire_of_a_held_lease_collides_and_changes_nothing(coll):
    leases = MongoLeases(coll)
    assert leases.acquire("job", "a", 1_000, TTL) == 1
    assert leases.acquire("job", "b", 1_000 + TTL - 1, TTL) is None
    doc = coll.find_one({"_id": "job"})
    assert (doc["holder"], doc["token"], doc["expires_ms"]) == ("a", 1, 1_000 + TTL)
    assert coll.count_documents({}) == 1


def test_acquire_of_an_expired_or_released_lease_increments_the_token(coll):
    leases = MongoLeases(coll)
    assert leases.acquire("job", "a", 1_000, TTL) == 1
    assert leases.acquire("job", "b", 1_000 + TTL, TTL) == 2  # expired exactly now
    assert leases.release("job", "b", 2)
    assert leases.acquire("job", "c", 1_000 + TTL + 1, TTL) == 3
    assert coll.find_one({"_id": "job"})["holder"] == "c"


def test_renew_and_release_only_by_the_holder_with_its_token(coll):
    leases = MongoLeases(coll)
    assert leases.acquire("job", "a", 1_000, TTL) == 1
    assert leases.renew("job", "a", 1, 5_000, TTL)
    assert coll.find_one({"_id": "job"})["expires_ms"] == 5_000 + TTL
    assert not leases.renew("job", "b", 1, 6_000, TTL)
    assert not leases.renew("job", "a", 2, 6_000, TTL)
    assert not leases.release("job", "b", 1)
    assert not leases.renew("other", "a", 1, 6_000, TTL)
    # The same expiry again still counts as renewed (matched, not modified).
    assert leases.renew("job", "a", 1, 5_000, TTL)
    assert leases.release("job", "a", 1)
    assert coll.find_one({"_id": "job"})["expires_ms"] == 0
    assert not leases.renew("job", "b", 1, 6_000, TTL)


def _race(coll, now_ms: int, n: int = 8) -> list[int | None]:
    leases = MongoLeases(coll)
    start = threading.Barrier(n)
    won: list[int | None] = [None] * n

    def one(i: int) -> None:
        start.wait()
        won[i] = leases.acquire("job", f"r{i}", now_ms, TTL)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_acquirers_racing_for_a_missing_lease_exactly_one_wins(coll):
    won = _race(coll, 1_000)
    assert [t for t in won if t is not None] == [1]
    assert coll.find_one({"_id": "job"})["holder"] == f"r{won.index(1)}"


def test_acquirers_racing_for_an_expired_lease_exactly_one_wins(coll):
    MongoLeases(coll).acquire("job", "dead", 1_000, TTL)
    won = _race(coll, 1_000 + TTL + 1)
    assert [t for t in won if t is not None] == [2]
    assert coll.find_one({"_id": "job"})["token"] == 2


def test_sweep_takes_documents_pending_for_the_grace_or_longer_and_those_without_a_time(coll):
    coll.insert_many([
        {"_id": "old", PENDING: 1, SEQ: 1, SINCE: 1_000, OUTBOX: {"e1": {"subject": "s", "data": b"x"}}},
        {"_id": "fresh", PENDING: 1, SEQ: 1, SINCE: 9_000, OUTBOX: {"e2": {"subject": "s", "data": b"x"}}},
        {"_id": "sent", PENDING: 0, SEQ: 1, SINCE: 1_000, OUTBOX: {}},
        {"_id": "legacy", PENDING: 1, SEQ: 1, OUTBOX: {"e3": {"subject": "s", "data": b"x"}}},
        {"_id": "quiet", PENDING: 0, SEQ: 0},
    ])
    assert sorted(d["_id"] for d in _left_pending(coll, 5_000)) == ["legacy", "old"]
    assert sorted(d["_id"] for d in _left_pending(coll, 8_999)) == ["legacy", "old"]
    # Written in the cutoff's own millisecond: taken (a pass with no grace takes all).
    assert sorted(d["_id"] for d in _left_pending(coll, 9_000)) == ["fresh", "legacy", "old"]


def test_publish_of_kicked_documents_reads_them_by_id_while_pending(coll):
    coll.insert_many([{"_id": "a", PENDING: 1, SEQ: 1, OUTBOX: {"e1": {"subject": "s", "data": b"x"}}},
                      {"_id": "b", PENDING: 0, SEQ: 1, OUTBOX: {}},
                      {"_id": "c", PENDING: 1, SEQ: 2, OUTBOX: {"e2": {"subject": "s", "data": b"y"}}}])
    docs = list(coll.find({"_id": {"$in": ["a", "b", "zz"]}, PENDING: 1}, {OUTBOX: 1, SEQ: 1}))
    assert [(d["_id"], d[SEQ], sorted(d[OUTBOX])) for d in docs] == [("a", 1, ["e1"])]
