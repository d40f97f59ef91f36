"""Suppliers (供应链入驻): who supplies a merchant's SKUs, at which supply price, and where
they are paid. A supplier's settlement account is either its merchant id at the payment
provider (profit sharing can pay it) or a bank account (paid off-platform)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import FailedPrecondition

SUPPLIER_DISABLED = "SUPPLIER_DISABLED"


class SupplierState(str, Enum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class AccountKind(str, Enum):
    PROVIDER_MERCHANT = "PROVIDER_MERCHANT"
    BANK = "BANK"


@dataclass(frozen=True)
class SupplierDetails:
    name: str
    contact: str
    phone: str
    account_kind: AccountKind
    settlement_account: str


@dataclass(frozen=True)
class SupplierChanged:
    at: datetime


@dataclass
class Supplier(Aggregate):
    id: str
    merchant_id: str
    details: SupplierDetails
    state: SupplierState
    created_at: datetime
    version: int = 1

    def update(self, details: SupplierDetails, now: datetime) -> None:
        self.details = details
        self.record(SupplierChanged(at=now))

    def disable(self, now: datetime) -> bool:
        if self.state is SupplierState.DISABLED:
            return False
        self.state = SupplierState.DISABLED
        self.record(SupplierChanged(at=now))
        return True

    def require_active(self) -> None:
        if self.state is not SupplierState.ACTIVE:
            raise FailedPrecondition(f"supplier {self.id} is disabled", reason=SUPPLIER_DISABLED)

    @property
    def provider_account(self) -> str:
        """The supplier's provider merchant id, when profit sharing can pay it; else ""."""
        d = self.details
        return d.settlement_account if d.account_kind is AccountKind.PROVIDER_MERCHANT else ""


@dataclass(frozen=True)
class SupplierLink:
    """A SKU's supplier and what the merchant owes it per unit sold (fen)."""
    merchant_id: str
    sku_id: str
    supplier_id: str
    supply_price: int
    updated_at: datetime

    def __post_init__(self) -> None:
        if self.supply_price < 0:
            raise ValueError("a supply price is never negative")


def mask_tail(text: str, keep: int = 4) -> str:
    """Everything but the last `keep` characters hidden."""
    if len(text) <= keep:
        return "*" * len(text)
    return "*" * (len(text) - keep) + text[-keep:]
