"""Placing, reading, cancelling and expiring orders."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from siyu.order.v1 import events_pb2

from siyu_kit import context, logging as slog
from siyu_kit.db import run_sync
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.events.outbox import make_event
from siyu_kit.events.streams import subject_of
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.adapters import messages
from services.order.adapters.repositories import Orders, Settings
from services.order.application.ports import Catalog
from services.order.domain.orders import (CANCEL_BY_MEMBER, CANCEL_BY_TIMEOUT, CancelDecision, OrderState,
                                          is_expired, member_cancel)
from services.order.domain.pricing import DEFAULT_PIPELINE, LineInput, Pipeline

log = slog.get("siyu.order")

MAX_LINES = 50
MAX_QUANTITY = 999
MAX_KEY = 64
MAX_REMARK = 500
MAX_SHARE_CODE = 64
DEFAULT_PAGE = 20
MAX_PAGE = 100
ATTRIBUTION_IDS = (("persona_id", "per"), ("content_id", "cnt"), ("live_session_id", "liv"))

PLACED = subject_of("order", "order", "placed")
CANCELLED = subject_of("order", "order", "cancelled")


@dataclass(frozen=True)
class PlaceOrderInput:
    idempotency_key: str
    lines: list[tuple[str, int]]  # (sku_id, quantity)
    # channel name ("" when unset), persona_id, content_id, live_session_id, share_code
    attribution: dict = field(default_factory=dict)
    remark: str = ""


def validate_place(cmd: PlaceOrderInput, ctx_channel: str) -> None:
    v = Violations()
    v.check(1 <= len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
    v.check(1 <= len(cmd.lines) <= MAX_LINES, "lines", f"1..{MAX_LINES} lines")
    seen: dict[str, int] = {}
    for i, (sku_id, quantity) in enumerate(cmd.lines):
        if not is_id(sku_id, "sku"):
            v.add(f"lines[{i}].sku_id", "must be a sku_ id")
        elif sku_id in seen:
            v.add(f"lines[{i}].sku_id", f"the same SKU as lines[{seen[sku_id]}]; one line per SKU")
        else:
            seen[sku_id] = i
        v.check(1 <= quantity <= MAX_QUANTITY, f"lines[{i}].quantity", f"1..{MAX_QUANTITY}")
    channel = cmd.attribution.get("channel", "")
    v.check(not channel or channel == ctx_channel, "attribution.channel",
            "must be unset or the channel of the API key")
    for name, prefix in ATTRIBUTION_IDS:
        value = cmd.attribution.get(name, "")
        v.check(not value or is_id(value, prefix), f"attribution.{name}", f"must be a {prefix}_ id")
    v.check(len(cmd.attribution.get("share_code", "")) <= MAX_SHARE_CODE, "attribution.share_code",
            f"at most {MAX_SHARE_CODE} characters")
    v.check(len(cmd.remark) <= MAX_REMARK, "remark", f"at most {MAX_REMARK} characters")
    v.raise_if_any()


def _require_order_id(order_id: str) -> None:
    v = Violations()
    v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
    v.raise_if_any()


@dataclass
class OrderUseCases:
    orders: Orders
    settings: Settings
    catalog: Catalog
    committed: Callable[[], None]
    clock: Callable[[], datetime] = utcnow
    pipeline: Pipeline = DEFAULT_PIPELINE

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def place(self, cmd: PlaceOrderInput) -> dict:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        validate_place(cmd, ctx.channel)
        existing = await run_sync(self.orders.by_key, merchant_id, member_id, cmd.idempotency_key)
        if existing:
            return existing

        skus = await self.catalog.skus([s for s, _ in cmd.lines])
        missing = Violations()
        for i, (sku_id, _) in enumerate(cmd.lines):
            info = skus.get(sku_id)
            if info is None:
                missing.add(f"lines[{i}].sku_id", f"{sku_id} does not exist")
            elif not info.on_shelf:
                missing.add(f"lines[{i}].sku_id", f"{sku_id} is not on sale")
        if missing.items:
            first = missing.items[0]
            raise NotFound(f"{first.field}: {first.description}", reason="SKU_NOT_FOUND", violations=missing.items)
        currencies = {skus[s].currency for s, _ in cmd.lines}
        if len(currencies) != 1:
            raise FailedPrecondition("the lines are priced in different currencies", reason="MIXED_CURRENCY")
        quote = self.pipeline.price([
            LineInput(sku_id=s, product_id=skus[s].product_id, title=skus[s].title, quantity=q,
                      unit_price=skus[s].unit_price) for s, q in cmd.lines])

        now = self._now()
        settings = await run_sync(self.settings.of_merchant, merchant_id)
        expires_at = now + timedelta(seconds=settings.unpaid_expiry_s)
        order_id, reservation_id = new_id("ord"), new_id("rsv")
        # All lines or none; if this process dies before the insert below, the catalog's
        # sweeper frees the stock at expires_at.
        await self.catalog.reserve(reservation_id, order_id, list(cmd.lines), expires_at)

        attribution = {k: v for k, v in cmd.attribution.items() if v and k != "channel"}
        if ctx.channel:
            attribution["channel"] = ctx.channel
        doc = {
            "_id": order_id, "merchant_id": merchant_id, "member_id": member_id,
            "idempotency_key": cmd.idempotency_key, "state": OrderState.PENDING_PAYMENT.value,
            "lines": [{"line_id": new_id("oln"), "sku_id": l.sku_id, "product_id": l.product_id,
                       "title": l.title, "quantity": l.quantity, "unit_price": l.unit_price,
                       "line_total": l.line_total, "line_amount": l.line_amount, "paid_amount": l.paid_amount}
                      for l in quote.lines],
            "currency": currencies.pop(), "total": quote.total, "payable": quote.payable,
            "shipping_fee": quote.shipping_fee, "attribution": attribution, "remark": cmd.remark,
            "reservation_id": reservation_id, "created_at": now, "expires_at": expires_at, "version": 1,
        }
        event = make_event(PLACED, merchant_id=merchant_id, aggregate_id=order_id, aggregate_version=1,
                           payload=events_pb2.OrderPlaced(order=messages.order(doc)), channel=ctx.channel,
                           occurred_at=now)
        try:
            inserted = await run_sync(self.orders.insert, doc, event)
        except Exception:
            await self._release_quietly(reservation_id)
            raise
        if inserted:
            self.committed()
            return doc
        # Lost a race with the same idempotency key: the winner's order stands.
        await self._release_quietly(reservation_id)
        winner = await run_sync(self.orders.by_key, merchant_id, member_id, cmd.idempotency_key)
        if winner is None:
            raise Conflict("the order was placed concurrently; try again")
        return winner

    async def _release_quietly(self, reservation_id: str) -> None:
        try:
            await self.catalog.release(reservation_id)
        except Exception:  # noqa: BLE001 - the catalog's sweeper frees it at expiry
            log.warning("order.release_failed", reservation_id=reservation_id, exc_info=True)

    async def get(self, order_id: str) -> dict:
        ctx = context.current()
        member_id = ctx.require_member()
        _require_order_id(order_id)
        doc = await run_sync(self.orders.of_member, ctx.merchant_id, member_id, order_id)
        if doc is None:
            raise NotFound(f"order {order_id} not found")
        return doc

    async def list_mine(self, page_size: int, page_token: str) -> tuple[list[dict], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(0 <= page_size <= MAX_PAGE, "page_size", f"1..{MAX_PAGE}")
        v.check(not page_token or is_id(page_token, "ord"), "page_token", "not a token from this list")
        v.raise_if_any()
        size = page_size or DEFAULT_PAGE
        docs = await run_sync(self.orders.page_of_member, ctx.merchant_id, member_id, page_token, size + 1)
        more = len(docs) > size
        docs = docs[:size]
        return docs, (docs[-1]["_id"] if more else "")

    async def cancel(self, order_id: str) -> dict:
        ctx = context.current()
        member_id = ctx.require_member()
        _require_order_id(order_id)
        for _ in range(3):
            doc = await run_sync(self.orders.of_member, ctx.merchant_id, member_id, order_id)
            if doc is None:
                raise NotFound(f"order {order_id} not found")
            decision = member_cancel(OrderState(doc["state"]))
            if decision is CancelDecision.ALREADY_CANCELLED:
                return doc
            if decision is CancelDecision.TOO_LATE:
                raise FailedPrecondition(f"a {doc['state']} order cannot be cancelled",
                                         reason="ORDER_NOT_CANCELLABLE")
            if await self._cancel(doc, CANCEL_BY_MEMBER, self._now()):
                return await run_sync(self.orders.of_member, ctx.merchant_id, member_id, order_id)
        raise Conflict("the order changed while cancelling; try again")

    async def _cancel(self, doc: dict, reason: str, now: datetime) -> bool:
        after = {**doc, "state": OrderState.CANCELLED.value, "cancelled_at": now, "version": doc["version"] + 1}
        event = make_event(CANCELLED, merchant_id=doc["merchant_id"], aggregate_id=doc["_id"],
                           aggregate_version=after["version"], occurred_at=now,
                           channel=(doc.get("attribution") or {}).get("channel", ""),
                           payload=events_pb2.OrderCancelled(order=messages.order(after), reason=reason))
        done = await run_sync(self.orders.transition, doc["merchant_id"], doc["_id"],
                              from_state=OrderState.PENDING_PAYMENT.value, to_state=OrderState.CANCELLED.value,
                              version=doc["version"], events=(event,),
                              fields={"cancelled_at": now, "cancel_reason": reason})
        if done:
            self.committed()
        return done

    async def expire_due(self, limit: int = 100) -> int:
        """Cancel unpaid orders past their expiry. A payment racing this ends in exactly
        one of PAID or CANCELLED: both are conditional on PENDING_PAYMENT."""
        now = self._now()
        due = await run_sync(self.orders.expired, now, limit)
        cancelled = 0
        for doc in due:
            if is_expired(doc["expires_at"], now) and await self._cancel(doc, CANCEL_BY_TIMEOUT, now):
                cancelled += 1
        if cancelled:
            log.info("order.expired", count=cancelled)
        return cancelled
