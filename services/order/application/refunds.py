"""After-sales refunds: members request, staff approve, reject or create them, and
execution returns the money.

Execution is a sequence of idempotent steps, so a crash anywhere is finished later by
`resume_stalled`: claim the refund (REQUESTED → APPROVED), let the order take it (one
write on the order's version: lines, refunded total, the refund recorded as applied and
order.refunded in the outbox; the remaining units and amounts are checked against that
same version, so refunds together never exceed what was paid), the provider refund, the
ledger entry, the stock return for units never shipped, and REFUNDED.

The provider refund carries the refund id as its key (WeChat's out_refund_no) and is made
only behind a state check: the caller whose compare-and-set takes the APPROVED refund
(`provider_call_ms`) calls the provider; any other caller asks the provider by the same id.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

from siyu_kit import context, delays, logging as slog, retry
from siyu_kit.aggregate import Move, StaleVersion
from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.money import MAX_AMOUNT, amount_ok
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.application.ports import (Balances, LedgerRepository, OrderRepository, PaymentProvider,
                                              PaymentRepository, ProviderRefunds, RefundRepository, SettingsRepository,
                                              StockReturns)
from services.order.domain import ledger, refunds as rules
from services.order.domain.cart import MAX_QUANTITY
from services.order.domain.idempotency import fingerprint, require_same_request
from services.order.domain.payments import Payment, PaymentMethod, RefundReceipt
from services.order.domain.orders import NOT_REFUNDABLE, AppliedRefund, Order, OrderState
from services.order.domain.payments import QUERY_AFTER
from services.order.domain.refunds import LineBalance, LineRequest, ProviderStatus, Refund, RefundState
from services.order.domain.tender import RefundSplit

NOT_A_RECHARGE_ORDER = "NOT_A_RECHARGE_ORDER"
RECHARGE_REFUND_AMOUNT_MISMATCH = "RECHARGE_REFUND_AMOUNT_MISMATCH"

log = slog.get("siyu.order.refunds")

MAX_KEY = 64
MAX_REASON = 200
MAX_NOTE = 500
DEFAULT_PAGE = 20
MAX_PAGE = 100
ATTEMPTS = 5
# An APPROVED refund untouched this long was interrupted; the job finishes it.
STALL_MS = 30_000


@dataclass(frozen=True)
class RefundInput:
    order_id: str
    idempotency_key: str
    lines: list[LineRequest]
    reason: str = ""
    # Staff only (OWNER or FINANCE): a completed order after its after-sales window.
    after_window: bool = False


def _validate(cmd: RefundInput) -> None:
    v = Violations()
    v.check(is_id(cmd.order_id, "ord"), "order_id", "must be an ord_ id")
    v.check(1 <= len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
    v.check(len(cmd.reason) <= MAX_REASON, "reason", f"at most {MAX_REASON} characters")
    if v.check(1 <= len(cmd.lines) <= rules.MAX_LINES, "lines", f"1..{rules.MAX_LINES} lines"):
        for i, line in enumerate(cmd.lines):
            v.check(is_id(line.line_id, "oln"), f"lines[{i}].line_id", "must be an oln_ id")
            v.check(1 <= line.quantity <= MAX_QUANTITY, f"lines[{i}].quantity", f"1..{MAX_QUANTITY}")
            v.check(line.amount is None or amount_ok(line.amount, 1), f"lines[{i}].amount",
                    f"unset, or 1..{MAX_AMOUNT}")
    v.raise_if_any()


def refund_fingerprint(cmd: RefundInput) -> str:
    """The fingerprint of a refund request: every field but its key."""
    # after_window is left out when unset, so refunds opened before it existed replay alike.
    return fingerprint({k: v for k, v in asdict(cmd).items()
                        if k != "idempotency_key" and not (k == "after_window" and not v)})


def _replayed(existing: Refund | None, cmd: RefundInput) -> Refund | None:
    """The refund a key opened, when the replay asks for the same; refused otherwise."""
    if existing is not None:
        require_same_request(existing.request_hash, refund_fingerprint(cmd), "refund")
    return existing


def balances(order: Order) -> list[LineBalance]:
    return [LineBalance(line_id=l.line_id, sku_id=l.sku_id, quantity=l.quantity, paid_amount=l.paid_amount,
                        refunded_quantity=l.refunded_quantity, refunded_amount=l.refunded_amount)
            for l in order.lines]


@dataclass
class RefundUseCases:
    orders: OrderRepository
    refunds: RefundRepository
    payments: PaymentRepository
    entries: LedgerRepository
    settings: SettingsRepository
    provider: PaymentProvider
    stock: StockReturns
    clock: Callable[[], datetime] = utcnow
    # The providers of payment methods other than the sandbox, by method: they refund
    # keyed by the refund id, so a retried execution never refunds twice.
    refunders: dict[PaymentMethod, ProviderRefunds] = field(default_factory=dict)
    # A refund the provider answered PROCESSING is asked about this long after.
    provider_query_after: timedelta = QUERY_AFTER
    # The member service's balance: the balance part of a refund goes back there.
    balances: Balances | None = None

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    # ---- member ---------------------------------------------------------------------

    async def request(self, cmd: RefundInput) -> Refund:
        ctx = context.current()
        member_id = ctx.require_member()
        # A member never refunds after the window, whatever the request carries.
        cmd = replace(cmd, after_window=False)
        _validate(cmd)
        order = await self.orders.of_member(ctx.merchant_id, member_id, cmd.order_id)
        if order is None:
            raise NotFound(f"order {cmd.order_id} not found")
        existing = await self.refunds.by_key(ctx.merchant_id, cmd.order_id, rules.BY_MEMBER, cmd.idempotency_key)
        if existing:
            return _replayed(existing, cmd)
        refund = await self._new(order, rules.BY_MEMBER, cmd)
        if await self.refunds.add(refund):
            return refund
        return _replayed(await self.refunds.by_key(ctx.merchant_id, cmd.order_id, rules.BY_MEMBER,
                                                   cmd.idempotency_key), cmd)

    async def list_of_order(self, order_id: str) -> list[Refund]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
        v.raise_if_any()
        if await self.orders.of_member(ctx.merchant_id, member_id, order_id) is None:
            raise NotFound(f"order {order_id} not found")
        return await self.refunds.of_order(ctx.merchant_id, order_id)

    # ---- staff ----------------------------------------------------------------------

    async def create(self, cmd: RefundInput) -> Refund:
        """A refund the merchant starts is executed at once."""
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        if cmd.after_window and not rules.AFTER_WINDOW_ROLES & set(ctx.roles):
            raise PermissionDenied("only OWNER or FINANCE may refund after the after-sales window",
                                   reason=rules.AFTER_WINDOW_NOT_ALLOWED)
        _validate(cmd)
        order = await self.orders.get(ctx.merchant_id, cmd.order_id)
        if order is None:
            raise NotFound(f"order {cmd.order_id} not found")
        existing = await self.refunds.by_key(ctx.merchant_id, cmd.order_id, rules.BY_STAFF, cmd.idempotency_key)
        if existing is None:
            refund = await self._new(order, rules.BY_STAFF, cmd)
            if await self.refunds.add(refund):
                return await self._execute(refund)
            existing = await self.refunds.by_key(ctx.merchant_id, cmd.order_id, rules.BY_STAFF,
                                                 cmd.idempotency_key)
        _replayed(existing, cmd)
        # A replay: the first result, finished if its execution was cut short.
        return await self._execute(existing) if existing.state is RefundState.APPROVED else existing

    async def approve(self, refund_id: str) -> Refund:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        _require_refund_id(refund_id)

        async def attempt() -> tuple[Refund, bool]:
            refund = await self._staff_refund(ctx.merchant_id, refund_id)
            move = refund.approve(self._now())
            if move is Move.APPLY:
                await self.refunds.save(refund)
            # Approved now, or earlier and perhaps cut short: each step is idempotent.
            return refund, refund.state is RefundState.APPROVED

        refund, to_execute = await retry.on_conflict(attempt, gave_up="the refund changed while approving; try again",
                                                      attempts=ATTEMPTS)
        return await self._execute(refund) if to_execute else refund

    async def reject(self, refund_id: str, note: str) -> Refund:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        v.check(is_id(refund_id, "rfd"), "refund_id", "must be a rfd_ id")
        v.check(len(note) <= MAX_NOTE, "note", f"at most {MAX_NOTE} characters")
        v.raise_if_any()

        async def attempt() -> Refund:
            refund = await self._staff_refund(ctx.merchant_id, refund_id)
            if refund.reject(note) is Move.APPLY:
                await self.refunds.save(refund)
            return refund

        return await retry.on_conflict(attempt, gave_up="the refund changed while rejecting; try again",
                                       attempts=ATTEMPTS)

    async def list_for_staff(self, order_id: str, state: str, page_size: int,
                             page_token: str, provider_status: str = "") -> tuple[list[Refund], str]:
        """Newest first, by order, state and what the provider says of the money
        (e.g. ABNORMAL: the refunds staff must see to)."""
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        v.check(not order_id or is_id(order_id, "ord"), "order_id", "unset, or an ord_ id")
        v.check(not state or state in RefundState.__members__, "state", "not a refund state")
        v.check(not provider_status or provider_status in ProviderStatus.__members__, "provider_status",
                "not a provider refund status")
        v.check(0 <= page_size <= MAX_PAGE, "page_size", f"1..{MAX_PAGE}")
        v.check(not page_token or is_id(page_token, "rfd"), "page_token", "not a token from this list")
        v.raise_if_any()
        size = page_size or DEFAULT_PAGE
        found = await self.refunds.page(ctx.merchant_id, order_id, state, page_token, size + 1,
                                        provider_status=provider_status)
        more = len(found) > size
        found = found[:size]
        return found, (found[-1].id if more else "")

    # ---- the member service: refunding a recharge ------------------------------------

    async def refund_recharge(self, order_id: str, recharge_id: str, amount: int, reason: str) -> Refund:
        """The member service debited an unspent recharge from the balance: its order's
        provider payment goes back in full, executed at once. Idempotent by recharge id."""
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
        v.check(is_id(recharge_id, "rch"), "recharge_id", "must be a rch_ id")
        v.check(amount_ok(amount, 1), "amount", f"1..{MAX_AMOUNT}")
        v.check(len(reason) <= MAX_REASON, "reason", f"at most {MAX_REASON} characters")
        v.raise_if_any()
        order = await self.orders.get(merchant_id, order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        if not order.stored_value.is_recharge:
            raise FailedPrecondition(f"order {order_id} is not a recharge order", reason=NOT_A_RECHARGE_ORDER)
        if amount != order.payable:
            v.add("amount", f"must be the recharge order's paid amount, {order.payable}")
            raise InvalidArgument("the amount is not what the recharge order was paid",
                                  reason=RECHARGE_REFUND_AMOUNT_MISMATCH, violations=v.items)
        why = reason or "recharge refunded"
        cmd = RefundInput(order_id=order_id, idempotency_key=recharge_id,
                          lines=[LineRequest(line_id=line.line_id, quantity=line.quantity) for line in order.lines],
                          reason=why)
        existing = await self.refunds.by_key(merchant_id, order_id, rules.BY_STAFF, recharge_id)
        if existing is None:
            refund = await self._new(order, rules.BY_STAFF, cmd, recharge=True)
            if await self.refunds.add(refund):
                return await self._execute(refund)
            existing = await self.refunds.by_key(merchant_id, order_id, rules.BY_STAFF, recharge_id)
        _replayed(existing, cmd)
        return await self._execute(existing) if existing.state is RefundState.APPROVED else existing

    # ---- the job --------------------------------------------------------------------

    async def resume_stalled(self, limit: int = 50) -> int:
        """Finishes refunds whose execution was cut short (provider refund, ledger,
        restock, state): every step is idempotent."""
        stalled = await self.refunds.stalled(epoch_ms(self._now()) - STALL_MS, limit)
        finished = 0
        for refund in stalled:
            token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=refund.merchant_id))
            try:
                done = await self._execute(refund)
                finished += done.state is RefundState.REFUNDED
            except Exception:  # noqa: BLE001 - one refund failing must not stop the others
                log.warning("refund.resume_failed", refund_id=refund.id, exc_info=True)
            finally:
                context.reset(token)
        if finished:
            log.info("refund.resumed", count=finished)
        return finished

    # ---- creating and executing -----------------------------------------------------

    async def _new(self, order: Order, requested_by: str, cmd: RefundInput, recharge: bool = False) -> Refund:
        now = self._now()
        if order.stored_value.is_recharge and not recharge:
            raise FailedPrecondition("a recharge order is refunded through the member's balance (RefundRecharge)",
                                     reason=NOT_A_RECHARGE_ORDER)
        settings = await self.settings.of_merchant(order.merchant_id)
        if not rules.may_refund(order.state, order.completed_at, settings.after_sales_days, now,
                                after_window=cmd.after_window):
            closed = order.state is OrderState.COMPLETED
            raise FailedPrecondition(
                "the after-sales window of this order has closed" if closed
                else f"a {order.state.value} order cannot be refunded",
                reason="AFTER_SALES_CLOSED" if closed else NOT_REFUNDABLE)
        plan = rules.plan(balances(order), cmd.lines)
        if plan.problems:
            v = Violations()
            for field, description in plan.problems:
                v.add(field, description)
            v.raise_if_any("the refund does not fit the order")
        return Refund.open(new_id("rfd"), merchant_id=order.merchant_id, order_id=order.id,
                           member_id=order.member_id, requested_by=requested_by,
                           idempotency_key=cmd.idempotency_key, planned=plan,
                           explicit=frozenset(r.line_id for r in cmd.lines if r.amount is not None),
                           currency=order.currency, reason=cmd.reason, now=now,
                           request_hash=refund_fingerprint(cmd))

    async def _execute(self, refund: Refund) -> Refund:
        merchant_id = refund.merchant_id
        order, applied = await self._apply(refund)
        payment = await self.payments.get(merchant_id, order.payment_id)
        now = self._now()
        provider_refund_id, provider_status = "", ""
        split = order.stored_value.splits.get(refund.id) or RefundSplit(balance=0, provider=applied.amount)
        if split.balance > 0:
            # Before the provider part: a failure leaves the refund APPROVED, and the job
            # runs every step again (each is idempotent by the refund id).
            if self.balances is None:
                raise FailedPrecondition("the balance part of this refund cannot be returned here",
                                         reason="BALANCE_UNAVAILABLE")
            await self.balances.refund_to_balance(order.member_id, order.id, refund.id, split.balance)
            await self.entries.record(merchant_id, ledger.balance_refunded(order.id, refund.id, split.balance),
                                      order.currency, now)
        if split.provider > 0:
            refund, receipt = await self._provider_refund(refund, payment, split.provider)
            if receipt is None:
                # Another caller is at the provider with this refund right now (or finished
                # it): it takes the refund on; this one answers the refund as it stands.
                return refund
            provider_refund_id, provider_status = receipt.provider_refund_id, receipt.status
            entry = ledger.order_refunded(order.id, payment.id, refund.id, split.provider)
            await self.entries.record(merchant_id, entry, order.currency, now)
        if applied.restock and not order.stored_value.is_recharge:
            await self.stock.return_stock(refund.id, order.id, [(l.sku_id, l.quantity) for l in applied.lines])
        if refund.state is RefundState.APPROVED:
            refund.finish(applied, provider_refund_id, now, provider_status, self.provider_query_after)
            if provider_status == ProviderStatus.ABNORMAL:
                log.error("refund.provider_abnormal", refund_id=refund.id, merchant_id=merchant_id,
                          provider_refund_id=provider_refund_id, amount=applied.amount)
            try:
                await self.refunds.save(refund)
                log.info("refund.refunded", refund_id=refund.id, amount=applied.amount)
                return refund
            except StaleVersion:
                pass  # another run finished it
        return await self._staff_refund(merchant_id, refund.id)

    async def _provider_refund(self, refund: Refund, payment: Payment,
                               amount: int) -> tuple[Refund, RefundReceipt | None]:
        """The provider part, behind a state check and keyed by the refund id: the caller
        whose compare-and-set takes the APPROVED refund calls the provider; a caller that
        finds it taken (a retry, the job, another replica) asks the provider by the same
        id instead, and refunds only once the taker's lease has run out and the provider
        never saw the refund (the provider keys it anyway: never a second refund).
        Returns the refund as read last and the provider's receipt; None when another
        caller is on it (or the refund is no longer APPROVED)."""
        refunder = self.refunders.get(payment.method) or self.provider
        for _ in range(ATTEMPTS):
            if refund.state is not RefundState.APPROVED:
                return refund, None
            now = self._now()
            if refund.provider_call_ms:
                found = await refunder.find(payment, refund.id)
                if found is not None:
                    return refund, found
                if refund.provider_call_fresh(now):
                    return refund, None
            refund.call_provider(now)
            try:
                await self.refunds.save(refund)
            except StaleVersion:
                refund = await self._staff_refund(refund.merchant_id, refund.id)
                continue
            await delays.pause("order.refund.provider_call")
            return refund, await refunder.refund(payment, refund.id, amount)
        raise Conflict("the refund kept changing while it was sent to the provider; try again")

    async def _apply(self, refund: Refund) -> tuple[Order, AppliedRefund]:
        """The order takes the refund, once, on the version its remaining units and
        amounts were read at. Returns the order and the refund as applied."""

        async def attempt() -> tuple[Order, AppliedRefund]:
            order = await self.orders.get(refund.merchant_id, refund.order_id)
            if order is None:
                raise NotFound(f"order {refund.order_id} not found")
            taken = order.applied_refund(refund.id)
            if taken is not None:
                return order, taken
            before = balances(order)
            applied, problems = rules.take(before, refund.requests(), never_shipped=order.state is OrderState.PAID,
                                           shipping_fee=order.shipping_fee,
                                           shipping_fee_refunded=order.shipping_fee_refunded)
            if applied is None:
                await self._no_longer_fits(refund, problems)
            # The balance and provider parts of the refund, in the tender's proportion.
            order.stored_value, _ = order.stored_value.refund(refund.id, applied.amount, order.payable)
            shown = replace(refund, changed=set())
            shown.show(applied)
            order.apply_refund(refund.id, applied, rules.after(before, applied.lines), self._now(), refund=shown)
            # Another write (often another refund) may have come first: plan again then.
            await self.orders.save(order)
            return order, applied

        return await retry.on_conflict(attempt, gave_up="the order changed while refunding; try again",
                                       attempts=ATTEMPTS)

    async def _no_longer_fits(self, refund: Refund, problems) -> None:
        """Another refund took what this one asked for: it is rejected, changing nothing."""
        refund.no_longer_fits()
        try:
            await self.refunds.save(refund)
        except StaleVersion:
            pass  # another run rejected it first
        raise rules.no_longer_fits(problems)

    async def _staff_refund(self, merchant_id: str, refund_id: str) -> Refund:
        refund = await self.refunds.get(merchant_id, refund_id)
        if refund is None:
            raise NotFound(f"refund {refund_id} not found")
        return refund


def _require_refund_id(refund_id: str) -> None:
    v = Violations()
    v.check(is_id(refund_id, "rfd"), "refund_id", "must be a rfd_ id")
    v.raise_if_any()
