"""Marking a member's segment facts for the facts job (services.member.application.ports.
FactsMarks): the member's `member_stats` document (services/member/adapters/segment_store.py)
is created when missing, then ONE update sets `dirty` and bumps `version`. The bump makes a
facts job that read the statistics before the mark lose its settling compare-and-set, so the
member stays marked and is derived again with what changed (their growth, so their tier).

Its shape is in tests/conformance/test_facts_mark_shapes.py.
"""
from __future__ import annotations

from pymongo.collection import Collection

from services.member.adapters.segment_store import MemberStatsDoc
from siyu_kit.db import run_sync
from siyu_kit.repository import insert_new


def mark(coll: Collection, merchant_id: str, member_id: str) -> None:
    key = f"{merchant_id}:{member_id}"
    # The same empty statistics an order event starts from (segment_store.apply_event).
    insert_new(coll, {"_id": key, "merchant_id": merchant_id, "member_id": member_id, "paid_orders": 0,
                      "refunds": 0, "refunded_amount": 0, "days": {}, "channels": {}, "causes": {},
                      "version": 0, "dirty": 0})
    coll.update_one({"_id": key, "merchant_id": merchant_id}, {"$set": {"dirty": 1}, "$inc": {"version": 1}})


class FactsMarkRepository:
    async def mark(self, merchant_id: str, member_id: str) -> None:
        await run_sync(mark, MemberStatsDoc._get_collection(), merchant_id, member_id)
