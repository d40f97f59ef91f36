"""Product use cases: upsert by code, shelving, browse and search, and SKU lookups for orders."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from siyu_kit import context, logging as slog
from siyu_kit.errors import Conflict, DomainError, FailedPrecondition, FieldViolation, NotFound
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, now_ms, utcnow

from services.catalog.application import validation
from services.catalog.application.ledger import Ledger
from services.catalog.application.ports import (CategoryRepository, MemberPricing, ProductFilter, ProductRepository,
                                                StockRepository)
from services.catalog.domain import categories, listing, products as rules
from services.catalog.domain import search, stock as stock_rules
from services.catalog.domain.member_price import MemberPrice, member_price
from services.catalog.domain.products import LimitedTimePrice, Sku
from services.catalog.domain.stock import Movement, Stock

# An in-stock listing checks stock a batch of candidates at a time and gives up a page
# (returning a token to continue) after scanning this many products.
SCAN_BATCH = 100
SCAN_LIMIT = 1000


log = slog.get("siyu.catalog.products")


@dataclass(frozen=True)
class ProductView:
    doc: dict
    available: dict[str, int]  # sku id → available units
    # sku id → what the calling member would pay, for a member's call (domain.member_price)
    member_prices: dict[str, MemberPrice] = field(default_factory=dict)

    def in_stock(self) -> bool:
        return any(self.available.get(s["sku_id"], 0) > 0 for s in self.doc.get("skus") or [])


def _limited_of(raw: dict | None) -> LimitedTimePrice | None:
    return LimitedTimePrice(int(raw["price"]), int(raw["starts_ms"]), int(raw["ends_ms"])) if raw else None


def skus_of(doc: dict) -> list[Sku]:
    return [Sku(s["sku_id"], s["code"], dict(s.get("attributes") or {}), int(s["list_price"]),
                s.get("currency") or "CNY", tuple((t["tier"], int(t["price"])) for t in s.get("tier_prices") or []),
                _limited_of(s.get("limited_time_price")), int(s.get("weight_g") or 0)) for s in doc.get("skus") or []]


def _sku_fields(skus: list[Sku]) -> list[dict]:
    def limited(p: LimitedTimePrice | None) -> dict | None:
        return {"price": p.price, "starts_ms": p.starts_ms, "ends_ms": p.ends_ms} if p else None
    return [{"sku_id": s.sku_id, "code": s.code, "attributes": s.attributes, "list_price": s.list_price,
             "currency": s.currency, "tier_prices": [{"tier": t, "price": p} for t, p in s.tier_prices],
             "limited_time_price": limited(s.limited_time_price), "weight_g": s.weight_g} for s in skus]


def _is_staff() -> bool:
    return context.current().caller_kind == "staff"


def _check_status(current: str | None, target: str) -> None:
    if not rules.can_change_status(current, target):
        raise FailedPrecondition(f"a product cannot go from {current or 'nothing'} to {target}",
                                 reason="STATUS_TRANSITION")


def _check_version(doc: dict | None, expected: int) -> None:
    if expected and (doc is None or int(doc["version"]) != expected):
        raise Conflict("the product is not at the expected version", reason="VERSION_CONFLICT")


@dataclass(frozen=True)
class SkuDetail:
    sku: Sku
    product_id: str
    product_title: str
    product_status: str
    available: int
    category_path: tuple[str, ...] = ()
    # The product's commission_excluded: orders of it earn no commission.
    commission_excluded: bool = False


class ProductUseCases:
    def __init__(self, products: ProductRepository, categories: CategoryRepository, stock: StockRepository,
                 ledger: Ledger, pricing: MemberPricing | None = None):
        self.products = products
        self.categories = categories
        self.stock = stock
        self.ledger = ledger
        # The member's tier for "my price"; None: no member prices are shown.
        self.pricing = pricing

    async def with_member_prices(self, views: list[ProductView]) -> list[ProductView]:
        """For a member's call: each SKU's price for this member, by one tier look-up for
        the whole page. A member service that does not answer leaves the prices out rather
        than failing the page (checkout still charges the member's price)."""
        ctx = context.current()
        if self.pricing is None or ctx.caller_kind != "member" or not views:
            return views
        try:
            tier = await self.pricing.pricing(ctx.caller_id)
        except DomainError as error:
            log.warning("member_price.unavailable", reason=error.reason, code=error.code.name)
            return views
        now = now_ms()
        out = []
        for view in views:
            prices = {}
            for sku in skus_of(view.doc):
                found = member_price(sku.list_price, tier.tier, dict(sku.tier_prices), tier.discount_bp,
                                     sku.limited_time_price, now)
                if found is not None:
                    prices[sku.sku_id] = found
            out.append(replace(view, member_prices=prices))
        return out

    async def _seed_stock(self, merchant_id: str, product_id: str, created: list[tuple[Sku, int]]) -> None:
        """Give SKUs that have no stock document yet their initial stock, exactly once."""
        for sku, quantity in created:
            fresh = await self.stock.add(Stock(sku.sku_id, merchant_id, product_id, on_hand=quantity, reserved=0,
                                               available=quantity))
            if fresh:
                await self.ledger.record(merchant_id, Movement(stock_rules.INITIAL, sku.sku_id, quantity))

    async def _with_availability(self, merchant_id: str, docs: list[dict]) -> list[ProductView]:
        ids = [s["sku_id"] for d in docs for s in d.get("skus") or []]
        levels = {s.sku_id: s.available for s in await self.stock.get_many(merchant_id, ids)}
        return [ProductView(d, levels) for d in docs]

    async def _category_path(self, merchant_id: str, category_id: str) -> list[str]:
        if not category_id:
            return []
        category = await self.categories.get(merchant_id, category_id)
        if category is None:
            # A referenced id that is not the merchant's is missing, as for every other reference.
            raise NotFound("no such category", reason="CATEGORY_NOT_FOUND",
                           violations=[FieldViolation("category_id", "no such category")])
        return categories.path(category_id, list(category.get("ancestor_ids") or []))

    async def _upsert(self, merchant_id: str, cmd: validation.ValidUpsert) -> tuple[ProductView, bool]:
        path = await self._category_path(merchant_id, cmd.category_id)
        now = utcnow()
        content = {"title": cmd.title, "category_id": cmd.category_id, "category_path": path, "tags": cmd.tags,
                   "media_urls": cmd.media_urls, "description": cmd.description,
                   "search_terms": search.title_terms(cmd.title), "updated_ms": epoch_ms(now),
                   # a flag written by $set comes back as an int: stored as 0/1
                   "commission_excluded": int(cmd.commission_excluded)}
        existing = await self.products.by_code(merchant_id, cmd.code)
        created = False
        if existing is None:
            _check_version(None, cmd.expected_version)
            status = cmd.status or rules.DRAFT
            _check_status(None, status)
            merge = rules.merge_skus([], cmd.skus, lambda: new_id("sku"))
            product_id = new_id("prd")
            created = await self.products.add({
                "id": product_id, "merchant_id": merchant_id, "code": cmd.code, **content, "status": status,
                "skus": _sku_fields(merge.skus), "min_price": rules.min_price(merge.skus), "sales": 0,
                "created_at": now, "version": 1})
            if created:
                await self._seed_stock(merchant_id, product_id, merge.created)
            else:
                # Another upsert of the same code won the insert: update it instead.
                existing = await self.products.by_code(merchant_id, cmd.code)
                if existing is None:
                    raise Conflict("the product changed meanwhile; try again")
        if existing is not None:
            _check_version(existing, cmd.expected_version)
            status = cmd.status or existing["status"]
            _check_status(existing["status"], status)
            merge = rules.merge_skus(skus_of(existing), cmd.skus, lambda: new_id("sku"))
            changed = await self.products.update(merchant_id, existing["_id"], existing["version"], {
                **content, "status": status, "skus": _sku_fields(merge.skus),
                "min_price": rules.min_price(merge.skus)})
            if not changed:
                raise Conflict("the product changed meanwhile; try again", reason="VERSION_CONFLICT")
            # New SKUs get stock; SKUs whose stock was never written (an interrupted first
            # upsert) get it now; existing stock is never touched.
            known = {s.sku_id for s in await self.stock.get_many(merchant_id, [s.sku_id for s in merge.skus])}
            initial = {s.code: s.initial_stock for s in cmd.skus}
            await self._seed_stock(merchant_id, existing["_id"],
                                   [(s, initial.get(s.code, 0)) for s in merge.skus if s.sku_id not in known])
            product_id = existing["_id"]
        doc = await self.products.get(merchant_id, product_id)
        return (await self._with_availability(merchant_id, [doc]))[0], created

    async def upsert_product(self, cmd: validation.UpsertProduct) -> tuple[ProductView, bool]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        valid = validation.upsert(cmd)
        return await self._upsert(ctx.require_merchant(), valid)

    async def set_product_status(self, product_id: str, status: str, expected_version: int) -> ProductView:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        validation.set_status(product_id, status, expected_version)
        merchant_id = ctx.require_merchant()
        doc = await self.products.get(merchant_id, product_id)
        if doc is None:
            raise NotFound("no such product")
        _check_version(doc, expected_version)
        _check_status(doc["status"], status)
        if doc["status"] != status:
            if not await self.products.update(merchant_id, product_id, doc["version"],
                                              {"status": status, "updated_ms": now_ms()}):
                raise Conflict("the product changed meanwhile; try again", reason="VERSION_CONFLICT")
            doc = await self.products.get(merchant_id, product_id)
        return (await self._with_availability(merchant_id, [doc]))[0]

    async def get_product(self, product_id: str) -> ProductView:
        merchant_id = context.current().require_merchant()
        validation.require_id(product_id, "product_id", "prd")
        doc = await self.products.get(merchant_id, product_id)
        if doc is None or not rules.visible_to(doc["status"], is_staff=_is_staff()):
            raise NotFound("no such product")
        return (await self.with_member_prices(await self._with_availability(merchant_id, [doc])))[0]

    async def _page(self, merchant_id: str, valid: validation.ValidList,
                    where: ProductFilter) -> tuple[list[ProductView], str]:
        """One page in keyset order. A product whose price or sales change while someone pages
        may move past or behind their position, as in any keyset listing; every other product
        is listed exactly once, however many are added or changed meanwhile."""
        sort = listing.SORTS[valid.sort]

        def token(doc: dict) -> str:
            return validation.encode_cursor(valid.fingerprint, listing.key_of(sort, doc))

        if not valid.query.in_stock_only:
            docs = await self.products.page(merchant_id, where, sort, valid.after, valid.size + 1)
            page = docs[:valid.size]
            return (await self._with_availability(merchant_id, page),
                    token(page[-1]) if len(docs) > valid.size else "")
        # Stock is not kept on the product (that would add writes to every reservation), so
        # candidates are checked a batch at a time.
        found: list[ProductView] = []
        after, scanned = valid.after, 0
        while scanned < SCAN_LIMIT:
            batch = await self.products.page(merchant_id, where, sort, after, SCAN_BATCH)
            for i, view in enumerate(await self._with_availability(merchant_id, batch)):
                if view.in_stock():
                    found.append(view)
                if len(found) == valid.size:
                    more = i + 1 < len(batch) or len(batch) == SCAN_BATCH
                    return found, token(view.doc) if more else ""
            if len(batch) < SCAN_BATCH:
                return found, ""
            after, scanned = listing.key_of(sort, batch[-1]), scanned + len(batch)
        # Scanned enough for one call: continue after the last product looked at.
        return found, validation.encode_cursor(valid.fingerprint, after)

    async def list_products(self, cmd: validation.ListProducts) -> tuple[list[ProductView], str]:
        merchant_id = context.current().require_merchant()
        terms = search.keyword_terms(cmd.keyword)
        valid = validation.list_query(cmd, terms)
        if cmd.keyword.strip() and not terms:
            return [], ""  # nothing searchable in the keyword: no title can match
        where = ProductFilter(status=(cmd.status or None) if _is_staff() else rules.ON_SHELF, terms=tuple(terms),
                              category_id=cmd.category_id, tag=cmd.tag.strip(), min_price=cmd.min_price,
                              max_price=cmd.max_price)
        views, token = await self._page(merchant_id, valid, where)
        return await self.with_member_prices(views), token

    async def get_skus(self, sku_ids: list[str]) -> list[SkuDetail]:
        merchant_id = context.current().require_merchant()
        ids = validation.sku_ids(sku_ids)
        stock = {s.sku_id: s for s in await self.stock.get_many(merchant_id, ids)}
        products = {p["_id"]: p for p in await self.products.get_many(
            merchant_id, sorted({s.product_id for s in stock.values()}))}
        found = []
        for sku_id in ids:
            level = stock.get(sku_id)
            product = products.get(level.product_id) if level else None
            sku = next((s for s in skus_of(product) if s.sku_id == sku_id), None) if product else None
            if sku is not None:
                found.append(SkuDetail(sku, product["_id"], product["title"], product["status"], level.available,
                                       tuple(product.get("category_path") or ()),
                                       commission_excluded=bool(product.get("commission_excluded"))))
        return found
