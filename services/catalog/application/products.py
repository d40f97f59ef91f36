"""Product use cases: upsert by code, browse, search, and SKU lookups for orders."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit import context
from siyu_kit.db import run_sync
from siyu_kit.errors import Conflict, NotFound
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, now_ms, utcnow

from services.catalog.adapters import repositories as repo
from services.catalog.application import validation
from services.catalog.domain import products as rules
from services.catalog.domain import search, stock as stock_rules
from services.catalog.domain.products import Sku


@dataclass(frozen=True)
class ProductView:
    doc: dict
    available: dict[str, int]  # sku id → available units


def _skus_of(doc: dict) -> list[Sku]:
    return [Sku(s["sku_id"], s["code"], dict(s.get("attributes") or {}), int(s["list_price"]),
                s.get("currency") or "CNY") for s in doc.get("skus") or []]


def _sku_fields(skus: list[Sku]) -> list[dict]:
    return [{"sku_id": s.sku_id, "code": s.code, "attributes": s.attributes, "list_price": s.list_price,
             "currency": s.currency} for s in skus]


def _is_staff() -> bool:
    return context.current().caller_kind == "staff"


def _seed_stock(merchant_id: str, product_id: str, created: list[tuple[Sku, int]]) -> None:
    """Give SKUs that have no stock document yet their initial stock, exactly once."""
    for sku, quantity in created:
        fresh = repo.stock_insert({"id": sku.sku_id, "merchant_id": merchant_id, "product_id": product_id,
                                   "on_hand": quantity, "reserved": 0, "available": quantity, "holds": {},
                                   "updated_ms": now_ms()})
        if fresh:
            repo.movement_record(merchant_id, sku.sku_id, stock_rules.INITIAL, quantity)


def _with_availability(merchant_id: str, docs: list[dict]) -> list[ProductView]:
    ids = [s["sku_id"] for d in docs for s in d.get("skus") or []]
    levels = {s["_id"]: int(s["available"]) for s in repo.stock_get_many(merchant_id, ids)}
    return [ProductView(d, levels) for d in docs]


def _upsert(merchant_id: str, cmd: validation.ValidUpsert) -> tuple[ProductView, bool]:
    now = utcnow()
    existing = repo.product_by_code(merchant_id, cmd.code)
    created = False
    if existing is None:
        merge = rules.merge_skus([], cmd.skus, lambda: new_id("sku"))
        product_id = new_id("prd")
        created = repo.product_insert({
            "id": product_id, "merchant_id": merchant_id, "code": cmd.code, "title": cmd.title,
            "category_id": cmd.category_id, "tags": cmd.tags, "media_urls": cmd.media_urls,
            "description": cmd.description, "status": cmd.status, "skus": _sku_fields(merge.skus),
            "min_price": rules.min_price(merge.skus), "search_terms": search.title_terms(cmd.title),
            "created_at": now, "updated_ms": epoch_ms(now), "version": 1})
        if created:
            _seed_stock(merchant_id, product_id, merge.created)
        else:
            # Another upsert of the same code won the insert: update it instead.
            existing = repo.product_by_code(merchant_id, cmd.code)
            if existing is None:
                raise Conflict("the product changed meanwhile; try again")
    if existing is not None:
        merge = rules.merge_skus(_skus_of(existing), cmd.skus, lambda: new_id("sku"))
        changed = repo.product_update(merchant_id, existing["_id"], existing["version"], {
            "title": cmd.title, "category_id": cmd.category_id, "tags": cmd.tags, "media_urls": cmd.media_urls,
            "description": cmd.description, "status": cmd.status, "skus": _sku_fields(merge.skus),
            "min_price": rules.min_price(merge.skus), "search_terms": search.title_terms(cmd.title),
            "updated_ms": epoch_ms(now)})
        if not changed:
            raise Conflict("the product changed meanwhile; try again", reason="VERSION_CONFLICT")
        # New SKUs get stock; SKUs whose stock was never written (an interrupted first
        # upsert) get it now; existing stock is never touched.
        known = {s["_id"] for s in repo.stock_get_many(merchant_id, [s.sku_id for s in merge.skus])}
        initial = {s.code: s.initial_stock for s in cmd.skus}
        _seed_stock(merchant_id, existing["_id"],
                    [(s, initial.get(s.code, 0)) for s in merge.skus if s.sku_id not in known])
        product_id = existing["_id"]
    doc = repo.product_get(merchant_id, product_id)
    return _with_availability(merchant_id, [doc])[0], created


async def upsert_product(cmd: validation.UpsertProduct) -> tuple[ProductView, bool]:
    ctx = context.current()
    ctx.require_staff("OPERATOR")
    valid = validation.upsert(cmd)
    return await run_sync(_upsert, ctx.require_merchant(), valid)


async def get_product(product_id: str) -> ProductView:
    merchant_id = context.current().require_merchant()
    validation.require_id(product_id, "product_id", "prd")
    doc = await run_sync(repo.product_get, merchant_id, product_id)
    if doc is None or not rules.visible_to(doc["status"], is_staff=_is_staff()):
        raise NotFound("no such product")
    return (await run_sync(_with_availability, merchant_id, [doc]))[0]


async def list_products(keyword: str, category_id: str, tag: str, page_size: int,
                        page_token: str) -> tuple[list[ProductView], str]:
    merchant_id = context.current().require_merchant()
    size, before = validation.list_query(keyword, category_id, tag, page_size, page_token)
    terms = search.keyword_terms(keyword)
    if keyword.strip() and not terms:
        return [], ""  # nothing searchable in the keyword: no title can match

    def page() -> tuple[list[ProductView], str]:
        docs = repo.products_page(merchant_id, status=None if _is_staff() else rules.ON_SHELF, terms=terms,
                                  category_id=category_id, tag=tag, before_id=before, limit=size + 1)
        more = len(docs) > size
        docs = docs[:size]
        token = validation.encode_cursor(docs[-1]["_id"]) if more else ""
        return _with_availability(merchant_id, docs), token

    return await run_sync(page)


@dataclass(frozen=True)
class SkuDetail:
    sku: Sku
    product_id: str
    product_title: str
    product_status: str
    available: int


def _sku_details(merchant_id: str, ids: list[str]) -> list[SkuDetail]:
    stock = {s["_id"]: s for s in repo.stock_get_many(merchant_id, ids)}
    products = {p["_id"]: p for p in repo.products_get_many(merchant_id, sorted({s["product_id"] for s in stock.values()}))}
    found = []
    for sku_id in ids:
        level = stock.get(sku_id)
        product = products.get(level["product_id"]) if level else None
        sku = next((s for s in _skus_of(product) if s.sku_id == sku_id), None) if product else None
        if sku is not None:
            found.append(SkuDetail(sku, product["_id"], product["title"], product["status"], int(level["available"])))
    return found


async def get_skus(sku_ids: list[str]) -> list[SkuDetail]:
    merchant_id = context.current().require_merchant()
    ids = validation.sku_ids(sku_ids)
    return await run_sync(_sku_details, merchant_id, ids)
