"""Repositories: every query filters by merchant; updates are single-document,
compare-and-set on `version`, or guarded by the event id they apply. Synchronous: call
them through siyu_kit.db.run_sync."""
from __future__ import annotations

from mongoengine.errors import NotUniqueError
from pymongo.errors import DuplicateKeyError

from services.content.adapters.documents import ContentDoc, FunnelBucketDoc, PersonaDoc
from services.content.domain.contents import Content, ContentFields
from services.content.domain.funnels import Counters, bucket_key
from services.content.domain.personas import Persona, PersonaFields


class CodeTaken(Exception):
    """Another writer created the same code first."""


def _persona(doc: dict) -> Persona:
    return Persona(persona_id=doc["_id"], version=int(doc["version"]), fields=PersonaFields(
        code=doc["code"], name=doc["name"], avatar_url=doc.get("avatar_url", ""),
        expertise=doc.get("expertise", ""), bio=doc.get("bio", ""), tone=doc.get("tone", "")))


def _persona_fields(f: PersonaFields) -> dict:
    return {"code": f.code, "name": f.name, "avatar_url": f.avatar_url, "expertise": f.expertise,
            "bio": f.bio, "tone": f.tone}


class PersonaRepository:
    def find_by_code(self, merchant_id: str, code: str) -> Persona | None:
        doc = PersonaDoc._get_collection().find_one({"merchant_id": merchant_id, "code": code})
        return _persona(doc) if doc else None

    def get(self, merchant_id: str, persona_id: str) -> Persona | None:
        doc = PersonaDoc._get_collection().find_one({"_id": persona_id, "merchant_id": merchant_id})
        return _persona(doc) if doc else None

    def insert(self, merchant_id: str, persona: Persona, now_ms: int) -> None:
        try:
            PersonaDoc(id=persona.persona_id, merchant_id=merchant_id, version=persona.version,
                       created_ms=now_ms, updated_ms=now_ms,
                       **_persona_fields(persona.fields)).save(force_insert=True)
        except (NotUniqueError, DuplicateKeyError) as exc:
            raise CodeTaken(persona.fields.code) from exc

    def replace_if_version(self, merchant_id: str, persona: Persona, expected_version: int, now_ms: int) -> bool:
        result = PersonaDoc._get_collection().update_one(
            {"_id": persona.persona_id, "merchant_id": merchant_id, "version": expected_version},
            {"$set": {**_persona_fields(persona.fields), "updated_ms": now_ms}, "$inc": {"version": 1}})
        return result.matched_count == 1


def _content(doc: dict) -> Content:
    return Content(
        content_id=doc["_id"], version=int(doc["version"]), status=doc["status"],
        published_at_ms=int(doc.get("published_at_ms") or 0),
        fields=ContentFields(code=doc["code"], persona_id=doc["persona_id"], type=doc["type"],
                             title=doc["title"], body=doc.get("body", ""),
                             product_ids=tuple(doc.get("product_ids") or ())))


def _content_fields(c: Content) -> dict:
    f = c.fields
    return {"code": f.code, "persona_id": f.persona_id, "type": f.type, "title": f.title, "body": f.body,
            "product_ids": list(f.product_ids), "status": c.status, "published_at_ms": c.published_at_ms}


class ContentRepository:
    def find_by_code(self, merchant_id: str, code: str) -> Content | None:
        doc = ContentDoc._get_collection().find_one({"merchant_id": merchant_id, "code": code})
        return _content(doc) if doc else None

    def get(self, merchant_id: str, content_id: str) -> Content | None:
        doc = ContentDoc._get_collection().find_one({"_id": content_id, "merchant_id": merchant_id})
        return _content(doc) if doc else None

    def insert(self, merchant_id: str, content: Content, now_ms: int) -> None:
        try:
            ContentDoc(id=content.content_id, merchant_id=merchant_id, version=content.version,
                       created_ms=now_ms, updated_ms=now_ms, **_content_fields(content)).save(force_insert=True)
        except (NotUniqueError, DuplicateKeyError) as exc:
            raise CodeTaken(content.fields.code) from exc

    def replace_if_version(self, merchant_id: str, content: Content, expected_version: int, now_ms: int) -> bool:
        # The product list is replaced whole under the version check (no $push).
        result = ContentDoc._get_collection().update_one(
            {"_id": content.content_id, "merchant_id": merchant_id, "version": expected_version},
            {"$set": {**_content_fields(content), "updated_ms": now_ms}, "$inc": {"version": 1}})
        return result.matched_count == 1


_COUNTERS = ("unique_viewers", "product_clicks", "orders", "paid_orders", "gmv")


class FunnelRepository:
    def apply_once(self, merchant_id: str, dimension: str, ref_id: str, day: str, event_id: str,
                   change: Counters, currency: str) -> bool:
        """Add `change` to the day's bucket unless `event_id` was counted there already.
        One upserting update is both the change and the guard; False: already counted."""
        seen = f"seen.{event_id}"
        try:
            result = FunnelBucketDoc._get_collection().update_one(
                {"_id": bucket_key(merchant_id, dimension, ref_id, day), seen: {"$exists": False}},
                {"$inc": change.as_increments(),
                 "$set": {seen: 1, "merchant_id": merchant_id, "dimension": dimension, "ref_id": ref_id,
                          "day": day, "currency": currency}},
                upsert=True)
        except DuplicateKeyError:
            return False
        return result.upserted_id is not None or result.matched_count == 1

    def buckets(self, merchant_id: str, dimension: str, ref_id: str) -> tuple[list[Counters], str]:
        docs = FunnelBucketDoc._get_collection().find(
            {"merchant_id": merchant_id, "dimension": dimension, "ref_id": ref_id},
            {name: 1 for name in (*_COUNTERS, "currency")})
        counters, currency = [], ""
        for doc in docs:
            counters.append(Counters(*(int(doc.get(name) or 0) for name in _COUNTERS)))
            currency = currency or doc.get("currency", "")
        return counters, currency
