"""Storage of WeChat identity over MongoDB: merchants' WeChat apps (secret sealed, bound to
the merchant and channel), verified phones (sealed, found by a keyed hash, one member per
phone and merchant) and SMS challenges (the code only as a keyed hash; gone after expiry)."""
from __future__ import annotations

import base64
import binascii
import hmac
from datetime import timedelta

import mongoengine as me
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from services.member.adapters.documents import MemberDoc
from services.member.domain.admin import phone_suffix
from services.member.domain.wechat import SmsChallenge, WeChatApp, phone_index
from siyu_kit.db import run_sync
from siyu_kit.protos import utcnow
from siyu_kit.sealing import Sealer


class WeChatAppDoc(me.Document):
    """A merchant's WeChat app on one channel; _id is merchant_id:channel."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    channel = me.StringField(required=True)
    appid = me.StringField(required=True)
    secret_sealed = me.StringField(required=True)
    updated_by = me.StringField()
    updated_at = me.DateTimeField()
    meta = {"collection": "wechat_apps", "indexes": [{"fields": ["merchant_id"]}]}


class MemberPhoneDoc(me.Document):
    """A verified phone; _id is the phone's keyed hash (merchant bound in), so a phone has
    one member per merchant. The phone itself is sealed."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    phone_sealed = me.StringField(required=True)
    created_at = me.DateTimeField()
    meta = {"collection": "member_phones",
            "indexes": [{"fields": ["merchant_id", "member_id"], "unique": True}]}


class SmsChallengeDoc(me.Document):
    id = me.StringField(primary_key=True)  # sms_…
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    phone_index = me.StringField(required=True)
    code_hash = me.StringField(required=True)
    attempts = me.IntField(default=0)
    used = me.IntField(default=0)
    created_at = me.DateTimeField()
    expires_at = me.DateTimeField()
    purge_at = me.DateTimeField()  # MongoDB removes the document after it
    meta = {"collection": "sms_challenges",
            "indexes": [{"fields": ["merchant_id", "member_id", "phone_index", "-created_at"]},
                        {"fields": ["purge_at"], "expireAfterSeconds": 0}]}


ALL = (WeChatAppDoc, MemberPhoneDoc, SmsChallengeDoc)


def ensure_indexes() -> None:
    for doc in ALL:
        doc.ensure_indexes()


def lookup_key(setting: str) -> bytes:
    """SIYU_LOOKUP_KEY: base64 of 32 bytes, or one `kid:base64` entry copied from
    SIYU_DATA_KEY (a deployment whose phones were indexed with its then current data key
    keeps finding them by setting that entry here)."""
    raw = setting.strip().rpartition(":")[2]
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("SIYU_LOOKUP_KEY must be a 32-byte key in base64") from exc
    if len(key) != 32:
        raise ValueError("SIYU_LOOKUP_KEY must be a 32-byte key in base64")
    return key


def index_key(lookup: bytes) -> bytes:
    """The key of the phones' (and SMS codes') keyed hashes, derived from the look-up key
    alone: rotating SIYU_DATA_KEY changes no look-up and needs no re-index. Changing
    SIYU_LOOKUP_KEY itself would lose every verified phone's look-up, so it is never rotated."""
    return hmac.new(lookup, b"siyu member phone index", "sha256").digest()


def fingerprint_key(lookup: bytes) -> bytes:
    """The key of the address book's creation fingerprints (they hold a phone), derived
    from the look-up key: stable across data-key rotations, as a replay must match."""
    return hmac.new(lookup, b"siyu address request fingerprint", "sha256").digest()


def _col(doc):
    return doc._get_collection()


def _app_context(merchant_id: str, channel: str) -> str:
    return f"wechat-app:{merchant_id}:{channel}"


class WeChatAppRepository:
    def __init__(self, sealer: Sealer):
        self.sealer = sealer

    async def get(self, merchant_id: str, channel: str) -> WeChatApp | None:
        doc = await run_sync(_col(WeChatAppDoc).find_one, {"_id": f"{merchant_id}:{channel}",
                                                           "merchant_id": merchant_id})
        if doc is None:
            return None
        secret = self.sealer.open(doc["secret_sealed"], _app_context(merchant_id, channel))
        return WeChatApp(merchant_id, channel, doc["appid"], secret)

    async def put(self, app: WeChatApp, changed_by: str) -> None:
        sealed = self.sealer.seal(app.secret, _app_context(app.merchant_id, app.channel))
        await run_sync(_col(WeChatAppDoc).update_one, {"_id": f"{app.merchant_id}:{app.channel}"},
                       {"$set": {"merchant_id": app.merchant_id, "channel": app.channel, "appid": app.appid,
                                 "secret_sealed": sealed, "updated_by": changed_by, "updated_at": utcnow()}},
                       upsert=True)

    async def appids(self, merchant_id: str) -> dict[str, str]:
        docs = await run_sync(lambda: list(_col(WeChatAppDoc).find({"merchant_id": merchant_id},
                                                                   {"channel": 1, "appid": 1})))
        return {d["channel"]: d["appid"] for d in docs}


class PhoneSuffixBackfill:
    """Members who bound a phone before its last four digits were written beside them:
    the digits are written now (only where they differ)."""
    name = "member-phone-suffix"

    def __init__(self, sealer: Sealer):
        self.sealer = sealer

    def _step(self, after_id: str, limit: int) -> tuple[str, int]:
        docs = list(_col(MemberPhoneDoc).find({"_id": {"$gt": after_id}},
                                              {"merchant_id": 1, "member_id": 1, "phone_sealed": 1})
                    .sort("_id", 1).limit(limit))
        members = _col(MemberDoc)
        for doc in docs:
            phone = self.sealer.open(doc["phone_sealed"], f"phone:{doc['merchant_id']}")
            suffix = phone_suffix(phone)
            members.update_one({"_id": doc["member_id"], "merchant_id": doc["merchant_id"],
                                "phone_suffix": {"$nin": [suffix]}}, {"$set": {"phone_suffix": suffix}})
        return (docs[-1]["_id"] if docs else ""), len(docs)

    async def step(self, after_id: str, limit: int) -> tuple[str, int]:
        return await run_sync(self._step, after_id, limit)


class PhoneBookRepository:
    def __init__(self, sealer: Sealer, index_key: bytes):
        self.sealer = sealer
        self.index_key = index_key

    def _id(self, merchant_id: str, phone: str) -> str:
        return phone_index(self.index_key, merchant_id, phone)

    async def member_of(self, merchant_id: str, phone: str) -> str | None:
        doc = await run_sync(_col(MemberPhoneDoc).find_one, {"_id": self._id(merchant_id, phone),
                                                             "merchant_id": merchant_id})
        if doc is None:
            # A phone stored in clear before phones were sealed, until the member-phone-seal
            # backfill moved it here.
            doc = await run_sync(_col(MemberDoc).find_one, {"phone_key": f"{merchant_id}:{phone}",
                                                            "merchant_id": merchant_id}, {"_id": 1})
            return doc["_id"] if doc else None
        return doc["member_id"] if doc else None

    async def phone_of(self, merchant_id: str, member_id: str) -> str:
        doc = await run_sync(_col(MemberPhoneDoc).find_one, {"merchant_id": merchant_id, "member_id": member_id})
        return self.sealer.open(doc["phone_sealed"], f"phone:{merchant_id}") if doc else ""

    async def phones_of(self, merchant_id: str, member_ids: list[str]) -> dict[str, str]:
        docs = await run_sync(lambda: list(_col(MemberPhoneDoc).find(
            {"merchant_id": merchant_id, "member_id": {"$in": member_ids}}, {"member_id": 1, "phone_sealed": 1})))
        return {d["member_id"]: self.sealer.open(d["phone_sealed"], f"phone:{merchant_id}") for d in docs}

    async def bind(self, merchant_id: str, phone: str, member_id: str) -> bool:
        doc = {"_id": self._id(merchant_id, phone), "merchant_id": merchant_id, "member_id": member_id,
               "phone_sealed": self.sealer.seal(phone, f"phone:{merchant_id}"), "created_at": utcnow()}
        try:
            await run_sync(_col(MemberPhoneDoc).insert_one, doc)
        except DuplicateKeyError:
            return False
        return True


def _challenge(doc: dict) -> SmsChallenge:
    return SmsChallenge(doc["_id"], doc["merchant_id"], doc["member_id"], doc["phone_index"], doc["code_hash"],
                        doc["expires_at"], int(doc.get("attempts") or 0), bool(doc.get("used")))


class SmsChallengeRepository:
    async def add(self, challenge: SmsChallenge) -> None:
        await run_sync(_col(SmsChallengeDoc).insert_one, {
            "_id": challenge.id, "merchant_id": challenge.merchant_id, "member_id": challenge.member_id,
            "phone_index": challenge.phone_index, "code_hash": challenge.code_hash, "attempts": 0, "used": 0,
            "created_at": utcnow(), "expires_at": challenge.expires_at,
            "purge_at": challenge.expires_at + timedelta(days=1)})

    async def latest(self, merchant_id: str, member_id: str, phone_index_: str) -> SmsChallenge | None:
        docs = await run_sync(lambda: list(_col(SmsChallengeDoc).find(
            {"merchant_id": merchant_id, "member_id": member_id, "phone_index": phone_index_})
            .sort("created_at", DESCENDING).limit(1)))
        return _challenge(docs[0]) if docs else None

    async def save(self, challenge: SmsChallenge) -> None:
        # attempts only grow and `used` only turns on: concurrent tries cannot lower them
        await run_sync(_col(SmsChallengeDoc).update_one, {"_id": challenge.id, "merchant_id": challenge.merchant_id},
                       {"$max": {"attempts": challenge.attempts, "used": int(challenge.used)}})
