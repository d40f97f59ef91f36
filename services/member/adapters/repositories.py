"""Every storage call of the member service. Blocking: call through siyu_kit.db.run_sync.

Documents are read and written as plain dicts through the collections mongoengine
declares, so each query and update shape is visible here. Inserts raise pymongo's
DuplicateKeyError when a unique index says the thing already exists.
"""
from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from siyu_kit.protos import epoch_ms

from services.member.adapters.documents import (ApiKeyDoc, ChannelIdentityDoc, LoginAttemptsDoc, MemberDoc,
                                                MerchantDoc, PointsEntryDoc, RefreshTokenDoc, StaffUserDoc,
                                                UnionIdentityDoc)


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
                 disabled: int, now: datetime) -> bool:
    """Compare-and-set on version. A new password, roles or state end the user's tokens:
    the token version moves in the same write."""
    result = _col(StaffUserDoc).update_one(
        {"_id": staff_id, "merchant_id": merchant_id, "version": version},
        {"$set": {"password_hash": password_hash, "roles": roles, "disabled": disabled,
                  "updated_ms": epoch_ms(now)},
         "$inc": {"version": 1, "token_version": 1}})
    return result.modified_count == 1


def find_staff_by_id(merchant_id: str, staff_id: str) -> dict | None:
    return _col(StaffUserDoc).find_one({"_id": staff_id, "merchant_id": merchant_id},
                                       {"roles": 1, "disabled": 1, "token_version": 1})


def staff_token_versions(merchant_id: str, staff_ids: list[str]) -> list[dict]:
    return list(_col(StaffUserDoc).find({"_id": {"$in": staff_ids}, "merchant_id": merchant_id},
                                        {"disabled": 1, "token_version": 1}))


def bump_staff_token_version(merchant_id: str, staff_id: str) -> None:
    _col(StaffUserDoc).update_one({"_id": staff_id, "merchant_id": merchant_id}, {"$inc": {"token_version": 1}})


# Members and their identities

def insert_member(doc: dict) -> None:
    _col(MemberDoc).insert_one(doc)


def find_member(merchant_id: str, member_id: str) -> dict | None:
    return _col(MemberDoc).find_one({"_id": member_id, "merchant_id": merchant_id},
                                    {"outbox": 0})


def member_token_version(merchant_id: str, member_id: str) -> dict | None:
    return _col(MemberDoc).find_one({"_id": member_id, "merchant_id": merchant_id}, {"token_version": 1})


def member_token_versions(merchant_id: str, member_ids: list[str]) -> list[dict]:
    return list(_col(MemberDoc).find({"_id": {"$in": member_ids}, "merchant_id": merchant_id}, {"token_version": 1}))


def bump_member_token_version(merchant_id: str, member_id: str) -> None:
    _col(MemberDoc).update_one({"_id": member_id, "merchant_id": merchant_id}, {"$inc": {"token_version": 1}})


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


# Staff login attempts: fixed-window counters, one conditional $inc per attempt.

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


# Refresh tokens: each one is redeemed (or revoked) once, by a state-conditioned write.

def insert_refresh_token(doc: dict) -> None:
    _col(RefreshTokenDoc).insert_one(doc)


def end_refresh_token(merchant_id: str, token_id: str, subject_id: str, state: str) -> bool:
    """ACTIVE → `state`; False when the token is unknown, someone else's or already ended."""
    result = _col(RefreshTokenDoc).update_one(
        {"_id": token_id, "merchant_id": merchant_id, "subject_id": subject_id, "state": "ACTIVE"},
        {"$set": {"state": state}})
    return result.modified_count == 1


OUTBOX_COLLECTIONS = (MemberDoc, PointsEntryDoc)


def outbox_collections() -> list:
    return [_col(doc) for doc in OUTBOX_COLLECTIONS]


def growth_entries(merchant_id: str, member_id: str) -> list[int]:
    docs = _col(PointsEntryDoc).find({"merchant_id": merchant_id, "member_id": member_id}, {"growth": 1})
    return [int(d.get("growth") or 0) for d in docs]
