"""The personal-data RPC of CatalogService: a member's flash-sale records for their data
export."""
from __future__ import annotations

import json

from siyu.catalog.v1 import catalog_pb2

from services.catalog.application.personal_data import CatalogDataExport


class PersonalDataRpcs:
    personal_data: CatalogDataExport

    async def ExportMemberData(self, request, context):
        document = await self.personal_data.export(request.member_id)
        return catalog_pb2.ExportMemberDataResponse(document=json.dumps(document, ensure_ascii=False))
