"""The finance desk's rules: business days, the daily settlement statement, its CSV, and the
reconciliation of the payment ledger against the provider's statement.

A business day is a calendar day in the merchant's time zone (Asia/Shanghai). Sales and
refunds of a day come from the payment ledger (what moved that day); commissions,
supplier payables, fees and the merchant's net come from the split postings of that day
(a split on its settlement day, a reversal on the day of its refund, subtracted)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

from siyu_kit.errors import FieldViolation, InvalidArgument

from services.order.domain import ledger
from services.order.domain.split import COMMISSION, PLATFORM, SUPPLIER, Figures

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
MAX_RANGE_DAYS = 92
DAY_RANGE_TOO_LONG = "DAY_RANGE_TOO_LONG"

SALES_KINDS = (ledger.ORDER_PAYMENT, ledger.BALANCE_PAYMENT)
REFUND_KINDS = (ledger.REFUND, ledger.BALANCE_REFUND, ledger.STOCK_REFUND)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a business day, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=BUSINESS_TZ)
    return start.astimezone(timezone.utc), (start + timedelta(days=1)).astimezone(timezone.utc)


def business_day(at: datetime) -> date:
    return at.astimezone(BUSINESS_TZ).date()


def parse_day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{name} is not a date", reason="INVALID_FIELDS",
                              violations=[FieldViolation(name, "a date, yyyy-mm-dd")]) from None


def day_range(from_text: str, to_text: str) -> list[date]:
    """The inclusive range of business days, at most MAX_RANGE_DAYS."""
    first, last = parse_day(from_text, "from_day"), parse_day(to_text, "to_day")
    days = (last - first).days + 1
    if days < 1 or days > MAX_RANGE_DAYS:
        raise InvalidArgument(f"a range of 1 to {MAX_RANGE_DAYS} days is allowed", reason=DAY_RANGE_TOO_LONG,
                              violations=[FieldViolation("to_day", f"within {MAX_RANGE_DAYS} days from from_day")])
    return [first + timedelta(days=n) for n in range(days)]


# ---- postings: a split or a reversal on its business day ---------------------------

SPLIT = "SPLIT"
REVERSAL = "REVERSAL"


@dataclass(frozen=True)
class Posting:
    """A split (added) or a reversal (subtracted) as the finance desk counts it."""
    posting_id: str  # the split id, or split id + refund id
    kind: str  # SPLIT or REVERSAL
    order_id: str
    day: date
    figures: Figures
    # supplier id → what profit sharing carries of its part (splits only)
    shared: dict[str, int] = field(default_factory=dict)

    @property
    def sign(self) -> int:
        return 1 if self.kind == SPLIT else -1


@dataclass(frozen=True)
class Movement:
    """One payment-ledger entry as the statement reads it."""
    kind: str
    amount: int
    our_id: str = ""  # the payment id, or the refund id of a refund


@dataclass(frozen=True)
class Statement:
    day: date
    sales: int = 0
    refunds: int = 0
    commissions: int = 0
    supplier_payables: int = 0
    platform_fee: int = 0
    provider_fee: int = 0
    net: int = 0
    shortfall: int = 0
    settled_orders: int = 0


def statement(day: date, movements: Iterable[Movement], postings: Iterable[Posting]) -> Statement:
    sales = refunds = 0
    for m in movements:
        if m.kind in SALES_KINDS:
            sales += m.amount
        elif m.kind in REFUND_KINDS:
            refunds += m.amount
    commissions = suppliers = platform = provider = net = shortfall = settled = 0
    for p in postings:
        s, f = p.sign, p.figures
        commissions += s * f.total(COMMISSION)
        suppliers += s * f.total(SUPPLIER)
        platform += s * f.total(PLATFORM)
        provider += s * f.provider_fee
        net += s * f.merchant_net
        shortfall += s * f.shortfall
        settled += p.kind == SPLIT
    return Statement(day=day, sales=sales, refunds=refunds, commissions=commissions, supplier_payables=suppliers,
                     platform_fee=platform, provider_fee=provider, net=net, shortfall=shortfall,
                     settled_orders=settled)


CSV_COLUMNS = ("day", "sales", "refunds", "commissions", "supplier_payables", "platform_fee", "provider_fee", "net",
               "shortfall", "settled_orders")


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def statements_csv(rows: Sequence[Statement]) -> bytes:
    """One row per day; amounts in yuan with two decimals (exact, from fen)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r.day.isoformat(), *(_yuan(getattr(r, c)) for c in CSV_COLUMNS[1:-1]), r.settled_orders])
    return out.getvalue().encode("utf-8")


# ---- the supplier side: what each supplier is owed --------------------------------

@dataclass(frozen=True)
class SupplierPayable:
    payable: int = 0
    shared: int = 0
    orders: int = 0

    @property
    def off_platform(self) -> int:
        return self.payable - self.shared


def supplier_payable(supplier_id: str, postings: Iterable[Posting]) -> SupplierPayable:
    payable = shared = orders = 0
    for p in postings:
        amount = p.figures.part(SUPPLIER, supplier_id)
        if not amount and p.kind == SPLIT:
            continue
        payable += p.sign * amount
        if p.kind == SPLIT:
            shared += p.shared.get(supplier_id, 0)
            orders += 1
    return SupplierPayable(payable=payable, shared=min(shared, max(payable, 0)), orders=orders)


# ---- reconciliation ------------------------------------------------------------------

PAYMENT = "PAYMENT"
REFUND = "REFUND"
MISSING_AT_PROVIDER = "MISSING_AT_PROVIDER"
MISSING_HERE = "MISSING_HERE"
AMOUNT_DIFFERS = "AMOUNT_DIFFERS"

# Ledger kinds that moved money at the provider: money in, and money back out.
PROVIDER_IN = (ledger.ORDER_PAYMENT, ledger.UNAPPLIED_PAYMENT)
PROVIDER_OUT = (ledger.REFUND, ledger.AUTO_REFUND, ledger.STOCK_REFUND)


@dataclass(frozen=True)
class ProviderRow:
    kind: str  # PAYMENT or REFUND
    our_id: str
    amount: int
    fee: int = 0


@dataclass(frozen=True)
class Mismatch:
    kind: str
    movement: str
    our_id: str
    ours: int
    providers: int


@dataclass(frozen=True)
class Reconciliation:
    our_payments: int
    our_refunds: int
    provider_payments: int
    provider_refunds: int
    provider_fees: int
    mismatches: tuple[Mismatch, ...]
    matched: int


def provider_movements(movements: Iterable[Movement]) -> dict[tuple[str, str], int]:
    """Our side, by (PAYMENT|REFUND, our id): what moved through the provider that day."""
    ours: dict[tuple[str, str], int] = {}
    for m in movements:
        if m.kind in PROVIDER_IN:
            key = (PAYMENT, m.our_id)
        elif m.kind in PROVIDER_OUT:
            key = (REFUND, m.our_id)
        else:
            continue
        ours[key] = ours.get(key, 0) + m.amount
    return ours


def reconcile(movements: Iterable[Movement], rows: Iterable[ProviderRow]) -> Reconciliation:
    ours = provider_movements(movements)
    theirs: dict[tuple[str, str], int] = {}
    fees = 0
    for r in rows:
        theirs[(r.kind, r.our_id)] = theirs.get((r.kind, r.our_id), 0) + r.amount
        fees += r.fee
    mismatches, matched = [], 0
    for key in sorted(set(ours) | set(theirs)):
        mine, provider = ours.get(key), theirs.get(key)
        if provider is None:
            mismatches.append(Mismatch(MISSING_AT_PROVIDER, key[0], key[1], mine or 0, 0))
        elif mine is None:
            mismatches.append(Mismatch(MISSING_HERE, key[0], key[1], 0, provider))
        elif mine != provider:
            mismatches.append(Mismatch(AMOUNT_DIFFERS, key[0], key[1], mine, provider))
        else:
            matched += 1

    def total(side: dict, kind: str) -> int:
        return sum(v for (k, _), v in side.items() if k == kind)

    return Reconciliation(our_payments=total(ours, PAYMENT), our_refunds=total(ours, REFUND),
                          provider_payments=total(theirs, PAYMENT), provider_refunds=total(theirs, REFUND),
                          provider_fees=fees, mismatches=tuple(mismatches), matched=matched)
