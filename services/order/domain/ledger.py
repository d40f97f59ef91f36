"""The payment ledger: every money movement of an order as one double-entry entry.

An entry's id follows from what caused it (kind and payment or refund id), so a retried
write cannot record a movement twice. Accounts: PROVIDER_CLEARING (money held at the
payment provider), ORDER:<id> (what the order holds for the merchant), UNAPPLIED:<id>
(a payment the order could not take, until it is sent back).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

PROVIDER_CLEARING = "PROVIDER_CLEARING"

ORDER_PAYMENT = "ORDER_PAYMENT"
UNAPPLIED_PAYMENT = "UNAPPLIED_PAYMENT"
AUTO_REFUND = "AUTO_REFUND"
REFUND = "REFUND"
# A paid order cancelled because its units were gone: the whole payment goes back.
STOCK_REFUND = "STOCK_REFUND"


def order_account(order_id: str) -> str:
    return f"ORDER:{order_id}"


def unapplied_account(order_id: str) -> str:
    return f"UNAPPLIED:{order_id}"


@dataclass(frozen=True)
class Entry:
    entry_id: str
    kind: str
    order_id: str
    debit: str
    credit: str
    amount: int
    payment_id: str = ""
    refund_id: str = ""

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("a ledger entry moves a positive amount")
        if self.debit == self.credit:
            raise ValueError("a ledger entry moves money between two accounts")


def payment_applied(order_id: str, payment_id: str, amount: int) -> Entry:
    return Entry(f"{ORDER_PAYMENT}:{payment_id}", ORDER_PAYMENT, order_id, PROVIDER_CLEARING,
                 order_account(order_id), amount, payment_id=payment_id)


def payment_unapplied(order_id: str, payment_id: str, amount: int) -> Entry:
    return Entry(f"{UNAPPLIED_PAYMENT}:{payment_id}", UNAPPLIED_PAYMENT, order_id, PROVIDER_CLEARING,
                 unapplied_account(order_id), amount, payment_id=payment_id)


def payment_auto_refunded(order_id: str, payment_id: str, amount: int) -> Entry:
    return Entry(f"{AUTO_REFUND}:{payment_id}", AUTO_REFUND, order_id, unapplied_account(order_id),
                 PROVIDER_CLEARING, amount, payment_id=payment_id)


def order_refunded(order_id: str, payment_id: str, refund_id: str, amount: int) -> Entry:
    return Entry(f"{REFUND}:{refund_id}", REFUND, order_id, order_account(order_id), PROVIDER_CLEARING,
                 amount, payment_id=payment_id, refund_id=refund_id)


def payment_returned(order_id: str, payment_id: str, amount: int) -> Entry:
    return Entry(f"{STOCK_REFUND}:{payment_id}", STOCK_REFUND, order_id, order_account(order_id),
                 PROVIDER_CLEARING, amount, payment_id=payment_id)


# ---- stored value: MEMBER_BALANCE is the money members keep as balance at the merchant.
# The order's balance part comes from it when the order is paid (once per order) and the
# balance part of each refund goes back to it (once per refund).
MEMBER_BALANCE = "MEMBER_BALANCE"
BALANCE_PAYMENT = "BALANCE_PAYMENT"
BALANCE_REFUND = "BALANCE_REFUND"


def balance_applied(order_id: str, payment_id: str, amount: int) -> Entry:
    return Entry(f"{BALANCE_PAYMENT}:{order_id}", BALANCE_PAYMENT, order_id, MEMBER_BALANCE,
                 order_account(order_id), amount, payment_id=payment_id)


def balance_refunded(order_id: str, refund_id: str, amount: int) -> Entry:
    return Entry(f"{BALANCE_REFUND}:{refund_id}", BALANCE_REFUND, order_id, order_account(order_id),
                 MEMBER_BALANCE, amount, refund_id=refund_id)


def balances(entries: Iterable[Entry]) -> dict[str, int]:
    """Debits minus credits per account."""
    found: dict[str, int] = defaultdict(int)
    for e in entries:
        found[e.debit] += e.amount
        found[e.credit] -= e.amount
    return dict(found)


def is_balanced(entries: Iterable[Entry], order_id: str, paid: int, refunded: int,
                captured: Iterable[str] = ()) -> bool:
    """Debits equal credits (all balances add up to zero), no more was refunded than
    paid, the order's account holds (as a credit) exactly paid minus refunded, and the
    money of every payment the provider captured (`captured`: payment ids) came into
    the ledger: a payment that succeeded and was neither applied nor sent back is money
    the merchant holds without an account."""
    entries = list(entries)
    by_account = balances(entries)
    received = {e.payment_id for e in entries if e.debit == PROVIDER_CLEARING}
    return sum(by_account.values()) == 0 and 0 <= refunded <= paid \
        and -by_account.get(order_account(order_id), 0) == paid - refunded \
        and all(payment_id in received for payment_id in captured)
