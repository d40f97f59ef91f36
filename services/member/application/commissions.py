"""Commission records and balances from the order service's events, and the reads of
distributors and of finance.

Each order event carries the whole order with its commissions: `on_order` moves every
record forward to what the event says (never back: see domain/commissions.py) and then
squares the beneficiary's balance with the record: the credit at settlement, the
clawback of a later void. Both steps are idempotent, so a redelivered event finishes what
a crash interrupted and changes nothing else. A movement that loses its guard to another
movement of the same balance (a withdrawal, another record) is decided again.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Callable

from services.member.application.commission_ports import (BalanceTotals, CommissionStore, Liability, StateTotals,
                                                          StoredValueTotals)
from services.member.domain.commissions import (STATES, CommissionBook, CommissionRecord, CommissionEntry,
                                                OrderCommissions, entry_for, merged, record_id,
                                                record_movement)
from siyu_kit import context, paging
from siyu_kit.errors import Conflict, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, utcnow

ATTEMPTS = 8
RECORD_POSITION = re.compile(r"^[a-z]{3}_[0-9A-HJKMNP-TV-Z]{26}:[A-Za-z0-9_-]{1,64}:[A-Z_0-9]{1,16}$")
PAYEE_POSITION = re.compile(r"^(mem|stf)_[0-9A-HJKMNP-TV-Z]{26}$")


class CommissionLedger:
    def __init__(self, store: CommissionStore, stored_value: StoredValueTotals | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.stored_value = stored_value
        self.clock = clock

    # ---- from order events ----------------------------------------------------------------
    async def on_order(self, event: OrderCommissions) -> None:
        current = {r.id: r for r in await self.store.records(event.merchant_id, event.order_id)}
        for line in event.lines:
            record = await self._record(event, line, current)
            await self.square(record)

    async def _record(self, event, line, current: dict) -> CommissionRecord:
        rid = record_id(event.order_id, line.line_id, line.level)
        for _ in range(ATTEMPTS):
            was = current.get(rid)
            after = merged(was, event, line)
            if after is None:
                return was
            if await self.store.save_record(after, was):
                current[rid] = after
                return after
            current = {r.id: r for r in await self.store.records(event.merchant_id, event.order_id)}
        raise Conflict("the commission record kept changing; the event is delivered again")

    async def square(self, record: CommissionRecord) -> CommissionBook:
        """Moves the beneficiary's balance to what the record is owed now (once per cause).

        The record is read again after the book: a movement of it that finished in between
        released its subject, which bumped the counter the movement's guard holds as read."""
        for _ in range(ATTEMPTS):
            book = await self.store.book(record.merchant_id, record.beneficiary_id)
            if record.id in book.moving:  # under way (or left by a crash): finish it, then decide
                await self.store.finish(record.merchant_id, record.beneficiary_id, record.id)
                continue
            current = await self.store.record(record.merchant_id, record.id)
            if current is None:
                return book
            movement = record_movement(book, current)
            if movement is None:
                return book
            if await self.store.move(record.merchant_id, movement, entry_for(movement, new_id("cme"), self.clock())):
                return book
        raise Conflict("the commission balance kept changing; the event is delivered again")

    # ---- members ---------------------------------------------------------------------------
    async def my_summary(self) -> tuple[StateTotals, CommissionBook]:
        ctx = context.current()
        member_id = ctx.require_member()
        totals = await self.store.state_totals(ctx.merchant_id, member_id)
        return totals, await self.store.book(ctx.merchant_id, member_id)

    async def my_records(self, state: str, page_size: int, page_token: str) -> tuple[list[CommissionRecord], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(state in STATES or state == "", "state", "a commission state")
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="commissions", member=member_id, state=state)
        after = paging.decode_cursor(v, page_token, fp, RECORD_POSITION)
        v.raise_if_any()
        rows = await self.store.page(ctx.merchant_id, member_id, state, after, size + 1)
        return paging.next_page(rows, size, fp)

    # ---- finance ---------------------------------------------------------------------------
    async def payable(self, page_size: int, page_token: str) -> tuple[BalanceTotals, StateTotals,
                                                                     list[CommissionBook], str]:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="commission-payees")
        after = paging.decode_cursor(v, page_token, fp, PAYEE_POSITION)
        v.raise_if_any()
        rows = await self.store.payees(ctx.merchant_id, after, size + 1)
        page, token = paging.next_page(rows, size, fp, position=lambda b: b.beneficiary_id)
        return (await self.store.balance_totals(ctx.merchant_id), await self.store.state_totals(ctx.merchant_id, ""),
                page, token)

    async def stored_value_liability(self) -> Liability:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        assert self.stored_value is not None
        return await self.stored_value.liability(ctx.merchant_id)

    # ---- jobs -------------------------------------------------------------------------------
    async def repair(self) -> int:
        return await self.store.repair(epoch_ms(self.clock()))

    async def entries(self, merchant_id: str, beneficiary_id: str) -> list[CommissionEntry]:
        return await self.store.entries(merchant_id, beneficiary_id)
