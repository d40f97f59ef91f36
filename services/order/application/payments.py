"""Starting payments, applying the provider's notifications to payments and orders,
finishing payments whose second step was lost, and refunding paid orders whose units
were gone."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable

from siyu.order.v1 import events_pb2

from siyu_kit import context, logging as slog
from siyu_kit.db import run_sync
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Unauthenticated, Violations
from siyu_kit.events.outbox import make_event
from siyu_kit.events.streams import subject_of
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.adapters import messages
from services.order.adapters.ledger import Ledger
from services.order.adapters.repositories import Orders, Payments
from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.domain import ledger
from services.order.domain.orders import (CANCEL_STOCK_UNAVAILABLE, NOT_PAYABLE, Move, OrderState, is_expired,
                                          is_payable, stock_unavailable_cancel)
from services.order.domain.payments import (AUTO_REFUND_REASONS, RECONCILE_AFTER, RECONCILE_LEASE,
                                            REFUND_STOCK_UNAVAILABLE,
                                            RESULT_FAIL, RESULT_SUCCESS, Notification, PaymentMethod,
                                            PaymentState, Settlement, refund_reason, settle)

log = slog.get("siyu.order.payments")

MAX_KEY = 64
RECONCILE_BATCH = 100
PAID = subject_of("order", "order", "paid")
CANCELLED = subject_of("order", "order", "cancelled")
REFUNDED = subject_of("order", "payment", "refunded")


@dataclass
class PaymentUseCases:
    orders: Orders
    payments: Payments
    provider: SandboxProvider
    committed: Callable[[], None]
    clock: Callable[[], datetime] = utcnow
    entries: Ledger = field(default_factory=Ledger)

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def pay(self, order_id: str, idempotency_key: str, method: str) -> dict:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        v = Violations()
        v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
        v.check(method in ("", PaymentMethod.SANDBOX.value), "method", "SANDBOX is the only method")
        v.raise_if_any()
        order = await run_sync(self.orders.of_member, merchant_id, member_id, order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        existing = await run_sync(self.payments.by_key, merchant_id, order_id, idempotency_key)
        if existing:
            return existing
        now = self._now()
        if not is_payable(OrderState(order["state"]), order["expires_at"], now):
            raise FailedPrecondition(f"the order is {order['state']} or expired and cannot be paid",
                                     reason=NOT_PAYABLE)
        doc = {
            "_id": new_id("pay"), "merchant_id": merchant_id, "member_id": member_id, "order_id": order_id,
            "idempotency_key": idempotency_key, "method": PaymentMethod.SANDBOX.value,
            "state": PaymentState.PENDING.value, "amount": order["payable"], "currency": order["currency"],
            "created_at": now, "failures": 0, "version": 1,
        }
        if await run_sync(self.payments.insert, doc):
            return doc
        return await run_sync(self.payments.by_key, merchant_id, order_id, idempotency_key)

    async def handle_callback(self, n: Notification) -> tuple[dict, bool]:
        """Applies a signed provider notification. Returns the payment and whether it
        changed anything."""
        if not self.provider.verify(n):
            raise Unauthenticated("invalid signature", reason="BAD_SIGNATURE")
        v = Violations()
        v.check(is_id(n.payment_id, "pay"), "payment_id", "must be a pay_ id")
        v.check(n.result in (RESULT_SUCCESS, RESULT_FAIL), "result", "SUCCESS or FAIL")
        v.check(bool(n.provider_txn_id), "provider_txn_id", "required")
        v.raise_if_any()
        payment = await run_sync(self.payments.by_id_any_merchant, n.payment_id)
        if payment is None:
            raise NotFound(f"payment {n.payment_id} not found")
        # From here every query is scoped to the payment's merchant.
        merchant_id, payment_id = payment["merchant_id"], payment["_id"]
        v.check(n.amount == payment["amount"], "amount", "does not match the payment")
        v.check(n.currency == payment["currency"], "currency", "does not match the payment")
        v.raise_if_any("the notification does not match the payment")

        now = self._now()
        if n.result == RESULT_FAIL:
            last = payment.get("last_failure") or {}
            if payment["state"] != PaymentState.PENDING.value or last.get("provider_txn_id") == n.provider_txn_id:
                return payment, False
            # The order stays payable; the member may try again.
            applied = await run_sync(self.payments.update, merchant_id, payment_id,
                                     from_state=PaymentState.PENDING.value, version=payment["version"],
                                     fields={"last_failure": {"provider_txn_id": n.provider_txn_id, "at": now}},
                                     inc={"failures": 1})
            return await run_sync(self.payments.get, merchant_id, payment_id), applied

        applied = False
        if payment["state"] == PaymentState.PENDING.value:
            applied = await run_sync(self.payments.update, merchant_id, payment_id,
                                     from_state=PaymentState.PENDING.value,
                                     fields={"state": PaymentState.SUCCEEDED.value,
                                             "provider_txn_id": n.provider_txn_id, "succeeded_at": now,
                                             # Open until applied or refunded: if what follows is
                                             # lost, the reconcile job finishes it.
                                             "open": 1, "reconcile_ms": epoch_ms(now + RECONCILE_AFTER)})
            payment = await run_sync(self.payments.get, merchant_id, payment_id)
        if payment["state"] == PaymentState.SUCCEEDED.value:
            # Also finishes a payment whose order transition was cut short by a crash.
            applied = await self._settle(payment) or applied
            payment = await run_sync(self.payments.get, merchant_id, payment_id)
        elif payment["state"] == PaymentState.REFUNDED.value and \
                (payment.get("refund") or {}).get("reason") in AUTO_REFUND_REASONS:
            # A repeat: records what a crash may have left out of the ledger.
            await self._record_auto_refund(payment, now)
        return payment, applied

    async def _settle(self, payment: dict) -> bool:
        merchant_id = payment["merchant_id"]
        for _ in range(3):
            order = await run_sync(self.orders.get, merchant_id, payment["order_id"])
            now = self._now()
            state = OrderState(order["state"]) if order else OrderState.CANCELLED
            decision = settle(state, bool(order) and is_expired(order["expires_at"], now),
                              (order or {}).get("payment_id") or "", payment["_id"])
            if decision is Settlement.DONE:
                # A repeat: records what a crash may have left out of the ledger.
                await self._record(payment, ledger.payment_applied, now)
                await self._close(payment)
                return False
            if decision is Settlement.REFUND:
                return await self._refund(payment, refund_reason(state), now)
            after = {**order, "state": OrderState.PAID.value, "paid_at": now, "payment_id": payment["_id"],
                     "version": order["version"] + 1}
            event = make_event(PAID, merchant_id=merchant_id, aggregate_id=order["_id"],
                               aggregate_version=after["version"], occurred_at=now,
                               channel=(order.get("attribution") or {}).get("channel", ""),
                               payload=events_pb2.OrderPaid(order=messages.order(after),
                                                            payment=messages.payment(payment)))
            if await run_sync(self.orders.transition, merchant_id, order["_id"],
                              from_state=OrderState.PENDING_PAYMENT.value, to_state=OrderState.PAID.value,
                              fields={"paid_at": now, "payment_id": payment["_id"]}, events=(event,),
                              unexpired_at=now):
                self.committed()
                await self._record(payment, ledger.payment_applied, now)
                await self._close(payment)
                return True
            # The order moved (expired, cancelled or paid) meanwhile: decide again.
        # Never leave a successful payment neither applied nor refunded: the provider
        # retries a notification that was not acknowledged.
        raise Conflict("the order kept changing while the payment was applied; retry",
                       reason="ORDER_BUSY")

    async def _refund(self, payment: dict, reason: str, now: datetime) -> bool:
        await self._record(payment, ledger.payment_unapplied, now)
        receipt = self.provider.refund(payment["_id"], payment.get("provider_txn_id") or "", payment["amount"],
                                       payment["currency"])
        after = {**payment, "state": PaymentState.REFUNDED.value, "version": payment["version"] + 1}
        event = make_event(REFUNDED, merchant_id=payment["merchant_id"], aggregate_id=payment["_id"],
                           aggregate_version=after["version"], occurred_at=now,
                           payload=events_pb2.PaymentRefunded(payment=messages.payment(after), reason=reason))
        done = await run_sync(self.payments.update, payment["merchant_id"], payment["_id"],
                              from_state=PaymentState.SUCCEEDED.value, events=(event,),
                              fields={"state": PaymentState.REFUNDED.value, "refunded_at": now, "open": 0,
                                      "refund": {"provider_refund_id": receipt.provider_refund_id,
                                                 "amount": receipt.amount, "reason": reason, "at": now}})
        if done:
            self.committed()
            log.info("payment.refunded", payment_id=payment["_id"], reason=reason)
            await self._record(payment, ledger.payment_auto_refunded, now)
        return done

    async def _close(self, payment: dict) -> None:
        """The payment is applied and in the ledger: nothing is left for the reconcile job."""
        if payment.get("open"):
            await run_sync(self.payments.update, payment["merchant_id"], payment["_id"],
                           from_state=PaymentState.SUCCEEDED.value, fields={"open": 0})

    async def reconcile(self, limit: int = RECONCILE_BATCH) -> int:
        """The job: payments that SUCCEEDED a while ago and are still open lost the step
        after it (a crash, a notification the provider did not repeat). Each goes through
        the same settle path as a notification: the order takes it, or it is refunded.
        Replicas running this at once each take a payment by a compare-and-set first, so
        the provider is asked for a refund once."""
        now = self._now()
        due = await run_sync(self.payments.open_due, epoch_ms(now), limit)
        done = 0
        for payment in due:
            if not await run_sync(self.payments.take_for_reconcile, payment["merchant_id"], payment["_id"],
                                  payment["reconcile_ms"], epoch_ms(now + RECONCILE_LEASE)):
                continue  # another run took it
            try:
                await self._settle(payment)
                done += 1
            except Exception:  # noqa: BLE001 - one stuck payment must not hold up the others
                log.warning("payment.reconcile_failed", payment_id=payment["_id"], exc_info=True)
        if done:
            log.info("payment.reconciled", count=done)
        return done

    async def refund_unfulfillable(self, merchant_id: str, order_id: str, reservation_id: str) -> dict:
        """The catalog could not hold a paid order's units again (they were released and
        sold meanwhile): refund the payment and cancel the order with STOCK_UNAVAILABLE.
        Each step is conditional and the ledger entries have fixed ids, so a redelivered
        (or replayed) event finishes what is missing and changes nothing else."""
        order = await run_sync(self.orders.get, merchant_id, order_id)
        if order is None or order.get("reservation_id") != reservation_id:
            raise NotFound(f"no order {order_id} with reservation {reservation_id}")
        decision = stock_unavailable_cancel(OrderState(order["state"]))
        if decision is Move.REFUSE or (decision is Move.APPLY and order.get("refunded_amount", 0)):
            # Shipped, or partly refunded already: sending the whole payment back is a
            # person's decision.
            raise FailedPrecondition(f"the order is {order['state']}; its units cannot be refunded automatically",
                                     reason="ORDER_NOT_REFUNDABLE")
        payment = await run_sync(self.payments.get, merchant_id, order.get("payment_id") or "")
        if payment is None:
            raise NotFound(f"order {order_id} has no payment")
        now = self._now()
        if payment["state"] == PaymentState.SUCCEEDED.value:
            receipt = self.provider.refund(payment["_id"], payment.get("provider_txn_id") or "",
                                           payment["amount"], payment["currency"])
            after = {**payment, "state": PaymentState.REFUNDED.value, "version": payment["version"] + 1,
                     "refund": {"reason": REFUND_STOCK_UNAVAILABLE}}
            event = make_event(REFUNDED, merchant_id=merchant_id, aggregate_id=payment["_id"],
                               aggregate_version=after["version"], occurred_at=now,
                               payload=events_pb2.PaymentRefunded(payment=messages.payment(after),
                                                                  reason=REFUND_STOCK_UNAVAILABLE))
            if await run_sync(self.payments.update, merchant_id, payment["_id"],
                              from_state=PaymentState.SUCCEEDED.value, events=(event,),
                              fields={"state": PaymentState.REFUNDED.value, "refunded_at": now, "open": 0,
                                      "refund": {"provider_refund_id": receipt.provider_refund_id,
                                                 "amount": receipt.amount, "reason": REFUND_STOCK_UNAVAILABLE,
                                                 "at": now}}):
                self.committed()
                log.info("payment.refunded", payment_id=payment["_id"], reason=REFUND_STOCK_UNAVAILABLE)
        order = await self._cancel_paid(order, now)
        # The payment was applied to the order, and now leaves it whole.
        await self._record(payment, ledger.payment_applied, now)
        await self._record(payment, ledger.payment_returned, now)
        return order

    async def _cancel_paid(self, order: dict, now: datetime) -> dict:
        merchant_id = order["merchant_id"]
        for _ in range(3):
            decision = stock_unavailable_cancel(OrderState(order["state"]))
            if decision is Move.REPEAT:
                return order
            if decision is Move.REFUSE:
                raise FailedPrecondition(f"the order is {order['state']}", reason="ORDER_NOT_REFUNDABLE")
            fields = {"cancelled_at": now, "cancel_reason": CANCEL_STOCK_UNAVAILABLE,
                      "refunded_amount": order["payable"]}
            after = {**order, **fields, "state": OrderState.CANCELLED.value, "version": order["version"] + 1}
            event = make_event(CANCELLED, merchant_id=merchant_id, aggregate_id=order["_id"],
                               aggregate_version=after["version"], occurred_at=now,
                               channel=(order.get("attribution") or {}).get("channel", ""),
                               payload=events_pb2.OrderCancelled(order=messages.order(after),
                                                                 reason=CANCEL_STOCK_UNAVAILABLE))
            if await run_sync(self.orders.transition, merchant_id, order["_id"], from_state=OrderState.PAID.value,
                              to_state=OrderState.CANCELLED.value, version=order["version"], fields=fields,
                              events=(event,)):
                self.committed()
                log.info("order.cancelled", order_id=order["_id"], reason=CANCEL_STOCK_UNAVAILABLE)
                return after
            order = await run_sync(self.orders.get, merchant_id, order["_id"])
        raise Conflict("the order kept changing while it was cancelled; retry", reason="ORDER_BUSY")

    async def _record_auto_refund(self, payment: dict, now: datetime) -> None:
        for make_entry in (ledger.payment_unapplied, ledger.payment_auto_refunded):
            await self._record(payment, make_entry, now)

    async def _record(self, payment: dict, make_entry: Callable[[str, str, int], ledger.Entry],
                      now: datetime) -> None:
        """Entries have deterministic ids: recording one again stores nothing."""
        if payment["amount"] > 0:  # nothing moved, nothing to record
            entry = make_entry(payment["order_id"], payment["_id"], payment["amount"])
            await run_sync(self.entries.record, payment["merchant_id"], entry, payment["currency"], now)

    async def complete_sandbox(self, payment_id: str) -> tuple[Notification, dict]:
        """The member approves in the sandbox wallet; the provider's signed SUCCESS
        notification goes through the same handler as the real callback."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(payment_id, "pay"), "payment_id", "must be a pay_ id")
        v.raise_if_any()
        payment = await run_sync(self.payments.of_member, ctx.merchant_id, member_id, payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        n = Notification(payment_id=payment_id, provider_txn_id=self.provider.new_txn_id(),
                         amount=payment["amount"], currency=payment["currency"], result=RESULT_SUCCESS,
                         timestamp=int(self._now().timestamp()))
        n = replace(n, signature=self.provider.sign(n))
        payment, _ = await self.handle_callback(n)
        return n, payment


