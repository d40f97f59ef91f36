"""The shape of marking a member's facts (services/member/adapters/facts_marks.py): the
statistics document created when missing, then `dirty` set and `version` bumped in one
update, so a facts job that read the statistics before loses its settling guard."""
from __future__ import annotations

from services.member.adapters.facts_marks import mark
from services.member.adapters.segment_store import apply_event, settle, stats_of
from tests.support import new_merchant_id


def test_marking_creates_the_statistics_and_bumps_their_version(coll):
    m = new_merchant_id()
    mark(coll, m, "mem_1")
    doc = coll.find_one({"_id": f"{m}:mem_1"})
    assert (doc["dirty"], doc["version"], doc["merchant_id"], doc["paid_orders"]) == (1, 1, m, 0)
    mark(coll, m, "mem_1")
    assert coll.find_one({"_id": f"{m}:mem_1"})["version"] == 2


def test_a_mark_after_the_job_read_keeps_the_member_marked(coll):
    m = new_merchant_id()
    apply_event(coll, m, "mem_1", "ord_1:paid", "20260510", 1, 100, 1, "", 0)
    read = stats_of(coll.find_one({"_id": f"{m}:mem_1"}))
    mark(coll, m, "mem_1")  # growth changed while the job derived the facts
    assert not settle(coll, read, [])
    assert coll.find_one({"_id": f"{m}:mem_1"})["dirty"] == 1
    again = stats_of(coll.find_one({"_id": f"{m}:mem_1"}))
    assert settle(coll, again, [])
    assert coll.find_one({"_id": f"{m}:mem_1"})["dirty"] == 0
