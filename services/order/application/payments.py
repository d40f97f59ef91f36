"""Starting payments, applying the provider's notifications to payments and orders,
finishing payments whose second step was lost, and refunding paid orders whose units
were gone."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable

from siyu_kit import context, logging as slog, retry
from siyu_kit.aggregate import Move, StaleVersion
from siyu_kit.errors import FailedPrecondition, NotFound, Unauthenticated, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.application.ports import (Balances, LedgerRepository, OrderRepository, OrderTenders,
                                              PaymentProvider, PaymentRepository, ProviderRefunds)
from services.order.domain import ledger
from services.order.domain.idempotency import fingerprint, require_same_request
from services.order.domain.orders import (CANCEL_STOCK_UNAVAILABLE, NOT_PAYABLE, NOT_REFUNDABLE, Order, OrderState,
                                          stock_unavailable_cancel)
from services.order.domain.payments import (RECONCILE_LEASE, REFUND_STOCK_UNAVAILABLE, REFUND_TENDER_CHANGED,
                                            RESULT_FAIL, RESULT_SUCCESS, Notification, Payment, PaymentMethod,
                                            PaymentState, RefundReceipt, Settlement, refund_reason, settle)
from services.order.domain.tender import Hold

log = slog.get("siyu.order.payments")

MAX_KEY = 64
RECONCILE_BATCH = 100
ORDER_BUSY = "ORDER_BUSY"


def auto_refund_id(payment_id: str) -> str:
    """The refund id of a payment sent back whole (the order could not take it): fixed, so
    the provider refunds it once however often it is retried."""
    return f"{payment_id}_back"


@dataclass
class PaymentUseCases:
    orders: OrderRepository
    payments: PaymentRepository
    provider: PaymentProvider
    entries: LedgerRepository
    clock: Callable[[], datetime] = utcnow
    # Refunds of payments of other methods than the sandbox, by method.
    refunders: dict[PaymentMethod, ProviderRefunds] = field(default_factory=dict)
    # Stored value: the member's balance, and the order's tender written alone. Without
    # them an order cannot be paid with balance.
    balances: Balances | None = None
    tenders: OrderTenders | None = None

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def _payment(self, merchant_id: str, payment_id: str) -> Payment:
        payment = await self.payments.get(merchant_id, payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        return payment

    async def pay(self, order_id: str, idempotency_key: str, method: str, use_balance: bool = False) -> Payment:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        v = Violations()
        v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
        # BALANCE is what a payment the balance covers wholly becomes (use_balance), not a choice.
        v.check(method in ("", PaymentMethod.SANDBOX.value, PaymentMethod.WECHAT.value), "method",
                "SANDBOX or WECHAT")
        v.raise_if_any()
        order = await self.orders.of_member(merchant_id, member_id, order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        request_hash = fingerprint({"order_id": order_id, "method": method or PaymentMethod.SANDBOX.value,
                                    **({"use_balance": True} if use_balance else {})})
        now = self._now()
        # A payable order paid without balance (the common case) is inserted at once: a
        # repeated key lands on the unique index and the first payment is returned from
        # there. Paying with balance holds money first, so its key is looked up before;
        # so is the key of an order that is no longer payable (a repeat after paying).
        first_read = use_balance or not order.is_payable(now) or order.stored_value.hold in (Hold.ASKED, Hold.HELD)
        existing = await self.payments.by_key(merchant_id, order_id, idempotency_key) if first_read else None
        if existing:
            return await self._repeated(existing, request_hash)
        if not order.is_payable(now):
            raise FailedPrecondition(f"the order is {order.state.value} or expired and cannot be paid",
                                     reason=NOT_PAYABLE)
        read = [order]

        async def tender() -> tuple[Order, int]:
            # Another write of the order (a concurrent payment with balance) may come
            # first: read it again then; the member service's hold is idempotent by order.
            current = read.pop() if read else await self.orders.of_member(merchant_id, member_id, order_id)
            if current is None:
                raise NotFound(f"order {order_id} not found")
            if not current.is_payable(self._now()):  # paid or cancelled meanwhile: hold nothing for it
                raise FailedPrecondition(f"the order is {current.state.value} or expired and cannot be paid",
                                         reason=NOT_PAYABLE)
            return await self._tender(current, use_balance)

        order, balance = await retry.on_conflict(tender, gave_up="the order kept changing while it was paid; retry",
                                                 reason=ORDER_BUSY)
        payment = Payment.start(new_id("pay"), merchant_id=merchant_id, member_id=member_id, order_id=order_id,
                                idempotency_key=idempotency_key, amount=order.payable - balance,
                                currency=order.currency, now=now, request_hash=request_hash, balance=balance)
        if method:
            payment.method = PaymentMethod(method)
        if balance == order.payable:
            # The balance covers it all, or nothing is left to charge (a points-only order).
            payment.method = PaymentMethod.BALANCE
        if await self.payments.add(payment):
            if payment.method is PaymentMethod.BALANCE:
                # No provider takes part: the payment succeeds at once, through the same
                # settle path as a provider's notification.
                payment, _ = await self.succeeded(payment, f"balance_{payment.id}")
            return payment
        winner = await self.payments.by_key(merchant_id, order_id, idempotency_key)
        if winner is not None:
            return await self._repeated(winner, request_hash)
        return winner

    async def _repeated(self, existing: Payment, request_hash: str) -> Payment:
        """The payment a repeated key started, when the request is the same."""
        require_same_request(existing.request_hash, request_hash, "payment")
        if existing.method is PaymentMethod.BALANCE and existing.state is PaymentState.PENDING:
            # The first call stopped between adding it and settling it: finish it.
            existing, _ = await self.succeeded(existing, f"balance_{existing.id}")
        return existing

    async def handle_callback(self, n: Notification, read: Payment | None = None) -> tuple[Payment, bool]:
        """Applies a signed provider notification. Returns the payment and whether it
        changed anything. `read`: the payment as the caller has just read it (the sandbox
        completion), so it is not read a second time; every write is still conditional on
        its version."""
        if not self.provider.verify(n):
            raise Unauthenticated("invalid signature", reason="BAD_SIGNATURE")
        v = Violations()
        v.check(is_id(n.payment_id, "pay"), "payment_id", "must be a pay_ id")
        v.check(n.result in (RESULT_SUCCESS, RESULT_FAIL), "result", "SUCCESS or FAIL")
        v.check(bool(n.provider_txn_id), "provider_txn_id", "required")
        v.raise_if_any()
        payment = read if read is not None and read.id == n.payment_id else (
            await self.payments.by_id_any_merchant(n.payment_id))
        if payment is None:
            raise NotFound(f"payment {n.payment_id} not found")
        # From here every query is scoped to the payment's merchant.
        v.check(payment.method is PaymentMethod.SANDBOX, "payment_id", "is not a sandbox payment")
        v.check(n.amount == payment.amount, "amount", "does not match the payment")
        v.check(n.currency == payment.currency, "currency", "does not match the payment")
        v.raise_if_any("the notification does not match the payment")

        if n.result == RESULT_FAIL:
            return await self.failed(payment, n.provider_txn_id)
        return await self.succeeded(payment, n.provider_txn_id)

    async def failed(self, payment: Payment, provider_txn_id: str) -> tuple[Payment, bool]:
        """The provider says the payment failed: the order stays payable and the member
        may try again."""
        now = self._now()
        if not payment.fail(provider_txn_id, now):
            return payment, False
        try:
            await self.payments.save(payment)
        except StaleVersion:
            return await self._payment(payment.merchant_id, payment.id), False
        return payment, True

    async def succeeded(self, payment: Payment, provider_txn_id: str) -> tuple[Payment, bool]:
        """The provider says the money was taken (a verified notification, or its answer
        to a query): the payment succeeds and the order takes it, or it is sent back.
        Returns the payment and whether it changed anything."""
        merchant_id, payment_id = payment.merchant_id, payment.id
        now = self._now()
        read = [payment]

        async def succeed() -> tuple[Payment, bool]:
            current = read.pop() if read else await self._payment(merchant_id, payment_id)
            if not current.succeed(provider_txn_id, now):
                return current, False
            await self.payments.save(current)
            return current, True

        payment, applied = await retry.on_conflict(succeed, gave_up="the payment kept changing; retry")
        if payment.state is PaymentState.SUCCEEDED:
            # Also finishes a payment whose order transition was cut short by a crash.
            payment, settled = await self._settle(payment)
            applied = settled or applied
        elif payment.was_auto_refunded:
            # A repeat: records what a crash may have left out of the ledger.
            await self._record_auto_refund(payment, now)
        return payment, applied

    async def _settle(self, payment: Payment) -> tuple[Payment, bool]:
        """The order takes the payment, or it is sent back. Never leaves a successful
        payment neither applied nor refunded: the provider retries a notification that
        was not acknowledged."""
        merchant_id = payment.merchant_id

        async def attempt() -> tuple[Payment, bool]:
            order = await self.orders.get(merchant_id, payment.order_id)
            now = self._now()
            state = order.state if order else OrderState.CANCELLED
            decision = settle(state, order is not None and order.is_expired(now),
                              order.payment_id if order else "", payment.id)
            if decision is Settlement.DONE:
                # A repeat: records what a crash may have left out of the ledger.
                await self._record(payment, ledger.payment_applied, now)
                await self._balance_paid(order, payment, now)
                return await self._close(payment), False
            if decision is Settlement.REFUND:
                return await self._refund(payment, refund_reason(state), now)
            if not order.stored_value.fits(payment.balance):
                return await self._refund(payment, REFUND_TENDER_CHANGED, now)
            order.pay(payment.id, now, payment=payment)
            # Conditional on the version read: if the order moved (expired, cancelled or
            # paid) meanwhile, decide again.
            await self.orders.save(order)
            await self._record(payment, ledger.payment_applied, now)
            await self._balance_paid(order, payment, now)
            return await self._close(payment), True

        return await retry.on_conflict(attempt, gave_up="the order kept changing while the payment was applied; retry",
                                       reason=ORDER_BUSY)

    async def _refund(self, payment: Payment, reason: str, now: datetime) -> tuple[Payment, bool]:
        """A payment the order could not take goes back through UNAPPLIED:<order>."""
        await self._record(payment, ledger.payment_unapplied, now)
        payment, done = await self._send_back(payment, reason, now)
        if done:
            await self._record(payment, ledger.payment_auto_refunded, now)
        return payment, done

    async def _send_back(self, payment: Payment, reason: str, now: datetime) -> tuple[Payment, bool]:
        """Refunds a SUCCEEDED payment at the provider, once: a save that loses the
        compare-and-set keeps the provider's receipt for the next attempt."""
        read, receipts = [payment], []

        async def attempt() -> tuple[Payment, bool]:
            current = read.pop() if read else await self._payment(payment.merchant_id, payment.id)
            if current.state is not PaymentState.SUCCEEDED:
                return current, False
            if not receipts:
                receipts.append(await self._provider_refund(current, auto_refund_id(current.id), current.amount)
                                if current.amount > 0 else RefundReceipt(provider_refund_id="", amount=0))
            current.refunded(receipts[0].provider_refund_id, receipts[0].amount, reason, now)
            await self.payments.save(current)
            log.info("payment.refunded", payment_id=current.id, reason=reason)
            return current, True

        return await retry.on_conflict(attempt, gave_up="the payment kept changing while it was refunded; retry")

    async def _provider_refund(self, payment: Payment, refund_id: str, amount: int):
        """The provider of the payment's method sends the money back, once per refund id."""
        refunder = self.refunders.get(payment.method) or self.provider
        return await refunder.refund(payment, refund_id, amount)

    async def _close(self, payment: Payment) -> Payment:
        """The payment is applied and in the ledger: nothing is left for the reconcile job."""
        if payment.close():
            try:
                await self.payments.save(payment)
            except StaleVersion:
                return await self._payment(payment.merchant_id, payment.id)
        return payment

    async def reconcile(self, limit: int = RECONCILE_BATCH) -> int:
        """The job: payments that SUCCEEDED a while ago and are still open lost the step
        after it (a crash, a notification the provider did not repeat). Each goes through
        the same settle path as a notification: the order takes it, or it is refunded.
        Replicas running this at once each take a payment by a compare-and-set first, so
        the provider is asked for a refund once."""
        now = self._now()
        due = await self.payments.open_due(epoch_ms(now), limit)
        done = 0
        for payment in due:
            seen = payment.take_for_reconcile(now + RECONCILE_LEASE)
            if not await self.payments.take_for_reconcile(payment, seen):
                continue  # another run took it
            try:
                await self._settle(payment)
                done += 1
            except Exception:  # noqa: BLE001 - one stuck payment must not hold up the others
                log.warning("payment.reconcile_failed", payment_id=payment.id, exc_info=True)
        if done:
            log.info("payment.reconciled", count=done)
        return done

    async def refund_unfulfillable(self, merchant_id: str, order_id: str, reservation_id: str) -> Order:
        """The catalog could not hold a paid order's units again (they were released and
        sold meanwhile): refund the payment and cancel the order with STOCK_UNAVAILABLE.
        Each step is conditional and the ledger entries have fixed ids, so a redelivered
        (or replayed) event finishes what is missing and changes nothing else."""
        order = await self.orders.get(merchant_id, order_id)
        if order is None or order.reservation_id != reservation_id:
            raise NotFound(f"no order {order_id} with reservation {reservation_id}")
        decision = stock_unavailable_cancel(order.state)
        if decision is Move.REFUSE or (decision is Move.APPLY and order.refunded_amount):
            # Shipped, or partly refunded already: sending the whole payment back is a
            # person's decision.
            raise FailedPrecondition(f"the order is {order.state.value}; its units cannot be refunded automatically",
                                     reason=NOT_REFUNDABLE)
        payment = await self.payments.get(merchant_id, order.payment_id)
        if payment is None:
            raise NotFound(f"order {order_id} has no payment")
        now = self._now()
        await self._send_back(payment, REFUND_STOCK_UNAVAILABLE, now)
        order = await self._cancel_paid(order, now)
        # The payment was applied to the order, and now leaves it whole.
        await self._record(payment, ledger.payment_applied, now)
        await self._record(payment, ledger.payment_returned, now)
        await self._balance_returned(order, payment, now)
        return order

    async def refund_grouping(self, merchant_id: str, order_id: str, reason: str) -> Order | None:
        """A paid group-buy order that cannot proceed (its group filled or closed before it
        took a slot, or failed): the payment goes back whole, once (the provider's refund is
        keyed by the payment), the order is CANCELLED with `reason` (order.cancelled: the
        catalog releases its units, the member service its coupon and points) and the
        ledger shows the payment applied and returned. A redelivery finishes what is
        missing and changes nothing else. None for no such order; an order whose group
        formed meanwhile is left alone."""
        order = await self.orders.get(merchant_id, order_id)
        if order is None:
            return None
        if order.state is not OrderState.GROUPING and not (
                order.state is OrderState.CANCELLED and order.cancel_reason == reason):
            return order
        payment = await self.payments.get(merchant_id, order.payment_id)
        if payment is None:
            raise NotFound(f"order {order_id} has no payment")
        now = self._now()
        await self._send_back(payment, reason, now)
        read = [order]

        async def cancel() -> Order:
            current = read.pop() if read else await self.orders.get(merchant_id, order_id)
            if current is not None and current.state is OrderState.GROUPING and current.cancel_grouping(now, reason):
                await self.orders.save(current)
                log.info("order.cancelled", order_id=current.id, reason=reason)
            return current

        order = await retry.on_conflict(cancel, gave_up="the order kept changing while it was cancelled; retry",
                                        reason=ORDER_BUSY)
        await self._record(payment, ledger.payment_applied, now)
        await self._record(payment, ledger.payment_returned, now)
        await self._balance_returned(order, payment, now)
        return order

    async def _cancel_paid(self, order: Order, now: datetime) -> Order:
        read = [order]

        async def attempt() -> Order:
            current = read.pop() if read else await self.orders.get(order.merchant_id, order.id)
            if current is None:
                raise NotFound(f"order {order.id} not found")
            if current.cancel_unfulfillable(now):
                await self.orders.save(current)
                log.info("order.cancelled", order_id=current.id, reason=CANCEL_STOCK_UNAVAILABLE)
            return current

        return await retry.on_conflict(attempt, gave_up="the order kept changing while it was cancelled; retry",
                                       reason=ORDER_BUSY)

    async def _record_auto_refund(self, payment: Payment, now: datetime) -> None:
        for make_entry in (ledger.payment_unapplied, ledger.payment_auto_refunded):
            await self._record(payment, make_entry, now)

    async def _record(self, payment: Payment, make_entry: Callable[[str, str, int], ledger.Entry],
                      now: datetime) -> None:
        """Entries have deterministic ids: recording one again stores nothing."""
        if payment.amount > 0:  # nothing moved, nothing to record
            entry = make_entry(payment.order_id, payment.id, payment.amount)
            await self.entries.record(payment.merchant_id, entry, payment.currency, now)

    # ---- stored value ---------------------------------------------------------------

    async def _tender(self, order: Order, use_balance: bool) -> tuple[Order, int]:
        """The balance part of the payment about to start. With balance: the order records
        that it asks for a hold, the member service holds up to the payable, the order
        records what is held (each write conditional on the version read). Without: a hold
        the order asked for before is given back first, so an earlier payment started
        beside it can no longer pay the order."""
        sv = order.stored_value
        if not use_balance and sv.hold not in (Hold.ASKED, Hold.HELD):
            return order, 0
        if self.balances is None or self.tenders is None:
            raise FailedPrecondition("paying with balance is not available", reason=NOT_PAYABLE)
        if not use_balance:
            order.stored_value = sv.without_balance(order.payable)
            await self.tenders.save_tender(order)
            await self.release_quietly(order)
            return order, 0
        asking = sv.asking()
        if asking != sv:
            order.stored_value = asking
            await self.tenders.save_tender(order)
        held = await self.balances.hold(order.member_id, order.id, order.payable)
        holding = order.stored_value.held(held, order.payable)
        if holding != order.stored_value:
            order.stored_value = holding
            await self.tenders.save_tender(order)
        return order, held

    async def _balance_paid(self, order: Order, payment: Payment, now: datetime) -> None:
        """The order took a payment with a balance part: the ledger has the balance's money
        and the member service spends the hold. The spending is also driven by order.paid
        (entrypoint.stored_value_events), so a failure here is only logged."""
        if payment.balance <= 0:
            if order.stored_value.owes_release(paid=True, cancelled=False):
                await self.release_quietly(order)
            return
        await self.entries.record(payment.merchant_id, ledger.balance_applied(order.id, payment.id, payment.balance),
                                  payment.currency, now)
        if self.balances is not None:
            try:
                await self.balances.capture(order.member_id, order.id)
            except Exception:  # noqa: BLE001 - the order.paid consumer spends it
                log.warning("balance.capture_deferred", order_id=order.id, exc_info=True)

    async def _balance_returned(self, order: Order, payment: Payment, now: datetime) -> None:
        """A paid order cancelled because its units were gone gives its balance part back
        too, keyed by a refund id that follows from the payment (so a redelivery returns it
        once)."""
        if payment.balance <= 0 or self.balances is None:
            return
        refund_id = f"rfd_{payment.id.removeprefix('pay_')}"
        await self.balances.refund_to_balance(order.member_id, order.id, refund_id, payment.balance)
        await self.entries.record(payment.merchant_id, ledger.balance_refunded(order.id, refund_id, payment.balance),
                                  payment.currency, now)

    async def release_quietly(self, order: Order) -> None:
        if self.balances is None:
            return
        try:
            await self.balances.release(order.member_id, order.id)
        except Exception:  # noqa: BLE001 - the order's own events release it
            log.warning("balance.release_deferred", order_id=order.id, exc_info=True)

    async def complete_sandbox(self, payment_id: str) -> tuple[Notification, Payment]:
        """The member approves in the sandbox wallet; the provider's signed SUCCESS
        notification goes through the same handler as the real callback."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(payment_id, "pay"), "payment_id", "must be a pay_ id")
        v.raise_if_any()
        payment = await self.payments.of_member(ctx.merchant_id, member_id, payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        n = Notification(payment_id=payment_id, provider_txn_id=self.provider.new_txn_id(),
                         amount=payment.amount, currency=payment.currency, result=RESULT_SUCCESS,
                         timestamp=int(self._now().timestamp()))
        n = replace(n, signature=self.provider.sign(n))
        payment, _ = await self.handle_callback(n, read=payment)
        return n, payment
