"""Withdrawals of settled commission: the distributor's request, FINANCE's approval or
rejection, the payout through the order service's PayOutTransfer, and the job that
finishes whatever a crash or a slow provider left under way.

The request stores the withdrawal (HOLDING, unique per member and idempotency key), then
takes the money with one guarded conditional update of the balance (available ≥ amount
and the day's counter within the limit), then marks it REQUESTED. A payout is asked for
with the withdrawal id as the transfer id, so asking again never pays twice; while the
provider is processing or cannot be reached the withdrawal stays PAYING and the job asks
again. Every balance movement is idempotent by its cause (hold, return, paid).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Callable

from services.member.application.commission_ports import Payouts, WithdrawalSettingsStore, WithdrawalStore
from services.member.application.commissions import ATTEMPTS
from services.member.application.commission_ports import CommissionStore
from services.member.domain.commissions import (CommissionBook, Movement, entry_for, hold_movement, paid_movement,
                                                return_movement)
from services.member.domain.withdrawals import (FAILED, HOLDING, PAID, PAYING, REJECTED, SHOWN,
                                                Withdrawal, WithdrawalSettings, business_day)
from siyu_kit import context, paging, retry
from siyu_kit import logging as slog
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import epoch_ms, utcnow

log = slog.get("siyu.member.withdrawals")

KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LEASE_MS = 30_000
# A HOLDING withdrawal older than this was left by a crash: the job finishes it.
STALE_HOLD_MS = 30_000
JOB_BATCH = 50
REMARK = "佣金提现"


class Withdrawals:
    def __init__(self, withdrawals: WithdrawalStore, settings: WithdrawalSettingsStore, balances: CommissionStore,
                 payouts: Payouts, clock: Callable[[], datetime] = utcnow):
        self.withdrawals = withdrawals
        self.settings_store = settings
        self.balances = balances
        self.payouts = payouts
        self.clock = clock

    # ---- settings ----------------------------------------------------------------------------
    async def settings(self) -> tuple[WithdrawalSettings, int]:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        return await self.settings_store.get(ctx.merchant_id)

    async def update_settings(self, settings: WithdrawalSettings, expected_version: int) -> tuple[
            WithdrawalSettings, int]:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        v = Violations()
        for name, problem in settings.problems():
            v.add(name, problem)
        v.check(expected_version >= 1, "expected_version", "the version read with GetWithdrawalSettings")
        v.raise_if_any()
        version = await self.settings_store.put(ctx.merchant_id, settings, expected_version)
        if version is None:
            raise Conflict("the withdrawal settings changed since they were read; read them again",
                           reason="VERSION_CONFLICT")
        return settings, version

    # ---- the distributor --------------------------------------------------------------------
    async def request(self, amount: int, idempotency_key: str) -> tuple[Withdrawal, CommissionBook]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(amount > 0, "amount", "more than 0 fen")
        v.check(bool(KEY.match(idempotency_key or "")), "idempotency_key", "1–64 letters, digits, _ or -")
        v.raise_if_any()
        merchant_id = ctx.merchant_id
        existing = await self.withdrawals.by_key(merchant_id, member_id, idempotency_key)
        if existing is None:
            terms, _ = await self.settings_store.get(merchant_id)
            terms.check(amount)
            now = self.clock()
            fresh = Withdrawal(id=new_id("wdr"), merchant_id=merchant_id, version=1, member_id=member_id,
                               amount=amount, fee=terms.fee(amount), state=HOLDING, idempotency_key=idempotency_key,
                               day=business_day(now), created_at=now, updated_at=now)
            if await self.withdrawals.add(fresh):
                existing = fresh
            else:
                existing = await self.withdrawals.by_key(merchant_id, member_id, idempotency_key)
                if existing is None:
                    raise Conflict("the withdrawal changed while it was requested; try again")
        if existing.amount != amount:
            raise FailedPrecondition("this idempotency key was used for another amount",
                                     reason="WITHDRAWAL_KEY_REUSED")
        withdrawal = await self._hold(existing) if existing.state == HOLDING else existing
        if withdrawal.state not in SHOWN:  # refused before: the same key answers the same refusal
            raise FailedPrecondition("this withdrawal was refused", reason=withdrawal.reason or "WITHDRAWAL_INSUFFICIENT")
        return withdrawal, await self.balances.book(merchant_id, member_id)

    async def _hold(self, withdrawal: Withdrawal) -> Withdrawal:
        """Takes the money (once) and marks the withdrawal REQUESTED; or drops it and says why.

        The withdrawal is read again after the book: a hold that finished in between shows
        in its state, or released its mark and so moved the counter the guard holds."""
        terms, _ = await self.settings_store.get(withdrawal.merchant_id)
        refusal = ""
        cause = f"hold:{withdrawal.id}"
        for _ in range(ATTEMPTS):
            book = await self.balances.book(withdrawal.merchant_id, withdrawal.member_id)
            if cause in book.moving:
                break  # taken: only the withdrawal's state is left to write
            current = await self.withdrawals.get(withdrawal.merchant_id, withdrawal.id)
            if current is None:
                raise NotFound(f"withdrawal {withdrawal.id} not found", reason="WITHDRAWAL_NOT_FOUND")
            withdrawal = current
            if withdrawal.state != HOLDING:
                return withdrawal
            if book.available < withdrawal.amount:
                refusal = "WITHDRAWAL_INSUFFICIENT"
                break
            movement = hold_movement(book, withdrawal.id, withdrawal.amount, withdrawal.day, terms.daily_limit)
            if movement.day and book.days.get(movement.day, 0) + withdrawal.amount > terms.daily_limit:
                refusal = "WITHDRAWAL_DAILY_LIMIT"
                break
            if await self._move(withdrawal.merchant_id, movement):
                break
        else:
            raise Conflict("the commission balance kept changing; try again")
        now = self.clock()
        if refusal:
            await self._settle_state(withdrawal, lambda w: w.drop(refusal, now))
            if refusal == "WITHDRAWAL_DAILY_LIMIT":
                raise FailedPrecondition("the withdrawal would pass today's limit", reason=refusal)
            raise FailedPrecondition("the commission balance does not hold that much", reason=refusal)
        held = await self._settle_state(withdrawal, lambda w: w.held(now))
        await self.balances.release(withdrawal.merchant_id, withdrawal.member_id, cause)
        return held

    async def _move(self, merchant_id: str, movement: Movement) -> bool:
        return await self.balances.move(merchant_id, movement, entry_for(movement, new_id("cme"), self.clock()))

    async def _settle_state(self, withdrawal: Withdrawal, change) -> Withdrawal:
        """Applies `change` to the stored withdrawal, reading it again after a lost race."""
        current = withdrawal
        for _ in range(retry.ATTEMPTS):
            if not change(current):
                return current
            try:
                await self.withdrawals.save(current)
                return current
            except StaleVersion:
                current = await self.withdrawals.get(withdrawal.merchant_id, withdrawal.id)
                if current is None:
                    raise NotFound(f"withdrawal {withdrawal.id} not found", reason="WITHDRAWAL_NOT_FOUND")
        raise Conflict("the withdrawal changed meanwhile; try again")

    async def my_withdrawals(self, page_size: int, page_token: str) -> tuple[list[Withdrawal], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        return await self._page(ctx.merchant_id, member_id, "", page_size, page_token)

    # ---- finance ----------------------------------------------------------------------------
    async def list(self, state: str, page_size: int, page_token: str) -> tuple[list[Withdrawal], str]:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        return await self._page(ctx.merchant_id, "", state, page_size, page_token)

    async def _page(self, merchant_id: str, member_id: str, state: str, page_size: int,
                    page_token: str) -> tuple[list[Withdrawal], str]:
        v = Violations()
        v.check(state == "" or state in SHOWN, "state", "a withdrawal state")
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="withdrawals", member=member_id, state=state)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        rows = await self.withdrawals.page(merchant_id, member_id, state, after, size + 1)
        return paging.next_page(rows, size, fp)

    async def _staff_get(self, withdrawal_id: str) -> Withdrawal:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        v = Violations()
        v.check(is_id(withdrawal_id, "wdr"), "withdrawal_id", "a wdr_ id")
        v.raise_if_any()
        withdrawal = await self.withdrawals.get(ctx.merchant_id, withdrawal_id)
        if withdrawal is None or withdrawal.state not in SHOWN:
            raise NotFound(f"withdrawal {withdrawal_id} not found", reason="WITHDRAWAL_NOT_FOUND")
        return withdrawal

    async def approve(self, withdrawal_id: str) -> Withdrawal:
        withdrawal = await self._staff_get(withdrawal_id)
        if withdrawal.state in (PAYING, PAID, FAILED):
            return withdrawal  # approved before: as it is now (the job follows a PAYING one)
        now = self.clock()
        withdrawal = await self._settle_state(withdrawal, lambda w: w.approve(now))
        return await self.pay(withdrawal)

    async def reject(self, withdrawal_id: str, reason: str) -> Withdrawal:
        v = Violations()
        v.check(0 < len(reason.strip()) <= 200, "reason", "1–200 characters")
        v.raise_if_any()
        withdrawal = await self._staff_get(withdrawal_id)
        now = self.clock()
        withdrawal = await self._settle_state(withdrawal, lambda w: w.reject(reason.strip(), now))
        return await self._book(withdrawal)

    # ---- paying out -------------------------------------------------------------------------
    async def pay(self, withdrawal: Withdrawal) -> Withdrawal:
        """Asks the provider (again) about a PAYING withdrawal and follows its answer."""
        transfer = await self.payouts.transfer(withdrawal.merchant_id, withdrawal.id, withdrawal.member_id,
                                               withdrawal.payout, REMARK)
        now = self.clock()
        if transfer.state == "SUCCEEDED":
            withdrawal = await self._settle_state(withdrawal, lambda w: w.paid(transfer.provider_transfer_id, now))
        elif transfer.state == "FAILED":
            withdrawal = await self._settle_state(
                withdrawal, lambda w: w.failed(transfer.failure_reason or "the transfer failed", now))
        return await self._book(withdrawal)

    async def _book(self, withdrawal: Withdrawal) -> Withdrawal:
        """The balance movement the final state owes (once), then `booked`, then its mark
        released (the withdrawal read again after the book, as in `_hold`)."""
        if not withdrawal.owes_booking:
            return withdrawal
        for _ in range(ATTEMPTS):
            book = await self.balances.book(withdrawal.merchant_id, withdrawal.member_id)
            cause = f"{'paid' if withdrawal.state == PAID else 'return'}:{withdrawal.id}"
            if cause in book.moving:
                break
            current = await self.withdrawals.get(withdrawal.merchant_id, withdrawal.id)
            if current is None:
                raise NotFound(f"withdrawal {withdrawal.id} not found", reason="WITHDRAWAL_NOT_FOUND")
            withdrawal = current
            if not withdrawal.owes_booking:
                return withdrawal
            if withdrawal.state == PAID:
                movement = paid_movement(book, withdrawal.id, withdrawal.amount)
            else:
                movement = return_movement(book, withdrawal.id, withdrawal.amount)
            if await self._move(withdrawal.merchant_id, movement):
                break
        else:
            raise Conflict("the commission balance kept changing; try again")

        def booked(w: Withdrawal) -> bool:
            if w.booked:
                return False
            w.booked = True
            return True

        done = await self._settle_state(withdrawal, booked)
        await self.balances.release(withdrawal.merchant_id, withdrawal.member_id, cause)
        return done

    async def resume(self) -> int:
        """The job: finishes withdrawals a crash left HOLDING or unbooked, and asks the
        provider again about PAYING ones. Each is leased, so replicas share the work."""
        done = 0
        for _ in range(JOB_BATCH):
            now_ms = epoch_ms(self.clock())
            withdrawal = await self.withdrawals.claim(now_ms, LEASE_MS, now_ms - STALE_HOLD_MS)
            if withdrawal is None:
                break
            token = context.use(context.current().with_merchant(withdrawal.merchant_id))
            try:
                if withdrawal.state == HOLDING:
                    try:
                        await self._hold(withdrawal)
                    except FailedPrecondition:
                        pass  # dropped: the money was not there
                elif withdrawal.state == PAYING:
                    await self.pay(withdrawal)
                elif withdrawal.state in (PAID, REJECTED, FAILED):
                    await self._book(withdrawal)
                done += 1
            except Exception as error:  # one withdrawal's trouble must not stop the others
                log.warning("withdrawal.not_finished", withdrawal_id=withdrawal.id, error=str(error))
            finally:
                context.reset(token)
        return done

