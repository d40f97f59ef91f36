"""Check-ins and their settings over MongoDB, implementing
services.member.application.checkin_ports.

A check-in (`check_ins`) has the `_id` "<merchant>:<member>:<YYYY-MM-DD>": the unique key
that lets one check-in per member and day be stored, whoever else tries at the same
moment. It is inserted with its event in its outbox and `paid` 0; once its points
movement is written `paid` turns 1, and `unpaid` finds those a crash left at 0. A
merchant's settings (`checkin_settings`, `_id` the merchant) carry a version each change
compares and sets. Every shape is in tests/conformance/test_checkin_shapes.py.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import mongoengine as me
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.events.documents import OutboxDocument
from siyu_kit.protos import aware, epoch_ms
from siyu_kit.repository import insert_new

from services.member.adapters import checkin_messages as messages
from services.member.domain.checkin import CheckIn, CheckInSettings, check_in_id, day_key, parse_day

NO_OUTBOX = {"outbox": 0}


class CheckInDoc(OutboxDocument):
    id = me.StringField(primary_key=True)  # "<merchant id>:<member id>:<day>"
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    day = me.StringField(required=True)  # YYYY-MM-DD in the merchant's time zone
    streak = me.IntField(required=True)
    cycle_day = me.IntField(required=True)
    points = me.IntField(required=True)
    growth = me.IntField(required=True)
    channel = me.StringField()
    checked_in_at = me.DateTimeField(required=True)
    created_ms = me.IntField(required=True)
    paid = me.IntField(default=0)  # 0/1: the points movement is written
    meta = {"collection": "check_ins",
            "indexes": [{"fields": ["merchant_id", "member_id", "day"]}, {"fields": ["paid", "created_ms"]},
                        {"fields": ["outbox_pending"]}]}


class CheckInSettingsDoc(me.Document):
    id = me.StringField(primary_key=True)  # the merchant id
    merchant_id = me.StringField(required=True)
    day_rewards = me.ListField(me.IntField())
    growth = me.IntField(default=0)
    version = me.IntField(default=1)
    updated_ms = me.IntField()
    meta = {"collection": "checkin_settings"}


def ensure_indexes() -> None:
    for doc in (CheckInDoc, CheckInSettingsDoc):
        doc.ensure_indexes()


def _check_ins() -> Collection:
    return CheckInDoc._get_collection()


def _settings() -> Collection:
    return CheckInSettingsDoc._get_collection()


def outbox_collections() -> list[Collection]:
    return [_check_ins()]


def check_in_doc(check_in: CheckIn) -> dict:
    return {"_id": check_in.id, "merchant_id": check_in.merchant_id, "member_id": check_in.member_id,
            "day": day_key(check_in.day), "streak": check_in.streak, "cycle_day": check_in.cycle_day,
            "points": check_in.points, "growth": check_in.growth, "channel": check_in.channel,
            "checked_in_at": check_in.checked_in_at, "created_ms": epoch_ms(check_in.checked_in_at),
            "paid": int(check_in.paid)}


def check_in_of(doc: dict) -> CheckIn:
    at = aware(doc["checked_in_at"]) or datetime.fromtimestamp(int(doc["created_ms"]) / 1000, tz=timezone.utc)
    return CheckIn(merchant_id=doc["merchant_id"], member_id=doc["member_id"], day=parse_day(doc["day"]),
                   streak=int(doc["streak"]), cycle_day=int(doc["cycle_day"]), points=int(doc["points"]),
                   growth=int(doc["growth"]), checked_in_at=at, paid=bool(int(doc.get("paid") or 0)),
                   channel=doc.get("channel") or "", version=1)


# ---- the query shapes (tests/conformance/test_checkin_shapes.py runs each) ----------------

def key_query(merchant_id: str, member_id: str, day: date) -> dict:
    return {"_id": check_in_id(merchant_id, member_id, day), "merchant_id": merchant_id}


def paid_update(check_in: CheckIn) -> tuple[dict, dict]:
    return {"_id": check_in.id, "merchant_id": check_in.merchant_id, "paid": 0}, {"$set": {"paid": 1}}


def between_query(merchant_id: str, member_id: str, first: date, last: date) -> dict:
    # Days are YYYY-MM-DD strings written at insert: their order is the calendar's.
    return {"merchant_id": merchant_id, "member_id": member_id,
            "day": {"$gte": day_key(first), "$lte": day_key(last)}}


def unpaid_query(before_ms: int) -> dict:
    return {"paid": 0, "created_ms": {"$lt": before_ms}}


def settings_doc(merchant_id: str, settings: CheckInSettings, now_ms: int) -> dict:
    return {"_id": merchant_id, "merchant_id": merchant_id, **settings.to_doc(), "version": 1, "updated_ms": now_ms}


def settings_update(merchant_id: str, settings: CheckInSettings, expected_version: int,
                    now_ms: int) -> tuple[dict, dict]:
    return ({"_id": merchant_id, "merchant_id": merchant_id, "version": expected_version},
            {"$set": {**settings.to_doc(), "updated_ms": now_ms}, "$inc": {"version": 1}})


class CheckInRepository:
    """The CheckInStore port."""

    async def get(self, merchant_id: str, member_id: str, day: date) -> CheckIn | None:
        doc = await run_sync(_check_ins().find_one, key_query(merchant_id, member_id, day), NO_OUTBOX)
        return check_in_of(doc) if doc else None

    async def add(self, check_in: CheckIn) -> bool:
        events = [messages.checked_in_event(check_in, e) for e in check_in.pull_events()]
        return await run_sync(insert_new, _check_ins(), check_in_doc(check_in), events)

    async def mark_paid(self, check_in: CheckIn) -> None:
        await run_sync(_check_ins().update_one, *paid_update(check_in))

    async def between(self, merchant_id: str, member_id: str, first: date, last: date) -> list[CheckIn]:
        def read() -> list[dict]:
            return list(_check_ins().find(between_query(merchant_id, member_id, first, last),
                                          NO_OUTBOX).sort("day", ASCENDING).limit(31))
        return [check_in_of(d) for d in await run_sync(read)]

    async def unpaid(self, before_ms: int, limit: int) -> list[CheckIn]:
        def read() -> list[dict]:
            return list(_check_ins().find(unpaid_query(before_ms), NO_OUTBOX).limit(limit))
        return [check_in_of(d) for d in await run_sync(read)]


class CheckInSettingsRepository:
    """The CheckInSettingsStore port."""

    async def get(self, merchant_id: str) -> tuple[CheckInSettings, int]:
        doc = await run_sync(_settings().find_one, {"_id": merchant_id, "merchant_id": merchant_id})
        if doc is None:
            return CheckInSettings(), 0
        return CheckInSettings.from_doc(doc), int(doc.get("version") or 1)

    async def put(self, merchant_id: str, settings: CheckInSettings, expected_version: int) -> int | None:
        return await run_sync(_put, merchant_id, settings, expected_version)


def _put(merchant_id: str, settings: CheckInSettings, expected_version: int) -> int | None:
    now_ms = epoch_ms(datetime.now(timezone.utc))
    if expected_version == 0:
        try:
            _settings().insert_one(settings_doc(merchant_id, settings, now_ms))
        except DuplicateKeyError:
            return None
        return 1
    done = _settings().update_one(*settings_update(merchant_id, settings, expected_version, now_ms))
    return expected_version + 1 if done.modified_count == 1 else None
