"""Payments in MongoDB: the stored document ⇄ the Payment aggregate, and its events as
the messages the outbox carries. Every query filters by merchant, except the lookup by
the globally unique id that a provider callback starts from and the scan of the
reconcile job."""
from __future__ import annotations

from typing import Any

from siyu.order.v1 import events_pb2

from siyu_kit.db import run_sync
from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import aware
from siyu_kit.repository import insert_new, save_change

from services.order.adapters import messages
from services.order.adapters.documents import PaymentDoc
from services.order.domain.payments import (Failure, Payment, PaymentMethod, PaymentRefunded, PaymentState,
                                            ProviderRefund)

_HIDDEN = {"outbox": 0}


def payment_of(doc: dict | None) -> Payment | None:
    if doc is None:
        return None
    failure, refund = doc.get("last_failure") or {}, doc.get("refund") or {}
    return Payment(
        id=doc["_id"], merchant_id=doc["merchant_id"], version=doc["version"], member_id=doc["member_id"],
        order_id=doc["order_id"], idempotency_key=doc["idempotency_key"], amount=doc["amount"],
        currency=doc["currency"], created_at=aware(doc["created_at"]), method=PaymentMethod(doc["method"]),
        state=PaymentState(doc["state"]), provider_txn_id=doc.get("provider_txn_id") or "",
        succeeded_at=aware(doc.get("succeeded_at")), open=bool(doc.get("open")),
        reconcile_ms=doc.get("reconcile_ms") or 0,
        last_failure=Failure(failure["provider_txn_id"], aware(failure.get("at"))) if failure else None,
        failures=doc.get("failures") or 0,
        refund=ProviderRefund(refund.get("provider_refund_id") or "", refund.get("amount") or 0,
                              refund.get("reason") or "", aware(refund.get("at"))) if refund else None,
        refunded_at=aware(doc.get("refunded_at")), request_hash=doc.get("request_hash") or "",
        channel=doc.get("channel") or "", prepay_id=doc.get("prepay_id") or "", query_ms=doc.get("query_ms") or 0,
        balance=doc.get("balance") or 0)


def _refund_doc(refund: ProviderRefund) -> dict:
    return {"provider_refund_id": refund.provider_refund_id, "amount": refund.amount, "reason": refund.reason,
            "at": refund.at}


def _fields(p: Payment) -> dict[str, Any]:
    """The stored form of what changed since the payment was read."""
    stored = {"state": p.state.value, "provider_txn_id": p.provider_txn_id, "succeeded_at": p.succeeded_at,
              "open": int(p.open), "reconcile_ms": p.reconcile_ms, "failures": p.failures,
              "refunded_at": p.refunded_at,
              "last_failure": {"provider_txn_id": p.last_failure.provider_txn_id, "at": p.last_failure.at}
              if p.last_failure else None,
              "refund": _refund_doc(p.refund) if p.refund else None,
              "channel": p.channel, "prepay_id": p.prepay_id, "query_ms": p.query_ms}
    return {name: stored[name] for name in sorted(p.changed)}


def _new_doc(p: Payment) -> dict:
    return {"_id": p.id, "merchant_id": p.merchant_id, "member_id": p.member_id, "order_id": p.order_id,
            "idempotency_key": p.idempotency_key, "method": p.method.value, "state": p.state.value,
            "amount": p.amount, "currency": p.currency, "created_at": p.created_at, "failures": p.failures,
            "version": p.version, **({"request_hash": p.request_hash} if p.request_hash else {}),
            **({"balance": p.balance} if p.balance else {})}


def events_of(p: Payment) -> list[Event]:
    """The payment's recorded events as outbox entries, at the version the save writes."""
    found = []
    for event in p.pull_events():
        if isinstance(event, PaymentRefunded):
            found.append(event_for(events_pb2.PaymentRefunded(payment=messages.payment(p), reason=event.reason),
                                   merchant_id=p.merchant_id, aggregate_id=p.id,
                                   aggregate_version=p.next_version, occurred_at=event.occurred_at))
        else:
            raise TypeError(f"no message for payment event {type(event).__name__}")
    return found


class Payments:
    """The PaymentRepository port over MongoDB."""

    @staticmethod
    def _c():
        return PaymentDoc._get_collection()

    def _one(self, query: dict) -> Payment | None:
        return payment_of(self._c().find_one(query, _HIDDEN))

    async def add(self, payment: Payment) -> bool:
        """False when the order already has a payment with the idempotency key."""
        return await run_sync(insert_new, self._c(), _new_doc(payment))

    async def by_key(self, merchant_id: str, order_id: str, key: str) -> Payment | None:
        return await run_sync(self._one, {"merchant_id": merchant_id, "order_id": order_id, "idempotency_key": key})

    async def by_id_any_merchant(self, payment_id: str) -> Payment | None:
        """A provider callback names only the payment; its merchant comes from here."""
        return await run_sync(self._one, {"_id": payment_id})

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        return await run_sync(self._one, {"_id": payment_id, "merchant_id": merchant_id})

    async def of_member(self, merchant_id: str, member_id: str, payment_id: str) -> Payment | None:
        return await run_sync(self._one, {"_id": payment_id, "merchant_id": merchant_id, "member_id": member_id})

    async def of_order(self, merchant_id: str, order_id: str) -> list[Payment]:
        def find() -> list[Payment]:
            cursor = self._c().find({"merchant_id": merchant_id, "order_id": order_id}, _HIDDEN).sort("_id", 1)
            return [payment_of(d) for d in cursor]
        return await run_sync(find)

    async def open_due(self, now_ms: int, limit: int) -> list[Payment]:
        """SUCCEEDED payments (of any merchant) neither applied nor refunded whose
        reconcile time has come, oldest first (the reconcile job)."""
        def find() -> list[Payment]:
            cursor = self._c().find({"open": 1, "reconcile_ms": {"$lte": now_ms}}, _HIDDEN) \
                .sort("reconcile_ms", 1).limit(limit)
            return [payment_of(d) for d in cursor]
        return await run_sync(find)

    async def take_for_reconcile(self, payment: Payment, seen_ms: int) -> bool:
        """Compare-and-set on the reconcile time that was read: one job run (of all the
        replicas) takes the payment, until its new `reconcile_ms`."""
        def take() -> bool:
            return self._c().update_one(
                {"_id": payment.id, "merchant_id": payment.merchant_id, "open": 1, "reconcile_ms": seen_ms},
                {"$set": {"reconcile_ms": payment.reconcile_ms}}).modified_count == 1
        return await run_sync(take)

    async def query_due(self, now_ms: int, limit: int) -> list[Payment]:
        """PENDING payments (of any merchant) whose time to ask the provider has come,
        oldest first (the WeChat query job)."""
        def find() -> list[Payment]:
            cursor = self._c().find({"query_ms": {"$gt": 0, "$lte": now_ms}, "state": PaymentState.PENDING.value},
                                    _HIDDEN).sort("query_ms", 1).limit(limit)
            return [payment_of(d) for d in cursor]
        return await run_sync(find)

    async def take_for_query(self, payment: Payment, seen_ms: int) -> bool:
        """Compare-and-set on the query time that was read: one job run asks about it."""
        def take() -> bool:
            return self._c().update_one(
                {"_id": payment.id, "merchant_id": payment.merchant_id, "query_ms": seen_ms},
                {"$set": {"query_ms": payment.query_ms}}).modified_count == 1
        return await run_sync(take)

    async def save(self, payment: Payment) -> None:
        """Writes the change and its events on the version that was read; raises
        StaleVersion when another write came first."""
        events = events_of(payment)
        fields = {k: v for k, v in _fields(payment).items() if v is not None}
        await run_sync(save_change, self._c(), {"_id": payment.id, "merchant_id": payment.merchant_id},
                       {"$set": fields} if fields else {}, events, version=payment.version)
        payment.version += 1
        payment.changed.clear()

