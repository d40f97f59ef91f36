"""Every storage call of the member service. Blocking: call through siyu_kit.db.run_sync.

Documents are read and written as plain dicts through the collections mongoengine
declares, so each query and update shape is visible here. Inserts raise pymongo's
DuplicateKeyError when a unique index says the thing already exists.
"""
from __future__ import annotations

from datetime import datetime

from siyu_kit.protos import epoch_ms

from services.member.adapters.documents import (ApiKeyDoc, ChannelIdentityDoc, MemberDoc, MerchantDoc,
                                                PointsEntryDoc, StaffUserDoc, UnionIdentityDoc)


def _col(doc):
    return doc._get_collection()


# Merchants. The code and the key hash identify a merchant, so those two look-ups are the
# only ones not filtered by a merchant id taken from the context.

def insert_merchant(doc: dict) -> None:
    _col(MerchantDoc).insert_one(doc)


def find_merchant_by_code(code: str) -> dict | None:
    return _col(MerchantDoc).find_one({"code": code})


def find_merchant(merchant_id: str) -> dict | None:
    return _col(MerchantDoc).find_one({"_id": merchant_id, "merchant_id": merchant_id})


def update_merchant(merchant_id: str, version: int, name: str, time_zone: str, now: datetime) -> bool:
    """Compare-and-set on version; False when another write came first."""
    result = _col(MerchantDoc).update_one(
        {"_id": merchant_id, "merchant_id": merchant_id, "version": version},
        {"$set": {"name": name, "time_zone": time_zone, "updated_ms": epoch_ms(now)}, "$inc": {"version": 1}})
    return result.modified_count == 1


# Channel API keys

def insert_api_key(doc: dict) -> None:
    _col(ApiKeyDoc).insert_one(doc)


def find_api_key(key_hash: str) -> dict | None:
    return _col(ApiKeyDoc).find_one({"key_hash": key_hash})


# Staff users

def insert_staff(doc: dict) -> None:
    _col(StaffUserDoc).insert_one(doc)


def find_staff(merchant_id: str, username: str) -> dict | None:
    return _col(StaffUserDoc).find_one({"merchant_id": merchant_id, "username": username})


def update_staff(merchant_id: str, staff_id: str, version: int, password_hash: str, roles: list[str],
                 now: datetime) -> bool:
    result = _col(StaffUserDoc).update_one(
        {"_id": staff_id, "merchant_id": merchant_id, "version": version},
        {"$set": {"password_hash": password_hash, "roles": roles, "updated_ms": epoch_ms(now)}, "$inc": {"version": 1}})
    return result.modified_count == 1


# Members and their identities

def insert_member(doc: dict) -> None:
    _col(MemberDoc).insert_one(doc)


def find_member(merchant_id: str, member_id: str) -> dict | None:
    return _col(MemberDoc).find_one({"_id": member_id, "merchant_id": merchant_id},
                                    {"outbox": 0})


def insert_union_identity(doc: dict) -> None:
    _col(UnionIdentityDoc).insert_one(doc)


def find_union_identity(merchant_id: str, unionid: str) -> dict | None:
    return _col(UnionIdentityDoc).find_one({"merchant_id": merchant_id, "unionid": unionid})


def insert_channel_identity(doc: dict) -> None:
    _col(ChannelIdentityDoc).insert_one(doc)


def find_channel_identity(merchant_id: str, channel: str, openid: str) -> dict | None:
    return _col(ChannelIdentityDoc).find_one({"merchant_id": merchant_id, "channel": channel, "openid": openid})


def channels_of(merchant_id: str, member_id: str) -> list[str]:
    docs = _col(ChannelIdentityDoc).find({"merchant_id": merchant_id, "member_id": member_id}, {"channel": 1})
    return sorted({d["channel"] for d in docs})


# Points ledger

def insert_points_entry(doc: dict) -> None:
    _col(PointsEntryDoc).insert_one(doc)


def ledger(merchant_id: str, member_id: str) -> list[dict]:
    """The member's whole ledger, newest first (ULID ids sort by time)."""
    return list(_col(PointsEntryDoc).find({"merchant_id": merchant_id, "member_id": member_id},
                                          {"outbox": 0}).sort("_id", -1))


OUTBOX_COLLECTIONS = (MemberDoc, PointsEntryDoc)


def outbox_collections() -> list:
    return [_col(doc) for doc in OUTBOX_COLLECTIONS]


def growth_entries(merchant_id: str, member_id: str) -> list[int]:
    docs = _col(PointsEntryDoc).find({"merchant_id": merchant_id, "member_id": member_id}, {"growth": 1})
    return [int(d.get("growth") or 0) for d in docs]
