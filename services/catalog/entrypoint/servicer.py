"""CatalogService over gRPC: proto in, use case, proto out. No rules here."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from siyu_kit.cancellation import deadline_of
from siyu_kit.protos import aware, money, timestamp

from services.catalog.adapters.messages import flash_sale_message, reservation_message, sku_detail_message
from services.catalog.application import flash_sales, products, validation
from services.catalog.application.categories import CategoryUseCases
from services.catalog.application.flash_sales import FlashSaleUseCases
from services.catalog.application.inventory import InventoryUseCases
from services.catalog.application.products import ProductUseCases
from services.catalog.application.staff_lists import ListCategories, ListSales, ListSkus, StaffLists, StaffSku
from services.catalog.application.stock import StockUseCases
from services.catalog.domain import flash_sales as flash_rules
from services.catalog.domain.stock import Stock
from services.catalog.entrypoint.personal_data_servicer import PersonalDataRpcs
from services.catalog.application.personal_data import CatalogDataExport

STATUS_NAMES = {catalog_pb2.PRODUCT_STATUS_DRAFT: "DRAFT", catalog_pb2.PRODUCT_STATUS_ON_SHELF: "ON_SHELF",
                catalog_pb2.PRODUCT_STATUS_OFF_SHELF: "OFF_SHELF"}
STATUS_NUMBERS = {v: k for k, v in STATUS_NAMES.items()}


SORT_NAMES = {catalog_pb2.PRODUCT_SORT_NEWEST: "NEWEST", catalog_pb2.PRODUCT_SORT_PRICE_ASC: "PRICE_ASC",
              catalog_pb2.PRODUCT_SORT_PRICE_DESC: "PRICE_DESC", catalog_pb2.PRODUCT_SORT_SALES_DESC: "SALES_DESC"}


# Unspecified ("") reads as a flash sale.
ACTIVITY_KIND_NAMES = {catalog_pb2.ACTIVITY_KIND_FLASH_SALE: "FLASH_SALE", catalog_pb2.ACTIVITY_KIND_GROUP_BUY: "GROUP_BUY", catalog_pb2.ACTIVITY_KIND_BARGAIN: "BARGAIN",
                       catalog_pb2.ACTIVITY_KIND_POINTS_MALL: "POINTS_MALL"}


def _enum_name(names: dict[int, str], number: int) -> str:
    """"" for unspecified; a name the validation rejects for a number it does not know."""
    return names.get(number, f"UNKNOWN_{number}") if number else ""


def _ms_timestamp(ms: int):
    return timestamp(datetime.fromtimestamp(ms / 1000, timezone.utc))


def _sku(sku, product_id: str, available: int, mine=None, commission_excluded: bool = False) -> catalog_pb2.Sku:
    limited = sku.limited_time_price
    return catalog_pb2.Sku(
        member_price=money(mine.price, sku.currency) if mine else None,
        member_price_kind=mine.kind if mine else "",
        sku_id=sku.sku_id, product_id=product_id, code=sku.code, attributes=sku.attributes,
        list_price=money(sku.list_price, sku.currency), available=available, weight_g=sku.weight_g,
        commission_excluded=commission_excluded,
        tier_prices=[catalog_pb2.TierPrice(tier=t, price=money(p, sku.currency)) for t, p in sku.tier_prices],
        limited_time_price=catalog_pb2.LimitedTimePrice(
            price=money(limited.price, sku.currency), starts_at=_ms_timestamp(limited.starts_ms),
            ends_at=_ms_timestamp(limited.ends_ms)) if limited else None)


def _price(message) -> validation.PriceInput:
    return validation.PriceInput(message.amount, message.currency)


def _sku_input(s: catalog_pb2.SkuInput) -> validation.SkuInput:
    limited = None
    if s.HasField("limited_time_price"):
        ltp = s.limited_time_price
        limited = validation.LimitedTimeInput(
            _price(ltp.price), aware(ltp.starts_at.ToDatetime()) if ltp.HasField("starts_at") else None,
            aware(ltp.ends_at.ToDatetime()) if ltp.HasField("ends_at") else None)
    return validation.SkuInput(code=s.code, attributes=dict(s.attributes), list_price=s.list_price.amount,
                               currency=s.list_price.currency, initial_stock=s.initial_stock,
                               tier_prices=[(t.tier, _price(t.price)) for t in s.tier_prices],
                               limited_time_price=limited, weight_g=s.weight_g)


def _product(view: products.ProductView) -> catalog_pb2.Product:
    doc = view.doc
    skus = products.skus_of(doc)
    excluded = bool(doc.get("commission_excluded"))
    return catalog_pb2.Product(
        product_id=doc["_id"], code=doc["code"], title=doc["title"], category_id=doc.get("category_id", ""),
        tags=doc.get("tags") or [], media_urls=doc.get("media_urls") or [],
        description=doc.get("description", ""), status=STATUS_NUMBERS[doc["status"]],
        skus=[_sku(s, doc["_id"], view.available.get(s.sku_id, 0), view.member_prices.get(s.sku_id), excluded)
              for s in skus],
        commission_excluded=excluded,
        min_price=money(int(doc.get("min_price", 0))), created_at=timestamp(aware(doc["created_at"])),
        version=int(doc["version"]), sales=int(doc.get("sales", 0)),
        category_path=doc.get("category_path") or [])


def _category(doc: dict) -> catalog_pb2.Category:
    return catalog_pb2.Category(category_id=doc["_id"], parent_id=doc.get("parent_id", ""), name=doc["name"],
                                sort_order=int(doc.get("sort_order", 0)), ancestor_ids=doc.get("ancestor_ids") or [],
                                version=int(doc["version"]))


def _movement(doc: dict) -> catalog_pb2.StockMovement:
    return catalog_pb2.StockMovement(
        movement_id=doc["_id"], kind=doc["kind"], reference=doc.get("reference", ""),
        on_hand_delta=int(doc["on_hand_delta"]), reserved_delta=int(doc["reserved_delta"]),
        available_delta=int(doc["available_delta"]), at=timestamp(aware(doc["at"])), reason=doc.get("reason", ""))


def _stock(stock: Stock) -> catalog_pb2.Stock:
    return catalog_pb2.Stock(sku_id=stock.sku_id, on_hand=stock.on_hand, reserved=stock.reserved,
                             available=stock.available)


class CatalogServicer(PersonalDataRpcs, catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, products: ProductUseCases, categories: CategoryUseCases, inventory: InventoryUseCases,
                 stock: StockUseCases, flash: FlashSaleUseCases, staff_lists: StaffLists,
                 personal_data: CatalogDataExport | None = None):
        self.personal_data = personal_data  # the member's data export (PersonalDataRpcs)
        self.products = products
        self.categories = categories
        self.inventory = inventory
        self.stock = stock
        self.flash = flash
        self.staff_lists = staff_lists

    async def ListProducts(self, request, context):
        views, token = await self.products.list_products(validation.ListProducts(
            keyword=request.keyword, category_id=request.category_id, tag=request.tag, page_size=request.page_size,
            page_token=request.page_token,
            min_price=request.min_price if request.HasField("min_price") else None,
            max_price=request.max_price if request.HasField("max_price") else None,
            in_stock_only=request.in_stock_only, sort=_enum_name(SORT_NAMES, request.sort)))
        return catalog_pb2.ListProductsResponse(products=[_product(v) for v in views], next_page_token=token)

    async def ListStaffProducts(self, request, context):
        status = catalog_pb2.ProductStatus.Name(request.status).removeprefix("PRODUCT_STATUS_") if request.status \
            else ""
        views, token = await self.products.list_products(validation.ListProducts(
            keyword=request.keyword, category_id=request.category_id, tag=request.tag, page_size=request.page_size,
            page_token=request.page_token,
            min_price=request.min_price if request.HasField("min_price") else None,
            max_price=request.max_price if request.HasField("max_price") else None,
            in_stock_only=request.in_stock_only, sort=_enum_name(SORT_NAMES, request.sort), status=status))
        return catalog_pb2.ListStaffProductsResponse(products=[_product(v) for v in views], next_page_token=token)

    async def GetProduct(self, request, context):
        return catalog_pb2.GetProductResponse(product=_product(await self.products.get_product(request.product_id)))

    async def UpsertProduct(self, request, context):
        cmd = validation.UpsertProduct(
            code=request.code, title=request.title, category_id=request.category_id, tags=list(request.tags),
            media_urls=list(request.media_urls), description=request.description,
            status=_enum_name(STATUS_NAMES, request.status), skus=[_sku_input(s) for s in request.skus],
            expected_version=request.expected_version, commission_excluded=request.commission_excluded)
        view, created = await self.products.upsert_product(cmd)
        return catalog_pb2.UpsertProductResponse(product=_product(view), created=created)

    async def SetProductStatus(self, request, context):
        view = await self.products.set_product_status(request.product_id, _enum_name(STATUS_NAMES, request.status),
                                                 request.expected_version)
        return catalog_pb2.SetProductStatusResponse(product=_product(view))

    async def ListCategories(self, request, context):
        docs = await self.categories.list_categories()
        return catalog_pb2.ListCategoriesResponse(categories=[_category(d) for d in docs])

    async def CreateCategory(self, request, context):
        doc = await self.categories.create_category(request.name, request.parent_id, request.sort_order)
        return catalog_pb2.CreateCategoryResponse(category=_category(doc))

    async def UpdateCategory(self, request, context):
        doc = await self.categories.update_category(request.category_id, request.name, request.sort_order,
                                               request.expected_version)
        return catalog_pb2.UpdateCategoryResponse(category=_category(doc))

    async def AdjustStock(self, request, context):
        doc = await self.inventory.adjust_stock(request.sku_id, request.delta, request.reason, request.idempotency_key)
        return catalog_pb2.AdjustStockResponse(stock=_stock(doc))

    async def AuditStock(self, request, context):
        audit = await self.inventory.audit_stock(request.sku_id)
        levels = audit.recomputed
        return catalog_pb2.AuditStockResponse(
            stock=_stock(audit.stock), consistent=audit.consistent,
            recomputed=catalog_pb2.Stock(sku_id=audit.stock.sku_id, on_hand=levels.on_hand, reserved=levels.reserved,
                                         available=levels.available),
            movements=[_movement(m) for m in audit.movements])

    async def ReturnStock(self, request, context):
        docs = await self.inventory.return_stock(validation.ReturnStock(
            request.return_id, request.order_id, [(line.sku_id, line.quantity) for line in request.lines]))
        return catalog_pb2.ReturnStockResponse(stock=[_stock(d) for d in docs])

    async def GetStock(self, request, context):
        return catalog_pb2.GetStockResponse(stock=_stock(await self.stock.get_stock(request.sku_id)))

    async def GetSkus(self, request, context):
        details = await self.products.get_skus(list(request.sku_ids))
        return catalog_pb2.GetSkusResponse(skus=[
            catalog_pb2.SkuDetail(sku=_sku(d.sku, d.product_id, d.available,
                                           commission_excluded=d.commission_excluded), product_title=d.product_title,
                                  product_status=STATUS_NUMBERS[d.product_status],
                                  category_path=d.category_path) for d in details])

    async def ReserveStock(self, request, context):
        expires_at = aware(request.expires_at.ToDatetime()) if request.HasField("expires_at") else None
        cmd = validation.ReserveStock(request.reservation_id, request.order_id,
                                      [(l.sku_id, l.quantity) for l in request.lines], expires_at)
        with deadline_of(context):
            reservation = await self.stock.reserve(cmd)
        return catalog_pb2.ReserveStockResponse(reservation=reservation_message(reservation))

    async def ReleaseReservation(self, request, context):
        reservation = await self.stock.release(request.reservation_id)
        return catalog_pb2.ReleaseReservationResponse(reservation=reservation_message(reservation))

    async def GetReservation(self, request, context):
        reservation = await self.stock.get_reservation(request.reservation_id)
        return catalog_pb2.GetReservationResponse(reservation=reservation_message(reservation))

    async def CreateFlashSale(self, request, context):
        sale = await self.flash.create(flash_sales.CreateFlashSale(
            idempotency_key=request.idempotency_key, sku_id=request.sku_id, price=request.price.amount,
            currency=request.price.currency, units=request.units, per_member_limit=request.per_member_limit,
            starts_at=aware(request.starts_at.ToDatetime()) if request.HasField("starts_at") else None,
            ends_at=aware(request.ends_at.ToDatetime()) if request.HasField("ends_at") else None,
            title=request.title, live_session_id=request.live_session_id,
            kind=_enum_name(ACTIVITY_KIND_NAMES, request.kind) or flash_rules.FLASH_SALE))
        return catalog_pb2.CreateFlashSaleResponse(flash_sale=flash_sale_message(sale))

    async def GetFlashSale(self, request, context):
        sale = await self.flash.get(request.flash_sale_id)
        return catalog_pb2.GetFlashSaleResponse(flash_sale=flash_sale_message(sale))

    async def ListFlashSales(self, request, context):
        sales, token = await self.flash.list_sales(request.live_session_id, request.page_size, request.page_token,
                                                   request.product_id)
        return catalog_pb2.ListFlashSalesResponse(flash_sales=[flash_sale_message(s) for s in sales],
                                                  next_page_token=token)

    async def ReserveFlashSale(self, request, context):
        cmd = flash_sales.ReserveFlashSale(
            reservation_id=request.reservation_id, order_id=request.order_id, flash_sale_id=request.flash_sale_id,
            member_id=request.member_id, quantity=request.quantity,
            expires_at=aware(request.expires_at.ToDatetime()) if request.HasField("expires_at") else None,
            kind=_enum_name(ACTIVITY_KIND_NAMES, request.kind) or flash_rules.FLASH_SALE)
        with deadline_of(context):
            reservation, sale = await self.flash.reserve(cmd)
        return catalog_pb2.ReserveFlashSaleResponse(reservation=reservation_message(reservation),
                                                    flash_sale=flash_sale_message(sale), sku=sku_detail_message(sale))

    # ---- staff lists ----

    async def ListStaffSkus(self, request, context):
        rows, token = await self.staff_lists.list_skus(ListSkus(
            product_id=request.product_id, code_prefix=request.code_prefix,
            max_available=request.max_available if request.HasField("max_available") else None,
            product_status=_enum_name(STATUS_NAMES, request.product_status),
            sort=_enum_name(SKU_SORT_NAMES, request.sort), page_size=request.page_size,
            page_token=request.page_token))
        return catalog_pb2.ListStaffSkusResponse(skus=[_staff_sku(r) for r in rows], next_page_token=token)

    async def ListStaffCategories(self, request, context):
        docs, token = await self.staff_lists.list_categories(ListCategories(
            parent_id=request.parent_id, roots_only=request.roots_only, page_size=request.page_size,
            page_token=request.page_token))
        return catalog_pb2.ListStaffCategoriesResponse(categories=[_category(d) for d in docs], next_page_token=token)

    async def ListStaffFlashSales(self, request, context):
        sales, token = await self.staff_lists.list_flash_sales(ListSales(
            state=_enum_name(SALE_STATE_NAMES, request.state), product_id=request.product_id,
            starts_from=aware(request.starts_from.ToDatetime()) if request.HasField("starts_from") else None,
            starts_before=aware(request.starts_before.ToDatetime()) if request.HasField("starts_before") else None,
            sort=_enum_name(SALE_SORT_NAMES, request.sort), page_size=request.page_size,
            page_token=request.page_token))
        return catalog_pb2.ListStaffFlashSalesResponse(flash_sales=[flash_sale_message(s) for s in sales],
                                                       next_page_token=token)


SKU_SORT_NAMES = {catalog_pb2.SKU_SORT_NEWEST: "NEWEST", catalog_pb2.SKU_SORT_SKU_ID: "SKU_ID"}
SALE_SORT_NAMES = {catalog_pb2.FLASH_SALE_SORT_LATEST_START: "LATEST_START",
                   catalog_pb2.FLASH_SALE_SORT_EARLIEST_START: "EARLIEST_START"}
SALE_STATE_NAMES = {catalog_pb2.FLASH_SALE_STATE_SCHEDULED: "SCHEDULED", catalog_pb2.FLASH_SALE_STATE_RUNNING: "RUNNING",
                    catalog_pb2.FLASH_SALE_STATE_ENDED: "ENDED"}


def _staff_sku(row: StaffSku) -> catalog_pb2.StaffSku:
    return catalog_pb2.StaffSku(sku=_sku(row.sku, row.product_id, row.stock.available), product_title=row.product_title,
                                product_status=STATUS_NUMBERS[row.product_status], stock=_stock(row.stock))
