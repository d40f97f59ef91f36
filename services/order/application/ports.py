"""What the use cases need from outside the service: the repositories and the clients of
the other services, as Protocols with async methods, and the values they exchange."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, Sequence

from services.order.domain.cart import Cart
from services.order.domain.commissions import Referral
from services.order.domain.freight import FreightTemplate, ShippingAddress
from services.order.domain.ledger import Entry
from services.order.domain.member_value import CouponLine, CouponQuote, OrderKind, PointsTerms, ValueHoldIntent
from services.order.domain.orders import Order
from services.order.domain.payments import (JsapiParams, Notification, Payment, PaymentMethod, RefundReceipt,
                                            RefundResult, TradeResult, WechatCredentials)
from services.order.domain.refunds import Refund
from services.order.domain.settings import OrderSettings


# ---- values -------------------------------------------------------------------------

@dataclass(frozen=True)
class LimitedTimePrice:
    price: int
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True)
class SkuInfo:
    """What the catalog says of a SKU now."""
    sku_id: str
    product_id: str
    title: str
    unit_price: int
    currency: str
    on_shelf: bool
    available: int = 0
    # Member tier name ("SILVER") → unit price, for the tiers the SKU prices itself.
    tier_prices: dict[str, int] = field(default_factory=dict)
    limited_time: LimitedTimePrice | None = None
    # Shipping weight of one unit in grams (0 when the catalog has none), for freight by weight.
    weight_g: int = 0
    # The product's category and its ancestors, root first (what coupon scopes match).
    category_path: tuple[str, ...] = ()
    # Its product earns no commission (the line is not commission_eligible).
    commission_excluded: bool = False


@dataclass(frozen=True)
class FlashReservation:
    """Units a member won in a flash sale: of which SKU, at what unit price."""
    sku_id: str
    unit_price: int


@dataclass(frozen=True)
class ActivityPool:
    """The units an activity (group buy, bargain, points mall) keeps in the catalog for one
    SKU: they left the SKU's stock when the pool was made and the unsold ones go back
    after the activity's window. Bought only as the activity's kind."""
    pool_id: str  # fls_…
    kind: str  # GROUP_BUY, BARGAIN, POINTS_MALL
    product_id: str
    sku_id: str
    title: str  # the product's title
    price: int  # the pool's unit price (the activity price)
    list_price: int
    total: int
    available: int
    reserved: int
    sold: int
    per_member_limit: int


@dataclass(frozen=True)
class MemberPricing:
    tier: str  # "REGULAR", "SILVER", "GOLD", "BLACK_GOLD"
    discount_bp: int  # price multiplier of the tier: 9500 = 5% off


@dataclass(frozen=True)
class LedgerRecord:
    """A stored ledger entry: the entry, its currency and when it was recorded."""
    entry: Entry
    currency: str
    at: datetime


# ---- other services -----------------------------------------------------------------

class Catalog(Protocol):
    async def skus(self, sku_ids: list[str]) -> dict[str, SkuInfo]:
        """The SKUs that exist, by id; a SKU that does not is absent."""
        ...

    async def reserve(self, reservation_id: str, order_id: str, lines: list[tuple[str, int]],
                      expires_at: datetime) -> None:
        """All lines or none (FAILED_PRECONDITION OUT_OF_STOCK)."""
        ...

    async def release(self, reservation_id: str) -> None: ...


class FlashCatalog(Protocol):
    async def reserve_flash_sale(self, reservation_id: str, order_id: str, flash_sale_id: str, member_id: str,
                                 quantity: int, expires_at: datetime, kind: str = "FLASH_SALE") -> FlashReservation:
        """Units from the sale's pool (a pool of `kind`), or FAILED_PRECONDITION with
        SOLD_OUT, LIMIT_REACHED, NOT_STARTED or ENDED; NOT_FOUND for a pool of another kind."""
        ...

    async def release(self, reservation_id: str) -> None: ...


class ActivityPools(Protocol):
    """Pools of units for the order service's activities, kept by the catalog like a
    flash sale's. Reserved through FlashCatalog.reserve_flash_sale with the pool's kind."""
    async def create_pool(self, idempotency_key: str, kind: str, sku_id: str, price: int, units: int,
                          per_member_limit: int, starts_at: datetime, ends_at: datetime,
                          title: str = "") -> ActivityPool:
        """Moves `units` of the SKU into a new pool, once per key (the staff caller's
        merchant and OPERATOR role). INVALID_ARGUMENT for a price not below the list price,
        FAILED_PRECONDITION OUT_OF_STOCK, NOT_FOUND for an unknown SKU."""
        ...

    async def pool(self, pool_id: str) -> ActivityPool | None: ...


class Members(Protocol):
    async def pricing(self, member_id: str) -> MemberPricing:
        """The member's tier and its discount; UNAVAILABLE rather than a guess."""
        ...


class Referrals(Protocol):
    async def resolve(self, member_id: str, sharer_id: str) -> Referral | None:
        """Who an order the member places now is credited to (binding them first through
        `sharer_id`, the sharer of the order's share code, "" for none); None: nobody.
        UNAVAILABLE (MEMBER_UNAVAILABLE) when it cannot be asked, as for pricing."""
        ...


class WechatIdentities(Protocol):
    async def openid(self, member_id: str, channel: str) -> str | None:
        """The openid the member has in the merchant's WeChat app of `channel`
        (MINI_PROGRAM or H5): the payer of a JSAPI payment. None when the member never
        signed in there with WeChat; UNAVAILABLE (MEMBER_UNAVAILABLE) when it cannot be read."""
        ...


@dataclass(frozen=True)
class CheckedAttribution:
    """What the content service says of an order's attribution."""
    # What a share code in its window carries (persona_id, content_id, live_session_id,
    # share_code); None without a code, or for one past its window or never issued.
    carried: dict | None = None
    # The live prices the order gets now, by sku id: its session's line-up while the
    # session is LIVE or within its grace after ending; empty otherwise.
    live_prices: dict[str, int] = field(default_factory=dict)
    live_session_id: str = ""  # whose prices they are
    # Who shared the code in its window (a mem_ or stf_ id); "" otherwise.
    sharer_id: str = ""


class Attributions(Protocol):
    async def check_attribution(self, persona_id: str, content_id: str, share_code: str = "",
                                member_id: str = "", live_session_id: str = "") -> CheckedAttribution:
        """NOT_FOUND when the persona, content or live session named is not the merchant's;
        otherwise what the share code carries and the live prices the order gets now."""
        ...


# ---- repositories -------------------------------------------------------------------

class OrderRepository(Protocol):
    """Orders: read as aggregates, written as a whole change with the events it recorded.
    Every read names the merchant, except the jobs' scans across merchants."""

    async def get(self, merchant_id: str, order_id: str) -> Order | None: ...

    async def of_member(self, merchant_id: str, member_id: str, order_id: str) -> Order | None: ...

    async def by_key(self, merchant_id: str, member_id: str, idempotency_key: str) -> Order | None: ...

    async def page_of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[Order]:
        """Newest first; `before_id` is the last id of the previous page."""
        ...

    async def search(self, merchant_id: str, *, state: str, created_from: datetime | None,
                     created_to: datetime | None, channel: str, member_id: str, before_id: str,
                     limit: int) -> list[Order]:
        """Staff search, newest first; empty criteria match every order."""
        ...

    # ---- the member's order tabs (domain.tabs) ----

    async def page_of_member_in_states(self, merchant_id: str, member_id: str, states: Sequence[str],
                                       before_id: str, limit: int) -> list[Order]:
        """The member's orders in one of `states`, newest first."""
        ...

    async def count_of_member_in_states(self, merchant_id: str, member_id: str, states: Sequence[str]) -> int: ...

    async def of_member_among(self, merchant_id: str, member_id: str, order_ids: Sequence[str]) -> list[Order]:
        """The member's orders of these ids (in any order; unknown ids are left out)."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[Order]:
        """Unpaid orders past their expiry, of every merchant, soonest first."""
        ...

    async def due_for_auto_confirm(self, now_ms: int, limit: int) -> list[Order]:
        """Shipped or delivered orders whose auto-confirm time has come, of every merchant."""
        ...

    async def add(self, order: Order) -> bool:
        """Stores a new order with its recorded events; False when an order with its
        idempotency key exists already (nothing is stored)."""
        ...

    async def save(self, order: Order) -> None:
        """Stores the change and the events recorded since it was read, on the version it
        was read at (then bumped on `order`); raises siyu_kit.aggregate.StaleVersion when
        another write came first."""
        ...


class Addresses(Protocol):
    async def shipping_address(self, member_id: str, address_id: str) -> ShippingAddress | None:
        """The member's address `address_id`, or their default when empty, with the phone
        sealed and masked, read now (never a remembered default: the member may have just
        changed it). None when address_id is empty and the member has no address;
        NOT_FOUND (ADDRESS_NOT_FOUND) when the named address is not the member's;
        UNAVAILABLE (ADDRESS_UNAVAILABLE) when it cannot be read."""
        ...


class FreightTemplateRepository(Protocol):
    async def of_merchant(self, merchant_id: str, fresh: bool = False) -> FreightTemplate | None:
        """The merchant's freight template, None when it has none. May be a few seconds
        old unless `fresh`."""
        ...

    async def add(self, template: FreightTemplate) -> bool:
        """The merchant's first template; False when one was added meanwhile."""
        ...

    async def save(self, template: FreightTemplate) -> None:
        """Stores the change on the version read; StaleVersion when another came first."""
        ...


class SettingsRepository(Protocol):
    async def of_merchant(self, merchant_id: str, fresh: bool = False) -> OrderSettings:
        """The merchant's settings (the defaults, at version 0, when it never set any).
        May be a few seconds old unless `fresh`."""
        ...

    async def save(self, merchant_id: str, settings: OrderSettings, updated_ms: int) -> OrderSettings:
        """Stores `settings` on the version they carry (0: the defaults, so they are
        created) and returns them at their new version; raises StaleVersion when another
        change came first."""
        ...


class CartRepository(Protocol):
    async def get(self, merchant_id: str, member_id: str) -> Cart:
        """The member's cart; an empty one at version 0 when there is none yet."""
        ...

    async def save(self, cart: Cart) -> None:
        """Stores the items on the version read (then bumped on `cart`); raises
        StaleVersion when another change came first."""
        ...


class OpenRefunds(Protocol):
    async def count_open(self, merchant_id: str, order_id: str) -> int:
        """Refunds of the order that are waiting or under way."""
        ...


class LedgerRecords(Protocol):
    async def of_order(self, merchant_id: str, order_id: str) -> list[LedgerRecord]:
        """The order's ledger entries, oldest first."""
        ...


# ---- money: payments, refunds and the ledger ------------------------------------------


class PaymentRepository(Protocol):
    """Payments by id, by idempotency key and by order; `save` writes a change with its
    events on the version that was read (StaleVersion when another write came first)."""

    async def add(self, payment: Payment) -> bool: ...  # False: the idempotency key is taken

    async def by_key(self, merchant_id: str, order_id: str, key: str) -> Payment | None: ...

    async def by_id_any_merchant(self, payment_id: str) -> Payment | None: ...

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None: ...

    async def of_member(self, merchant_id: str, member_id: str, payment_id: str) -> Payment | None: ...

    async def of_order(self, merchant_id: str, order_id: str) -> list[Payment]: ...

    async def open_due(self, now_ms: int, limit: int) -> list[Payment]: ...

    async def take_for_reconcile(self, payment: Payment, seen_ms: int) -> bool: ...

    async def save(self, payment: Payment) -> None: ...

    async def query_due(self, now_ms: int, limit: int) -> list[Payment]:
        """PENDING payments (of any merchant) whose time to ask the provider has come."""
        ...

    async def take_for_query(self, payment: Payment, seen_ms: int) -> bool:
        """Compare-and-set on the query time read: one job run asks about the payment."""
        ...


class RefundRepository(Protocol):
    async def add(self, refund: Refund) -> bool: ...  # False: the requester's idempotency key is taken

    async def by_key(self, merchant_id: str, order_id: str, requested_by: str, key: str) -> Refund | None: ...

    async def get(self, merchant_id: str, refund_id: str) -> Refund | None: ...

    async def of_order(self, merchant_id: str, order_id: str) -> list[Refund]: ...

    async def count_open(self, merchant_id: str, order_id: str) -> int: ...

    async def page(self, merchant_id: str, order_id: str, state: str, before_id: str,
                   limit: int, provider_status: str = "") -> list[Refund]: ...

    async def order_ids_of_member(self, merchant_id: str, member_id: str) -> set[str]:
        """The ids of the member's orders that have a refund, in any state (the 售后 tab)."""
        ...

    async def stalled(self, approved_before_ms: int, limit: int) -> list[Refund]: ...

    async def provider_query_due(self, now_ms: int, limit: int) -> list[Refund]:
        """Refunds (of any merchant) the provider answered PROCESSING whose time to ask it
        again has come, oldest first (the refund status job)."""
        ...

    async def take_for_provider_query(self, refund: Refund, seen_ms: int) -> bool:
        """Compare-and-set of the refund's next query time on the one that was read: of
        several job runs, one asks about it."""
        ...

    async def save(self, refund: Refund) -> None: ...


class LedgerRepository(Protocol):
    """Entries have deterministic ids: recording one again stores nothing (False)."""

    async def record(self, merchant_id: str, entry: Entry, currency: str, at: datetime) -> bool: ...


class PaymentProvider(Protocol):
    """A payment method's provider: signs and verifies its notifications, and sends
    money back."""
    method: PaymentMethod

    def sign(self, notification: Notification) -> str: ...

    def verify(self, notification: Notification) -> bool: ...

    def new_txn_id(self) -> str: ...

    async def refund(self, payment: Payment, refund_id: str, amount: int) -> RefundReceipt:
        """Keyed by our refund id: the same id answers the refund made (never a second);
        with another amount it is refused (PROVIDER_KEY_REUSED)."""
        ...

    async def find(self, payment: Payment, refund_id: str) -> RefundReceipt | None:
        """The refund made under our refund id; None when the provider never saw it."""
        ...


class StockReturns(Protocol):
    """Units of a refund that never left the warehouse go back on sale."""

    async def return_stock(self, return_id: str, order_id: str, lines: list[tuple[str, int]]) -> None: ...


# ---- WeChat Pay ---------------------------------------------------------------------

class WechatPay(Protocol):
    """WeChat Pay API v3 with one merchant's credentials: the HTTP calls, and the
    signatures and decryption of what WeChat sends. Calls that WeChat refuses or that do
    not reach it raise UNAVAILABLE (reason WECHAT_PAY_UNAVAILABLE) or FAILED_PRECONDITION
    (WECHAT_PAY_REFUSED)."""

    async def prepay(self, credentials: WechatCredentials, payment: Payment, payer_openid: str,
                     description: str) -> str:
        """JSAPI prepay (out_trade_no = the payment id); returns the prepay id."""
        ...

    def jsapi_params(self, credentials: WechatCredentials, prepay_id: str) -> JsapiParams: ...

    def verify_notification(self, credentials: WechatCredentials, timestamp: str, nonce: str, body: str,
                            signature: str) -> bool: ...

    def open_notification(self, credentials: WechatCredentials, body: str) -> TradeResult | None:
        """The decrypted trade of a notification body; None when it does not open."""
        ...

    async def query(self, credentials: WechatCredentials, out_trade_no: str) -> TradeResult | None:
        """The trade by our payment id; None when WeChat knows no such trade."""
        ...

    async def refund(self, credentials: WechatCredentials, payment: Payment, out_refund_no: str,
                     amount: int) -> RefundReceipt:
        """Idempotent by out_refund_no: the same number never refunds twice. The receipt's
        status is WeChat's (PROCESSING at first)."""
        ...

    def event_type(self, body: str) -> str:
        """A notification's event_type (TRANSACTION.SUCCESS, REFUND.SUCCESS, …)."""
        ...

    def open_refund_notification(self, credentials: WechatCredentials, body: str) -> RefundResult | None:
        """The decrypted refund of a REFUND.* notification body; None when it does not open."""
        ...

    async def query_refund(self, credentials: WechatCredentials, out_refund_no: str) -> RefundResult | None:
        """The refund by our refund id; None when WeChat knows no such refund."""
        ...


class WechatCredentialRepository(Protocol):
    """Credentials per merchant and channel, sealed at rest."""

    async def get(self, merchant_id: str, channel: str) -> WechatCredentials | None: ...

    async def of_merchant(self, merchant_id: str) -> list[WechatCredentials]: ...

    async def put(self, credentials: WechatCredentials) -> None: ...


class SeenNotifications(Protocol):
    async def remember(self, merchant_id: str, key: str, at: datetime) -> bool:
        """One conditional insert: False when the key was seen already."""
        ...


class ProviderRefunds(Protocol):
    """Sends a payment's money back at the provider of its method, keyed by our refund
    id so that a retry never refunds twice."""

    async def refund(self, payment: Payment, refund_id: str, amount: int) -> RefundReceipt: ...

    async def find(self, payment: Payment, refund_id: str) -> RefundReceipt | None:
        """The provider's refund under our refund id (asked by a second caller instead of
        refunding again); None when the provider never saw it."""
        ...


# ---- stored value ------------------------------------------------------------------------

@dataclass(frozen=True)
class RechargePackage:
    """A recharge package as it is on offer now: pay `price`, get it as principal and
    `bonus` on top."""
    package_id: str
    name: str
    price: int
    bonus: int


class RechargePackages(Protocol):
    async def active(self, package_id: str) -> RechargePackage:
        """The merchant's active package; NotFound (RECHARGE_PACKAGE_NOT_OFFERED) otherwise."""
        ...


class Balances(Protocol):
    """The member service's balance, as an order pays with it and refunds to it. Every
    call is idempotent by the order (or, for refunds, the refund id)."""

    async def hold(self, member_id: str, order_id: str, max_amount: int) -> int:
        """Holds up to `max_amount` of the member's available balance for the order;
        answers what the order holds (a repeat answers the same)."""
        ...

    async def capture(self, member_id: str, order_id: str) -> int: ...

    async def release(self, member_id: str, order_id: str) -> int: ...

    async def refund_to_balance(self, member_id: str, order_id: str, refund_id: str, amount: int) -> None: ...


class OrderTenders(Protocol):
    async def save_tender(self, order: Order) -> None:
        """Writes the order's stored-value facts alone, on the version read (StaleVersion
        when another write came first); publishes nothing."""
        ...


# ---- member value: coupons and points at checkout ------------------------------------

class MemberValue(Protocol):
    """The member service's coupons and points, as checkout and the order's lifecycle use
    them. Every change is idempotent by order (or refund) id on the member side, so a
    repeat changes nothing. Refusals are FAILED_PRECONDITION with the member service's
    reason (COUPON_IN_USE, POINTS_INSUFFICIENT, …)."""

    async def quote_coupon(self, member_id: str, coupon_id: str, lines: Sequence[CouponLine],
                           kind: OrderKind) -> CouponQuote | None:
        """What the coupon (or, with no id, the member's best) takes off; None when no
        coupon was named and none fits."""
        ...

    async def points_terms(self, member_id: str, payable: int) -> PointsTerms: ...

    async def lock_coupon(self, member_id: str, coupon_id: str, order_id: str, lines: Sequence[CouponLine],
                          kind: OrderKind, pay_by: datetime) -> CouponQuote: ...

    async def hold_points(self, member_id: str, order_id: str, points: int, payable: int,
                          as_price: bool = False) -> int:
        """Holds the points for the order; what they take off in fen (0 `as_price`: the
        points are a points-mall price, held without the discount rules)."""
        ...

    async def use_coupon(self, coupon_id: str, order_id: str, order_amount: int) -> None:
        """The paid order used the coupon; `order_amount` (what it charged) counts in the
        template's GMV."""
        ...

    async def release_coupon(self, coupon_id: str, order_id: str) -> None: ...

    async def restore_coupon(self, coupon_id: str, order_id: str) -> None: ...

    async def spend_points(self, member_id: str, order_id: str) -> None: ...

    async def release_points(self, member_id: str, order_id: str) -> None: ...

    async def reverse_points(self, member_id: str, order_id: str, refund_id: str, spent_to_return: int,
                             refunded_amount: int, paid_amount: int) -> None:
        """Earned points of the refunded part taken back (in proportion: refunded_amount of
        paid_amount) and spent points returned, once per refund."""
        ...


class ValueHoldIntents(Protocol):
    """Coupons and points asked for orders not written yet (domain.member_value)."""

    async def add(self, intent: ValueHoldIntent) -> None: ...

    async def remove(self, merchant_id: str, order_id: str) -> None: ...

    async def claim_due(self, created_before: datetime, lease_until: datetime,
                        now: datetime) -> ValueHoldIntent | None:
        """One intent created before `created_before` that no other sweeper holds, leased
        to this one until `lease_until` by one conditional update; None when none is due."""
        ...
