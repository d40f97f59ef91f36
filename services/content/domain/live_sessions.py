"""Live sessions (直播): a persona's session, its state machine, its product line-up with
live-only prices, the pinned product, and when an order attributed to it gets live prices.

SCHEDULED → LIVE → ENDED, or SCHEDULED → CANCELLED. Live prices apply to orders attributed
to the session while it is LIVE and for its grace after it ends (0 minutes on the session:
the merchant's default). Every move, pin and change of a LIVE session's line-up records the
room event it causes; the repository stores them in the session document's outbox."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from siyu_kit.aggregate import Aggregate, Move, StateMachine
from siyu_kit.errors import FailedPrecondition, Violations
from siyu_kit.ids import is_id

SCHEDULED, LIVE, ENDED, CANCELLED = "SCHEDULED", "LIVE", "ENDED", "CANCELLED"
STATES = (SCHEDULED, LIVE, ENDED, CANCELLED)
# Where a session shows to viewers as coming up or on now (persona page, product detail).
UPCOMING = (SCHEDULED, LIVE)
MACHINE = StateMachine("live session", {SCHEDULED: {LIVE, CANCELLED}, LIVE: {ENDED}, ENDED: set(),
                                        CANCELLED: set()}, refused_reason="LIVE_SESSION_STATE")

LINE_UP_MAX = 100
TITLE_MAX = 120
URL_MAX = 512
GRACE_MAX_MINUTES = 1440
# The merchant's default grace when a session names none (price_grace_minutes 0).
DEFAULT_GRACE_MINUTES = 30
MINUTE_MS = 60_000
# Schedule times are kept as 15-digit keys: from 1970 to 2286.
LATEST_MS = 10 ** 13
# Likes are announced in the room at most this often per session.
LIKES_ANNOUNCE_EVERY_MS = 1000
MAX_TAPS = 100


@dataclass(frozen=True)
class LineUpItem:
    """One SKU of the line-up and its live-only price (fen); the product is the catalog's."""
    sku_id: str
    live_price: int
    currency: str = "CNY"
    product_id: str = ""


@dataclass(frozen=True)
class SkuPrice:
    """What the catalog says of a SKU the line-up names."""
    sku_id: str
    product_id: str
    list_price: int
    currency: str


@dataclass(frozen=True)
class SessionFields:
    """What staff set on a session; the persona is chosen at creation and never changes."""
    persona_id: str
    title: str
    scheduled_ms: int
    cover_url: str = ""
    line_up: tuple[LineUpItem, ...] = ()
    price_grace_minutes: int = 0  # 0: the merchant's default

    def normalized(self) -> "SessionFields":
        return replace(self, title=self.title.strip(), cover_url=self.cover_url.strip(),
                       line_up=tuple(replace(i, currency=i.currency or "CNY") for i in self.line_up))

    @property
    def sku_ids(self) -> tuple[str, ...]:
        return tuple(i.sku_id for i in self.line_up)

    @property
    def product_ids(self) -> tuple[str, ...]:
        """The line-up's products, each once, in line-up order."""
        return tuple(dict.fromkeys(i.product_id for i in self.line_up if i.product_id))


def check_fields(f: SessionFields, v: Violations, with_persona: bool = True) -> None:
    """The rules a session's fields keep on their own (the catalog is asked afterwards);
    an update names no persona (`with_persona` False)."""
    if with_persona:
        v.check(is_id(f.persona_id, "per"), "persona_id", "a per_ id")
    v.check(1 <= len(f.title) <= TITLE_MAX, "title", f"1 to {TITLE_MAX} characters")
    v.check(len(f.cover_url) <= URL_MAX, "cover_url", f"at most {URL_MAX} characters")
    if f.cover_url:
        v.check(f.cover_url.startswith(("https://", "http://")), "cover_url", "an http(s) URL")
    v.check(0 < f.scheduled_ms < LATEST_MS, "scheduled_at", "required, from 1970 to 2286")
    v.check(0 <= f.price_grace_minutes <= GRACE_MAX_MINUTES, "price_grace_minutes",
            f"0 to {GRACE_MAX_MINUTES} minutes (0: the merchant's default)")
    if not v.check(len(f.line_up) <= LINE_UP_MAX, "line_up", f"at most {LINE_UP_MAX} SKUs"):
        return
    seen: dict[str, int] = {}
    for i, item in enumerate(f.line_up):
        if not is_id(item.sku_id, "sku"):
            v.add(f"line_up[{i}].sku_id", "a sku_ id")
        elif item.sku_id in seen:
            v.add(f"line_up[{i}].sku_id", f"the same SKU as line_up[{seen[item.sku_id]}]; each SKU once")
        else:
            seen[item.sku_id] = i
        v.check(item.live_price >= 0, f"line_up[{i}].live_price", "at least 0")
        v.check(item.currency == "CNY", f"line_up[{i}].live_price.currency", "only CNY")


def priced_line_up(line_up: tuple[LineUpItem, ...], skus: Mapping[str, SkuPrice],
                   v: Violations) -> tuple[LineUpItem, ...]:
    """The line-up checked against the catalog: every SKU the merchant's, every live price
    below its list price in the SKU's currency. Returns the items with their products."""
    priced = []
    for i, item in enumerate(line_up):
        sku = skus.get(item.sku_id)
        if sku is None:
            v.add(f"line_up[{i}].sku_id", "no such SKU in this merchant")
            continue
        v.check(item.live_price < sku.list_price, f"line_up[{i}].live_price",
                f"below the SKU's list price ({sku.list_price})")
        v.check(item.currency == sku.currency, f"line_up[{i}].live_price.currency",
                f"the SKU's currency ({sku.currency})")
        priced.append(replace(item, product_id=sku.product_id))
    return tuple(priced)


def grace_minutes(session_grace: int, merchant_default: int) -> int:
    return session_grace or merchant_default


# ---- the room events a session's changes cause ---------------------------------------------

@dataclass(frozen=True)
class StateChanged:
    session_id: str
    state: str
    at_ms: int


@dataclass(frozen=True)
class ProductPinned:
    """An empty sku_id: nothing is pinned any more."""
    session_id: str
    product_id: str
    sku_id: str
    at_ms: int


@dataclass(frozen=True)
class LineUpChanged:
    session_id: str
    at_ms: int


@dataclass
class LiveSession(Aggregate):
    id: str
    merchant_id: str
    version: int
    fields: SessionFields
    state: str
    created_ms: int
    idempotency_key: str = ""
    started_ms: int = 0
    ended_ms: int = 0
    pinned_sku_id: str = ""
    # Moved only by the like counter's atomic increments, never written from here.
    likes: int = 0
    updated_ms: int = 0

    @classmethod
    def schedule(cls, session_id: str, merchant_id: str, fields: SessionFields, idempotency_key: str,
                 now_ms: int) -> "LiveSession":
        return cls(id=session_id, merchant_id=merchant_id, version=1, fields=fields, state=SCHEDULED,
                   created_ms=now_ms, idempotency_key=idempotency_key, updated_ms=now_ms)

    def revise(self, fields: SessionFields, now_ms: int) -> bool:
        """Takes the new title, cover, time, line-up and grace (the persona stays); only a
        SCHEDULED or LIVE session changes. False when nothing changed. A LIVE session's new
        line-up is announced; a pinned SKU that left it is unpinned."""
        if self.state not in UPCOMING:
            raise FailedPrecondition(f"a live session in state {self.state} cannot be changed",
                                     reason="LIVE_SESSION_STATE")
        fields = replace(fields, persona_id=self.fields.persona_id)
        if fields == self.fields:
            return False
        line_up_changed = fields.line_up != self.fields.line_up
        self.fields = fields
        self.updated_ms = now_ms
        if self.pinned_sku_id and self.pinned_sku_id not in fields.sku_ids:
            self.pinned_sku_id = ""
            if self.state == LIVE:
                self.record(ProductPinned(self.id, "", "", now_ms))
        if line_up_changed and self.state == LIVE:
            self.record(LineUpChanged(self.id, now_ms))
        return True

    def change_state(self, target: str, now_ms: int) -> bool:
        """Moves the session; False when it is in `target` already (nothing changes);
        FAILED_PRECONDITION, LIVE_SESSION_STATE, for any other move."""
        move = MACHINE.decide(self.state, target)
        if move is Move.REPEAT:
            return False
        MACHINE.require(self.state, target)
        self.state = target
        self.updated_ms = now_ms
        if target == LIVE:
            self.started_ms = now_ms
        elif target in (ENDED, CANCELLED):
            self.ended_ms = now_ms
        self.record(StateChanged(self.id, target, now_ms))
        return True

    def pin(self, sku_id: str, now_ms: int) -> bool:
        """Pins one line-up SKU in a LIVE session ("" unpins); False when it is pinned already."""
        if self.state != LIVE:
            raise FailedPrecondition(f"a live session in state {self.state} has no pinned product",
                                     reason="LIVE_SESSION_STATE")
        item = next((i for i in self.fields.line_up if i.sku_id == sku_id), None)
        if sku_id and item is None:
            raise FailedPrecondition(f"{sku_id} is not in the session's line-up",
                                     reason="LIVE_PRODUCT_NOT_IN_LINE_UP")
        if sku_id == self.pinned_sku_id:
            return False
        self.pinned_sku_id = sku_id
        self.updated_ms = now_ms
        self.record(ProductPinned(self.id, item.product_id if item else "", sku_id, now_ms))
        return True

    def prices_apply(self, now_ms: int, merchant_grace_minutes: int = DEFAULT_GRACE_MINUTES) -> bool:
        """Whether an order attributed to the session gets live prices at `now_ms`: while it
        is LIVE, and after it ended until ended_at + grace (exclusive)."""
        if self.state == LIVE:
            return True
        if self.state != ENDED:
            return False
        grace = grace_minutes(self.fields.price_grace_minutes, merchant_grace_minutes)
        return now_ms < self.ended_ms + grace * MINUTE_MS

    def live_prices(self, now_ms: int, merchant_grace_minutes: int = DEFAULT_GRACE_MINUTES) -> tuple[LineUpItem, ...]:
        """The line-up an attributed order is priced with now; empty when prices do not apply."""
        return self.fields.line_up if self.prices_apply(now_ms, merchant_grace_minutes) else ()

    def items_of_product(self, product_id: str) -> tuple[LineUpItem, ...]:
        return tuple(i for i in self.fields.line_up if i.product_id == product_id)


def require_likeable(state: str) -> None:
    """Likes count only while the session is LIVE."""
    if state != LIVE:
        raise FailedPrecondition(f"likes count only while a session is LIVE (it is {state})",
                                 reason="LIVE_SESSION_STATE")


def likes_to_announce(likes: int, announced: int, announced_ms: int, now_ms: int) -> bool:
    """Whether the room hears the like total now: it changed since the last announcement,
    and that was at least LIKES_ANNOUNCE_EVERY_MS ago."""
    return likes != announced and now_ms - announced_ms >= LIKES_ANNOUNCE_EVERY_MS
