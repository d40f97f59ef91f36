"""A member's points account: the counters that answer balance, available, frozen, held
and owed without reading the ledger, the lots that say what expires when, and the
movements that change them.

Every movement is decided here from the account as read and sent by the repository as ONE
conditional update: the counters it decreases must still hold the amount (`available >=
n`, each lot it takes from), the state it relies on must still be there (the order's
hold, its frozen lot), and its cause must not have been applied (`done.<cause>`). The
same update records the ledger entry it owes and its event; the entry is then stored
(unique per cause) and the debt cleared. A lost guard means someone else moved first:
the use case reads again and decides again.

Counters: balance = available + frozen + held (never negative); owed is apart (points
taken back that the member had already spent), paid off first by any points that come
in. Available points sit in lots keyed by their expiry date ("e20261231"), spent oldest
first; frozen points are per order until its after-sales window closes; held points are
per unpaid order.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from services.member.domain.points import PointsEntry
from services.member.domain.points_settings import NEVER

# Movement kinds (the third part of a ledger entry's cause).
EARN, HOLD, SPEND, RELEASE, UNFREEZE, REVERSE, EXPIRE, ADJUST = (
    "EARN", "HOLD", "SPEND", "RELEASE", "UNFREEZE", "REVERSE", "EXPIRE", "ADJUST")
KINDS = (EARN, HOLD, SPEND, RELEASE, UNFREEZE, REVERSE, EXPIRE, ADJUST)
NEVER_KEY = "e99991231"


def lot_key(earned_at: datetime, time_zone: str, expiry_years: int) -> str:
    """The lot an earning at `earned_at` goes to: the last day it is valid, in the
    merchant's calendar."""
    if expiry_years == NEVER:
        return NEVER_KEY
    local = earned_at.astimezone(ZoneInfo(time_zone))
    return f"e{local.year + expiry_years:04d}1231"


def lot_expires_at(key: str, time_zone: str) -> datetime | None:
    """The instant a lot expires: the end of its last day (None: never)."""
    if key == NEVER_KEY:
        return None
    last = date(int(key[1:5]), int(key[5:7]), int(key[7:9]))
    start = datetime(last.year, last.month, last.day, tzinfo=ZoneInfo(time_zone)) + timedelta(days=1)
    return start.astimezone(timezone.utc)


def lot_expired(key: str, time_zone: str, now: datetime) -> bool:
    at = lot_expires_at(key, time_zone)
    return at is not None and at <= now


def cause_key(source: str, source_id: str, kind: str) -> str:
    """A map key for a cause: safe for any source id (never a "." or a "$")."""
    return "c" + hashlib.sha256(f"{source}|{source_id}|{kind}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FrozenLot:
    """An order's earned points, frozen until `unfreeze_ms` (0: the order is not completed yet)."""
    points: int
    key: str
    unfreeze_ms: int = 0


@dataclass(frozen=True)
class Hold:
    """Points an unpaid order holds, and the lots they were taken from."""
    points: int
    takes: dict[str, int]


@dataclass(frozen=True)
class Cause:
    source: str  # ORDER, REFUND, ADJUSTMENT, EXPIRY
    source_id: str
    kind: str

    @property
    def key(self) -> str:
        return cause_key(self.source, self.source_id, self.kind)


@dataclass(frozen=True)
class Movement:
    """One change of an account, as deltas, guards and the ledger entry it owes."""
    cause: Cause
    member_id: str
    points: int = 0  # balance
    available: int = 0
    frozen: int = 0
    held: int = 0
    owed: int = 0
    lots: dict[str, int] = field(default_factory=dict)  # lot key → delta (negative: guarded)
    set_frozen: dict[str, FrozenLot] = field(default_factory=dict)  # order id → lot
    drop_frozen: dict[str, int] = field(default_factory=dict)  # order id → points it must still hold
    take_frozen: dict[str, int] = field(default_factory=dict)  # order id → points taken (lot stays)
    set_hold: dict[str, Hold] = field(default_factory=dict)
    drop_hold: dict[str, int] = field(default_factory=dict)  # order id → points it must hold
    # Causes that must not have been applied (a hold after its order's release).
    not_after: tuple[Cause, ...] = ()
    growth: int = 0
    gross: int = 0  # EARN: the points earned before paying off what was owed; REVERSE: taken back
    returned: int = 0  # REVERSE: spent points returned
    refunded: int = 0  # REVERSE: the refunded amount (fen) the points were taken back for
    order_id: str = ""
    reason: str = ""
    actor_id: str = ""
    # Expiry dates (epoch ms) the account's due time must come down to.
    due_ms: int = 0
    unfreeze_due_ms: int = 0

    @property
    def is_noop(self) -> bool:
        return not (self.points or self.available or self.frozen or self.held or self.owed or self.lots
                    or self.set_frozen or self.drop_frozen or self.set_hold or self.drop_hold or self.take_frozen)


@dataclass(frozen=True)
class Refused(Exception):
    """The movement is not allowed; `reason` is the word declared in errors.proto."""
    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class PointsBook:
    """A member's account as read (all zero when it does not exist yet)."""
    merchant_id: str
    member_id: str
    balance: int = 0
    available: int = 0
    frozen: int = 0
    held: int = 0
    owed: int = 0
    lots: dict[str, int] = field(default_factory=dict)
    frozen_lots: dict[str, FrozenLot] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    # ---- what may be spent ---------------------------------------------------------------
    def spendable(self, time_zone: str, now: datetime) -> int:
        """Available points in lots that have not expired (the expiry job may lag)."""
        return sum(n for k, n in self.lots.items() if n > 0 and not lot_expired(k, time_zone, now))

    def _take(self, points: int, time_zone: str, now: datetime, expired_too: bool = False) -> dict[str, int]:
        """Points from the lots that expire first; {} when they do not hold enough."""
        takes: dict[str, int] = {}
        left = points
        for key in sorted(self.lots):
            if left == 0:
                break
            if self.lots[key] <= 0 or (not expired_too and lot_expired(key, time_zone, now)):
                continue
            n = min(left, self.lots[key])
            takes[key] = n
            left -= n
        return takes if left == 0 else {}

    def applied(self, cause: Cause) -> bool:
        return cause.key in self.done

    # ---- movements ------------------------------------------------------------------------
    def earn(self, order_id: str, points: int, growth: int, key: str) -> Movement:
        """An order's points, frozen; what the member owes is paid off first."""
        pay = min(self.owed, points)
        rest = points - pay
        return Movement(Cause("ORDER", order_id, EARN), self.member_id, points=rest, frozen=rest, owed=-pay,
                        set_frozen={order_id: FrozenLot(rest, key)} if rest else {}, growth=growth, gross=points,
                        order_id=order_id)

    def unfreeze(self, order_id: str, now_ms: int) -> Movement | None:
        """The order's frozen points become available once its window has closed; None
        when there is nothing (left) to unfreeze or the window is still open."""
        lot = self.frozen_lots.get(order_id)
        if lot is None or not lot.unfreeze_ms or lot.unfreeze_ms > now_ms:
            return None
        return Movement(Cause("ORDER", order_id, UNFREEZE), self.member_id, available=lot.points,
                        frozen=-lot.points, lots={lot.key: lot.points}, drop_frozen={order_id: lot.points},
                        order_id=order_id)

    def hold(self, order_id: str, points: int, time_zone: str, now: datetime) -> Movement:
        if order_id in self.holds:
            raise Refused("POINTS_HOLD_EXISTS", f"order {order_id} already holds points")
        takes = self._take(points, time_zone, now)
        if not takes:
            raise Refused("POINTS_INSUFFICIENT",
                          f"{points} points asked, {self.spendable(time_zone, now)} available")
        return Movement(Cause("ORDER", order_id, HOLD), self.member_id, available=-points, held=points,
                        lots={k: -n for k, n in takes.items()}, set_hold={order_id: Hold(points, takes)},
                        not_after=(Cause("ORDER", order_id, RELEASE), Cause("ORDER", order_id, SPEND)),
                        order_id=order_id)

    def spend(self, order_id: str) -> Movement:
        hold = self.holds.get(order_id)
        if hold is None:
            raise Refused("POINTS_NOT_HELD", f"order {order_id} holds no points")
        return Movement(Cause("ORDER", order_id, SPEND), self.member_id, points=-hold.points, held=-hold.points,
                        drop_hold={order_id: hold.points}, not_after=(Cause("ORDER", order_id, RELEASE),),
                        order_id=order_id)

    def release(self, order_id: str, due_ms: int = 0) -> Movement:
        """The hold's points back to the lots they came from (none held: a marker only,
        so a hold arriving after the release is refused)."""
        hold = self.holds.get(order_id)
        if hold is None:
            return Movement(Cause("ORDER", order_id, RELEASE), self.member_id,
                            not_after=(Cause("ORDER", order_id, SPEND),), order_id=order_id)
        return Movement(Cause("ORDER", order_id, RELEASE), self.member_id, available=hold.points,
                        held=-hold.points, lots=dict(hold.takes), drop_hold={order_id: hold.points},
                        not_after=(Cause("ORDER", order_id, SPEND),), order_id=order_id, due_ms=due_ms)

    def reverse(self, refund_id: str, order_id: str, take_back: int, give_back: int, key_now: str,
                time_zone: str, now: datetime, refunded: int = 0, growth_back: int = 0) -> Movement:
        """A refund: earned points of the refunded part taken back (from the order's frozen
        lot first, then from available points, the rest recorded as owed) and spent points
        returned (paying off what is owed first, the rest a new lot); `growth_back`, the
        growth of the refunded part, leaves the member's growth (growth_to_reverse says how
        much)."""
        lot = self.frozen_lots.get(order_id)
        from_lot = min(take_back, lot.points if lot else 0)
        rest = take_back - from_lot
        netted = min(rest, give_back)
        rest, give = rest - netted, give_back - netted
        spendable = sum(n for n in self.lots.values() if n > 0)
        from_avail = min(rest, spendable)
        short = rest - from_avail
        takes = self._take(from_avail, time_zone, now, expired_too=True) if from_avail else {}
        pay = min(give, self.owed)
        to_avail = give - pay
        lots = {k: -n for k, n in takes.items()}
        if to_avail:
            lots[key_now] = lots.get(key_now, 0) + to_avail
        drop, take = {}, {}
        if lot and from_lot:
            if from_lot == lot.points:
                drop[order_id] = lot.points
            else:
                take[order_id] = from_lot
        return Movement(Cause("REFUND", refund_id, REVERSE), self.member_id,
                        points=-from_lot - from_avail + to_avail, available=-from_avail + to_avail,
                        frozen=-from_lot, owed=short - pay, lots={k: d for k, d in lots.items() if d},
                        drop_frozen=drop, take_frozen=take, order_id=order_id,
                        gross=take_back, returned=give_back, refunded=refunded, growth=-growth_back)

    def take_back(self, cause: Cause, points: int, time_zone: str, now: datetime) -> Movement:
        """Points credited for a cause that no longer holds (a referral whose first order was
        refunded in full): from the available points, expiring first (expired ones too),
        the rest recorded as owed, paid off first by the next points that come in."""
        from_avail = min(points, sum(n for n in self.lots.values() if n > 0))
        takes = self._take(from_avail, time_zone, now, expired_too=True) if from_avail else {}
        return Movement(cause, self.member_id, points=-from_avail, available=-from_avail, owed=points - from_avail,
                        lots={k: -n for k, n in takes.items()}, gross=points)

    def expire(self, key: str) -> Movement | None:
        points = self.lots.get(key, 0)
        if points <= 0:
            return None
        # The cause names the account's state (how many causes it applied), so copies of
        # the job deciding on the same state collide, and points that come back to an
        # expired lot later expire under a cause of their own.
        return Movement(Cause("EXPIRY", f"{self.member_id}:{key}:{len(self.done)}", EXPIRE), self.member_id,
                        points=-points,
                        available=-points, lots={key: -points})

    def adjust(self, key: str, delta: int, reason: str, actor_id: str, key_now: str, time_zone: str,
               now: datetime) -> Movement:
        """Staff's correction: points in (paying off what is owed first) or out of the
        available points (never more than there are)."""
        cause = Cause("ADJUSTMENT", f"{self.member_id}:{key}", ADJUST)
        if delta >= 0:
            pay = min(delta, self.owed)
            rest = delta - pay
            return Movement(cause, self.member_id, points=rest, available=rest, owed=-pay,
                            lots={key_now: rest} if rest else {}, reason=reason, actor_id=actor_id)
        takes = self._take(-delta, time_zone, now, expired_too=True)
        if not takes:
            raise Refused("POINTS_INSUFFICIENT", f"{-delta} points to remove, {sum(self.lots.values())} available")
        return Movement(cause, self.member_id, points=delta, available=delta, lots={k: -n for k, n in takes.items()},
                        reason=reason, actor_id=actor_id)

    # ---- applying (the fake and the audit replay movements the way the store does) ------
    def admits(self, m: Movement) -> bool:
        """Whether the movement's guards hold on this account."""
        if m.cause.key in self.done or any(c.key in self.done for c in m.not_after):
            return False
        counters = {"available": self.available, "frozen": self.frozen, "held": self.held, "owed": self.owed,
                    "balance": self.balance}
        deltas = {"available": m.available, "frozen": m.frozen, "held": m.held, "owed": m.owed, "balance": m.points}
        if any(counters[name] + d < 0 for name, d in deltas.items()):
            return False
        if any(self.lots.get(k, 0) + d < 0 for k, d in m.lots.items() if d < 0):
            return False
        if any(o in self.frozen_lots for o in m.set_frozen) or any(o in self.holds for o in m.set_hold):
            return False
        if any(o not in self.frozen_lots or self.frozen_lots[o].points != n for o, n in m.drop_frozen.items()):
            return False
        if any(o not in self.frozen_lots or self.frozen_lots[o].points < n for o, n in m.take_frozen.items()):
            return False
        return all(o in self.holds and self.holds[o].points == n for o, n in m.drop_hold.items())

    def apply(self, m: Movement) -> None:
        self.balance += m.points
        self.available += m.available
        self.frozen += m.frozen
        self.held += m.held
        self.owed += m.owed
        for k, d in m.lots.items():
            self.lots[k] = self.lots.get(k, 0) + d
            if self.lots[k] == 0:
                del self.lots[k]
        for o in m.drop_frozen:
            del self.frozen_lots[o]
        for o, n in m.take_frozen.items():
            lot = self.frozen_lots[o]
            self.frozen_lots[o] = FrozenLot(lot.points - n, lot.key, lot.unfreeze_ms)
        self.frozen_lots.update(m.set_frozen)
        for o in m.drop_hold:
            del self.holds[o]
        self.holds.update(m.set_hold)
        self.done.add(m.cause.key)

    def consistent(self) -> list[str]:
        """What is wrong inside the account (empty when its counters agree with its lots)."""
        problems = []
        if self.available != sum(self.lots.values()):
            problems.append(f"available {self.available} != lots {sum(self.lots.values())}")
        if self.frozen != sum(lot.points for lot in self.frozen_lots.values()):
            problems.append("frozen != frozen lots")
        if self.held != sum(h.points for h in self.holds.values()):
            problems.append("held != holds")
        if self.balance != self.available + self.frozen + self.held:
            problems.append("balance != available + frozen + held")
        for name in ("balance", "available", "frozen", "held", "owed"):
            if getattr(self, name) < 0:
                problems.append(f"{name} < 0")
        return problems


def growth_to_reverse(earned: int, reversed_so_far: int, share_after: int, share_whole: int,
                      member_growth: int) -> int:
    """The growth a refund takes back: the order's earned growth in proportion to the part
    refunded by all its refunds so far (`share_after` of `share_whole`, in fen or in
    points), less what its earlier refunds took back, so refunding everything in any order
    takes back exactly what it earned; never more than the member has (growth never
    falls below 0)."""
    if earned <= 0 or share_whole <= 0:
        return 0
    due = earned * min(share_after, share_whole) // share_whole - reversed_so_far
    return max(0, min(due, member_growth))


def unfreeze_at(completed_at: datetime, after_sales_days: int) -> datetime:
    """When an order's points become available: its after-sales window closes."""
    return completed_at + timedelta(days=after_sales_days)


@dataclass(frozen=True)
class Expiring:
    """Available points and when they expire (the member centre's "expiring soon")."""
    points: int
    expires_at: datetime | None


def expiring(lots: dict[str, int], time_zone: str) -> list[Expiring]:
    return [Expiring(n, lot_expires_at(k, time_zone)) for k, n in sorted(lots.items()) if n > 0]


def entry_for(m: Movement, entry_id: str, now: datetime, frozen_until: datetime | None = None) -> PointsEntry:
    """The ledger entry a movement owes."""
    return PointsEntry(id=entry_id, source=m.cause.source, source_id=m.cause.source_id, points=m.points,
                       growth=m.growth, frozen=m.cause.kind == EARN, frozen_until=frozen_until, created_at=now,
                       kind=m.cause.kind, member_id=m.member_id, available=m.available, frozen_delta=m.frozen,
                       held=m.held, owed=m.owed, gross=m.gross, returned=m.returned, refunded=m.refunded,
                       order_id=m.order_id,
                       reason=m.reason, actor_id=m.actor_id)


def ledger_problems(book: "PointsBook", entries: list[PointsEntry]) -> list[str]:
    """The audit: each counter equals the sum of the ledger's changes to it, and the
    account agrees with itself."""
    sums = {"balance": 0, "available": 0, "frozen": 0, "held": 0, "owed": 0}
    for entry in entries:
        for name, delta in entry.deltas().items():
            sums[name] += delta
    problems = [f"{name} {getattr(book, name)} != ledger {total}" for name, total in sums.items()
                if getattr(book, name) != total]
    return problems + book.consistent()


# ---- check-in ------------------------------------------------------------------------------
# A daily check-in's points: available at once (a lot expiring like other earnings), paying
# off what the member owes first; its cause is the member and the day, so it is paid once.
CHECK_IN = "CHECK_IN"


def check_in_movement(book: PointsBook, day_id: str, points: int, growth: int, key_now: str) -> Movement:
    pay = min(points, book.owed)
    rest = points - pay
    return Movement(Cause("CHECK_IN", day_id, CHECK_IN), book.member_id, points=rest, available=rest, owed=-pay,
                    lots={key_now: rest} if rest else {}, growth=growth, gross=points)
# ---- end of check-in ----
