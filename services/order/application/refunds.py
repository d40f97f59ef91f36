"""After-sales refunds: members request, staff approve, reject or create them, and
execution returns the money.

Execution is a sequence of idempotent steps, so a crash anywhere is finished later by
`resume_stalled`: claim the refund (REQUESTED → APPROVED), let the order take it (one
write on the order's version: lines, refunded total, the refund recorded as applied and
order.refunded in the outbox; the remaining units and amounts are checked against that
same version, so refunds together never exceed what was paid), the provider refund, the
ledger entry, the stock return for units never shipped, and REFUNDED.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol

from siyu.order.v1 import events_pb2

from siyu_kit import context, logging as slog
from siyu_kit.db import run_sync
from siyu_kit.errors import Conflict, FailedPrecondition, FieldViolation, NotFound, Violations
from siyu_kit.events.outbox import make_event
from siyu_kit.events.streams import subject_of
from siyu_kit.ids import is_id, new_id
from siyu_kit.money import MAX_AMOUNT, amount_ok
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.adapters import messages
from services.order.adapters.ledger import Ledger
from services.order.adapters.refunds import Refunds
from services.order.adapters.repositories import Orders, Payments, Settings
from services.order.domain import ledger, refunds as rules
from services.order.domain.cart import MAX_QUANTITY
from services.order.domain.orders import OrderState
from services.order.domain.payments import PaymentProvider
from services.order.domain.refunds import LineBalance, LineRequest, RefundMove, RefundState

log = slog.get("siyu.order.refunds")

MAX_KEY = 64
MAX_REASON = 200
MAX_NOTE = 500
DEFAULT_PAGE = 20
MAX_PAGE = 100
ATTEMPTS = 5
# An APPROVED refund untouched this long was interrupted; the job finishes it.
STALL_MS = 30_000
NO_LONGER_FITS = "the order no longer has these units or this amount to refund"

REFUNDED = subject_of("order", "order", "refunded")


class StockReturns(Protocol):
    async def return_stock(self, return_id: str, order_id: str, lines: list[tuple[str, int]]) -> None: ...


@dataclass(frozen=True)
class RefundInput:
    order_id: str
    idempotency_key: str
    lines: list[LineRequest]
    reason: str = ""


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


def balances(order: dict) -> list[LineBalance]:
    return [LineBalance(line_id=l["line_id"], sku_id=l["sku_id"], quantity=l["quantity"],
                        paid_amount=l["paid_amount"], refunded_quantity=l.get("refunded_quantity", 0),
                        refunded_amount=l.get("refunded_amount", 0)) for l in order["lines"]]


def _requests(refund: dict) -> list[LineRequest]:
    """What the refund asked for; a default amount is worked out again when the order
    takes the refund, against what is left then."""
    return [LineRequest(l["line_id"], l["quantity"], l["amount"] if l.get("explicit") else None)
            for l in refund["lines"]]


@dataclass
class RefundUseCases:
    orders: Orders
    refunds: Refunds
    payments: Payments
    entries: Ledger
    settings: Settings
    provider: PaymentProvider
    stock: StockReturns
    committed: Callable[[], None]
    clock: Callable[[], datetime] = utcnow

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    # ---- member ---------------------------------------------------------------------

    async def request(self, cmd: RefundInput) -> dict:
        ctx = context.current()
        member_id = ctx.require_member()
        _validate(cmd)
        order = await run_sync(self.orders.of_member, ctx.merchant_id, member_id, cmd.order_id)
        if order is None:
            raise NotFound(f"order {cmd.order_id} not found")
        existing = await run_sync(self.refunds.by_key, ctx.merchant_id, cmd.order_id, rules.BY_MEMBER,
                                  cmd.idempotency_key)
        if existing:
            return existing
        doc = await self._new(order, rules.BY_MEMBER, cmd, RefundState.REQUESTED)
        if await run_sync(self.refunds.insert, doc):
            return doc
        return await run_sync(self.refunds.by_key, ctx.merchant_id, cmd.order_id, rules.BY_MEMBER,
                              cmd.idempotency_key)

    async def list_of_order(self, order_id: str) -> list[dict]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
        v.raise_if_any()
        if await run_sync(self.orders.of_member, ctx.merchant_id, member_id, order_id) is None:
            raise NotFound(f"order {order_id} not found")
        return await run_sync(self.refunds.of_order, ctx.merchant_id, order_id)

    # ---- staff ----------------------------------------------------------------------

    async def create(self, cmd: RefundInput) -> dict:
        """A refund the merchant starts is executed at once."""
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        _validate(cmd)
        order = await run_sync(self.orders.get, ctx.merchant_id, cmd.order_id)
        if order is None:
            raise NotFound(f"order {cmd.order_id} not found")
        existing = await run_sync(self.refunds.by_key, ctx.merchant_id, cmd.order_id, rules.BY_STAFF,
                                  cmd.idempotency_key)
        if existing is None:
            doc = await self._new(order, rules.BY_STAFF, cmd, RefundState.APPROVED)
            if await run_sync(self.refunds.insert, doc):
                return await self._execute(doc)
            existing = await run_sync(self.refunds.by_key, ctx.merchant_id, cmd.order_id, rules.BY_STAFF,
                                      cmd.idempotency_key)
        # A replay: the first result, finished if its execution was cut short.
        return await self._execute(existing) if existing["state"] == RefundState.APPROVED.value else existing

    async def approve(self, refund_id: str) -> dict:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        _require_refund_id(refund_id)
        for _ in range(ATTEMPTS):
            refund = await self._staff_refund(ctx.merchant_id, refund_id)
            move = rules.approve(RefundState(refund["state"]))
            if move is RefundMove.REFUSE:
                raise FailedPrecondition(f"a {refund['state']} refund cannot be approved",
                                         reason="REFUND_NOT_APPROVABLE")
            if refund["state"] == RefundState.REFUNDED.value:
                return refund
            if move is RefundMove.REPEAT:  # APPROVED: finish it, each step is idempotent
                return await self._execute(refund)
            approved_ms = epoch_ms(self._now())
            if await run_sync(self.refunds.transition, ctx.merchant_id, refund_id,
                              from_state=RefundState.REQUESTED.value, version=refund["version"],
                              fields={"state": RefundState.APPROVED.value, "approved_ms": approved_ms}):
                return await self._execute({**refund, "state": RefundState.APPROVED.value,
                                            "approved_ms": approved_ms, "version": refund["version"] + 1})
        raise Conflict("the refund changed while approving; try again")

    async def reject(self, refund_id: str, note: str) -> dict:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        v.check(is_id(refund_id, "rfd"), "refund_id", "must be a rfd_ id")
        v.check(len(note) <= MAX_NOTE, "note", f"at most {MAX_NOTE} characters")
        v.raise_if_any()
        for _ in range(ATTEMPTS):
            refund = await self._staff_refund(ctx.merchant_id, refund_id)
            move = rules.reject(RefundState(refund["state"]))
            if move is RefundMove.REPEAT:
                return refund
            if move is RefundMove.REFUSE:
                raise FailedPrecondition(f"a {refund['state']} refund cannot be rejected",
                                         reason="REFUND_NOT_REJECTABLE")
            fields = {"state": RefundState.REJECTED.value, "note": note}
            if await run_sync(self.refunds.transition, ctx.merchant_id, refund_id,
                              from_state=RefundState.REQUESTED.value, version=refund["version"], fields=fields):
                return {**refund, **fields, "version": refund["version"] + 1}
        raise Conflict("the refund changed while rejecting; try again")

    async def list_for_staff(self, order_id: str, state: str, page_size: int, page_token: str) -> tuple[list[dict], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        v.check(not order_id or is_id(order_id, "ord"), "order_id", "unset, or an ord_ id")
        v.check(not state or state in RefundState.__members__, "state", "not a refund state")
        v.check(0 <= page_size <= MAX_PAGE, "page_size", f"1..{MAX_PAGE}")
        v.check(not page_token or is_id(page_token, "rfd"), "page_token", "not a token from this list")
        v.raise_if_any()
        size = page_size or DEFAULT_PAGE
        docs = await run_sync(self.refunds.page, ctx.merchant_id, order_id, state, page_token, size + 1)
        more = len(docs) > size
        docs = docs[:size]
        return docs, (docs[-1]["_id"] if more else "")

    # ---- the job --------------------------------------------------------------------

    async def resume_stalled(self, limit: int = 50) -> int:
        """Finishes refunds whose execution was cut short (provider refund, ledger,
        restock, state): every step is idempotent."""
        stalled = await run_sync(self.refunds.stalled, epoch_ms(self._now()) - STALL_MS, limit)
        finished = 0
        for refund in stalled:
            token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=refund["merchant_id"]))
            try:
                done = await self._execute(refund)
                finished += done["state"] == RefundState.REFUNDED.value
            except Exception:  # noqa: BLE001 - one refund failing must not stop the others
                log.warning("refund.resume_failed", refund_id=refund["_id"], exc_info=True)
            finally:
                context.reset(token)
        if finished:
            log.info("refund.resumed", count=finished)
        return finished

    # ---- creating and executing -----------------------------------------------------

    async def _new(self, order: dict, requested_by: str, cmd: RefundInput, state: RefundState) -> dict:
        now = self._now()
        settings = await run_sync(self.settings.of_merchant, order["merchant_id"])
        if not rules.may_refund(OrderState(order["state"]), order.get("completed_at"), settings.after_sales_days,
                                now):
            closed = order["state"] == OrderState.COMPLETED.value
            raise FailedPrecondition(
                "the after-sales window of this order has closed" if closed
                else f"a {order['state']} order cannot be refunded",
                reason="AFTER_SALES_CLOSED" if closed else "ORDER_NOT_REFUNDABLE")
        plan = rules.plan(balances(order), cmd.lines)
        if plan.problems:
            v = Violations()
            for field, description in plan.problems:
                v.add(field, description)
            v.raise_if_any("the refund does not fit the order")
        explicit = {r.line_id for r in cmd.lines if r.amount is not None}
        doc = {
            "_id": new_id("rfd"), "merchant_id": order["merchant_id"], "order_id": order["_id"],
            "member_id": order["member_id"], "requested_by": requested_by, "idempotency_key": cmd.idempotency_key,
            "state": state.value,
            "lines": [{"line_id": l.line_id, "sku_id": l.sku_id, "quantity": l.quantity, "amount": l.amount,
                       "explicit": int(l.line_id in explicit), "restocked": 0} for l in plan.lines],
            "amount": plan.amount, "shipping_fee_refund": 0, "currency": order["currency"], "reason": cmd.reason,
            "created_at": now, "version": 1,
        }
        if state is RefundState.APPROVED:
            doc["approved_ms"] = epoch_ms(now)
        return doc

    async def _execute(self, refund: dict) -> dict:
        merchant_id, refund_id = refund["merchant_id"], refund["_id"]
        order, record = await self._apply(refund)
        payment = await run_sync(self.payments.get, merchant_id, order["payment_id"])
        now = self._now()
        provider_refund_id = ""
        if record["amount"] > 0:
            receipt = self.provider.refund(payment["_id"], payment.get("provider_txn_id") or "", record["amount"],
                                           payment["currency"])
            provider_refund_id = receipt.provider_refund_id
            entry = ledger.order_refunded(order["_id"], payment["_id"], refund_id, record["amount"])
            await run_sync(self.entries.record, merchant_id, entry, order["currency"], now)
        if record["restock"]:
            await self.stock.return_stock(refund_id, order["_id"],
                                          [(l["sku_id"], l["quantity"]) for l in record["lines"]])
        fields = {"state": RefundState.REFUNDED.value, "refunded_at": now, "amount": record["amount"],
                  "shipping_fee_refund": record["shipping_fee_refund"], "lines": _final_lines(refund, record),
                  "provider_refund_id": provider_refund_id}
        if await run_sync(self.refunds.transition, merchant_id, refund_id, from_state=RefundState.APPROVED.value,
                          fields=fields):
            log.info("refund.refunded", refund_id=refund_id, amount=record["amount"])
        return await run_sync(self.refunds.get, merchant_id, refund_id)

    async def _apply(self, refund: dict) -> tuple[dict, dict]:
        """The order takes the refund, once. Returns the order and the refund as applied."""
        merchant_id, refund_id = refund["merchant_id"], refund["_id"]
        for _ in range(ATTEMPTS):
            order = await run_sync(self.orders.get, merchant_id, refund["order_id"])
            record = (order.get("applied_refunds") or {}).get(refund_id)
            if record is not None:
                return order, record
            before = balances(order)
            plan = rules.plan(before, _requests(refund))
            if plan.problems:
                await self._no_longer_fits(refund, plan.problems)
            never_shipped = order["state"] == OrderState.PAID.value
            shipping_back = rules.shipping_fee_refund(
                never_shipped, rules.after(before, plan.lines), order.get("shipping_fee", 0),
                sum(r.get("shipping_fee_refund", 0) for r in (order.get("applied_refunds") or {}).values()))
            record = {"amount": plan.amount + shipping_back, "shipping_fee_refund": shipping_back,
                      "restock": int(never_shipped),
                      "lines": [{"line_id": l.line_id, "sku_id": l.sku_id, "quantity": l.quantity, "amount": l.amount}
                                for l in plan.lines]}
            lines = [{**stored, "refunded_quantity": line.refunded_quantity, "refunded_amount": line.refunded_amount}
                     for stored, line in zip(order["lines"], rules.after(before, plan.lines))]
            after = {**order, "lines": lines, "refunded_amount": order.get("refunded_amount", 0) + record["amount"],
                     "version": order["version"] + 1}
            shown = {**refund, "amount": record["amount"], "shipping_fee_refund": shipping_back,
                     "lines": _final_lines(refund, record)}
            now = self._now()
            event = make_event(REFUNDED, merchant_id=merchant_id, aggregate_id=order["_id"],
                               aggregate_version=after["version"], occurred_at=now,
                               channel=(order.get("attribution") or {}).get("channel", ""),
                               payload=events_pb2.OrderRefunded(order=messages.order(after),
                                                                refund=messages.refund(shown)))
            if await run_sync(self.orders.apply_refund, merchant_id, order["_id"], version=order["version"],
                              lines=lines, refund_id=refund_id, record=record, amount=record["amount"], event=event):
                self.committed()
                return after, record
            # Another write (often another refund) came first: plan again on the new version.
        raise Conflict("the order changed while refunding; try again")

    async def _no_longer_fits(self, refund: dict, problems) -> None:
        """Another refund took what this one asked for: it is rejected, changing nothing."""
        await run_sync(self.refunds.transition, refund["merchant_id"], refund["_id"],
                       from_state=RefundState.APPROVED.value, fields={"state": RefundState.REJECTED.value,
                                                                      "note": NO_LONGER_FITS})
        raise FailedPrecondition(NO_LONGER_FITS, reason="REFUND_EXCEEDS_REMAINING", violations=[FieldViolation(f, d) for f, d in problems])

    async def _staff_refund(self, merchant_id: str, refund_id: str) -> dict:
        refund = await run_sync(self.refunds.get, merchant_id, refund_id)
        if refund is None:
            raise NotFound(f"refund {refund_id} not found")
        return refund


def _final_lines(refund: dict, record: dict) -> list[dict]:
    explicit = {l["line_id"]: l.get("explicit", 0) for l in refund["lines"]}
    return [{**l, "explicit": explicit.get(l["line_id"], 0), "restocked": record["restock"]} for l in record["lines"]]


def _require_refund_id(refund_id: str) -> None:
    v = Violations()
    v.check(is_id(refund_id, "rfd"), "refund_id", "must be a rfd_ id")
    v.raise_if_any()
