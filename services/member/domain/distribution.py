"""Distribution (分销) and exclusive guides (专属导购): the merchant's settings, distributor
levels, distributors and their state, a customer's binding to a distributor and to a guide,
and who an order is credited to.

Two levels at most, ever: the settings hold exactly two rates and a `levels` count of 1
or 2; a third level is refused (multi-level distribution beyond two levels is unlawful
pyramid selling in China), and an order names the buyer's distributor and that
distributor's upline, never the upline's upline. Recruiting pays nothing by itself: a
distributor's upline earns only on the sales of the customers bound to that distributor.

A distributor's upline is fixed when they first become ACTIVE: the ACTIVE distributor
they were bound to as a customer at that moment. Their `ancestors` (upline, the upline's
upline, … at most CHAIN_DEPTH) are fixed with it, so the cycle check of a binding is one
read: a customer never binds to a distributor whose chain holds them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from siyu_kit.aggregate import Aggregate, StateMachine

# ---- settings ------------------------------------------------------------------------------
FIRST_WINS, LATEST_WINS = "FIRST_WINS", "LATEST_WINS"
BINDING_WINS, LAST_SHARE_WINS = "BINDING_WINS", "LAST_SHARE_WINS"
MAX_LEVELS = 2
# The most the two rates may add up to: more is a pyramid's promise, not a commission.
MAX_RATE_SUM_BP = 5000
MAX_BINDING_DAYS = 3650
MAX_THRESHOLD = 100_000_000_000
MAX_LEVEL_COUNT = 50
# How far up a distributor's chain is kept (and so checked for cycles).
CHAIN_DEPTH = 64
UNLAWFUL = ("1 or 2: a third level is unlawful multi-level distribution (pyramid selling) and is never "
            "configured")


@dataclass(frozen=True)
class DistributionSettings:
    """A merchant's distribution rules; off until the merchant turns them on."""
    enabled: bool = False
    levels: int = 2
    level1_rate_bp: int = 1000
    level2_rate_bp: int = 500
    binding_days: int = 30
    binding_rule: str = FIRST_WINS
    auto_threshold: int = 0
    guide_rule: str = BINDING_WINS
    guide_rate_bp: int = 0

    def problems(self) -> list[tuple[str, str]]:
        """Field violations of an update (paths under `settings.`)."""
        out = []
        if self.levels > MAX_LEVELS:
            out.append(("settings.levels", UNLAWFUL))
        elif self.levels < 1:
            out.append(("settings.levels", "1 or 2"))
        for name, rate in (("level1_rate_bp", self.level1_rate_bp), ("level2_rate_bp", self.level2_rate_bp),
                           ("guide_rate_bp", self.guide_rate_bp)):
            if not 0 <= rate <= MAX_RATE_SUM_BP:
                out.append((f"settings.{name}", f"0 to {MAX_RATE_SUM_BP} basis points"))
        if self.levels == 1 and self.level2_rate_bp:
            out.append(("settings.level2_rate_bp", "0 when one level is paid"))
        if self.level1_rate_bp + self.level2_rate_bp > MAX_RATE_SUM_BP:
            out.append(("settings.level2_rate_bp", f"the two rates add up to at most {MAX_RATE_SUM_BP} basis points"))
        if not 1 <= self.binding_days <= MAX_BINDING_DAYS:
            out.append(("settings.binding_days", f"1 to {MAX_BINDING_DAYS}"))
        if self.binding_rule not in (FIRST_WINS, LATEST_WINS):
            out.append(("settings.binding_rule", "FIRST_WINS or LATEST_WINS"))
        if not 0 <= self.auto_threshold <= MAX_THRESHOLD:
            out.append(("settings.auto_distributor_threshold", f"0 to {MAX_THRESHOLD} fen"))
        if self.guide_rule not in (BINDING_WINS, LAST_SHARE_WINS):
            out.append(("settings.guide_binding_rule", "BINDING_WINS or LAST_SHARE_WINS"))
        return out

    def summary(self) -> dict[str, str]:
        return {"enabled": str(self.enabled).lower(), "levels": str(self.levels),
                "level1_rate_bp": str(self.level1_rate_bp), "level2_rate_bp": str(self.level2_rate_bp),
                "binding_days": str(self.binding_days), "binding_rule": self.binding_rule,
                "auto_threshold": str(self.auto_threshold), "guide_rule": self.guide_rule,
                "guide_rate_bp": str(self.guide_rate_bp)}


# ---- levels --------------------------------------------------------------------------------
@dataclass
class DistributorLevel:
    id: str  # dlv_…
    merchant_id: str
    name: str
    level1_rate_bp: int
    level2_rate_bp: int
    version: int = 1


def level_problems(name: str, level1_rate_bp: int, level2_rate_bp: int) -> list[tuple[str, str]]:
    out = []
    if not name.strip():
        out.append(("name", "a name"))
    if not 0 <= level1_rate_bp <= MAX_RATE_SUM_BP:
        out.append(("level1_rate_bp", f"0 to {MAX_RATE_SUM_BP}"))
    if not 0 <= level2_rate_bp <= MAX_RATE_SUM_BP:
        out.append(("level2_rate_bp", f"0 to {MAX_RATE_SUM_BP}"))
    if level1_rate_bp + level2_rate_bp > MAX_RATE_SUM_BP:
        out.append(("level2_rate_bp", f"the two rates add up to at most {MAX_RATE_SUM_BP} basis points"))
    return out


def rates_of(settings: DistributionSettings, level: DistributorLevel | None) -> tuple[int, int]:
    """A distributor's two rates: their level's, else the merchant's defaults; level 2 is
    0 when the merchant pays one level."""
    l1, l2 = (level.level1_rate_bp, level.level2_rate_bp) if level else (settings.level1_rate_bp,
                                                                         settings.level2_rate_bp)
    return l1, (l2 if settings.levels == 2 else 0)


# ---- distributors --------------------------------------------------------------------------
PENDING, ACTIVE, REJECTED, DISABLED = "PENDING", "ACTIVE", "REJECTED", "DISABLED"
STATES = (PENDING, ACTIVE, REJECTED, DISABLED)
MACHINE = StateMachine("distributor", {PENDING: {ACTIVE, REJECTED}, REJECTED: {PENDING, ACTIVE},
                                       ACTIVE: {DISABLED}, DISABLED: {ACTIVE}},
                       refused_reason="STATUS_TRANSITION")


@dataclass
class Distributor(Aggregate):
    id: str  # dst_…
    merchant_id: str
    member_id: str
    state: str
    applied_at: datetime
    apply_reason: str = ""
    reject_reason: str = ""
    automatic: bool = False
    level_id: str = ""
    # Fixed when first ACTIVE: the upline and the chain above (nearest first).
    upline_id: str = ""
    ancestors: tuple[str, ...] = ()
    activated_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 1

    @classmethod
    def applied(cls, distributor_id: str, merchant_id: str, member_id: str, reason: str,
                now: datetime) -> "Distributor":
        return cls(distributor_id, merchant_id, member_id, PENDING, now, apply_reason=reason, updated_at=now)

    def reapply(self, reason: str, now: datetime) -> None:
        MACHINE.require(self.state, PENDING)
        self.state, self.apply_reason, self.reject_reason, self.applied_at, self.updated_at = (
            PENDING, reason, "", now, now)

    def activate(self, upline: "Distributor | None", now: datetime, automatic: bool = False) -> None:
        """Becomes ACTIVE; the first time, the upline (an ACTIVE distributor the member is
        bound to now, or None) and its chain are fixed."""
        MACHINE.require(self.state, ACTIVE)
        if self.activated_at is None:
            self.upline_id, self.ancestors = chain_under(upline, self.member_id)
            self.activated_at = now
            self.automatic = automatic
        self.state, self.updated_at = ACTIVE, now

    def reject(self, reason: str, now: datetime) -> None:
        MACHINE.require(self.state, REJECTED)
        self.state, self.reject_reason, self.updated_at = REJECTED, reason, now

    def disable(self, now: datetime) -> None:
        MACHINE.require(self.state, DISABLED)
        self.state, self.updated_at = DISABLED, now

    def set_level(self, level_id: str, now: datetime) -> None:
        self.level_id, self.updated_at = level_id, now


def chain_under(upline: Distributor | None, member_id: str) -> tuple[str, tuple[str, ...]]:
    """The upline and ancestors a new distributor gets: none when the upline is missing,
    not ACTIVE, or (never by construction, checked all the same) the member themself or
    above them."""
    if upline is None or upline.state != ACTIVE or upline.member_id == member_id \
            or member_id in upline.ancestors:
        return "", ()
    return upline.member_id, ((upline.member_id,) + tuple(upline.ancestors))[:CHAIN_DEPTH]


# ---- bindings ------------------------------------------------------------------------------
# What a binding attempt became.
BOUND, RENEWED, KEPT, SELF, CYCLE, NOT_DISTRIBUTOR, OFF = (
    "BOUND", "RENEWED", "KEPT", "SELF", "CYCLE", "NOT_DISTRIBUTOR", "OFF")
SHARE_CODE, ORDER, STORE_CODE, STAFF = "SHARE_CODE", "ORDER", "STORE_CODE", "STAFF"


@dataclass(frozen=True)
class Binding:
    """A customer's distributor binding as read: who, since when (epoch ms)."""
    distributor_id: str = ""
    bound_ms: int = 0

    def expires_ms(self, days: int) -> int:
        return self.bound_ms + days * 86_400_000

    def live(self, days: int, now_ms: int) -> bool:
        """Bound and unexpired: bound_at + binding_days > now."""
        return bool(self.distributor_id) and self.expires_ms(days) > now_ms


def binding_decision(settings: DistributionSettings, current: Binding, customer_id: str,
                     sharer: Distributor | None, now_ms: int) -> str:
    """What a share of `sharer` does to `customer_id`'s binding: BOUND (a new or replaced
    binding), RENEWED (the same distributor again after expiry), KEPT (first wins, or the
    same distributor, unexpired), or why not (SELF, CYCLE, NOT_DISTRIBUTOR, OFF)."""
    if not settings.enabled:
        return OFF
    if sharer is None or sharer.state != ACTIVE:
        return NOT_DISTRIBUTOR
    if sharer.member_id == customer_id:
        return SELF
    if customer_id in sharer.ancestors:
        return CYCLE
    live = current.live(settings.binding_days, now_ms)
    if current.distributor_id == sharer.member_id:
        return KEPT if live else RENEWED
    if live and settings.binding_rule == FIRST_WINS:
        return KEPT
    return BOUND


def changes_binding(outcome: str) -> bool:
    return outcome in (BOUND, RENEWED)


# ---- guides --------------------------------------------------------------------------------
def guide_decision(current_guide_id: str, guide_id: str) -> str:
    """A member's exclusive guide: the first binding wins (the guide keeps the customer)."""
    if current_guide_id:
        return KEPT
    return BOUND


def credited_guide(settings: DistributionSettings, bound_guide_id: str, sharer_guide_id: str) -> str:
    """The guide an order is credited to: BINDING_WINS → the exclusive guide (the sharing
    guide only when there is none); LAST_SHARE_WINS → the guide whose share code the order
    carries, else the exclusive guide."""
    if settings.guide_rule == LAST_SHARE_WINS and sharer_guide_id:
        return sharer_guide_id
    return bound_guide_id or sharer_guide_id


# ---- the referral an order keeps -----------------------------------------------------------
@dataclass(frozen=True)
class Credit:
    """Who an order is credited to (the proto's Referral)."""
    distributor_id: str = ""
    distributor_rate_bp: int = 0
    upline_distributor_id: str = ""
    upline_rate_bp: int = 0
    guide_id: str = ""
    guide_rate_bp: int = 0
    guide_store: str = ""
    group_buy_commission: bool = False


def credit_for(settings: DistributionSettings, binding: Binding, l1: Distributor | None,
               l1_level: DistributorLevel | None, upline: Distributor | None, now_ms: int) -> Credit:
    """The distributor part of an order's credit: level 1 is the bound (unexpired) ACTIVE
    distributor, level 2 their fixed upline if ACTIVE and the merchant pays two levels.
    Rates are level 1's (its level, else the defaults) — the upline is paid at the level-2
    rate of the distributor who sold. Never a third level."""
    if not settings.enabled or not binding.live(settings.binding_days, now_ms) or l1 is None \
            or l1.state != ACTIVE or l1.member_id != binding.distributor_id:
        return Credit()
    r1, r2 = rates_of(settings, l1_level)
    credit = Credit(distributor_id=l1.member_id, distributor_rate_bp=r1)
    if settings.levels == 2 and upline is not None and upline.state == ACTIVE and l1.upline_id == upline.member_id:
        credit = replace(credit, upline_distributor_id=upline.member_id, upline_rate_bp=r2)
    return credit


@dataclass(frozen=True)
class TeamEntry:
    member_id: str
    kind: str  # CUSTOMER or DISTRIBUTOR
    since_ms: int
    expired: bool = False
