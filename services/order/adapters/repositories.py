"""Orders, payments and merchant settings in MongoDB. Every query filters by merchant,
except the payment lookup by its globally unique id that a provider callback starts
from. Blocking: call through siyu_kit.db.run_sync."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.events.outbox import Event, add_to_update, for_insert
from siyu_kit.protos import aware

from services.order.adapters.documents import OrderDoc, OrderSettingsDoc, PaymentDoc
from services.order.domain.settings import DEFAULTS, OrderSettings

_DATES = ("created_at", "expires_at", "paid_at", "cancelled_at", "succeeded_at", "refunded_at")
_HIDDEN = {"outbox": 0}


def _clean(doc: dict | None) -> dict | None:
    if doc is None:
        return None
    for key in _DATES:
        if doc.get(key) is not None:
            doc[key] = aware(doc[key])
    return doc


def ensure_indexes() -> None:
    for doc in (OrderDoc, PaymentDoc, OrderSettingsDoc):
        doc.ensure_indexes()


class Orders:
    @staticmethod
    def _c():
        return OrderDoc._get_collection()

    def insert(self, doc: dict, *events: Event) -> bool:
        """False when an order with the same idempotency key already exists."""
        try:
            self._c().insert_one({**doc, **for_insert(*events)})
        except DuplicateKeyError:
            return False
        return True

    def by_key(self, merchant_id: str, member_id: str, key: str) -> dict | None:
        return _clean(self._c().find_one(
            {"merchant_id": merchant_id, "member_id": member_id, "idempotency_key": key}, _HIDDEN))

    def of_member(self, merchant_id: str, member_id: str, order_id: str) -> dict | None:
        return _clean(self._c().find_one(
            {"_id": order_id, "merchant_id": merchant_id, "member_id": member_id}, _HIDDEN))

    def get(self, merchant_id: str, order_id: str) -> dict | None:
        return _clean(self._c().find_one({"_id": order_id, "merchant_id": merchant_id}, _HIDDEN))

    def page_of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[dict]:
        """Newest first: ULID ids sort by creation time."""
        query: dict[str, Any] = {"merchant_id": merchant_id, "member_id": member_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        cursor = self._c().find(query, _HIDDEN).sort("_id", DESCENDING).limit(limit)
        return [_clean(d) for d in cursor]

    def transition(self, merchant_id: str, order_id: str, *, from_state: str, to_state: str,
                   fields: dict, events: tuple[Event, ...] = (), version: int | None = None,
                   unexpired_at: datetime | None = None) -> bool:
        """One conditional write: state (and version, and not yet expired) as expected,
        the change, the version bump and the events together."""
        query: dict[str, Any] = {"_id": order_id, "merchant_id": merchant_id, "state": from_state}
        if version is not None:
            query["version"] = version
        if unexpired_at is not None:
            query["expires_at"] = {"$gt": unexpired_at}
        update = add_to_update({"$set": {"state": to_state, **fields}, "$inc": {"version": 1}}, *events)
        return self._c().update_one(query, update).modified_count == 1

    def expired(self, now: datetime, limit: int) -> list[dict]:
        """Unpaid orders past their expiry, across merchants (the expiry job)."""
        cursor = self._c().find({"state": "PENDING_PAYMENT", "expires_at": {"$lte": now}}, _HIDDEN) \
            .sort("expires_at", 1).limit(limit)
        return [_clean(d) for d in cursor]


class Payments:
    @staticmethod
    def _c():
        return PaymentDoc._get_collection()

    def insert(self, doc: dict) -> bool:
        try:
            self._c().insert_one({**doc, **for_insert()})
        except DuplicateKeyError:
            return False
        return True

    def by_key(self, merchant_id: str, order_id: str, key: str) -> dict | None:
        return _clean(self._c().find_one(
            {"merchant_id": merchant_id, "order_id": order_id, "idempotency_key": key}, _HIDDEN))

    def by_id_any_merchant(self, payment_id: str) -> dict | None:
        """A provider callback names only the payment; its merchant comes from here."""
        return _clean(self._c().find_one({"_id": payment_id}, _HIDDEN))

    def get(self, merchant_id: str, payment_id: str) -> dict | None:
        return _clean(self._c().find_one({"_id": payment_id, "merchant_id": merchant_id}, _HIDDEN))

    def of_member(self, merchant_id: str, member_id: str, payment_id: str) -> dict | None:
        return _clean(self._c().find_one(
            {"_id": payment_id, "merchant_id": merchant_id, "member_id": member_id}, _HIDDEN))

    def update(self, merchant_id: str, payment_id: str, *, from_state: str, fields: dict,
               events: tuple[Event, ...] = (), version: int | None = None, inc: dict | None = None) -> bool:
        query: dict[str, Any] = {"_id": payment_id, "merchant_id": merchant_id, "state": from_state}
        if version is not None:
            query["version"] = version
        update = add_to_update({"$set": dict(fields), "$inc": {"version": 1, **(inc or {})}}, *events)
        return self._c().update_one(query, update).modified_count == 1


class Settings:
    def of_merchant(self, merchant_id: str) -> OrderSettings:
        doc = OrderSettingsDoc._get_collection().find_one({"merchant_id": merchant_id})
        if not doc:
            return DEFAULTS
        expiry = doc.get("unpaid_expiry_s")
        return OrderSettings(unpaid_expiry_s=int(expiry) if expiry and expiry > 0 else DEFAULTS.unpaid_expiry_s)
