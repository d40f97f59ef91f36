"""In-memory stored-value ports: recharge packages, balance accounts with their ledger,
and the order service's recharge refunds. `FakeBalances.move` checks every guard the
store's conditional update carries (`BalanceBook.admits`) and yields to the event loop
between a read and a write, so concurrent use cases interleave as they do over MongoDB."""
from __future__ import annotations

import asyncio
import copy

from siyu_kit.errors import Unavailable
from siyu_kit.ids import new_id

from services.member.domain.stored_value import (BalanceBook, BalanceEntry, Movement, PackageState, Recharge,
                                                 RechargePackage)
from tests.fakes.store import VersionedStore, require_version


async def _round_trip() -> None:
    await asyncio.sleep(0)


class FakeRechargePackages(VersionedStore):
    items: dict[str, RechargePackage]

    async def get(self, merchant_id: str, package_id: str) -> RechargePackage | None:
        await _round_trip()
        package = self.items.get(package_id)
        return copy.deepcopy(package) if package is not None and package.merchant_id == merchant_id else None

    async def by_key(self, merchant_id: str, key: str) -> RechargePackage | None:
        await _round_trip()
        return next((copy.deepcopy(p) for p in self.items.values()
                     if p.merchant_id == merchant_id and p.idempotency_key == key), None)

    async def add(self, package: RechargePackage) -> bool:
        await _round_trip()
        if any(p.merchant_id == package.merchant_id and p.idempotency_key == package.idempotency_key
               for p in self.items.values()) or package.id in self.items:
            return False
        self.items[package.id] = copy.deepcopy(package)
        return True

    async def save(self, package: RechargePackage) -> None:
        await _round_trip()
        require_version(self.items.get(package.id), package)
        self._compare_and_set(package)

    async def page(self, merchant_id: str, before_id: str, limit: int) -> list[RechargePackage]:
        rows = sorted((p for p in self.items.values() if p.merchant_id == merchant_id
                       and (not before_id or p.id < before_id)), key=lambda p: p.id, reverse=True)
        return [copy.deepcopy(p) for p in rows[:limit]]

    async def active(self, merchant_id: str, limit: int) -> list[RechargePackage]:
        rows = sorted((p for p in self.items.values() if p.merchant_id == merchant_id
                       and p.state == PackageState.ACTIVE), key=lambda p: (p.price, p.id))
        return [copy.deepcopy(p) for p in rows[:limit]]


class FakeBalances:
    """Accounts as BalanceBook copies; the ledger's entries in the order written, unique
    per (merchant, kind, cause); `events` keeps (kind, movement) per write. `lose_moves`
    makes that many moves lose to another writer."""

    def __init__(self):
        self.books: dict[tuple[str, str], BalanceBook] = {}
        self.rows: list[tuple[str, BalanceEntry]] = []  # (merchant, entry)
        self.events: list[Movement] = []
        self.recharge_index: dict[tuple[str, str], str] = {}
        self.leases: dict[tuple[str, str], int] = {}
        self.lose_moves = 0
        self.moves = 0

    async def book(self, merchant_id: str, member_id: str) -> BalanceBook | None:
        await _round_trip()
        book = self.books.get((merchant_id, member_id))
        return copy.deepcopy(book) if book else None

    async def move(self, merchant_id: str, movement: Movement, entry: BalanceEntry | None, movement_id: str,
                   opening: bool) -> bool:
        await _round_trip()
        book = self.books.get((merchant_id, movement.member_id))
        if book is None:
            if not opening:
                return False
            book = self.books[(merchant_id, movement.member_id)] = BalanceBook(merchant_id, movement.member_id)
        if self.lose_moves:
            self.lose_moves -= 1
            return False
        if not book.admits(movement):
            return False
        book.apply(movement)
        self.moves += 1
        self.events.append(movement)
        if entry is not None:
            assert not any(m == merchant_id and e.kind == entry.kind and e.cause_id == entry.cause_id
                           for m, e in self.rows), "a cause entered the ledger twice"
            self.rows.append((merchant_id, entry))
        return True

    async def page(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[BalanceEntry]:
        rows = sorted((e for m, e in self.rows if m == merchant_id and e.member_id == member_id
                       and (not before_id or e.id < before_id)), key=lambda e: e.id, reverse=True)
        return rows[:limit]

    async def entries(self, merchant_id: str, member_id: str) -> list[BalanceEntry]:
        return await self.page(merchant_id, member_id, "", 10**9)

    async def index_recharge(self, merchant_id: str, member_id: str, recharge: Recharge) -> None:
        self.recharge_index.setdefault((merchant_id, recharge.id), member_id)

    async def member_of_recharge(self, merchant_id: str, recharge_id: str) -> str | None:
        return self.recharge_index.get((merchant_id, recharge_id))

    async def claim_refunding(self, now_ms: int) -> tuple[str, str] | None:
        for key, book in sorted(self.books.items()):
            if any(r.state == "REFUNDING" for r in book.recharges.values()) and self.leases.get(key, 0) < now_ms:
                self.leases[key] = now_ms + 30_000
                return key
        return None

    async def repair(self, now_ms: int) -> int:
        return 0


class FakeOrderRefunds:
    """The order service's RefundRechargeOrder: idempotent by recharge id; `failures`
    makes that many calls fail as an unreachable service does."""

    def __init__(self):
        self.refunds: dict[str, tuple[str, str, int, str]] = {}  # recharge id → (refund id, order, amount, reason)
        self.calls = 0
        self.failures = 0

    async def refund_recharge_order(self, order_id: str, recharge_id: str, amount: int, reason: str) -> str:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise Unavailable("the order service is away", reason="UNAVAILABLE")
        if recharge_id not in self.refunds:
            self.refunds[recharge_id] = (new_id("rfd"), order_id, amount, reason)
        return self.refunds[recharge_id][0]
