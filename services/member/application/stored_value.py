"""Stored value: recharge packages, crediting paid recharge orders, the order service's
holds, captures, releases and refunds to the balance, finance's recharge refunds and the
reads of the member centre and of staff.

Every balance movement is decided by the account (domain/stored_value.py) from the
account as read and written by the balance store as one conditional update; a lost guard
means another movement came first, so the account is read and the movement decided
again. Each movement's cause (a recharge order, an order, a refund, a recharge) is
applied once: a replay finds its cause in the account and answers what the first did.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from services.member.application.ports import MemberRepository
from services.member.application.stored_value_ports import BalanceStore, OrderRefunds, RechargePackageStore
from services.member.domain.stored_value import (CREDITED, HOLD, RECHARGE, RECHARGE_REFUND, REFUND, REFUNDING,
                                                 RELEASE, SPEND, BalanceBook, BalanceEntry, Movement,
                                                 PackageState, Part, Recharge, RechargePackage, Refused,
                                                 check_package, entry_for)
from siyu_kit import context, paging, retry
from siyu_kit import logging as slog
from siyu_kit.errors import Conflict, DomainError, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import epoch_ms, utcnow

log = slog.get("siyu.member.stored_value")

# A movement that keeps losing its guards to concurrent movements of the same member is
# decided again this many times before the caller is told to try again (ABORTED).
ATTEMPTS = 8
MAX_HOLD = 10_000_000_000
PACKAGES_SHOWN = 50
RECHARGES_SHOWN = 100
JOB_BATCH = 100
KEY_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class RechargePaid:
    """A paid recharge order, as order.paid tells it."""
    merchant_id: str
    member_id: str
    order_id: str
    package_id: str
    principal: int
    bonus: int


@dataclass(frozen=True)
class BalanceView:
    principal: int
    bonus: int
    held: int

    @property
    def available(self) -> int:
        return self.principal + self.bonus


class UnknownMember(Exception):
    """The recharge order names a member this merchant does not have."""


def view(book: BalanceBook) -> BalanceView:
    return BalanceView(book.principal, book.bonus, book.held)


def _refused(error: Refused) -> Exception:
    if error.reason == "RECHARGE_NOT_FOUND":
        return NotFound(error.message, reason=error.reason)
    return FailedPrecondition(error.message, reason=error.reason)


def _key_ok(key: str) -> bool:
    return 1 <= len(key) <= 64 and set(key) <= KEY_CHARS


class StoredValue:
    def __init__(self, packages: RechargePackageStore, balances: BalanceStore, members: MemberRepository,
                 order_refunds: OrderRefunds, clock: Callable[[], datetime] = utcnow):
        self.packages = packages
        self.balances = balances
        self.members = members
        self.order_refunds = order_refunds
        self.clock = clock

    # ---- the one move loop ---------------------------------------------------------------------
    async def _read(self, merchant_id: str, member_id: str) -> tuple[BalanceBook, bool]:
        book = await self.balances.book(merchant_id, member_id)
        return (book, False) if book is not None else (BalanceBook(merchant_id, member_id), True)

    async def _apply(self, merchant_id: str, member_id: str, kind: str, source_id: str,
                     decide: Callable[[BalanceBook], Movement | None]) -> tuple[bool, Part, BalanceBook]:
        """(applied now, what the cause did, the account after it). A cause applied before
        answers what it did then; a decision of nothing answers an empty part."""
        for _ in range(ATTEMPTS):
            book, new = await self._read(merchant_id, member_id)
            done = book.outcome(kind, source_id)
            if done is not None:
                return False, done, book
            if new and await self.members.get(merchant_id, member_id) is None:
                # No account yet: opening one needs a member of this merchant.
                raise NotFound("no such member")
            try:
                movement = decide(book)
            except Refused as error:
                raise _refused(error) from error
            if movement is None:
                return False, Part(), book
            movement_id = new_id("bal")
            entry = entry_for(movement, movement_id, self.clock())
            if await self.balances.move(merchant_id, movement, entry, movement_id, new):
                book.apply(movement)
                log.info("balance.moved", kind=movement.kind, source_id=movement.source_id, member_id=member_id,
                         principal=movement.principal, bonus=movement.bonus)
                return True, movement.outcome, book
        raise Conflict("the member's balance changed too often while moving it; try again",
                       reason="CONCURRENT_UPDATE")

    # ---- packages (staff) ----------------------------------------------------------------------
    async def create_package(self, name: str, price: int, bonus: int, key: str) -> RechargePackage:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        check_package(v, name, price, bonus)
        v.check(_key_ok(key), "idempotency_key", "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
        v.raise_if_any()
        first = await self.packages.by_key(ctx.merchant_id, key)
        if first is not None:
            return first
        package = RechargePackage.create(new_id("rcp"), ctx.merchant_id, name, price, bonus, key, self.clock())
        if not await self.packages.add(package):
            first = await self.packages.by_key(ctx.merchant_id, key)
            if first is None:
                raise Conflict("the package was being created; try again", reason="CONCURRENT_UPDATE")
            return first
        log.info("recharge_package.created", package_id=package.id, price=price, bonus=bonus)
        return package

    async def set_package_state(self, package_id: str, state: str) -> RechargePackage:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(package_id, "rcp"), "package_id", "a rcp_ id")
        v.check(state in (PackageState.ACTIVE.value, PackageState.INACTIVE.value), "state", "ACTIVE or INACTIVE")
        v.raise_if_any()

        async def attempt() -> RechargePackage:
            package = await self.packages.get(ctx.merchant_id, package_id)
            if package is None:
                raise NotFound(f"no recharge package {package_id}", reason="RECHARGE_PACKAGE_NOT_FOUND")
            if package.set_state(PackageState(state), self.clock()):
                await self.packages.save(package)
            return package

        return await retry.on_conflict(attempt, gave_up="the package changed while setting its state; try again")

    async def list_packages(self, page_size: int, page_token: str) -> tuple[list[RechargePackage], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="recharge-packages")
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        rows = await self.packages.page(ctx.merchant_id, after, size + 1)
        return paging.next_page(rows, size, fp)

    async def get_package(self, package_id: str) -> RechargePackage:
        """The order service places a recharge order: the package as it is now, if active."""
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(is_id(package_id, "rcp"), "package_id", "a rcp_ id")
        v.raise_if_any()
        package = await self.packages.get(merchant_id, package_id)
        if package is None or package.state != PackageState.ACTIVE:
            raise NotFound(f"no active recharge package {package_id}", reason="RECHARGE_PACKAGE_NOT_FOUND")
        return package

    # ---- crediting a paid recharge order (order.paid) ---------------------------------------------
    async def on_recharge_paid(self, paid: RechargePaid) -> Recharge:
        """Credits the recharge once per order; a replay changes nothing and answers the
        recharge the first delivery created."""
        if await self.members.get(paid.merchant_id, paid.member_id) is None:
            raise UnknownMember(f"no member {paid.member_id} in this merchant")
        recharge_id = new_id("rch")
        now_ms = epoch_ms(self.clock())
        _, _, book = await self._apply(
            paid.merchant_id, paid.member_id, RECHARGE, paid.order_id,
            lambda b: b.credit(paid.order_id, recharge_id, paid.package_id, paid.principal, paid.bonus, now_ms))
        recharge = book.recharge_of_order(paid.order_id)
        if recharge is None:  # applied before accounts kept recharges: cannot happen, but never guess
            raise RuntimeError(f"order {paid.order_id} was credited without its recharge")
        # Findable by its id from now on (a crash before this is repaired by the redelivery).
        await self.balances.index_recharge(paid.merchant_id, paid.member_id, recharge)
        return recharge

    # ---- the order service: pay with balance and refund to it ---------------------------------------
    def _order_args(self, v: Violations, member_id: str, order_id: str) -> None:
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.check(is_id(order_id, "ord"), "order_id", "an ord_ id")

    async def hold(self, member_id: str, order_id: str, max_amount: int) -> tuple[Part, bool]:
        """(what the order holds now, applied now)."""
        merchant_id = context.current().require_merchant()
        v = Violations()
        self._order_args(v, member_id, order_id)
        v.check(1 <= max_amount <= MAX_HOLD, "max_amount", f"1 to {MAX_HOLD}")
        v.raise_if_any()
        applied, part, book = await self._apply(merchant_id, member_id, HOLD, order_id,
                                                lambda b: b.hold(order_id, max_amount))
        if not applied and book.outcome(HOLD, order_id) is not None:
            # A repeat: the hold as it is, unless it has ended since.
            if order_id not in book.holds:
                raise FailedPrecondition(f"order {order_id} released or spent its balance hold already",
                                         reason="BALANCE_HOLD_ENDED")
            return book.holds[order_id], False
        return part, applied

    async def capture(self, member_id: str, order_id: str) -> tuple[int, bool]:
        merchant_id = context.current().require_merchant()
        v = Violations()
        self._order_args(v, member_id, order_id)
        v.raise_if_any()
        applied, part, _ = await self._apply(merchant_id, member_id, SPEND, order_id, lambda b: b.capture(order_id))
        return part.amount, applied

    async def release(self, member_id: str, order_id: str) -> tuple[int, bool]:
        merchant_id = context.current().require_merchant()
        v = Violations()
        self._order_args(v, member_id, order_id)
        v.raise_if_any()
        applied, part, _ = await self._apply(merchant_id, member_id, RELEASE, order_id,
                                             lambda b: b.release(order_id))
        return part.amount, applied

    async def refund_to_balance(self, member_id: str, order_id: str, refund_id: str, amount: int) -> tuple[Part, bool]:
        merchant_id = context.current().require_merchant()
        v = Violations()
        self._order_args(v, member_id, order_id)
        v.check(is_id(refund_id, "rfd"), "refund_id", "a rfd_ id")
        v.check(1 <= amount <= MAX_HOLD, "amount", f"1 to {MAX_HOLD}")
        v.raise_if_any()
        applied, part, _ = await self._apply(merchant_id, member_id, REFUND, refund_id,
                                             lambda b: b.refund(order_id, refund_id, amount))
        return part, applied

    # ---- finance: refund an unspent recharge ---------------------------------------------------------
    async def refund_recharge(self, recharge_id: str, reason: str, key: str) -> tuple[Recharge, BalanceView]:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        v = Violations()
        v.check(is_id(recharge_id, "rch"), "recharge_id", "a rch_ id")
        v.check(bool(reason.strip()) and len(reason) <= 200, "reason", "1 to 200 characters")
        v.check(_key_ok(key), "idempotency_key", "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
        v.raise_if_any()
        member_id = await self.balances.member_of_recharge(ctx.merchant_id, recharge_id)
        if member_id is None:
            raise NotFound(f"no recharge {recharge_id}", reason="RECHARGE_NOT_FOUND")
        now_ms = epoch_ms(self.clock())
        book, _ = await self._read(ctx.merchant_id, member_id)
        first = book.recharges.get(recharge_id)
        if first is not None and first.state != CREDITED and first.refund_key == key:
            # The same request again: the refund as it is (the provider step tried again).
            book = await self._finish(ctx.merchant_id, book, recharge_id)
            return book.recharges[recharge_id], view(book)
        _, _, book = await self._apply(ctx.merchant_id, member_id, RECHARGE_REFUND, recharge_id,
                                       lambda b: b.refund_recharge(recharge_id, key, reason.strip(), now_ms))
        if book.recharges[recharge_id].refund_key != key:
            raise FailedPrecondition(f"recharge {recharge_id} was refunded by another request",
                                     reason="RECHARGE_ALREADY_REFUNDED")
        book = await self._finish(ctx.merchant_id, book, recharge_id)
        return book.recharges[recharge_id], view(book)

    async def _finish(self, merchant_id: str, book: BalanceBook, recharge_id: str) -> BalanceBook:
        """Asks the order service to refund a REFUNDING recharge's order; REFUNDED once it
        confirms. A failure leaves it REFUNDING for the retry job."""
        recharge = book.recharges[recharge_id]
        if recharge.state != REFUNDING:
            return book
        try:
            refund_id = await self.order_refunds.refund_recharge_order(recharge.order_id, recharge.id,
                                                                       recharge.principal, recharge.refund_reason)
        except DomainError as error:  # the order service is away or refused: the job asks again
            log.warning("recharge.refund_call_failed", recharge_id=recharge.id, error=str(error))
            return book
        _, _, book = await self._apply(merchant_id, book.member_id, "RECHARGE_REFUNDED", recharge_id,
                                       lambda b: b.recharge_refunded(recharge_id, refund_id))
        return book

    async def retry_refunds(self) -> int:
        """The job: asks the order service again for every recharge refund still under way;
        how many it finished."""
        finished = 0
        for _ in range(JOB_BATCH):
            claimed = await self.balances.claim_refunding(epoch_ms(self.clock()))
            if claimed is None:
                break
            merchant_id, member_id = claimed
            token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=merchant_id))
            try:
                book, _ = await self._read(merchant_id, member_id)
                for recharge_id in sorted(r.id for r in book.recharges.values() if r.state == REFUNDING):
                    book = await self._finish(merchant_id, book, recharge_id)
                    finished += book.recharges[recharge_id].state != REFUNDING
            finally:
                context.reset(token)
        return finished

    async def repair(self) -> int:
        return await self.balances.repair(epoch_ms(self.clock()))

    # ---- reads ---------------------------------------------------------------------------------
    async def my_balance(self) -> tuple[BalanceView, list[RechargePackage]]:
        ctx = context.current()
        member_id = ctx.require_member()
        book, _ = await self._read(ctx.merchant_id, member_id)
        return view(book), await self.packages.active(ctx.merchant_id, PACKAGES_SHOWN)

    async def my_history(self, page_size: int, page_token: str) -> tuple[list[BalanceEntry], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        return await self._history(ctx.merchant_id, member_id, page_size, page_token)

    async def _member(self, member_id: str) -> str:
        ctx = context.current()
        ctx.require_staff("FINANCE", "OPERATOR")
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.raise_if_any()
        if await self.members.get(ctx.merchant_id, member_id) is None:
            raise NotFound("no such member")
        return ctx.merchant_id

    async def member_balance(self, member_id: str) -> tuple[BalanceView, list[Recharge]]:
        merchant_id = await self._member(member_id)
        book, _ = await self._read(merchant_id, member_id)
        recharges = sorted(book.recharges.values(), key=lambda r: r.id, reverse=True)[:RECHARGES_SHOWN]
        return view(book), recharges

    async def member_history(self, member_id: str, page_size: int, page_token: str) -> tuple[list[BalanceEntry], str]:
        merchant_id = await self._member(member_id)
        return await self._history(merchant_id, member_id, page_size, page_token)

    async def _history(self, merchant_id: str, member_id: str, page_size: int,
                       page_token: str) -> tuple[list[BalanceEntry], str]:
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="balance", member=member_id)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        rows = await self.balances.page(merchant_id, member_id, after, size + 1)
        return paging.next_page(rows, size, fp)
