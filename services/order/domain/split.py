"""The payment split (分账) of a settled order: where its money goes, balanced to the fen.

When an order's after-sales window closes, its split states what the order brought in
(gross: the provider and balance parts paid, minus refunds so far) and who gets how much
of it: each supplier the supply price of the units kept (the SKU links at settlement
time), each distributor and guide their commission (amount − voided), the platform its
fee (floor(gross × platform_fee_bp / 10000)), the provider its fee on the provider part
(floor(provider part × provider_fee_bp / 10000)); the merchant keeps the rest. Costs never
make the merchant's net negative: what they exceed gross by is the merchant's shortfall,
stated as such. Always: gross + shortfall = Σ parts + provider fee + merchant net.

A refund after the split recomputes the figures on the order as the refund left it, with
the supply prices frozen in the split, and the difference is the reversal: every part
gives back exactly what it no longer gets, so the split and its reversals keep balancing.

Profit sharing follows WeChat Pay's rules where they matter: receivers get amounts (not
ratios), only of the provider-paid part, and together at most max_share_bp of it; what a
supplier is due beyond that stays a payable the merchant settles off-platform.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Iterable, Mapping, Sequence

from siyu_kit.aggregate import Aggregate

SUPPLIER = "SUPPLIER"
COMMISSION = "COMMISSION"
PLATFORM = "PLATFORM"

# Share execution at the provider.
SHARE_NONE = "NONE"  # nothing at the provider (paid with balance only)
# Waiting for the provider: the shares, or (with no receiver) the release of the whole
# provider part to the merchant, so nothing stays frozen until the provider's deadline.
SHARE_PENDING = "PENDING"
SHARE_PROCESSING = "PROCESSING"
SHARE_FINISHED = "FINISHED"

RETURN_PENDING = "PENDING"
RETURN_PROCESSING = "PROCESSING"
RETURN_SUCCESS = "SUCCESS"
RETURN_FAILED = "FAILED"

BP = 10_000


@dataclass(frozen=True)
class SplitSettings:
    """Per merchant. platform_fee_bp: what the platform takes of gross; provider_fee_bp:
    what the provider charges on the provider part (WeChat Pay: 0.6%); max_share_bp: the
    most profit sharing may carry of the provider part (WeChat Pay's default 30%)."""
    platform_fee_bp: int = 0
    provider_fee_bp: int = 60
    max_share_bp: int = 3000
    platform_account: str = ""

    def __post_init__(self) -> None:
        if not (0 <= self.platform_fee_bp <= BP and 0 <= self.provider_fee_bp <= BP and 0 <= self.max_share_bp <= BP):
            raise ValueError("split settings are basis points between 0 and 10000")


DEFAULT_SETTINGS = SplitSettings()


# ---- what the split reads of the settled order ------------------------------------

@dataclass(frozen=True)
class SettledLine:
    line_id: str
    sku_id: str
    quantity: int
    refunded_quantity: int = 0


@dataclass(frozen=True)
class OwedCommission:
    """One of the order's commissions (a line at a level): amount, and how much refunds voided."""
    line_id: str
    level: str
    beneficiary_id: str
    amount: int
    voided: int = 0

    @property
    def due(self) -> int:
        return max(0, self.amount - self.voided)


@dataclass(frozen=True)
class SettledOrder:
    """The order as the split sees it: its tender and refunds, lines and commissions."""
    order_id: str
    merchant_id: str
    payment_id: str
    balance_paid: int
    provider_paid: int
    balance_refunded: int = 0
    provider_refunded: int = 0
    lines: tuple[SettledLine, ...] = ()
    commissions: tuple[OwedCommission, ...] = ()

    @property
    def gross(self) -> int:
        return self.balance_paid + self.provider_paid - self.balance_refunded - self.provider_refunded

    @property
    def provider_net(self) -> int:
        return self.provider_paid - self.provider_refunded

    def refunded_units(self) -> dict[str, int]:
        return {line.line_id: line.refunded_quantity for line in self.lines}

    def covers(self, other: "SettledOrder") -> bool:
        """Whether this snapshot has seen at least every refund `other` has (refunds only grow)."""
        mine, voided = self.refunded_units(), self.voided()
        return (self.balance_refunded >= other.balance_refunded and self.provider_refunded >= other.provider_refunded
                and all(mine.get(k, 0) >= v for k, v in other.refunded_units().items())
                and all(voided.get(k, 0) >= v for k, v in other.voided().items()))

    def voided(self) -> dict[tuple[str, str, str], int]:
        out: dict[tuple[str, str, str], int] = defaultdict(int)
        for c in self.commissions:
            out[(c.line_id, c.level, c.beneficiary_id)] += c.voided
        return dict(out)


@dataclass(frozen=True)
class SupplyTerms:
    """A SKU's supplier and supply price (fen per unit) when the order settled."""
    supplier_id: str
    supply_price: int


@dataclass(frozen=True)
class SplitLine:
    line_id: str
    sku_id: str
    supplier_id: str
    supply_price: int
    quantity: int


def split_lines(order: SettledOrder, terms: Mapping[str, SupplyTerms]) -> tuple[SplitLine, ...]:
    """The order's lines with the supply terms of their SKUs frozen (no link: no supplier)."""
    out = []
    for line in order.lines:
        t = terms.get(line.sku_id)
        out.append(SplitLine(line.line_id, line.sku_id, t.supplier_id if t else "", t.supply_price if t else 0,
                             line.quantity))
    return tuple(out)


# ---- the figures -----------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    kind: str  # SUPPLIER, COMMISSION, PLATFORM
    party_id: str  # sup_, mem_/stf_ id; "" for the platform
    amount: int


@dataclass(frozen=True)
class Figures:
    gross: int
    provider_net: int
    parts: tuple[Part, ...]
    provider_fee: int
    merchant_net: int
    shortfall: int

    @property
    def costs(self) -> int:
        return sum(p.amount for p in self.parts) + self.provider_fee

    def balanced(self) -> bool:
        return self.gross + self.shortfall == self.costs + self.merchant_net

    def part(self, kind: str, party_id: str = "") -> int:
        return sum(p.amount for p in self.parts if p.kind == kind and p.party_id == party_id)

    def total(self, kind: str) -> int:
        return sum(p.amount for p in self.parts if p.kind == kind)


ZERO = Figures(0, 0, (), 0, 0, 0)


def _parts(amounts: Mapping[tuple[str, str], int]) -> tuple[Part, ...]:
    return tuple(Part(kind, party, amount) for (kind, party), amount in sorted(amounts.items()) if amount)


def figures(order: SettledOrder, lines: Sequence[SplitLine], settings: SplitSettings) -> Figures:
    """The split of `order` as its refunds stand, with the supply terms of `lines`."""
    gross, provider_net = order.gross, order.provider_net
    if gross < 0 or provider_net < 0:
        raise ValueError(f"order {order.order_id} was refunded more than it was paid")
    amounts: dict[tuple[str, str], int] = defaultdict(int)
    refunded = order.refunded_units()
    for line in lines:
        if line.supplier_id:
            kept = max(0, line.quantity - refunded.get(line.line_id, 0))
            amounts[(SUPPLIER, line.supplier_id)] += line.supply_price * kept
    for c in order.commissions:
        amounts[(COMMISSION, c.beneficiary_id)] += c.due
    amounts[(PLATFORM, "")] += gross * settings.platform_fee_bp // BP
    provider_fee = provider_net * settings.provider_fee_bp // BP
    costs = sum(amounts.values()) + provider_fee
    return Figures(gross=gross, provider_net=provider_net, parts=_parts(amounts), provider_fee=provider_fee,
                   merchant_net=max(0, gross - costs), shortfall=max(0, costs - gross))


def difference(before: Figures, after: Figures) -> Figures:
    """What each figure gave back going from `before` to `after` (a reversal). Every part
    only shrinks when refunds grow, so none is negative."""
    amounts: dict[tuple[str, str], int] = defaultdict(int)
    for p in before.parts:
        amounts[(p.kind, p.party_id)] += p.amount
    for p in after.parts:
        amounts[(p.kind, p.party_id)] -= p.amount
    # The merchant's net and shortfall move in opposite directions; state each change
    # so that the reversal balances: Δgross + Δshortfall = Σ Δparts + Δfee + Δnet.
    return Figures(gross=before.gross - after.gross, provider_net=before.provider_net - after.provider_net,
                   parts=_parts(amounts), provider_fee=before.provider_fee - after.provider_fee,
                   merchant_net=before.merchant_net - after.merchant_net,
                   shortfall=before.shortfall - after.shortfall)


def ledger_gross(balances: Mapping[str, int], order_account: str) -> int:
    """What the order's account of the payment ledger holds: credits minus debits."""
    return -balances.get(order_account, 0)


# ---- profit sharing ----------------------------------------------------------------

@dataclass(frozen=True)
class Share:
    """What one receiver gets through the provider's profit sharing."""
    kind: str  # SUPPLIER or PLATFORM
    party_id: str
    account: str  # the receiver's provider merchant id
    amount: int
    returned: int = 0

    @property
    def held(self) -> int:
        return self.amount - self.returned


def max_share(f: Figures, settings: SplitSettings) -> int:
    return f.provider_net * settings.max_share_bp // BP


def plan_shares(f: Figures, accounts: Mapping[str, str], settings: SplitSettings) -> tuple[Share, ...]:
    """Receivers and amounts: the platform fee first (if the platform has an account), then
    suppliers with a provider account by id, each up to what is left of the maximum
    share. `accounts`: supplier id → provider merchant id (absent: paid off-platform)."""
    left = max_share(f, settings)
    out = []
    due = [(PLATFORM, "", settings.platform_account, f.part(PLATFORM))] if settings.platform_account else []
    due += [(SUPPLIER, p.party_id, accounts[p.party_id], p.amount)
            for p in f.parts if p.kind == SUPPLIER and accounts.get(p.party_id)]
    for kind, party, account, amount in due:
        take = min(amount, left)
        if take > 0:
            out.append(Share(kind, party, account, take))
            left -= take
    return tuple(out)


def shared_with(shares: Iterable[Share], kind: str, party_id: str) -> int:
    return sum(s.held for s in shares if s.kind == kind and s.party_id == party_id)


@dataclass(frozen=True)
class ShareReturn:
    """Money a receiver gives back after a refund of a shared order, keyed by the refund."""
    return_id: str
    refund_id: str
    kind: str
    party_id: str
    account: str
    amount: int
    state: str = RETURN_PENDING


@dataclass(frozen=True)
class Reversal:
    refund_id: str
    at: datetime
    figures: Figures


# ---- the split record (aggregate) --------------------------------------------------

@dataclass(frozen=True)
class SplitWritten:
    at: datetime


@dataclass(frozen=True)
class SplitReversed:
    at: datetime
    refund_id: str


@dataclass(frozen=True)
class ShareMoved:
    at: datetime


def split_id_of(order_id: str) -> str:
    """One split per order: its id follows from the order's."""
    return "spl_" + order_id.removeprefix("ord_")


@dataclass
class SplitRecord(Aggregate):
    id: str
    merchant_id: str
    order_id: str
    payment_id: str
    settled_at: datetime
    settings: SplitSettings
    lines: tuple[SplitLine, ...]
    # The order as the split last saw it (its refunds), the figures at the split and now.
    seen: SettledOrder
    initial: Figures
    current: Figures
    ledger_matches: bool
    share_state: str = SHARE_NONE
    shares: tuple[Share, ...] = ()
    # The supplier accounts the shares were planned with (supplier id → provider account).
    accounts: dict[str, str] = field(default_factory=dict)
    reversals: tuple[Reversal, ...] = ()
    returns: tuple[ShareReturn, ...] = ()
    version: int = 1

    @classmethod
    def write(cls, order: SettledOrder, terms: Mapping[str, SupplyTerms], settings: SplitSettings,
              accounts: Mapping[str, str], ledger_gross: int, settled_at: datetime) -> "SplitRecord":
        lines = split_lines(order, terms)
        f = figures(order, lines, settings)
        shares = plan_shares(f, accounts, settings) if f.provider_net > 0 else ()
        record = cls(id=split_id_of(order.order_id), merchant_id=order.merchant_id, order_id=order.order_id,
                     payment_id=order.payment_id, settled_at=settled_at, settings=settings, lines=lines, seen=order,
                     initial=f, current=f, ledger_matches=ledger_gross == f.gross,
                     share_state=SHARE_PENDING if f.provider_net > 0 else SHARE_NONE, shares=shares,
                     accounts={k: v for k, v in accounts.items() if v})
        record.record(SplitWritten(at=settled_at))
        return record

    def reverse(self, refund_id: str, order: SettledOrder, at: datetime) -> Reversal | None:
        """Reverses what a refund after the split takes back, once per refund: None when
        the refund was reversed already, or `order` shows nothing the split has not seen
        (a refund before the split, or an older snapshot arriving late)."""
        if any(r.refund_id == refund_id for r in self.reversals):
            return None
        if not order.covers(self.seen) or self.seen.covers(order):
            return None
        after = figures(order, self.lines, self.settings)
        reversal = Reversal(refund_id=refund_id, at=at, figures=difference(self.current, after))
        self.reversals += (reversal,)
        self.current, self.seen = after, order
        self.returns += self._returns_for(refund_id, after)
        self.record(SplitReversed(at=at, refund_id=refund_id))
        return reversal

    def _returns_for(self, refund_id: str, after: Figures) -> tuple[ShareReturn, ...]:
        """What each receiver gives back so that what it holds is no more than a new plan on
        the figures after the refund would give it."""
        if not self.shares:
            return ()
        target = {(s.kind, s.party_id): s.amount for s in plan_shares(after, self.accounts, self.settings)}
        pending = defaultdict(int)
        for r in self.returns:
            if r.state != RETURN_FAILED:
                pending[(r.kind, r.party_id)] += r.amount
        out = []
        for n, s in enumerate(self.shares):
            give = s.amount - pending[(s.kind, s.party_id)] - target.get((s.kind, s.party_id), 0)
            if give > 0:
                out.append(ShareReturn(return_id=f"{refund_id}_{n}", refund_id=refund_id, kind=s.kind,
                                       party_id=s.party_id, account=s.account, amount=give))
        return tuple(out)

    @property
    def open_returns(self) -> tuple[ShareReturn, ...]:
        return tuple(r for r in self.returns if r.state in (RETURN_PENDING, RETURN_PROCESSING))

    def share_moved(self, state: str, at: datetime) -> bool:
        """The provider's answer to the share request; FINISHED stays FINISHED."""
        if self.share_state in (SHARE_NONE, SHARE_FINISHED) or state == self.share_state:
            return False
        self.share_state = state
        self.record(ShareMoved(at=at))
        return True

    def return_moved(self, return_id: str, state: str, at: datetime) -> bool:
        changed = False
        moved = []
        for r in self.returns:
            if r.return_id == return_id and r.state != state and r.state not in (RETURN_SUCCESS, RETURN_FAILED):
                r, changed = replace(r, state=state), True
            moved.append(r)
        if changed:
            self.returns = tuple(moved)
            self.shares = tuple(replace(s, returned=sum(r.amount for r in self.returns if r.state == RETURN_SUCCESS
                                                        and (r.kind, r.party_id) == (s.kind, s.party_id)))
                                for s in self.shares)
            self.record(ShareMoved(at=at))
        return changed

    def supplier_figures(self, supplier_id: str) -> tuple[int, int]:
        """(owed now, of it carried by profit sharing) for one supplier."""
        owed = self.current.part(SUPPLIER, supplier_id)
        return owed, min(owed, shared_with(self.shares, SUPPLIER, supplier_id))

    @property
    def needs_work(self) -> bool:
        return self.share_state in (SHARE_PENDING, SHARE_PROCESSING) or bool(self.open_returns)
