"""The member service's repositories over MongoDB: they map documents to the domain's
objects and back, and implement the ports of services.member.application.ports.

Documents are read and written as plain dicts through the collections mongoengine
declares, so each query and update shape is visible here; blocking pymongo calls run
through siyu_kit.db.run_sync. Only members and ledger entries carry an outbox.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, utcnow
from siyu_kit.aggregate import StaleVersion
from siyu_kit.repository import insert_new, save_change

from services.member.adapters import messages
from services.member.adapters.documents import (AddressBookDoc, ApiKeyDoc, AuditEntryDoc, BackfillDoc,
                                                ChannelIdentityDoc,
                                                LoginAttemptsDoc, MemberDoc, MerchantDoc, PointsEntryDoc,
                                                RefreshTokenDoc, StaffUserDoc, UnionIdentityDoc, within)
from services.member.domain.addresses import Address, AddressBook
from services.member.domain.admin import AuditEntry, MemberFilter
from services.member.domain.config import MerchantConfig
from services.member.domain.regions import Region, RegionPath
from services.member.domain.members import Member, MemberRegistered
from services.member.domain.merchants import ApiKey, Merchant, StaffUser
from services.member.domain.points import PointsAccount, PointsEarned, PointsEntry
from services.member.domain.sessions import ACTIVE, RefreshToken, Subject


def _col(doc) -> Collection:
    return doc._get_collection()


def _insert(collection: Collection, doc: dict) -> bool:
    """An insert without events (the document keeps no outbox); False when a unique
    index says it exists."""
    try:
        collection.insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


# ---- merchants ----------------------------------------------------------------------
# The code and the key hash identify a merchant, so those two look-ups are the only ones
# not filtered by a merchant id taken from the context.

def _merchant(doc: dict) -> Merchant:
    return Merchant(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                    code=doc["code"], name=doc["name"], time_zone=doc["time_zone"],
                    config=MerchantConfig.from_doc(doc.get("config")), created_at=doc.get("created_at"))


class MerchantRepository:
    async def get(self, merchant_id: str) -> Merchant | None:
        doc = await run_sync(_col(MerchantDoc).find_one, {"_id": merchant_id, "merchant_id": merchant_id})
        return _merchant(doc) if doc else None

    async def by_code(self, code: str) -> Merchant | None:
        doc = await run_sync(_col(MerchantDoc).find_one, {"code": code})
        return _merchant(doc) if doc else None

    async def add(self, merchant: Merchant) -> bool:
        now = merchant.created_at or utcnow()
        return await run_sync(_insert, _col(MerchantDoc), {
            "_id": merchant.id, "merchant_id": merchant.merchant_id, "code": merchant.code, "name": merchant.name,
            "time_zone": merchant.time_zone, "config": merchant.config.to_doc(), "version": merchant.version,
            "created_at": now, "updated_ms": epoch_ms(merchant.updated_at or now)})

    async def save(self, merchant: Merchant) -> None:
        await run_sync(save_change, _col(MerchantDoc), {"_id": merchant.id, "merchant_id": merchant.merchant_id},
                       {"$set": {"name": merchant.name, "time_zone": merchant.time_zone,
                                 "config": merchant.config.to_doc(),
                                 "updated_ms": epoch_ms(merchant.updated_at or utcnow())}},
                       version=merchant.version)
        merchant.version = merchant.next_version


# ---- channel API keys -----------------------------------------------------------------

def _key(doc: dict) -> ApiKey:
    return ApiKey(doc["_id"], doc["merchant_id"], doc["channel"], doc["key_hash"], doc.get("created_at"),
                  doc.get("prefix") or "", doc.get("last4") or "", bool(doc.get("disabled")))


def _page_query(query: dict, after_id: str) -> dict:
    """Keyset paging newest first: ULID ids sort by time."""
    return {**query, "_id": {"$lt": after_id}} if after_id else query


class ApiKeyRepository:
    async def add(self, key: ApiKey) -> bool:
        return await run_sync(_insert, _col(ApiKeyDoc), {
            "_id": key.id, "merchant_id": key.merchant_id, "channel": key.channel, "key_hash": key.key_hash,
            "prefix": key.prefix, "last4": key.last4, "disabled": int(key.disabled), "created_at": key.created_at})

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        doc = await run_sync(_col(ApiKeyDoc).find_one, {"key_hash": key_hash})
        return _key(doc) if doc else None

    async def get(self, merchant_id: str, key_id: str) -> ApiKey | None:
        doc = await run_sync(_col(ApiKeyDoc).find_one, {"_id": key_id, "merchant_id": merchant_id})
        return _key(doc) if doc else None

    async def page(self, merchant_id: str, channel: str, include_disabled: bool, after_id: str,
                   limit: int) -> list[ApiKey]:
        query: dict = {"merchant_id": merchant_id}
        if channel:
            query["channel"] = channel
        if not include_disabled:
            query["disabled"] = {"$nin": [1]}
        docs = await run_sync(lambda: list(_col(ApiKeyDoc).find(_page_query(query, after_id))
                                           .sort("_id", -1).limit(limit)))
        return [_key(d) for d in docs]

    async def disable(self, merchant_id: str, key_id: str) -> bool:
        result = await run_sync(_col(ApiKeyDoc).update_one,
                                {"_id": key_id, "merchant_id": merchant_id, "disabled": {"$nin": [1]}},
                                {"$set": {"disabled": 1}})
        return result.modified_count == 1


# ---- staff users ------------------------------------------------------------------------

def _staff(doc: dict) -> StaffUser:
    return StaffUser(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                     username=doc["username"], password_hash=doc["password_hash"],
                     roles=tuple(doc.get("roles") or ()), disabled=bool(doc.get("disabled")),
                     token_version=int(doc.get("token_version") or 0), created_at=doc.get("created_at"))


class StaffRepository:
    async def by_username(self, merchant_id: str, username: str) -> StaffUser | None:
        doc = await run_sync(_col(StaffUserDoc).find_one, {"merchant_id": merchant_id, "username": username})
        return _staff(doc) if doc else None

    async def get(self, merchant_id: str, staff_id: str) -> StaffUser | None:
        doc = await run_sync(_col(StaffUserDoc).find_one, {"_id": staff_id, "merchant_id": merchant_id})
        return _staff(doc) if doc else None

    async def page(self, merchant_id: str, username_prefix: str, include_disabled: bool, after_id: str,
                   limit: int) -> list[StaffUser]:
        query: dict = {"merchant_id": merchant_id}
        if username_prefix:
            query["username"] = {"$regex": "^" + re.escape(username_prefix)}
        if not include_disabled:
            query["disabled"] = {"$nin": [1]}
        docs = await run_sync(lambda: list(_col(StaffUserDoc).find(_page_query(query, after_id))
                                           .sort("_id", -1).limit(limit)))
        return [_staff(d) for d in docs]

    async def add(self, staff: StaffUser) -> bool:
        now = staff.created_at or utcnow()
        return await run_sync(_insert, _col(StaffUserDoc), {
            "_id": staff.id, "merchant_id": staff.merchant_id, "username": staff.username,
            "password_hash": staff.password_hash, "roles": list(staff.roles), "disabled": int(staff.disabled),
            "token_version": staff.token_version, "version": staff.version, "created_at": now,
            "updated_ms": epoch_ms(staff.updated_at or now)})

    async def save(self, staff: StaffUser) -> None:
        # A new password, roles or state end the user's tokens: the token version moves
        # in the same write.
        await run_sync(save_change, _col(StaffUserDoc), {"_id": staff.id, "merchant_id": staff.merchant_id},
                       {"$set": {"password_hash": staff.password_hash, "roles": list(staff.roles),
                                 "disabled": int(staff.disabled),
                                 "updated_ms": epoch_ms(staff.updated_at or utcnow())},
                        "$inc": {"token_version": 1}},
                       version=staff.version)
        staff.version = staff.next_version

    async def subject(self, merchant_id: str, staff_id: str) -> Subject | None:
        doc = await run_sync(_col(StaffUserDoc).find_one, {"_id": staff_id, "merchant_id": merchant_id},
                             {"roles": 1, "disabled": 1, "token_version": 1})
        if doc is None:
            return None
        return Subject(int(doc.get("token_version") or 0), not doc.get("disabled"), tuple(doc.get("roles") or ()))

    async def subjects(self, merchant_id: str, staff_ids: list[str]) -> dict[str, Subject]:
        docs = await run_sync(lambda: list(_col(StaffUserDoc).find(
            {"_id": {"$in": staff_ids}, "merchant_id": merchant_id}, {"disabled": 1, "token_version": 1})))
        return {d["_id"]: Subject(int(d.get("token_version") or 0), not d.get("disabled")) for d in docs}

    async def bump_token_version(self, merchant_id: str, staff_id: str) -> None:
        await run_sync(_col(StaffUserDoc).update_one, {"_id": staff_id, "merchant_id": merchant_id},
                       {"$inc": {"token_version": 1}})


# ---- members --------------------------------------------------------------------------

def _member(doc: dict) -> Member:
    return Member(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                  nickname=doc.get("nickname") or "", avatar_url=doc.get("avatar_url") or "",
                  phone=doc.get("phone") or "", registered_channel=doc.get("registered_channel") or "",
                  token_version=int(doc.get("token_version") or 0), created_at=doc.get("created_at"))


class MemberRepository:
    async def get(self, merchant_id: str, member_id: str) -> Member | None:
        doc = await run_sync(_col(MemberDoc).find_one, {"_id": member_id, "merchant_id": merchant_id}, {"outbox": 0})
        return _member(doc) if doc else None

    async def add(self, member: Member) -> bool:
        events = [messages.registered_event(member.merchant_id, member.version, e)
                  for e in member.pull_events() if isinstance(e, MemberRegistered)]
        doc = {"_id": member.id, "merchant_id": member.merchant_id, "nickname": member.nickname,
               "avatar_url": member.avatar_url, "registered_channel": member.registered_channel,
               "growth": 0, "version": member.version, "created_at": member.created_at}
        return await run_sync(insert_new, _col(MemberDoc), doc, events)

    async def subject(self, merchant_id: str, member_id: str) -> Subject | None:
        doc = await run_sync(_col(MemberDoc).find_one, {"_id": member_id, "merchant_id": merchant_id},
                             {"token_version": 1, "erasure_state": 1})
        # An erased (or erasing) member's sessions are over at once.
        return Subject(int(doc.get("token_version") or 0), not doc.get("erasure_state")) if doc else None

    async def subjects(self, merchant_id: str, member_ids: list[str]) -> dict[str, Subject]:
        docs = await run_sync(lambda: list(_col(MemberDoc).find(
            {"_id": {"$in": member_ids}, "merchant_id": merchant_id}, {"token_version": 1, "erasure_state": 1})))
        return {d["_id"]: Subject(int(d.get("token_version") or 0), not d.get("erasure_state")) for d in docs}

    async def bump_token_version(self, merchant_id: str, member_id: str) -> None:
        await run_sync(_col(MemberDoc).update_one, {"_id": member_id, "merchant_id": merchant_id},
                       {"$inc": {"token_version": 1}})

    async def set_phone_suffix(self, merchant_id: str, member_id: str, suffix: str) -> None:
        # Guarded on a different value, so the usual repeat writes nothing.
        await run_sync(_col(MemberDoc).update_one,
                       {"_id": member_id, "merchant_id": merchant_id, "phone_suffix": {"$nin": [suffix]}},
                       {"$set": {"phone_suffix": suffix}})


# ---- identities: a person's unionid and each channel's openid ---------------------------

def take_over(identities: Collection, key: dict, from_member_id: str, to_member_id: str) -> bool:
    """An identity of a member being erased goes to the new member of its next login: ONE
    update on the identity still naming the old member (its unique key stays as it is)."""
    return identities.update_one({**key, "member_id": from_member_id},
                                 {"$set": {"member_id": to_member_id, "created_at": utcnow()}}).modified_count == 1


def unionid_of(identities: Collection, merchant_id: str, member_id: str) -> str | None:
    doc = identities.find_one({"merchant_id": merchant_id, "member_id": member_id}, {"unionid": 1})
    return doc["unionid"] if doc else None


class IdentityRepository:
    async def member_of_union(self, merchant_id: str, unionid: str) -> str | None:
        doc = await run_sync(_col(UnionIdentityDoc).find_one, {"merchant_id": merchant_id, "unionid": unionid})
        return doc["member_id"] if doc else None

    async def member_of_channel(self, merchant_id: str, channel: str, openid: str) -> str | None:
        doc = await run_sync(_col(ChannelIdentityDoc).find_one,
                             {"merchant_id": merchant_id, "channel": channel, "openid": openid})
        return doc["member_id"] if doc else None

    async def link_union(self, merchant_id: str, unionid: str, member_id: str) -> bool:
        return await run_sync(_insert, _col(UnionIdentityDoc), {
            "_id": new_id("idn"), "merchant_id": merchant_id, "unionid": unionid, "member_id": member_id,
            "created_at": utcnow()})

    async def link_channel(self, merchant_id: str, channel: str, openid: str, member_id: str) -> bool:
        return await run_sync(_insert, _col(ChannelIdentityDoc), {
            "_id": new_id("idn"), "merchant_id": merchant_id, "channel": channel, "openid": openid,
            "member_id": member_id, "created_at": utcnow()})

    async def unionid_of(self, merchant_id: str, member_id: str) -> str | None:
        return await run_sync(unionid_of, _col(UnionIdentityDoc), merchant_id, member_id)

    async def take_over_union(self, merchant_id: str, unionid: str, from_member_id: str, to_member_id: str) -> bool:
        return await run_sync(take_over, _col(UnionIdentityDoc), {"merchant_id": merchant_id, "unionid": unionid},
                              from_member_id, to_member_id)

    async def take_over_channel(self, merchant_id: str, channel: str, openid: str, from_member_id: str,
                                to_member_id: str) -> bool:
        return await run_sync(take_over, _col(ChannelIdentityDoc),
                              {"merchant_id": merchant_id, "channel": channel, "openid": openid},
                              from_member_id, to_member_id)

    async def channels_of(self, merchant_id: str, member_id: str) -> list[str]:
        docs = await run_sync(lambda: list(_col(ChannelIdentityDoc).find(
            {"merchant_id": merchant_id, "member_id": member_id}, {"channel": 1})))
        return sorted({d["channel"] for d in docs})

    async def openid_of(self, merchant_id: str, member_id: str, channel: str) -> str | None:
        # ULID ids sort by time: the newest link first.
        docs = await run_sync(lambda: list(_col(ChannelIdentityDoc).find(
            {"merchant_id": merchant_id, "member_id": member_id, "channel": channel}, {"openid": 1})
            .sort("_id", -1).limit(1)))
        return docs[0]["openid"] if docs else None


# ---- points ledger ----------------------------------------------------------------------

def _entry(doc: dict) -> PointsEntry:
    return PointsEntry(id=doc["_id"], source=doc["source"], source_id=doc["source_id"], points=int(doc["points"]),
                       growth=int(doc.get("growth") or 0), frozen=bool(doc.get("frozen")),
                       frozen_until=doc.get("frozen_until"), created_at=doc.get("created_at"))


class PointsLedger:
    async def account(self, merchant_id: str, member_id: str) -> PointsAccount:
        docs = await run_sync(lambda: list(_col(PointsEntryDoc).find(
            {"merchant_id": merchant_id, "member_id": member_id}, {"growth": 1})))
        return PointsAccount(id=member_id, merchant_id=merchant_id, version=0,
                             growth=sum(int(d.get("growth") or 0) for d in docs))

    async def entries(self, merchant_id: str, member_id: str) -> list[PointsEntry]:
        """Newest first (ULID ids sort by time)."""
        docs = await run_sync(lambda: list(_col(PointsEntryDoc).find(
            {"merchant_id": merchant_id, "member_id": member_id}, {"outbox": 0}).sort("_id", -1)))
        return [_entry(d) for d in docs]

    async def save(self, account: PointsAccount) -> bool:
        """Each new entry is one insert, unique per (merchant, source, source id): a
        replay finds the entry there and adds nothing."""
        earned = {e.entry.id: e for e in account.pull_events() if isinstance(e, PointsEarned)}
        entries, account.new_entries = account.new_entries, []
        for entry in entries:
            events = [messages.earned_event(account.merchant_id, earned[entry.id])] if entry.id in earned else []
            doc = {"_id": entry.id, "merchant_id": account.merchant_id, "member_id": account.id,
                   "source": entry.source, "source_id": entry.source_id, "points": entry.points,
                   "growth": entry.growth, "frozen": int(entry.frozen), "frozen_until": entry.frozen_until,
                   "created_at": entry.created_at}
            if not await run_sync(insert_new, _col(PointsEntryDoc), doc, events):
                # Already applied: still bring the member's growth up to date, in case the
                # process stopped between the entry and that.
                await run_sync(sync_growth, account.merchant_id, account.id)
                return False
        if entries:
            await run_sync(sync_growth, account.merchant_id, account.id)
        return True


def sync_growth(merchant_id: str, member_id: str) -> None:
    """Sets the member's stored growth to the ledger's sum. Refunds take growth back, so the
    sum can fall: each sync writes the sum with the number of growth entries it counted,
    only over a smaller count, so of concurrent syncs the one that saw the most entries
    (the latest: the ledger is append-only) stays."""
    docs = list(_col(PointsEntryDoc).find({"merchant_id": merchant_id, "member_id": member_id}, {"growth": 1}))
    counted = [int(d.get("growth") or 0) for d in docs if d.get("growth")]
    total, seen = max(sum(counted), 0), len(counted)
    members = _col(MemberDoc)
    key = {"_id": member_id, "merchant_id": merchant_id}
    update = {"$set": {"growth": total, "growth_entries": seen}}
    members.update_one({**key, "growth_entries": {"$exists": False}}, update)
    members.update_one({**key, "growth_entries": {"$lt": seen}}, update)


class MemberDirectoryRepository:
    """The staff's member search: newest first by id, each filter on a stored field."""

    async def page(self, merchant_id: str, where: MemberFilter, after_id: str,
                   limit: int) -> list[tuple[Member, int]]:
        query: dict = {"merchant_id": merchant_id}
        if where.phone_suffix:
            query["phone_suffix"] = where.phone_suffix
        if where.nickname_prefix:
            query["nickname"] = {"$regex": "^" + re.escape(where.nickname_prefix)}
        within(query, "growth", where.growth_min, where.growth_below)
        within(query, "created_at", where.registered_from, where.registered_before)
        docs = await run_sync(lambda: list(_col(MemberDoc).find(_page_query(query, after_id), {"outbox": 0})
                                           .sort("_id", -1).limit(limit)))
        return [(_member(d), int(d.get("growth") or 0)) for d in docs]


# ---- refresh tokens: each one is redeemed (or revoked) once, by a state-conditioned write

class RefreshTokenRepository:
    async def add(self, token: RefreshToken) -> None:
        await run_sync(_col(RefreshTokenDoc).insert_one, {
            "_id": token.id, "merchant_id": token.merchant_id, "subject_id": token.subject_id,
            "state": token.state, "created_at": token.created_at, "expires_at": token.expires_at})

    async def end(self, merchant_id: str, token_id: str, subject_id: str, state: str) -> bool:
        result = await run_sync(_col(RefreshTokenDoc).update_one,
                                {"_id": token_id, "merchant_id": merchant_id, "subject_id": subject_id,
                                 "state": ACTIVE},
                                {"$set": {"state": state}})
        return result.modified_count == 1


# ---- staff login attempts: fixed-window counters, one conditional $inc per attempt -------

def take_login_attempt(counter_id: str, limit: int, expires_at: datetime) -> bool:
    """Counts one attempt unless the window already holds `limit`; False when it does."""
    query = {"_id": counter_id, "failures": {"$lt": limit}}
    update = {"$inc": {"failures": 1}, "$setOnInsert": {"expires_at": expires_at}}
    col = _col(LoginAttemptsDoc)
    try:
        result = col.update_one(query, update, upsert=True)
    except DuplicateKeyError:
        # The window exists and is full, or a concurrent attempt created it first:
        # once more without upsert decides which.
        result = col.update_one(query, update)
    return result.upserted_id is not None or result.modified_count == 1


def give_back_login_attempt(counter_id: str) -> None:
    _col(LoginAttemptsDoc).update_one({"_id": counter_id, "failures": {"$gt": 0}}, {"$inc": {"failures": -1}})


class LoginAttemptRepository:
    async def take(self, counter_id: str, limit: int, expires_at: datetime) -> bool:
        return await run_sync(take_login_attempt, counter_id, limit, expires_at)

    async def give_back(self, counter_id: str) -> None:
        await run_sync(give_back_login_attempt, counter_id)


# ---- the audit trail: append-only ---------------------------------------------------------

def _audit(doc: dict) -> AuditEntry:
    return AuditEntry(doc["_id"], doc["merchant_id"], doc.get("actor_kind") or "", doc.get("actor_id") or "",
                      doc["action"], doc.get("target_id") or "", dict(doc.get("before") or {}),
                      dict(doc.get("after") or {}), doc.get("created_at"))


class AuditLogRepository:
    async def add(self, entry: AuditEntry) -> None:
        await run_sync(_col(AuditEntryDoc).insert_one, {
            "_id": entry.id, "merchant_id": entry.merchant_id, "actor_kind": entry.actor_kind,
            "actor_id": entry.actor_id, "action": entry.action, "target_id": entry.target_id,
            "before": dict(entry.before), "after": dict(entry.after), "created_at": entry.created_at})

    async def page(self, merchant_id: str, action: str, actor_id: str, target_id: str, after_id: str,
                   limit: int) -> list[AuditEntry]:
        query: dict = {"merchant_id": merchant_id}
        for name, value in (("action", action), ("actor_id", actor_id), ("target_id", target_id)):
            if value:
                query[name] = value
        docs = await run_sync(lambda: list(_col(AuditEntryDoc).find(_page_query(query, after_id))
                                           .sort("_id", -1).limit(limit)))
        return [_audit(d) for d in docs]


OUTBOX_COLLECTIONS = (MemberDoc, PointsEntryDoc)


def outbox_collections() -> list:
    return [_col(doc) for doc in OUTBOX_COLLECTIONS]


# ---- address books ------------------------------------------------------------------
# Found by (merchant, member), unique; a change replaces the addresses, the default and the
# creation keys whole on the version read (the shape of a cart).

def _address_doc(address: Address) -> dict:
    region = address.region
    return {"address_id": address.id, "recipient": address.recipient, "phone_sealed": address.phone_sealed,
            "phone_masked": address.phone_masked, "province_code": region.province.code,
            "province_name": region.province.name, "city_code": region.city.code, "city_name": region.city.name,
            "district_code": region.district.code, "district_name": region.district.name, "detail": address.detail,
            "created_ms": epoch_ms(address.created_at), "version": address.version}


def _address(doc: dict) -> Address:
    region = RegionPath(Region(doc["province_code"], doc["province_name"]), Region(doc["city_code"], doc["city_name"]),
                        Region(doc["district_code"], doc["district_name"]))
    return Address(id=doc["address_id"], recipient=doc["recipient"], phone_sealed=doc["phone_sealed"],
                   phone_masked=doc["phone_masked"], region=region, detail=doc["detail"],
                   created_at=datetime.fromtimestamp(int(doc["created_ms"]) / 1000, tz=timezone.utc),
                   version=int(doc.get("version") or 1))


def _creation_key(stored: list) -> tuple[str, str, str]:
    """[key, address id, fingerprint]; keys stored before fingerprints were kept have two."""
    key, address_id, *rest = stored
    return key, address_id, rest[0] if rest else ""


class AddressBookRepository:
    async def of(self, merchant_id: str, member_id: str) -> AddressBook | None:
        doc = await run_sync(_col(AddressBookDoc).find_one, {"merchant_id": merchant_id, "member_id": member_id})
        if doc is None:
            return None
        return AddressBook(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                           member_id=doc["member_id"], addresses=[_address(a) for a in doc.get("addresses") or []],
                           default_id=doc.get("default_id") or "",
                           keys=[_creation_key(k) for k in doc.get("keys") or []])

    async def save(self, book: AddressBook) -> None:
        fields = {"addresses": [_address_doc(a) for a in book.addresses], "default_id": book.default_id,
                  "keys": [[k, a, h] for k, a, h in book.keys], "updated_ms": epoch_ms(utcnow())}
        if book.version == 0:
            # A second book for the member loses on the unique index: the caller reads again.
            if not await run_sync(insert_new, _col(AddressBookDoc), {
                    "_id": book.id, "merchant_id": book.merchant_id, "member_id": book.member_id, "version": 1,
                    **fields}):
                raise StaleVersion(f"an address book of {book.member_id} was created meanwhile")
            book.version = 1
            return
        await run_sync(save_change, _col(AddressBookDoc),
                       {"merchant_id": book.merchant_id, "member_id": book.member_id},
                       {"$set": fields}, version=book.version)
        book.version = book.next_version


# ---- backfills: a checkpoint and a lease per backfill; the walks themselves ------------

def claim_backfill(name: str, holder: str, now: datetime, until: datetime) -> str | None:
    col = _col(BackfillDoc)
    try:
        col.update_one({"_id": name}, {"$setOnInsert": {"after_id": "", "done": 0, "holder": "", "lease_until_ms": 0,
                                                         "updated_ms": epoch_ms(now)}}, upsert=True)
    except DuplicateKeyError:
        pass  # another replica created it first
    # Renew our own lease, or take one that ran out; never while another holder's runs.
    for query in ({"_id": name, "done": {"$nin": [1]}, "holder": holder},
                  {"_id": name, "done": {"$nin": [1]}, "lease_until_ms": {"$lt": epoch_ms(now)}}):
        if col.update_one(query, {"$set": {"holder": holder, "lease_until_ms": epoch_ms(until)}}).matched_count == 1:
            return (col.find_one({"_id": name}, {"after_id": 1}) or {}).get("after_id") or ""
    return None


class BackfillProgressRepository:
    async def claim(self, name: str, holder: str, now: datetime, until: datetime) -> str | None:
        return await run_sync(claim_backfill, name, holder, now, until)

    async def advance(self, name: str, holder: str, after_id: str, done: bool, until: datetime) -> bool:
        result = await run_sync(_col(BackfillDoc).update_one, {"_id": name, "holder": holder},
                                {"$set": {"after_id": after_id, "done": int(done), "lease_until_ms": epoch_ms(until),
                                          "updated_ms": epoch_ms(utcnow())}})
        return result.matched_count == 1


def backfill_growth(after_id: str, limit: int) -> tuple[str, int]:
    docs = list(_col(MemberDoc).find({"_id": {"$gt": after_id}}, {"merchant_id": 1, "growth": 1})
                .sort("_id", 1).limit(limit))
    for doc in docs:
        if "growth" not in doc:
            sync_growth(doc["merchant_id"], doc["_id"])
    return (docs[-1]["_id"] if docs else ""), len(docs)


class GrowthBackfill:
    """Members stored before the member document kept its growth: set to the ledger's sum."""
    name = "member-growth"

    async def step(self, after_id: str, limit: int) -> tuple[str, int]:
        return await run_sync(backfill_growth, after_id, limit)
