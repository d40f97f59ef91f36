"""WeChat Pay credentials and the notifications already taken, in MongoDB.

Credentials are one document per merchant and channel; the API v3 key, the merchant
private key and the platform public key are sealed (siyu_kit.sealing, context = the
merchant id and channel), so a stored value copied to another merchant does not open.
Seen notifications are one document per (merchant, timestamp:nonce): the insert is the
check, so a replayed notification is refused however many arrive at once; they expire
after a day (far past the five-minute window)."""
from __future__ import annotations

from datetime import datetime

from mongoengine import DateTimeField, DictField, Document, StringField
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.protos import aware
from siyu_kit.sealing import Sealer

from services.order.domain.payments import WechatCredentials

SEEN_TTL_S = 24 * 3600
_SEALED = ("api_v3_key", "private_key_pem", "platform_public_key_pem")


class WechatPayCredentialsDoc(Document):
    id = StringField(primary_key=True)  # "<merchant_id>:<channel>"
    merchant_id = StringField(required=True)
    channel = StringField(required=True)
    app_id = StringField(required=True)
    mch_id = StringField(required=True)
    serial_no = StringField(required=True)
    platform_public_key_id = StringField(required=True)
    # {api_v3_key, private_key_pem, platform_public_key_pem}: each sealed
    sealed = DictField(required=True)
    updated_at = DateTimeField()
    updated_by = StringField()

    meta = {"collection": "wechat_pay_credentials", "strict": False,
            "indexes": [{"fields": ["merchant_id"]}]}


class WechatPayNotificationDoc(Document):
    id = StringField(primary_key=True)  # "<merchant_id>:<timestamp>:<nonce>"
    merchant_id = StringField(required=True)
    at = DateTimeField(required=True)

    meta = {"collection": "wechat_pay_notifications", "strict": False,
            "indexes": [{"fields": ["at"], "expireAfterSeconds": SEEN_TTL_S}]}


def ensure_indexes() -> None:
    WechatPayCredentialsDoc.ensure_indexes()
    WechatPayNotificationDoc.ensure_indexes()


def _context(merchant_id: str, channel: str) -> str:
    return f"wechat-pay:{merchant_id}:{channel}"


class WechatCredentialStore:
    """The WechatCredentialRepository port over MongoDB, sealed at rest."""

    def __init__(self, sealer: Sealer):
        self._sealer = sealer

    @staticmethod
    def _c():
        return WechatPayCredentialsDoc._get_collection()

    def _of(self, doc: dict) -> WechatCredentials:
        ctx = _context(doc["merchant_id"], doc["channel"])
        opened = {name: self._sealer.open(doc["sealed"][name], ctx) for name in _SEALED}
        return WechatCredentials(
            merchant_id=doc["merchant_id"], channel=doc["channel"], app_id=doc["app_id"], mch_id=doc["mch_id"],
            serial_no=doc["serial_no"], platform_public_key_id=doc["platform_public_key_id"],
            updated_at=aware(doc.get("updated_at")), updated_by=doc.get("updated_by") or "", **opened)

    async def get(self, merchant_id: str, channel: str) -> WechatCredentials | None:
        def find() -> WechatCredentials | None:
            doc = self._c().find_one({"_id": f"{merchant_id}:{channel}", "merchant_id": merchant_id})
            return self._of(doc) if doc else None
        return await run_sync(find)

    async def of_merchant(self, merchant_id: str) -> list[WechatCredentials]:
        def find() -> list[WechatCredentials]:
            return [self._of(d) for d in self._c().find({"merchant_id": merchant_id}).sort("_id", 1)]
        return await run_sync(find)

    async def put(self, credentials: WechatCredentials) -> None:
        c = credentials
        ctx = _context(c.merchant_id, c.channel)
        doc = {"_id": f"{c.merchant_id}:{c.channel}", "merchant_id": c.merchant_id, "channel": c.channel, "app_id": c.app_id, "mch_id": c.mch_id,
               "serial_no": c.serial_no, "platform_public_key_id": c.platform_public_key_id,
               "sealed": {name: self._sealer.seal(getattr(c, name), ctx) for name in _SEALED},
               "updated_at": c.updated_at, "updated_by": c.updated_by}

        def write() -> None:
            self._c().replace_one({"_id": f"{c.merchant_id}:{c.channel}", "merchant_id": c.merchant_id},
                                  doc, upsert=True)
        await run_sync(write)


class SeenWechatNotifications:
    """The SeenNotifications port: one conditional insert per notification."""

    @staticmethod
    def _c():
        return WechatPayNotificationDoc._get_collection()

    async def remember(self, merchant_id: str, key: str, at: datetime) -> bool:
        def insert() -> bool:
            try:
                self._c().insert_one({"_id": f"{merchant_id}:{key}", "merchant_id": merchant_id, "at": at})
            except DuplicateKeyError:
                return False
            return True
        return await run_sync(insert)
