"""What a well-formed catalog request looks like. Every violation is reported at once,
and a request with any violation changes nothing."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime

from siyu_kit.errors import Violations
from siyu_kit.ids import is_id
from siyu_kit.money import DEFAULT_CURRENCY

from services.catalog.domain import products as product_rules
from services.catalog.domain.products import SkuSpec

CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TITLE = 120
MAX_SKUS = 100
MAX_STOCK = 10_000_000
MAX_TAGS = 20
MAX_MEDIA = 20
MAX_DESCRIPTION = 20_000
MAX_ATTRIBUTES = 10
MAX_LINES = 100
MAX_QUANTITY = 1_000_000
MAX_KEYWORD = 64
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_GET_SKUS = 200


@dataclass(frozen=True)
class SkuInput:
    code: str
    attributes: dict[str, str] = field(default_factory=dict)
    list_price: int = 0
    currency: str = ""
    initial_stock: int = 0


@dataclass(frozen=True)
class UpsertProduct:
    code: str
    title: str
    category_id: str = ""
    tags: list[str] = field(default_factory=list)
    media_urls: list[str] = field(default_factory=list)
    description: str = ""
    status: str = ""  # a product status name, or empty for the default
    skus: list[SkuInput] = field(default_factory=list)


@dataclass(frozen=True)
class ValidUpsert:
    code: str
    title: str
    category_id: str
    tags: list[str]
    media_urls: list[str]
    description: str
    status: str
    skus: list[SkuSpec]


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
    _short(v, cmd.category_id, "category_id", 64)
    if v.check(len(cmd.tags) <= MAX_TAGS, "tags", f"at most {MAX_TAGS} tags"):
        for i, tag in enumerate(cmd.tags):
            v.check(0 < len(tag.strip()) <= 32, f"tags[{i}]", "1 to 32 characters")
    if v.check(len(cmd.media_urls) <= MAX_MEDIA, "media_urls", f"at most {MAX_MEDIA} URLs"):
        for i, url in enumerate(cmd.media_urls):
            v.check(url.startswith(("https://", "http://")) and len(url) <= 1024, f"media_urls[{i}]",
                    "an http(s) URL of at most 1024 characters")
    _short(v, cmd.description, "description", MAX_DESCRIPTION)
    status = cmd.status or product_rules.DRAFT
    v.check(status in product_rules.STATUSES, "status", "DRAFT, ON_SHELF or OFF_SHELF")
    if v.check(0 < len(cmd.skus) <= MAX_SKUS, "skus", f"1 to {MAX_SKUS} SKUs"):
        seen: set[str] = set()
        for i, sku in enumerate(cmd.skus):
            at = f"skus[{i}]"
            if v.check(bool(CODE.match(sku.code or "")), f"{at}.code", "1 to 64 characters of A-Z, a-z, 0-9, _ or -"):
                v.check(sku.code not in seen, f"{at}.code", "duplicate SKU code")
                seen.add(sku.code)
            v.check(sku.list_price >= 0, f"{at}.list_price.amount", "must not be negative")
            v.check(sku.currency in ("", DEFAULT_CURRENCY), f"{at}.list_price.currency", "only CNY")
            v.check(0 <= sku.initial_stock <= MAX_STOCK, f"{at}.initial_stock", f"0 to {MAX_STOCK}")
            if v.check(len(sku.attributes) <= MAX_ATTRIBUTES, f"{at}.attributes",
                       f"at most {MAX_ATTRIBUTES} attributes"):
                for key, value in sku.attributes.items():
                    v.check(_key_ok(key), f"{at}.attributes", f"name {key!r}: 1 to 32 characters, no '.' or leading '$'")
                    v.check(len(value) <= 64, f"{at}.attributes", f"value of {key!r}: at most 64 characters")
    v.raise_if_any()
    return ValidUpsert(
        code=cmd.code, title=title, category_id=cmd.category_id, tags=[t.strip() for t in cmd.tags],
        media_urls=list(cmd.media_urls), description=cmd.description, status=status,
        skus=[SkuSpec(s.code, dict(s.attributes), s.list_price, DEFAULT_CURRENCY, s.initial_stock) for s in cmd.skus])


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def list_query(keyword: str, category_id: str, tag: str, page_size: int, page_token: str) -> tuple[int, str]:
    """The page size and the id to continue before, or INVALID_ARGUMENT."""
    v = Violations()
    v.check(0 <= page_size <= MAX_PAGE_SIZE, "page_size", f"1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
    _short(v, keyword, "keyword", MAX_KEYWORD)
    _short(v, category_id, "category_id", 64)
    _short(v, tag, "tag", 32)
    before = ""
    if page_token:
        try:
            before = base64.urlsafe_b64decode(page_token + "=" * (-len(page_token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            before = ""
        v.check(is_id(before, "prd"), "page_token", "not a token from a previous page")
    v.raise_if_any()
    return page_size or DEFAULT_PAGE_SIZE, before


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
    if v.check(0 < len(cmd.lines) <= MAX_LINES, "lines", f"1 to {MAX_LINES} lines"):
        seen: set[str] = set()
        for i, (sku_id, quantity) in enumerate(cmd.lines):
            if v.check(is_id(sku_id, "sku"), f"lines[{i}].sku_id", "a sku_ id"):
                v.check(sku_id not in seen, f"lines[{i}].sku_id", "each SKU at most once")
                seen.add(sku_id)
            v.check(0 < quantity <= MAX_QUANTITY, f"lines[{i}].quantity", f"1 to {MAX_QUANTITY}")
    v.raise_if_any()
    return cmd
