"""The personal-data RPC of OrderService: a member's orders, payments and refunds for
their data export."""
from __future__ import annotations

import json

from siyu.order.v1 import order_pb2

from services.order.application.personal_data import OrderDataExport


class PersonalDataRpcs:
    personal_data: OrderDataExport

    async def ExportMemberData(self, request, context):
        document = await self.personal_data.export(request.member_id)
        return order_pb2.ExportMemberDataResponse(document=json.dumps(document, ensure_ascii=False))
