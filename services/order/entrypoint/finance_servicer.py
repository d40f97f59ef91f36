"""The supplier, payment-split and finance-desk RPCs of OrderService: proto ⇄ use case only."""
from __future__ import annotations

from siyu.order.v1 import order_pb2

from siyu_kit.protos import money

from services.order.adapters import finance_messages as fm
from services.order.application.finance import FinanceUseCases
from services.order.application.suppliers import SupplierUseCases


class FinanceRpcs:
    """Mixed into OrderServicer; `self.suppliers` and `self.finance` are set by finance_wiring."""
    suppliers: SupplierUseCases | None = None
    finance: FinanceUseCases | None = None

    def _suppliers(self) -> SupplierUseCases:
        if self.suppliers is None:
            raise RuntimeError("this servicer was built without suppliers")
        return self.suppliers

    def _finance(self) -> FinanceUseCases:
        if self.finance is None:
            raise RuntimeError("this servicer was built without the finance desk")
        return self.finance

    async def CreateSupplier(self, request, context):
        s = await self._suppliers().create(request.idempotency_key, fm.supplier_details(request.supplier))
        return order_pb2.CreateSupplierResponse(supplier=fm.supplier(s))

    async def UpdateSupplier(self, request, context):
        details = fm.supplier_details(request.supplier) if request.HasField("supplier") else None
        s = await self._suppliers().update(request.supplier_id, details, request.disable)
        return order_pb2.UpdateSupplierResponse(supplier=fm.supplier(s))

    async def ListSuppliers(self, request, context):
        found, token = await self._suppliers().list(request.page_size, request.page_token)
        return order_pb2.ListSuppliersResponse(suppliers=[fm.supplier(s) for s in found], next_page_token=token)

    async def LinkSupplierSku(self, request, context):
        link = await self._suppliers().link(request.sku_id, request.supplier_id, request.supply_price.amount)
        return order_pb2.LinkSupplierSkuResponse(link=fm.supplier_link(link))

    async def UnlinkSupplierSku(self, request, context):
        await self._suppliers().unlink(request.sku_id)
        return order_pb2.UnlinkSupplierSkuResponse()

    async def ListSupplierLinks(self, request, context):
        found, token = await self._suppliers().list_links(request.supplier_id, request.page_size, request.page_token)
        return order_pb2.ListSupplierLinksResponse(links=[fm.supplier_link(x) for x in found], next_page_token=token)

    async def GetSupplierPayable(self, request, context):
        p = await self._suppliers().payable(request.supplier_id, request.from_day, request.to_day)
        return order_pb2.GetSupplierPayableResponse(
            supplier_id=request.supplier_id, payable=money(max(0, p.payable)), shared=money(p.shared),
            off_platform=money(max(0, p.off_platform)), order_count=p.orders)

    async def GetOrderSplit(self, request, context):
        return order_pb2.GetOrderSplitResponse(split=fm.order_split(await self._finance().split(request.order_id)))

    async def GetSplitSettings(self, request, context):
        return order_pb2.GetSplitSettingsResponse(settings=fm.split_settings(await self._finance().split_settings()))

    async def UpdateSplitSettings(self, request, context):
        saved = await self._finance().update_split_settings(fm.split_settings_of(request.settings))
        return order_pb2.UpdateSplitSettingsResponse(settings=fm.split_settings(saved))

    async def GetSettlementStatement(self, request, context):
        s = await self._finance().statement(request.day)
        return order_pb2.GetSettlementStatementResponse(statement=fm.statement(s))

    async def ExportSettlementStatement(self, request, context):
        return fm.csv_body(await self._finance().export(request.from_day, request.to_day))

    async def ReconcilePayments(self, request, context):
        return fm.reconciliation(request.day, await self._finance().reconcile(request.day))
