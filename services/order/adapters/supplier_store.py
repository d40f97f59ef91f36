"""Suppliers and their SKU links in MongoDB. A supplier's settlement account and phone are
stored sealed (siyu_kit.sealing, context = the merchant id), like WeChat Pay secrets: a
value copied to another merchant does not open. Links are one document per SKU."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.protos import aware
from siyu_kit.repository import save_change
from siyu_kit.sealing import Sealer

from services.order.domain.split import SupplyTerms
from services.order.domain.suppliers import AccountKind, Supplier, SupplierDetails, SupplierLink, SupplierState


class SupplierDoc(Document):
    id = StringField(primary_key=True)  # sup_…
    merchant_id = StringField(required=True)
    idempotency_key = StringField(required=True)
    name = StringField(required=True)
    contact = StringField()
    phone_sealed = StringField()
    account_kind = StringField(required=True)
    account_sealed = StringField(required=True)
    state = StringField(required=True)
    created_at = DateTimeField(required=True)
    version = IntField(required=True)

    meta = {"collection": "suppliers", "strict": False,
            "indexes": [{"fields": ["merchant_id", "idempotency_key"], "unique": True}]}


class SupplierLinkDoc(Document):
    id = StringField(primary_key=True)  # "<merchant_id>:<sku_id>"
    merchant_id = StringField(required=True)
    sku_id = StringField(required=True)
    supplier_id = StringField(required=True)
    supply_price = IntField(required=True)
    updated_ms = IntField(required=True)

    meta = {"collection": "supplier_links", "strict": False,
            "indexes": [{"fields": ["merchant_id", "sku_id"]}, {"fields": ["merchant_id", "supplier_id", "sku_id"]}]}


def ensure_indexes() -> None:
    SupplierDoc.ensure_indexes()
    SupplierLinkDoc.ensure_indexes()


def _context(merchant_id: str) -> str:
    return f"supplier:{merchant_id}"


class MongoSuppliers:
    def __init__(self, sealer: Sealer):
        self.sealer = sealer

    @staticmethod
    def _c():
        return SupplierDoc._get_collection()

    def _doc(self, s: Supplier, idempotency_key: str) -> dict:
        return {"_id": s.id, "merchant_id": s.merchant_id, "idempotency_key": idempotency_key,
                "created_at": s.created_at, "version": s.version, **self._changing(s)}

    def _changing(self, s: Supplier) -> dict:
        d, ctx = s.details, _context(s.merchant_id)
        return {"name": d.name, "contact": d.contact,
                "phone_sealed": self.sealer.seal(d.phone, ctx) if d.phone else "",
                "account_kind": d.account_kind.value, "account_sealed": self.sealer.seal(d.settlement_account, ctx),
                "state": s.state.value}

    def _of(self, d: dict) -> Supplier:
        ctx = _context(d["merchant_id"])
        details = SupplierDetails(name=d["name"], contact=d.get("contact") or "",
                                  phone=self.sealer.open(d["phone_sealed"], ctx) if d.get("phone_sealed") else "",
                                  account_kind=AccountKind(d["account_kind"]),
                                  settlement_account=self.sealer.open(d["account_sealed"], ctx))
        return Supplier(id=d["_id"], merchant_id=d["merchant_id"], details=details, state=SupplierState(d["state"]),
                        created_at=aware(d["created_at"]), version=d["version"])

    def _find_one(self, query: dict) -> Supplier | None:
        d = self._c().find_one(query)
        return self._of(d) if d else None

    async def get(self, merchant_id: str, supplier_id: str) -> Supplier | None:
        return await run_sync(self._find_one, {"_id": supplier_id, "merchant_id": merchant_id})

    async def by_key(self, merchant_id: str, idempotency_key: str) -> Supplier | None:
        return await run_sync(self._find_one, {"merchant_id": merchant_id, "idempotency_key": idempotency_key})

    def _add(self, s: Supplier, key: str) -> bool:
        try:
            self._c().insert_one(self._doc(s, key))
        except DuplicateKeyError:
            return False
        return True

    async def add(self, supplier: Supplier, idempotency_key: str) -> bool:
        supplier.pull_events()
        return await run_sync(self._add, supplier, idempotency_key)

    async def save(self, supplier: Supplier) -> None:
        if not supplier.pull_events():
            return
        await run_sync(save_change, self._c(), {"_id": supplier.id, "merchant_id": supplier.merchant_id},
                       {"$set": self._changing(supplier)}, version=supplier.version)
        supplier.version += 1

    def _page(self, merchant_id: str, after_id: str, limit: int) -> list[Supplier]:
        query: dict = {"merchant_id": merchant_id}
        if after_id:
            query["_id"] = {"$gt": after_id}
        return [self._of(d) for d in self._c().find(query).sort("_id", ASCENDING).limit(limit)]

    async def page(self, merchant_id: str, after_id: str, limit: int) -> list[Supplier]:
        return await run_sync(self._page, merchant_id, after_id, limit)

    def _among(self, merchant_id: str, ids: list[str]) -> dict[str, Supplier]:
        if not ids:
            return {}
        return {d["_id"]: self._of(d) for d in self._c().find({"merchant_id": merchant_id, "_id": {"$in": ids}})}

    async def among(self, merchant_id: str, supplier_ids: Sequence[str]) -> dict[str, Supplier]:
        return await run_sync(self._among, merchant_id, list(supplier_ids))


def _link_of(d: dict) -> SupplierLink:
    return SupplierLink(merchant_id=d["merchant_id"], sku_id=d["sku_id"], supplier_id=d["supplier_id"],
                        supply_price=d["supply_price"],
                        updated_at=datetime.fromtimestamp(d["updated_ms"] / 1000, tz=timezone.utc))


class MongoSupplierLinks:
    @staticmethod
    def _c():
        return SupplierLinkDoc._get_collection()

    def _put(self, link: SupplierLink) -> None:
        ms = int(link.updated_at.timestamp() * 1000)
        self._c().update_one({"_id": f"{link.merchant_id}:{link.sku_id}", "merchant_id": link.merchant_id},
                             {"$set": {"sku_id": link.sku_id, "supplier_id": link.supplier_id,
                                       "supply_price": link.supply_price, "updated_ms": ms}}, upsert=True)

    async def put(self, link: SupplierLink) -> None:
        await run_sync(self._put, link)

    def _remove(self, merchant_id: str, sku_id: str) -> bool:
        return self._c().delete_one({"_id": f"{merchant_id}:{sku_id}", "merchant_id": merchant_id}).deleted_count == 1

    async def remove(self, merchant_id: str, sku_id: str) -> bool:
        return await run_sync(self._remove, merchant_id, sku_id)

    def _page(self, merchant_id: str, supplier_id: str, after_sku: str, limit: int) -> list[SupplierLink]:
        query: dict = {"merchant_id": merchant_id}
        if supplier_id:
            query["supplier_id"] = supplier_id
        if after_sku:
            query["sku_id"] = {"$gt": after_sku}
        return [_link_of(d) for d in self._c().find(query).sort("sku_id", ASCENDING).limit(limit)]

    async def page(self, merchant_id: str, supplier_id: str, after_sku: str, limit: int) -> list[SupplierLink]:
        return await run_sync(self._page, merchant_id, supplier_id, after_sku, limit)

    def _terms(self, merchant_id: str, sku_ids: list[str]) -> dict[str, SupplyTerms]:
        if not sku_ids:
            return {}
        cursor = self._c().find({"merchant_id": merchant_id, "sku_id": {"$in": sku_ids}})
        return {d["sku_id"]: SupplyTerms(d["supplier_id"], d["supply_price"]) for d in cursor}

    async def terms(self, merchant_id: str, sku_ids: Sequence[str]) -> dict[str, SupplyTerms]:
        return await run_sync(self._terms, merchant_id, sorted(set(sku_ids)))
