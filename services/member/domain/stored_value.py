"""Stored value (储值): recharge packages, and a member's balance account with its ledger.

A balance account keeps the member's available principal and bonus, the principal and
bonus held for unpaid orders (per order), what each order paid with balance spent and
got back (per order), the recharges that credited it, and the causes it has applied.
Every movement is decided here from the account as read and written by the store as ONE
conditional update: the counters it takes from must still hold the amount, the state it
relies on (the order's hold, the order's refunds so far, the recharge's state) must still
be as read, and its cause must not have been applied. A lost guard means another
movement came first: the use case reads again and decides again. The same update keeps
the ledger entry the movement owes (balance = the sum of the ledger's entries, to the
fen) and its event.

Principal and bonus move in proportion: a hold takes them as the available balance holds
them, and the refunds of an order return them in the proportion the order spent them,
cumulatively, so that once everything is refunded exactly what was spent of each has
come back. Integer fen are split by the largest remainder (a tie goes to the principal).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from siyu_kit.aggregate import Aggregate, StateMachine
from siyu_kit.errors import Violations

# Movement kinds; a cause is (kind, the id of what caused it).
RECHARGE, HOLD, RELEASE, SPEND, REFUND, RECHARGE_REFUND, RECHARGE_REFUNDED = (
    "RECHARGE", "HOLD", "RELEASE", "SPEND", "REFUND", "RECHARGE_REFUND", "RECHARGE_REFUNDED")
# The movements that change the balance, and the ledger entry kind each one writes.
LEDGER_KIND = {RECHARGE: "RECHARGE", SPEND: "ORDER_PAYMENT", REFUND: "ORDER_REFUND",
               RECHARGE_REFUND: "RECHARGE_REFUND"}

CREDITED, REFUNDING, REFUNDED = "CREDITED", "REFUNDING", "REFUNDED"

MIN_PRICE = 100  # ¥1
MAX_AMOUNT = 100_000_000  # ¥1,000,000 per package price or bonus
NAME_MAX = 40


def cause_key(kind: str, source_id: str) -> str:
    """A cause as a map key: source ids are validated ids (no "." and no "$")."""
    return f"{kind}_{source_id}"


def split(amount: int, principal: int, bonus: int) -> tuple[int, int]:
    """`amount` as (principal, bonus) in the proportion principal : bonus, by the largest
    remainder (a tie goes to the principal). Each part stays within its side whenever
    amount ≤ principal + bonus."""
    whole = principal + bonus
    if whole <= 0 or amount <= 0:
        return 0, 0
    p, rest_p = divmod(amount * principal, whole)
    rest_b = (amount * bonus) % whole
    if rest_p and rest_p >= rest_b:
        p += 1
    return p, amount - p


@dataclass(frozen=True)
class Part:
    principal: int = 0
    bonus: int = 0

    @property
    def amount(self) -> int:
        return self.principal + self.bonus


@dataclass(frozen=True)
class OrderSpend:
    """What an order paid with balance spent, and what its refunds returned so far."""
    spent_principal: int
    spent_bonus: int
    refunded_principal: int = 0
    refunded_bonus: int = 0

    @property
    def spent(self) -> int:
        return self.spent_principal + self.spent_bonus

    @property
    def refunded(self) -> int:
        return self.refunded_principal + self.refunded_bonus


@dataclass(frozen=True)
class Recharge:
    """A paid recharge order and what it credited."""
    id: str
    order_id: str
    package_id: str
    principal: int
    bonus: int
    state: str
    created_ms: int
    refund_key: str = ""
    refund_reason: str = ""
    refund_id: str = ""  # the order service's refund, once it confirmed
    refund_requested_ms: int = 0


@dataclass(frozen=True)
class Refused(Exception):
    """The movement is not allowed; `reason` is the word declared in errors.proto."""
    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Movement:
    """One change of an account: deltas, the guards the store puts in its filter, and the
    answer (`outcome`) a replay of the same cause gets."""
    kind: str
    source_id: str
    member_id: str
    principal: int = 0  # available principal delta
    bonus: int = 0
    held_principal: int = 0
    held_bonus: int = 0
    order_id: str = ""
    outcome: Part = Part()
    set_hold: Part | None = None  # holds[order_id] must be absent, then set
    drop_hold: Part | None = None  # holds[order_id] must be exactly this, then removed
    no_hold: bool = False  # holds[order_id] must be absent (a release that finds none)
    spend: Part | None = None  # orders[order_id] must be absent, then set
    refund_from: OrderSpend | None = None  # orders[order_id]'s refunds must be as read, then grow
    recharge: Recharge | None = None  # recharges[id] set to this
    recharge_was: str = ""  # "": the recharge must be absent; else the state it must be in
    not_after: tuple[str, ...] = ()  # causes that must not have been applied
    after: tuple[str, ...] = ()  # causes that must have been applied

    @property
    def cause(self) -> str:
        return cause_key(self.kind, self.source_id)

    @property
    def ledger_kind(self) -> str:
        return LEDGER_KIND.get(self.kind, "")


@dataclass
class BalanceBook:
    """A member's balance account as read (all zero when it does not exist yet)."""
    merchant_id: str
    member_id: str
    principal: int = 0
    bonus: int = 0
    held_principal: int = 0
    held_bonus: int = 0
    holds: dict[str, Part] = field(default_factory=dict)
    orders: dict[str, OrderSpend] = field(default_factory=dict)
    recharges: dict[str, Recharge] = field(default_factory=dict)
    done: dict[str, Part] = field(default_factory=dict)

    @property
    def available(self) -> int:
        return self.principal + self.bonus

    @property
    def held(self) -> int:
        return self.held_principal + self.held_bonus

    @property
    def total(self) -> int:
        """What the ledger's entries add up to: available and held."""
        return self.available + self.held

    def outcome(self, kind: str, source_id: str) -> Part | None:
        """What the cause did when it was applied; None when it has not been."""
        return self.done.get(cause_key(kind, source_id))

    def recharge_of_order(self, order_id: str) -> Recharge | None:
        return next((r for r in self.recharges.values() if r.order_id == order_id), None)

    # ---- movements ------------------------------------------------------------------------
    def credit(self, order_id: str, recharge_id: str, package_id: str, principal: int, bonus: int,
               now_ms: int) -> Movement:
        """A paid recharge order: principal and bonus credited, the recharge recorded."""
        return Movement(RECHARGE, order_id, self.member_id, principal=principal, bonus=bonus, order_id=order_id,
                        outcome=Part(principal, bonus),
                        recharge=Recharge(recharge_id, order_id, package_id, principal, bonus, CREDITED, now_ms))

    def hold(self, order_id: str, max_amount: int) -> Movement | None:
        """Holds up to `max_amount` for the order, principal and bonus in proportion;
        None when nothing is available."""
        if self.outcome(RELEASE, order_id) is not None or self.outcome(SPEND, order_id) is not None:
            raise Refused("BALANCE_HOLD_ENDED", f"order {order_id} released or spent its balance hold already")
        amount = min(max_amount, self.available)
        if amount <= 0:
            return None
        part = Part(*split(amount, self.principal, self.bonus))
        return Movement(HOLD, order_id, self.member_id, principal=-part.principal, bonus=-part.bonus,
                        held_principal=part.principal, held_bonus=part.bonus, order_id=order_id, outcome=part,
                        set_hold=part, not_after=(cause_key(RELEASE, order_id), cause_key(SPEND, order_id)))

    def capture(self, order_id: str) -> Movement:
        """The paid order spends its hold."""
        part = self.holds.get(order_id)
        if part is None:
            raise Refused("BALANCE_NOT_HELD", f"order {order_id} holds no balance")
        return Movement(SPEND, order_id, self.member_id, held_principal=-part.principal, held_bonus=-part.bonus,
                        order_id=order_id, outcome=part, drop_hold=part, spend=part,
                        not_after=(cause_key(RELEASE, order_id),))

    def release(self, order_id: str) -> Movement | None:
        """The unpaid order's hold back to the available balance; when it holds nothing, a
        marker so a hold arriving later is refused. None once the order spent its hold."""
        if self.outcome(SPEND, order_id) is not None:
            return None
        part = self.holds.get(order_id)
        if part is None:
            return Movement(RELEASE, order_id, self.member_id, order_id=order_id, no_hold=True,
                            not_after=(cause_key(SPEND, order_id),))
        return Movement(RELEASE, order_id, self.member_id, principal=part.principal, bonus=part.bonus,
                        held_principal=-part.principal, held_bonus=-part.bonus, order_id=order_id, outcome=part,
                        drop_hold=part, not_after=(cause_key(SPEND, order_id),))

    def refund(self, order_id: str, refund_id: str, amount: int) -> Movement:
        """`amount` of what the order spent back to the balance: cumulatively in the
        proportion it spent principal and bonus."""
        spend = self.orders.get(order_id)
        if spend is None or spend.refunded + amount > spend.spent:
            spent, back = (spend.spent, spend.refunded) if spend else (0, 0)
            raise Refused("BALANCE_REFUND_TOO_LARGE",
                          f"order {order_id} spent {spent} of balance and got {back} back; {amount} is too much")
        total_p, _ = split(spend.refunded + amount, spend.spent_principal, spend.spent_bonus)
        p = total_p - spend.refunded_principal
        b = amount - p
        return Movement(REFUND, refund_id, self.member_id, principal=p, bonus=b, order_id=order_id,
                        outcome=Part(p, b), refund_from=spend)

    def refund_recharge(self, recharge_id: str, key: str, reason: str, now_ms: int) -> Movement:
        """Finance refunds an unspent recharge: its principal and bonus leave the balance
        and the recharge waits for the provider refund (REFUNDING)."""
        recharge = self.recharges.get(recharge_id)
        if recharge is None:
            raise Refused("RECHARGE_NOT_FOUND", f"no recharge {recharge_id}")
        if recharge.state != CREDITED:
            raise Refused("RECHARGE_ALREADY_REFUNDED", f"recharge {recharge_id} is {recharge.state.lower()}")
        if self.principal < recharge.principal or self.bonus < recharge.bonus:
            raise Refused("BALANCE_RECHARGE_SPENT",
                          f"the balance holds {self.principal} principal and {self.bonus} bonus; the recharge "
                          f"credited {recharge.principal} and {recharge.bonus}")
        return Movement(RECHARGE_REFUND, recharge_id, self.member_id, principal=-recharge.principal,
                        bonus=-recharge.bonus, order_id=recharge.order_id,
                        outcome=Part(recharge.principal, recharge.bonus),
                        recharge=replace(recharge, state=REFUNDING, refund_key=key, refund_reason=reason,
                                         refund_requested_ms=now_ms),
                        recharge_was=CREDITED, after=(cause_key(RECHARGE, recharge.order_id),))

    def recharge_refunded(self, recharge_id: str, refund_id: str) -> Movement | None:
        """The order service refunded the recharge order: REFUNDED. None unless REFUNDING."""
        recharge = self.recharges.get(recharge_id)
        if recharge is None or recharge.state != REFUNDING:
            return None
        return Movement(RECHARGE_REFUNDED, recharge_id, self.member_id, order_id=recharge.order_id,
                        recharge=replace(recharge, state=REFUNDED, refund_id=refund_id), recharge_was=REFUNDING)

    # ---- applying (the fake and the property tests apply movements the way the store does)
    def admits(self, m: Movement) -> bool:
        """Whether the movement's guards hold on this account."""
        if m.cause in self.done or any(c in self.done for c in m.not_after):
            return False
        if not all(c in self.done for c in m.after):
            return False
        for name, delta in (("principal", m.principal), ("bonus", m.bonus), ("held_principal", m.held_principal),
                            ("held_bonus", m.held_bonus)):
            if getattr(self, name) + delta < 0:
                return False
        o = m.order_id
        if (m.set_hold is not None or m.no_hold) and o in self.holds:
            return False
        if m.drop_hold is not None and self.holds.get(o) != m.drop_hold:
            return False
        if m.spend is not None and o in self.orders:
            return False
        if m.refund_from is not None:
            now = self.orders.get(o)
            if now is None or (now.refunded_principal, now.refunded_bonus) != (
                    m.refund_from.refunded_principal, m.refund_from.refunded_bonus):
                return False
        if m.recharge is not None:
            now = self.recharges.get(m.recharge.id)
            if (now.state if now else "") != m.recharge_was:
                return False
        return True

    def apply(self, m: Movement) -> None:
        self.principal += m.principal
        self.bonus += m.bonus
        self.held_principal += m.held_principal
        self.held_bonus += m.held_bonus
        o = m.order_id
        if m.drop_hold is not None:
            del self.holds[o]
        if m.set_hold is not None:
            self.holds[o] = m.set_hold
        if m.spend is not None:
            self.orders[o] = OrderSpend(m.spend.principal, m.spend.bonus)
        if m.refund_from is not None:
            now = self.orders[o]
            self.orders[o] = replace(now, refunded_principal=now.refunded_principal + m.principal,
                                     refunded_bonus=now.refunded_bonus + m.bonus)
        if m.recharge is not None:
            self.recharges[m.recharge.id] = m.recharge
        self.done[m.cause] = m.outcome

    def problems(self) -> list[str]:
        """What is wrong inside the account (empty: its counters agree with its parts)."""
        out = []
        for name in ("principal", "bonus", "held_principal", "held_bonus"):
            if getattr(self, name) < 0:
                out.append(f"{name} < 0")
        if self.held_principal != sum(h.principal for h in self.holds.values()):
            out.append("held principal != holds")
        if self.held_bonus != sum(h.bonus for h in self.holds.values()):
            out.append("held bonus != holds")
        for order_id, spend in self.orders.items():
            if not (0 <= spend.refunded_principal <= spend.spent_principal
                    and 0 <= spend.refunded_bonus <= spend.spent_bonus):
                out.append(f"order {order_id} got back more than it spent")
        return out


@dataclass(frozen=True)
class BalanceEntry:
    """One ledger entry: a movement that changed the balance (principal and bonus signed)."""
    id: str
    member_id: str
    kind: str  # RECHARGE, ORDER_PAYMENT, ORDER_REFUND, RECHARGE_REFUND
    principal: int
    bonus: int
    cause_id: str
    order_id: str
    created_at: datetime


def entry_for(m: Movement, entry_id: str, now: datetime) -> BalanceEntry | None:
    """The ledger entry the movement owes (None: it changes only how the balance is held)."""
    kind = m.ledger_kind
    if not kind:
        return None
    principal = m.principal + m.held_principal
    bonus = m.bonus + m.held_bonus
    return BalanceEntry(entry_id, m.member_id, kind, principal, bonus, m.source_id, m.order_id, now)


def ledger_problems(book: BalanceBook, entries: list[BalanceEntry]) -> list[str]:
    """The audit: the balance (available and held) equals the sum of the ledger, to the fen."""
    principal = sum(e.principal for e in entries)
    bonus = sum(e.bonus for e in entries)
    out = []
    if principal != book.principal + book.held_principal:
        out.append(f"principal {book.principal + book.held_principal} != ledger {principal}")
    if bonus != book.bonus + book.held_bonus:
        out.append(f"bonus {book.bonus + book.held_bonus} != ledger {bonus}")
    return out + book.problems()


# ---- recharge packages ---------------------------------------------------------------------

class PackageState(str, Enum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


PACKAGE_MACHINE = StateMachine("recharge package", {PackageState.ACTIVE: {PackageState.INACTIVE},
                                                    PackageState.INACTIVE: {PackageState.ACTIVE}},
                               refused_reason="STATUS_TRANSITION")


def check_package(v: Violations, name: str, price: int, bonus: int) -> None:
    v.check(bool(name.strip()) and len(name) <= NAME_MAX, "name", f"1 to {NAME_MAX} characters")
    v.check(MIN_PRICE <= price <= MAX_AMOUNT, "price", f"{MIN_PRICE} to {MAX_AMOUNT} fen (at least ¥1)")
    v.check(0 <= bonus <= MAX_AMOUNT, "bonus", f"0 to {MAX_AMOUNT} fen")


@dataclass
class RechargePackage(Aggregate):
    """充100送20: pay `price`, get it as principal and `bonus` on top."""
    id: str
    merchant_id: str
    version: int
    name: str
    price: int
    bonus: int
    state: PackageState
    idempotency_key: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def create(cls, package_id: str, merchant_id: str, name: str, price: int, bonus: int, key: str,
               now: datetime) -> "RechargePackage":
        # Times to the millisecond, as they are stored: a replay answers the same package.
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        return cls(package_id, merchant_id, 1, name.strip(), price, bonus, PackageState.ACTIVE, key, now, now)

    def set_state(self, target: PackageState, now: datetime) -> bool:
        """Moves to `target`; False when it is there already."""
        if self.state == target:
            return False
        PACKAGE_MACHINE.require(self.state, target)
        self.state = target
        self.updated_at = now
        return True
