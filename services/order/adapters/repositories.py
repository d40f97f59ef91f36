"""Orders and merchant settings in MongoDB. Every query filters by merchant, except the
jobs' scans across merchants. `MongoOrders` is the order aggregate's repository (async);
the other classes are blocking: call them through siyu_kit.db.run_sync."""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.ids import new_id
from siyu_kit.protos import aware, epoch_ms
from siyu_kit.repository import insert_new, save_change

from services.order.adapters import messages
from services.order.adapters.cart import CartDoc
from services.order.adapters.documents import (OrderDoc, OrderSettingsDoc, PaymentDoc, applied_refund_doc,
                                               commissions_doc, line_doc, order_doc, order_of)
from services.order.adapters.ledger import LedgerEntryDoc
from services.order.adapters.refunds import RefundDoc
from services.order.adapters.tender_docs import stored_value_doc
from services.order.domain import orders as domain
from services.order.domain.orders import Order
from services.order.domain.settings import DEFAULTS, OrderSettings, ThresholdReduction

_DATES = ("created_at", "expires_at", "paid_at", "cancelled_at", "succeeded_at", "refunded_at",
          "delivered_at", "completed_at", "settled_at")
_HIDDEN = {"outbox": 0}


def _clean(doc: dict | None) -> dict | None:
    if doc is None:
        return None
    for key in _DATES:
        if doc.get(key) is not None:
            doc[key] = aware(doc[key])
    return doc


def ensure_indexes() -> None:
    for doc in (OrderDoc, PaymentDoc, OrderSettingsDoc, RefundDoc, LedgerEntryDoc, CartDoc):
        doc.ensure_indexes()


class Orders:
    @staticmethod
    def _c():
        return OrderDoc._get_collection()

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

    def page_of_member_in_states(self, merchant_id: str, member_id: str, states: list[str], before_id: str,
                                 limit: int) -> list[dict]:
        """A tab of the member's order list, newest first."""
        query: dict[str, Any] = {"merchant_id": merchant_id, "member_id": member_id, "state": {"$in": states}}
        if before_id:
            query["_id"] = {"$lt": before_id}
        cursor = self._c().find(query, _HIDDEN).sort("_id", DESCENDING).limit(limit)
        return [_clean(d) for d in cursor]

    def count_of_member_in_states(self, merchant_id: str, member_id: str, states: list[str]) -> int:
        return self._c().count_documents({"merchant_id": merchant_id, "member_id": member_id,
                                          "state": {"$in": states}})

    def of_member_among(self, merchant_id: str, member_id: str, order_ids: list[str]) -> list[dict]:
        query = {"_id": {"$in": order_ids}, "merchant_id": merchant_id, "member_id": member_id}
        return [_clean(d) for d in self._c().find(query, _HIDDEN)]

    def expired(self, now: datetime, limit: int) -> list[dict]:
        """Unpaid orders past their expiry, across merchants (the expiry job)."""
        cursor = self._c().find({"state": "PENDING_PAYMENT", "expires_ms": {"$lte": epoch_ms(now)}}, _HIDDEN) \
            .sort("expires_ms", 1).limit(limit)
        return [_clean(d) for d in cursor]

    def due_for_auto_confirm(self, now_ms: int, limit: int) -> list[dict]:
        """Shipped or delivered orders whose receipt is due to be confirmed, across
        merchants (the auto-confirm job)."""
        query = {"state": {"$in": ["SHIPPED", "DELIVERED"]}, "auto_confirm_ms": {"$lte": now_ms}}
        cursor = self._c().find(query, _HIDDEN).sort("auto_confirm_ms", 1).limit(limit)
        return [_clean(d) for d in cursor]

    def search(self, merchant_id: str, *, state: str, created_from: datetime | None, created_to: datetime | None,
               channel: str, member_id: str, before_id: str, limit: int) -> list[dict]:
        """Staff search, newest first (ULID ids sort by creation time); `before_id` is the
        keyset of the next page."""
        query: dict[str, Any] = {"merchant_id": merchant_id}
        if state:
            query["state"] = state
        if created_from or created_to:
            query["created_ms"] = {**({"$gte": epoch_ms(created_from)} if created_from else {}),
                                   **({"$lt": epoch_ms(created_to)} if created_to else {})}
        if channel:
            query["attribution.channel"] = channel
        if member_id:
            query["member_id"] = member_id
        if before_id:
            query["_id"] = {"$lt": before_id}
        cursor = self._c().find(query, _HIDDEN).sort("_id", DESCENDING).limit(limit)
        return [_clean(d) for d in cursor]


def _order(doc: dict | None) -> Order | None:
    return order_of(doc) if doc is not None else None


class MongoOrders:
    """The order aggregate in MongoDB: the stored document shape is unchanged. `save`
    writes a change and its events in one conditional update on the version read."""

    def __init__(self, docs: Orders | None = None):
        self.docs = docs or Orders()

    async def get(self, merchant_id: str, order_id: str) -> Order | None:
        return _order(await run_sync(self.docs.get, merchant_id, order_id))

    async def of_member(self, merchant_id: str, member_id: str, order_id: str) -> Order | None:
        return _order(await run_sync(self.docs.of_member, merchant_id, member_id, order_id))

    async def by_key(self, merchant_id: str, member_id: str, idempotency_key: str) -> Order | None:
        return _order(await run_sync(self.docs.by_key, merchant_id, member_id, idempotency_key))

    async def page_of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[Order]:
        return [order_of(d) for d in await run_sync(self.docs.page_of_member, merchant_id, member_id, before_id,
                                                    limit)]

    async def search(self, merchant_id: str, *, state: str, created_from: datetime | None,
                     created_to: datetime | None, channel: str, member_id: str, before_id: str,
                     limit: int) -> list[Order]:
        docs = await run_sync(lambda: self.docs.search(
            merchant_id, state=state, created_from=created_from, created_to=created_to, channel=channel,
            member_id=member_id, before_id=before_id, limit=limit))
        return [order_of(d) for d in docs]

    async def page_of_member_in_states(self, merchant_id: str, member_id: str, states, before_id: str,
                                       limit: int) -> list[Order]:
        return [order_of(d) for d in await run_sync(self.docs.page_of_member_in_states, merchant_id, member_id,
                                                    list(states), before_id, limit)]

    async def count_of_member_in_states(self, merchant_id: str, member_id: str, states) -> int:
        return await run_sync(self.docs.count_of_member_in_states, merchant_id, member_id, list(states))

    async def of_member_among(self, merchant_id: str, member_id: str, order_ids) -> list[Order]:
        return [order_of(d) for d in await run_sync(self.docs.of_member_among, merchant_id, member_id,
                                                    list(order_ids))]

    async def expired(self, now: datetime, limit: int) -> list[Order]:
        return [order_of(d) for d in await run_sync(self.docs.expired, now, limit)]

    async def due_for_auto_confirm(self, now_ms: int, limit: int) -> list[Order]:
        return [order_of(d) for d in await run_sync(self.docs.due_for_auto_confirm, now_ms, limit)]

    async def add(self, order: Order) -> bool:
        """Inserts a new order with the events it recorded (order.placed). False when an
        order with the same idempotency key exists already; the events are then dropped."""
        events = messages.order_events(order, order.pull_events(), order.version)
        doc = {**order_doc(order), "created_ms": epoch_ms(order.created_at), "expires_ms": epoch_ms(order.expires_at)}
        return await run_sync(insert_new, self.docs._c(), doc, events)

    async def save(self, order: Order) -> None:
        """Writes what the recorded events changed, and the events, on the version that was
        read; raises StaleVersion when another write came first. A payment is also
        conditional on the order not being expired at the time it was decided (milliseconds:
        the embedded server compares datetimes in whole seconds)."""
        recorded = order.pull_events()
        if not recorded:
            return
        version = order.next_version
        query: dict[str, Any] = {"_id": order.id, "merchant_id": order.merchant_id}
        sets: dict[str, Any] = {}
        for event in recorded:
            sets.update(_changed(order, event))
            if isinstance(event, domain.OrderGrouping) or (isinstance(event, domain.OrderPaid)
                                                           and not event.from_group):
                query["expires_ms"] = {"$gt": epoch_ms(event.at)}
        if not order.stored_value.is_default:
            sets["stored_value"] = stored_value_doc(order.stored_value)  # refunds split the tender
        if order.commissions:
            # Set when it is paid, voided by refunds: always in the write of that change.
            sets["commissions"] = commissions_doc(order.commissions)
        events = messages.order_events(order, recorded, version)
        await run_sync(save_change, self.docs._c(), query, {"$set": sets}, events, version=order.version)
        order.version = version


def _changed(order: Order, event: Any) -> dict[str, Any]:
    """The stored fields a domain event changed."""
    state = {"state": order.state.value}
    if isinstance(event, (domain.OrderPaid, domain.OrderGrouping)):
        return {**state, "paid_at": order.paid_at, "payment_id": order.payment_id}
    if isinstance(event, domain.OrderCancelled):
        fields = {**state, "cancelled_at": order.cancelled_at, "cancel_reason": order.cancel_reason}
        if event.reason in domain.REFUNDED_CANCEL_REASONS:
            fields["refunded_amount"] = order.refunded_amount
        return fields
    if isinstance(event, domain.OrderShipped):
        shipment = order.shipment
        return {**state, "shipment": {"carrier": shipment.carrier, "tracking_number": shipment.tracking_number,
                                      "shipped_ms": shipment.shipped_ms},
                "auto_confirm_ms": order.auto_confirm_ms}
    if isinstance(event, domain.OrderDelivered):
        return {**state, "delivered_at": order.delivered_at}
    if isinstance(event, domain.OrderCompleted):
        # settle_open/settle_ms: the settle job's scan (adapters/split_store.py) starts
        # looking at the order from its completion on.
        return {**state, "completed_at": order.completed_at, "confirmed_by": order.confirmed_by,
                "settle_open": 1, "settle_ms": epoch_ms(order.completed_at)}
    if isinstance(event, domain.OrderSettled):
        return {"settled_at": order.settled_at, "settled_ms": epoch_ms(order.settled_at), "settle_open": 0}
    if isinstance(event, domain.OrderRefunded):
        return {"lines": [line_doc(l, refunded=True) for l in order.lines],
                f"applied_refunds.{event.refund_id}": applied_refund_doc(order.applied_refunds[event.refund_id]),
                "refunded_amount": order.refunded_amount}
    raise TypeError(f"no stored change for {type(event).__name__}")


def _settings_of(doc: dict | None) -> OrderSettings:
    """Stored settings; a field that is absent (or not positive where it must be) takes
    the default."""
    if not doc:
        return DEFAULTS

    def positive(name: str, default: int) -> int:
        value = doc.get(name)
        return int(value) if value and value > 0 else default

    def at_least_zero(name: str, default: int) -> int:
        value = doc.get(name)
        return int(value) if value is not None and value >= 0 else default

    return OrderSettings(
        unpaid_expiry_s=positive("unpaid_expiry_s", DEFAULTS.unpaid_expiry_s),
        flash_sale_expiry_s=positive("flash_sale_expiry_s", DEFAULTS.flash_sale_expiry_s),
        auto_confirm_days=positive("auto_confirm_days", DEFAULTS.auto_confirm_days),
        after_sales_days=at_least_zero("after_sales_days", DEFAULTS.after_sales_days),
        threshold_reductions=tuple(ThresholdReduction(int(r["threshold"]), int(r["reduction"]))
                                   for r in doc.get("threshold_reductions") or ()),
        shipping_fee=at_least_zero("shipping_fee", 0),
        free_shipping_over=at_least_zero("free_shipping_over", 0),
        version=int(doc.get("version") or 1),
    )


class Settings:
    """A merchant's order settings. Reads are cached in this process for CACHE_TTL_S (the
    order path reads them on every order): a change made by another process shows here
    at most that late; one saved through this object shows at once."""

    CACHE_TTL_S = 5.0

    def __init__(self, ttl_s: float = CACHE_TTL_S):
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, OrderSettings]] = {}

    @staticmethod
    def _c():
        return OrderSettingsDoc._get_collection()

    def of_merchant(self, merchant_id: str, fresh: bool = False) -> OrderSettings:
        """`fresh` skips the cache (staff reading what they are about to change)."""
        hit = None if fresh else self._cache.get(merchant_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        settings = _settings_of(self._c().find_one({"merchant_id": merchant_id}))
        self._cache[merchant_id] = (time.monotonic() + self._ttl_s, settings)
        return settings

    def save(self, merchant_id: str, settings: OrderSettings, version: int, updated_ms: int) -> OrderSettings | None:
        """Compare-and-set on `version` (0: the merchant still runs on the defaults, so the
        document is created). None when another write came first."""
        fields = {
            "unpaid_expiry_s": settings.unpaid_expiry_s, "flash_sale_expiry_s": settings.flash_sale_expiry_s,
            "auto_confirm_days": settings.auto_confirm_days, "after_sales_days": settings.after_sales_days,
            "threshold_reductions": [{"threshold": r.threshold, "reduction": r.reduction}
                                     for r in settings.threshold_reductions],
            "shipping_fee": settings.shipping_fee, "free_shipping_over": settings.free_shipping_over,
            "updated_ms": updated_ms,
        }
        if version == 0:
            try:
                self._c().insert_one({"_id": new_id("ost"), "merchant_id": merchant_id, **fields, "version": 1})
                saved = True
            except DuplicateKeyError:
                saved = False
        else:
            saved = self._c().update_one({"merchant_id": merchant_id, "version": version},
                                         {"$set": fields, "$inc": {"version": 1}}).modified_count == 1
        if not saved:
            self._cache.pop(merchant_id, None)
            return None
        result = replace(settings, version=version + 1)
        self._cache[merchant_id] = (time.monotonic() + self._ttl_s, result)
        return result


class MongoSettings:
    """SettingsRepository over `Settings` (sharing its cache with whoever else reads
    through the same `Settings`)."""

    def __init__(self, cached: Settings | None = None):
        self.cached = cached or Settings()

    async def of_merchant(self, merchant_id: str, fresh: bool = False) -> OrderSettings:
        return await run_sync(self.cached.of_merchant, merchant_id, fresh)

    async def save(self, merchant_id: str, settings: OrderSettings, updated_ms: int) -> OrderSettings:
        saved = await run_sync(self.cached.save, merchant_id, settings, settings.version, updated_ms)
        if saved is None:
            raise StaleVersion(f"the order settings of {merchant_id} changed since they were read")
        return saved

