"""Storage reads of the staff's member views: the search over member documents, the
member's facts (tags, RFM, segments), and the 360° view's coupon, balance and referral
figures. Reads only; each is one command.

Member facts (`member_facts`, kept by segment_store) are read for `tags`, `rfm_r`/`rfm_f`/
`rfm_m` and `rfm_group`; a saved segment filters by its own rule (segments.to_query), as
its count and member list do. A member without a facts document has no facts. Array fields
are matched with `$all`/`$in` (equality on an indexed array is not portable,
docs/storage.md)."""
from __future__ import annotations

from pymongo import DESCENDING

from services.member.adapters.coupon_store import MemberCouponDoc
from services.member.adapters.documents import MemberDoc, within
from services.member.adapters.profile_store import PROFILE_FIELDS, profile_of
from services.member.adapters.segment_store import SegmentRepository
from services.member.domain.segments import to_query
from services.member.adapters.referral_store import ReferralDoc
from services.member.adapters.stored_value_store import BalanceAccountDoc
from services.member.application.member_view_ports import (FactsFilter, MemberFacts, MemberRow, ReferralTies,
                                                           SearchFilter)
from services.member.domain.profile import Profile
from siyu_kit.db import database, run_sync
from siyu_kit.protos import aware, utcnow

FACTS = "member_facts"
# Indexes of the search: members by channel and consent (the facts' own are segment_store's).
MEMBER_INDEXES = ([("merchant_id", 1), ("registered_channel", 1)], [("merchant_id", 1), ("marketing_consent", 1)],
                  [("merchant_id", 1), ("created_at", 1)])
FACTS_INDEXES = ([("merchant_id", 1), ("member_id", 1)], [("merchant_id", 1), ("tags", 1)],
                 [("merchant_id", 1), ("rfm_group", 1)])
_ROW_FIELDS = {"nickname": 1, "avatar_url": 1, "growth": 1, "created_at": 1, "registered_channel": 1,
               "marketing_consent": 1}
COUPON_STATES = ("AVAILABLE", "LOCKED", "USED", "EXPIRED", "REVOKED")


def _members():
    return MemberDoc._get_collection()


def _facts():
    return database()[FACTS]


def ensure_indexes() -> None:
    for keys in MEMBER_INDEXES:
        _members().create_index(keys)
    for keys in FACTS_INDEXES:
        _facts().create_index(keys)


def member_query(merchant_id: str, where: SearchFilter) -> dict:
    query: dict = {"merchant_id": merchant_id}
    if where.phone_suffix:
        query["phone_suffix"] = where.phone_suffix
    within(query, "growth", where.growth_min, where.growth_below)
    within(query, "created_at", where.registered_from, where.registered_before)
    if where.channel:
        query["registered_channel"] = where.channel
    if where.consent is True:
        query["marketing_consent"] = 1
    elif where.consent is False:
        # Members who never answered have no field: $nin matches them (docs/storage.md).
        query["marketing_consent"] = {"$nin": [1]}
    return query


def facts_query(merchant_id: str, where: FactsFilter, segment_rule: dict | None = None) -> dict:
    """The facts a search keeps: tags, RFM group, and the saved segment's own rule (as the
    segment's count and member list apply it: segments.to_query)."""
    query: dict = {"merchant_id": merchant_id}
    if where.tags:
        query["tags"] = {"$all": list(where.tags)}
    if where.rfm_group:
        query["rfm_group"] = where.rfm_group
    if segment_rule is not None:
        query = {"$and": [query, segment_rule]}
    return query


def _row(doc: dict) -> MemberRow:
    return MemberRow(member_id=doc["_id"], nickname=doc.get("nickname") or "", avatar_url=doc.get("avatar_url") or "",
                     growth=int(doc.get("growth") or 0), registered_at=aware(doc.get("created_at")),
                     channel=doc.get("registered_channel") or "", consent=bool(doc.get("marketing_consent")))


def _facts_of(doc: dict) -> MemberFacts:
    return MemberFacts(member_id=doc["member_id"], tags=tuple(doc.get("tags") or ()),
                       recency=int(doc.get("rfm_r") or 0), frequency=int(doc.get("rfm_f") or 0),
                       monetary=int(doc.get("rfm_m") or 0), rfm_group=doc.get("rfm_group") or "")


class MemberSearchStore:
    async def page(self, merchant_id: str, where: SearchFilter, after_id: str, limit: int) -> list[MemberRow]:
        query = member_query(merchant_id, where)
        if after_id:
            query["_id"] = {"$lt": after_id}
        docs = await run_sync(lambda: list(_members().find(query, _ROW_FIELDS).sort("_id", DESCENDING).limit(limit)))
        return [_row(d) for d in docs]

    async def among(self, merchant_id: str, where: SearchFilter, member_ids: list[str]) -> list[MemberRow]:
        if not member_ids:
            return []
        query = {**member_query(merchant_id, where), "_id": {"$in": list(member_ids)}}
        docs = await run_sync(lambda: list(_members().find(query, _ROW_FIELDS).sort("_id", DESCENDING)))
        return [_row(d) for d in docs]

    async def member(self, merchant_id: str, member_id: str) -> tuple[MemberRow, Profile] | None:
        fields = {**_ROW_FIELDS, **{name: 1 for name in PROFILE_FIELDS}, "merchant_id": 1}
        doc = await run_sync(_members().find_one, {"_id": member_id, "merchant_id": merchant_id}, fields)
        return (_row(doc), profile_of(doc)) if doc else None


class MemberFactsStore:
    async def page(self, merchant_id: str, where: FactsFilter, after_id: str, limit: int) -> list[str]:
        segment_rule = None
        if where.segment_id:
            segment = await SegmentRepository().get(merchant_id, where.segment_id)
            # An unknown segment (or another merchant's) matches nobody.
            segment_rule = (to_query(segment.rule, merchant_id, utcnow()) if segment is not None
                            else {"member_id": {"$in": []}})
        query = facts_query(merchant_id, where, segment_rule)
        if after_id:
            query["member_id"] = {"$lt": after_id}
        docs = await run_sync(lambda: list(_facts().find(query, {"member_id": 1}).sort("member_id", DESCENDING)
                                           .limit(limit)))
        return [d["member_id"] for d in docs]

    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, MemberFacts]:
        if not member_ids:
            return {}
        docs = await run_sync(lambda: list(_facts().find(
            {"merchant_id": merchant_id, "member_id": {"$in": list(member_ids)}},
            {"member_id": 1, "tags": 1, "rfm_r": 1, "rfm_f": 1, "rfm_m": 1, "rfm_group": 1})))
        return {d["member_id"]: _facts_of(d) for d in docs}


class MemberOverviewStore:
    async def coupon_counts(self, merchant_id: str, member_id: str) -> dict[str, int]:
        docs = await run_sync(lambda: list(MemberCouponDoc._get_collection().find(
            {"merchant_id": merchant_id, "member_id": member_id}, {"state": 1})))
        counts = dict.fromkeys(COUPON_STATES, 0)
        for d in docs:
            if d.get("state") in counts:  # a coupon still CLAIMING is nobody's yet
                counts[d["state"]] += 1
        return counts

    async def balance(self, merchant_id: str, member_id: str) -> tuple[int, int]:
        doc = await run_sync(BalanceAccountDoc._get_collection().find_one,
                             {"_id": f"{merchant_id}:{member_id}", "merchant_id": merchant_id},
                             {"principal": 1, "bonus": 1})
        return (int(doc.get("principal") or 0), int(doc.get("bonus") or 0)) if doc else (0, 0)

    async def referral(self, merchant_id: str, member_id: str, first: int) -> ReferralTies:
        col = ReferralDoc._get_collection()

        def read() -> ReferralTies:
            mine = col.find_one({"merchant_id": merchant_id, "invitee_id": member_id}, {"inviter_id": 1})
            invited = {"merchant_id": merchant_id, "inviter_id": member_id}
            count = col.count_documents(invited)
            firsts = list(col.find(invited, {"invitee_id": 1}).sort("_id", DESCENDING).limit(first)) if count else []
            return ReferralTies(referrer_id=mine["inviter_id"] if mine else "", invitee_count=count,
                                invitee_ids=tuple(d["invitee_id"] for d in firsts))

        return await run_sync(read)
