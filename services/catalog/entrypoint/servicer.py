"""CatalogService over gRPC: proto in, use case, proto out. No rules here."""
from __future__ import annotations

from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from siyu_kit.protos import aware, money, timestamp

from services.catalog.application import products, validation
from services.catalog.application.stock import StockUseCases, reservation_message

STATUS_NAMES = {catalog_pb2.PRODUCT_STATUS_DRAFT: "DRAFT", catalog_pb2.PRODUCT_STATUS_ON_SHELF: "ON_SHELF",
                catalog_pb2.PRODUCT_STATUS_OFF_SHELF: "OFF_SHELF"}
STATUS_NUMBERS = {v: k for k, v in STATUS_NAMES.items()}


def _sku(sku, product_id: str, available: int) -> catalog_pb2.Sku:
    return catalog_pb2.Sku(sku_id=sku.sku_id, product_id=product_id, code=sku.code, attributes=sku.attributes,
                           list_price=money(sku.list_price, sku.currency), available=available)


def _product(view: products.ProductView) -> catalog_pb2.Product:
    doc = view.doc
    skus = products._skus_of(doc)
    return catalog_pb2.Product(
        product_id=doc["_id"], code=doc["code"], title=doc["title"], category_id=doc.get("category_id", ""),
        tags=doc.get("tags") or [], media_urls=doc.get("media_urls") or [],
        description=doc.get("description", ""), status=STATUS_NUMBERS[doc["status"]],
        skus=[_sku(s, doc["_id"], view.available.get(s.sku_id, 0)) for s in skus],
        min_price=money(int(doc.get("min_price", 0))), created_at=timestamp(aware(doc["created_at"])),
        version=int(doc["version"]))


def _stock(doc: dict) -> catalog_pb2.Stock:
    return catalog_pb2.Stock(sku_id=doc["_id"], on_hand=int(doc["on_hand"]), reserved=int(doc["reserved"]),
                             available=int(doc["available"]))


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, stock: StockUseCases):
        self.stock = stock

    async def ListProducts(self, request, context):
        views, token = await products.list_products(request.keyword, request.category_id, request.tag,
                                                    request.page_size, request.page_token)
        return catalog_pb2.ListProductsResponse(products=[_product(v) for v in views], next_page_token=token)

    async def GetProduct(self, request, context):
        return catalog_pb2.GetProductResponse(product=_product(await products.get_product(request.product_id)))

    async def UpsertProduct(self, request, context):
        status = STATUS_NAMES.get(request.status, "") if request.status else ""
        if request.status and not status:
            status = f"UNKNOWN_{request.status}"
        cmd = validation.UpsertProduct(
            code=request.code, title=request.title, category_id=request.category_id, tags=list(request.tags),
            media_urls=list(request.media_urls), description=request.description, status=status,
            skus=[validation.SkuInput(code=s.code, attributes=dict(s.attributes), list_price=s.list_price.amount,
                                      currency=s.list_price.currency, initial_stock=s.initial_stock)
                  for s in request.skus])
        view, created = await products.upsert_product(cmd)
        return catalog_pb2.UpsertProductResponse(product=_product(view), created=created)

    async def GetStock(self, request, context):
        return catalog_pb2.GetStockResponse(stock=_stock(await self.stock.get_stock(request.sku_id)))

    async def GetSkus(self, request, context):
        details = await products.get_skus(list(request.sku_ids))
        return catalog_pb2.GetSkusResponse(skus=[
            catalog_pb2.SkuDetail(sku=_sku(d.sku, d.product_id, d.available), product_title=d.product_title,
                                  product_status=STATUS_NUMBERS[d.product_status]) for d in details])

    async def ReserveStock(self, request, context):
        expires_at = aware(request.expires_at.ToDatetime()) if request.HasField("expires_at") else None
        cmd = validation.ReserveStock(request.reservation_id, request.order_id,
                                      [(l.sku_id, l.quantity) for l in request.lines], expires_at)
        doc = await self.stock.reserve(cmd)
        return catalog_pb2.ReserveStockResponse(reservation=reservation_message(doc))

    async def ReleaseReservation(self, request, context):
        doc = await self.stock.release(request.reservation_id)
        return catalog_pb2.ReleaseReservationResponse(reservation=reservation_message(doc))

    async def GetReservation(self, request, context):
        doc = await self.stock.get_reservation(request.reservation_id)
        return catalog_pb2.GetReservationResponse(reservation=reservation_message(doc))
