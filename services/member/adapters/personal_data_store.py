"""Storage of members' data exports, the member service's own part of an export, and the
order service's part over gRPC.

An export is one document in `data_exports`; (merchant, member, key) is unique, so asking
again with the key answers the first export. Each gathered part is sealed with the data
key bound to the merchant and the export (`parts.<name>`): the document is personal data
at rest. The gathering lease is an epoch-ms integer (`lease_ms`) taken by one conditional
update on the value read, so two replicas never hold one export; parts are written only
while `holder` is still the one that took it. Expiry unsets the parts."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import grpc
import mongoengine as me
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from siyu.content.v1 import content_pb2, content_pb2_grpc
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.order.v1 import order_pb2, order_pb2_grpc

from services.member.adapters.referral_store import guard_add
from services.member.domain.personal_data import ERASED, ERASING, EXPIRED, GATHERING, LEASE, READY, DataExport, Erasure
from services.member.domain.referral import guard_hash
from siyu.member.v1 import events_pb2 as member_events
from siyu_kit.export import as_json
from siyu_kit import errors
from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.events.outbox import event_for
from siyu_kit.repository import save_change
from siyu_kit.logging import mask_phone
from siyu_kit.protos import epoch_ms, timestamp
from siyu_kit.sealing import Sealer

TIMEOUT_S = 20.0


class DataExportDoc(me.Document):
    id = me.StringField(primary_key=True)  # dex_…
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    idempotency_key = me.StringField(required=True)
    state = me.StringField(required=True)
    done = me.ListField(me.StringField())
    parts = me.DictField()  # {part: sealed JSON}
    lease_ms = me.IntField(default=0)
    holder = me.StringField(default="")
    created_at = me.DateTimeField()
    ready_ms = me.IntField()
    expires_ms = me.IntField()
    meta = {"collection": "data_exports",
            "indexes": [{"fields": ["merchant_id", "member_id", "idempotency_key"], "unique": True},
                        {"fields": ["state", "lease_ms"]}, {"fields": ["state", "expires_ms"]}]}


def ensure_indexes() -> None:
    DataExportDoc.ensure_indexes()


def _col():
    return DataExportDoc._get_collection()


def _at(ms) -> datetime | None:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc) if ms else None


def _context(merchant_id: str, export_id: str) -> str:
    return f"{merchant_id}:{export_id}"


class DataExportRepository:
    def __init__(self, sealer: Sealer):
        self._sealer = sealer

    def _export(self, doc: dict) -> DataExport:
        created = doc.get("created_at")
        if isinstance(created, datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        where = _context(doc["merchant_id"], doc["_id"])
        return DataExport(id=doc["_id"], merchant_id=doc["merchant_id"], member_id=doc["member_id"],
                          idempotency_key=doc["idempotency_key"], created_at=created, state=doc["state"],
                          done=tuple(doc.get("done") or ()), ready_at=_at(doc.get("ready_ms")),
                          expires_at=_at(doc.get("expires_ms")),
                          parts={k: self._sealer.open(v, where) for k, v in (doc.get("parts") or {}).items()})

    async def add(self, export: DataExport) -> DataExport:
        doc = {"_id": export.id, "merchant_id": export.merchant_id, "member_id": export.member_id,
               "idempotency_key": export.idempotency_key, "state": export.state, "done": [], "parts": {},
               "lease_ms": 0, "holder": "", "created_at": export.created_at}

        def insert() -> dict:
            try:
                _col().insert_one(doc)
                return doc
            except DuplicateKeyError:
                return _col().find_one({"merchant_id": export.merchant_id, "member_id": export.member_id,
                                        "idempotency_key": export.idempotency_key})

        return self._export(await run_sync(insert))

    async def get(self, merchant_id: str, member_id: str, export_id: str) -> DataExport | None:
        doc = await run_sync(_col().find_one, {"_id": export_id, "merchant_id": merchant_id, "member_id": member_id})
        return self._export(doc) if doc else None

    async def lease_next(self, holder: str, now: datetime) -> DataExport | None:
        now_ms = epoch_ms(now)

        def take() -> dict | None:
            for doc in _col().find({"state": GATHERING, "lease_ms": {"$lt": now_ms}}).limit(10):
                taken = _col().update_one({"_id": doc["_id"], "state": GATHERING, "lease_ms": doc["lease_ms"]},
                                          {"$set": {"lease_ms": now_ms + int(LEASE.total_seconds() * 1000),
                                                    "holder": holder}})
                if taken.matched_count:
                    return doc
            return None

        doc = await run_sync(take)
        return self._export(doc) if doc else None

    async def save_part(self, export: DataExport, holder: str, part: str) -> bool:
        sets: dict = {f"parts.{part}": self._sealer.seal(export.parts[part], _context(export.merchant_id, export.id)),
                      "done": list(export.done), "state": export.state}
        if export.state == READY:
            sets.update(ready_ms=epoch_ms(export.ready_at), expires_ms=epoch_ms(export.expires_at), lease_ms=0,
                        holder="")
        result = await run_sync(_col().update_one, {"_id": export.id, "state": GATHERING, "holder": holder},
                                {"$set": sets})
        return bool(result.matched_count)

    async def expire_due(self, now: datetime, limit: int) -> int:
        now_ms = epoch_ms(now)

        def expire() -> int:
            count = 0
            for doc in _col().find({"state": READY, "expires_ms": {"$lte": now_ms}}, {"_id": 1}).limit(limit):
                result = _col().update_one({"_id": doc["_id"], "state": READY},
                                           {"$set": {"state": EXPIRED}, "$unset": {"parts": ""}})
                count += result.modified_count
            return count

        return await run_sync(expire)


# ---- the member service's own part ---------------------------------------------------------

# Keys never exported wherever they sit: sealed values, look-up hashes, internals.
_HIDDEN = ("outbox", "sealed", "hash", "phone_key", "token_version", "keys", "lease", "pending", "done")


def plain(value):
    return as_json(value, _HIDDEN)


def _mask(text: str) -> str:
    """An openid or unionid shown by its ends only: it identifies the member elsewhere."""
    return text[:4] + "****" + text[-4:] if len(text) > 8 else "****"


def _db():
    return DataExportDoc._get_db()


class MemberOwnData:
    """The member's records in the member service: profile, identities (ids masked),
    addresses (phones masked), points, coupons, balance, check-ins and referral ties."""

    def __init__(self, sealer: Sealer):
        self._sealer = sealer

    async def gather(self, merchant_id: str, member_id: str) -> dict:
        return await run_sync(self._read, merchant_id, member_id)

    def _read(self, merchant_id: str, member_id: str) -> dict:
        db = _db()
        mine = {"merchant_id": merchant_id, "member_id": member_id}
        account_id = f"{merchant_id}:{member_id}"

        def many(name: str, query: dict) -> list[dict]:
            return [plain(d) for d in db[name].find(query).sort("_id", 1).limit(10_000)]

        def one(name: str, query: dict) -> dict | None:
            doc = db[name].find_one(query)
            return plain(doc) if doc else None

        profile = one("members", {"_id": member_id, "merchant_id": merchant_id}) or {}
        profile.pop("phone", None)
        phone = db["member_phones"].find_one({"merchant_id": merchant_id, "member_id": member_id})
        if phone and phone.get("phone_sealed"):
            profile["phone_masked"] = mask_phone(self._sealer.open(phone["phone_sealed"], f"phone:{merchant_id}"))
        identities = [{**d, "unionid": _mask(d.get("unionid", ""))} for d in many("union_identities", mine)]
        identities += [{**d, "openid": _mask(d.get("openid", ""))} for d in many("channel_identities", mine)]
        return {
            "profile": profile,
            "identities": identities,
            "addresses": many("address_books", mine),
            "points": {"account": one("points_accounts", {"_id": account_id}),
                       "entries": many("points_entries", mine)},
            "coupons": many("member_coupons", mine),
            "balance": {"account": one("balance_accounts", {"_id": account_id}),
                        "entries": many("balance_entries", mine),
                        "recharges": many("balance_recharges", mine)},
            "check_ins": many("check_ins", mine),
            "birthday_rewards": many("birthday_rewards", mine),
            "referral": {"invite_code": one("invite_codes", {"_id": account_id}),
                         "invited_by": many("referrals", {"merchant_id": merchant_id, "invitee_id": member_id}),
                         "invited": [{"member_id": d.get("invitee_id"), "bound_at": d.get("bound_at"),
                                      "state": d.get("state")}
                                     for d in many("referrals", {"merchant_id": merchant_id,
                                                                 "inviter_id": member_id})]},
        }


class _PeerData:
    """Another service's part over its ExportMemberData (the caller's merchant is the
    member's: the job asks inside the member's merchant)."""
    name = ""

    async def _ask(self, call, request) -> dict:
        try:
            response = await call(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise errors.Unavailable(f"the {self.name} service did not export the member's data: "
                                     f"{error.code().name}", reason="UNAVAILABLE") from error
        return json.loads(response.document or "{}")


class OrderData(_PeerData):
    name = "order"

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = order_pb2_grpc.OrderServiceStub(channel)

    async def gather(self, merchant_id: str, member_id: str) -> dict:
        return await self._ask(self._stub.ExportMemberData, order_pb2.ExportMemberDataRequest(member_id=member_id))


class CatalogData(_PeerData):
    name = "catalog"

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)

    async def gather(self, merchant_id: str, member_id: str) -> dict:
        return await self._ask(self._stub.ExportMemberData,
                               catalog_pb2.ExportMemberDataRequest(member_id=member_id))


class ContentData(_PeerData):
    name = "content"

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = content_pb2_grpc.ContentServiceStub(channel)

    async def gather(self, merchant_id: str, member_id: str) -> dict:
        return await self._ask(self._stub.ExportMemberData,
                               content_pb2.ExportMemberDataRequest(member_id=member_id))


# ---- erasure ---------------------------------------------------------------------------------

# Profile fields removed from the member document on erasure; the document stays (the
# member id is the pseudonym orders and ledgers keep), with its tier, growth and dates.
_ERASED_FIELDS = ("avatar_url", "birthday_md", "birthday_year", "birthday_set_by", "gender", "region_code",
                  "phone", "phone_key", "phone_suffix", "marketing_consent", "consent_changed_ms")


def _erasure(doc: dict) -> Erasure | None:
    state = doc.get("erasure_state") or ""
    if state not in (ERASING, ERASED):
        return None
    return Erasure(member_id=doc["_id"], state=state, acknowledged=frozenset((doc.get("erasure_acks") or {}).keys()))


def claim_erasure_key(keys: Collection, merchant_id: str, idempotency_key: str, member_id: str) -> str:
    """`erasure_keys`: one document per merchant and key (`_id` "<merchant>:<key>") naming the
    member (the pseudonym, nothing personal); the first insert wins, a repeat reads it."""
    key_id = f"{merchant_id}:{idempotency_key}"
    try:
        keys.insert_one({"_id": key_id, "merchant_id": merchant_id, "member_id": member_id})
        return member_id
    except DuplicateKeyError:
        doc = keys.find_one({"_id": key_id, "merchant_id": merchant_id}) or {}
        return doc.get("member_id") or ""


class ErasureRepository:
    """Erasure state on the member document: `erasure_state` (ERASING, ERASED), `erasure_ms`
    and `erasure_acks` ({service: epoch ms}). Marking ERASING is one conditional update on
    the state not being set yet, carrying the token-version bump and the event; the
    ERASED move is conditional on ERASING, so repeats and replicas change nothing."""

    def __init__(self, sealer: Sealer, guard_key: bytes):
        self._sealer = sealer
        self._guard_key = guard_key

    async def start(self, merchant_id: str, member_id: str, now: datetime) -> bool:
        members = _db()["members"]
        event = event_for(member_events.MemberErased(member_id=member_id, erased_at=timestamp(now)),
                          merchant_id=merchant_id, aggregate_id=member_id, aggregate_version=0, occurred_at=now)
        query = {"_id": member_id, "merchant_id": merchant_id, "erasure_state": {"$nin": [ERASING, ERASED]}}
        update = {"$set": {"erasure_state": ERASING, "erasure_ms": epoch_ms(now), "erasure_acks": {}},
                  "$inc": {"token_version": 1}}
        try:
            await run_sync(save_change, members, query, update, [event])
        except StaleVersion:
            return False
        return True

    async def get(self, merchant_id: str, member_id: str) -> Erasure | None:
        doc = await run_sync(_db()["members"].find_one, {"_id": member_id, "merchant_id": merchant_id},
                             {"erasure_state": 1, "erasure_acks": 1})
        return _erasure(doc) if doc else None

    async def claim_key(self, merchant_id: str, idempotency_key: str, member_id: str) -> str:
        return await run_sync(claim_erasure_key, _db()["erasure_keys"], merchant_id, idempotency_key, member_id)

    async def erase_own_data(self, merchant_id: str, member_id: str) -> None:
        await run_sync(self._erase, merchant_id, member_id)

    def _erase(self, merchant_id: str, member_id: str) -> None:
        db = _db()
        mine = {"merchant_id": merchant_id, "member_id": member_id}
        hashes: list[str] = []
        for doc in db["member_phones"].find(mine):
            phone = self._sealer.open(doc["phone_sealed"], f"phone:{merchant_id}")
            hashes.append(guard_hash(self._guard_key, merchant_id, "phone", phone))
        member = db["members"].find_one({"_id": member_id, "merchant_id": merchant_id}, {"phone": 1}) or {}
        if member.get("phone"):  # a phone stored before phones were sealed
            hashes.append(guard_hash(self._guard_key, merchant_id, "phone", member["phone"]))
        for doc in db["union_identities"].find(mine):
            hashes.append(guard_hash(self._guard_key, merchant_id, "unionid", doc["unionid"]))
        # The farm guard first: once the identities are gone nothing else knows the person.
        guard_add(db["referral_guard"], merchant_id, hashes, member_id)
        # The member's data exports go too: each is a copy of their personal data.
        for name in ("union_identities", "channel_identities", "member_phones", "address_books", "sms_challenges",
                     "data_exports"):
            db[name].delete_many(mine)
        db["members"].update_one({"_id": member_id, "merchant_id": merchant_id},
                                 {"$set": {"nickname": ""}, "$unset": {f: "" for f in _ERASED_FIELDS}})

    async def acknowledge(self, merchant_id: str, member_id: str, service: str) -> Erasure | None:
        members = _db()["members"]
        query = {"_id": member_id, "merchant_id": merchant_id, "erasure_state": {"$in": [ERASING, ERASED]}}

        def ack() -> dict | None:
            members.update_one(query, {"$set": {f"erasure_acks.{service}": epoch_ms(datetime.now(timezone.utc))}})
            doc = members.find_one(query, {"erasure_state": 1, "erasure_acks": 1})
            if doc and doc["erasure_state"] == ERASING and _erasure(doc).complete:
                members.update_one({**query, "erasure_state": ERASING}, {"$set": {"erasure_state": ERASED}})
                doc = members.find_one(query, {"erasure_state": 1, "erasure_acks": 1})
            return doc

        doc = await run_sync(ack)
        return _erasure(doc) if doc else None
