"""Storage of member profiles over MongoDB: the profile's fields live on the member
document (so the member, the staff's list and the profile agree on nickname and avatar),
written by one compare-and-set on the member's version with the profile's events in its
outbox. Birthday rewards are their own collection, one document per member and year.

The birthday is stored as "MM-DD" (`birthday_md`) beside an optional year, and the members
of a merchant are found by it through the (merchant_id, birthday_md) index.

Phones: members stored before verified phones were sealed may still hold theirs in clear
(`phone`, with `phone_key` = merchant:phone). Reads accept that value; the member-phone-seal
backfill moves it into the sealed phone book (found by its keyed hash) and removes it."""
from __future__ import annotations

from datetime import datetime, timezone

import mongoengine as me
from pymongo.errors import DuplicateKeyError

from services.member.adapters import profile_messages
from services.member.adapters.documents import MemberDoc, MerchantDoc
from services.member.adapters.wechat_store import MemberPhoneDoc
from services.member.application.profile_ports import BirthdayReward
from services.member.domain.admin import phone_suffix
from services.member.domain.birthday import Birthday
from services.member.domain.profile import Profile
from services.member.domain.wechat import phone_index
from siyu_kit.db import run_sync
from siyu_kit.protos import epoch_ms, utcnow
from siyu_kit.repository import save_change
from siyu_kit.sealing import Sealer

BIRTHDAY_INDEX = [("merchant_id", 1), ("birthday_md", 1)]


class BirthdayRewardDoc(me.Document):
    """One member's birthday reward of one year; _id is merchant:member:year, so a second
    claim of it is a duplicate whoever makes it."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    template_id = me.StringField(required=True)
    done = me.IntField(default=0)
    coupon_id = me.StringField()
    created_at = me.DateTimeField()
    meta = {"collection": "birthday_rewards", "indexes": [{"fields": ["merchant_id", "member_id"]}]}


def _col(doc):
    return doc._get_collection()


def ensure_indexes() -> None:
    BirthdayRewardDoc.ensure_indexes()
    # The birthday job's look-up: a merchant's members born on some month-days.
    _col(MemberDoc).create_index(BIRTHDAY_INDEX, name="merchant_id_1_birthday_md_1")


def _ms_time(value) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc) if value else None


def profile_of(doc: dict) -> Profile:
    md = doc.get("birthday_md") or ""
    return Profile(member_id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                   nickname=doc.get("nickname") or "", avatar_url=doc.get("avatar_url") or "",
                   birthday=Birthday.from_month_day(md, int(doc.get("birthday_year") or 0)) if md else None,
                   birthday_set_by=doc.get("birthday_set_by") or "", gender=doc.get("gender") or "",
                   region_code=doc.get("region_code") or "", marketing_consent=bool(doc.get("marketing_consent")),
                   consent_changed_at=_ms_time(doc.get("consent_changed_ms")),
                   personalised_recommendations=not doc.get("recommendations_off"))


PROFILE_FIELDS = ("nickname", "avatar_url", "birthday_md", "birthday_year", "birthday_set_by", "gender", "region_code",
           "marketing_consent", "consent_changed_ms", "recommendations_off", "version")


class ProfileRepository:
    async def get(self, merchant_id: str, member_id: str) -> Profile | None:
        doc = await run_sync(_col(MemberDoc).find_one, {"_id": member_id, "merchant_id": merchant_id},
                             {name: 1 for name in PROFILE_FIELDS + ("merchant_id",)})
        return profile_of(doc) if doc else None

    async def save(self, profile: Profile) -> None:
        events = profile_messages.profile_events(profile, profile.next_version)
        await run_sync(save_change, _col(MemberDoc), {"_id": profile.member_id, "merchant_id": profile.merchant_id},
                       {"$set": profile_fields(profile)}, events, version=profile.version)
        profile.version = profile.next_version


def profile_fields(profile: Profile) -> dict:
    """What a profile change writes: flags as 0/1 ints, times as epoch milliseconds; the
    birthday only once set (never unset), the consent time only once changed."""
    fields: dict = {"nickname": profile.nickname, "avatar_url": profile.avatar_url, "gender": profile.gender,
                    "region_code": profile.region_code, "marketing_consent": int(profile.marketing_consent),
                    "recommendations_off": int(not profile.personalised_recommendations),
                    "profile_updated_ms": epoch_ms(utcnow())}
    if profile.birthday is not None:
        fields |= {"birthday_md": profile.birthday.month_day, "birthday_year": profile.birthday.year,
                   "birthday_set_by": profile.birthday_set_by}
    if profile.consent_changed_at is not None:
        fields["consent_changed_ms"] = epoch_ms(profile.consent_changed_at)
    return fields


# ---- the birthday job's reads and its rewards ---------------------------------------------

def _reward(doc: dict) -> BirthdayReward:
    return BirthdayReward(doc["_id"].split(":", 1)[1], doc["template_id"], bool(doc.get("done")))


def gives_birthday_coupons(merchant_doc: dict) -> bool:
    return any((merchant_doc.get("config") or {}).get("birthday_coupon_template_ids") or [])


def born_on_query(merchant_id: str, month_days: list[str], after_id: str) -> dict:
    """A merchant's members born on some month-days, after an id (sorted by _id): served
    by the (merchant_id, birthday_md) index."""
    query: dict = {"merchant_id": merchant_id, "birthday_md": {"$in": list(month_days)}}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return query


class BirthdayStore:
    async def merchant_zones(self) -> list[tuple[str, str]]:
        # The whole config is read (a dotted projection comes back flattened); merchants
        # whose tiers give no birthday coupon are left out, so their members are not scanned.
        docs = await run_sync(lambda: list(_col(MerchantDoc).find({}, {"time_zone": 1, "config": 1})
                                           .sort("_id", 1)))
        return [(d["_id"], d.get("time_zone") or "") for d in docs if gives_birthday_coupons(d)]

    async def born_on(self, merchant_id: str, month_days: list[str], after_id: str,
                      limit: int) -> list[tuple[str, str]]:
        query = born_on_query(merchant_id, month_days, after_id)
        docs = await run_sync(lambda: list(_col(MemberDoc).find(query, {"birthday_md": 1})
                                           .sort("_id", 1).limit(limit)))
        return [(d["_id"], d["birthday_md"]) for d in docs]

    async def reward_of(self, merchant_id: str, key: str) -> BirthdayReward | None:
        doc = await run_sync(_col(BirthdayRewardDoc).find_one, {"_id": f"{merchant_id}:{key}",
                                                                "merchant_id": merchant_id})
        return _reward(doc) if doc else None

    async def claim(self, merchant_id: str, member_id: str, key: str, template_id: str) -> BirthdayReward:
        doc = {"_id": f"{merchant_id}:{key}", "merchant_id": merchant_id, "member_id": member_id,
               "template_id": template_id, "done": 0, "created_at": utcnow()}
        try:
            await run_sync(_col(BirthdayRewardDoc).insert_one, doc)
        except DuplicateKeyError:
            found = await self.reward_of(merchant_id, key)
            if found is not None:
                return found
            raise
        return _reward(doc)

    async def finish(self, merchant_id: str, key: str, coupon_id: str) -> None:
        await run_sync(_col(BirthdayRewardDoc).update_one,
                       {"_id": f"{merchant_id}:{key}", "merchant_id": merchant_id, "done": {"$nin": [1]}},
                       {"$set": {"done": 1, "coupon_id": coupon_id}})


# ---- sealing phones stored in clear ------------------------------------------------------

class PhoneSealBackfill:
    """Members whose verified phone is still stored in clear on the member document: the
    phone is sealed into the phone book (its keyed hash as id), its last four digits
    written, and the clear value removed, in that order, each step safe to repeat."""
    name = "member-phone-seal"

    def __init__(self, sealer: Sealer, index_key: bytes):
        self.sealer = sealer
        self.index_key = index_key

    def _step(self, after_id: str, limit: int) -> tuple[str, int]:
        members = _col(MemberDoc)
        docs = list(members.find({"_id": {"$gt": after_id}}, {"merchant_id": 1, "phone": 1})
                    .sort("_id", 1).limit(limit))
        for doc in docs:
            phone = doc.get("phone") or ""
            if phone:
                self._seal(members, doc["merchant_id"], doc["_id"], phone)
        return (docs[-1]["_id"] if docs else ""), len(docs)

    def _seal(self, members, merchant_id: str, member_id: str, phone: str) -> None:
        try:
            _col(MemberPhoneDoc).insert_one({
                "_id": phone_index(self.index_key, merchant_id, phone), "merchant_id": merchant_id,
                "member_id": member_id, "phone_sealed": self.sealer.seal(phone, f"phone:{merchant_id}"),
                "created_at": utcnow()})
        except DuplicateKeyError:
            # Sealed already (a repeat), or a phone verified since stands (this member's
            # other phone, or the phone verified by another member): the clear one goes.
            held = _col(MemberPhoneDoc).find_one({"_id": phone_index(self.index_key, merchant_id, phone),
                                                  "merchant_id": merchant_id}, {"member_id": 1})
            if not held or held["member_id"] != member_id:
                members.update_one({"_id": member_id, "merchant_id": merchant_id},
                                   {"$unset": {"phone": "", "phone_key": ""}})
                return
        members.update_one({"_id": member_id, "merchant_id": merchant_id}, {
            "$set": {"phone_suffix": phone_suffix(phone)}, "$unset": {"phone": "", "phone_key": ""}})

    async def step(self, after_id: str, limit: int) -> tuple[str, int]:
        return await run_sync(self._step, after_id, limit)
