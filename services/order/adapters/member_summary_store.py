"""The orders of one member, as the member summary reads them: one find over the
(merchant_id, member_id) index with a small projection."""
from __future__ import annotations

from services.order.adapters.documents import OrderDoc
from services.order.application.member_summary import OrderFigure
from siyu_kit.db import run_sync
from siyu_kit.protos import aware

_FIELDS = {"state": 1, "payable": 1, "refunded_amount": 1, "created_at": 1, "paid_at": 1, "payment_id": 1,
           "stored_value": 1}


def _figure(doc: dict) -> OrderFigure:
    sv = doc.get("stored_value") or {}
    return OrderFigure(order_id=doc["_id"], state=doc.get("state") or "", payable=int(doc.get("payable") or 0),
                       refunded=int(doc.get("refunded_amount") or 0), created_at=aware(doc["created_at"]),
                       paid=bool(doc.get("paid_at")), recharge=bool(sv.get("recharge")))


class MongoMemberOrderFigures:
    async def of_member(self, merchant_id: str, member_id: str) -> list[OrderFigure]:
        docs = await run_sync(lambda: list(OrderDoc._get_collection().find(
            {"merchant_id": merchant_id, "member_id": member_id}, _FIELDS)))
        return [_figure(d) for d in docs]
