"""The staff console's catalog lists: SKUs with their stock, categories, and flash sales in
every state. Each is scoped to the caller's merchant, checks the caller's roles, takes
filters, and pages by a keyset cursor that is good only for the filters and sort that
issued it (a token carries a digest of them)."""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from siyu_kit import context
from siyu_kit.errors import Violations
from siyu_kit.ids import is_id
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.catalog.application.ports import (ProductRepository, SaleFilter, SkuFilter, StaffCategoryPages,
                                                StaffSalePages, StaffSkuPages)
from services.catalog.application.products import skus_of
from services.catalog.application.validation import MAX_STOCK
from services.catalog.domain import flash_sales as sale_rules, listing, products as product_rules
from services.catalog.domain.flash_sales import FlashSale
from services.catalog.domain.products import Sku
from services.catalog.domain.stock import Stock

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# A filter on the SKU's product (code prefix, product status) is applied to the SKUs a
# batch at a time; one call looks at this many at most and then hands back a token.
SCAN_BATCH = 100
SCAN_LIMIT = 1000

SKU_NEWEST, SKU_BY_ID = "NEWEST", "SKU_ID"
SKU_SORTS = (SKU_NEWEST, SKU_BY_ID)
LATEST_START, EARLIEST_START = "LATEST_START", "EARLIEST_START"
SALE_SORTS = (LATEST_START, EARLIEST_START)
SALE_STATES = (sale_rules.SCHEDULED, sale_rules.RUNNING, sale_rules.ENDED)
# Sort keys hold the start in epoch ms as 13 digits: starts from 1970 up to 2286.
MAX_STARTS_MS = 10 ** 13

CODE_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,64}$")
SKU_ID = re.compile(r"^sku_[0-9A-HJKMNP-TV-Z]{26}$")
CATEGORY_ID = re.compile(r"^cat_[0-9A-HJKMNP-TV-Z]{26}$")
SALE_KEY = re.compile(r"^\d{13}:fls_[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True)
class ListSkus:
    product_id: str = ""
    code_prefix: str = ""
    max_available: int | None = None  # low stock: available ≤ this
    product_status: str = ""  # a product status name, or empty for every status
    sort: str = ""  # NEWEST (the default) or SKU_ID
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class StaffSku:
    sku: Sku
    product_id: str
    product_title: str
    product_status: str
    stock: Stock


@dataclass(frozen=True)
class ListCategories:
    parent_id: str = ""
    roots_only: bool = False
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class ListSales:
    state: str = ""  # SCHEDULED, RUNNING, ENDED, or empty for every state
    product_id: str = ""
    starts_from: datetime | None = None
    starts_before: datetime | None = None
    sort: str = ""  # LATEST_START (the default) or EARLIEST_START
    page_size: int = 0
    page_token: str = ""


def _token(fp: str, position: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([fp, position]).encode()).decode().rstrip("=")


def _after(v: Violations, token: str, fp: str, position: re.Pattern) -> str:
    """Where the previous page stopped ("" for the first page); a violation on page_token
    for a token this listing did not issue, or issued for other filters."""
    if not token:
        return ""
    try:
        got, at = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        got, at = None, None
    if not (isinstance(got, str) and isinstance(at, str) and position.match(at)):
        v.add("page_token", "not a token from a previous page")
        return ""
    v.check(got == fp, "page_token", "issued for other filters or another sort")
    return at


def _size(v: Violations, size: int) -> int:
    v.check(0 <= size <= MAX_PAGE_SIZE, "page_size", f"1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
    return size or DEFAULT_PAGE_SIZE


def _starts_ms(v: Violations, moment: datetime | None, name: str) -> int | None:
    if moment is None:
        return None
    ms = epoch_ms(moment)
    v.check(0 <= ms < MAX_STARTS_MS, name, "from 1970 to 2286")
    return ms


def _staff_sku(stock: Stock, product: dict | None) -> StaffSku | None:
    sku = next((s for s in skus_of(product) if s.sku_id == stock.sku_id), None) if product else None
    if sku is None:
        return None
    return StaffSku(sku, product["_id"], product["title"], product["status"], stock)


class StaffLists:
    def __init__(self, products: ProductRepository, skus: StaffSkuPages, categories: StaffCategoryPages,
                 sales: StaffSalePages, clock: Callable[[], datetime] = utcnow):
        self.products = products
        self.skus = skus
        self.categories = categories
        self.sales = sales
        self.clock = clock

    # ---- SKUs with their stock

    async def list_skus(self, cmd: ListSkus) -> tuple[list[StaffSku], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(not cmd.product_id or is_id(cmd.product_id, "prd"), "product_id", "a prd_ id")
        v.check(bool(CODE_PREFIX.match(cmd.code_prefix)), "code_prefix",
                "up to 64 characters of A-Z, a-z, 0-9, _ or -")
        v.check(cmd.max_available is None or 0 <= cmd.max_available <= MAX_STOCK, "max_available",
                f"0 to {MAX_STOCK}")
        v.check(not cmd.product_status or cmd.product_status in product_rules.STATUSES, "product_status",
                "DRAFT, ON_SHELF or OFF_SHELF")
        sort = cmd.sort or SKU_NEWEST
        v.check(sort in SKU_SORTS, "sort", ", ".join(SKU_SORTS))
        size = _size(v, cmd.page_size)
        fp = listing.fingerprint(list="skus", product_id=cmd.product_id, code_prefix=cmd.code_prefix,
                                 max_available=cmd.max_available, product_status=cmd.product_status, sort=sort)
        after = _after(v, cmd.page_token, fp, SKU_ID)
        v.raise_if_any()

        def wanted(row: StaffSku) -> bool:
            return row.sku.code.startswith(cmd.code_prefix) and \
                (not cmd.product_status or row.product_status == cmd.product_status)

        where = SkuFilter(cmd.product_id, cmd.max_available)
        # Without a filter on the product every SKU the store returns is wanted: one batch
        # of a page and one more tells whether a next page exists.
        batch_size = SCAN_BATCH if (cmd.code_prefix or cmd.product_status) else size + 1
        found: list[StaffSku] = []
        scanned = 0
        while True:
            batch = await self.skus.page(merchant_id, where, after, sort == SKU_NEWEST, batch_size)
            products = {p["_id"]: p for p in await self.products.get_many(
                merchant_id, sorted({s.product_id for s in batch}))}
            for stock in batch:
                row = _staff_sku(stock, products.get(stock.product_id))
                if row is None or not wanted(row):
                    continue
                if len(found) == size:
                    return found, _token(fp, found[-1].sku.sku_id)
                found.append(row)
            scanned += len(batch)
            if len(batch) < batch_size:
                return found, ""
            after = batch[-1].sku_id
            if scanned >= SCAN_LIMIT:
                # Looked at enough for one call: go on after the last SKU looked at.
                return found, _token(fp, after)

    # ---- categories

    async def list_categories(self, cmd: ListCategories) -> tuple[list[dict], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(not cmd.parent_id or is_id(cmd.parent_id, "cat"), "parent_id", "a cat_ id")
        v.check(not (cmd.parent_id and cmd.roots_only), "roots_only", "not together with parent_id")
        size = _size(v, cmd.page_size)
        fp = listing.fingerprint(list="categories", parent_id=cmd.parent_id, roots_only=cmd.roots_only)
        after = _after(v, cmd.page_token, fp, CATEGORY_ID)
        v.raise_if_any()
        parent = cmd.parent_id or ("" if cmd.roots_only else None)
        docs = await self.categories.page(merchant_id, parent, after, size + 1)
        if len(docs) > size:
            return docs[:size], _token(fp, docs[size - 1]["_id"])
        return docs, ""

    # ---- flash sales

    async def list_flash_sales(self, cmd: ListSales) -> tuple[list[FlashSale], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(not cmd.state or cmd.state in SALE_STATES, "state", ", ".join(SALE_STATES))
        v.check(not cmd.product_id or is_id(cmd.product_id, "prd"), "product_id", "a prd_ id")
        starts_from = _starts_ms(v, cmd.starts_from, "starts_from")
        starts_before = _starts_ms(v, cmd.starts_before, "starts_before")
        if starts_from is not None and starts_before is not None:
            v.check(starts_before > starts_from, "starts_before", "after starts_from")
        sort = cmd.sort or LATEST_START
        v.check(sort in SALE_SORTS, "sort", ", ".join(SALE_SORTS))
        size = _size(v, cmd.page_size)
        fp = listing.fingerprint(list="flash_sales", state=cmd.state, product_id=cmd.product_id,
                                 starts_from=starts_from, starts_before=starts_before, sort=sort)
        after = _after(v, cmd.page_token, fp, SALE_KEY)
        v.raise_if_any()
        now = to_storage_precision(self.clock())
        key_from = sale_rules.starts_bound(starts_from) if starts_from is not None else ""
        key_before = sale_rules.starts_bound(starts_before) if starts_before is not None else ""
        ends_after = ends_by = None
        # A sale is SCHEDULED before its start, RUNNING from its start to its end, ENDED after.
        started_by = sale_rules.starts_bound(epoch_ms(now) + 1)  # keys of sales started by now are below
        if cmd.state == sale_rules.SCHEDULED:
            key_from = max(key_from, started_by)
        elif cmd.state == sale_rules.RUNNING:
            key_before = min(key_before, started_by) if key_before else started_by
            ends_after = now
        elif cmd.state == sale_rules.ENDED:
            ends_by = now
        where = SaleFilter(cmd.product_id, key_from, key_before, ends_after, ends_by)
        sales = await self.sales.staff_page(merchant_id, where, after, sort == LATEST_START, size + 1)
        token = _token(fp, sales[size - 1].sort_key) if len(sales) > size else ""
        sales = sales[:size]
        # The store compares the end time to the second (docs/storage.md): the state of each
        # sale listed is decided here, exactly.
        if cmd.state:
            sales = [s for s in sales if s.state(now) == cmd.state]
        return sales, token
