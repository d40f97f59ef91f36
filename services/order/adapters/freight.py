"""Freight templates in MongoDB, one per merchant. The order path reads the template on
every quote and order, so reads are cached in this process for CACHE_TTL_S (a merchant
without a template is cached too): placing an order costs no extra database command once
the cache is warm. A template saved through this object shows at once."""
from __future__ import annotations

import time
from mongoengine import DateTimeField, DictField, Document, IntField, ListField, StringField

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.protos import aware
from siyu_kit.repository import insert_new, save_change

from services.order.domain.freight import Basis, FreightRule, FreightTemplate


class FreightTemplateDoc(Document):
    id = StringField(primary_key=True)  # the merchant id: one template per merchant
    merchant_id = StringField(required=True, unique=True)
    default_rule = DictField()
    rules = ListField(DictField())
    excluded_regions = ListField(StringField())
    free_over = IntField()
    free_shipping_tiers = ListField(StringField())
    version = IntField(default=1)
    updated_at = DateTimeField()

    meta = {"collection": "freight_templates", "strict": False}


def _rule_doc(rule: FreightRule) -> dict:
    return {"name": rule.name, "basis": rule.basis.value, "first": rule.first, "first_fee": rule.first_fee,
            "additional": rule.additional, "additional_fee": rule.additional_fee, "regions": list(rule.regions)}


def _rule_of(d: dict) -> FreightRule:
    return FreightRule(name=d.get("name", ""), basis=Basis(d.get("basis") or Basis.UNITS.value),
                       first=int(d.get("first") or 1), first_fee=int(d.get("first_fee") or 0),
                       additional=int(d.get("additional") or 1), additional_fee=int(d.get("additional_fee") or 0),
                       regions=tuple(d.get("regions") or ()))


def template_of(doc: dict) -> FreightTemplate:
    return FreightTemplate(
        merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
        default_rule=_rule_of(doc.get("default_rule") or {}),
        rules=tuple(_rule_of(r) for r in doc.get("rules") or ()),
        excluded_regions=tuple(doc.get("excluded_regions") or ()), free_over=int(doc.get("free_over") or 0),
        free_shipping_tiers=tuple(doc.get("free_shipping_tiers") or ()),
        updated_at=aware(doc["updated_at"]) if doc.get("updated_at") else None)


def _fields(t: FreightTemplate) -> dict:
    return {"default_rule": _rule_doc(t.default_rule), "rules": [_rule_doc(r) for r in t.rules],
            "excluded_regions": list(t.excluded_regions), "free_over": t.free_over,
            "free_shipping_tiers": list(t.free_shipping_tiers), "updated_at": t.updated_at}


class FreightTemplates:
    """Blocking store with the read cache; MongoFreightTemplates is the async port."""

    CACHE_TTL_S = 5.0

    def __init__(self, ttl_s: float = CACHE_TTL_S):
        self._ttl_s = ttl_s
        # Stored documents, not aggregates: every read gets its own aggregate to change.
        self._cache: dict[str, tuple[float, dict | None]] = {}

    @staticmethod
    def _c():
        return FreightTemplateDoc._get_collection()

    def of_merchant(self, merchant_id: str, fresh: bool = False) -> FreightTemplate | None:
        """`fresh` skips the cache (staff reading what they are about to change)."""
        hit = None if fresh else self._cache.get(merchant_id)
        if hit and hit[0] > time.monotonic():
            doc = hit[1]
        else:
            doc = self._c().find_one({"merchant_id": merchant_id}, {"outbox": 0})
            self._cache[merchant_id] = (time.monotonic() + self._ttl_s, doc)
        return template_of(doc) if doc else None

    def add(self, template: FreightTemplate) -> bool:
        saved = insert_new(self._c(), {"_id": template.merchant_id, "merchant_id": template.merchant_id,
                                       **_fields(template), "version": 1})
        self._remember(template, saved, 1)
        return saved

    def save(self, template: FreightTemplate) -> None:
        try:
            save_change(self._c(), {"_id": template.merchant_id, "merchant_id": template.merchant_id},
                        {"$set": _fields(template)}, version=template.version)
        except StaleVersion:
            self._cache.pop(template.merchant_id, None)
            raise
        self._remember(template, True, template.next_version)

    def _remember(self, template: FreightTemplate, saved: bool, version: int) -> None:
        if not saved:
            self._cache.pop(template.merchant_id, None)
            return
        template.version = version
        doc = {"merchant_id": template.merchant_id, **_fields(template), "version": version}
        self._cache[template.merchant_id] = (time.monotonic() + self._ttl_s, doc)


class MongoFreightTemplates:
    """FreightTemplateRepository over `FreightTemplates`."""

    def __init__(self, store: FreightTemplates | None = None):
        self.store = store or FreightTemplates()

    async def of_merchant(self, merchant_id: str, fresh: bool = False) -> FreightTemplate | None:
        return await run_sync(self.store.of_merchant, merchant_id, fresh)

    async def add(self, template: FreightTemplate) -> bool:
        """False when the merchant already has one (another writer came first)."""
        return await run_sync(self.store.add, template)

    async def save(self, template: FreightTemplate) -> None:
        """Compare-and-set on the version read; StaleVersion when another write came first."""
        await run_sync(self.store.save, template)


def ensure_indexes() -> None:
    FreightTemplateDoc.ensure_indexes()


