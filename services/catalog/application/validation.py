"""What a well-formed catalog request looks like. Every violation is reported at once,
and a request with any violation changes nothing."""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from siyu_kit import limits
from siyu_kit.errors import Violations
from siyu_kit.ids import is_id
from siyu_kit.money import DEFAULT_CURRENCY, MAX_AMOUNT, amount_ok
from siyu_kit.protos import epoch_ms

from services.catalog.domain import listing, products as product_rules
from services.catalog.domain.products import LimitedTimePrice, SkuSpec

CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TITLE = 120
MAX_SKUS = 100
MAX_STOCK = 10_000_000
MAX_TAGS = 20
MAX_MEDIA = 20
MAX_DESCRIPTION = 20_000
MAX_ATTRIBUTES = 10
# An order's lines, the same rule order enforces.
MAX_LINES = limits.MAX_LINES
MAX_QUANTITY = limits.MAX_LINE_QUANTITY
MAX_KEYWORD = 64
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_GET_SKUS = 200
MAX_CATEGORY_NAME = 40
MAX_REASON = 200
MAX_ADJUST = 1_000_000
MAX_WEIGHT_G = 1_000_000  # a tonne: the heaviest unit one parcel rule prices


@dataclass(frozen=True)
class PriceInput:
    amount: int
    currency: str = ""


@dataclass(frozen=True)
class LimitedTimeInput:
    price: PriceInput
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True)
class SkuInput:
    code: str
    attributes: dict[str, str] = field(default_factory=dict)
    list_price: int = 0
    currency: str = ""
    initial_stock: int = 0
    tier_prices: list[tuple[str, PriceInput]] = field(default_factory=list)
    limited_time_price: LimitedTimeInput | None = None
    weight_g: int = 0


@dataclass(frozen=True)
class UpsertProduct:
    code: str
    title: str
    category_id: str = ""
    tags: list[str] = field(default_factory=list)
    media_urls: list[str] = field(default_factory=list)
    description: str = ""
    status: str = ""  # a product status name, or empty: DRAFT for a new product, unchanged otherwise
    skus: list[SkuInput] = field(default_factory=list)
    expected_version: int = 0
    # Orders of the product earn no commission.
    commission_excluded: bool = False


@dataclass(frozen=True)
class ValidUpsert:
    code: str
    title: str
    category_id: str
    tags: list[str]
    media_urls: list[str]
    description: str
    status: str  # "" keeps the current status
    skus: list[SkuSpec]
    expected_version: int = 0
    commission_excluded: bool = False


def _short(v: Violations, value: str, name: str, most: int) -> None:
    v.check(len(value) <= most, name, f"at most {most} characters")


def _key_ok(key: str) -> bool:
    # Attribute names become document keys: no dots, no leading dollar.
    return 0 < len(key) <= 32 and "." not in key and not key.startswith("$")


def upsert(cmd: UpsertProduct) -> ValidUpsert:
    v = Violations()
    v.check(bool(CODE.match(cmd.code or "")), "code", "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
    title = (cmd.title or "").strip()
    v.check(0 < len(title) <= MAX_TITLE, "title", f"1 to {MAX_TITLE} characters")
    v.check(not cmd.category_id or is_id(cmd.category_id, "cat"), "category_id", "a cat_ id, or empty")
    v.check(cmd.expected_version >= 0, "expected_version", "0 (no check) or the version last read")
    if v.check(len(cmd.tags) <= MAX_TAGS, "tags", f"at most {MAX_TAGS} tags"):
        for i, tag in enumerate(cmd.tags):
            v.check(0 < len(tag.strip()) <= 32, f"tags[{i}]", "1 to 32 characters")
    if v.check(len(cmd.media_urls) <= MAX_MEDIA, "media_urls", f"at most {MAX_MEDIA} URLs"):
        for i, url in enumerate(cmd.media_urls):
            v.check(url.startswith(("https://", "http://")) and len(url) <= 1024, f"media_urls[{i}]",
                    "an http(s) URL of at most 1024 characters")
    _short(v, cmd.description, "description", MAX_DESCRIPTION)
    v.check(not cmd.status or cmd.status in product_rules.STATUSES, "status", "DRAFT, ON_SHELF or OFF_SHELF")
    if v.check(0 < len(cmd.skus) <= MAX_SKUS, "skus", f"1 to {MAX_SKUS} SKUs"):
        seen: set[str] = set()
        for i, sku in enumerate(cmd.skus):
            at = f"skus[{i}]"
            if v.check(bool(CODE.match(sku.code or "")), f"{at}.code", "1 to 64 characters of A-Z, a-z, 0-9, _ or -"):
                v.check(sku.code not in seen, f"{at}.code", "duplicate SKU code")
                seen.add(sku.code)
            v.check(amount_ok(sku.list_price), f"{at}.list_price.amount", f"0 to {MAX_AMOUNT}")
            v.check(sku.currency in ("", DEFAULT_CURRENCY), f"{at}.list_price.currency", "only CNY")
            v.check(0 <= sku.initial_stock <= MAX_STOCK, f"{at}.initial_stock", f"0 to {MAX_STOCK}")
            v.check(0 <= sku.weight_g <= MAX_WEIGHT_G, f"{at}.weight_g", f"0 to {MAX_WEIGHT_G} grams")
            if v.check(len(sku.attributes) <= MAX_ATTRIBUTES, f"{at}.attributes",
                       f"at most {MAX_ATTRIBUTES} attributes"):
                for key, value in sku.attributes.items():
                    v.check(_key_ok(key), f"{at}.attributes", f"name {key!r}: 1 to 32 characters, no '.' or leading '$'")
                    v.check(len(value) <= 64, f"{at}.attributes", f"value of {key!r}: at most 64 characters")
            _sku_prices(v, sku, at)
    v.raise_if_any()
    return ValidUpsert(
        code=cmd.code, title=title, category_id=cmd.category_id, tags=[t.strip() for t in cmd.tags],
        media_urls=list(cmd.media_urls), description=cmd.description, status=cmd.status,
        commission_excluded=cmd.commission_excluded,
        skus=[SkuSpec(s.code, dict(s.attributes), s.list_price, DEFAULT_CURRENCY, s.initial_stock,
                      tuple(sorted(((t, p.amount) for t, p in s.tier_prices),
                                   key=lambda tp: product_rules.TIERS.index(tp[0]))),
                      _limited(s.limited_time_price), s.weight_g) for s in cmd.skus],
        expected_version=cmd.expected_version)


def _sku_prices(v: Violations, sku: SkuInput, at: str) -> None:
    """Member and limited-time prices: CNY, never above the list price."""
    seen: set[str] = set()
    for i, (tier, price) in enumerate(sku.tier_prices):
        name = f"{at}.tier_prices[{i}]"
        if v.check(tier in product_rules.TIERS, f"{name}.tier", ", ".join(product_rules.TIERS)):
            v.check(tier not in seen, f"{name}.tier", "each tier at most once")
            seen.add(tier)
        v.check(0 <= price.amount <= sku.list_price, f"{name}.price.amount", "0 to the list price")
        v.check(price.currency in ("", DEFAULT_CURRENCY), f"{name}.price.currency", "only CNY")
    ltp = sku.limited_time_price
    if ltp is None:
        return
    name = f"{at}.limited_time_price"
    v.check(0 <= ltp.price.amount <= sku.list_price, f"{name}.price.amount", "0 to the list price")
    v.check(ltp.price.currency in ("", DEFAULT_CURRENCY), f"{name}.price.currency", "only CNY")
    v.check(ltp.starts_at is not None, f"{name}.starts_at", "required")
    if v.check(ltp.ends_at is not None, f"{name}.ends_at", "required") and ltp.starts_at is not None:
        v.check(ltp.ends_at > ltp.starts_at, f"{name}.ends_at", "after starts_at")


def _limited(ltp: LimitedTimeInput | None) -> LimitedTimePrice | None:
    if ltp is None:
        return None
    return LimitedTimePrice(ltp.price.amount, epoch_ms(ltp.starts_at), epoch_ms(ltp.ends_at))


SORT_NAMES = tuple(listing.SORTS)


@dataclass(frozen=True)
class ListProducts:
    keyword: str = ""
    category_id: str = ""
    tag: str = ""
    page_size: int = 0
    page_token: str = ""
    min_price: int | None = None
    max_price: int | None = None
    in_stock_only: bool = False
    sort: str = ""  # a sort name, or empty for NEWEST
    # Staff only: one status (DRAFT, ON_SHELF, OFF_SHELF), or empty for every status.
    status: str = ""


@dataclass(frozen=True)
class ValidList:
    query: ListProducts
    size: int
    sort: str
    fingerprint: str
    after: listing.Key | None


def encode_cursor(fingerprint: str, key: listing.Key) -> str:
    raw = json.dumps([fingerprint, key.value, key.product_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[str, listing.Key] | None:
    try:
        fp, value, product_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        return None
    if not (isinstance(fp, str) and isinstance(value, (int, str)) and not isinstance(value, bool)
            and is_id(product_id, "prd")):
        return None
    return fp, listing.Key(value, product_id)


def list_query(cmd: ListProducts, terms: list[str]) -> ValidList:
    """The page size, sort and where to continue, or INVALID_ARGUMENT. A page token is only
    good for the filters and sort (`terms` stand for the keyword) of the listing that issued it."""
    v = Violations()
    v.check(0 <= cmd.page_size <= MAX_PAGE_SIZE, "page_size", f"1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
    _short(v, cmd.keyword, "keyword", MAX_KEYWORD)
    v.check(not cmd.category_id or is_id(cmd.category_id, "cat"), "category_id", "a cat_ id, or empty")
    _short(v, cmd.tag, "tag", 32)
    for name, bound in (("min_price", cmd.min_price), ("max_price", cmd.max_price)):
        v.check(bound is None or amount_ok(bound), name, f"0 to {MAX_AMOUNT}")
    if cmd.min_price is not None and cmd.max_price is not None:
        v.check(cmd.min_price <= cmd.max_price, "max_price", "at least min_price")
    sort = cmd.sort or listing.NEWEST
    v.check(sort in listing.SORTS, "sort", ", ".join(SORT_NAMES))
    fingerprint = listing.fingerprint(terms=sorted(terms), category_id=cmd.category_id, tag=cmd.tag.strip(),
                                      min_price=cmd.min_price, max_price=cmd.max_price,
                                      in_stock_only=cmd.in_stock_only, sort=sort,
                                      **({"status": cmd.status} if cmd.status else {}))
    v.check(not cmd.status or cmd.status in product_rules.STATUSES, "status", "DRAFT, ON_SHELF or OFF_SHELF")
    after = None
    if cmd.page_token:
        decoded = _decode_cursor(cmd.page_token)
        if v.check(decoded is not None, "page_token", "not a token from a previous page"):
            v.check(decoded[0] == fingerprint, "page_token", "issued for other filters or another sort")
            after = decoded[1]
    v.raise_if_any()
    return ValidList(cmd, cmd.page_size or DEFAULT_PAGE_SIZE, sort, fingerprint, after)


def set_status(product_id: str, status: str, expected_version: int) -> None:
    v = Violations()
    v.check(is_id(product_id, "prd"), "product_id", "a prd_ id")
    v.check(status in product_rules.STATUSES, "status", "DRAFT, ON_SHELF or OFF_SHELF")
    v.check(expected_version >= 0, "expected_version", "0 (no check) or the version last read")
    v.raise_if_any()


def _category_name(v: Violations, name: str) -> str:
    trimmed = (name or "").strip()
    v.check(0 < len(trimmed) <= MAX_CATEGORY_NAME, "name", f"1 to {MAX_CATEGORY_NAME} characters")
    return trimmed


def create_category(name: str, parent_id: str) -> str:
    """The trimmed name."""
    v = Violations()
    trimmed = _category_name(v, name)
    v.check(not parent_id or is_id(parent_id, "cat"), "parent_id", "a cat_ id, or empty for a root")
    v.raise_if_any()
    return trimmed


def update_category(category_id: str, name: str, expected_version: int) -> str:
    """The trimmed name."""
    v = Violations()
    v.check(is_id(category_id, "cat"), "category_id", "a cat_ id")
    trimmed = _category_name(v, name)
    v.check(expected_version >= 0, "expected_version", "0 (no check) or the version last read")
    v.raise_if_any()
    return trimmed


def adjust(sku_id: str, delta: int, reason: str, idempotency_key: str) -> str:
    """The trimmed reason."""
    v = Violations()
    v.check(is_id(sku_id, "sku"), "sku_id", "a sku_ id")
    v.check(delta != 0 and abs(delta) <= MAX_ADJUST, "delta", f"non-zero, at most {MAX_ADJUST} either way")
    trimmed = (reason or "").strip()
    v.check(0 < len(trimmed) <= MAX_REASON, "reason", f"1 to {MAX_REASON} characters")
    # It becomes a key of the stock document's adjustments map: no dots, no dollar.
    v.check(bool(CODE.match(idempotency_key or "")), "idempotency_key", "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
    v.raise_if_any()
    return trimmed


@dataclass(frozen=True)
class ReturnStock:
    return_id: str
    order_id: str
    lines: list[tuple[str, int]]


def return_stock(cmd: ReturnStock) -> ReturnStock:
    v = Violations()
    v.check(bool(CODE.match(cmd.return_id or "")), "return_id", "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
    v.check(0 < len(cmd.order_id) <= 64, "order_id", "1 to 64 characters")
    _lines(v, cmd.lines)
    v.raise_if_any()
    return cmd


def _lines(v: Violations, lines: list[tuple[str, int]]) -> None:
    if v.check(0 < len(lines) <= MAX_LINES, "lines", f"1 to {MAX_LINES} lines"):
        seen: set[str] = set()
        for i, (sku_id, quantity) in enumerate(lines):
            if v.check(is_id(sku_id, "sku"), f"lines[{i}].sku_id", "a sku_ id"):
                v.check(sku_id not in seen, f"lines[{i}].sku_id", "each SKU at most once")
                seen.add(sku_id)
            v.check(0 < quantity <= MAX_QUANTITY, f"lines[{i}].quantity", f"1 to {MAX_QUANTITY}")


def require_id(value: str, name: str, prefix: str) -> str:
    v = Violations()
    v.check(is_id(value, prefix), name, f"a {prefix}_ id")
    v.raise_if_any()
    return value


def sku_ids(values: list[str]) -> list[str]:
    v = Violations()
    if v.check(len(values) <= MAX_GET_SKUS, "sku_ids", f"at most {MAX_GET_SKUS} ids"):
        for i, value in enumerate(values):
            v.check(is_id(value, "sku"), f"sku_ids[{i}]", "a sku_ id")
    v.raise_if_any()
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class ReserveStock:
    reservation_id: str
    order_id: str
    lines: list[tuple[str, int]]
    expires_at: datetime | None


def reservation_id(value: str, name: str = "reservation_id") -> str:
    v = Violations()
    # It becomes a key of the stock documents' holds map: no dots, no dollar.
    v.check(bool(CODE.match(value or "")), name, "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
    v.raise_if_any()
    return value


def reserve(cmd: ReserveStock) -> ReserveStock:
    v = Violations()
    v.check(bool(CODE.match(cmd.reservation_id or "")), "reservation_id",
            "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
    v.check(0 < len(cmd.order_id) <= 64, "order_id", "1 to 64 characters")
    v.check(cmd.expires_at is not None, "expires_at", "required")
    _lines(v, cmd.lines)
    v.raise_if_any()
    return cmd
