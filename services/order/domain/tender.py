"""Stored value on an order: what kind of order it is (goods, or a recharge package), how
it is paid (the member's balance first, the rest through the payment provider), where
the order's balance hold stands at the member service, and how each refund splits into a
balance part and a provider part.

The member service keeps the balance; the order only records what it asked for, so that
its own state says which member call is owed: a PAID order whose hold is HELD owes a
capture, a cancelled one (or one paid without its hold) owes a release."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from siyu_kit.errors import FailedPrecondition

KIND_GOODS = ""
KIND_RECHARGE = "RECHARGE"

NOT_PAYABLE_WITH_BALANCE = "RECHARGE_NOT_PAYABLE_WITH_BALANCE"
HOLD_GIVEN_BACK = "BALANCE_HOLD_GIVEN_BACK"


class Hold(str, Enum):
    """The order's balance hold as the order knows it."""
    NONE = ""  # never paid with balance
    ASKED = "ASKED"  # a hold was asked for; the member service may have made it
    HELD = "HELD"  # the member service holds `tender.balance` for the order
    RELEASING = "RELEASING"  # the member paid again without balance: the hold is given back


@dataclass(frozen=True)
class RechargeTerms:
    """What a recharge order buys: the package and what it credits once paid."""
    package_id: str
    principal: int
    bonus: int


@dataclass(frozen=True)
class RefundSplit:
    """One refund's amount: back to the balance, and back through the provider."""
    balance: int
    provider: int

    @property
    def amount(self) -> int:
        return self.balance + self.provider


def balance_share(amount: int, balance: int, paid: int) -> int:
    """The balance's share of the first `amount` refunded of an order that was `paid`,
    `balance` of it with balance: floor(amount × balance / paid). Never decreasing in
    `amount`, and exactly `balance` once everything is refunded."""
    if paid <= 0 or balance <= 0:
        return 0
    return amount * balance // paid


def split_refund(balance: int, provider: int, refunded_before: int, amount: int) -> RefundSplit:
    """The refund of `amount`, after `refunded_before` was refunded, split in the tender's
    proportion. Cumulative: each refund's balance part is the share of everything refunded
    so far minus what earlier refunds gave, so the parts of all refunds add up exactly to
    the tender once the order is refunded in full."""
    paid = balance + provider
    if amount < 0 or refunded_before < 0 or refunded_before + amount > paid:
        raise ValueError("a refund cannot return more than the order was paid")
    part = balance_share(refunded_before + amount, balance, paid) - balance_share(refunded_before, balance, paid)
    return RefundSplit(balance=part, provider=amount - part)


@dataclass(frozen=True)
class Tender:
    """How an order is paid, and how much of each part was refunded."""
    balance: int = 0
    provider: int = 0
    balance_refunded: int = 0
    provider_refunded: int = 0

    def __post_init__(self) -> None:
        if min(self.balance, self.provider, self.balance_refunded, self.provider_refunded) < 0:
            raise ValueError("tender amounts are never negative")
        if self.balance_refunded > self.balance or self.provider_refunded > self.provider:
            raise ValueError("a tender part cannot be refunded beyond what it paid")

    @property
    def paid(self) -> int:
        return self.balance + self.provider

    @property
    def refunded(self) -> int:
        return self.balance_refunded + self.provider_refunded

    def refund(self, amount: int) -> tuple["Tender", RefundSplit]:
        split = split_refund(self.balance, self.provider, self.refunded, amount)
        return replace(self, balance_refunded=self.balance_refunded + split.balance,
                       provider_refunded=self.provider_refunded + split.provider), split


@dataclass(frozen=True)
class StoredValue:
    """The stored-value facts of one order. The default is a goods order paid wholly
    through the provider, which is what every order placed before stored value is."""
    kind: str = KIND_GOODS
    recharge: RechargeTerms | None = None
    # Set when a payment with balance starts; a goods order paid only by the provider keeps
    # the default (its tender is then its payable through the provider).
    tender: Tender | None = None
    hold: Hold = Hold.NONE
    # Each executed refund's split, by refund id: a refund executed again splits the same.
    splits: dict[str, RefundSplit] = field(default_factory=dict)

    @classmethod
    def recharge_of(cls, terms: RechargeTerms) -> "StoredValue":
        return cls(kind=KIND_RECHARGE, recharge=terms)

    @property
    def is_recharge(self) -> bool:
        return self.kind == KIND_RECHARGE

    @property
    def is_default(self) -> bool:
        return self == StoredValue()

    @property
    def balance(self) -> int:
        """What the balance pays (0 unless a hold is HELD for the order)."""
        return self.tender.balance if self.tender is not None and self.hold is Hold.HELD else 0

    def tender_of(self, payable: int) -> Tender:
        return self.tender if self.tender is not None else Tender(balance=0, provider=payable)

    # ---- paying ------------------------------------------------------------------------

    def asking(self) -> "StoredValue":
        """The member pays with balance: the order records that it asks for a hold before
        asking, so a cancellation releases whatever the member service made of it."""
        if self.is_recharge:
            raise FailedPrecondition("a recharge order is paid through the payment provider, never with balance",
                                     reason=NOT_PAYABLE_WITH_BALANCE)
        if self.hold is Hold.RELEASING:
            raise FailedPrecondition("this order was paid without balance before; its balance hold was given back",
                                     reason=HOLD_GIVEN_BACK)
        return self if self.hold in (Hold.ASKED, Hold.HELD) else replace(self, hold=Hold.ASKED)

    def held(self, amount: int, payable: int) -> "StoredValue":
        """The member service holds `amount` (0..payable) for the order."""
        if not 0 <= amount <= payable:
            raise ValueError(f"a hold of {amount} does not fit a payable of {payable}")
        return replace(self, hold=Hold.HELD, tender=Tender(balance=amount, provider=payable - amount))

    def without_balance(self, payable: int) -> "StoredValue":
        """The member pays again without balance: a hold asked for or made is given back."""
        if self.hold in (Hold.ASKED, Hold.HELD):
            return replace(self, hold=Hold.RELEASING, tender=Tender(balance=0, provider=payable))
        return self

    def fits(self, payment_balance: int) -> bool:
        """Whether a provider payment started beside `payment_balance` of balance still
        pays the order as it stands: the balance part it was started with is the one held."""
        return payment_balance == self.balance

    # ---- what the member service is owed ------------------------------------------------

    def owes_capture(self, paid: bool) -> bool:
        return paid and self.hold is Hold.HELD and self.balance > 0

    def owes_release(self, paid: bool, cancelled: bool) -> bool:
        """A hold asked for, made or being given back that the order will not spend."""
        if self.hold in (Hold.ASKED, Hold.RELEASING):
            return paid or cancelled
        return cancelled and self.hold is Hold.HELD

    # ---- refunds -------------------------------------------------------------------------

    def refund(self, refund_id: str, amount: int, payable: int) -> tuple["StoredValue", RefundSplit]:
        """The split of the refund `refund_id`, once: a repeat answers the first split."""
        if refund_id in self.splits:
            return self, self.splits[refund_id]
        if self.tender is None:
            # Paid only through the provider: every refund goes there, and nothing is
            # stored (the order keeps the shape it always had).
            return self, RefundSplit(balance=0, provider=amount)
        tender, split = self.tender_of(payable).refund(amount)
        return replace(self, tender=tender, splits={**self.splits, refund_id: split}), split
