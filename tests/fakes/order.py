"""In-memory fakes of the order service's ports, for use-case tests without servers.

Each fake keeps what it stores in dicts, honours the version compare-and-set the real
repository makes (a save on a version that is no longer the stored one raises
StaleVersion), and keeps the events saved with each aggregate so tests can assert them."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import FieldViolation, NotFound
from siyu_kit.ids import new_id

from tests.fakes.store import require_version

from services.order.application.ports import CheckedAttribution, FlashReservation, MemberPricing, SkuInfo
from services.order.domain.cart import Cart
from services.order.domain.commissions import Referral
from services.order.domain.freight import FreightTemplate, ShippingAddress, mask_phone
from services.order.domain.orders import Order, OrderState
from services.order.domain.settings import DEFAULTS, OrderSettings


@dataclass
class FakeOrders:
    """OrderRepository in memory. `events` lists (order id, version, domain event) in the
    order they were stored; `stale_saves` makes the next saves lose their compare-and-set
    (as if another writer came first), `writes` counts adds and saves."""
    orders: dict[str, Order] = field(default_factory=dict)
    events: list[tuple[str, int, Any]] = field(default_factory=list)
    stale_saves: int = 0
    writes: int = 0
    reads: int = 0

    def _copy(self, order: Order | None) -> Order | None:
        return copy.deepcopy(order) if order is not None else None

    def stored(self, order_id: str) -> Order:
        """The order as stored (a test's look, not a repository read)."""
        return self.orders[order_id]

    def events_of(self, order_id: str) -> list[Any]:
        return [e for oid, _, e in self.events if oid == order_id]

    def event_types(self, order_id: str = "") -> list[str]:
        return [type(e).__name__ for oid, _, e in self.events if not order_id or oid == order_id]

    async def get(self, merchant_id: str, order_id: str) -> Order | None:
        self.reads += 1
        order = self.orders.get(order_id)
        return self._copy(order) if order and order.merchant_id == merchant_id else None

    async def of_member(self, merchant_id: str, member_id: str, order_id: str) -> Order | None:
        self.reads += 1
        order = self.orders.get(order_id)
        ok = order and order.merchant_id == merchant_id and order.member_id == member_id
        return self._copy(order) if ok else None

    async def by_key(self, merchant_id: str, member_id: str, idempotency_key: str) -> Order | None:
        self.reads += 1
        for order in self.orders.values():
            if (order.merchant_id, order.member_id, order.idempotency_key) == (merchant_id, member_id,
                                                                              idempotency_key):
                return self._copy(order)
        return None

    async def page_of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[Order]:
        self.reads += 1
        found = sorted((o for o in self.orders.values() if o.merchant_id == merchant_id
                        and o.member_id == member_id and (not before_id or o.id < before_id)),
                       key=lambda o: o.id, reverse=True)
        return [self._copy(o) for o in found[:limit]]

    def _mine(self, merchant_id: str, member_id: str) -> list[Order]:
        return [o for o in self.orders.values() if o.merchant_id == merchant_id and o.member_id == member_id]

    async def page_of_member_in_states(self, merchant_id: str, member_id: str, states, before_id: str,
                                       limit: int) -> list[Order]:
        self.reads += 1
        found = sorted((o for o in self._mine(merchant_id, member_id)
                        if o.state.value in states and (not before_id or o.id < before_id)),
                       key=lambda o: o.id, reverse=True)
        return [self._copy(o) for o in found[:limit]]

    async def count_of_member_in_states(self, merchant_id: str, member_id: str, states) -> int:
        self.reads += 1
        return sum(1 for o in self._mine(merchant_id, member_id) if o.state.value in states)

    async def of_member_among(self, merchant_id: str, member_id: str, order_ids) -> list[Order]:
        self.reads += 1
        return [self._copy(o) for o in self._mine(merchant_id, member_id) if o.id in set(order_ids)]

    async def search(self, merchant_id: str, *, state: str, created_from: datetime | None,
                     created_to: datetime | None, channel: str, member_id: str, before_id: str,
                     limit: int) -> list[Order]:
        self.reads += 1

        def matches(o: Order) -> bool:
            return (o.merchant_id == merchant_id and (not state or o.state.value == state)
                    and (created_from is None or o.created_at >= created_from)
                    and (created_to is None or o.created_at < created_to)
                    and (not channel or o.channel == channel) and (not member_id or o.member_id == member_id)
                    and (not before_id or o.id < before_id))
        found = sorted(filter(matches, self.orders.values()), key=lambda o: o.id, reverse=True)
        return [self._copy(o) for o in found[:limit]]

    async def expired(self, now: datetime, limit: int) -> list[Order]:
        self.reads += 1
        found = sorted((o for o in self.orders.values()
                        if o.state is OrderState.PENDING_PAYMENT and o.expires_at <= now), key=lambda o: o.expires_at)
        return [self._copy(o) for o in found[:limit]]

    async def due_for_auto_confirm(self, now_ms: int, limit: int) -> list[Order]:
        self.reads += 1
        found = sorted((o for o in self.orders.values() if o.is_due_for_auto_confirm(now_ms)),
                       key=lambda o: o.auto_confirm_ms)
        return [self._copy(o) for o in found[:limit]]

    async def add(self, order: Order) -> bool:
        self.writes += 1
        if order.id in self.orders or await self.by_key(order.merchant_id, order.member_id, order.idempotency_key):
            order.pull_events()
            return False
        recorded = order.pull_events()
        self.orders[order.id] = self._copy(order)
        self.events.extend((order.id, order.version, e) for e in recorded)
        return True

    async def save(self, order: Order) -> None:
        recorded = order.pull_events()
        if not recorded:
            return
        self.writes += 1
        stored = self.orders.get(order.id)
        if self.stale_saves > 0:
            self.stale_saves -= 1
            raise StaleVersion(f"order {order.id} changed since it was read")
        require_version(stored, order)
        order.version += 1
        self.orders[order.id] = self._copy(order)
        self.events.extend((order.id, order.version, e) for e in recorded)


@dataclass
class FakeSettings:
    """SettingsRepository in memory: the defaults (version 0) until saved."""
    by_merchant: dict[str, OrderSettings] = field(default_factory=dict)
    stale_saves: int = 0
    reads: int = 0

    async def of_merchant(self, merchant_id: str, fresh: bool = False) -> OrderSettings:
        self.reads += 1
        return self.by_merchant.get(merchant_id, DEFAULTS)

    async def save(self, merchant_id: str, settings: OrderSettings, updated_ms: int) -> OrderSettings:
        current = self.by_merchant.get(merchant_id, DEFAULTS)
        if self.stale_saves > 0:
            self.stale_saves -= 1
            raise StaleVersion("the settings changed meanwhile")
        if settings.version != current.version:
            raise StaleVersion("the settings changed meanwhile")
        saved = replace(settings, version=settings.version + 1)
        self.by_merchant[merchant_id] = saved
        return saved


@dataclass
class FakeCarts:
    """CartRepository in memory, keyed by (merchant, member)."""
    carts: dict[tuple[str, str], Cart] = field(default_factory=dict)
    stale_saves: int = 0
    saves: int = 0

    async def get(self, merchant_id: str, member_id: str) -> Cart:
        cart = self.carts.get((merchant_id, member_id))
        return copy.deepcopy(cart) if cart is not None else Cart.empty(merchant_id, member_id)

    async def save(self, cart: Cart) -> None:
        key = (cart.merchant_id, cart.member_id)
        stored = self.carts.get(key)
        if self.stale_saves > 0:
            self.stale_saves -= 1
            raise StaleVersion("the cart changed meanwhile")
        if (stored.version if stored else 0) != cart.version:
            raise StaleVersion("the cart changed meanwhile")
        self.saves += 1
        cart.version += 1
        if not cart.id:
            cart.id = f"crt_{len(self.carts) + 1}"
        self.carts[key] = copy.deepcopy(cart)


def sku(sku_id: str, unit_price: int = 1000, *, on_shelf: bool = True, currency: str = "CNY",
        available: int = 100, product_id: str = "prd_1", title: str = "Tea", **more) -> SkuInfo:
    return SkuInfo(sku_id=sku_id, product_id=product_id, title=title, unit_price=unit_price, currency=currency,
                   on_shelf=on_shelf, available=available, **more)


@dataclass
class FakeCatalog:
    """Catalog and FlashCatalog: SKUs by id, reservations held, releases made. Set
    `refuse_reserve` (or `refuse_flash`) to an error to raise it instead of reserving."""
    skus_by_id: dict[str, SkuInfo] = field(default_factory=dict)
    reserved: dict[str, tuple[str, list[tuple[str, int]], datetime]] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)
    flash_won: FlashReservation | None = None
    flash_calls: int = 0
    sku_calls: int = 0
    refuse_reserve: Exception | None = None
    refuse_flash: Exception | None = None

    def add(self, *skus: SkuInfo) -> "FakeCatalog":
        for s in skus:
            self.skus_by_id[s.sku_id] = s
        return self

    async def skus(self, sku_ids: list[str]) -> dict[str, SkuInfo]:
        self.sku_calls += 1
        return {s: self.skus_by_id[s] for s in sku_ids if s in self.skus_by_id}

    async def reserve(self, reservation_id: str, order_id: str, lines: list[tuple[str, int]],
                      expires_at: datetime) -> None:
        if self.refuse_reserve is not None:
            raise self.refuse_reserve
        self.reserved[reservation_id] = (order_id, list(lines), expires_at)

    async def release(self, reservation_id: str) -> None:
        self.released.append(reservation_id)

    async def reserve_flash_sale(self, reservation_id: str, order_id: str, flash_sale_id: str, member_id: str,
                                 quantity: int, expires_at: datetime, kind: str = "FLASH_SALE") -> FlashReservation:
        self.flash_calls += 1
        if self.refuse_flash is not None:
            raise self.refuse_flash
        assert self.flash_won is not None, "set flash_won first"
        self.reserved[reservation_id] = (order_id, [(self.flash_won.sku_id, quantity)], expires_at)
        return self.flash_won


@dataclass
class FakeMembers:
    """Members: every member has `tier` unless `tiers` says otherwise; `down` makes it fail."""
    tier: str = "REGULAR"
    discount_bp: int = 10_000
    tiers: dict[str, MemberPricing] = field(default_factory=dict)
    down: Exception | None = None

    async def pricing(self, member_id: str) -> MemberPricing:
        if self.down is not None:
            raise self.down
        return self.tiers.get(member_id, MemberPricing(self.tier, self.discount_bp))


@dataclass
class FakeAttributions:
    """Attributions: the persona, content and live session ids in `known` exist."""
    known: set[str] = field(default_factory=set)
    checked: list[tuple[str, str]] = field(default_factory=list)

    # Share codes in their window and what each carries; any other code is dropped.
    shares: dict[str, dict] = field(default_factory=dict)
    # Live sessions whose prices apply now: session id → {sku id: live price}.
    live: dict[str, dict[str, int]] = field(default_factory=dict)
    # Who shared each code in `shares` (a mem_ or stf_ id).
    sharers: dict[str, str] = field(default_factory=dict)

    async def check_attribution(self, persona_id: str, content_id: str, share_code: str = "",
                                member_id: str = "", live_session_id: str = "") -> CheckedAttribution:
        self.checked.append((persona_id, content_id))
        missing = [FieldViolation(f"attribution.{name}", "no such one in this merchant")
                   for name, value in (("persona_id", persona_id), ("content_id", content_id),
                                       ("live_session_id", live_session_id))
                   if value and value not in self.known and value not in self.live]
        if missing:
            raise NotFound(f"{missing[0].field}: no such one in this merchant", reason="ATTRIBUTION_NOT_FOUND",
                           violations=missing)
        carried = {"share_code": share_code, **self.shares[share_code]} if share_code in self.shares else None
        session = live_session_id or (carried or {}).get("live_session_id", "")
        prices = self.live.get(session, {})
        return CheckedAttribution(carried=carried, live_prices=dict(prices), live_session_id=session if prices else "",
                                  sharer_id=self.sharers.get(share_code, "") if carried is not None else "")


@dataclass
class FakeReferrals:
    """Referrals: what the member service would answer per buyer (None: nobody); `asked`
    keeps (member, sharer) of every call; `down` makes it fail."""
    answers: dict[str, Referral] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)
    down: Exception | None = None

    async def resolve(self, member_id: str, sharer_id: str) -> Referral | None:
        self.asked.append((member_id, sharer_id))
        if self.down is not None:
            raise self.down
        return self.answers.get(member_id)


@dataclass
class FakeOpenRefunds:
    """OpenRefunds: open refund counts by order id."""
    open_by_order: dict[str, int] = field(default_factory=dict)

    async def count_open(self, merchant_id: str, order_id: str) -> int:
        return self.open_by_order.get(order_id, 0)


@dataclass
class FakeRecords:
    """PaymentRecords, RefundRecords or LedgerRecords: what each order has, as given."""
    by_order: dict[str, list] = field(default_factory=dict)

    async def of_order(self, merchant_id: str, order_id: str) -> list:
        return list(self.by_order.get(order_id, ()))


@dataclass
class FakeFreightTemplates:
    """FreightTemplateRepository in memory: none until one is added; `stale_saves` lets
    another writer win that many saves."""
    by_merchant: dict[str, FreightTemplate] = field(default_factory=dict)
    stale_saves: int = 0
    reads: int = 0

    async def of_merchant(self, merchant_id: str, fresh: bool = False) -> FreightTemplate | None:
        self.reads += 1
        found = self.by_merchant.get(merchant_id)
        return copy.deepcopy(found) if found is not None else None

    async def add(self, template: FreightTemplate) -> bool:
        if template.merchant_id in self.by_merchant:
            return False
        self.by_merchant[template.merchant_id] = copy.deepcopy(template)
        return True

    async def save(self, template: FreightTemplate) -> None:
        current = self.by_merchant.get(template.merchant_id)
        if self.stale_saves > 0:
            self.stale_saves -= 1
            raise StaleVersion("the freight template changed meanwhile")
        if current is None or current.version != template.version:
            raise StaleVersion("the freight template changed meanwhile")
        template.version += 1
        self.by_merchant[template.merchant_id] = copy.deepcopy(template)


@dataclass
class FakeAddresses:
    """Addresses: `books` maps a member to their addresses, the first the default; the
    phone is "sealed" by a reversible marker so tests can see it was never kept in the clear."""
    books: dict[str, list[ShippingAddress]] = field(default_factory=dict)
    down: Exception | None = None
    calls: int = 0

    def add(self, member_id: str, address: ShippingAddress) -> ShippingAddress:
        self.books.setdefault(member_id, []).append(address)
        return address

    async def shipping_address(self, member_id: str, address_id: str) -> ShippingAddress | None:
        self.calls += 1
        if self.down is not None:
            raise self.down
        book = self.books.get(member_id, [])
        if not address_id:
            return book[0] if book else None
        for a in book:
            if a.address_id == address_id:
                return a
        raise NotFound(f"address {address_id} not found", reason="ADDRESS_NOT_FOUND")


def address(province: str = "440000", city: str = "440300", district: str = "440305", phone: str = "13800138000",
            **more) -> ShippingAddress:
    """A shipping address as the member service gives it, its phone sealed as `sealed:<phone>`."""
    fields = dict(address_id=new_id("adr"), recipient="张三", phone_masked=mask_phone(phone),
                  phone_sealed=f"sealed:{phone}", province_code=province, city_code=city, district_code=district,
                  province_name="广东省", city_name="深圳市", district_name="南山区", detail="科技园 1 号")
    fields.update(more)
    return ShippingAddress(**fields)
