"""Referral storage over MongoDB, implementing services.member.application.referral_ports,
and the referral events' protos.

- `invite_codes`: one per member (`_id` "<merchant>:<member>"), the code unique per merchant.
- `referrals`: one per invitee (unique per merchant), with an outbox: ReferralBound at
  insert, ReferralRewarded with the versioned save that marks it rewarded. The first
  completed order is claimed by one conditional update on `first_order_id` being "".
- `referral_caps`: one counter per inviter and month; taking a place is ONE update
  guarded by `count < cap` and the referral not having taken one (`taken.<referral id>`).
- `referral_guard`: the farm guard, one keyed hash per document (`_id` "<merchant>:<hash>").
- `referral_settings`: one per merchant.

Every shape is in tests/conformance/test_referral_shapes.py.
"""
from __future__ import annotations

from datetime import datetime, timezone

import mongoengine as me
from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from siyu.member.v1 import events_pb2, member_pb2

from siyu_kit.db import run_sync
from siyu_kit.events.documents import OutboxDocument
from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import aware, epoch_ms, timestamp
from siyu_kit.repository import insert_new, save_change

from services.member.domain.referral import (Referral, ReferralBound, ReferralReversed, ReferralRewarded,
                                             ReferralSettings, Reversal, Reward)

NO_OUTBOX = {"outbox": 0}


class InviteCodeDoc(me.Document):
    id = me.StringField(primary_key=True)  # "<merchant id>:<member id>"
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    code = me.StringField(required=True)
    meta = {"collection": "invite_codes", "indexes": [{"fields": ["merchant_id", "code"], "unique": True}]}


class ReferralDoc(OutboxDocument):
    id = me.StringField(primary_key=True)  # ref_…
    merchant_id = me.StringField(required=True)
    inviter_id = me.StringField(required=True)
    invitee_id = me.StringField(required=True)
    code = me.StringField()
    bound_at = me.DateTimeField()
    unionid_hash = me.StringField()
    state = me.StringField()
    first_order_id = me.StringField(default="")
    terms = me.DictField()
    completed_ms = me.IntField(default=0)
    inviter_reward = me.DictField()
    invitee_reward = me.DictField()
    reversed_by = me.StringField()
    inviter_reversal = me.DictField()
    invitee_reversal = me.DictField()
    version = me.IntField(default=1)
    meta = {"collection": "referrals",
            "indexes": [{"fields": ["merchant_id", "invitee_id"], "unique": True},
                        {"fields": ["merchant_id", "inviter_id"]},
                        {"fields": ["outbox_pending"]}]}


class ReferralCapDoc(me.Document):
    id = me.StringField(primary_key=True)  # "<merchant id>:<inviter id>:<YYYYMM>"
    merchant_id = me.StringField(required=True)
    count = me.IntField(default=0)
    taken = me.DictField()
    meta = {"collection": "referral_caps"}


class FarmGuardDoc(me.Document):
    id = me.StringField(primary_key=True)  # "<merchant id>:<keyed hash>"
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    meta = {"collection": "referral_guard"}


class ReferralSettingsDoc(me.Document):
    id = me.StringField(primary_key=True)  # the merchant id
    merchant_id = me.StringField(required=True)
    settings = me.DictField()
    meta = {"collection": "referral_settings"}


def ensure_indexes() -> None:
    for doc in (InviteCodeDoc, ReferralDoc, ReferralCapDoc, FarmGuardDoc, ReferralSettingsDoc):
        doc.ensure_indexes()


def _codes() -> Collection:
    return InviteCodeDoc._get_collection()


def _referrals() -> Collection:
    return ReferralDoc._get_collection()


def _caps() -> Collection:
    return ReferralCapDoc._get_collection()


def _guard() -> Collection:
    return FarmGuardDoc._get_collection()


def _settings() -> Collection:
    return ReferralSettingsDoc._get_collection()


def outbox_collections() -> list[Collection]:
    return [_referrals()]


# ---- protos ----------------------------------------------------------------------------
def reward_proto(reward: Reward) -> member_pb2.ReferralReward:
    return member_pb2.ReferralReward(outcome=reward.outcome, points=reward.points, coupon_id=reward.coupon_id)


def _event(referral: Referral, event, version: int) -> Event:
    if isinstance(event, ReferralBound):
        payload = events_pb2.ReferralBound(referral_id=event.referral_id, inviter_id=event.inviter_id,
                                           invitee_id=event.invitee_id, bound_at=timestamp(event.at))
    elif isinstance(event, ReferralRewarded):
        payload = events_pb2.ReferralRewarded(
            referral_id=event.referral_id, inviter_id=event.inviter_id, invitee_id=event.invitee_id,
            order_id=event.order_id, inviter=reward_proto(event.inviter), invitee=reward_proto(event.invitee))
    elif isinstance(event, ReferralReversed):
        payload = events_pb2.ReferralReversed(
            referral_id=event.referral_id, inviter_id=event.inviter_id, invitee_id=event.invitee_id,
            order_id=event.order_id, refund_id=event.refund_id, inviter=_reversal_proto(event.inviter),
            invitee=_reversal_proto(event.invitee), reversed_at=timestamp(event.at))
    else:  # pragma: no cover - every domain event of a referral is mapped above
        raise TypeError(f"no proto for {type(event).__name__}")
    return event_for(payload, merchant_id=referral.merchant_id, aggregate_id=referral.id,
                     aggregate_version=version)


def _reversal_proto(r: Reversal) -> events_pb2.ReferralReversal:
    return events_pb2.ReferralReversal(outcome=r.outcome, points=r.points, owed=r.owed, coupon_id=r.coupon_id,
                                       coupon_state=r.coupon_state)


# ---- documents ⇄ domain ----------------------------------------------------------------
def settings_doc(s: ReferralSettings) -> dict:
    return {"enabled": int(s.enabled), "inviter_reward_kind": s.inviter_reward_kind,
            "inviter_points": s.inviter_points, "inviter_coupon_template_id": s.inviter_coupon_template_id,
            "invitee_coupon_template_id": s.invitee_coupon_template_id, "monthly_cap": s.monthly_cap}


def _settings_of(d: dict | None) -> ReferralSettings | None:
    if not d:
        return None
    return ReferralSettings(enabled=bool(d.get("enabled")), inviter_reward_kind=d.get("inviter_reward_kind") or "POINTS",
                            inviter_points=int(d.get("inviter_points") or 0),
                            inviter_coupon_template_id=d.get("inviter_coupon_template_id") or "",
                            invitee_coupon_template_id=d.get("invitee_coupon_template_id") or "",
                            monthly_cap=int(d.get("monthly_cap") or 0))


def _reward_doc(r: Reward) -> dict:
    return {"outcome": r.outcome, "points": r.points, "coupon_id": r.coupon_id}


def _reward_of(d: dict | None) -> Reward:
    d = d or {}
    return Reward(d.get("outcome") or "", int(d.get("points") or 0), d.get("coupon_id") or "")


def _reversal_doc(r: Reversal) -> dict:
    return {"outcome": r.outcome, "points": r.points, "owed": r.owed, "coupon_id": r.coupon_id,
            "coupon_state": r.coupon_state}


def _reversal_of(d: dict | None) -> Reversal:
    d = d or {}
    return Reversal(d.get("outcome") or "", int(d.get("points") or 0), int(d.get("owed") or 0),
                    d.get("coupon_id") or "", d.get("coupon_state") or "")


def referral_of(d: dict) -> Referral:
    completed_ms = int(d.get("completed_ms") or 0)
    return Referral(id=d["_id"], merchant_id=d["merchant_id"], inviter_id=d["inviter_id"],
                    invitee_id=d["invitee_id"], code=d.get("code") or "", bound_at=aware(d.get("bound_at")),
                    unionid_hash=d.get("unionid_hash") or "", state=d.get("state") or "BOUND",
                    first_order_id=d.get("first_order_id") or "", terms=_settings_of(d.get("terms")),
                    completed_at=datetime.fromtimestamp(completed_ms / 1000, timezone.utc) if completed_ms else None,
                    inviter_reward=_reward_of(d.get("inviter_reward")),
                    invitee_reward=_reward_of(d.get("invitee_reward")), reversed_by=d.get("reversed_by") or "",
                    inviter_reversal=_reversal_of(d.get("inviter_reversal")),
                    invitee_reversal=_reversal_of(d.get("invitee_reversal")), version=int(d.get("version") or 1))


class InviteCodeRepository:
    async def code_of(self, merchant_id: str, member_id: str) -> str | None:
        doc = await run_sync(_codes().find_one, {"_id": f"{merchant_id}:{member_id}", "merchant_id": merchant_id})
        return doc["code"] if doc else None

    async def member_of(self, merchant_id: str, code: str) -> str | None:
        doc = await run_sync(_codes().find_one, {"merchant_id": merchant_id, "code": code})
        return doc["member_id"] if doc else None

    async def add(self, merchant_id: str, member_id: str, code: str) -> bool:
        return await run_sync(insert_new, _codes(), {"_id": f"{merchant_id}:{member_id}", "merchant_id": merchant_id,
                                                     "member_id": member_id, "code": code})


class ReferralRepository:
    async def of_invitee(self, merchant_id: str, invitee_id: str) -> Referral | None:
        doc = await run_sync(_referrals().find_one, {"merchant_id": merchant_id, "invitee_id": invitee_id},
                             NO_OUTBOX)
        return referral_of(doc) if doc else None

    async def add(self, referral: Referral) -> bool:
        events = [_event(referral, e, 1) for e in referral.pull_events()]
        doc = {"_id": referral.id, "merchant_id": referral.merchant_id, "inviter_id": referral.inviter_id,
               "invitee_id": referral.invitee_id, "code": referral.code, "bound_at": referral.bound_at,
               "unionid_hash": referral.unionid_hash, "state": referral.state, "first_order_id": "",
               "completed_ms": 0, "inviter_reward": {}, "invitee_reward": {}, "version": 1,
               "outbox_pending": 0, "outbox_seq": 0}
        return await run_sync(insert_new, _referrals(), doc, events)

    async def claim_first_order(self, merchant_id: str, referral_id: str, order_id: str, terms: ReferralSettings,
                                completed_at: datetime) -> bool:
        return await run_sync(claim_first, _referrals(), merchant_id, referral_id, order_id, settings_doc(terms),
                              epoch_ms(completed_at))

    async def save(self, referral: Referral) -> None:
        events = [_event(referral, e, referral.version + 1) for e in referral.pull_events()]
        await run_sync(save_change, _referrals(), {"_id": referral.id, "merchant_id": referral.merchant_id},
                       {"$set": {"state": referral.state, "inviter_reward": _reward_doc(referral.inviter_reward),
                                 "invitee_reward": _reward_doc(referral.invitee_reward),
                                 "reversed_by": referral.reversed_by,
                                 "inviter_reversal": _reversal_doc(referral.inviter_reversal),
                                 "invitee_reversal": _reversal_doc(referral.invitee_reversal)}},
                       events, version=referral.version)

    async def of_inviter(self, merchant_id: str, inviter_id: str, before_id: str, limit: int) -> list[Referral]:
        docs = await run_sync(invitees_page, _referrals(), merchant_id, inviter_id, before_id, limit)
        return [referral_of(d) for d in docs]


def take_place(caps: Collection, merchant_id: str, inviter_id: str, month: str, referral_id: str, cap: int) -> bool:
    """The month's counter (created at its first use), then ONE guarded update: fewer than
    `cap` places taken and none by this referral. True also when the referral had its place."""
    cap_id = f"{merchant_id}:{inviter_id}:{month}"
    try:
        caps.insert_one({"_id": cap_id, "merchant_id": merchant_id, "count": 0, "taken": {}})
    except DuplicateKeyError:
        pass  # the month's counter exists: the guarded update decides
    if caps.update_one({"_id": cap_id, "merchant_id": merchant_id, "count": {"$lt": cap},
                        f"taken.{referral_id}": {"$exists": False}},
                       {"$inc": {"count": 1}, "$set": {f"taken.{referral_id}": 1}}).modified_count == 1:
        return True
    doc = caps.find_one({"_id": cap_id, "merchant_id": merchant_id})
    return bool(doc and referral_id in (doc.get("taken") or {}))


def claim_first(referrals: Collection, merchant_id: str, referral_id: str, order_id: str, terms: dict,
                completed_ms: int) -> bool:
    """The order becomes the referral's first completed one unless another was first."""
    return referrals.update_one(
        {"_id": referral_id, "merchant_id": merchant_id, "first_order_id": ""},
        {"$set": {"first_order_id": order_id, "terms": terms, "state": "REWARDING", "completed_ms": completed_ms},
         "$inc": {"version": 1}}).modified_count == 1


def invitees_page(referrals: Collection, merchant_id: str, inviter_id: str, before_id: str, limit: int) -> list[dict]:
    query: dict = {"merchant_id": merchant_id, "inviter_id": inviter_id}
    if before_id:
        query["_id"] = {"$lt": before_id}
    return list(referrals.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(limit))


def guard_holders(guard: Collection, merchant_id: str, hashes: list[str]) -> set[str]:
    docs = guard.find({"_id": {"$in": [f"{merchant_id}:{h}" for h in hashes]}, "merchant_id": merchant_id})
    return {d["member_id"] for d in docs}


def guard_add(guard: Collection, merchant_id: str, hashes: list[str], member_id: str) -> None:
    for h in hashes:
        try:
            guard.insert_one({"_id": f"{merchant_id}:{h}", "merchant_id": merchant_id, "member_id": member_id})
        except DuplicateKeyError:
            pass  # kept already


class ReferralCapRepository:
    async def take(self, merchant_id: str, inviter_id: str, month: str, referral_id: str, cap: int) -> bool:
        return await run_sync(take_place, _caps(), merchant_id, inviter_id, month, referral_id, cap)


class FarmGuardRepository:
    async def holders(self, merchant_id: str, hashes: list[str]) -> set[str]:
        return await run_sync(guard_holders, _guard(), merchant_id, hashes)

    async def add(self, merchant_id: str, hashes: list[str], member_id: str) -> None:
        await run_sync(guard_add, _guard(), merchant_id, hashes, member_id)


class ReferralSettingsRepository:
    async def get(self, merchant_id: str) -> ReferralSettings:
        doc = await run_sync(_settings().find_one, {"_id": merchant_id, "merchant_id": merchant_id})
        return (_settings_of(doc.get("settings")) if doc else None) or ReferralSettings()

    async def put(self, merchant_id: str, settings: ReferralSettings) -> None:
        await run_sync(_settings().update_one, {"_id": merchant_id},
                       {"$set": {"merchant_id": merchant_id, "settings": settings_doc(settings)}}, upsert=True)
