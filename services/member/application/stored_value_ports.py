"""What the stored-value use cases need from outside. Every method is async;
implementations live in the adapters and are wired in at start-up.

The balance store's `move` is the one conditional update every balance movement is
(services/member/domain/stored_value.py says which guards it carries); it answers False,
having written nothing, when a guard did not hold. The ledger entry the movement owes and
its event are written by that same update; the entry is then stored in the ledger
(unique per cause) and a crash in between is repaired by `repair`.
"""
from __future__ import annotations

from typing import Protocol

from services.member.domain.stored_value import BalanceBook, BalanceEntry, Movement, Recharge, RechargePackage


class RechargePackageStore(Protocol):
    async def get(self, merchant_id: str, package_id: str) -> RechargePackage | None: ...

    async def by_key(self, merchant_id: str, key: str) -> RechargePackage | None: ...

    async def add(self, package: RechargePackage) -> bool:
        """False when the merchant has a package with the same idempotency key."""
        ...

    async def save(self, package: RechargePackage) -> None:
        """Compare-and-set on the version read; StaleVersion on a lost race."""
        ...

    async def page(self, merchant_id: str, before_id: str, limit: int) -> list[RechargePackage]:
        """Newest first, ids below `before_id` when given."""
        ...

    async def active(self, merchant_id: str, limit: int) -> list[RechargePackage]:
        """The active packages, cheapest first."""
        ...


class BalanceStore(Protocol):
    async def book(self, merchant_id: str, member_id: str) -> BalanceBook | None: ...

    async def move(self, merchant_id: str, movement: Movement, entry: BalanceEntry | None, movement_id: str,
                   opening: bool) -> bool:
        """Applies the movement (opening the account first when `opening`); False when a
        guard did not hold (nothing written)."""
        ...

    async def page(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[BalanceEntry]:
        """The ledger, newest first, ids below `before_id` when given."""
        ...

    async def entries(self, merchant_id: str, member_id: str) -> list[BalanceEntry]: ...

    async def index_recharge(self, merchant_id: str, member_id: str, recharge: Recharge) -> None:
        """Makes the recharge findable by its id (once; a repeat changes nothing)."""
        ...

    async def member_of_recharge(self, merchant_id: str, recharge_id: str) -> str | None: ...

    async def claim_refunding(self, now_ms: int) -> tuple[str, str] | None:
        """(merchant, member) of one account with a recharge refund under way, leased to
        this caller for a while so other replicas take other accounts; None: none due."""
        ...

    async def repair(self, now_ms: int) -> int:
        """Stores the ledger entries a crash left owing; how many."""
        ...


class OrderRefunds(Protocol):
    async def refund_recharge_order(self, order_id: str, recharge_id: str, amount: int, reason: str) -> str:
        """Asks the order service to refund the recharge order in full through the payment
        provider (idempotent by recharge id); the refund's id. Raises when it could not."""
        ...
